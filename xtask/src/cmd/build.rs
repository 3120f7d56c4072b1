//! `cargo xtask test-ebs`, `test-instance` and `publish`: preflight, plan, template, validate,
//! build with a live view, record, merge, summary; and `publish --resume`. A release's publish
//! step runs the same code on the release's record ([`continue_run`]).

use crate::aws::Aws;
use crate::cmd::proof;
use crate::credentials::{self, Credentials};
use crate::error::{BuildsFailed, FixContext};
use crate::interrupt::{self, Progress};
use crate::packer::{BuildRequest, Packer};
use crate::pure::registry::REGISTRY_PATH;
use crate::pure::render::{self, PlanNotes, SummaryNotes};
use crate::pure::template::{self, Kind, Spec};
use crate::pure::{ds0, matrix, preflight, report};
use crate::runs::{self, Attempt, BuilderState, RunRecord};
use crate::simulated::World;
use crate::standin::{Rehearsed, Standin};
use crate::view::{self, View};
use crate::{cloud, cmd, lock, output, project};
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xshell::Shell;

/// The flags every build shares.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Only these builders (names like `us-east-1-1404-hvm`, comma-separated or repeated).
    #[arg(long, num_args = 1..)]
    only: Vec<String>,
    /// Run against the local AWS stand-in: no account, no cost.
    #[arg(long)]
    local: bool,
    /// Print the end-of-run summary as one JSON document on stdout (the live view and
    /// everything else go to stderr).
    #[arg(long)]
    json: bool,
    /// Launch without asking AWS first (emergencies only: said loudly in the plan and the run record).
    #[arg(long)]
    skip_cloud_checks: bool,
    /// Options passed on to `packer build` (after `--`).
    #[arg(last = true, value_name = "PACKER_ARGS")]
    packer_args: Vec<String>,
}

impl BuildArgs {
    /// How this command launches, before the flags of its own.
    fn launch(&self, cx: &crate::cmd::Context) -> Launch {
        Launch {
            packer_args: self.packer_args.clone(),
            skip_cloud_checks: self.skip_cloud_checks,
            json: self.json,
            standin_root: cx.root().to_path_buf(),
            progress: cx.progress.clone(),
            ..Default::default()
        }
    }

    /// What this command builds: the version and branch of `ds0_utils.py` (or `branch`), now.
    fn spec(&self, sh: &Shell, kind: Kind, branch: Option<&str>, private: bool) -> Result<Spec> {
        let (version, ds0_branch) = project::version_and_branch(sh)?;
        refuse_uncommitted_ds0(sh, &version, &ds0_branch)?;
        let branch = match branch {
            Some(branch) => {
                ds0::check_branch(branch)
                    .map_err(|e| anyhow::anyhow!("`--branch {branch}`: {e}"))?;
                branch.to_string()
            }
            None => ds0_branch,
        };
        let mut commit = project::git_commit(sh);
        if kind.is_test() && !self.local && commit != "unknown" {
            commit = on_remote(sh, &branch, commit);
        }
        Ok(Spec {
            kind,
            local: self.local,
            version,
            branch,
            commit,
            epoch: project::epoch()?,
            private,
            registry: registry_target(kind, private, self.local),
            only: project::names("--only", &self.only)?,
        })
    }
}

/// Images bake a commit, not the working tree: a version or branch in `ds0_utils.py` that HEAD
/// does not hold would be baked as HEAD's, and every image rejected after its launch. (A folder
/// that is not a git repository is committed as it is by a local build.)
fn refuse_uncommitted_ds0(sh: &Shell, version: &str, branch: &str) -> Result<()> {
    let committed = crate::git::Git::open(&sh.current_dir())
        .and_then(|git| git.file_at_head(ds0::DS0_PATH))
        .ok()
        .and_then(|text| ds0::read(&text).ok());
    let Some((head_version, head_branch)) = committed else {
        return Ok(());
    };
    if (head_version.as_str(), head_branch.as_str()) == (version, branch) {
        return Ok(());
    }
    // Building what HEAD holds is a way out only when a build could use it.
    let head_buildable = ds0::check_branch(&head_branch).is_ok()
        && crate::pure::version::parse(&head_version).is_ok();
    let or_head = match head_buildable {
        true => format!(
            ", or build {head_version} with `git checkout {}`",
            ds0::DS0_PATH
        ),
        false => String::new(),
    };
    Err(crate::error::refused(
        format!(
            "`{}` holds version {version} (branch {branch}), but HEAD, the commit the images bake, holds {head_version} (branch {head_branch}): nothing was launched",
            ds0::DS0_PATH
        ),
        format!(
            "commit it first (`git commit -m \"ComboAMI {version}\" {}`){or_head}",
            ds0::DS0_PATH
        ),
    ))
}

/// The commit a test build on AWS bakes: the instance clones `origin`, so HEAD when it is on
/// `origin/BRANCH`, else that branch's tip, said so (a local build clones this repository).
fn on_remote(sh: &Shell, branch: &str, head: String) -> String {
    let root = sh.current_dir();
    let tip = crate::git::remote_branch_tip(sh, &root, "origin", branch);
    let contained = |tip: &str| {
        crate::git::Git::open(&root)
            .is_ok_and(|git| git.has_commit(tip) && git.is_ancestor(&head, tip))
    };
    match tip {
        Ok(Some(tip)) if tip == head || contained(&tip) => head,
        Ok(Some(tip)) => {
            eprintln!(
                "note: HEAD {} is not on `origin/{branch}`, so the images bake `origin/{branch}` at {} instead (push HEAD to bake it: `git push origin HEAD:{branch}`)",
                crate::cmd::checks::short(&head),
                crate::cmd::checks::short(&tip)
            );
            tip
        }
        Ok(None) | Err(_) => {
            eprintln!(
                "warning: `origin` has no branch `{branch}` (or cannot be asked): the images try to bake HEAD {}, which the instance can only check out once it is pushed",
                crate::cmd::checks::short(&head)
            );
            head
        }
    }
}

