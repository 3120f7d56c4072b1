//! Issue 18.3: protection asks the remote and the cloud, not only this clone. In a clone that
//! lacks the `release/2.6.9` and `candidate/2.6.10-beta1` tags while its remote has them,
//! `retire` and `cleanup --execute` remove nothing and say why; a remote that cannot be asked
//! refuses them unless `--offline-ok`, and then only this clone's tags and the images' own
//! tags protect (which proves the remote's tags were what kept the candidate).

use crate::common;

use common::{standin_aws, Repo};

/// Registers an official image of `version` in the stand-in's test region, tagged as the
/// pipeline tags it.
fn official_image(repo: &Repo, name: &str, version: &str) -> String {
    let answer = standin_aws(
        repo,
        "us-east-1",
        &["ec2", "register-image", "--name", name],
    );
    let id = answer["ImageId"].as_str().unwrap().to_string();
    let tags =
        format!("Key=Project,Value=comboami Key=Kind,Value=official Key=Version,Value={version}");
    let mut args = vec!["ec2", "create-tags", "--resources", &id, "--tags"];
    args.extend(tags.split(' '));
    standin_aws(repo, "us-east-1", &args);
    id
}

fn exists(repo: &Repo, id: &str) -> bool {
    let found = standin_aws(
        repo,
        "us-east-1",
        &["ec2", "describe-images", "--owners", "self"],
    );
    found["Images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["ImageId"] == id)
}

#[test]
fn a_clone_without_the_tags_removes_nothing_the_remote_or_the_images_say_is_released() {
    let repo = Repo::new("protection");
    common::small_matrix(&repo);
    repo.git_init("2.6");
    repo.xtask(&["local", "up"]).ok();
    let released = [
        official_image(&repo, "comboami-2.6.9-a", "2.6.9"),
        official_image(&repo, "comboami-2.6.9-b", "2.6.9"),
    ];
    let candidate = official_image(&repo, "comboami-2.6.10-beta1-a", "2.6.10-beta1");

    // The remote has both tags; this clone has neither (deleted, or never fetched).
    let remote = repo.path("target/remote.git");
    let remote = remote.to_str().unwrap();
    repo.git(&["init", "--quiet", "--bare", remote]);
    repo.git(&["remote", "add", "origin", remote]);
    repo.git(&["tag", "-a", "release/2.6.9", "-m", "ComboAMI 2.6.9"]);
    repo.git(&["tag", "candidate/2.6.10-beta1"]);
    repo.git(&["push", "--quiet", "origin", "2.6", "--tags"]);
    repo.git(&["tag", "-d", "release/2.6.9", "candidate/2.6.10-beta1"]);

    let retire = [
        "retire",
        "2.6.9",
        "--deregister",
        "--grace",
        "0",
        "--execute",
        "--local",
    ];
    repo.xtask(&retire).fails(
        2,
        &[
            "refusing to retire: `2.6.9` is the newest release (known from tag release/2.6.9 on the remote `origin`; 2 image(s) tagged `Version=2.6.9` in the cloud)",
            "fix: release a newer version first",
        ],
    );
    let cleanup = repo
        .xtask(&[
            "cleanup",
            "--local",
            "--version",
            "2.6.9",
            "--region",
            "us-east-1",
            "--execute",
        ])
        .ok();
    assert!(
        cleanup.stdout.contains(
            "version 2.6.9 is released (tag release/2.6.9 on the remote `origin`) and not retired in `build/retired.json`"
        ),
        "{cleanup:#?}"
    );
    assert!(!cleanup.stdout.contains("deregistered"), "{cleanup:#?}");
    // One region: the images are there, and every other region costs a few `aws` calls.
    let beta = [
        "cleanup",
        "--local",
        "--version",
        "2.6.10-beta1",
        "--region",
        "us-east-1",
        "--execute",
    ];
    let cleanup = repo.xtask(&beta).ok();
    assert!(
        cleanup.stdout.contains(&format!(
            "{candidate}   version 2.6.10-beta1 is a release candidate (tag candidate/2.6.10-beta1 on the remote `origin`)"
        )),
        "{cleanup:#?}"
    );
    for id in released.iter().chain([&candidate]) {
        assert!(exists(&repo, id), "{id} was removed");
    }

    // A remote that cannot be asked refuses, naming the way out; nothing is removed.
    let gone = repo.path("target/moved.git");
    repo.git(&["remote", "set-url", "origin", gone.to_str().unwrap()]);
    repo.xtask(&beta).fails(
        2,
        &[
            "refusing to remove or hide anything: the remote `origin` could not be asked",
            "fix: make the remote reachable (`git ls-remote --tags origin` must work), or add `--offline-ok`",
        ],
    );
    assert!(exists(&repo, &candidate));
    // Offline, the images' own tags still know 2.6.9 is the newest release.
    let mut offline = retire.to_vec();
    offline.push("--offline-ok");
    repo.xtask(&offline).fails(
        2,
        &["(known from 2 image(s) tagged `Version=2.6.9` in the cloud)"],
    );
    // Offline and accepted: only the remote knew the candidate, so now it goes.
    let mut offline = beta.to_vec();
    offline.push("--offline-ok");
    let cleanup = repo.xtask(&offline).ok();
    assert!(
        cleanup
            .stderr
            .contains("WARNING (`--offline-ok`): the remote `origin` was not asked"),
        "{cleanup:#?}"
    );
    assert!(!exists(&repo, &candidate), "{cleanup:#?}");
    assert!(released.iter().all(|id| exists(&repo, id)));

    // Issue 18.4: an older release protected with the cooldown. `retire --deregister` lifts the
    // protection, then waits, saying until when; the plan afterwards refuses until then.
    repo.git(&["remote", "set-url", "origin", remote]);
    let old = official_image(&repo, "comboami-2.6.8-a", "2.6.8");
    standin_aws(
        &repo,
        "us-east-1",
        &[
            "ec2",
            "enable-image-deregistration-protection",
            "--image-id",
            &old,
            "--with-cooldown",
        ],
    );
    repo.git(&["tag", "-a", "release/2.6.8", "-m", "ComboAMI 2.6.8"]);
    let deregister = [
        "retire",
        "2.6.8",
        "--deprecate",
        "--deregister",
        "--grace",
        "0",
        "--local",
    ];
    let plan = repo.xtask(&deregister).ok();
    assert!(
        plan.stdout.contains("protected from deregistration")
            && plan
                .stdout
                .contains("lift deregistration protection, deregister"),
        "{plan:#?}"
    );
    let mut execute = deregister.to_vec();
    execute.push("--execute");
    let waited = repo.xtask(&execute).fails(
        1,
        &[
            "deregistration protection lifted; AWS keeps it until ",
            "wait for AWS's 24-hour deregistration-protection cooldown",
            "fix: run the same command again after the time shown",
        ],
    );
    assert!(exists(&repo, &old), "{waited:#?}");
    let plan = repo.xtask(&deregister).ok();
    assert!(
        plan.stdout
            .contains("refused: deregistration protection is lifted, but AWS keeps it until "),
        "{plan:#?}"
    );
    repo.xtask(&["local", "down"]).ok();
}

/// Issue 18.5: on a fresh clone, 2.6.3 (released before the tool: no tag, no `Version` tags)
/// is found through `ami_ids.json`; `audit` and `retire` say what is missing and the one
/// command that adopts it, and that command works.
#[test]
fn a_release_made_before_the_tool_is_explained_and_adopted_by_the_command_shown() {
    let repo = Repo::new("legacy");
    common::small_matrix(&repo);
    repo.git_init("2.6");
    let start = repo.git(&["rev-parse", "--short=7", "HEAD"]);
    let start = start.trim();
    repo.xtask(&["local", "up"]).ok();
    let adopt = format!("cargo xtask tag 2.6.3 --commit {start}");

    let audit = repo.xtask(&["audit", "--local"]).ok();
    for needle in [
        "releases made before the tool (not adopted: no `release/*` tag lists them); their images are in AWS, never in the stand-in",
        &format!("2.6.3: `ami_ids.json` at {start} lists 32 AMIs in 8 regions (`ds0_utils.py` holds 2.6.3 there)"),
        "  missing: a tag: neither `release/2.6.3` nor a plain `2.6.3`",
        &format!("  adopt:   `{adopt}`"),
        "audit clean",
    ] {
        assert!(audit.stdout.contains(needle), "{needle}\n{audit:#?}");
    }
    assert!(!audit.stdout.contains("in no `release/*`"), "{audit:#?}");

    let retire = repo.xtask(&["retire", "2.6.3", "--local"]).ok();
    assert!(
        retire
            .stderr
            .contains("note: 2.6.3 is a release made before the tool"),
        "{retire:#?}"
    );
    assert!(retire.stderr.contains(&adopt), "{retire:#?}");
    assert!(
        retire.stdout.contains("retire 2.6.3: 32 image(s)"),
        "{retire:#?}"
    );

    // Another version on that commit is not its release: nothing vouches for it.
    repo.xtask(&["tag", "2.7.0", "--commit", start]).fails(
        2,
        &[
            "holds 2.6.3 there, not 2.7.0, and neither a plain tag `2.7.0` nor the message of",
            "nothing was changed",
        ],
    );
    assert_eq!(repo.git(&["tag", "--list"]), "");

    // The command shown adopts it: a `release/2.6.3` tag on that commit listing its AMIs.
    let args: Vec<&str> = adopt.split(' ').skip(2).collect();
    repo.xtask(&args).ok();
    let message = repo.git(&["tag", "-l", "--format=%(contents)", "release/2.6.3"]);
    assert_eq!(message.matches(" ami-").count(), 32, "{message}");
    assert!(
        message.contains(&format!(
            "Adopted: a release made before the tool (at commit {start})"
        )),
        "{message}"
    );
    // Adopted, its images are still the cloud's, never the stand-in's: the audit stays clean.
    let audit = repo.xtask(&["audit", "--local"]).ok();
    assert!(
        !audit.stdout.contains("releases made before the tool")
            && audit.stdout.contains("audit clean"),
        "{audit:#?}"
    );
    repo.xtask(&["local", "down"]).ok();
}
