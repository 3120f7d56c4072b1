//! `cargo xtask test-ebs`, `test-instance` and `publish`: preflight, plan, template, validate,
//! build with a live view, record, merge, summary; and `publish --resume`.

use crate::cmd::{BuildsFailed, FixContext};
use crate::core::preflight;
use crate::core::registry::REGISTRY_PATH;
use crate::core::template::{self, Inputs, Kind};
use crate::core::{ds0, matrix, report};
use crate::credentials::{self, Credentials};
use crate::packer::{BuildRequest, Packer};
use crate::runs::{self, Attempt, BuilderRecord, BuilderState, RunRecord};
use crate::simulated::World;
use crate::standin::Standin;
use crate::view::{self, View};
use crate::{cloud, cmd, interrupt, lock, output, project};
use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::path::Path;
use xshell::Shell;

/// What the user asked for on the command line of `test-ebs`, `test-instance` or `publish`.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub only: Vec<String>,
    pub local: bool,
    /// Bake this branch instead of the one in `ds0_utils.py` (test builds).
    pub branch: Option<String>,
    /// Private images, not merged into the registry (candidates, `publish --private`).
    pub private: bool,
    pub no_parallel: bool,
    pub debug: bool,
    pub yes: bool,
    /// `Some(None)`: the latest run; `Some(Some(id))`: that run.
    pub resume: Option<Option<String>>,
    pub packer_args: Vec<String>,
    /// `--skip-cloud-checks`: launch without asking AWS first (emergencies only; said loudly).
    pub skip_cloud_checks: bool,
    /// `--json`: the summary is also the run's JSON document on stdout.
    pub json: bool,
}

/// What `release` decides for the publish it drives, on top of the flags: a user's publish
/// never sets these.
#[derive(Debug, Clone)]
pub struct ReleaseOverrides {
    /// Where the AMIs are merged: the release's `ami_ids.json` (in the scratch clone for a
    /// rehearsal); `None` for a candidate, whose private AMIs stay out of the registry.
    pub registry: Option<String>,
    /// The id of the run, chosen and recorded by the release before it builds.
    pub run_id: String,
    /// Where the local stand-in lives, when not in this repository (a release rehearsal runs in
    /// a scratch clone but shares the real repository's stand-in and virtualenv).
    pub standin_root: Option<std::path::PathBuf>,
    /// The command that continues after a failure: the release, not `publish --resume`.
    pub resume_command: String,
    /// The release's preflight asked the cloud about this very plan already.
    pub cloud_checked: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub flags: Flags,
    pub release: Option<ReleaseOverrides>,
}

/// What a finished build reports to its caller (the release command builds on it).
pub struct Finished {
    pub record: RunRecord,
}

