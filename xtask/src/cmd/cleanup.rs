//! `cargo xtask cleanup`: find what matching builds left in AWS — from the run records and from
//! the tags every build puts on its images, snapshots and volumes — list it by region, and with
//! `--execute` delete it: AMIs before their snapshots, bundles before their buckets, one region's
//! failure never stopping the others. Regions are searched and cleaned concurrently.
//!
//! Never deleted, whatever the filter: an image in `ami_ids.json` now or in any committed
//! version of it, listed in a `release/*` or `candidate/*` tag, or public — nor its snapshots
//! and bundle. Images in use are skipped (unless `--even-if-used`); `--keep` and `--older-than`
//! keep the newest runs.

use crate::aws::{self, Aws, Unconfigured};
use crate::cmd::lifecycle;
use crate::core::cleanup::{self, Bundle, Filter, Found, RegionPlan, Rules};
use crate::core::ec2::ImageQuery;
use crate::core::registry::REGISTRY_PATH;
use crate::core::time;
use crate::error::PartlyFailed;
use crate::runs::{self, RunRecord};
use crate::{output, project};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use xshell::Shell;

/// List (and with `--execute` delete) what matching builds left in AWS: AMIs, snapshots, volumes, S3 bundles.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask cleanup --kind test-ebs\n  cargo xtask cleanup --kind test-ebs --keep 3 --older-than 7d --execute\n  cargo xtask cleanup --run test-ebs-1732000000 --local"
)]
pub struct Cleanup {
    /// Only what this run made (a folder name of `build/runs/`).
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Only images of this version.
    #[arg(long, value_name = "VERSION")]
    version: Option<String>,
    /// Only test images of this kind: test-ebs or test-instance.
    #[arg(long, value_name = "KIND")]
    kind: Option<crate::core::template::Kind>,
    /// Only these regions (comma-separated or repeated).
    #[arg(long, value_name = "REGION", num_args = 1..)]
    region: Vec<String>,
    /// Keep the newest N runs per kind and region.
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Only what is older than DURATION (`7d`, `12h`).
    #[arg(long, value_name = "DURATION")]
    older_than: Option<String>,
    /// Delete images even if instances or launch templates use them.
    #[arg(long)]
    even_if_used: bool,
    /// Delete what is listed (without it, nothing is deleted).
    #[arg(long)]
    execute: bool,
    /// Clean up the local stand-in kept by `cargo xtask local up`.
    #[arg(long)]
    local: bool,
    /// Print what was found (and deleted) as one JSON document on stdout (everything else
    /// goes to stderr).
    #[arg(long)]
    json: bool,
}

