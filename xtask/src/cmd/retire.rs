//! `cargo xtask retire VERSION`: retire a release's (or candidate's) images in stages. The
//! images come from the release's tag message, the `ami_ids.json` its release commit added, and
//! the provenance tags (`Version`, `Kind official`) in AWS; each region is read (and acted on)
//! concurrently. The plan shows every image's present state and every stage's action or
//! refusal; only `--execute` acts, and every executed stage is recorded in
//! `build/retired.json`, committed like a release commit. The newest release is never touched.

use crate::aws::{self, Aws};
use crate::cmd::lifecycle;
use crate::error::{FixContext, PartlyFailed};
use crate::git::Git;
use crate::project;
use crate::pure::ec2::ImageQuery;
use crate::pure::protect;
use crate::pure::registry::{self, REGISTRY_PATH};
use crate::pure::retire::{self, Action, ImageResult, Retirement, Stage, State, Step, Target};
use crate::pure::{guard, legacy};
use crate::pure::{time, version};
use crate::runs;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use xshell::Shell;

/// Retire a release's images in stages: deprecate, make private, deregister (with `--execute`).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask retire 2.6.3\n  cargo xtask retire 2.6.3 --deprecate --execute\n  cargo xtask retire 2.6.3 --deregister --execute"
)]
pub struct Retire {
    /// The release (or candidate) to retire, like `2.6.3`.
    version: String,
    /// Deprecate the images (hidden from searches, still launchable by id).
    #[arg(long)]
    deprecate: bool,
    /// When they become deprecated (default: now): `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]Z`.
    #[arg(long, value_name = "DATE", requires = "deprecate")]
    at: Option<String>,
    /// Remove the public launch permission.
    #[arg(long)]
    make_private: bool,
    /// Deregister the images, then delete their snapshots and bundles.
    #[arg(long)]
    deregister: bool,
    /// Days an image must have been deprecated before `--deregister` (0: only deprecated).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    grace: u64,
    /// Act even on images that instances or launch templates use.
    #[arg(long)]
    even_if_used: bool,
    /// Do what the plan shows (without it, nothing is changed).
    #[arg(long)]
    execute: bool,
    /// Work on the local stand-in kept by `cargo xtask local up`.
    #[arg(long)]
    local: bool,
    /// Act even if a remote cannot be asked for its release and candidate tags (the newest
    /// release is then known from this clone's tags and the images' own tags only).
    #[arg(long)]
    offline_ok: bool,
}

impl crate::cmd::Cmd for Retire {
    const NAME: &'static str = "retire";
    fn lock(&self) -> Option<crate::lock::Busy> {
        // It commits `build/retired.json`.
        self.execute.then_some(crate::lock::Busy::Refuse)
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        run(cx.sh, cx.root(), &self)?;
        Ok(std::process::ExitCode::SUCCESS)
    }
}

fn run(sh: &Shell, root: &Path, options: &Retire) -> Result<()> {
    let parsed = version::parse(&options.version)?;
    let tag_name = version::tag_name(&parsed);
    let git = Git::open(root)?;
    let tags = lifecycle::release_tags(&git)?;
    let now = project::epoch()?;
    let deprecate_at = retire::deprecation_time(options.at.as_deref(), now)?;
    let stages: Vec<Stage> = [
        (options.deprecate, Stage::Deprecate),
        (options.make_private, Stage::MakePrivate),
        (options.deregister, Stage::Deregister),
    ]
    .into_iter()
    .filter_map(|(on, stage)| on.then_some(stage))
    .collect();
    let listed = match tags.iter().find(|t| t.name == tag_name) {
        Some(tag) => listing(&git, &tag_name, tag),
        None => legacy_listing(&git, &options.version, options.local)?,
    };
    let matrix = project::matrix(sh)?;
    let mut regions: BTreeSet<String> = matrix.images.iter().map(|i| i.region.clone()).collect();
    regions.extend(listed.values().filter_map(|(r, _)| r.clone()));
    let regions: Vec<String> = regions.into_iter().collect();
    let aws = lifecycle::connect(sh, root, options.local, "retire")?;
    refuse_the_newest(
        sh,
        root,
        &aws,
        &regions,
        &matrix.settings.project,
        &parsed,
        options,
    )?;
    let images = find(
        sh,
        root,
        &aws,
        &regions,
        &matrix.settings.project,
        &listed,
        options,
    )?;
    if images.is_empty() {
        return Err(no_images(&options.version, &tag_name, options.local));
    }
    let settings = retire::Settings {
        deprecate_at,
        grace_days: options.grace,
        even_if_used: options.even_if_used,
        now,
    };
    let steps = retire::plan(&images, &stages, &settings);
    if !show(options, &images, &stages, &steps)? {
        return Ok(());
    }
    act(
        sh, root, &git, &aws, &regions, &steps, &stages, now, options,
    )
}