pub fn run(sh: &Shell, root: &Path, kind: Kind, options: &Options) -> Result<Finished> {
    interrupt::install();
    let flags = &options.flags;
    if flags.resume.is_some() {
        return resume(sh, root, kind, options);
    }
    // Preflight: everything that can be checked is checked before anything starts.
    let matrix = project::matrix(sh)?;
    let (version, ds0_branch) = project::version_and_branch(sh)?;
    let branch = match &flags.branch {
        Some(branch) => {
            ds0::check_branch(branch).map_err(|e| anyhow::anyhow!("`--branch {branch}`: {e}"))?;
            branch.clone()
        }
        None => ds0_branch,
    };
    matrix::check_names(&matrix, &version).map_err(anyhow::Error::msg)?;
    let only = project::split_names(&flags.only);
    let epoch = project::epoch()?;
    // The plan without run details: its builders and regions are what the user confirms.
    let probe = Inputs {
        kind,
        version: &version,
        branch: &branch,
        epoch,
        git_commit: "",
        run_id: "",
        only: &only,
        private: flags.private,
        report_dir: "",
        local: None,
    };
    let probe_plan = template::plan(&matrix, &probe).map_err(anyhow::Error::msg)?;
    let packer = Packer::detect(sh)?;
    let (credentials, credentials_source) = load_credentials(sh, root, kind, flags)?;
    let registry_path = registry_target(kind, options);
    if let Some(path) = &registry_path {
        // A scratch copy starts from the real registry: both must be readable now.
        let readable = if path.is_empty() { REGISTRY_PATH } else { path };
        project::registry(sh, readable)?;
    }

    let launch_size = credentials
        .as_ref()
        .and_then(|c| c.launch_size.clone())
        .unwrap_or_else(|| matrix.settings.launch_size.clone());
    let plan = plan_text(
        &matrix,
        &probe_plan,
        &version,
        &branch,
        &launch_size,
        flags,
        registry_path.as_deref(),
    );
    eprintln!("{plan}");
    refuse_unconfirmable(kind, flags)?;
    // The stand-in answers the cloud checks of a local build, so it starts first.
    let (standin, credentials) = start(sh, root, options, &matrix, credentials)?;
    let cloud_checks = if flags.skip_cloud_checks {
        cloud::SKIPPED_RECORD.to_string()
    } else if options.release.as_ref().is_some_and(|r| r.cloud_checked) {
        "passed in the release preflight".to_string()
    } else {
        let template = template::generate(&matrix, &probe).map_err(anyhow::Error::msg)?;
        cloud::gate(
            sh,
            root,
            cloud::Gate {
                planned: preflight::planned(&template, &[]),
                public: probe_plan.public,
                standin: standin.as_ref(),
                expected_account: credentials.account_id.clone(),
                credentials_source,
                owner: None,
                resume: resume_hint(kind, flags),
                same_base_for_both: preflight::same_base_for_both(&matrix),
            },
        )?;
        "passed".to_string()
    };
    // Effects from here on.
    confirm_launch(kind, flags)?;
    interrupt::check("anything started")?;
    let run_id = match &options.release {
        Some(release) => release.run_id.clone(),
        None => runs::new_run_id(root, kind, flags.local, epoch)?,
    };
    cmd::mark_started();
    let registry_path = registry_path.map(|p| {
        if p.is_empty() {
            scratch_registry(&run_id)
        } else {
            p
        }
    });
    let run_dir = runs::run_dir(root, &run_id);
    sh.create_dir(run_dir.join("inputs"))
        .with_context(|| format!("cannot create `{}`", run_dir.display()))?;
    for input in runs::INPUTS {
        let name = Path::new(input).file_name().expect("inputs are files");
        sh.copy_file(input, run_dir.join("inputs").join(name))
            .with_context(|| format!("cannot keep a copy of `{input}` in the run folder"))?;
    }
    let mut commit = project::git_commit(sh);
    if flags.local && commit == "unknown" {
        // Not a git repository: a local build bakes its files, committed for the stand-in.
        commit = World::new(&sh.current_dir().join(&run_dir)).snapshot(root, &branch)?;
    }
    let mut record = RunRecord {
        run_id: run_id.clone(),
        kind,
        local: flags.local,
        version: version.clone(),
        branch: branch.clone(),
        commit: commit.clone(),
        epoch,
        private: flags.private,
        registry: registry_path.clone(),
        cloud_checks: Some(cloud_checks),
        builders: Default::default(),
        attempts: Vec::new(),
    };
    if let Some(path) = registry_path
        .as_ref()
        .filter(|p| p.starts_with(runs::RUNS_DIR))
    {
        // A rehearsal merges into a scratch copy, never into the real registry.
        sh.copy_file(REGISTRY_PATH, path)
            .with_context(|| format!("cannot copy `{REGISTRY_PATH}` to `{path}`"))?;
    }
    // The record comes first, so an interrupt from here on leaves a run to resume.
    for planned in &probe_plan.builders {
        record
            .builders
            .insert(planned.name.clone(), BuilderRecord::pending(planned));
    }
    record.save(sh)?;
    lock::set_run(&run_id);
    interrupt::set_resume(resume_command(&record, options));
    eprintln!("run `{run_id}`\n  logs and record in `{}/`", record.dir());
    write_template(sh, root, &matrix, &record, &only, standin.as_ref())?;
    let only = if flags.only.is_empty() {
        Vec::new()
    } else {
        probe_plan.names()
    };
    attempt(
        sh,
        &packer,
        &credentials,
        &matrix,
        standin.as_ref(),
        &mut record,
        only,
        flags,
    )?;
    drop(standin);
    finish(sh, record, kind, options)
}

/// The last step before launching: the stand-in (for `--local`) and the credentials Packer
/// gets — the stand-in's, or the user's loaded during preflight.
fn start(
    sh: &Shell,
    root: &Path,
    options: &Options,
    matrix: &matrix::Matrix,
    loaded: Option<Credentials>,
) -> Result<(Option<Standin>, Credentials)> {
    interrupt::check("starting the stand-in")?;
    let root = options
        .release
        .as_ref()
        .and_then(|r| r.standin_root.as_deref())
        .unwrap_or(root);
    match (options.flags.local, loaded) {
        (true, _) => {
            let standin = Standin::attach_or_start(sh, root, matrix)?;
            interrupt::check("launching Packer")?;
            let credentials = credentials::local(sh, standin.var_file())?;
            Ok((Some(standin), credentials))
        }
        (false, Some(credentials)) => Ok((None, credentials)),
        (false, None) => unreachable!("credentials are loaded for real builds"),
    }
}

