//! What `audit` and `cleanup` refuse before they ask AWS anything: quick checks of their input,
//! no stand-in.

mod common;
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
            ],
        );
    }
}
