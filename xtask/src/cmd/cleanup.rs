//! `cargo xtask cleanup`: find what matching builds left in AWS — from the run records and from
//! the tags every build puts on its images, snapshots and volumes — list it by region, and with
//! `--execute` delete it: AMIs before their snapshots, bundles before their buckets, one region's
//! failure never stopping the others. Images in `ami_ids.json` are never deleted.

use crate::aws::{Aws, Unconfigured};
use crate::cmd::PartlyFailed;
use crate::core::cleanup::{self, Bundle, Filter, RegionPlan};
use crate::core::registry::{self, REGISTRY_PATH};
use crate::runs::{self, RunRecord};
use crate::standin::Standin;
use crate::{output, project};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use xshell::Shell;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub filter: Filter,
    pub regions: Vec<String>,
    pub execute: bool,
    pub local: bool,
}

pub fn run(sh: &Shell, root: &Path, options: &Options) -> Result<()> {
    let filter = &options.filter;
    if filter.is_empty() {
        bail!(
            "cleanup needs a filter: `--run RUN`, `--version VERSION` or `--kind test-ebs|test-instance`; \
             without one it would delete everything the project ever built"
        );
    }
    if let Some(kind) = filter.kind {
        if !kind.is_test() {
            bail!("`--kind {kind}` is not a test kind: use `test-ebs` or `test-instance` (official images are removed by `--run` or `--version`)");
        }
    }
    let matrix = project::matrix(sh)?;
    // A mistyped `--region` would only end in an error from AWS, after the other regions.
    for region in project::split_names(&options.regions) {
        if let Err(e) = matrix.check_region(&region) {
            bail!("`--region {region}` is refused: {e}");
        }
    }
    let published: BTreeSet<String> = registry::ids(&project::registry(sh, REGISTRY_PATH)?)
        .into_iter()
        .map(String::from)
        .collect();
    let aws = if options.local {
        let standin = Standin::running(root).context(
            "no local stand-in is running: `--local` cleans up the stand-in that `cargo xtask local up` keeps \
             (a stand-in started by one command forgets everything when that command ends)",
        )?;
        Aws::local(&standin)
    } else {
        Aws::real(sh, root)?
    };

    let records: Vec<RunRecord> = runs::list(root)
        .into_iter()
        .filter(|r| {
            r.local == options.local && filter.matches(&r.run_id, &r.version, r.kind.as_str())
        })
        .collect();
    if let Some(run) = &filter.run {
        if records.iter().all(|r| &r.run_id != run) {
            eprintln!(
                "note: no {}run record `{run}` in `{}/`; searching by tags only",
                if options.local { "local " } else { "" },
                runs::RUNS_DIR
            );
        }
    }
    let regions = regions(&matrix, &records, options);
    eprintln!(
        "searching {} region(s) for what {} left{}: {}",
        regions.len(),
        filter.describe(),
        if options.local {
            " in the local stand-in"
        } else {
            ""
        },
        regions.iter().cloned().collect::<Vec<_>>().join(", ")
    );

    let mut plans = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for region in &regions {
        eprintln!("  {region}...");
        match discover(
            sh,
            &aws,
            &matrix.settings.project,
            region,
            filter,
            &records,
            &published,
        ) {
            Ok(plan) => plans.push(plan),
            Err(e) if e.is::<Unconfigured>() || e.chain().any(|c| c.is::<Unconfigured>()) => {
                return Err(e.context("nothing was searched or deleted"));
            }
            Err(e) => failures.push(format!("{region}: {e:#}")),
        }
    }
    let found = cleanup::render(&plans);
    if found.is_empty() && failures.is_empty() {
        output::say(format!("nothing found for {}", filter.describe()));
    } else {
        output::say(found.trim_end());
        output::say(format!("\nfound {}", cleanup::totals(&plans)));
    }
    let protected: Vec<String> = plans
        .iter()
        .flat_map(|p| {
            p.protected
                .iter()
                .map(|i| format!("{} ({})", i.id, p.region))
        })
        .collect();
    if !protected.is_empty() {
        eprintln!(
            "refusing to delete {}: listed in `{REGISTRY_PATH}`, the published release",
            protected.join(", ")
        );
    }

    if options.execute {
        for plan in plans.iter().filter(|p| !p.is_empty()) {
            failures.extend(
                delete(sh, &aws, plan)
                    .into_iter()
                    .map(|e| format!("{}: {e}", plan.region)),
            );
        }
    } else if plans
        .iter()
        .any(|p| !p.is_empty() && p.protected.len() < count(p))
    {
        output::say(
            "nothing was deleted: run the same command with `--execute` to delete the above",
        );
    }
    if options.execute && failures.is_empty() && plans.iter().any(|p| count(p) > p.protected.len())
    {
        output::say(format!(
            "\ncleanup done: deleted {}",
            cleanup::totals(&plans)
        ));
    }
    output::document(serde_json::json!({
        "command": "cleanup",
        "ok": failures.is_empty(),
        "filter": filter.describe(),
        "execute": options.execute,
        "regions": plans,
        "failures": failures,
    }));
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("error: {failure}");
        }
        return Err(anyhow::Error::new(PartlyFailed)).context(format!(
            "cleanup did not complete in every region ({} problem(s) above): fix them and run the same command again; what is gone stays gone",
            failures.len()
        ));
    }
    Ok(())
}