/// Loads `build/local.json` for a real build (after resolving `AWS_PROFILE`, once); nothing
/// for `--local`. Also says where the credentials came from.
fn load_credentials(
    sh: &Shell,
    root: &Path,
    kind: Kind,
    flags: &Flags,
) -> Result<(Option<Credentials>, Option<String>)> {
    if flags.local {
        return Ok((None, None));
    }
    let source = credentials::resolve_profile(sh, root, "aws")?;
    let credentials = credentials::load(sh, root, kind != Kind::TestEbs)?;
    for warning in &credentials.warnings {
        eprintln!("warning: {warning}");
    }
    Ok((Some(credentials), source))
}

/// What a launch needs confirmed: a publish, and any build on AWS (test builds cost money too).
fn confirmation(kind: Kind, flags: &Flags) -> Option<(&'static str, &'static str)> {
    if kind == Kind::Official {
        Some(("publishing", "publish"))
    } else if !flags.local {
        Some(("building test images on AWS", "build"))
    } else {
        None
    }
}

/// Without a terminal and without `--yes` the launch would be refused anyway: refuse right
/// after the plan, before a stand-in starts or AWS is asked.
fn refuse_unconfirmable(kind: Kind, flags: &Flags) -> Result<()> {
    match confirmation(kind, flags) {
        Some((action, answer)) if !flags.yes && !std::io::stdin().is_terminal() => {
            cmd::confirm(false, action, answer)
        }
        _ => Ok(()),
    }
}

/// The last step before launching, after the plan and the cloud checks.
fn confirm_launch(kind: Kind, flags: &Flags) -> Result<()> {
    if let Some((action, answer)) = confirmation(kind, flags) {
        cmd::confirm(flags.yes, action, answer)?;
    }
    Ok(())
}

/// How the AMI name check tells the user to resume a run (the run id is added).
fn resume_hint(kind: Kind, flags: &Flags) -> String {
    let local = if flags.local { " --local" } else { "" };
    match kind {
        Kind::Official => format!("cargo xtask publish{local} --resume"),
        // Test builds are retried with `--only`; their names never repeat.
        _ => String::new(),
    }
}

