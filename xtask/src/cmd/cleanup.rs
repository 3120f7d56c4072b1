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
use crate::error::{FixContext, PartlyFailed};
use crate::pure::cleanup::{self, Bundle, Filter, Found, RegionPlan, Rules};
use crate::pure::ec2::ImageQuery;
use crate::pure::registry::REGISTRY_PATH;
use crate::pure::time;
use crate::runs::{self, RunRecord};
use crate::{output, project};
use anyhow::Result;
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
    #[arg(long, value_name = "KIND", value_parser = test_kind)]
    kind: Option<crate::pure::template::Kind>,
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
    /// Delete even if a remote cannot be asked for its release and candidate tags (protection
    /// then rests on this clone's tags and the images' own tags).
    #[arg(long)]
    offline_ok: bool,
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
        run(cx.sh, cx.root(), &self)?;
        Ok(std::process::ExitCode::SUCCESS)
    }
}

impl Cleanup {
    fn filter(&self) -> Filter {
        Filter {
            run: self.run.clone(),
            version: self.version.clone(),
            kind: self.kind,
        }
    }
}

/// `--kind`: a test kind only (official images are removed by run or version).
fn test_kind(text: &str) -> std::result::Result<crate::pure::template::Kind, String> {
    match text.parse::<crate::pure::template::Kind>() {
        Ok(kind) if kind.is_test() => Ok(kind),
        _ => Err(format!(
            "`{text}` is not a test kind: use `test-ebs` or `test-instance` (an official run's images that were never published are removed by `--run RUN` or `--version VERSION`; published ones never)"
        )),
    }
}

