//! Issues 17.7, 18.1 and 18.2 against the local stand-in: an official run's images stay private until
//! every builder is proven, then all are made public and protected at once; every image carries
//! its verdict, its report is stored in S3, and a rejected or unproven image is never adopted.

use crate::common;

use common::{standin_aws, BuildDoc, Repo, RunExt, RunRecord};
use serde_json::Value;
use std::collections::BTreeMap;

const ONLY: &str = "us-east-1-1404-hvm,us-east-1-1204-pv,eu-west-1-1204-pv";

/// The image `ami` as the stand-in describes it.
fn image(repo: &Repo, region: &str, ami: &str) -> Value {
    let answer = standin_aws(
        repo,
        region,
        &["ec2", "describe-images", "--image-ids", ami],
    );
    answer["Images"][0].clone()
}

fn tags(image: &Value) -> BTreeMap<String, String> {
    image["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_string(),
                t["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sha256(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn region_of(builder: &str) -> &'static str {
    if builder.starts_with("eu-west-1") {
        "eu-west-1"
    } else {
        "us-east-1"
    }
}

#[test]
fn nothing_is_public_until_every_builder_is_proven_then_all_at_once_on_any_machine() {
    let repo = Repo::new("private-until-proven");
    repo.git_init("2.6");
    repo.xtask(&["local", "up"]).ok();
    let first = repo
        .command_in(
            ".",
            &["publish", "--local", "--yes", "--only", ONLY, "--json"],
        )
        .env("XTASK_LOCAL_FAIL", "eu-west-1-1204-pv")
        .run();
    assert_eq!(first.code, 1, "{first:#?}");
    let doc: BuildDoc = first.doc();
    let id = doc.run_id.clone();
    assert_eq!(doc.failed, ["eu-west-1-1204-pv"]);
    assert!(
        first
            .all()
            .contains("not public: none of the 2 image(s) was made public"),
        "{}",
        first.all()
    );
    let scratch = format!("build/runs/{id}/ami_ids.json");
    assert_eq!(
        repo.read(&scratch),
        repo.read("ami_ids.json"),
        "nothing is merged while a builder is not proven"
    );
    for builder in ["us-east-1-1404-hvm", "us-east-1-1204-pv"] {
        let ami = doc.run.builders[builder].ami().to_string();
        let shown = image(&repo, "us-east-1", &ami);
        assert_eq!(
            shown["Public"], false,
            "{builder} {ami} is private: {shown}"
        );
        // The verdict: the digest of the report, which is also stored in S3 by AMI id.
        let report = repo.read(&format!("build/runs/{id}/reports/{builder}.json"));
        assert_eq!(
            tags(&shown).get("Verified"),
            Some(&sha256(&report)),
            "{builder}: {shown}"
        );
        let stored = standin_aws(
            &repo,
            "us-east-1",
            &[
                "s3api",
                "head-object",
                "--bucket",
                "comboami-2.6.3-us-east-1",
                "--key",
                &format!("image-reports/{ami}.json"),
            ],
        );
        assert_eq!(
            stored["ContentLength"].as_u64(),
            Some(report.len() as u64),
            "{builder}: the stored report is the run folder's"
        );
    }

    finish_on_another_machine(&repo, &doc);
}

#[test]
fn a_rejected_image_is_never_adopted_and_an_unproven_one_is_rebuilt() {
    let repo = Repo::new("verdicts");
    repo.xtask(&["local", "up"]).ok();
    // One builder keeps failing throughout, so nothing is ever made public here.
    let publish = |repo: &Repo, args: &[&str], wrong: &str| {
        let mut all = vec!["publish", "--local", "--yes"];
        all.extend_from_slice(args);
        repo.command_in(".", &all)
            .env("XTASK_LOCAL_FAIL", "eu-west-1-1204-pv")
            .env("XTASK_LOCAL_WRONG_VERSION", wrong)
            .run()
    };
    let first = publish(&repo, &["--only", ONLY, "--json"], "us-east-1-1404-hvm");
    assert_eq!(first.code, 1, "{first:#?}");
    let doc: BuildDoc = first.doc();
    let id = doc.run_id.clone();
    let rejected = doc.run.builders["us-east-1-1404-hvm"].ami().to_string();
    let shown = image(&repo, "us-east-1", &rejected);
    assert_eq!(shown["Public"], false);
    let reason = tags(&shown).get("Rejected").cloned().unwrap_or_default();
    assert!(reason.contains("2.6.3-wrong"), "{shown}");

    // The same rehearsal again: the rejected image is removed, never adopted, and the builder
    // rebuilt (and rejected again).
    let again = publish(&repo, &["--resume"], "us-east-1-1404-hvm");
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(
        again.stderr.contains(&format!("{rejected} was rejected")),
        "{}",
        again.stderr
    );
    let gone = standin_aws(
        &repo,
        "us-east-1",
        &["ec2", "describe-images", "--image-ids", &rejected],
    );
    assert!(
        gone["Images"].as_array().is_none_or(|i| i.is_empty()),
        "{gone}"
    );
    let scratch = format!("build/runs/{id}/ami_ids.json");
    assert_eq!(repo.read(&scratch), repo.read("ami_ids.json"));

    // An image the run made but did not record is adopted only when its verdict holds: one
    // with a verdict that is not its report's digest is rebuilt.
    let third = publish(&repo, &["--resume"], "");
    assert_eq!(third.code, 1, "{third:#?}");
    let rec = RunRecord::read(&repo.root, &id);
    let kept = rec.builders["us-east-1-1204-pv"].ami().to_string();
    let forged = rec.builders["us-east-1-1404-hvm"].ami().to_string();
    standin_aws(
        &repo,
        "us-east-1",
        &[
            "ec2",
            "create-tags",
            "--resources",
            &forged,
            "--tags",
            &format!("Key=Verified,Value={}", "0".repeat(64)),
        ],
    );
    // As if the command had been killed before it recorded either builder.
    let path = repo.path(&format!("build/runs/{id}/run.json"));
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for builder in ["us-east-1-1404-hvm", "us-east-1-1204-pv"] {
        record["builders"][builder]["state"] = "failed".into();
    }
    std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap()).unwrap();
    let last = publish(&repo, &["--resume"], "");
    assert_eq!(last.code, 1, "{last:#?}");
    assert!(
        last.stderr
            .contains(&format!("adopted us-east-1-1204-pv: its image {kept}")),
        "{}",
        last.stderr
    );
    assert!(
        last.stderr.contains(&format!(
            "{forged} is not adopted: its image report is not the one it was verified with"
        )),
        "{}",
        last.stderr
    );
    let rec = RunRecord::read(&repo.root, &id);
    assert_eq!(rec.builders["us-east-1-1204-pv"].ami(), kept);
    assert_ne!(rec.builders["us-east-1-1404-hvm"].ami(), forged);
    assert_eq!(image(&repo, "us-east-1", &kept)["Public"], false);
    assert_eq!(repo.read(&scratch), repo.read("ami_ids.json"));
}

/// Issue 18.2 for `publish`: the stopped publish is finished on a machine without its run folder:
/// `--resume` there says what to run instead; at another commit the images are refused (they
/// bake another commit); at their commit they are found by their tags and adopted once their
/// verdicts hold, the failed builder is built, and all are made public, protected and merged.
fn finish_on_another_machine(repo: &Repo, doc: &BuildDoc) {
    let publish = ["publish", "--local", "--yes", "--only", ONLY, "--json"];
    let built: BTreeMap<String, String> = ["us-east-1-1404-hvm", "us-east-1-1204-pv"]
        .iter()
        .map(|b| (b.to_string(), doc.run.builders[*b].ami().to_string()))
        .collect();
    let baked = repo.git(&["rev-parse", "HEAD"]).trim().to_string();

    // Another machine: no run folder to resume, and the refusal says what finishes it.
    std::fs::remove_dir_all(repo.path("build/runs")).unwrap();
    repo.xtask(&["publish", "--local", "--yes", "--resume"])
        .fails(
            2,
            &[
                "no local official run to resume in `build/runs/`",
                "run `cargo xtask publish --local --yes` without `--resume`: it adopts the images",
            ],
        );

    // At another commit there: the images are not this run's, and nothing starts.
    repo.write("NOTES.txt", "a later change\n");
    repo.git(&["add", "NOTES.txt"]);
    repo.git(&["commit", "--quiet", "--message", "Later"]);
    let later = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let refused = repo
        .command_in(".", &publish)
        .run()
        .fails(2, &["FAIL  AMI names", "nothing was launched"]);
    let flat = refused.flat_stderr();
    for needle in [
        format!(
            "it bakes commit {}, not this run's {}",
            &baked[..7],
            &later[..7]
        ),
        format!("run the same command at that commit (`git switch --detach {baked}`, and `git switch -` back afterwards)"),
    ] {
        assert!(
            flat.contains(&needle),
            "lacks {needle:?}:\n{}",
            refused.stderr
        );
    }

    // At the commit the images bake: adopted, the failed builder built, all made public.
    repo.git(&["reset", "--quiet", "--hard", &baked]);
    let _ = std::fs::remove_dir_all(repo.path("build/runs"));
    let second = repo.xtask(&publish).ok();
    let doc: BuildDoc = second.doc();
    assert!(doc.ok, "{second:#?}");
    let flat = second.flat_stderr();
    for needle in [
        "2 image(s) of this version already exist",
        "so 1 of the 3 planned instance(s) will launch: 2 image(s) exist and are reviewed first",
    ] {
        assert!(
            flat.contains(needle),
            "lacks {needle:?}:\n{}",
            second.stderr
        );
    }
    for (builder, ami) in &built {
        assert_eq!(doc.run.builders[builder].ami(), ami, "{builder}");
        let adopted = format!("adopted {builder}: its image {ami}");
        assert!(second.stderr.contains(&adopted), "{}", second.stderr);
    }
    assert!(
        second
            .all()
            .contains("made 3 image(s) public and protected"),
        "{second:#?}"
    );
    let merged = repo.read(&format!("build/runs/{}/ami_ids.json", doc.run_id));
    for (builder, b) in &doc.run.builders {
        let shown = image(repo, region_of(builder), b.ami());
        assert_eq!(shown["Public"], true, "{builder}: {shown}");
        assert_eq!(
            shown["DeregistrationProtection"], "enabled-with-cooldown",
            "{builder}: {shown}"
        );
        assert_eq!(tags(&shown).get("Commit"), Some(&baked), "{builder}");
        assert!(merged.contains(b.ami()), "{builder} is merged");
    }
}