fn resume(sh: &Shell, root: &Path, kind: Kind, options: &Options) -> Result<Finished> {
    let flags = &options.flags;
    let run_id = match flags.resume.clone().flatten() {
        Some(id) => id,
        None => runs::list(root)
            .into_iter()
            .rev()
            .find(|r| r.kind == kind && r.local == flags.local)
            .map(|r| r.run_id)
            .with_context(|| {
                format!(
                    "no {}{kind} run to resume in `{}/`",
                    if flags.local { "local " } else { "" },
                    runs::RUNS_DIR
                )
            })?,
    };
    let mut record = RunRecord::load(sh, &run_id)?;
    if record.kind != kind {
        bail!("run `{run_id}` is a {} run, not {kind}: resume it with `cargo xtask {} --resume {run_id}`", record.kind, record.kind);
    }
    if record.local != flags.local {
        let flag = if record.local { "with" } else { "without" };
        bail!(
            "run `{run_id}` was {} local run: resume it {flag} `--local`",
            if record.local { "a" } else { "not a" }
        );
    }
    for input in runs::INPUTS {
        let name = Path::new(input).file_name().expect("inputs are files");
        let kept = sh.read_binary_file(Path::new(&record.dir()).join("inputs").join(name))?;
        let now = sh
            .read_binary_file(input)
            .with_context(|| format!("cannot read `{input}`"))?;
        if kept != now {
            bail!(
                "`{input}` changed since run `{run_id}` started, so a resume would build different images: \
                 restore it (the run's copy is `{}/inputs/{}`) or start a new run",
                record.dir(),
                name.to_string_lossy()
            );
        }
    }
    if let Some(last) = record.attempts.last().filter(|a| !a.finished) {
        eprintln!(
            "run `{run_id}`: attempt {} never finished (its command was killed); its builders are rebuilt",
            last.number
        );
    }
    let remaining = record.unfinished();
    if remaining.is_empty() {
        eprintln!(
            "run `{run_id}`: all {} builders already succeeded; nothing to rebuild",
            record.builders.len()
        );
        interrupt::check("merging")?;
        cmd::mark_started();
        return finish(sh, record, kind, options);
    }
    let matrix = project::matrix(sh)?;
    let packer = Packer::detect(sh)?;
    let (credentials, credentials_source) = load_credentials(sh, root, kind, flags)?;
    eprintln!(
        "resuming run `{run_id}` ({} {}, branch {}): rebuilding {} of {} builders: {}",
        record.kind,
        record.version,
        record.branch,
        remaining.len(),
        record.builders.len(),
        remaining.join(", ")
    );
    refuse_unconfirmable(kind, flags)?;
    let (standin, credentials) = start(sh, root, options, &matrix, credentials)?;
    let all: Vec<String> = record.builders.keys().cloned().collect();
    write_template(sh, root, &matrix, &record, &all, standin.as_ref())?;
    let mut remaining = remaining;
    if flags.skip_cloud_checks {
        eprintln!("{}", cloud::SKIPPED);
        record.cloud_checks = Some(cloud::SKIPPED_RECORD.to_string());
        record.save(sh)?;
    } else {
        let template: serde_json::Value = crate::core::json::parse(&project::read(
            sh,
            &format!("{}/template.json", record.dir()),
        )?)
        .map_err(|e| anyhow::anyhow!("cannot read back the run's template: {e}"))?;
        // A builder whose image exists with this run's tags was built: adopt it, don't fail.
        let adopted = cloud::gate(
            sh,
            root,
            cloud::Gate {
                planned: preflight::planned(&template, &remaining),
                public: !record.private && kind == Kind::Official && matrix.settings.public,
                standin: standin.as_ref(),
                expected_account: credentials.account_id.clone(),
                credentials_source,
                owner: Some(preflight::Ownership {
                    project: matrix.settings.project.clone(),
                    version: record.version.clone(),
                    commit: record.commit.clone(),
                    run_id: record.run_id.clone(),
                }),
                resume: resume_hint(kind, flags),
                same_base_for_both: preflight::same_base_for_both(&matrix),
            },
        )?;
        for adopted in &adopted {
            eprintln!(
                "adopted {}: its image {} in {} exists with this run's tags (Packer made it, the run did not record it)",
                adopted.builder, adopted.ami, adopted.region
            );
            record.adopt(&adopted.builder, &adopted.region, &adopted.ami);
        }
        if !adopted.is_empty() {
            record.save(sh)?;
            remaining = record.unfinished();
        }
    }
    if remaining.is_empty() {
        drop(standin);
        cmd::mark_started();
        return finish(sh, record, kind, options);
    }
    confirm_launch(kind, flags)?;
    interrupt::check("anything started")?;
    cmd::mark_started();
    lock::set_run(&run_id);
    interrupt::set_resume(resume_command(&record, options));
    attempt(
        sh,
        &packer,
        &credentials,
        &matrix,
        standin.as_ref(),
        &mut record,
        remaining,
        flags,
    )?;
    drop(standin);
    finish(sh, record, kind, options)
}

/// Generates the run's template from the recorded inputs: the same epoch, commit and run id give
/// the same names and bundle locations on every attempt.
fn write_template(
    sh: &Shell,
    root: &Path,
    matrix: &matrix::Matrix,
    record: &RunRecord,
    only: &[String],
    standin: Option<&Standin>,
) -> Result<template::Plan> {
    let run_dir = runs::run_dir(root, &record.run_id);
    // A rehearsal of failure: builders named in `XTASK_LOCAL_FAIL` fail in the stand-in's
    // provisioning (local builds only), so a resume can be tried without touching any file.
    let fail = project::split_names(&[sh.var("XTASK_LOCAL_FAIL").unwrap_or_default()]);
    // A rehearsal of a wrong image report: these builders bake another version.
    let wrong = project::split_names(&[sh.var("XTASK_LOCAL_WRONG_VERSION").unwrap_or_default()]);
    let local = standin.map(|s| s.template_local(root, &run_dir, fail, wrong));
    let inputs = Inputs {
        kind: record.kind,
        version: &record.version,
        branch: &record.branch,
        epoch: record.epoch,
        git_commit: &record.commit,
        run_id: &record.run_id,
        only,
        private: record.private,
        report_dir: &record.report_dir(),
        local: local.as_ref(),
    };
    let template = template::generate(matrix, &inputs).map_err(anyhow::Error::msg)?;
    let plan = template::plan(matrix, &inputs).map_err(anyhow::Error::msg)?;
    if let Some(local) = &local {
        sh.create_dir(&local.work_dir)?;
        // The stand-in "instance" is this machine: its upload folders must exist, as /tmp does
        // on a real instance.
        for builder in &plan.builders {
            sh.create_dir(local.remote_folder(&builder.name))?;
            if record.kind != Kind::TestEbs {
                sh.create_dir(format!("{}/{}/x509", local.work_dir, builder.name))?;
            }
        }
    }
    project::write_atomic(
        sh,
        &format!("{}/template.json", record.dir()),
        &template::render(&template),
    )?;
    Ok(plan)
}