/// The newest release (and anything newer) is never retired: known from this clone's tags, the
/// remote's tags and every image's `Version` tag, so a clone that lacks a tag cannot retire
/// what users run.
fn refuse_the_newest(
    sh: &Shell,
    root: &Path,
    aws: &Aws,
    regions: &[String],
    project_name: &str,
    version: &semver::Version,
    options: &Retire,
) -> Result<()> {
    let query = ImageQuery::own().tagged("Project", project_name);
    let mut images = Vec::new();
    for (region, found) in regions.iter().zip(aws::each_region(regions, |sh, region| {
        aws.describe_images(sh, region, &query)
    })) {
        images.extend(
            found.with_context(|| {
                format!("cannot read the images of {region}: nothing was changed")
            })?,
        );
    }
    let ask = lifecycle::RemoteAsk {
        execute: options.execute,
        offline_ok: options.offline_ok,
    };
    let sources = lifecycle::guard_sources(sh, root, &images, options.local, ask)?;
    guard::may_retire(version, &sources).map_err(|refusal| {
        crate::error::refused(format!("refusing to retire: {}", refusal.what), refusal.fix)
    })
}

/// Without a `release/VERSION` tag: a release made before the tool is found through the history
/// of `ami_ids.json` (said with what is missing and the command that adopts it); otherwise only
/// the images' `Version` tags can find it.
fn legacy_listing(git: &Git, version: &str, local: bool) -> Result<retire::Listing> {
    let tags = lifecycle::named_tags(git, &[])?;
    let found = legacy::find(version, &lifecycle::legacy_snapshots(git, &tags)?, &tags);
    let mut listed = retire::Listing::new();
    let Some(commit) = found.commit.as_deref().filter(|_| !found.amis.is_empty()) else {
        eprintln!(
            "note: there is no tag `{}`: looking for the images by their `Version` tag only",
            version::tag_name(&version::parse(version)?)
        );
        return Ok(listed);
    };
    eprint!(
        "note: {version} is a release made before the tool, found in the history of `{REGISTRY_PATH}`:\n{}",
        found.render()
    );
    if local {
        eprintln!("note: the local stand-in never held images made before the tool (they are in AWS): run without `--local` to retire them");
    }
    let source = format!(
        "listed in `{REGISTRY_PATH}` at {}",
        &commit[..commit.len().min(7)]
    );
    for ami in found.amis {
        listed.insert(ami.id, (ami.region, vec![source.clone()]));
    }
    Ok(listed)
}

/// Nothing found anywhere: why, and what to do.
fn no_images(version: &str, tag_name: &str, local: bool) -> anyhow::Error {
    let what = format!(
        "no images of {version} found: not in a `{tag_name}` tag message, not added to `{REGISTRY_PATH}` by its release commit, none tagged `Version {version}`{}",
        if local { " in the local stand-in" } else { "" }
    );
    let fix = if local {
        format!("the stand-in holds only what was built in it since `cargo xtask local up`: rehearse the release there first (`cargo xtask release {version} --local --yes`), or retire the real images without `--local`")
    } else {
        "check the version: `git tag -l 'release/*'` lists the releases (`git fetch --tags` if this clone lacks some), and `cargo xtask audit` lists the releases made before the tool with the command that adopts them".to_string()
    };
    crate::error::refused(what, fix)
}

