//! `cargo xtask release VERSION`: the official checklist as one command. Preflight (every check
//! at once), plan, then set the version, publish, merge, commit, tag and push — each step
//! recorded in the run record of the release's publish (`release` in its `run.json`), so running
//! the same command again resumes where it stopped. `--local` rehearses all of it in a scratch
//! clone.

use crate::cmd::checks::{
    check_branch, check_clean, check_identity, check_order, check_prepared_on_remote, check_remote,
    check_remote_branch, check_signing, check_tag_free, check_version, short, signing_summary,
};
use crate::cmd::{build, set_version};
use crate::credentials;
use crate::error::FixContext;
use crate::git::{self, Git};
use crate::interrupt::{self, Progress};
use crate::packer::Packer;
use crate::pure::preflight::{Adopted, Ownership};
use crate::pure::release::{self, Check, Step, Steps};
use crate::pure::template::{self, Kind, Spec};
use crate::pure::{ds0, matrix, registry::REGISTRY_PATH, version};
use crate::runs::{self, RunRecord};
use crate::standin::Standin;
use crate::{cloud, output, project, signing};
use anyhow::{bail, Context, Result};
use semver::Version;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xshell::{cmd, Shell};

/// The whole official release: check, set the version, publish, merge, commit, tag, push.
#[derive(clap::Args, Clone)]
#[command(
    after_help = "Examples:\n  cargo xtask release 2.6.4 --dry-run\n  cargo xtask release 2.6.4 --local --yes\n  cargo xtask release 2.6.4 --push\n\n\
        No `--partial` (unlike `publish`): a release's commit and tag list its images once and are \
        never moved, so a release of part of the matrix could never take the rest. When a row \
        cannot be built (its region or archive is gone), disable it in `build/images.json` \
        (`\"enabled\": false` with `\"disabled_because\"`), commit that, and release the rest; \
        `cargo xtask publish --partial` publishes the proven part of a run outside a release."
)]
pub struct Release {
    /// The version to release, like `2.6.4` (or `2.6.4-beta1` for a candidate).
    version: String,
    /// The release branch (default: MAJOR.MINOR of VERSION).
    #[arg(long)]
    branch: Option<String>,
    /// Release from the current branch even if it is not the release branch.
    #[arg(long)]
    allow_branch: bool,
    /// Print the checks and the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Push the commit and the tag to REMOTE (default `origin`).
    #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "origin")]
    push: Option<String>,
    /// Rehearse against the local stand-in, in a scratch clone: no account, no cost.
    #[arg(long)]
    local: bool,
    /// Go ahead without asking, after the plan is shown.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    sign: crate::cmd::checks::SignArgs,
    /// Build one builder at a time (troubleshooting).
    #[arg(long)]
    no_parallel: bool,
    /// Pause after every Packer step (needs a terminal).
    #[arg(long)]
    debug: bool,
    /// Options passed on to `packer build` (after `--`).
    #[arg(last = true, value_name = "PACKER_ARGS")]
    packer_args: Vec<String>,
    /// Print the end-of-run summary as one JSON document on stdout (everything else goes
    /// to stderr).
    #[arg(long)]
    json: bool,
    /// Publish without asking AWS first (emergencies only: said loudly in the plan and the run record).
    #[arg(long)]
    skip_cloud_checks: bool,
}