/// One `packer validate` + `packer build` over `builders` (all when empty), then the check of
/// every image report.
#[allow(clippy::too_many_arguments)]
fn attempt(
    sh: &Shell,
    packer: &Packer,
    credentials: &Credentials,
    matrix: &matrix::Matrix,
    standin: Option<&Standin>,
    record: &mut RunRecord,
    builders: Vec<String>,
    options: &Flags,
) -> Result<()> {
    let dir = record.dir();
    let template = Path::new(&dir).join("template.json");
    packer.validate(sh, &template, &credentials.var_file, &credentials.masker)?;
    let number = runs::next_attempt(record, Path::new(&dir));
    let output_log = format!("{dir}/output-{number}.log");
    let packer_log = format!("{dir}/packer-{number}.log");
    let mut args = Vec::new();
    if !builders.is_empty() {
        args.push(format!("-only={}", builders.join(",")));
    }
    if options.no_parallel {
        args.push(packer.no_parallel_flag().to_string());
    }
    if options.debug {
        args.push("-debug".to_string());
    }
    args.extend(packer.translate(&options.packer_args));
    let attempted: Vec<String> = if builders.is_empty() {
        record.builders.keys().cloned().collect()
    } else {
        builders
    };
    // Reports of earlier attempts must not pass for this one's.
    sh.create_dir(record.report_dir())
        .with_context(|| format!("cannot create `{}`", record.report_dir()))?;
    for name in &attempted {
        let _ = sh.remove_path(format!("{}/{name}.json", record.report_dir()));
    }
    if let Some(standin) = standin {
        let world = World::new(&sh.current_dir().join(&dir));
        world.prepare(
            sh,
            &sh.current_dir(),
            matrix,
            (&record.branch, &record.commit),
            &standin.venv.join("bin/python"),
        )?;
        for image in matrix.enabled() {
            if attempted.contains(&image.builder_name()) {
                world.seed(image)?;
            }
        }
    }
    interrupt::check("launching Packer")?;
    // Recorded before Packer starts: if this command is killed, the next attempt gets the next
    // number (its logs stay) and the resume says that this one never finished.
    record.attempts.push(Attempt {
        number,
        started: project::epoch().unwrap_or(record.epoch),
        builders: attempted.clone(),
        output_log: output_log.clone(),
        packer_log: packer_log.clone(),
        interrupted: false,
        finished: false,
    });
    record.save(sh)?;
    let terminal = std::io::stderr().is_terminal() && !options.debug;
    let mut view = View::new(attempted.clone(), terminal);
    eprintln!(
        "building {} image(s) with Packer {}...",
        attempted.len(),
        packer.version
    );
    let result = packer.build(
        sh,
        &BuildRequest {
            template: &template,
            var_file: &credentials.var_file,
            args,
            output_log: sh.current_dir().join(&output_log),
            packer_log: sh.current_dir().join(&packer_log),
            masker: &credentials.masker,
            debug: options.debug,
        },
        &mut view,
    )?;
    record.apply(&result.tracker, &attempted, result.interrupted, &output_log);
    check_reports(sh, matrix, record, &attempted);
    if let Some(last) = record.attempts.last_mut() {
        last.interrupted = result.interrupted;
        last.finished = true;
    }
    record.save(sh)?;
    if !result.packer_succeeded && !result.interrupted && record.unfinished().is_empty() {
        eprintln!(
            "warning: Packer exited with an error although every builder finished; see its log"
        );
    }
    Ok(())
}

