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

#[test]
fn an_official_local_preflight_asks_each_region_a_fixed_few_questions() {
    let repo = Repo::new("aws-calls");
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
        // The base AMIs by id, and our images with a planned name: AWS joins filters with
        // AND, so these are two questions.
        assert_eq!(
            here("ec2 describe-images"),
            Some(&2),
            "{region}: {counted:#?}"
        );
        assert_eq!(
            here("ec2 get-image-block-public-access-state"),
            Some(&1),
            "{region}: {counted:#?}"
        );
    }
    // One bundle bucket per region; none exists yet, so no ownership question follows.
    assert_eq!(of("s3api head-bucket"), 8, "{counted:#?}");
    assert_eq!(total, 1 + 3 * 8 + 8, "{counted:#?}");
}
