//! What `audit` and `cleanup` refuse before they ask AWS anything: quick checks of their input,
//! no stand-in.

use crate::common;
use common::Repo;

#[test]
fn a_mistyped_region_is_refused_naming_the_known_ones() {
    let repo = Repo::new("regions");
    for args in [
        &["audit", "--region", "us-est-1"][..],
        &["cleanup", "--kind", "test-ebs", "--region", "us-est-1"][..],
    ] {
        repo.xtask(args).fails(
            2,
            &[
                "`--region us-est-1` is refused",
                "`us-est-1` is not one of the regions this project publishes to",
                "us-east-1, us-west-1, us-west-2",
                "fix: use one of those names, or add `us-est-1` to `settings.regions`",
            ],
        );
    }
    // Every refusal ends with what to do.
    repo.xtask(&["cleanup"])
        .fails(2, &["cleanup needs a filter", "fix: add `--run RUN`"]);
    repo.xtask(&["cleanup", "--kind", "official"])
        .fails(2, &["fix: use `--kind test-ebs` or `--kind test-instance`"]);
    repo.xtask(&["cleanup", "--kind", "test-ebs", "--older-than", "soon"])
        .fails(2, &["fix: give a duration like `7d` or `12h`"]);
    repo.git_init("2.6");
    repo.xtask(&["audit", "--local"]).fails(
        2,
        &[
            "no local stand-in is running",
            "fix: start it with `cargo xtask local up`",
        ],
    );
}