/// Accepts an image only when its report, measured on the image, meets `build/expect.json` and
/// its row: a builder whose report is missing or differs is failed, and its AMI is neither merged
/// nor tagged.
fn check_reports(
    sh: &Shell,
    matrix: &matrix::Matrix,
    record: &mut RunRecord,
    attempted: &[String],
) {
    let report_dir = record.report_dir();
    let expectation = sh
        .read_file(report::EXPECT_PATH)
        .map_err(|e| format!("cannot read `{}`: {e}", report::EXPECT_PATH))
        .and_then(|text| report::Expectation::parse(&text));
    for name in attempted {
        let Some(builder) = record.builders.get_mut(name) else {
            continue;
        };
        if builder.state != BuilderState::Succeeded {
            continue;
        }
        let path = format!("{report_dir}/{name}.json");
        let text = sh.read_file(&path).ok();
        let row = matrix.images.iter().find(|i| &i.builder_name() == name);
        let expected = report::Expected {
            builder: name,
            version: &record.version,
            branch: &record.branch,
            ds0_branch: (record.kind == Kind::Official).then_some(record.branch.as_str()),
            commit: &record.commit,
            os_version: row.map_or("?", |i| i.os_version.as_str()),
            virtualization: row.map_or("?", |i| i.virtualization.as_str()),
            archive: row
                .and_then(|i| matrix.settings.archives.get(&i.os_version))
                .map(String::as_str),
            local: record.local,
        };
        let checked = expectation
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|expectation| report::check(text.as_deref(), expectation, &expected));
        match checked {
            Ok(report) => builder.comboami_commit = Some(report.comboami.commit),
            Err(problem) => {
                let amis: Vec<String> = builder.amis.iter().map(|a| a.id.clone()).collect();
                builder.state = BuilderState::Failed;
                // Packer has registered it already, public for an official release: say so.
                let public = record.kind == Kind::Official && !record.private;
                builder.error = Some(format!(
                    "image report `{path}`: {problem}; so its AMI {} is not accepted (not merged, \
                     not tagged){}; `cargo xtask cleanup --run {}` lists it, `--execute` removes it",
                    amis.join(", "),
                    if public && matrix.settings.public {
                        ", but Packer made it PUBLIC"
                    } else {
                        ""
                    },
                    record.run_id
                ));
            }
        }
    }
}

/// How the packages of each image changed since the previous run of the same kind (and
/// locality) that has reports: both lists are in the runs' `reports/` folders.
fn package_changes(sh: &Shell, record: &RunRecord) -> Vec<String> {
    let packages = |run: &RunRecord, builder: &str| {
        let text = sh
            .read_file(format!("{}/{builder}.json", run.report_dir()))
            .ok()?;
        let report: report::ImageReport = crate::core::json::parse(&text).ok()?;
        Some(report.packages)
    };
    let previous = runs::list(&sh.current_dir())
        .into_iter()
        .filter(|r| r.kind == record.kind && r.local == record.local)
        .filter(|r| (r.epoch, &r.run_id) < (record.epoch, &record.run_id))
        .rfind(|r| r.builders.keys().any(|b| packages(r, b).is_some()));
    let Some(previous) = previous else {
        return Vec::new();
    };
    let mut by_builder = std::collections::BTreeMap::new();
    for builder in record.builders.keys() {
        if let (Some(old), Some(new)) = (packages(&previous, builder), packages(record, builder)) {
            by_builder.insert(builder.clone(), report::package_changes(&old, &new));
        }
    }
    report::render_package_changes(&previous.run_id, &by_builder)
}

/// Merges (publish), prints the summary, and turns failures into exit status 1.
fn finish(sh: &Shell, record: RunRecord, kind: Kind, options: &Options) -> Result<Finished> {
    if interrupt::requested() {
        // Never merge a partial run as if it were complete: the resume merges.
        let done = record.builders.len() - record.unfinished().len();
        let merge = match &record.registry {
            Some(path) => format!("; `{path}` was not changed"),
            None => String::new(),
        };
        let rest = match (done == record.builders.len(), record.registry.is_some()) {
            (true, _) => "merge",
            (false, true) => "build the rest and merge",
            (false, false) => "build the rest",
        };
        return Err(anyhow::Error::new(interrupt::Interrupted(format!(
            "run `{}` stopped: {done} of {} builders finished and are recorded{merge}: run `{}` to {rest}",
            record.run_id,
            record.builders.len(),
            resume_command(&record, options),
        ))));
    }
    let mut changes = Vec::new();
    if let Some(path) = &record.registry {
        // Every time, resumes included: a merge of the same AMIs changes nothing.
        changes = cmd::ami_ids::merge_into(sh, path, &record.amis())?;
        if !changes.is_empty() {
            output::say(format!("`{path}`:"));
        }
        for change in &changes {
            output::say(format!("  {change}"));
        }
    }
    let standin_root = options
        .release
        .as_ref()
        .and_then(|r| r.standin_root.clone())
        .unwrap_or_else(|| sh.current_dir());
    let standin_kept = record.local && Standin::running(&standin_root).is_some();
    output::say(summary(&record, kind, options, standin_kept).trim_end());
    if record.registry.is_some() {
        package_changes(sh, &record).iter().for_each(output::say);
    }
    if options.flags.json && options.release.is_none() {
        output::document(serde_json::json!({
            "command": command_name(kind),
            "ok": record.unfinished().is_empty(),
            "run_id": record.run_id,
            "run_folder": record.dir(),
            "succeeded": record.builders.len() - record.unfinished().len(),
            "failed": record.unfinished(),
            "amis": record.amis(),
            "registry": record.registry,
            "registry_changes": changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "retry": retry_command(&record, options),
            "run": record,
        }));
    }
    if record.unfinished().is_empty() {
        Ok(Finished { record })
    } else {
        let what = format!(
            "run `{}`: {} of {} builders did not succeed",
            record.run_id,
            record.unfinished().len(),
            record.builders.len()
        );
        match retry_command(&record, options) {
            // A release states its own fix: resuming the release.
            Some(retry) if options.release.is_none() => Err(anyhow::Error::new(BuildsFailed)).fix(
                || what,
                || format!("the summary above says why each failed; `{retry}` rebuilds only those"),
            ),
            _ => Err(anyhow::Error::new(BuildsFailed)).context(what),
        }
    }
}

