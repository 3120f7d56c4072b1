//! Finding and removing what a run's Packer launched and could not delete because it died with
//! its command (see `pure::leftovers`): instances first, then their security groups and key
//! pairs, which AWS refuses to delete while an instance uses them.

use crate::aws::{self, Aws};
use crate::output;
use crate::pure::leftovers::{self, Launched, Named};
use crate::runs::RunRecord;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use xshell::Shell;

/// The run's leftovers in each region of `regions` (the run's own regions when empty); only
/// regions holding something are returned.
pub fn find(
    aws: &Aws,
    root: &Path,
    run: &str,
    records: &[RunRecord],
    regions: &[String],
) -> Result<Vec<Launched>> {
    let record = records.iter().find(|r| r.run_id == run);
    let builder_regions: BTreeMap<String, String> = record
        .map(|r| {
            r.builders
                .iter()
                .map(|(name, b)| (name.clone(), b.region.clone()))
                .collect()
        })
        .unwrap_or_default();
    let output: String = record
        .map(|r| {
            r.attempts
                .iter()
                .filter_map(|a| std::fs::read_to_string(root.join(&a.output_log)).ok())
                .collect()
        })
        .unwrap_or_default();
    let named = leftovers::named_in_output(&output, &builder_regions);
    let regions: Vec<String> = if regions.is_empty() {
        builder_regions
            .values()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        regions.to_vec()
    };
    let found = aws::each_region(&regions, |sh, region| {
        let named = named.get(region).cloned().unwrap_or_default();
        find_region(sh, aws, region, run, &named)
    });
    let mut launched = Vec::new();
    for found in found {
        let found = found?;
        if !found.is_empty() {
            launched.push(found);
        }
    }
    Ok(launched)
}

fn find_region(sh: &Shell, aws: &Aws, region: &str, run: &str, named: &Named) -> Result<Launched> {
    let tag = format!("Name=tag:RunId,Values={run}");
    let instances = aws.run(
        sh,
        region,
        &["ec2", "describe-instances", "--filters", &tag],
    )?;
    let groups = aws.run(sh, region, &["ec2", "describe-security-groups"])?;
    let keys = aws.run(sh, region, &["ec2", "describe-key-pairs"])?;
    leftovers::plan_region(region, named, &instances, &groups, &keys)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.what, e.detail))
        .with_context(|| format!("cannot read what run `{run}` left in {region}"))
}

/// Removes every region's leftovers (concurrently), saying each removal; returns what failed.
pub fn remove(aws: &Aws, launched: &[Launched]) -> Vec<String> {
    let regions: Vec<String> = launched.iter().map(|l| l.region.clone()).collect();
    let failures = aws::each_region(&regions, |sh, region| {
        let found = launched
            .iter()
            .find(|l| l.region == region)
            .expect("a found region");
        remove_region(sh, aws, found)
    });
    failures.into_iter().flatten().collect()
}

fn remove_region(sh: &Shell, aws: &Aws, found: &Launched) -> Vec<String> {
    let region = found.region.as_str();
    let mut failures = Vec::new();
    let ids: Vec<&str> = found.instances.iter().map(|i| i.id.as_str()).collect();
    if !ids.is_empty() {
        let mut args = vec!["ec2", "terminate-instances", "--instance-ids"];
        args.extend(&ids);
        match aws.run(sh, region, &args) {
            Ok(_) => {
                for id in &ids {
                    output::say(format!("{region}: terminating instance {id}"));
                }
                if let Err(e) = wait_terminated(sh, aws, region, &ids) {
                    failures.push(format!("{region}: {e:#}"));
                }
            }
            Err(e) => failures.push(format!("{region}: {e:#}")),
        }
    }
    // A group stays in use for a moment after its instance ends: a few tries.
    for (id, name) in &found.security_groups {
        let args = ["ec2", "delete-security-group", "--group-id", id.as_str()];
        match retry(Duration::from_secs(60), || aws.run(sh, region, &args)) {
            Ok(_) => output::say(format!("{region}: deleted security group {id} ({name})")),
            Err(e) => failures.push(format!("{region}: {e:#}")),
        }
    }
    for key in &found.key_pairs {
        match aws.run(sh, region, &["ec2", "delete-key-pair", "--key-name", key]) {
            Ok(_) => output::say(format!("{region}: deleted key pair {key}")),
            Err(e) => failures.push(format!("{region}: {e:#}")),
        }
    }
    failures
}

/// Waits (at most 5 minutes) until AWS says every one of `ids` is terminated.
fn wait_terminated(sh: &Shell, aws: &Aws, region: &str, ids: &[&str]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut args = vec!["ec2", "describe-instances", "--instance-ids"];
    args.extend(ids);
    loop {
        let answer = aws.run(sh, region, &args)?;
        let left = leftovers::plan_region(region, &Named::default(), &answer, "{}", "{}")
            .map_err(|e| anyhow::anyhow!("{}: {}", e.what, e.detail))?;
        if left.instances.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "instance(s) {} still not terminated after 5 minutes; their security groups stay: run the same command again later",
                ids.join(", ")
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn retry<T>(patience: Duration, mut work: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + patience;
    loop {
        match work() {
            Ok(done) => return Ok(done),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_secs(3)),
        }
    }
}