fn count(plan: &RegionPlan) -> usize {
    plan.images.len()
        + plan.snapshots.len()
        + plan.volumes.len()
        + plan.bundles.len()
        + plan.protected.len()
}

/// `--region` when given; else the regions of matching records, plus the test region for test
/// kinds, or every region of the matrix otherwise (tags may be anywhere the matrix builds).
fn regions(
    matrix: &crate::core::matrix::Matrix,
    records: &[RunRecord],
    options: &Options,
) -> BTreeSet<String> {
    if !options.regions.is_empty() {
        return project::split_names(&options.regions).into_iter().collect();
    }
    let mut regions: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.builders.values().map(|b| b.region.clone()))
        .collect();
    let run_known = options.filter.run.is_some() && !records.is_empty();
    match options.filter.kind {
        _ if run_known => {}
        Some(_) => {
            regions.insert(matrix.settings.test_region.clone());
        }
        None => regions.extend(matrix.images.iter().map(|i| i.region.clone())),
    }
    regions
}

fn discover(
    sh: &Shell,
    aws: &Aws,
    project: &str,
    region: &str,
    filter: &Filter,
    records: &[RunRecord],
    published: &BTreeSet<String>,
) -> Result<RegionPlan> {
    let tag_filters = filter.tag_filters(project);
    let mut args = vec!["ec2", "describe-images", "--owners", "self", "--filters"];
    args.extend(tag_filters.iter().map(String::as_str));
    let mut images =
        cleanup::parse_images(&aws.run(sh, region, &args)?).map_err(anyhow::Error::msg)?;

    // Images the records know that the tags did not find (an untagged or re-tagged image).
    let known: BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    let mut bundles: BTreeMap<(String, String), ()> = BTreeMap::new();
    let mut missing = Vec::new();
    for record in records {
        for builder in record.builders.values().filter(|b| b.region == region) {
            missing.extend(
                builder
                    .amis
                    .iter()
                    .filter(|a| a.region == region && !known.contains(a.id.as_str()))
                    .map(|a| a.id.clone()),
            );
            if let Some(location) = &builder.bundle {
                bundles.insert(cleanup::split_bundle(location), ());
            }
        }
    }
    if !missing.is_empty() {
        let ids = format!("Name=image-id,Values={}", missing.join(","));
        let found = aws.run(
            sh,
            region,
            &[
                "ec2",
                "describe-images",
                "--owners",
                "self",
                "--filters",
                &ids,
            ],
        )?;
        images.extend(cleanup::parse_images(&found).map_err(anyhow::Error::msg)?);
    }
    for image in &images {
        if let Some(location) = &image.bundle {
            bundles.insert(cleanup::split_bundle(location), ());
        }
    }

    let mut args = vec![
        "ec2",
        "describe-snapshots",
        "--owner-ids",
        "self",
        "--filters",
    ];
    args.extend(tag_filters.iter().map(String::as_str));
    let snapshots = cleanup::parse_ids(&aws.run(sh, region, &args)?, "Snapshots", "SnapshotId")
        .map_err(anyhow::Error::msg)?;
    let mut args = vec![
        "ec2",
        "describe-volumes",
        "--filters",
        "Name=status,Values=available",
    ];
    args.extend(tag_filters.iter().map(String::as_str));
    let volumes = cleanup::parse_ids(&aws.run(sh, region, &args)?, "Volumes", "VolumeId")
        .map_err(anyhow::Error::msg)?;

    let mut counted = Vec::new();
    for (bucket, prefix) in bundles.into_keys() {
        let objects = match list_prefix(sh, aws, region, &bucket, &prefix) {
            Ok(n) => n,
            // A bucket that is gone holds nothing to clean up.
            Err(e) if format!("{e:#}").contains("NoSuchBucket") => 0,
            Err(e) => return Err(e),
        };
        counted.push(Bundle {
            bucket,
            prefix,
            objects,
        });
    }
    Ok(cleanup::plan_region(
        region, images, snapshots, volumes, counted, published,
    ))
}