/// The release's images as git knows them: its tag message, and what its release commit added
/// to `ami_ids.json`.
fn listing(git: &Git, tag_name: &str, tag: &crate::git::TagInfo) -> retire::Listing {
    let amis_at = |commit: &str| {
        git.file_at(commit, REGISTRY_PATH)
            .and_then(|t| registry::parse(&t).ok())
            .map(|r| protect::registry_amis(&r))
    };
    let change = git.parent(&tag.commit).and_then(|old| {
        let before = amis_at(&old).unwrap_or_default();
        amis_at(&tag.commit).map(|after| (before, after))
    });
    let change = change
        .as_ref()
        .map(|(before, after)| (before.as_slice(), after.as_slice()));
    retire::listing(tag_name, &tag.message, &tag.commit, change)
}

/// Every region's images of the release, with their present state; any region that cannot be
/// read stops everything before a change.
fn find(
    sh: &Shell,
    root: &Path,
    aws: &Aws,
    regions: &[String],
    project_name: &str,
    listed: &retire::Listing,
    options: &Retire,
) -> Result<Vec<(Target, State)>> {
    let current = project::registry(sh, REGISTRY_PATH)?;
    let in_registry: BTreeSet<String> = registry::ids(&current)
        .into_iter()
        .map(String::from)
        .collect();
    let bundles = lifecycle::Bundles::from_records(&runs::list(root));
    eprintln!(
        "reading {} region(s) for the images of {}{}...",
        regions.len(),
        options.version,
        if options.local {
            " in the local stand-in"
        } else {
            ""
        }
    );
    let found = aws::each_region(regions, |sh, region| {
        let ask = Ask {
            project: project_name,
            version: &options.version,
            listed,
            in_registry: &in_registry,
            bundles: &bundles,
        };
        read_region(sh, aws, region, &ask)
    });
    let mut images: Vec<(Target, State)> = Vec::new();
    for (region, found) in regions.iter().zip(found) {
        images.extend(found.with_context(|| format!("cannot read {region}: nothing was changed"))?);
    }
    Ok(images)
}

/// Prints the plan; whether to go on and act. `--execute` that can do nothing is refused (exit
/// 2): no stage chosen, or every step refused.
fn show(
    options: &Retire,
    images: &[(Target, State)],
    stages: &[Stage],
    steps: &[Step],
) -> Result<bool> {
    println!(
        "retire {}: {} image(s){}",
        options.version,
        images.len(),
        if options.local {
            " (local stand-in)"
        } else {
            ""
        }
    );
    print!("{}", retire::render(images, steps));
    let stage_flags = "`--deprecate [--at DATE]`, `--make-private` or `--deregister`";
    if stages.is_empty() {
        if options.execute {
            return Err(crate::error::refused(
                "`--execute` without a stage does nothing: nothing was changed",
                format!("add {stage_flags}"),
            ));
        }
        println!("\nno stage chosen: add {stage_flags} (then `--execute`)");
        return Ok(false);
    }
    let doing = steps.iter().filter(|s| s.action.is_ok()).count();
    let refused = steps
        .iter()
        .filter(|s| s.action.as_ref().is_err_and(|e| e.starts_with("refused")))
        .count();
    match (doing, options.execute) {
        (0, true) if refused > 0 => Err(crate::error::refused(
            format!("{refused} step(s) are refused and the rest skipped (see above): nothing was changed or recorded"),
            "do what each refusal says (or wait until the time it names), then run the same command again",
        )),
        (0, _) if refused > 0 => {
            println!("\nnothing to do now: every step is skipped or refused (see above)");
            Ok(false)
        }
        (0, _) => {
            println!("\nnothing to do: every step is skipped (see above); nothing was changed");
            Ok(false)
        }
        (_, false) => {
            println!("\nnothing was changed: run the same command with `--execute` to do the {doing} step(s) above");
            Ok(false)
        }
        (_, true) => Ok(true),
    }
}

