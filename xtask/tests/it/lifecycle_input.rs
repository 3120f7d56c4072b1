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
    // The fix's example stays where the command was pointed: the stand-in, not AWS.
    repo.xtask(&["cleanup", "--local"])
        .fails(2, &["(`cargo xtask cleanup --kind test-ebs --local` lists"]);
    for kind in ["official", "prod"] {
        repo.xtask(&["cleanup", "--kind", kind]).fails(
            2,
            &[
                &format!("`{kind}` is not a test kind: use `test-ebs` or `test-instance`"),
                "fix: give `--kind <KIND>` a value the message above allows",
            ],
        );
    }
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

/// A release made before the tool is found at the commit that made its `ami_ids.json`, not at a
/// later commit that changed other files: a retire commit (its message names the version it
/// retires) must not pass for that version's release.
#[test]
fn a_legacy_release_is_the_commit_that_made_its_ami_ids() {
    let repo = Repo::new("legacy-commit");
    repo.git_init("2.6");
    let made = repo
        .git(&["rev-parse", "--short=7", "HEAD"])
        .trim()
        .to_string();
    repo.write("build/retired.json", "{\"retirements\": []}\n");
    repo.git(&["add", "build/retired.json"]);
    repo.git(&[
        "commit",
        "--quiet",
        "-m",
        "Retire ComboAMI 2.6.5: deprecate (local stand-in)",
    ]);
    // Both read the history before they look for a stand-in (none runs here).
    let audit = repo
        .xtask(&["audit", "--local"])
        .fails(2, &["no local stand-in"]);
    assert!(
        audit.stdout.contains(&format!(
            "2.6.3: `ami_ids.json` at {made} lists 32 AMIs in 8 regions"
        )) && audit
            .stdout
            .contains(&format!("`cargo xtask tag 2.6.3 --commit {made}`")),
        "{audit:#?}"
    );
    let retire = repo
        .xtask(&["retire", "2.6.5", "--local"])
        .fails(2, &["no local stand-in"]);
    assert!(
        retire
            .stderr
            .contains("note: there is no tag `release/2.6.5`: looking for the images by their `Version` tag only")
            && !retire.all().contains("2.6.5 is a release made before the tool"),
        "{retire:#?}"
    );
}