/// `standin_kept`: a local run's images outlive it (the stand-in of `local up`).
fn summary(record: &RunRecord, kind: Kind, options: &Options, standin_kept: bool) -> String {
    let width = record
        .builders
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!(
        "\n{:<width$}  {:<11}  AMI(s) or error\n",
        "builder", "result"
    );
    for (name, b) in &record.builders {
        let detail = match b.state {
            BuilderState::Succeeded => {
                let amis = b.amis.iter().map(|a| format!("{}:{}", a.region, a.id)).collect::<Vec<_>>().join(" ");
                match &b.note {
                    Some(note) => format!("{amis} ({note})"),
                    None => amis,
                }
            }
            BuilderState::Exists => format!(
                "an image named `{}` already exists: {} (an earlier attempt made it; deregister it with `cargo xtask cleanup` to rebuild)",
                b.ami_name,
                b.existing_ami.as_deref().unwrap_or("?")
            ),
            _ => view::first_line(b.error.as_deref().unwrap_or("")).to_string(),
        };
        let state = if b.state == BuilderState::Succeeded {
            "ok".to_string()
        } else {
            b.state.as_str().to_uppercase()
        };
        out.push_str(&format!("{name:<width$}  {state:<11}  {detail}\n"));
    }
    let failed = record.unfinished();
    // Short lines: the summary stays readable in an 80-column terminal.
    out.push_str(&format!(
        "\n{} run `{}`: {} of {} builders succeeded\n  version {}, branch {}{}\n",
        record.kind,
        record.run_id,
        record.builders.len() - failed.len(),
        record.builders.len(),
        record.version,
        record.branch,
        if record.local { ", local stand-in" } else { "" },
    ));
    if let Some(skipped) = record
        .cloud_checks
        .as_ref()
        .filter(|c| c.starts_with("SKIPPED"))
    {
        out.push_str(&format!("cloud checks: {skipped}\n"));
    }
    if let Some(attempt) = record.attempts.last() {
        out.push_str(&format!(
            "full output (secrets masked):\n  {}\n",
            attempt.output_log
        ));
    }
    if let Some(path) = record
        .registry
        .as_ref()
        .filter(|p| p.starts_with(runs::RUNS_DIR))
    {
        out.push_str(&format!(
            "local run: the real `{REGISTRY_PATH}` was not touched; AMIs merged into\n  {path}\n"
        ));
    }
    if kind.is_test() && failed.len() < record.builders.len() {
        let cleanup = format!(
            "cargo xtask cleanup --run {}{} --execute",
            record.run_id,
            if record.local { " --local" } else { "" }
        );
        out.push_str(&match (record.local, standin_kept) {
            (false, _) => format!(
                "test AMIs are private and not added to the registry; remove them with `{cleanup}`\n"
            ),
            (true, true) => format!(
                "test AMIs are in the stand-in kept by `cargo xtask local up`; remove them with `{cleanup}`\n"
            ),
            (true, false) => "test AMIs lived in this command's own stand-in and are gone with it; \
                 to keep them for `cargo xtask cleanup --local`, start one first with `cargo xtask local up`\n"
                .to_string(),
        });
    }
    if let Some(retry) = retry_command(record, options) {
        out.push_str(&format!(
            "retry only the builders that did not succeed:\n  {retry}\n"
        ));
    }
    out
}

/// The command that builds this kind.
fn command_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Official => "publish",
        other => other.as_str(),
    }
}

/// The command that builds what did not succeed, if anything did not.
fn retry_command(record: &RunRecord, options: &Options) -> Option<String> {
    let failed = record.unfinished();
    if failed.is_empty() {
        return None;
    }
    Some(resume_command(record, options))
}