/// Does the steps region by region, concurrently (in each region the stages run in order),
/// and records them.
#[allow(clippy::too_many_arguments)]
fn act(
    sh: &Shell,
    root: &Path,
    git: &Git,
    aws: &Aws,
    regions: &[String],
    steps: &[Step],
    stages: &[Stage],
    now: u64,
    options: &Retire,
) -> Result<()> {
    let results = aws::each_region(regions, |sh, region| {
        let mine: Vec<&Step> = steps.iter().filter(|s| s.region == region).collect();
        mine.into_iter()
            .map(|step| (step.stage, execute(sh, aws, step, options.at.is_none())))
            .collect::<Vec<_>>()
    });
    let mut by_stage: BTreeMap<Stage, Vec<ImageResult>> = BTreeMap::new();
    let mut failed = 0;
    let mut waiting = 0;
    for (stage, result) in results.into_iter().flatten() {
        if result.result == "waiting" {
            waiting += 1;
            eprintln!("waiting: {} {}: {}", stage.name(), result.id, result.detail);
        } else if result.result == "failed" {
            failed += 1;
            eprintln!("error: {} {}: {}", stage.name(), result.id, result.detail);
        } else if result.result == "done" {
            println!(
                "{}: {} {}: {}",
                result.region,
                stage.name(),
                result.id,
                result.detail
            );
        }
        by_stage.entry(stage).or_default().push(result);
    }
    let results: Vec<(Stage, Vec<ImageResult>)> = by_stage.into_iter().collect();
    record(sh, root, git, options, stages, &results, now)?;
    if failed == 0 && waiting > 0 {
        return Err(PartlyFailed).fix(
            || format!("{waiting} image(s) wait for AWS's 24-hour deregistration-protection cooldown (above)"),
            || "run the same command again after the time shown: the protection is already lifted".into(),
        );
    }
    if failed > 0 {
        return Err(PartlyFailed).fix(
            || format!("{failed} step(s) failed (above; recorded in `{}`)", retire::RETIRED_PATH),
            || "resolve the cause shown above, then run the same command again: done steps are skipped".into(),
        );
    }
    Ok(())
}

/// What every region is asked about.
struct Ask<'a> {
    project: &'a str,
    version: &'a str,
    listed: &'a retire::Listing,
    in_registry: &'a BTreeSet<String>,
    bundles: &'a lifecycle::Bundles,
}

/// One region's images of the release, with their present state.
fn read_region(sh: &Shell, aws: &Aws, region: &str, ask: &Ask) -> Result<Vec<(Target, State)>> {
    let query = ImageQuery::own()
        .tagged("Project", ask.project)
        .tagged("Version", ask.version)
        .tagged("Kind", "official");
    let mut seen = aws.describe_images(sh, region, &query)?;
    let here: Vec<&String> = ask
        .listed
        .iter()
        .filter(|(_, (r, _))| r.as_deref() == Some(region))
        .map(|(id, _)| id)
        .collect();
    if !here.is_empty() {
        seen.extend(aws.describe_images(sh, region, &ImageQuery::ids(&here))?);
    }
    let users = if seen.is_empty() {
        BTreeMap::new()
    } else {
        aws.image_users(sh, region)?
    };
    let bundles = seen
        .iter()
        .filter_map(|i| ask.bundles.of(i).map(|b| (i.id.clone(), b)))
        .collect();
    let facts = retire::RegionFacts {
        region,
        version: ask.version,
        seen: &seen,
        users,
        in_registry: ask.in_registry,
        bundles,
    };
    Ok(retire::region_images(ask.listed, &facts))
}