/// The flags of a test build (`test-ebs`, `test-instance`).
#[derive(clap::Args)]
pub struct TestArgs {
    #[command(flatten)]
    common: BuildArgs,
    /// Bake this ComboAMI branch instead of the one in `ds0_utils.py`.
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
    /// Launch without asking, after the plan is shown (test builds on AWS cost money too).
    #[arg(long)]
    yes: bool,
}

impl TestArgs {
    fn run(self, cx: &crate::cmd::Context, kind: Kind) -> Result<std::process::ExitCode> {
        let launch = Launch {
            yes: self.yes,
            branch: self.branch.clone(),
            ..self.common.launch(cx)
        };
        let spec = self
            .common
            .spec(cx.sh, kind, self.branch.as_deref(), false)?;
        new_run(cx.sh, cx.root(), spec, &launch)?;
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// Build private EBS-backed test images in the test region.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask test-ebs --local\n  cargo xtask test-ebs --only us-east-1-1404-hvm --yes"
)]
pub struct TestEbs {
    #[command(flatten)]
    args: TestArgs,
}

/// Build private instance-store test images in the test region.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask test-instance --local\n  cargo xtask test-instance --branch my-fix --yes"
)]
pub struct TestInstance {
    #[command(flatten)]
    args: TestArgs,
}

impl crate::cmd::Cmd for TestEbs {
    const NAME: &'static str = "test-ebs";
    fn lock(&self) -> Option<crate::lock::Busy> {
        Some(crate::lock::Busy::Refuse)
    }
    fn json(&self) -> bool {
        self.args.common.json
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        self.args.run(cx, Kind::TestEbs)
    }
}

impl crate::cmd::Cmd for TestInstance {
    const NAME: &'static str = "test-instance";
    fn lock(&self) -> Option<crate::lock::Busy> {
        Some(crate::lock::Busy::Refuse)
    }
    fn json(&self) -> bool {
        self.args.common.json
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        self.args.run(cx, Kind::TestInstance)
    }
}

/// Build every enabled row of the matrix as public images and merge them into `ami_ids.json`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask publish --local --yes\n  cargo xtask publish --resume --yes\n  cargo xtask publish --only us-east-1-1404-hvm --private"
)]
pub struct Publish {
    #[command(flatten)]
    common: BuildArgs,
    /// Build one builder at a time (troubleshooting).
    #[arg(long)]
    no_parallel: bool,
    /// Pause after every Packer step (needs a terminal).
    #[arg(long)]
    debug: bool,
    /// Launch without asking, after the plan is shown.
    #[arg(long)]
    yes: bool,
    /// Build private images (`ami_groups` empty) and leave `ami_ids.json` alone.
    #[arg(long)]
    private: bool,
    /// Rebuild only what did not succeed in the latest run, or in RUN.
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// Make the proven images public (and merge them) even when some builders failed: a
    /// partial set, on purpose (said loudly). Without it nothing is public until all are proven.
    #[arg(long)]
    partial: bool,
}

