//! How many `aws` processes a command starts: each costs about half a second of CPU, so the
//! cloud preflight batches its questions. `XTASK_AWS_LOG` makes every call append a line.

use crate::common;
use common::{Repo, RunExt};
use std::collections::BTreeMap;

/// The calls logged in `log`, counted by region and command (`ec2 describe-images`).
fn calls(log: &std::path::Path) -> BTreeMap<(String, String), usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counted = BTreeMap::new();
    for line in text.lines() {
        let (region, command) = line.split_once(' ').expect("REGION COMMAND");
        *counted
            .entry((region.to_string(), command.to_string()))
            .or_default() += 1;
    }
    counted
}

/// The matrix as `cargo xtask base-images --update` leaves it: every base image's name recorded
/// (here a made-up one; the stand-in seeds each base image under the name the matrix records).
fn record_base_names(repo: &Repo) {
    let mut matrix: serde_json::Value =
        serde_json::from_str(&repo.read("build/images.json")).unwrap();
    for row in matrix["images"].as_array_mut().unwrap() {
        for field in ["instance_store_ami", "ebs_ami"] {
            if let Some(id) = row[field].as_str().map(String::from) {
                row[format!("{field}_name")] = format!("ubuntu/images/base-{id}").into();
            }
        }
    }
    repo.write(
        "build/images.json",
        &serde_json::to_string_pretty(&matrix).unwrap(),
    );
}

/// The floor, 25 calls for 32 builders in 8 regions: the identity once, and per region one
/// `describe-images` (by name: the base images and the planned names together), the
/// block-public-access state (a per-region setting with its own call) and the bundle bucket's
/// ownership controls (a new version's bucket, one per region: whether it is free, ours or
/// someone else's can only be asked per bucket). The 16 would need dropping one of
/// those checks.
#[test]
fn an_official_local_preflight_with_named_base_images_asks_each_region_three_questions() {
    let repo = Repo::new("aws-calls-named");
    record_base_names(&repo);
    let log = repo.path("aws-calls.log");
    // Credentials of another account fail the preflight after every question was asked, and
    // nothing is launched.
    let run = repo
        .command_in(".", &["publish", "--local", "--yes"])
        .env("XTASK_AWS_LOG", &log)
        .env("XTASK_LOCAL_ACCOUNT", "111122223333")
        .stdin(std::process::Stdio::null())
        .run()
        .fails(2, &["FAIL  aws identity", "nothing was launched"]);
    // The one question by name found every base image and no taken name.
    for needle in ["ok    base AMIs", "ok    AMI names"] {
        assert!(run.stderr.contains(needle), "lacks {needle:?}:\n{run:#?}");
    }
    let counted = calls(&log);
    let total: usize = counted.values().sum();
    let matrix: serde_json::Value = serde_json::from_str(&repo.read("build/images.json")).unwrap();
    let regions: std::collections::BTreeSet<&str> = matrix["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["enabled"] != false)
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions.len(), 8, "the matrix changed: adjust the counts");
    let of = |command: &str| -> usize {
        counted
            .iter()
            .filter(|((_, c), _)| c == command)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(of("sts get-caller-identity"), 1, "{counted:#?}\n{run:#?}");
    for region in &regions {
        let here = |command: &str| counted.get(&(region.to_string(), command.into()));
        for command in [
            "ec2 describe-images",
            "ec2 get-image-block-public-access-state",
            "s3api get-bucket-ownership-controls",
        ] {
            assert_eq!(here(command), Some(&1), "{region} {command}: {counted:#?}");
        }
    }
    // None of the buckets exists yet, so the bucket list is not asked.
    assert_eq!(total, 1 + 3 * 8, "{counted:#?}");
}

/// A bucket that exists costs one question more for all buckets together: the account's
/// bucket list, which names its region. Here the bucket of a one-builder test build exists in
/// the wrong region with ACLs disabled, and the preflight names both. Its base image is
/// deprecated upstream, which AWS hides unless asked for: it still counts as there.
#[test]
fn an_existing_bucket_adds_one_bucket_list_and_a_deprecated_base_image_still_counts() {
    let repo = Repo::new("aws-calls-bucket");
    repo.xtask(&["local", "up"]).ok();
    let state: serde_json::Value =
        serde_json::from_str(&repo.read("target/standin/state.json")).unwrap();
    let endpoint = format!("http://127.0.0.1:{}", state["moto_port"]);
    let bucket = "comboami-test-2.6.3-us-east-1";
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', region_name='eu-west-1', endpoint_url={endpoint:?}, aws_access_key_id='x', aws_secret_access_key='x')\n\
         s3.create_bucket(Bucket={bucket:?}, CreateBucketConfiguration={{'LocationConstraint': 'eu-west-1'}})\n\
         s3.put_bucket_ownership_controls(Bucket={bucket:?}, OwnershipControls={{'Rules': [{{'ObjectOwnership': 'BucketOwnerEnforced'}}]}})\n"
    );
    let made = std::process::Command::new(common::standin_venv().join("bin/python"))
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let log = repo.path("aws-calls.log");
    let run = repo
        .command_in(
            ".",
            &["test-instance", "--local", "--only", "us-east-1-1404-hvm"],
        )
        .env("XTASK_AWS_LOG", &log)
        .env("XTASK_LOCAL_DEPRECATED_AMI", "ami-eb6b8480")
        .stdin(std::process::Stdio::null())
        .run()
        .fails(
            2,
            &[
                "ok    base AMIs",
                "FAIL  buckets",
                "is in eu-west-1,",
                "has ACLs disabled",
                "nothing was launched",
            ],
        );
    repo.xtask(&["local", "down"]).ok();
    let counted = calls(&log);
    let here = |command: &str| counted.get(&("us-east-1".to_string(), command.into()));
    assert_eq!(
        here("s3api get-bucket-ownership-controls"),
        Some(&1),
        "{counted:#?}\n{run:#?}"
    );
    assert_eq!(here("s3api list-buckets"), Some(&1), "{counted:#?}");
    // The identity, the base AMI and the taken names (the shipped matrix records no base
    // names: two questions), the bucket and the list.
    assert_eq!(counted.values().sum::<usize>(), 5, "{counted:#?}");
}