fn list_prefix(sh: &Shell, aws: &Aws, region: &str, bucket: &str, prefix: &str) -> Result<usize> {
    let prefix = format!("{prefix}/");
    let out = aws.run(
        sh,
        region,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            bucket,
            "--prefix",
            &prefix,
        ],
    )?;
    cleanup::count_objects(&out).map_err(anyhow::Error::msg)
}

/// Deletes one region's plan in a safe order, reporting each deletion; returns what failed.
fn delete(sh: &Shell, aws: &Aws, plan: &RegionPlan) -> Vec<String> {
    let mut failures = Vec::new();
    let step = |what: String, args: &[&str], failures: &mut Vec<String>| match aws.run(
        sh,
        &plan.region,
        args,
    ) {
        Ok(_) => {
            output::say(format!("{}: {what}", plan.region));
            true
        }
        Err(e) => {
            failures.push(format!("{e:#}"));
            false
        }
    };
    // A snapshot cannot be deleted while an image uses it: images go first, and the snapshots
    // of an image that could not be deregistered stay.
    let mut blocked = BTreeSet::new();
    for image in &plan.images {
        let done = step(
            format!("deregistered {} ({})", image.id, image.name),
            &["ec2", "deregister-image", "--image-id", &image.id],
            &mut failures,
        );
        if !done {
            blocked.extend(image.snapshots.iter().cloned());
        }
    }
    for snapshot in plan.snapshots.iter().filter(|s| !blocked.contains(*s)) {
        step(
            format!("deleted snapshot {snapshot}"),
            &["ec2", "delete-snapshot", "--snapshot-id", snapshot],
            &mut failures,
        );
    }
    for volume in &plan.volumes {
        step(
            format!("deleted volume {volume}"),
            &["ec2", "delete-volume", "--volume-id", volume],
            &mut failures,
        );
    }
    for bundle in &plan.bundles {
        let url = format!("s3://{}/{}/", bundle.bucket, bundle.prefix);
        step(
            format!("deleted {url} ({} object(s))", bundle.objects),
            &["s3", "rm", "--recursive", "--only-show-errors", &url],
            &mut failures,
        );
    }
    for bucket in plan.buckets() {
        // Only a bucket that ends up empty goes: it may hold other builds' bundles.
        let left = aws
            .run(
                sh,
                &plan.region,
                &[
                    "s3api",
                    "list-objects-v2",
                    "--bucket",
                    bucket,
                    "--max-keys",
                    "1",
                ],
            )
            .and_then(|out| cleanup::count_objects(&out).map_err(anyhow::Error::msg));
        match left {
            Ok(0) => {
                step(
                    format!("deleted empty bucket {bucket}"),
                    &["s3api", "delete-bucket", "--bucket", bucket],
                    &mut failures,
                );
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    failures
}
