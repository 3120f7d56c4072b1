//! Issue 5: `cleanup` against the local AWS stand-in kept by `local up`: what test builds made
//! is listed exactly, `--execute` removes it, a second run finds nothing, and an image listed in
//! `ami_ids.json` survives every filter.

use crate::common;

use common::{BuildDoc, CleanupDoc, Repo};
use serde_json::Value;

/// The AMIs a build made, from its `--json` document.
fn amis(doc: &BuildDoc) -> Vec<String> {
    doc.run
        .builders
        .values()
        .map(|b| b.ami().to_string())
        .collect()
}

/// Asks the stand-in in the test region (the harness's helper, for every call here).
fn aws(repo: &Repo, args: &[&str]) -> Value {
    common::standin_aws(repo, "us-east-1", args)
}

fn image_ids(repo: &Repo) -> Vec<String> {
    let mut ids: Vec<String> = aws(repo, &["ec2", "describe-images", "--owners", "self"])["Images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ImageId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn cleanup_lists_exactly_what_test_builds_made_and_execute_removes_it() {
    let repo = Repo::new("cleanup");
    repo.xtask(&["local", "up"]).ok();
    let ebs_run = repo.xtask(&["test-ebs", "--local", "--json"]).ok();
    let ebs: BuildDoc = ebs_run.doc();
    let ebs_id = ebs.run_id.clone();
    // The hint after a local test build is the command that cleans the stand-in up.
    assert!(
        ebs_run.stderr.contains(&format!(
            "remove them with `cargo xtask cleanup --run {ebs_id} --local --execute`"
        )),
        "{}",
        ebs_run.stderr
    );
    let instance: BuildDoc = repo
        .xtask(&["test-instance", "--local", "--json"])
        .ok()
        .doc();
    let instance_id = instance.run_id.clone();
    let (ebs_amis, instance_amis) = (amis(&ebs), amis(&instance));
    assert_eq!(image_ids(&repo).len(), 8);

    // One test image is "published": listed in `ami_ids.json`.
    let published = ebs_amis[0].clone();
    let registry = repo.read("ami_ids.json");
    let first_id = registry
        .split("\"id\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    repo.write("ami_ids.json", &registry.replacen(&first_id, &published, 1));

    // Refusals: no filter, a kind that is not a test kind, no stand-in for `--local` elsewhere.
    repo.xtask(&["cleanup", "--local", "--execute"]).fails(
        2,
        &[
            "cleanup needs a filter",
            "everything the project ever built",
        ],
    );
    repo.xtask(&["cleanup", "--local", "--kind", "official"])
        .fails(2, &["not a test kind"]);

    // The listing of one run: exactly its images, snapshots and bundle folders; nothing deleted.
    let list = repo
        .xtask(&["cleanup", "--local", "--run", &instance_id])
        .ok();
    for ami in &instance_amis {
        assert!(
            list.stdout.contains(&format!("AMI       {ami}")),
            "{}",
            list.stdout
        );
    }
    for ami in &ebs_amis {
        assert!(!list.stdout.contains(ami.as_str()), "{}", list.stdout);
    }
    for builder in instance.run.builders.values() {
        let bundle = builder.bundle.as_deref().unwrap();
        assert!(
            list.stdout
                .contains(&format!("bundle    s3://{bundle}/  (1 object(s))")),
            "{}",
            list.stdout
        );
    }
    assert!(
        list.stdout.contains(
            "found 4 AMI(s), 4 snapshot(s), 0 volume(s), 4 bundle folder(s) in 1 region(s)"
        ),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("nothing was deleted"));
    assert_eq!(image_ids(&repo).len(), 8, "a listing deletes nothing");

    // `--execute` by kind: every test-ebs image but the published one.
    let run = repo
        .xtask(&["cleanup", "--local", "--kind", "test-ebs", "--execute"])
        .ok();
    assert!(
        run.stdout.contains(&format!("KEEP      {published}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("kept, never deleted: {published} (us-east-1)")),
        "{}",
        run.stderr
    );
    for ami in &ebs_amis[1..] {
        assert!(
            run.stdout
                .contains(&format!("us-east-1: deregistered {ami}")),
            "{}",
            run.stdout
        );
    }
    // `--execute` by run: the instance-store images, their bundles, and the emptied bucket.
    let run = repo
        .xtask(&["cleanup", "--local", "--run", &instance_id, "--execute"])
        .ok();
    assert!(
        run.stdout
            .contains("deleted empty bucket comboami-test-2.6.3-us-east-1"),
        "{}\nstderr: {}\nleft in the bucket: {}",
        run.stdout,
        run.stderr,
        aws(
            &repo,
            &[
                "s3api",
                "list-objects-v2",
                "--bucket",
                "comboami-test-2.6.3-us-east-1"
            ]
        )
    );
    assert_eq!(image_ids(&repo), std::slice::from_ref(&published));
    let buckets = aws(&repo, &["s3api", "list-buckets"]);
    assert_eq!(buckets["Buckets"], serde_json::json!([]), "{buckets}");
    // The snapshots left are those of the published image only.
    let snapshots = aws(
        &repo,
        &[
            "ec2",
            "describe-snapshots",
            "--owner-ids",
            "self",
            "--filters",
            "Name=tag:Project,Values=comboami",
        ],
    );
    assert_eq!(
        snapshots["Snapshots"].as_array().unwrap().len(),
        1,
        "{snapshots}"
    );

    // A second run finds nothing (the published image is only named, never deleted).
    for filter in [
        &["--run", instance_id.as_str()][..],
        &["--kind", "test-instance"][..],
        &["--kind", "test-ebs"][..],
        // (one region: a version is searched for in every region of the matrix otherwise)
        &["--version", "2.6.3", "--region", "us-east-1"][..],
        &["--run", ebs_id.as_str()][..],
    ] {
        let mut args = vec!["cleanup", "--local", "--execute"];
        args.extend(filter);
        let run = repo.xtask(&args).ok();
        assert!(
            !run.stdout.contains("deregistered"),
            "{filter:?}: {}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("  AMI  "),
            "{filter:?}: {}",
            run.stdout
        );
    }
    assert_eq!(image_ids(&repo), [published]);
}

/// Issue 19: what a killed run's Packer left running (an instance of the run, its `packer_…`
/// security group and key pair) is in `cleanup --run RUN --json`'s document, typed, and
/// `--execute` removes it. Made here with three `aws` calls instead of a build and a kill -9.
#[test]
fn cleanup_json_lists_the_instances_groups_and_key_pairs_a_killed_run_left() {
    let repo = Repo::new("cleanup-launched");
    repo.xtask(&["local", "up"]).ok();
    let run = "official-local-20261129-120000";
    let name = "packer_6b0e2a4c-1f7e-4d8e-9c3a-0f2b4d6e8a1c";
    let group = aws(
        &repo,
        &[
            "ec2",
            "create-security-group",
            "--group-name",
            name,
            "--description",
            "Temporary group for Packer",
        ],
    )["GroupId"]
        .as_str()
        .unwrap()
        .to_string();
    aws(&repo, &["ec2", "create-key-pair", "--key-name", name]);
    let tags = format!(
        "ResourceType=instance,Tags=[{{Key=RunId,Value={run}}},{{Key=Name,Value=us-east-1-1204-pv}}]"
    );
    let launched = aws(
        &repo,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-2aa0ba42",
            "--count",
            "1",
            "--instance-type",
            "m3.medium",
            "--security-group-ids",
            &group,
            "--key-name",
            name,
            "--tag-specifications",
            &tags,
        ],
    );
    let instance = launched["Instances"][0]["InstanceId"].as_str().unwrap();
    let listing = [
        "cleanup",
        "--run",
        run,
        "--region",
        "us-east-1",
        "--local",
        "--json",
    ];
    let doc: CleanupDoc = repo.xtask(&listing).ok().doc();
    assert!(doc.ok && !doc.execute, "{doc:#?}");
    let [region] = doc.launched.as_slice() else {
        panic!("not one region of leftovers: {doc:#?}");
    };
    assert_eq!(region.region, "us-east-1");
    let ids: Vec<(&str, &str, &str)> = region
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.state.as_str(), i.builder.as_str()))
        .collect();
    assert_eq!(ids, [(instance, "running", "us-east-1-1204-pv")]);
    assert_eq!(
        region.security_groups.get(&group).map(String::as_str),
        Some(name)
    );
    assert_eq!(region.key_pairs, [name]);

    let removed = [&listing[..], &["--execute"]].concat();
    let doc: CleanupDoc = repo.xtask(&removed).ok().doc();
    assert!(doc.ok && doc.execute && doc.launched.len() == 1, "{doc:#?}");
    // What `--execute` removed is gone: the same listing finds nothing left.
    let doc: CleanupDoc = repo.xtask(&listing).ok().doc();
    assert!(
        doc.launched.iter().all(|l| l.instances.is_empty()
            && l.security_groups.is_empty()
            && l.key_pairs.is_empty()),
        "{doc:#?}"
    );
    repo.xtask(&["local", "down"]).ok();
}