impl crate::cmd::Cmd for Publish {
    const NAME: &'static str = "publish";
    fn lock(&self) -> Option<crate::lock::Busy> {
        Some(crate::lock::Busy::Refuse)
    }
    fn json(&self) -> bool {
        self.common.json
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        let launch = Launch {
            no_parallel: self.no_parallel,
            debug: self.debug,
            yes: self.yes,
            partial: self.partial,
            ..self.common.launch(cx)
        };
        match self.resume {
            Some(run) => {
                let run = Some(run).filter(|r| !r.is_empty());
                resume(cx.sh, cx.root(), self.common.local, run, &launch)?;
            }
            None => {
                let spec = self
                    .common
                    .spec(cx.sh, Kind::Official, None, self.private)?;
                new_run(cx.sh, cx.root(), spec, &launch)?;
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// How a build launches and talks: what the commands' flags say besides what to build (that is
/// the [`Spec`]).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Launch without asking (a release asked already).
    pub yes: bool,
    pub no_parallel: bool,
    pub debug: bool,
    pub packer_args: Vec<String>,
    /// `--skip-cloud-checks`: launch without asking AWS first (emergencies only; said loudly).
    pub skip_cloud_checks: bool,
    /// `--json`: the summary is also the run's JSON document on stdout.
    pub json: bool,
    /// Where the local stand-in lives: this repository, or the real one for a release rehearsal
    /// (which runs in a scratch clone but shares the real repository's stand-in and virtualenv).
    pub standin_root: PathBuf,
    /// `--branch` of a test build, repeated in its retry command.
    pub branch: Option<String>,
    /// `--partial`: the proven images are made public even when some builders failed.
    pub partial: bool,
    /// The command's progress, marked once the run changes something.
    pub progress: Arc<Progress>,
}

/// What a finished build reports to its caller (the release command builds on it).
pub struct Finished {
    pub record: RunRecord,
}

/// What a build launches with: the matrix, Packer, the credentials Packer gets, and the
/// stand-in of a `--local` build (stopped when this is dropped, unless `local up` keeps it).
struct Kit {
    matrix: matrix::Matrix,
    packer: Packer,
    credentials: Credentials,
    standin: Option<Standin>,
    /// Records verdicts, and makes proven images public.
    aws: Aws,
}

/// A new run of `spec`: preflight, plan, cloud checks, confirmation, then the record and the
/// build.
fn new_run(sh: &Shell, root: &Path, mut spec: Spec, launch: &Launch) -> Result<Finished> {
    interrupt::install(launch.progress.clone());
    let (kit, plan, found) = preflight(sh, root, &spec, launch)?;
    // Effects from here on.
    confirm_launch(spec.kind, spec.local, launch)?;
    interrupt::check("anything started")?;
    let run_id = runs::new_run_id(root, spec.kind, spec.local, spec.epoch)?;
    launch.progress.mark_started();
    if spec.registry.as_deref() == Some("") {
        spec.registry = Some(scratch_registry(&run_id));
    }
    if spec.local && spec.commit == "unknown" {
        // Not a git repository: a local build bakes its files, committed for the stand-in.
        let run_dir = sh.current_dir().join(runs::run_dir(root, &run_id));
        spec.commit = World::new(&run_dir).snapshot(root, &spec.branch)?;
    }
    let mut record = RunRecord::new(run_id, spec, &plan, found.recorded());
    runs::keep_inputs(sh, &record)?;
    if let Some(path) = record
        .spec
        .registry
        .as_ref()
        .filter(|p| p.starts_with(runs::RUNS_DIR))
    {
        // A rehearsal merges into a scratch copy, never into the real registry.
        sh.copy_file(REGISTRY_PATH, path)
            .with_context(|| format!("cannot copy `{REGISTRY_PATH}` to `{path}`"))?;
    }
    // The record comes first, so an interrupt from here on leaves a run to resume.
    record.save(sh)?;
    lock::set_run(&record.run_id, record.spec.local);
    launch.progress.set_resume(resume_command(&record, launch));
    eprintln!(
        "run `{}`\n  logs and record in `{}/`",
        record.run_id,
        record.dir()
    );
    write_template(sh, root, &kit.matrix, &record, kit.standin.as_ref())?;
    let adopted = found.adopted();
    let only = if !adopted.is_empty() {
        proof::review_found(sh, &kit.aws, &kit.matrix, &mut record, adopted)?;
        record.cloud_checks = Some("passed".to_string());
        record.save(sh)?;
        record.unfinished()
    } else if record.spec.only.is_empty() {
        Vec::new()
    } else {
        plan.names()
    };
    if adopted.is_empty() || !only.is_empty() {
        attempt(sh, &kit, &mut record, only, launch)?;
    }
    let public = publish_proven(sh, &kit, &mut record, launch)?;
    drop(kit);
    finish(sh, record, launch, public)
}

/// An official run's images are registered private; once every builder is proven (or with
/// `--partial`, the proven ones), they are made public and protected, all at once. Returns
/// whether the run is meant to be public (the summary says when it is not yet).
fn publish_proven(sh: &Shell, kit: &Kit, record: &mut RunRecord, launch: &Launch) -> Result<bool> {
    let public = template::is_public(&kit.matrix, &record.spec);
    if public && !interrupt::requested() {
        proof::make_public(sh, &kit.aws, &kit.matrix, record, launch.partial)?;
    }
    Ok(public)
}

/// What the cloud checks of a new run found: skipped on purpose, or passed with the images of
/// this version and commit that runs elsewhere made (to review and adopt).
enum Found {
    Skipped,
    Passed(Vec<preflight::Adopted>),
}

impl Found {
    /// For the record; none while found images wait for review, so a command killed before
    /// that asks the cloud again on resume.
    fn recorded(&self) -> Option<String> {
        match self {
            Found::Skipped => Some(cloud::SKIPPED_RECORD.to_string()),
            Found::Passed(adopted) if adopted.is_empty() => Some("passed".to_string()),
            Found::Passed(_) => None,
        }
    }

    fn adopted(&self) -> &[preflight::Adopted] {
        match self {
            Found::Skipped => &[],
            Found::Passed(adopted) => adopted,
        }
    }
}

/// Everything that can be checked before anything starts: the plan (shown), Packer, the
/// credentials, the stand-in for `--local`, and the cloud. Returns what the cloud checks found.
fn preflight(
    sh: &Shell,
    root: &Path,
    spec: &Spec,
    launch: &Launch,
) -> Result<(Kit, template::Plan, Found)> {
    let matrix = project::matrix(sh)?;
    matrix::check_names(&matrix, &spec.version).map_err(anyhow::Error::msg)?;
    let plan = template::plan(&matrix, spec)?;
    let packer = Packer::detect(sh)?;
    let (credentials, credentials_source) = load_credentials(sh, root, spec.kind, spec.local)?;
    if let Some(path) = &spec.registry {
        // A scratch copy starts from the real registry: both must be readable now.
        let readable = if path.is_empty() { REGISTRY_PATH } else { path };
        project::registry(sh, readable)?;
    }
    let launch_size = credentials
        .as_ref()
        .and_then(|c| c.launch_size.clone())
        .unwrap_or_else(|| matrix.settings.launch_size.clone());
    let notes = plan_notes(&matrix, &launch_size, launch);
    eprintln!("{}", render::plan(&plan, spec, notes));
    refuse_unconfirmable(spec.kind, spec.local, launch)?;
    // The stand-in answers the cloud checks of a local build, so it starts first.
    let (standin, credentials) = start(sh, launch, spec.local, &matrix, credentials)?;
    let aws = aws_of(sh, root, standin.as_ref())?;
    let found = if launch.skip_cloud_checks {
        Found::Skipped
    } else {
        let adopted = cloud::gate(
            sh,
            root,
            cloud::Gate {
                planned: plan.builders.clone(),
                public: plan.public,
                standin: standin.as_ref(),
                expected_account: credentials.account_id.clone(),
                credentials_source,
                owner: new_run_ownership(&matrix, spec),
                resume: resume_hint(spec.kind, spec.local),
                same_base_for_both: preflight::same_base_for_both(&matrix),
            },
        )?;
        if !adopted.is_empty() {
            let note = render::launches_after_review(plan.builders.len(), adopted.len());
            eprintln!("{note}");
        }
        Found::Passed(adopted)
    };
    let kit = Kit {
        matrix,
        packer,
        credentials,
        standin,
        aws,
    };
    Ok((kit, plan, found))
}

/// The `aws` of the run: the stand-in's for `--local`, else the user's.
fn aws_of(sh: &Shell, root: &Path, standin: Option<&Standin>) -> Result<Aws> {
    match standin {
        Some(standin) => Ok(Aws::local(standin)),
        None => Aws::real(sh, root),
    }
}

fn plan_notes<'a>(matrix: &matrix::Matrix, launch_size: &'a str, launch: &Launch) -> PlanNotes<'a> {
    PlanNotes {
        launch_size,
        matrix_public: matrix.settings.public,
        cloud_skipped: launch.skip_cloud_checks.then_some(cloud::SKIPPED),
    }
}

/// The last step before launching: the stand-in (for `--local`) and the credentials Packer
/// gets — the stand-in's, or the user's loaded during preflight.
fn start(
    sh: &Shell,
    launch: &Launch,
    local: bool,
    matrix: &matrix::Matrix,
    loaded: Option<Credentials>,
) -> Result<(Option<Standin>, Credentials)> {
    interrupt::check("starting the stand-in")?;
    match (local, loaded) {
        (true, _) => {
            let standin = Standin::attach_or_start(sh, &launch.standin_root, matrix)?;
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
    local: bool,
) -> Result<(Option<Credentials>, Option<String>)> {
    if local {
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
fn confirmation(kind: Kind, local: bool) -> Option<(&'static str, &'static str)> {
    if kind == Kind::Official {
        Some(("publishing", "publish"))
    } else if !local {
        Some(("building test images on AWS", "build"))
    } else {
        None
    }
}

/// Without a terminal and without `--yes` the launch would be refused anyway: refuse right
/// after the plan, before a stand-in starts or AWS is asked.
fn refuse_unconfirmable(kind: Kind, local: bool, launch: &Launch) -> Result<()> {
    match confirmation(kind, local) {
        Some((action, answer)) if !launch.yes && !std::io::stdin().is_terminal() => {
            cmd::confirm(false, action, answer)
        }
        _ => Ok(()),
    }
}

/// The last step before launching, after the plan and the cloud checks.
fn confirm_launch(kind: Kind, local: bool, launch: &Launch) -> Result<()> {
    if let Some((action, answer)) = confirmation(kind, local) {
        cmd::confirm(launch.yes, action, answer)?;
    }
    Ok(())
}

/// How the AMI name check tells the user to resume a run (the run id is added).
fn resume_hint(kind: Kind, local: bool) -> String {
    let local = if local { " --local" } else { "" };
    match kind {
        Kind::Official => format!("cargo xtask publish{local} --resume"),
        // Test builds are retried with `--only`; their names never repeat.
        _ => String::new(),
    }
}

/// `publish --resume [RUN]`: the latest publish run (local or not, as asked), or RUN.
fn resume(
    sh: &Shell,
    root: &Path,
    local: bool,
    run: Option<String>,
    launch: &Launch,
) -> Result<Finished> {
    interrupt::install(launch.progress.clone());
    let kind = Kind::Official;
    // Without the run's folder (another machine made it) there is nothing to resume here, but
    // a new publish adopts that run's images of this version and commit.
    let elsewhere = || {
        let local = if local { " --local" } else { "" };
        let yes = if launch.yes { " --yes" } else { "" };
        format!("if the run was made on another machine, run `cargo xtask publish{local}{yes}` without `--resume`: it adopts the images of this version and commit that any run made (where their verdicts hold) and builds the rest")
    };
    let run_id = match run {
        Some(id) => id,
        None => runs::list(root)
            .into_iter()
            .rev()
            .find(|r| r.spec.kind == kind && r.spec.local == local)
            .map(|r| r.run_id)
            .ok_or_else(|| {
                crate::error::refused(
                    format!(
                        "no {}{kind} run to resume in `{}/`",
                        if local { "local " } else { "" },
                        runs::RUNS_DIR
                    ),
                    elsewhere(),
                )
            })?,
    };
    runs::check_id(&run_id)?;
    let record =
        RunRecord::load(sh, &run_id).fix(|| format!("cannot resume run `{run_id}`"), elsewhere)?;
    let recorded = &record.spec;
    if recorded.kind != kind {
        anyhow::bail!("run `{run_id}` is a {} run, not {kind}: resume it with `cargo xtask {} --resume {run_id}`", recorded.kind, recorded.kind);
    }
    if recorded.local != local {
        let flag = if recorded.local { "with" } else { "without" };
        anyhow::bail!(
            "run `{run_id}` was {} local run: resume it {flag} `--local`",
            if recorded.local { "a" } else { "not a" }
        );
    }
    continue_run(sh, root, record, launch)
}

/// Builds what `record` has not built yet (all of it on a release's first publish), adopting
/// images the cloud shows this run made, then merges and summarises. The record says what to
/// build, where to merge and how to resume; `launch` only how to run Packer.
pub fn continue_run(
    sh: &Shell,
    root: &Path,
    mut record: RunRecord,
    launch: &Launch,
) -> Result<Finished> {
    let run_id = record.run_id.clone();
    runs::keep_inputs(sh, &record)?;
    if let Some(last) = record.attempts.last().filter(|a| !a.finished) {
        eprintln!(
            "run `{run_id}`: attempt {} never finished (its command was killed); its builders are rebuilt",
            last.number
        );
    }
    let (kind, local) = (record.spec.kind, record.spec.local);
    let matrix = project::matrix(sh)?;
    let public = template::is_public(&matrix, &record.spec);
    if record.unfinished().is_empty() && (record.made_public || !public) {
        eprintln!(
            "run `{run_id}`: all {} builders already succeeded; nothing to rebuild",
            record.builders.len()
        );
        interrupt::check("merging")?;
        launch.progress.mark_started();
        return finish(sh, record, launch, public);
    }
    let packer = Packer::detect(sh)?;
    let (credentials, credentials_source) = load_credentials(sh, root, kind, local)?;
    announce(&record);
    refuse_unconfirmable(kind, local, launch)?;
    let (standin, credentials) = start(sh, launch, local, &matrix, credentials)?;
    let aws = aws_of(sh, root, standin.as_ref())?;
    let kit = Kit {
        matrix,
        packer,
        credentials,
        standin,
        aws,
    };
    write_template(sh, root, &kit.matrix, &record, kit.standin.as_ref())?;
    remove_killed_attempts_leftovers(sh, root, &record, kit.standin.as_ref(), launch)?;
    let remaining = adopt_built(sh, root, &kit, &mut record, credentials_source, launch)?;
    if remaining.is_empty() {
        launch.progress.mark_started();
        let public = publish_proven(sh, &kit, &mut record, launch)?;
        drop(kit);
        return finish(sh, record, launch, public);
    }
    confirm_launch(kind, local, launch)?;
    interrupt::check("launching the builders")?;
    launch.progress.mark_started();
    lock::set_run(&run_id, record.spec.local);
    launch.progress.set_resume(resume_command(&record, launch));
    attempt(sh, &kit, &mut record, remaining, launch)?;
    let public = publish_proven(sh, &kit, &mut record, launch)?;
    drop(kit);
    finish(sh, record, launch, public)
}

/// A killed attempt's Packer may have died before it deleted what it launched (the next command
/// stops a Packer that outlived its command, and Packer cleans up; not one killed with it):
/// the run's instances, security groups and key pairs are found and removed, after a yes
/// outside `--local`.
fn remove_killed_attempts_leftovers(
    sh: &Shell,
    root: &Path,
    record: &RunRecord,
    standin: Option<&Standin>,
    launch: &Launch,
) -> Result<()> {
    if record.attempts.last().is_none_or(|a| a.finished) {
        return Ok(());
    }
    let aws = match standin {
        Some(standin) => crate::aws::Aws::local(standin),
        None => crate::aws::Aws::real(sh, root)?,
    };
    let records = [record.clone()];
    let launched = crate::leftovers::find(&aws, root, &record.run_id, &records, &[])?;
    if launched.is_empty() {
        return Ok(());
    }
    eprintln!(
        "run `{}`: its killed attempt left these (its Packer died before it could delete them):\n{}",
        record.run_id,
        crate::pure::leftovers::render(&launched).trim_end()
    );
    if !record.spec.local {
        cmd::confirm(launch.yes, "removing them", "remove")?;
    }
    launch.progress.mark_started();
    let failures = crate::leftovers::remove(&aws, &launched);
    if failures.is_empty() {
        return Ok(());
    }
    let run = &record.run_id;
    let local = if record.spec.local { " --local" } else { "" };
    Err(anyhow::anyhow!("{}", failures.join("; "))).fix(
        || format!("cannot remove what run `{run}` left"),
        || {
            format!(
                "fix the cause above, then run `cargo xtask cleanup --run {run}{local} --execute`"
            )
        },
    )
}

/// Says what this command builds of the run: all of it (a release's first publish), or the rest.
fn announce(record: &RunRecord) {
    let remaining = record.unfinished();
    if record.attempts.is_empty() && remaining.len() == record.builders.len() {
        eprintln!(
            "run `{}`\n  logs and record in `{}/`",
            record.run_id,
            record.dir()
        );
        return;
    }
    eprintln!(
        "resuming run `{}` ({} {}, branch {}): rebuilding {} of {} builders: {}",
        record.run_id,
        record.spec.kind,
        record.spec.version,
        record.spec.branch,
        remaining.len(),
        record.builders.len(),
        remaining.join(", ")
    );
}

/// The cloud checks of a run that continues: a builder whose image exists with this run's tags
/// was built (Packer made it, the run did not record it), so it is adopted, not rebuilt.
/// Returns what is left to build.
fn adopt_built(
    sh: &Shell,
    root: &Path,
    kit: &Kit,
    record: &mut RunRecord,
    credentials_source: Option<String>,
    launch: &Launch,
) -> Result<Vec<String>> {
    let remaining = record.unfinished();
    if remaining.is_empty() {
        return Ok(remaining);
    }
    if launch.skip_cloud_checks {
        eprintln!("{}", cloud::SKIPPED);
        record.cloud_checks = Some(cloud::SKIPPED_RECORD.to_string());
        record.save(sh)?;
        return Ok(remaining);
    }
    if record.attempts.is_empty() && record.cloud_checks.is_some() {
        // Nothing launched yet, and the cloud was asked about this very plan (the release's
        // preflight) and found none of its names taken: nothing can have been made since.
        return Ok(remaining);
    }
    let plan = template::plan(&kit.matrix, &record.spec)?;
    let adopted = cloud::gate(
        sh,
        root,
        cloud::Gate {
            planned: preflight::builders(&plan, &remaining),
            public: template::is_public(&kit.matrix, &record.spec),
            standin: kit.standin.as_ref(),
            expected_account: kit.credentials.account_id.clone(),
            credentials_source,
            owner: Some(ownership(&kit.matrix, record)),
            resume: resume_hint(record.spec.kind, record.spec.local),
            same_base_for_both: preflight::same_base_for_both(&kit.matrix),
        },
    )?;
    // The release's preflight left the question to this moment, when the commit is known.
    if record.cloud_checks.is_none() {
        record.cloud_checks = Some("passed".to_string());
    }
    // Found with this run's tags: adopted only with a verdict that holds.
    if !adopted.is_empty() {
        proof::review_found(sh, &kit.aws, &kit.matrix, record, &adopted)?;
    }
    Ok(record.unfinished())
}

/// The images `record` may adopt: a test build's are its run's own; an official publish's (and
/// a release's) are every image of its version and the commit it bakes, whichever run made
/// them, so a publish stopped on one machine is finished on another (issue 18).
fn ownership(matrix: &matrix::Matrix, record: &RunRecord) -> preflight::Ownership {
    let any_run = record.release.is_some() || record.spec.kind == Kind::Official;
    preflight::Ownership {
        project: matrix.settings.project.clone(),
        version: record.spec.version.clone(),
        commit: Some(record.spec.commit.clone()),
        run_id: (!any_run).then(|| record.run_id.clone()),
    }
}

/// Before a new official run: images of its version and commit that a run elsewhere (or one
/// whose folder is gone) made are reviewed and adopted, not reported as taken names. Unknown
/// before a non-git copy is committed for the stand-in: then nothing is adopted.
fn new_run_ownership(matrix: &matrix::Matrix, spec: &Spec) -> Option<preflight::Ownership> {
    (spec.kind == Kind::Official && spec.commit != "unknown").then(|| preflight::Ownership {
        project: matrix.settings.project.clone(),
        version: spec.version.clone(),
        commit: Some(spec.commit.clone()),
        run_id: None,
    })
}

/// Generates the run's template from the recorded inputs: the same epoch, commit and run id give
/// the same names and bundle locations on every attempt.
fn write_template(
    sh: &Shell,
    root: &Path,
    matrix: &matrix::Matrix,
    record: &RunRecord,
    standin: Option<&Standin>,
) -> Result<template::Plan> {
    let run_dir = runs::run_dir(root, &record.run_id);
    let names = |variable: &str| project::split_names(&[sh.var(variable).unwrap_or_default()]);
    let rehearsed = Rehearsed {
        // Builders that fail in the stand-in's provisioning (local builds only), so a resume
        // can be tried without touching any file.
        fail: names("XTASK_LOCAL_FAIL"),
        // A wrong image report: these builders bake another version.
        wrong_version: names("XTASK_LOCAL_WRONG_VERSION"),
        // A slow mirror: these builders are still building when an interrupt comes.
        slow: names("XTASK_LOCAL_SLOW"),
    };
    let local = standin.map(|s| s.template_local(root, &run_dir, rehearsed));
    // Exactly the builders of the record (older records do not keep `--only`).
    let spec = Spec {
        only: record.builders.keys().cloned().collect(),
        ..record.spec.clone()
    };
    let target = template::Target {
        run_id: &record.run_id,
        report_dir: &record.report_dir(),
        local: local.as_ref(),
    };
    let template = template::generate(matrix, &spec, target)?;
    let plan = template::plan(matrix, &spec)?;
    if let Some(local) = &local {
        sh.create_dir(&local.work_dir)?;
        // The stand-in "instance" is this machine: its upload folders must exist, as /tmp does
        // on a real instance.
        for builder in &plan.builders {
            sh.create_dir(local.remote_folder(&builder.name))?;
            if record.spec.kind != Kind::TestEbs {
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
fn attempt(
    sh: &Shell,
    kit: &Kit,
    record: &mut RunRecord,
    builders: Vec<String>,
    launch: &Launch,
) -> Result<()> {
    let dir = record.dir();
    let template = Path::new(&dir).join("template.json");
    let (packer, credentials) = (&kit.packer, &kit.credentials);
    packer.validate(sh, &template, &credentials.var_file, &credentials.masker)?;
    let number = runs::next_attempt(record, Path::new(&dir));
    let output_log = format!("{dir}/output-{number}.log");
    let packer_log = format!("{dir}/packer-{number}.log");
    let args = packer_args(packer, &builders, launch);
    let attempted: Vec<String> = if builders.is_empty() {
        record.builders.keys().cloned().collect()
    } else {
        builders
    };
    prepare_attempt(sh, kit, record, &attempted)?;
    interrupt::check("launching Packer")?;
    // Recorded before Packer starts: if this command is killed, the next attempt gets the next
    // number (its logs stay) and the resume says that this one never finished.
    // The attempt starts with its command, so the next run's expected time is on the clock the
    // view shows: from the command's start.
    let started = project::epoch()
        .map(|now| now.saturating_sub(crate::view::since_start().as_secs()))
        .unwrap_or(record.spec.epoch);
    record.attempts.push(Attempt {
        number,
        started,
        builders: attempted.clone(),
        output_log: output_log.clone(),
        packer_log: packer_log.clone(),
        interrupted: false,
        finished: false,
        ended: None,
    });
    record.save(sh)?;
    let terminal = std::io::stderr().is_terminal() && !launch.debug;
    let mut view = View::new(attempted.clone(), terminal);
    let expected = expect_duration(sh, record, &mut view);
    eprintln!(
        "building {} image(s) with Packer {}...{expected}",
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
            debug: launch.debug,
        },
        &mut view,
    )?;
    record.apply(&result.tracker, &attempted, result.interrupted, &output_log);
    check_reports(sh, &kit.matrix, record, &attempted);
    proof::record_verdicts(sh, &kit.aws, &kit.matrix, record, &attempted);
    if let Some(last) = record.attempts.last_mut() {
        last.interrupted = result.interrupted;
        last.finished = true;
        last.ended = project::epoch().ok();
    }
    record.save(sh)?;
    if !result.packer_succeeded && !result.interrupted && record.unfinished().is_empty() {
        eprintln!(
            "warning: Packer exited with an error although every builder finished; see its log"
        );
    }
    Ok(())
}

/// How long the last complete run of the same kind took, for the view's header; as a note for
/// the line that starts the build ("" when no such run finished here yet).
fn expect_duration(sh: &Shell, record: &RunRecord, view: &mut View) -> String {
    let records = runs::list(&sh.current_dir());
    let Some(seconds) = crate::pure::run::expected_seconds(&records, &record.spec) else {
        return String::new();
    };
    view.expect(std::time::Duration::from_secs(seconds));
    format!(
        " (the last complete {} run here took {})",
        record.spec.kind,
        crate::pure::time::clock(seconds)
    )
}

/// The options of `packer build`: the builders (all when empty), then the user's.
fn packer_args(packer: &Packer, builders: &[String], launch: &Launch) -> Vec<String> {
    let mut args = Vec::new();
    if !builders.is_empty() {
        args.push(format!("-only={}", builders.join(",")));
    }
    if launch.no_parallel {
        args.push(packer.no_parallel_flag().to_string());
    }
    if launch.debug {
        args.push("-debug".to_string());
    }
    args.extend(packer.translate(&launch.packer_args));
    args
}

/// Before Packer starts: no stale image report, and for `--local` the simulated instances'
/// world, seeded for the builders of this attempt.
fn prepare_attempt(sh: &Shell, kit: &Kit, record: &RunRecord, attempted: &[String]) -> Result<()> {
    // Reports of earlier attempts must not pass for this one's.
    sh.create_dir(record.report_dir())
        .with_context(|| format!("cannot create `{}`", record.report_dir()))?;
    for name in attempted {
        let _ = sh.remove_path(format!("{}/{name}.json", record.report_dir()));
    }
    if let Some(standin) = &kit.standin {
        let world = World::new(&sh.current_dir().join(record.dir()));
        world.prepare(
            sh,
            &sh.current_dir(),
            &kit.matrix,
            (&record.spec.branch, &record.spec.commit),
            &standin.venv.join("bin/python"),
        )?;
        for image in kit.matrix.enabled() {
            if attempted.contains(&image.builder_name()) {
                world.seed(image)?;
            }
        }
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
    let expectation = proof::expectation(sh);
    for name in attempted {
        if record.builders.get(name).map(|b| b.state) != Some(BuilderState::Succeeded) {
            continue;
        }
        let path = format!("{report_dir}/{name}.json");
        let text = sh.read_file(&path).ok();
        let expected = proof::expected(matrix, record, name);
        let checked = expectation
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|expectation| report::check(text.as_deref(), expectation, &expected));
        let builder = record.builders.get_mut(name).expect("found above");
        match checked {
            Ok(report) => builder.comboami_commit = Some(report.comboami.commit),
            Err(problem) => {
                let amis: Vec<String> = builder.amis.iter().map(|a| a.id.clone()).collect();
                builder.state = BuilderState::Failed;
                // Registered private: it is tagged `Rejected` and never made public.
                builder.error = Some(format!(
                    "image report `{path}`: {problem}; so its AMI {} is rejected (private, not \
                     merged, not tagged); `cargo xtask cleanup --run {}` lists it, `--execute` \
                     removes it",
                    amis.join(", "),
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
        let report: report::ImageReport = crate::pure::json::parse(&text).ok()?;
        Some(report.packages)
    };
    let previous = runs::list(&sh.current_dir())
        .into_iter()
        .filter(|r| r.spec.kind == record.spec.kind && r.spec.local == record.spec.local)
        .filter(|r| (r.spec.epoch, &r.run_id) < (record.spec.epoch, &record.run_id))
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
/// The end-of-run summary, paths as the user can use them.
fn print_summary(sh: &Shell, record: &RunRecord, launch: &Launch, retry: Option<&str>) {
    let standin_kept = record.spec.local && Standin::running(&launch.standin_root).is_some();
    // A rehearsal runs in its scratch clone: its paths are printed from there.
    let here = sh.current_dir();
    let base = here
        .starts_with(launch.standin_root.join("target/rehearsal"))
        .then(|| here.display().to_string());
    let notes = SummaryNotes {
        standin_kept,
        retry,
        width: summary_width(),
        base: base.as_deref(),
        elapsed: Some(crate::view::since_start().as_secs()),
    };
    output::say(render::summary(record, notes).trim_end());
}

/// Merges only what was made public: a run meant to be public whose images are still private
/// (some builder is not proven) merges nothing, and says so.
fn finish(sh: &Shell, record: RunRecord, launch: &Launch, public: bool) -> Result<Finished> {
    interrupt::pause_before("merging");
    if interrupt::requested() {
        return Err(stopped(&record, launch));
    }
    let mut changes = Vec::new();
    let held_back = public && !record.made_public;
    if let Some(path) = record.spec.registry.as_ref().filter(|_| !held_back) {
        // Every time, resumes included: a merge of the same AMIs changes nothing.
        changes = cmd::ami_ids::merge_into(sh, path, &record.amis(), &launch.progress)?;
        if !changes.is_empty() {
            output::say(format!("`{path}`:"));
        }
        for change in &changes {
            output::say(format!("  {change}"));
        }
    }
    let retry = retry_command(&record, launch);
    print_summary(sh, &record, launch, retry.as_deref());
    if held_back {
        output::say(format!(
            "not public: none of the {} image(s) was made public{} because {} of {} builder(s) \
             are not proven; the resume makes them all public once the rest pass",
            record.amis().len(),
            match &record.spec.registry {
                Some(path) => format!(" and `{path}` was not changed"),
                None => String::new(),
            },
            record.unfinished().len(),
            record.builders.len()
        ));
    }
    if record.spec.registry.is_some() {
        package_changes(sh, &record).iter().for_each(output::say);
    }
    // A release prints its own document, with this run in it.
    if launch.json && record.release.is_none() {
        output::document(serde_json::json!({
            "command": command_name(record.spec.kind),
            "ok": record.unfinished().is_empty(),
            "run_id": record.run_id,
            "run_folder": record.dir(),
            "succeeded": record.builders.len() - record.unfinished().len(),
            "failed": record.unfinished(),
            "amis": record.amis(),
            "registry": record.spec.registry,
            "registry_changes": changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "retry": retry,
            "run": record,
        }));
    }
    if record.unfinished().is_empty() {
        return Ok(Finished { record });
    }
    let what = format!(
        "run `{}`: {} of {} builders did not succeed",
        record.run_id,
        record.unfinished().len(),
        record.builders.len()
    );
    match retry {
        // A release states its own fix: resuming the release.
        Some(retry) if record.release.is_none() => Err(anyhow::Error::new(BuildsFailed)).fix(
            || what,
            || format!("the summary above says why each failed; `{retry}` rebuilds only those"),
        ),
        _ => Err(anyhow::Error::new(BuildsFailed)).context(what),
    }
}

/// What an interrupted run says: never merge a partial run as if it were complete (the resume
/// merges).
fn stopped(record: &RunRecord, launch: &Launch) -> anyhow::Error {
    let done = record.builders.len() - record.unfinished().len();
    let merge = match &record.spec.registry {
        Some(path) => format!("; `{path}` was not changed"),
        None => String::new(),
    };
    let rest = match (
        done == record.builders.len(),
        record.spec.registry.is_some(),
    ) {
        (true, _) => "merge",
        (false, true) => "build the rest and merge",
        (false, false) => "build the rest",
    };
    anyhow::Error::new(interrupt::Interrupted::Said(format!(
        "run `{}` stopped: {done} of {} builders finished and are recorded{merge}: run `{}` to {rest}",
        record.run_id,
        record.builders.len(),
        resume_command(record, launch),
    )))
}

/// The width the summary fits: the terminal's, when it is printed on one.
fn summary_width() -> Option<usize> {
    let on_terminal = if output::json() {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    on_terminal.then(|| view::terminal_size().cols)
}

/// The command that builds this kind.
fn command_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Official => "publish",
        other => other.as_str(),
    }
}

/// The command that builds what did not succeed, if anything did not.
fn retry_command(record: &RunRecord, launch: &Launch) -> Option<String> {
    let failed = record.unfinished();
    if failed.is_empty() {
        return None;
    }
    Some(resume_command(record, launch))
}

/// The plan a build of `spec` would show, without reading credentials or starting anything
/// (a release shows it before `ds0_utils.py` holds the new version), and how many builders it
/// plans.
pub fn preview(sh: &Shell, spec: &Spec, skip_cloud_checks: bool) -> Result<(String, usize)> {
    let matrix = project::matrix(sh)?;
    let plan = template::plan(&matrix, spec)?;
    let launch = Launch {
        skip_cloud_checks,
        ..Default::default()
    };
    let notes = plan_notes(&matrix, &matrix.settings.launch_size, &launch);
    Ok((render::plan(&plan, spec, notes), plan.builders.len()))
}

/// Where a run merges its AMIs: publish only; a local publish never writes the real registry
/// (an empty path stands for the scratch copy, named once the run id is known).
fn registry_target(kind: Kind, private: bool, local: bool) -> Option<String> {
    match (kind, private, local) {
        (Kind::Official, false, false) => Some(REGISTRY_PATH.to_string()),
        (Kind::Official, false, true) => Some(String::new()),
        _ => None,
    }
}

/// The command that continues `record`'s run: its release's, when a release drives it.
fn resume_command(record: &RunRecord, launch: &Launch) -> String {
    let local = if record.spec.local { " --local" } else { "" };
    // Without a terminal the resume cannot be confirmed: it says yes where this command did.
    let mut local = if launch.yes && record.release.is_none() {
        format!("{local} --yes")
    } else {
        local.to_string()
    };
    // A script that asked for the JSON document gets it again from the resume.
    if launch.json && record.release.is_none() {
        local.push_str(" --json");
    }
    match (&record.release, record.spec.kind) {
        (Some(release), _) => release.command.clone(),
        (None, Kind::Official) => format!("cargo xtask publish --resume {}{local}", record.run_id),
        (None, kind) => {
            let unfinished = record.unfinished();
            // Without `--only`, a run where nothing finished is simply run again; with it (or
            // when some finished) the command names exactly what is left, never more.
            let whole_matrix = record.spec.only.is_empty();
            let only = if unfinished.is_empty()
                || (whole_matrix && unfinished.len() == record.builders.len())
            {
                String::new()
            } else {
                format!(" --only {}", unfinished.join(","))
            };
            let branch = match &launch.branch {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::matrix::Matrix;

    fn record(kind: Kind, only: &[&str]) -> RunRecord {
        let matrix = Matrix::parse(include_str!("../../../build/images.json")).unwrap();
        let spec = Spec {
            local: true,
            commit: "abc".into(),
            only: only.iter().map(|s| s.to_string()).collect(),
            ..template::tests::spec(kind)
        };
        let plan = template::plan(&matrix, &spec).unwrap();
        RunRecord::new("run-1".into(), spec, &plan, None)
    }

    #[test]
    fn a_test_build_retries_exactly_what_did_not_succeed() {
        let launch = Launch::default();
        let mut whole = record(Kind::TestEbs, &[]);
        // Nothing succeeded in a build of the whole matrix: the same command again.
        assert_eq!(
            resume_command(&whole, &launch),
            "cargo xtask test-ebs --local"
        );
        let first = whole.builders.keys().next().unwrap().clone();
        whole.adopt(&first, "us-east-1", "ami-1", None);
        let retry = resume_command(&whole, &launch);
        assert!(retry.starts_with("cargo xtask test-ebs --only "), "{retry}");
        assert!(!retry.contains(&first), "{retry}");
        // With `--only`, the names even when nothing succeeded; `--branch` is repeated.
        let picked = record(Kind::TestInstance, &["us-east-1-1404-hvm"]);
        let launch = Launch {
            branch: Some("fix".into()),
            ..Launch::default()
        };
        assert_eq!(
            resume_command(&picked, &launch),
            "cargo xtask test-instance --only us-east-1-1404-hvm --branch fix --local"
        );
    }

    #[test]
    fn a_publish_resumes_its_run_and_a_release_run_resumes_the_release() {
        let mut run = record(Kind::Official, &[]);
        let launch = Launch::default();
        assert_eq!(
            resume_command(&run, &launch),
            "cargo xtask publish --resume run-1 --local"
        );
        // A command confirmed with `--yes` is resumed with it: without a terminal nothing else
        // can confirm the resume.
        let yes = Launch {
            yes: true,
            ..Launch::default()
        };
        let json = Launch {
            json: true,
            ..yes.clone()
        };
        assert_eq!(
            resume_command(&run, &json),
            "cargo xtask publish --resume run-1 --local --yes --json"
        );
        assert_eq!(
            resume_command(&run, &yes),
            "cargo xtask publish --resume run-1 --local --yes"
        );
        run.release = Some(crate::pure::release::Steps {
            command: "cargo xtask release 2.6.3 --local".into(),
            ..Default::default()
        });
        assert_eq!(
            resume_command(&run, &launch),
            "cargo xtask release 2.6.3 --local"
        );
    }

    #[test]
    fn only_a_public_publish_merges_and_a_local_one_into_a_scratch_copy() {
        assert_eq!(
            registry_target(Kind::Official, false, false).as_deref(),
            Some(REGISTRY_PATH)
        );
        assert_eq!(
            registry_target(Kind::Official, false, true).as_deref(),
            Some("")
        );
        assert_eq!(registry_target(Kind::Official, true, false), None);
        assert_eq!(registry_target(Kind::TestEbs, false, false), None);
        assert_eq!(
            scratch_registry("run-1"),
            format!("build/runs/run-1/{REGISTRY_PATH}")
        );
    }
}