impl crate::cmd::Cmd for Cleanup {
    const NAME: &'static str = "cleanup";
    fn lock(&self) -> Option<crate::lock::Busy> {
        self.execute.then_some(crate::lock::Busy::Refuse)
    }
    fn json(&self) -> bool {
        self.json
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        let options = Options {
            filter: Filter {
                run: self.run,
                version: self.version,
                kind: self.kind,
            },
            regions: self.region,
            execute: self.execute,
            local: self.local,
            keep: self.keep,
            older_than: self.older_than,
            even_if_used: self.even_if_used,
        };
        run(cx.sh, cx.root(), &options)?;
        Ok(std::process::ExitCode::SUCCESS)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub filter: Filter,
    pub regions: Vec<String>,
    pub execute: bool,
    pub local: bool,
    /// The newest N runs per kind and region survive.
    pub keep: Option<usize>,
    /// `7d`, `12h`: only what is older goes.
    pub older_than: Option<String>,
    pub even_if_used: bool,
}

fn run(sh: &Shell, root: &Path, options: &Options) -> Result<()> {
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
    let older_than = match &options.older_than {
        Some(text) => {
            Some(time::parse_duration(text).map_err(|e| anyhow::anyhow!("`--older-than`: {e}"))?)
        }
        None => None,
    };
    let matrix = project::matrix(sh)?;
    lifecycle::refuse_unknown_regions(&matrix, &options.regions)?;
    let current = project::registry(sh, REGISTRY_PATH)?;
    let (protection, note) = lifecycle::protection(root, &current)?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let aws = lifecycle::connect(sh, root, options.local, "cleanup")?;

    let all_records = runs::list(root);
    let bundles = lifecycle::Bundles::from_records(&all_records);
    let records: Vec<RunRecord> = all_records
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
    let regions: Vec<String> = regions(&matrix, &records, options).into_iter().collect();
    eprintln!(
        "searching {} region(s) for what {} left{}: {}",
        regions.len(),
        filter.describe(),
        if options.local {
            " in the local stand-in"
        } else {
            ""
        },
        regions.join(", ")
    );

    let project_name = &matrix.settings.project;
    let found = aws::each_region(&regions, |sh, region| {
        discover(
            sh,
            &aws,
            project_name,
            region,
            filter,
            &records,
            &bundles,
            options,
        )
    });
    let rules = Rules {
        protection: Some(&protection),
        even_if_used: options.even_if_used,
        keep: options.keep,
        older_than,
        now: project::epoch()?,
    };
    let mut plans = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (region, found) in regions.iter().zip(found) {
        match found {
            Ok(found) => plans.push(cleanup::plan_region(found, &rules)),
            Err(e) if e.is::<Unconfigured>() || e.chain().any(|c| c.is::<Unconfigured>()) => {
                return Err(e.context("nothing was searched or deleted"));
            }
            Err(e) => failures.push(format!("{region}: {e:#}")),
        }
    }
    let table = cleanup::render(&plans);
    if table.is_empty() && failures.is_empty() {
        output::say(format!("nothing found for {}", filter.describe()));
    } else {
        output::say(table.trim_end());
        output::say(format!("\nfound {}", cleanup::totals(&plans)));
    }
    for plan in &plans {
        for kept in plan.kept.iter().filter(|k| k.protected) {
            eprintln!(
                "refusing to delete {} ({}): {}",
                kept.image.id,
                plan.region,
                kept.reasons.join("; ")
            );
        }
    }

    let deleting: Vec<&RegionPlan> = plans.iter().filter(|p| p.deletes()).collect();
    if options.execute {
        let region_names: Vec<String> = deleting.iter().map(|p| p.region.clone()).collect();
        let results = aws::each_region(&region_names, |sh, region| {
            let plan = deleting
                .iter()
                .find(|p| p.region == region)
                .expect("a planned region");
            delete(sh, &aws, plan)
        });
        for (region, region_failures) in region_names.iter().zip(results) {
            failures.extend(
                region_failures
                    .into_iter()
                    .map(|e| format!("{region}: {e}")),
            );
        }
    } else if !deleting.is_empty() {
        output::say(
            "nothing was deleted: run the same command with `--execute` to delete the above",
        );
    }
    if options.execute && failures.is_empty() && !deleting.is_empty() {
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

#[allow(clippy::too_many_arguments)]
fn discover(
    sh: &Shell,
    aws: &Aws,
    project: &str,
    region: &str,
    filter: &Filter,
    records: &[RunRecord],
    known_bundles: &lifecycle::Bundles,
    options: &Options,
) -> Result<Found> {
    let tag_filters = filter.tag_filters(project);
    let mut images = aws.describe_images(sh, region, &filter.image_query(project))?;

    // Images the records know that the tags did not find (an untagged or re-tagged image).
    let known: BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    let mut bundles: BTreeSet<(String, String)> = BTreeSet::new();
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
                bundles.insert(cleanup::split_bundle(location));
            }
        }
    }
    if !missing.is_empty() {
        let query = ImageQuery {
            owners: vec!["self".into()],
            ..ImageQuery::ids(&missing)
        };
        images.extend(aws.describe_images(sh, region, &query)?);
    }
    for image in &images {
        if let Some(location) = known_bundles.of(image) {
            bundles.insert(cleanup::split_bundle(&location));
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
    let snapshots = cleanup::parse_tagged(&aws.run(sh, region, &args)?, "Snapshots", "SnapshotId")
        .map_err(anyhow::Error::msg)?;
    let mut args = vec![
        "ec2",
        "describe-volumes",
        "--filters",
        "Name=status,Values=available",
    ];
    args.extend(tag_filters.iter().map(String::as_str));
    let volumes = cleanup::parse_tagged(&aws.run(sh, region, &args)?, "Volumes", "VolumeId")
        .map_err(anyhow::Error::msg)?;
    // Only images that might go need the in-use check.
    let in_use = if images.is_empty() || options.even_if_used {
        BTreeMap::new()
    } else {
        lifecycle::users(sh, aws, region)?
    };

    let mut counted = Vec::new();
    let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (bucket, prefix) in bundles {
        if !listed.contains_key(&bucket) {
            let keys = lifecycle::bucket_keys(sh, aws, region, &bucket)?;
            listed.insert(bucket.clone(), keys);
        }
        let objects = lifecycle::under(&listed[&bucket], &prefix).count();
        counted.push(Bundle {
            bucket,
            prefix,
            objects,
        });
    }
    let record_bundles = images
        .iter()
        .filter_map(|i| known_bundles.of(i).map(|b| (i.id.clone(), b)))
        .collect();
    Ok(Found {
        region: region.to_string(),
        images,
        snapshots,
        volumes,
        bundles: counted,
        in_use,
        record_bundles,
    })
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
        let mut done = Vec::new();
        match lifecycle::delete_bucket_if_empty(sh, aws, &plan.region, bucket, &mut done) {
            Ok(()) => done
                .iter()
                .for_each(|d| output::say(format!("{}: {d}", plan.region))),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    failures
}