/// The plan a build of `version` would show, without reading credentials or starting anything
/// (a release shows it before `ds0_utils.py` holds the new version).
pub fn preview(
    sh: &Shell,
    kind: Kind,
    version: &str,
    branch: &str,
    flags: &Flags,
    registry: Option<&str>,
) -> Result<String> {
    let matrix = project::matrix(sh)?;
    let only = project::split_names(&flags.only);
    let inputs = Inputs {
        kind,
        version,
        branch,
        epoch: 0,
        git_commit: "",
        run_id: "",
        only: &only,
        private: flags.private,
        report_dir: "",
        local: None,
    };
    let plan = template::plan(&matrix, &inputs).map_err(anyhow::Error::msg)?;
    Ok(plan_text(
        &matrix,
        &plan,
        version,
        branch,
        &matrix.settings.launch_size,
        flags,
        registry,
    ))
}

/// Where a run merges its AMIs: publish only; a local publish never writes the real registry
/// (an empty path stands for the scratch copy, named once the run id is known).
fn registry_target(kind: Kind, options: &Options) -> Option<String> {
    if kind != Kind::Official || options.flags.private {
        return None;
    }
    match (&options.release, options.flags.local) {
        (Some(release), _) => release.registry.clone(),
        (None, false) => Some(REGISTRY_PATH.to_string()),
        (None, true) => Some(String::new()),
    }
}

fn plan_text(
    matrix: &matrix::Matrix,
    plan: &template::Plan,
    version: &str,
    branch: &str,
    launch_size: &str,
    flags: &Flags,
    registry: Option<&str>,
) -> String {
    let kind = plan.kind;
    let regions = plan.regions();
    // What the template really sets, not what the kind usually is.
    let public = plan.public;
    let target = if flags.local {
        "the LOCAL stand-in (no AWS account, no cost)"
    } else {
        "AWS (this costs money)"
    };
    let regions_text = regions
        .iter()
        .map(|(r, n)| format!("{r} ({n})"))
        .collect::<Vec<_>>();
    // Short lines: the plan stays readable in an 80-column terminal, also indented in a release.
    let mut out = format!(
        "plan: {kind} build of ComboAMI {version} (branch {branch})\n  \
         against {target}\n  \
         launches {} {launch_size} instance(s) in {} region(s):\n{}  \
         images will be {}\n",
        plan.builders.len(),
        regions.len(),
        wrap_list(&regions_text, 60, "    "),
        match (public, kind) {
            (true, _) => "PUBLIC (ami_groups: all)",
            (false, Kind::Official) if matrix.settings.public => {
                "PRIVATE (ami_groups empty: a candidate, or `--private`)"
            }
            (false, _) => "private",
        },
    );
    if flags.skip_cloud_checks {
        out.push_str(&format!("  {}\n", cloud::SKIPPED));
    }
    match registry {
        Some("") => out.push_str(&format!(
            "  AMIs are merged into a scratch copy of `{REGISTRY_PATH}` in the run folder\n"
        )),
        Some(path) => out.push_str(&format!("  AMIs are merged into `{path}`\n")),
        None if kind == Kind::Official => out.push_str(&format!(
            "  AMIs are kept in the run record (and a candidate's tag message); `{REGISTRY_PATH}` is left alone\n"
        )),
        None => out.push_str("  AMIs are listed, not added to the registry\n"),
    }
    out
}

/// `items` joined with ", " into lines of at most `width` characters (an item longer than that
/// gets a line of its own), each line indented and ended.
fn wrap_list(items: &[String], width: usize, indent: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item = if index + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        match lines.last_mut() {
            Some(line) if line.len() + 1 + item.len() <= width => {
                line.push(' ');
                line.push_str(&item);
            }
            _ => lines.push(item),
        }
    }
    lines.iter().map(|l| format!("{indent}{l}\n")).collect()
}

/// The command that continues `record`'s run.
fn resume_command(record: &RunRecord, options: &Options) -> String {
    let local = if record.local { " --local" } else { "" };
    match (&options.release, record.kind) {
        (Some(release), _) => release.resume_command.clone(),
        (None, Kind::Official) => format!("cargo xtask publish --resume {}{local}", record.run_id),
        (None, kind) => {
            let unfinished = record.unfinished();
            // Without `--only`, a run where nothing finished is simply run again; with it (or
            // when some finished) the command names exactly what is left, never more.
            let whole_matrix = options.flags.only.is_empty();
            let only = if unfinished.is_empty()
                || (whole_matrix && unfinished.len() == record.builders.len())
            {
                String::new()
            } else {
                format!(" --only {}", unfinished.join(","))
            };
            let branch = match &options.flags.branch {
                Some(branch) => format!(" --branch {branch}"),
                None => String::new(),
            };
            format!("cargo xtask {kind}{only}{branch}{local}")
        }
    }
}

/// The scratch registry of a local publish, in its run folder.
pub fn scratch_registry(run_id: &str) -> String {
    format!("{}/{run_id}/{REGISTRY_PATH}", runs::RUNS_DIR)
}