impl crate::cmd::Cmd for Release {
    const NAME: &'static str = "release";
    fn lock(&self) -> Option<crate::lock::Busy> {
        (!self.dry_run).then_some(crate::lock::Busy::Refuse)
    }
    fn json(&self) -> bool {
        self.json
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        interrupt::install(cx.progress.clone());
        if self.local && !self.dry_run {
            rehearse(cx.sh, cx.root(), &self, &cx.progress)?;
        } else {
            release_in(cx.sh, cx.root(), &self, None, &cx.progress)?;
        }
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// What the preflight established, for the steps.
struct Facts {
    version: Version,
    /// The release branch: what `ds0_utils.py` names.
    branch: String,
    /// The branch the release commit goes on and is pushed: the release branch, or the current
    /// one with `--allow-branch`.
    push_branch: String,
    tag: String,
    head: String,
    identity: String,
}

impl Facts {
    /// A candidate (`2.6.4-beta1`) is private and stays out of the registry: its AMIs are in the
    /// run record and the tag message. A release is public and merged.
    fn candidate(&self) -> bool {
        !self.version.pre.is_empty()
    }
}

/// The release's steps of `record`; every record the release finds or makes has them.
fn steps(record: &mut RunRecord) -> &mut Steps {
    record.release.get_or_insert_with(Steps::default)
}

/// The release of `version` recorded in the repository at `root`: the newest run record with
/// release steps for that version, local or not as asked.
fn find_record(root: &Path, options: &Release) -> Option<RunRecord> {
    let version = version::parse(&options.version).ok()?.to_string();
    runs::list(root)
        .into_iter()
        .rev()
        .find(|r| r.release.is_some() && r.spec.version == version && r.spec.local == options.local)
}

/// `--local`: check the real repository, then run the release in a scratch clone (with a
/// scratch bare repository as its `origin`) against the stand-in. The real repository is only
/// read.
fn rehearse(sh: &Shell, root: &Path, options: &Release, progress: &Arc<Progress>) -> Result<()> {
    let real = Git::open(root)?;
    // The rehearsal pushes to its scratch remote: the real remotes are not consulted.
    let real_options = Release {
        push: None,
        ..options.clone()
    };
    let (mut checks, facts) = preflight(sh, root, &real, &real, &real_options, None, false);
    checks.sort_by_key(|c| c.result.is_ok());
    if release::failures(&checks) > 0 {
        eprint!("{}", release::report(&checks));
        output::document(preflight_document(&checks, None, false));
        return Err(
            release::refusal(&checks, "preflight check(s)", " in the real repository").into(),
        );
    }
    let branch = &facts
        .as_ref()
        .expect("facts are known when every check passed")
        .branch;
    let scratch = rehearsal_dir(root, &options.version);
    let clone = scratch.join("repo");
    let remote = scratch.join("remote.git");
    let head = real.head_commit()?;
    reuse_or_remove_rehearsal(&scratch, &clone, &head, options)?;
    if !clone.exists() {
        make_rehearsal_clone(sh, root, &real, &scratch, branch, &head)?;
    }
    let options = Release {
        push: options.push.as_ref().map(|_| "origin".to_string()),
        ..options.clone()
    };
    let result = {
        let _dir = sh.push_dir(&clone);
        release_in(sh, &clone, &options, Some(root), progress)
    };
    eprintln!(
        "rehearsal: the scratch clone is `{}`{}; the real repository was not changed",
        clone.display(),
        if options.push.is_some() {
            format!(" and its remote `{}`", remote.display())
        } else {
            String::new()
        }
    );
    result
}

/// An unfinished rehearsal of the same commit is resumed; any other is removed.
fn reuse_or_remove_rehearsal(
    scratch: &Path,
    clone: &Path,
    head: &str,
    options: &Release,
) -> Result<()> {
    if !clone.exists() {
        return Ok(());
    }
    let previous = find_record(clone, options);
    let push = options.push.as_deref();
    // Once prepared, the record bakes the prepare commit, whose parent is where it started.
    let started_from = |commit: &str| {
        commit == head
            || Git::open(clone).is_ok_and(|git| git.parents(commit).is_ok_and(|p| p == [head]))
    };
    match previous {
        Some(record)
            if started_from(&record.spec.commit)
                && record
                    .release
                    .as_ref()
                    .is_some_and(|s| s.next(push).is_some()) =>
        {
            eprintln!(
                "rehearsal: resuming the unfinished rehearsal in `{}`",
                clone.display()
            );
        }
        _ => {
            eprintln!(
                "rehearsal: starting over (the earlier rehearsal in `{}` finished or is stale)",
                scratch.display()
            );
            std::fs::remove_dir_all(scratch)
                .with_context(|| format!("cannot remove `{}`", scratch.display()))?;
        }
    }
    Ok(())
}

/// The scratch remote (a bare clone whose release branch is the current commit) and the
/// scratch clone of it; the real repository's refs are not touched.
fn make_rehearsal_clone(
    sh: &Shell,
    root: &Path,
    real: &Git,
    scratch: &Path,
    branch: &str,
    head: &str,
) -> Result<()> {
    // Made in a folder beside it and renamed when complete: a Ctrl-C or a kill in between
    // leaves only that folder, which the next rehearsal removes and makes again.
    let partial = partial_rehearsal_dir(scratch)?;
    let (clone, remote) = (partial.join("repo"), partial.join("remote.git"));
    cmd!(sh, "git clone --quiet --bare {root} {remote}")
        .quiet()
        .run()
        .context("cannot make the scratch remote for the rehearsal")?;
    // The current commit becomes the release branch there, whatever the branch here (a fresh
    // clone has only `main`).
    let refspec = format!("HEAD:refs/heads/{branch}");
    cmd!(sh, "git -C {root} push --quiet --force {remote} {refspec}")
        .quiet()
        .run()
        .context("cannot give the scratch remote the release branch")?;
    cmd!(sh, "git clone --quiet --branch {branch} {remote} {clone}")
        .quiet()
        .run()
        .context("cannot make the scratch clone for the rehearsal")?;
    // The clone's `origin` is where the remote will be once renamed.
    let final_remote = scratch.join("remote.git");
    cmd!(sh, "git -C {clone} remote set-url origin {final_remote}")
        .quiet()
        .run()
        .context("cannot point the scratch clone at its scratch remote")?;
    std::fs::rename(&partial, scratch).with_context(|| {
        format!(
            "cannot rename `{}` to `{}`",
            partial.display(),
            scratch.display()
        )
    })?;
    let clone = scratch.join("repo");
    let here = match real.current_branch() {
        Ok(Some(current)) => format!("on `{current}`"),
        _ => "detached".to_string(),
    };
    eprintln!(
        "rehearsal: commit {} ({here}) is branch `{branch}` in the scratch clone `{}`",
        short(head),
        clone.display()
    );
    Ok(())
}

/// The release in the repository at `root` (the shell is there). `standin_root` is set for a
/// rehearsal: where the stand-in and its virtualenv live.
fn release_in(
    sh: &Shell,
    root: &Path,
    options: &Release,
    standin_root: Option<&Path>,
    progress: &Arc<Progress>,
) -> Result<()> {
    let git = Git::open(root)?;
    // A rehearsal signs as the real repository would: its configuration, not the clone's.
    let signing_repo = match standin_root {
        Some(real) => Git::open(real)?,
        None => Git::open(root)?,
    };
    let mut record = find_record(root, options);
    if let Some(record) = record.as_mut() {
        if carry_on(sh, &git, options, record)? {
            return Ok(());
        }
    }
    let (checks, facts, found) = all_checks(
        sh,
        root,
        &git,
        &signing_repo,
        options,
        record.as_ref(),
        standin_root,
    );
    let failed = release::failures(&checks);
    let refused = || anyhow::Error::new(release::refusal(&checks, "preflight check(s)", ""));
    if failed > 0 && !options.dry_run {
        output::document(preflight_document(&checks, None, false));
        return Err(refused());
    }
    // A dry run shows the plan even when checks failed, as far as the version allows.
    let Some(facts) = facts else {
        output::document(preflight_document(&checks, None, true));
        return Err(refused());
    };
    let spec = publish_spec(&facts, options)?;
    let plan = plan_text(
        sh,
        options,
        &facts,
        &spec,
        record.as_ref(),
        &signing_repo,
        found.as_deref().unwrap_or_default(),
    )?;
    eprint!("{plan}");
    if options.dry_run {
        output::document(preflight_document(&checks, Some(&plan), true));
        if failed > 0 {
            return Err(refused());
        }
        eprintln!("\ndry run: nothing was changed (no file, no ref, nothing launched)");
        return Ok(());
    }
    let version_text = facts.version.to_string();
    crate::cmd::confirm(options.yes, "releasing", &format!("release {version_text}"))?;
    interrupt::check("anything started")?;
    progress.mark_started();
    let mut record = start(sh, root, options, record, spec, &facts, found.as_deref())?;
    progress.set_resume(steps(&mut record).command.clone());
    run_steps(
        sh,
        root,
        &git,
        &signing_repo,
        options,
        &facts,
        &mut record,
        standin_root,
        progress,
    )?;
    released(&facts, &record, options);
    Ok(())
}

/// The release's record, saved before the first step: found or new, with the command that
/// resumes it and the verdict of the preflight's cloud checks (`cloud`: the images of this
/// version it found, when it asked).
fn start(
    sh: &Shell,
    root: &Path,
    options: &Release,
    found: Option<RunRecord>,
    spec: Spec,
    facts: &Facts,
    cloud: Option<&[Adopted]>,
) -> Result<RunRecord> {
    let mut record = match found {
        Some(record) => record,
        None => new_record(sh, root, spec, facts)?,
    };
    steps(&mut record).command = resume_command(options);
    // Images found under the planned names are judged by the publish, once the prepare commit
    // they must bake is known: the cloud is asked again then.
    let cloud_checked = cloud.is_some_and(|found| found.is_empty());
    if cloud_checked && record.attempts.is_empty() {
        record.cloud_checks = Some("passed in the release preflight".to_string());
    }
    record.save(sh)?;
    Ok(record)
}

/// Picks up a release that was started: adopts what its command did but could not record, says
/// how far it got. Returns whether it is done already (said so).
fn carry_on(sh: &Shell, git: &Git, options: &Release, record: &mut RunRecord) -> Result<bool> {
    let push = options.push.as_deref();
    // A command killed between a step and saving it left the step's result behind.
    if !options.dry_run && adopt_own_work(git, record) {
        record.save(sh)?;
    }
    if steps(record).next(push).is_none() {
        already_done(record);
        return Ok(true);
    }
    let progress = steps(record).progress(push);
    eprintln!("resuming release {}: {progress}", record.spec.version);
    Ok(false)
}

/// Every check, the failing ones on top (printed); and, when the cloud was asked, the images of
/// this version it already holds under the planned names.
fn all_checks(
    sh: &Shell,
    root: &Path,
    git: &Git,
    signing_repo: &Git,
    options: &Release,
    record: Option<&RunRecord>,
    standin_root: Option<&Path>,
) -> (Vec<Check>, Option<Facts>, Option<Vec<Adopted>>) {
    // Named profiles resolve once, before the credentials are checked.
    let profile = match options.local {
        true => Ok(None),
        false => credentials::resolve_profile(sh, root, "aws"),
    };
    // A rehearsal's dry run runs in the real repository: its remotes are not asked anything.
    let contact_remote = !(options.local && standin_root.is_none());
    let (mut checks, facts) =
        preflight(sh, root, git, signing_repo, options, record, contact_remote);
    // The cloud, for a release whose publish has not started (a resumed publish checks, and
    // adopts, itself).
    let mut found = None;
    if record.is_none_or(|r| r.attempts.is_empty()) {
        let (cloud, images) = check_cloud(sh, (root, git), options, standin_root, profile);
        checks.extend(cloud);
        found = images;
    }
    // Failing checks on top, where they are read first.
    checks.sort_by_key(|c| c.result.is_ok());
    eprint!("{}", release::report(&checks));
    (checks, facts, found)
}

/// What the release's publish builds: every enabled row, at the commit the release starts from.
fn publish_spec(facts: &Facts, options: &Release) -> Result<Spec> {
    let candidate = facts.candidate();
    Ok(Spec {
        kind: Kind::Official,
        local: options.local,
        version: facts.version.to_string(),
        branch: facts.branch.clone(),
        commit: facts.head.clone(),
        epoch: project::epoch()?,
        private: candidate,
        registry: (!candidate).then(|| REGISTRY_PATH.to_string()),
        only: Vec::new(),
    })
}

/// The release's record, made when it starts: its publish's run, every builder pending.
fn new_record(sh: &Shell, root: &Path, spec: Spec, facts: &Facts) -> Result<RunRecord> {
    let matrix = project::matrix(sh)?;
    let plan = template::plan(&matrix, &spec)?;
    let run_id = runs::new_run_id(root, Kind::Official, spec.local, spec.epoch)?;
    let mut record = RunRecord::new(run_id, spec, &plan, None);
    record.release = Some(Steps {
        tag: facts.tag.clone(),
        ..Steps::default()
    });
    Ok(record)
}

/// The `--json` document and the line of a release that is done already.
fn already_done(record: &RunRecord) {
    let steps = record.release.clone().unwrap_or_default();
    output::document(serde_json::json!({
        "command": "release",
        "ok": true,
        "already_done": true,
        "version": record.spec.version,
        "branch": record.spec.branch,
        "commit": steps.commit,
        "tag": steps.tag,
        "pushed_to": steps.pushed_to,
        "publish_run_id": record.run_id,
    }));
    output::say(format!(
        "release {} is already done: commit {} tagged `{}`{}",
        record.spec.version,
        short(steps.commit.as_deref().unwrap_or("?")),
        steps.tag,
        steps
            .pushed_to
            .as_ref()
            .map(|r| format!(", pushed to `{r}`"))
            .unwrap_or_default()
    ));
}

/// The plan: every step, with the exact file change and what is already done.
fn plan_text(
    sh: &Shell,
    options: &Release,
    facts: &Facts,
    spec: &Spec,
    record: Option<&RunRecord>,
    signing_repo: &Git,
    found: &[Adopted],
) -> Result<String> {
    let version_text = facts.version.to_string();
    let candidate = facts.candidate();
    let steps = record.and_then(|r| r.release.clone()).unwrap_or_default();
    let done = |step: Step| match record.is_some() && steps.is_done(step, None) {
        true => " (done)",
        false => "",
    };
    let mut plan = format!(
        "\nplan: release ComboAMI {version_text} from branch `{}` at {}{}\n",
        facts.branch,
        short(&facts.head),
        if options.local {
            " (rehearsal against the local stand-in)"
        } else {
            ""
        }
    );
    plan.push_str(&format!(
        "1. set the version in `{}` and commit it as \"Prepare ComboAMI {version_text}\" (the prepare commit); {}{}\n",
        ds0::DS0_PATH,
        match (&options.push, options.local) {
            (Some(remote), false) => format!("push it to `{remote}` branch `{}` before anything launches", facts.push_branch),
            (_, true) => format!("push it to the rehearsal's scratch remote, branch `{}`, before anything launches", facts.push_branch),
            (None, false) => format!("it must be on `origin/{}` already (no `--push`)", facts.push_branch),
        },
        done(Step::Prepare)
    ));
    if !steps.prepared {
        plan.push_str(&indent(&version_diff(sh, options, facts)?));
    }
    let baked = steps
        .prepare_commit
        .as_deref()
        .map_or("the prepare commit".to_string(), |c| {
            format!("the prepare commit {}", short(c))
        });
    let published = done(Step::Publish);
    plan.push_str(&format!(
        "2. publish every enabled row as {} images, every one baking {baked}{}{published}\n",
        if candidate {
            "PRIVATE (a candidate)"
        } else {
            "public (registered private, made public at once when every builder is proven)"
        },
        match record.filter(|r| !r.attempts.is_empty() && published.is_empty()) {
            Some(r) => format!(
                " (resumes run `{}`: only what did not succeed is rebuilt)",
                r.run_id
            ),
            None => String::new(),
        }
    ));
    if !published.is_empty() {
        plan.push_str(&later_steps(options, facts, signing_repo, done));
        return Ok(plan);
    }
    let (preview, planned) = match build::preview(sh, spec, options.skip_cloud_checks) {
        Ok((preview, planned)) => (preview, Some(planned)),
        Err(e) if options.dry_run => (format!("(the build plan cannot be shown: {e:#})\n"), None),
        Err(e) => return Err(e),
    };
    plan.push_str(&indent(&preview));
    plan.push_str(&indent(&found_text(found, planned)));
    plan.push_str(&later_steps(options, facts, signing_repo, done));
    Ok(plan)
}

/// The change the first step makes to `ds0_utils.py`, as a diff.
fn version_diff(sh: &Shell, options: &Release, facts: &Facts) -> Result<String> {
    let change = project::read(sh, ds0::DS0_PATH).and_then(|old| {
        let new = ds0::edit(&old, &facts.version.to_string(), Some(&facts.branch))
            .map_err(anyhow::Error::msg)?;
        Ok((old, new))
    });
    let diff = match &change {
        Ok((old, new)) => release::diff(ds0::DS0_PATH, old, new, 2),
        Err(e) if options.dry_run => format!("(the change cannot be shown: {e:#})\n"),
        Err(e) => bail!("{e:#}"),
    };
    Ok(if diff.is_empty() {
        "(it already holds this version and branch)\n".to_string()
    } else {
        diff
    })
}

/// Steps 3 to 6 of the plan: merge, commit, tag, push.
fn later_steps(
    options: &Release,
    facts: &Facts,
    signing_repo: &Git,
    done: impl Fn(Step) -> &'static str,
) -> String {
    let version_text = facts.version.to_string();
    // The merge is the end of the publish step.
    let merged = done(Step::Publish);
    let mut plan = if facts.candidate() {
        format!("3. leave `{REGISTRY_PATH}` as it is: a candidate's AMIs go to the run record and the tag message{merged}\n")
    } else {
        format!("3. merge the new AMIs into `{REGISTRY_PATH}` (an entry is replaced only by a new AMI of its region, release and virtualization type){merged}\n")
    };
    plan.push_str(&if facts.candidate() {
        format!("4. no release commit: the candidate's tag goes on the prepare commit{}\n", done(Step::Commit))
    } else {
        format!(
            "4. commit `{REGISTRY_PATH}` as {} on top of the prepare commit: \"Release ComboAMI {version_text}\"{}\n",
            facts.identity,
            done(Step::Commit)
        )
    });
    plan.push_str(&format!(
        "5. tag that commit `{}` ({}; the message lists the AMIs and names the baked commit){}\n",
        facts.tag,
        signing_summary(signing_repo, options.sign.choice()),
        done(Step::Tag)
    ));
    match &options.push {
        Some(remote) => plan.push_str(&format!(
            "6. push branch `{}` and tag `{}` to `{remote}` with `git push --atomic`\n",
            facts.push_branch, facts.tag
        )),
        None => plan.push_str("6. no push (add `--push` to push the commit and the tag)\n"),
    }
    plan
}

/// Runs the steps not done yet, saving the record after each.
#[allow(clippy::too_many_arguments)]
fn run_steps(
    sh: &Shell,
    root: &Path,
    git: &Git,
    signing_repo: &Git,
    options: &Release,
    facts: &Facts,
    record: &mut RunRecord,
    standin_root: Option<&Path>,
    progress: &Arc<Progress>,
) -> Result<()> {
    let version_text = facts.version.to_string();
    let command = steps(record).command.clone();
    if !steps(record).is_done(Step::Prepare, None) {
        prepare(
            sh,
            root,
            git,
            options,
            facts,
            record,
            standin_root.is_some(),
        )?;
    }
    if !steps(record).is_done(Step::Publish, None) {
        publish(sh, root, options, record, standin_root, progress).fix(
            || {
                format!(
                    "release {version_text} stopped at step 2 (publish); what succeeded is kept"
                )
            },
            || format!("run `{command}` to resume: only what did not succeed is rebuilt"),
        )?;
    }
    if steps(record).commit.is_none() {
        interrupt::check("the commit (step 4)")?;
        let amis = record.amis();
        let baked = record.spec.commit.clone();
        let commit = if facts.candidate() {
            // A candidate leaves `ami_ids.json` as it was: its tag is on the prepare commit.
            baked
        } else {
            let message = release::commit_message(&version_text, &baked, &amis);
            let files = project::release_files(root)?;
            let registry = files.get(1).map_or(REGISTRY_PATH, String::as_str);
            let commit = git.commit(&[registry], &message)?;
            eprintln!(
                "committed {} \"Release ComboAMI {version_text}\" on top of the prepare commit {}",
                short(&commit),
                short(&baked)
            );
            commit
        };
        steps(record).commit = Some(commit);
        record.save(sh)?;
    }
    if !steps(record).tagged {
        interrupt::check("the tag (step 5)")?;
        let commit = steps(record).commit.clone().expect("committed above");
        let message = release::tag_message(
            &version_text,
            &facts.branch,
            &record.amis(),
            &record.comboami_commits(),
        ) + &release::provenance(&record.spec.commit, &record.unfinished());
        let signer = signing::signer(&signing_repo.repo, options.sign.choice())?;
        git.create_tag(&facts.tag, &commit, &message, signer.as_ref())?;
        steps(record).tagged = true;
        record.save(sh)?;
        eprintln!("tagged {} `{}`", short(&commit), facts.tag);
    }
    push(sh, root, options, facts, record)
}

/// Step 1: sets the version, commits it (the prepare commit, which every image bakes) and puts
/// it on the remote's release branch before anything launches: pushed with `--push` (always to
/// a rehearsal's scratch remote), else it must be there already (the preflight checked).
fn prepare(
    sh: &Shell,
    root: &Path,
    git: &Git,
    options: &Release,
    facts: &Facts,
    record: &mut RunRecord,
    rehearsal: bool,
) -> Result<()> {
    let version_text = facts.version.to_string();
    if !steps(record).prepared {
        set_version::apply(sh, &version_text, Some(&facts.branch))?;
        steps(record).prepared = true;
        record.save(sh)?;
        eprintln!(
            "set `{}` to {version_text} (branch {})",
            ds0::DS0_PATH,
            facts.branch
        );
    }
    let files = project::release_files(root)?;
    let ds0_file = files.first().map_or(ds0::DS0_PATH, String::as_str);
    let changed = git.file_at_head(ds0_file).ok() != project::read(sh, ds0_file).ok();
    let commit = if changed {
        let message = release::prepare_message(&version_text, &facts.branch);
        // A rehearsal's scratch remote may be gone when it is run again (`rm -rf
        // target/rehearsal` on another machine): its prepare commit is made again, identical,
        // so the images that baked it are found through their `Commit` tag.
        let commit = match rehearsal {
            true => git.commit_reproducibly(&[ds0_file], &message)?,
            false => git.commit(&[ds0_file], &message)?,
        };
        eprintln!(
            "committed {} \"Prepare ComboAMI {version_text}\"",
            short(&commit)
        );
        commit
    } else {
        git.head_commit()?
    };
    let remote = match (&options.push, rehearsal) {
        (Some(remote), _) => Some(remote.as_str()),
        (None, true) => Some("origin"),
        (None, false) => None,
    };
    if let Some(remote) = remote {
        interrupt::check("pushing the prepare commit")?;
        let refspec = format!("{commit}:refs/heads/{}", facts.push_branch);
        cmd!(sh, "git -C {root} push --quiet {remote} {refspec}")
            .run()
            .fix(
                || {
                    format!(
                        "cannot push the prepare commit {} to `{remote}`; nothing was launched",
                        short(&commit)
                    )
                },
                || {
                    format!(
                        "resolve the cause above, then run `{}` again",
                        steps(record).command
                    )
                },
            )?;
        eprintln!(
            "pushed the prepare commit {} to `{remote}` branch `{}`: every image bakes it",
            short(&commit),
            facts.push_branch
        );
    }
    // The publish has not launched anything yet: its images bake this commit.
    record.spec.commit = commit.clone();
    steps(record).prepare_commit = Some(commit);
    record.save(sh)
}

/// Step 2 (and 3): the publish, by the build code of `publish`, on this release's record; its
/// AMIs are merged into the record's registry (none for a candidate).
fn publish(
    sh: &Shell,
    root: &Path,
    options: &Release,
    record: &mut RunRecord,
    standin_root: Option<&Path>,
    progress: &Arc<Progress>,
) -> Result<()> {
    let launch = build::Launch {
        yes: true,
        no_parallel: options.no_parallel,
        debug: options.debug,
        packer_args: options.packer_args.clone(),
        skip_cloud_checks: options.skip_cloud_checks,
        json: false,
        standin_root: standin_root.unwrap_or(root).to_path_buf(),
        branch: None,
        partial: false,
        progress: progress.clone(),
    };
    let finished = build::continue_run(sh, root, record.clone(), &launch)?;
    *record = finished.record;
    steps(record).published = true;
    record.save(sh)
}

/// Step 6, when asked for and not done yet.
fn push(
    sh: &Shell,
    root: &Path,
    options: &Release,
    facts: &Facts,
    record: &mut RunRecord,
) -> Result<()> {
    let Some(remote) = &options.push else {
        return Ok(());
    };
    if steps(record).pushed_to.as_deref() == Some(remote) {
        return Ok(());
    }
    interrupt::check("the push (step 6)")?;
    let version_text = facts.version.to_string();
    let command = steps(record).command.clone();
    git::push(sh, root, remote, &facts.push_branch, &facts.tag).fix(
        || {
            format!(
                "release {version_text} stopped at step 6 (push); the commit and the tag are made"
            )
        },
        || format!("resolve the cause above, then run `{command}` to push them"),
    )?;
    steps(record).pushed_to = Some(remote.clone());
    record.save(sh)
}

/// What a finished release says, and its `--json` document.
fn released(facts: &Facts, record: &RunRecord, options: &Release) {
    let version_text = facts.version.to_string();
    let steps = record.release.clone().unwrap_or_default();
    let commit = steps.commit.clone().unwrap_or_default();
    let amis = record.amis();
    let regions: std::collections::BTreeSet<&str> =
        amis.iter().map(|a| a.region.as_str()).collect();
    output::say(format!("\nreleased ComboAMI {version_text}:"));
    output::say(format!(
        "  commit  {} on `{}`",
        short(&commit),
        facts.push_branch
    ));
    output::say(format!("  tag     {}", facts.tag));
    output::say(format!(
        "  AMIs    {} in {} regions, {} (publish run `{}`)",
        amis.len(),
        regions.len(),
        if facts.candidate() {
            format!("private; in the tag message, not in `{REGISTRY_PATH}`")
        } else {
            format!("public, in `{REGISTRY_PATH}`")
        },
        record.run_id
    ));
    match &steps.pushed_to {
        Some(remote) => output::say(format!("  pushed  to `{remote}`")),
        // A rehearsal's commit and tag live in its scratch clone: only `--push` (to the scratch
        // remote) finishes it; a `git push` here would name refs this repository lacks.
        None if options.local => output::say(format!(
            "  not pushed: run `{} --push` to rehearse the push too (to the rehearsal's scratch remote)",
            resume_command(&Release {
                push: None,
                ..options.clone()
            })
        )),
        None => output::say(format!(
            "  not pushed: run `git push --atomic origin {} {}` or this command with `--push`",
            facts.push_branch, facts.tag
        )),
    }
    output::document(serde_json::json!({
        "command": "release",
        "ok": true,
        "version": version_text,
        "candidate": facts.candidate(),
        "rehearsal": options.local,
        "branch": facts.branch,
        "commit": commit,
        "tag": facts.tag,
        "pushed_to": steps.pushed_to,
        "publish_run": record,
        "amis": amis,
    }));
}

/// Every check, whatever fails first: the user fixes everything in one go.
fn preflight(
    sh: &Shell,
    root: &Path,
    git: &Git,
    signing_repo: &Git,
    options: &Release,
    record: Option<&RunRecord>,
    contact_remote: bool,
) -> (Vec<Check>, Option<Facts>) {
    let steps = record.and_then(|r| r.release.as_ref());
    let (check, parsed) = check_version(&options.version);
    let mut checks = vec![check];
    let (parsed, tag) = parsed.map_or((None, None), |(v, tag)| (Some(v), Some(tag)));
    if parsed.is_some() {
        checks.push(check_image_names(sh, &options.version));
    }
    let branch = options
        .branch
        .clone()
        .or_else(|| parsed.as_ref().map(version::default_branch));
    let own_tag = steps.filter(|s| s.tagged).map(|s| s.tag.as_str());
    if let (Some(v), Some(tag)) = (&parsed, &tag) {
        checks.push(check_tag_free(git, tag, own_tag));
        checks.push(check_order(git, v, own_tag));
    }
    let head = tree_checks(root, git, record, &mut checks);
    if let Some(branch) = &branch {
        checks.push(if options.local {
            check_rehearsal_branch(git, branch)
        } else {
            check_branch(git, branch, options.allow_branch)
        });
    }
    let (check, identity) = check_identity(git);
    checks.push(check);
    if !steps.is_some_and(|s| s.tagged) {
        checks.push(check_signing(signing_repo, options.sign.choice()));
    }
    checks.push(check_credentials(sh, root, options.local));
    checks.push(check_packer(sh));
    let push_branch = push_branch(git, options, &branch);
    if let (Some(remote), Some(tag)) = (&options.push, &tag) {
        let pushed = steps.is_some_and(|s| s.pushed_to.as_deref() == Some(remote));
        let remote_branch = push_branch.as_deref().filter(|_| !pushed);
        checks.extend(remote_checks(
            sh,
            root,
            git,
            options,
            (remote, tag, remote_branch),
            pushed,
            contact_remote,
        ));
    }
    if steps.is_none_or(|s| s.prepare_commit.is_none()) && contact_remote {
        let branches = (push_branch.as_deref(), branch.as_deref());
        checks.extend(prepare_check(
            sh,
            root,
            git,
            options,
            branches,
            parsed.as_ref(),
        ));
    }
    // Placeholders stand in only where a check failed: a dry run still shows its plan.
    let facts = match (parsed, branch, push_branch, tag) {
        (Some(version), Some(branch), Some(push_branch), Some(tag)) => Some(Facts {
            version,
            branch,
            push_branch,
            tag,
            head: head.unwrap_or_else(|_| "(none)".into()),
            identity: identity.unwrap_or_else(|| "(no git identity)".into()),
        }),
        _ => None,
    };
    (checks, facts)
}

/// Without `--push` (and outside a rehearsal) the prepare commit must be on the remote's
/// branch before anything launches: `(push branch, branch of ds0_utils.py)`.
fn prepare_check(
    sh: &Shell,
    root: &Path,
    git: &Git,
    options: &Release,
    (push_branch, ds0_branch): (Option<&str>, Option<&str>),
    version: Option<&Version>,
) -> Option<Check> {
    if options.push.is_some() || options.local {
        return None;
    }
    let (push_branch, version) = (push_branch?, version?);
    let ds0_branch = ds0_branch.unwrap_or(push_branch);
    Some(check_prepared_on_remote(
        sh,
        root,
        git,
        ("origin", push_branch),
        (&version.to_string(), ds0_branch),
    ))
}

/// The branch the release commit goes on and is pushed: with `--allow-branch` the current one.
fn push_branch(git: &Git, options: &Release, branch: &Option<String>) -> Option<String> {
    match (git.current_branch(), branch) {
        (Ok(Some(current)), _) if options.allow_branch => Some(current),
        (_, branch) => branch.clone(),
    }
}

fn check_packer(sh: &Shell) -> Check {
    match Packer::detect(sh) {
        Ok(p) => Check::ok("packer", format!("Packer {}", p.version)),
        Err(e) => Check::fail("packer", format!("{e:#}")),
    }
}

fn check_image_names(sh: &Shell, version: &str) -> Check {
    match project::matrix(sh) {
        Ok(m) => match matrix::check_names(&m, version) {
            Ok(()) => Check::ok(
                "image names",
                format!("valid for AWS with version {version}"),
            ),
            Err(e) => Check::fail("image names", e),
        },
        Err(e) => Check::fail("image names", format!("{e:#}")),
    }
}

/// The release files, the working tree and HEAD: on resume the release's own edits and commit
/// are expected. Returns HEAD.
fn tree_checks(
    root: &Path,
    git: &Git,
    record: Option<&RunRecord>,
    checks: &mut Vec<Check>,
) -> Result<String> {
    let steps = record.and_then(|r| r.release.as_ref());
    // A symlinked `ds0_utils.py` or `ami_ids.json` is edited through: its target is committed.
    let files = match project::release_files(root) {
        Ok(files) => {
            if files != [ds0::DS0_PATH, REGISTRY_PATH] {
                checks.push(Check::ok("release files", files.join(", ")));
            }
            files
        }
        Err(e) => {
            checks.push(Check::fail("release files", format!("{e:#}")));
            Vec::new()
        }
    };
    let allowed: Vec<&str> = match steps {
        Some(s) if s.prepared && s.commit.is_none() => files.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    checks.push(check_clean(git, &allowed));
    let head = git.head_commit();
    match (record, &head) {
        (Some(record), head) => checks.push(check_head(record, head)),
        (None, Err(e)) => checks.push(Check::fail("HEAD", format!("{e:#}"))),
        (None, Ok(_)) => {}
    }
    head
}

/// HEAD where the release left it: its start, or its own commit.
fn check_head(record: &RunRecord, head: &Result<String>) -> Check {
    let commit = record.release.as_ref().and_then(|s| s.commit.as_deref());
    let expected = commit.unwrap_or(&record.spec.commit);
    match head {
        Ok(head) if head == expected => Check::ok("HEAD", format!("{} as the release left it", short(head))),
        Ok(head) => Check::fail("HEAD", format!(
            "HEAD moved since this release started (expected {}, found {}): check out {} again, or remove `{}` to start the release over",
            short(expected), short(head), short(expected), record.dir()
        )),
        Err(e) => Check::fail("HEAD", format!("{e:#}")),
    }
}

fn check_credentials(sh: &Shell, root: &Path, local: bool) -> Check {
    if local {
        return Check::ok("credentials", "not needed: the local stand-in has its own");
    }
    match credentials::load(sh, root, true) {
        Ok(c) if c.warnings.is_empty() => Check::ok(
            "credentials",
            format!("`{}` is complete", credentials::LOCAL_JSON),
        ),
        Ok(c) => Check::ok(
            "credentials",
            format!(
                "`{}` (warning: {})",
                credentials::LOCAL_JSON,
                c.warnings.join("; ")
            ),
        ),
        Err(e) => Check::fail("credentials", format!("{e:#}")),
    }
}

/// The remote and its branch, when pushing: `(remote, tag, branch to check)`.
fn remote_checks(
    sh: &Shell,
    root: &Path,
    git: &Git,
    options: &Release,
    (remote, tag, branch): (&str, &str, Option<&str>),
    pushed: bool,
    contact_remote: bool,
) -> Vec<Check> {
    if !contact_remote {
        return vec![Check::ok(
            "remote",
            "not asked: the rehearsal pushes to a scratch bare repository",
        )];
    }
    let mut checks = vec![check_remote(
        sh,
        root,
        git,
        remote,
        tag,
        pushed,
        options.local,
    )];
    if let Some(branch) = branch {
        checks.push(check_remote_branch(
            sh,
            root,
            git,
            remote,
            branch,
            options.dry_run,
        ));
    }
    checks
}

/// A rehearsal (`--local`) releases the current commit whatever the branch here: its scratch
/// clone gets the commit as the release branch.
fn check_rehearsal_branch(git: &Git, branch: &str) -> Check {
    if let Err(e) = ds0::check_branch(branch) {
        return Check::fail("branch", e.to_string());
    }
    let here = match git.current_branch() {
        Ok(Some(current)) if current == branch => {
            return Check::ok("branch", format!("on `{branch}`"))
        }
        Ok(Some(current)) => format!("on `{current}`"),
        Ok(None) => "HEAD is detached".to_string(),
        Err(e) => return Check::fail("branch", format!("{e:#}")),
    };
    Check::ok(
        "branch",
        format!("{here}; the rehearsal puts this commit on `{branch}` in its scratch clone"),
    )
}

/// The `--json` document of a dry run, or of a release its checks refused: every check, and the
/// plan when it could be made.
fn preflight_document(checks: &[Check], plan: Option<&str>, dry_run: bool) -> serde_json::Value {
    let checks: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| {
            let (ok, detail) = match &c.result {
                Ok(detail) => (true, detail),
                Err(problem) => (false, problem),
            };
            serde_json::json!({"check": c.what, "ok": ok, "detail": detail})
        })
        .collect();
    serde_json::json!({
        "command": "release",
        "dry_run": dry_run,
        "ok": checks.iter().all(|c| c["ok"] == true),
        "checks": checks,
        "plan": plan,
    })
}

/// The cloud preflight of the release's publish, as checks of the release's report; and, when
/// the cloud was asked, the images of this release's version already under the planned names
/// (a release stopped here or on another machine): the publish adopts or rebuilds them.
fn check_cloud(
    sh: &Shell,
    (root, git): (&Path, &Git),
    options: &Release,
    standin_root: Option<&Path>,
    profile: Result<Option<String>>,
) -> (Vec<Check>, Option<Vec<Adopted>>) {
    if options.skip_cloud_checks {
        return (vec![Check::ok("cloud", cloud::SKIPPED)], None);
    }
    let Ok(parsed) = version::parse(&options.version) else {
        return (Vec::new(), None);
    };
    // Errors of the matrix are the image-names check's to report.
    let Ok(matrix) = project::matrix(sh) else {
        return (Vec::new(), None);
    };
    let spec = Spec {
        kind: Kind::Official,
        local: options.local,
        version: parsed.to_string(),
        branch: (options.branch.clone()).unwrap_or_else(|| version::default_branch(&parsed)),
        commit: String::new(),
        epoch: 0,
        private: !parsed.pre.is_empty(),
        registry: None,
        only: Vec::new(),
    };
    let Ok(plan) = template::plan(&matrix, &spec) else {
        return (Vec::new(), None);
    };
    let (standin, expected_account, credentials_source) =
        match who_answers(sh, root, options.local, standin_root, profile) {
            Ok(answerer) => answerer,
            Err(checks) => return (checks, None),
        };
    // Before its prepare commit exists, a release reviews every image of its version; when
    // HEAD is the prepare commit already (pushed by a run elsewhere), only that commit's.
    let owner = Ownership {
        project: matrix.settings.project.clone(),
        version: spec.version.clone(),
        commit: prepared_head(git, &spec.version, &spec.branch),
        run_id: None,
    };
    let gate = cloud::Gate {
        planned: plan.builders,
        public: template::is_public(&matrix, &spec),
        standin: standin.as_ref(),
        expected_account,
        credentials_source,
        owner: Some(owner),
        resume: format!(
            "cargo xtask publish{} --resume",
            if options.local { " --local" } else { "" }
        ),
        same_base_for_both: crate::pure::preflight::same_base_for_both(&matrix),
    };
    match cloud::ask(sh, root, gate) {
        Ok(outcome) => (outcome.checks, Some(outcome.adopted)),
        Err(e) => (vec![Check::fail("aws identity", format!("{e:#}"))], None),
    }
}

/// HEAD, when `ds0_utils.py` there holds `version` and `branch` already: then it is the commit
/// the release's images bake (the prepare step makes no commit of its own).
fn prepared_head(git: &Git, version: &str, branch: &str) -> Option<String> {
    let text = git.file_at_head(ds0::DS0_PATH).ok()?;
    let prepared = ds0::edit(&text, version, Some(branch)).is_ok_and(|edited| edited == text);
    prepared.then(|| git.head_commit().ok()).flatten()
}

/// Who answers the cloud checks: the running stand-in, or AWS with the user's credentials (the
/// account they must belong to, and where they came from); else why the cloud is not asked.
type Answerer = (Option<Standin>, Option<String>, Option<String>);

fn who_answers(
    sh: &Shell,
    root: &Path,
    local: bool,
    standin_root: Option<&Path>,
    profile: Result<Option<String>>,
) -> Result<Answerer, Vec<Check>> {
    if local {
        return match Standin::running(standin_root.unwrap_or(root)) {
            Some(standin) => Ok((Some(standin), None, None)),
            None => Err(vec![Check::ok(
                "cloud",
                "not asked: no stand-in is running (`cargo xtask local up` first includes the cloud checks in a local dry run; a rehearsal asks before it builds)",
            )]),
        };
    }
    match (profile, credentials::load(sh, root, true)) {
        (Ok(source), Ok(credentials)) => Ok((None, credentials.account_id, source)),
        (Ok(_), Err(_)) => Err(vec![Check::ok(
            "cloud",
            "not asked until the credentials check passes",
        )]),
        (Err(e), _) => Err(vec![Check::fail("aws identity", format!("{e:#}"))]),
    }
}

/// The command that resumes this release: the same command, confirmed.
fn resume_command(options: &Release) -> String {
    let mut command = format!("cargo xtask release {}", options.version);
    if let Some(branch) = &options.branch {
        command.push_str(&format!(" --branch {branch}"));
    }
    if options.allow_branch {
        command.push_str(" --allow-branch");
    }
    if let Some(remote) = &options.push {
        command.push_str(&format!(" --push {remote}"));
    }
    if options.local {
        command.push_str(" --local");
    }
    // Without a terminal the resume cannot be confirmed: it says yes where this command did.
    if options.yes {
        command.push_str(" --yes");
    }
    if options.json {
        command.push_str(" --json");
    }
    command
}

/// Recognises what this release did but could not record because its command died: its own
/// commit on top of the start (same parent, its message) and its own tag on that commit.
/// Returns whether the record changed.
fn adopt_own_work(git: &Git, record: &mut RunRecord) -> bool {
    let version = record.spec.version.clone();
    let start = record.spec.commit.clone();
    let steps = steps(record);
    let mut changed = false;
    if steps.prepared && steps.commit.is_none() {
        let subject = format!("Release ComboAMI {version}\n");
        if let Ok(head) = git.head_commit() {
            if head != start
                && git.parents(&head).is_ok_and(|p| p == [start.clone()])
                && git
                    .commit_message(&head)
                    .is_ok_and(|m| m.starts_with(&subject))
            {
                eprintln!(
                    "found this release's own commit {} (made just before its command stopped): carrying on from it",
                    short(&head)
                );
                steps.published = true;
                steps.commit = Some(head);
                changed = true;
            }
        }
    }
    if let (Some(commit), false) = (&steps.commit, steps.tagged) {
        let heading = format!("ComboAMI {version} (branch ");
        if git.tag_target(&steps.tag).as_ref() == Some(commit)
            && git
                .tag_message(&steps.tag)
                .is_some_and(|m| m.starts_with(&heading))
        {
            eprintln!(
                "found this release's own tag `{}` on {}: carrying on from it",
                steps.tag,
                short(commit)
            );
            steps.tagged = true;
            changed = true;
        }
    }
    changed
}

/// The plan's lines for the images of this version the cloud already holds: what the publish
/// does with each.
fn found_text(found: &[Adopted], planned: Option<usize>) -> String {
    if found.is_empty() {
        return String::new();
    }
    let launches = planned.map_or(String::new(), |planned| {
        format!(
            "{}\n",
            crate::pure::render::launches_after_review(planned, found.len())
        )
    });
    let mut text = format!(
        "{} image(s) of this version already exist (a release stopped here or elsewhere); each is adopted only if its `Commit` tag is the prepare commit and its `Verified` verdict and stored report pass again, else a private one is deregistered with its snapshots and its builder rebuilt (a public one stops the release):\n",
        found.len()
    );
    for image in found {
        text.push_str(&format!(
            "  {} {} in {} (run `{}`): {}\n",
            image.builder,
            image.ami,
            image.region,
            image.run.as_deref().unwrap_or("?"),
            image.state
        ));
    }
    text + &launches
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("     {l}\n")).collect()
}

/// An empty folder beside `scratch` to make a rehearsal in. Whatever an interrupted rehearsal
/// left half-made (there, or at `scratch` without its clone) is removed first.
fn partial_rehearsal_dir(scratch: &Path) -> Result<PathBuf> {
    let mut partial = scratch.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    for half_made in [scratch, partial.as_path()] {
        if half_made.exists() {
            eprintln!(
                "rehearsal: removing the half-made rehearsal `{}` (an earlier one was interrupted)",
                half_made.display()
            );
            std::fs::remove_dir_all(half_made)
                .with_context(|| format!("cannot remove `{}`", half_made.display()))?;
        }
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create `{}`", partial.display()))?;
    Ok(partial)
}

/// Where a rehearsal of `version` keeps its scratch clone and remote.
pub fn rehearsal_dir(root: &Path, version: &str) -> PathBuf {
    root.join(format!("target/rehearsal/release-{version}"))
}