fn run(sh: &Shell, root: &Path, options: &Cleanup) -> Result<()> {
    let filter = options.filter();
    let older_than = refuse_bad_input(&filter, options)?;
    if let Some(run) = &options.run {
        crate::runs::check_id(run)?;
    }
    let matrix = project::matrix(sh)?;
    lifecycle::refuse_unknown_regions(&matrix, &options.region)?;
    let current = project::registry(sh, REGISTRY_PATH)?;
    let (protection, note) = lifecycle::protection(root, &current)?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let aws = lifecycle::connect(sh, root, options.local, "cleanup")?;
    let (bundles, records) = matching_records(root, &filter, options);
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
    let search = Search {
        project: &matrix.settings.project,
        filter: &filter,
        records: &records,
        bundles: &bundles,
        even_if_used: options.even_if_used,
    };
    let found = aws::each_region(&regions, |sh, region| discover(sh, &aws, region, &search));
    let images: Vec<crate::pure::ec2::Image> = found
        .iter()
        .flatten()
        .flat_map(|f| f.images.iter().cloned())
        .collect();
    let ask = lifecycle::RemoteAsk {
        execute: options.execute,
        offline_ok: options.offline_ok,
    };
    let sources = lifecycle::guard_sources(sh, root, &images, options.local, ask)?;
    let rules = Rules {
        protection: Some(&protection),
        guard: Some(&sources),
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
    show(&filter, &plans, failures.is_empty());
    let launched = launched_by_run(root, &aws, &records, &regions, options)?;
    failures.extend(execute(&aws, &plans, options));
    if options.execute {
        failures.extend(crate::leftovers::remove(&aws, &launched));
    }
    finish(&filter, &plans, &launched, failures, options.execute)
}

/// With `--run`: the instances, security groups and key pairs the run's Packer launched and did
/// not delete (it died with its command), listed.
fn launched_by_run(
    root: &Path,
    aws: &Aws,
    records: &[RunRecord],
    regions: &[String],
    options: &Cleanup,
) -> Result<Vec<crate::pure::leftovers::Launched>> {
    let Some(run) = &options.run else {
        return Ok(Vec::new());
    };
    let launched = crate::leftovers::find(aws, root, run, records, regions)?;
    if !launched.is_empty() {
        output::say(format!(
            "\nlaunched by run `{run}` and not deleted by its Packer:\n{}",
            crate::pure::leftovers::render(&launched).trim_end()
        ));
        if !options.execute {
            output::say(
                "nothing was stopped: run the same command with `--execute` to remove them",
            );
        }
    }
    Ok(launched)
}

/// Bundles by every run record, and the records the filter matches (said when `--run` names
/// none).
fn matching_records(
    root: &Path,
    filter: &Filter,
    options: &Cleanup,
) -> (lifecycle::Bundles, Vec<RunRecord>) {
    let all_records = runs::list(root);
    let bundles = lifecycle::Bundles::from_records(&all_records);
    let records: Vec<RunRecord> = all_records
        .into_iter()
        .filter(|r| {
            r.spec.local == options.local
                && filter.matches(&r.run_id, &r.spec.version, r.spec.kind.as_str())
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
    (bundles, records)
}

/// The filter must be set (and a kind a test kind), `--older-than` a duration.
fn refuse_bad_input(filter: &Filter, options: &Cleanup) -> Result<Option<u64>> {
    if filter.is_empty() {
        let local = if options.local { " --local" } else { "" };
        return Err(crate::error::refused(
            "cleanup needs a filter: without one it would delete everything the project ever built",
            format!("add `--run RUN`, `--version VERSION` or `--kind test-ebs|test-instance` (`cargo xtask cleanup --kind test-ebs{local}` lists what test builds left)"),
        ));
    }
    if let Some(version) = &filter.version {
        crate::pure::version::parse(version)?;
    }
    options
        .older_than
        .as_deref()
        .map(|text| {
            time::parse_duration(text).map_err(|e| {
                crate::error::refused(
                    format!("`--older-than {text}`: {e}"),
                    "give a duration like `7d` or `12h`",
                )
            })
        })
        .transpose()
}

/// The table of what was found, and the published images it refuses to delete.
fn show(filter: &Filter, plans: &[RegionPlan], every_region_read: bool) {
    let table = cleanup::render(plans);
    if table.is_empty() && every_region_read {
        output::say(format!("nothing found for {}", filter.describe()));
    } else {
        output::say(table.trim_end());
        output::say(format!("\nfound {}", cleanup::totals(plans)));
    }
    for plan in plans {
        for kept in plan.kept.iter().filter(|k| k.protected) {
            eprintln!(
                "kept, never deleted: {} ({}): {}",
                kept.image.id,
                plan.region,
                kept.reasons.join("; ")
            );
        }
    }
}

/// With `--execute`, deletes every region's plan (concurrently); returns what failed.
fn execute(aws: &Aws, plans: &[RegionPlan], options: &Cleanup) -> Vec<String> {
    let deleting: Vec<&RegionPlan> = plans.iter().filter(|p| p.deletes()).collect();
    if !options.execute {
        if !deleting.is_empty() {
            output::say(
                "nothing was deleted: run the same command with `--execute` to delete the above",
            );
        }
        return Vec::new();
    }
    let region_names: Vec<String> = deleting.iter().map(|p| p.region.clone()).collect();
    let results = aws::each_region(&region_names, |sh, region| {
        let plan = deleting
            .iter()
            .find(|p| p.region == region)
            .expect("a planned region");
        delete(sh, aws, plan)
    });
    region_names
        .iter()
        .zip(results)
        .flat_map(|(region, failures)| failures.into_iter().map(move |e| format!("{region}: {e}")))
        .collect()
}

/// The closing line, the `--json` document (with what a run's Packer left running:
/// `launched`), and the error when something failed.
fn finish(
    filter: &Filter,
    plans: &[RegionPlan],
    launched: &[crate::pure::leftovers::Launched],
    failures: Vec<String>,
    executed: bool,
) -> Result<()> {
    if executed && failures.is_empty() && plans.iter().any(|p| p.deletes()) {
        output::say(format!(
            "\ncleanup done: deleted {}",
            cleanup::totals(plans)
        ));
    }
    output::document(serde_json::json!({
        "command": "cleanup",
        "ok": failures.is_empty(),
        "filter": filter.describe(),
        "execute": executed,
        "regions": plans,
        "launched": launched,
        "failures": failures,
    }));
    if failures.is_empty() {
        return Ok(());
    }
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    Err(PartlyFailed).fix(
        || format!("cleanup did not complete in every region ({} problem(s) above)", failures.len()),
        || "resolve the problems shown above, then run the same command again: what is gone stays gone".into(),
    )
}

/// `--region` when given; else the regions of matching records, plus the test region for test
/// kinds, or every region of the matrix otherwise (tags may be anywhere the matrix builds).
fn regions(
    matrix: &crate::pure::matrix::Matrix,
    records: &[RunRecord],
    options: &Cleanup,
) -> BTreeSet<String> {
    if !options.region.is_empty() {
        return project::split_names(&options.region).into_iter().collect();
    }
    let mut regions: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.builders.values().map(|b| b.region.clone()))
        .collect();
    let run_known = options.run.is_some() && !records.is_empty();
    match options.kind {
        _ if run_known => {}
        Some(_) => {
            regions.insert(matrix.settings.test_region.clone());
        }
        None => regions.extend(matrix.images.iter().map(|i| i.region.clone())),
    }
    regions
}

/// What every region is searched for.
struct Search<'a> {
    project: &'a str,
    filter: &'a Filter,
    records: &'a [RunRecord],
    bundles: &'a lifecycle::Bundles,
    even_if_used: bool,
}

/// One region's leftovers: images by tag and by run record, snapshots and volumes by tag, what
/// uses the images, and the bundles with their object counts.
fn discover(sh: &Shell, aws: &Aws, region: &str, search: &Search) -> Result<Found> {
    let tag_filters = search.filter.tag_filters(search.project);
    let mut images = aws.describe_images(sh, region, &search.filter.image_query(search.project))?;
    // Images the records know that the tags did not find (an untagged or re-tagged image).
    let known: BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    let mut bundles: BTreeSet<(String, String)> = BTreeSet::new();
    let mut missing = Vec::new();
    for builder in search.records.iter().flat_map(|r| r.builders.values()) {
        if builder.region != region {
            continue;
        }
        let unknown = builder
            .amis
            .iter()
            .filter(|a| a.region == region && !known.contains(a.id.as_str()));
        missing.extend(unknown.map(|a| a.id.clone()));
        if let Some(location) = &builder.bundle {
            bundles.insert(cleanup::split_bundle(location));
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
        if let Some(location) = search.bundles.of(image) {
            bundles.insert(cleanup::split_bundle(&location));
        }
    }
    let snapshots = aws.snapshots(sh, region, &tag_filters)?;
    let volumes = aws.loose_volumes(sh, region, &tag_filters)?;
    // Only images that might go need the in-use check.
    let in_use = if images.is_empty() || search.even_if_used {
        BTreeMap::new()
    } else {
        aws.image_users(sh, region)?
    };
    let record_bundles = images
        .iter()
        .filter_map(|i| search.bundles.of(i).map(|b| (i.id.clone(), b)))
        .collect();
    Ok(Found {
        region: region.to_string(),
        images,
        snapshots,
        volumes,
        bundles: count_bundles(sh, aws, region, bundles)?,
        in_use,
        record_bundles,
    })
}

/// Each bundle with the number of its objects: one listing per bucket.
fn count_bundles(
    sh: &Shell,
    aws: &Aws,
    region: &str,
    bundles: BTreeSet<(String, String)>,
) -> Result<Vec<Bundle>> {
    let mut counted = Vec::new();
    let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (bucket, prefix) in bundles {
        if !listed.contains_key(&bucket) {
            let keys = aws.bucket_keys(sh, region, &bucket)?;
            listed.insert(bucket.clone(), keys);
        }
        let objects = lifecycle::under(&listed[&bucket], &prefix).count();
        counted.push(Bundle {
            bucket,
            prefix,
            objects,
        });
    }
    Ok(counted)
}

/// Deletes one region's plan in a safe order, reporting each deletion; returns what failed.
fn delete(sh: &Shell, aws: &Aws, plan: &RegionPlan) -> Vec<String> {
    let region = plan.region.as_str();
    let mut failures = Vec::new();
    let mut step = |what: String, done: Result<()>| match done {
        Ok(()) => {
            output::say(format!("{region}: {what}"));
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
        let what = format!("deregistered {} ({})", image.id, image.name);
        if !step(what, aws.deregister_image(sh, region, &image.id)) {
            blocked.extend(image.snapshots.iter().cloned());
        }
    }
    for snapshot in plan.snapshots.iter().filter(|s| !blocked.contains(*s)) {
        step(
            format!("deleted snapshot {snapshot}"),
            aws.delete_snapshot(sh, region, snapshot),
        );
    }
    for volume in &plan.volumes {
        step(
            format!("deleted volume {volume}"),
            aws.delete_volume(sh, region, volume),
        );
    }
    for bundle in &plan.bundles {
        let url = format!("s3://{}/{}/", bundle.bucket, bundle.prefix);
        let what = format!("deleted {url} ({} object(s))", bundle.objects);
        // A bucket that is already gone holds nothing to delete.
        match aws.delete_prefix(sh, region, &bundle.bucket, &bundle.prefix) {
            Ok(false) => {}
            done => {
                step(what, done.map(|_| ()));
            }
        }
    }
    for bucket in plan.buckets() {
        match aws.delete_bucket_if_empty(sh, region, bucket) {
            Ok(done) => done
                .iter()
                .for_each(|d| output::say(format!("{region}: {d}"))),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    failures
}