/// Does one step. A deprecation "now" is taken at the moment of the call (the plan may have
/// been shown minutes earlier, and AWS refuses a time in the past).
fn execute(sh: &Shell, aws: &Aws, step: &Step, now: bool) -> ImageResult {
    let result = |result: &str, detail: String| ImageResult {
        region: step.region.clone(),
        id: step.id.clone(),
        result: result.into(),
        detail,
    };
    let action = match &step.action {
        Ok(action) => action,
        Err(why) => return result("skipped", why.clone()),
    };
    let region = &step.region;
    let id = &step.id;
    // "done", or "waiting" for AWS's deregistration-protection cooldown, with the detail.
    let done: Result<(&str, String)> = (|| match action {
        Action::Deprecate { at } => {
            let at = match now {
                true => time::iso(retire::deprecate_now(project::epoch()?)),
                false => at.clone(),
            };
            aws.deprecate_image(sh, region, id, &at)?;
            Ok(("done", Action::Deprecate { at }.describe()))
        }
        Action::MakePrivate => {
            aws.make_image_private(sh, region, id)?;
            Ok(("done", action.describe()))
        }
        Action::Deregister {
            snapshots,
            bundle,
            lift,
        } => {
            if *lift {
                if let Some(until) = lift_protection(sh, aws, region, id)? {
                    return Ok(("waiting", format!(
                        "deregistration protection lifted; AWS keeps it until {until} (24-hour cooldown): run the same command after {until}"
                    )));
                }
            }
            aws.deregister_image(sh, region, id)?;
            let mut done = vec!["deregistered".to_string()];
            for snapshot in snapshots {
                aws.delete_snapshot(sh, region, snapshot)?;
                done.push(format!("deleted snapshot {snapshot}"));
            }
            if let Some(bundle) = bundle {
                done.extend(aws.delete_bundle(sh, region, bundle)?);
            }
            Ok(("done", done.join(", ")))
        }
    })();
    match done {
        Ok((outcome, detail)) => result(outcome, detail),
        Err(e) => result("failed", format!("{e:#}")),
    }
}

/// Lifts an image's deregistration protection; the time AWS keeps it until (the cooldown of a
/// protection enabled with it), or `None` when it may be deregistered now.
fn lift_protection(sh: &Shell, aws: &Aws, region: &str, id: &str) -> Result<Option<String>> {
    aws.disable_deregistration_protection(sh, region, id)?;
    let now = aws.describe_images(sh, region, &ImageQuery::ids(&[id]))?;
    let field = now
        .first()
        .map_or("", |image| image.deregistration_protection.as_str());
    let protection = retire::DeregistrationProtection::parse(field);
    Ok(match &protection {
        retire::DeregistrationProtection::CoolingUntil(until)
            if protection.blocks(project::epoch()?) =>
        {
            Some(until.clone())
        }
        _ => None,
    })
}

/// Appends the executed stages to `build/retired.json` and commits it (that file only).
fn record(
    sh: &Shell,
    root: &Path,
    git: &Git,
    options: &Retire,
    stages: &[Stage],
    results: &[(Stage, Vec<ImageResult>)],
    now: u64,
) -> Result<()> {
    let path = retire::RETIRED_PATH;
    let mut retired = if root.join(path).exists() {
        retire::parse_retired(&project::read(sh, path)?).map_err(anyhow::Error::msg)?
    } else {
        retire::Retired::default()
    };
    for (stage, images) in results {
        retired.retirements.push(Retirement {
            version: options.version.clone(),
            stage: stage.name().to_string(),
            time: time::iso(now),
            local: options.local,
            images: images.clone(),
        });
    }
    project::write_atomic(sh, path, &retire::render_retired(&retired))?;
    let message = retire::commit_message(&options.version, stages, results, options.local);
    let commit = git
        .commit_file(path, &message)
        .with_context(|| format!("the stages are done and recorded in `{path}`, but it could not be committed: commit it yourself"))?;
    println!(
        "recorded in `{path}`, committed {} \"{}\"",
        &commit[..10],
        message.lines().next().unwrap_or_default()
    );
    Ok(())
}
