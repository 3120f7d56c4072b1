//! `cargo xtask release VERSION`: the official checklist as one command. Preflight (every check
//! at once), plan, then set the version, publish, merge, commit, tag and push — each step
//! recorded in `build/runs/release-VERSION/release.json`, so running the same command again
//! resumes where it stopped. `--local` rehearses all of it in a scratch clone.

use crate::cmd::checks::{
    check_branch, check_clean, check_identity, check_order, check_remote, check_remote_branch,
    check_signing, check_tag_free, check_version, short, signing_summary,
};
use crate::cmd::{build, set_version};
use crate::core::release::{self, Check};
use crate::core::template::Kind;
use crate::core::{ds0, matrix, registry::REGISTRY_PATH, version};
use crate::core::{preflight, template};
use crate::credentials;
use crate::error::FixContext;
use crate::git::{self, Git};
use crate::packer::Packer;
use crate::standin::Standin;
use crate::{cloud, interrupt, output, project, runs, signing};
use anyhow::{bail, Context, Result};
use semver::Version;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The whole official release: check, set the version, publish, merge, commit, tag, push.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask release 2.6.4 --dry-run\n  cargo xtask release 2.6.4 --local --yes\n  cargo xtask release 2.6.4 --push"
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
        let options = Options {
            sign: self.sign.choice(),
            version: self.version,
            branch: self.branch,
            allow_branch: self.allow_branch,
            dry_run: self.dry_run,
            push: self.push,
            local: self.local,
            yes: self.yes,
            no_parallel: self.no_parallel,
            debug: self.debug,
            packer_args: self.packer_args,
            skip_cloud_checks: self.skip_cloud_checks,
        };
        run(cx.sh, cx.root(), &options)?;
        Ok(std::process::ExitCode::SUCCESS)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub version: String,
    pub branch: Option<String>,
    pub allow_branch: bool,
    pub dry_run: bool,
    /// The remote to push to, when pushing.
    pub push: Option<String>,
    pub local: bool,
    pub yes: bool,
    pub sign: signing::Choice,
    /// Passed on to the publish: one builder at a time, Packer's `-debug`, and options for
    /// `packer build`.
    pub no_parallel: bool,
    pub debug: bool,
    pub packer_args: Vec<String>,
    /// `--skip-cloud-checks`: emergencies only, said loudly.
    pub skip_cloud_checks: bool,
}

/// What is done of one release; saved after every step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    version: String,
    branch: String,
    tag: String,
    /// HEAD when the release started: the commit the release commit goes on top of.
    start_head: String,
    version_set: bool,
    publish_run: Option<String>,
    /// The publish finished and its AMIs are merged.
    #[serde(default)]
    published: bool,
    commit: Option<String>,
    tagged: bool,
    pushed_to: Option<String>,
}

impl State {
    fn path(version: &str) -> String {
        format!("{}/release-{version}/release.json", runs::RUNS_DIR)
    }

    fn load(sh: &Shell, version: &str) -> Result<Option<State>> {
        let path = State::path(version);
        if !sh.path_exists(&path) {
            return Ok(None);
        }
        let text = project::read(sh, &path)?;
        crate::core::json::parse(&text).map(Some).map_err(|e| {
            anyhow::anyhow!(
                "`{path}` is damaged ({e}): fix it, or remove it to start the release over"
            )
        })
    }

    fn save(&self, sh: &Shell) -> Result<()> {
        let path = State::path(&self.version);
        let dir = Path::new(&path).parent().expect("the state has a folder");
        sh.create_dir(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        project::write_atomic(sh, &path, &(serde_json::to_string_pretty(self)? + "\n"))
    }

    fn done(&self, push: Option<&str>) -> bool {
        self.tagged && (push.is_none() || self.pushed_to.as_deref() == push)
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

fn run(sh: &Shell, root: &Path, options: &Options) -> Result<()> {
    interrupt::install();
    if options.local && !options.dry_run {
        return rehearse(sh, root, options);
    }
    release_in(sh, root, options, None)
}

/// `--local`: check the real repository, then run the release in a scratch clone (with a
/// scratch bare repository as its `origin`) against the stand-in. The real repository is only
/// read.
fn rehearse(sh: &Shell, root: &Path, options: &Options) -> Result<()> {
    let real = Git::open(root)?;
    // The rehearsal pushes to its scratch remote: the real remotes are not consulted.
    let real_options = Options {
        push: None,
        ..options.clone()
    };
    let (mut checks, facts) = preflight(sh, root, &real, &real, &real_options, None, false);
    checks.sort_by_key(|c| c.result.is_ok());
    if release::failures(&checks) > 0 {
        eprint!("{}", release::report(&checks));
        output::document(preflight_document(&checks, None, false));
        bail!(
            "{} preflight check(s) failed in the real repository (listed on top); nothing was changed: fix them and run the same command again",
            release::failures(&checks)
        );
    }
    let scratch = rehearsal_dir(root, &options.version);
    let clone = scratch.join("repo");
    let remote = scratch.join("remote.git");
    let head = real.head_commit()?;
    if clone.exists() {
        let previous = {
            let _dir = sh.push_dir(&clone);
            State::load(sh, &options.version).ok().flatten()
        };
        match previous {
            Some(state) if state.start_head == head && !state.done(options.push.as_deref()) => {
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
                std::fs::remove_dir_all(&scratch)
                    .with_context(|| format!("cannot remove `{}`", scratch.display()))?;
            }
        }
    }
    if !clone.exists() {
        sh.create_dir(&scratch)
            .with_context(|| format!("cannot create `{}`", scratch.display()))?;
        cmd!(sh, "git clone --quiet --bare {root} {remote}")
            .quiet()
            .run()
            .context("cannot make the scratch remote for the rehearsal")?;
        // The current commit becomes the release branch there, whatever the branch here (a
        // fresh clone has only `main`); the real repository's refs are not touched.
        let branch = &facts
            .as_ref()
            .expect("facts are known when every check passed")
            .branch;
        let refspec = format!("HEAD:refs/heads/{branch}");
        cmd!(sh, "git -C {root} push --quiet --force {remote} {refspec}")
            .quiet()
            .run()
            .context("cannot give the scratch remote the release branch")?;
        cmd!(sh, "git clone --quiet --branch {branch} {remote} {clone}")
            .quiet()
            .run()
            .context("cannot make the scratch clone for the rehearsal")?;
        let here = match real.current_branch() {
            Ok(Some(current)) => format!("on `{current}`"),
            _ => "detached".to_string(),
        };
        eprintln!(
            "rehearsal: commit {} ({here}) is branch `{branch}` in the scratch clone `{}`",
            short(&head),
            clone.display()
        );
    }
    let options = Options {
        push: options.push.as_ref().map(|_| "origin".to_string()),
        ..options.clone()
    };
    let result = {
        let _dir = sh.push_dir(&clone);
        release_in(sh, &clone, &options, Some(root))
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

/// The release in the repository at `root` (the shell is there). `standin_root` is set for a
/// rehearsal: where the stand-in and its virtualenv live.
fn release_in(
    sh: &Shell,
    root: &Path,
    options: &Options,
    standin_root: Option<&Path>,
) -> Result<()> {
    let git = Git::open(root)?;
    // A rehearsal signs as the real repository would: its configuration, not the clone's.
    let signing_repo = match standin_root {
        Some(real) => Git::open(real)?,
        None => Git::open(root)?,
    };
    let mut state = State::load(sh, &options.version)?;
    if let Some(state) = state.as_mut() {
        // A command killed between a step and saving it left the step's result behind.
        if !options.dry_run && adopt_own_work(&git, state) {
            state.save(sh)?;
        }
    }
    if let Some(state) = &state {
        if state.done(options.push.as_deref()) {
            output::document(serde_json::json!({
                "command": "release",
                "ok": true,
                "already_done": true,
                "version": state.version,
                "branch": state.branch,
                "commit": state.commit,
                "tag": state.tag,
                "pushed_to": state.pushed_to,
                "publish_run_id": state.publish_run,
            }));
            output::say(format!(
                "release {} is already done: commit {} tagged `{}`{}",
                state.version,
                short(state.commit.as_deref().unwrap_or("?")),
                state.tag,
                state
                    .pushed_to
                    .as_ref()
                    .map(|r| format!(", pushed to `{r}`"))
                    .unwrap_or_default()
            ));
            return Ok(());
        }
        eprintln!(
            "resuming release {}: {}",
            state.version,
            progress(state, options.push.as_deref())
        );
    }
    // Named profiles resolve once, before the credentials are checked.
    let profile = match options.local {
        true => Ok(None),
        false => credentials::resolve_profile(sh, root, "aws"),
    };
    // A rehearsal's dry run runs in the real repository: its remotes are not asked anything.
    let contact_remote = !(options.local && standin_root.is_none());
    let (mut checks, facts) = preflight(
        sh,
        root,
        &git,
        &signing_repo,
        options,
        state.as_ref(),
        contact_remote,
    );
    // The cloud, for a release whose publish has not started (a resumed publish checks, and
    // adopts, itself).
    let mut cloud_checked = false;
    if state.as_ref().is_none_or(|s| s.publish_run.is_none()) {
        let (cloud, asked) = check_cloud(sh, root, options, standin_root, profile);
        checks.extend(cloud);
        cloud_checked = asked;
    }
    // Failing checks on top, where they are read first.
    checks.sort_by_key(|c| c.result.is_ok());
    eprint!("{}", release::report(&checks));
    let failed = release::failures(&checks);
    let refused = || {
        anyhow::anyhow!(
            "{failed} preflight check(s) failed (listed on top); nothing was changed: fix them and run the same command again"
        )
    };
    if failed > 0 && !options.dry_run {
        output::document(preflight_document(&checks, None, false));
        return Err(refused());
    }
    // A dry run shows the plan even when checks failed, as far as the version allows.
    let Some(facts) = facts else {
        output::document(preflight_document(&checks, None, true));
        return Err(refused());
    };
    let version_text = facts.version.to_string();
    // A candidate is private and stays out of the registry: its AMIs are in the run record
    // and the tag message. A release is public and merged.
    let candidate = !facts.version.pre.is_empty();
    let resume_command = resume_command(options);
    // The user's flags of the publish this release drives; the rest is the release's.
    let publish_flags = build::Flags {
        local: options.local,
        yes: true,
        private: candidate,
        no_parallel: options.no_parallel,
        debug: options.debug,
        packer_args: options.packer_args.clone(),
        skip_cloud_checks: options.skip_cloud_checks,
        ..Default::default()
    };
    let registry = (!candidate).then_some(REGISTRY_PATH);

    // The plan: every step, with the exact file change and what is already done.
    let ds0_change = project::read(sh, ds0::DS0_PATH).and_then(|old| {
        let new =
            ds0::edit(&old, &version_text, Some(&facts.branch)).map_err(anyhow::Error::msg)?;
        Ok((old, new))
    });
    let done = |yes: bool| if yes { " (done)" } else { "" };
    let state_ref = state.as_ref();
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
        "1. set the version in `{}`{}\n",
        ds0::DS0_PATH,
        done(state_ref.is_some_and(|s| s.version_set))
    ));
    if !state_ref.is_some_and(|s| s.version_set) {
        let diff = match &ds0_change {
            Ok((old, new)) => release::diff(ds0::DS0_PATH, old, new, 2),
            Err(e) if options.dry_run => format!("(the change cannot be shown: {e:#})\n"),
            Err(e) => bail!("{e:#}"),
        };
        plan.push_str(&indent(if diff.is_empty() {
            "(it already holds this version and branch)\n"
        } else {
            &diff
        }));
    }
    plan.push_str(&format!(
        "2. publish every enabled row as {} images{}\n",
        if candidate {
            "PRIVATE (a candidate)"
        } else {
            "public"
        },
        match state_ref.and_then(|s| s.publish_run.as_deref()) {
            Some(run) => format!(" (resumes run `{run}`: only what did not succeed is rebuilt)"),
            None => String::new(),
        }
    ));
    plan.push_str(&indent(&match build::preview(
        sh,
        Kind::Official,
        &version_text,
        &facts.branch,
        &publish_flags,
        registry,
    ) {
        Ok(preview) => preview,
        Err(e) if options.dry_run => format!("(the build plan cannot be shown: {e:#})\n"),
        Err(e) => return Err(e),
    }));
    if candidate {
        plan.push_str(&format!(
            "3. leave `{REGISTRY_PATH}` as it is: a candidate's AMIs go to the run record and the tag message\n"
        ));
    } else {
        plan.push_str(&format!(
            "3. merge the new AMIs into `{REGISTRY_PATH}` (an entry is replaced only by a new AMI of its region, release and virtualization type)\n"
        ));
    }
    plan.push_str(&format!(
        "4. commit {} as {}: \"Release ComboAMI {version_text}\"{}\n",
        if candidate {
            format!("`{}`", ds0::DS0_PATH)
        } else {
            format!("`{}` and `{REGISTRY_PATH}`", ds0::DS0_PATH)
        },
        facts.identity,
        done(state_ref.is_some_and(|s| s.commit.is_some()))
    ));
    plan.push_str(&format!(
        "5. tag that commit `{}` ({}; the message lists the AMIs){}\n",
        facts.tag,
        signing_summary(&signing_repo, options.sign),
        done(state_ref.is_some_and(|s| s.tagged))
    ));
    match &options.push {
        Some(remote) => plan.push_str(&format!(
            "6. push branch `{}` and tag `{}` to `{remote}` with `git push --atomic`\n",
            facts.push_branch, facts.tag
        )),
        None => plan.push_str("6. no push (add `--push` to push the commit and the tag)\n"),
    }
    eprint!("{plan}");
    if options.dry_run {
        output::document(preflight_document(&checks, Some(&plan), true));
        if failed > 0 {
            return Err(refused());
        }
        eprintln!("\ndry run: nothing was changed (no file, no ref, nothing launched)");
        return Ok(());
    }
    crate::cmd::confirm(options.yes, "releasing", &format!("release {version_text}"))?;
    interrupt::check("anything started")?;
    crate::interrupt::mark_started();
    interrupt::set_resume(resume_command.clone());

    let mut state = state.unwrap_or_else(|| State {
        version: version_text.clone(),
        branch: facts.branch.clone(),
        tag: facts.tag.clone(),
        start_head: facts.head.clone(),
        ..Default::default()
    });
    state.save(sh)?;

    // 1. The version.
    if !state.version_set {
        set_version::apply(sh, &version_text, Some(&facts.branch))?;
        state.version_set = true;
        state.save(sh)?;
        eprintln!(
            "set `{}` to {version_text} (branch {})",
            ds0::DS0_PATH,
            facts.branch
        );
    }

    // 2 and 3. Publish and merge (the publish merges into the registry).
    let run_id = match &state.publish_run {
        Some(run_id) => run_id.clone(),
        None => {
            let run_id = runs::new_run_id(root, Kind::Official, options.local, project::epoch()?)?;
            state.publish_run = Some(run_id.clone());
            state.save(sh)?;
            run_id
        }
    };
    let started = runs::run_dir(root, &run_id).join("run.json").exists();
    let publish = build::Options {
        flags: build::Flags {
            resume: started.then(|| Some(run_id.clone())),
            ..publish_flags
        },
        release: Some(build::ReleaseOverrides {
            registry: registry.map(String::from),
            run_id: run_id.clone(),
            standin_root: standin_root.map(Path::to_path_buf),
            resume_command: resume_command.clone(),
            cloud_checked,
        }),
    };
    let finished = build::run(sh, root, Kind::Official, &publish).fix(
        || format!("release {version_text} stopped at step 2 (publish); what succeeded is kept"),
        || format!("run `{resume_command}` to resume: only what did not succeed is rebuilt"),
    )?;
    let amis = finished.record.amis();
    let commits = finished.record.comboami_commits();
    if !state.published {
        state.published = true;
        state.save(sh)?;
    }

    // 4. Commit.
    let commit = match &state.commit {
        Some(commit) => commit.clone(),
        None => {
            interrupt::check("the commit (step 4)")?;
            let message = release::commit_message(&version_text, &facts.branch, &amis, candidate);
            // A candidate leaves `ami_ids.json` as it was: committing it changes nothing.
            let files = project::release_files(root)?;
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            let commit = git.commit(&files, &message)?;
            state.commit = Some(commit.clone());
            state.save(sh)?;
            eprintln!(
                "committed {} \"Release ComboAMI {version_text}\"",
                short(&commit)
            );
            commit
        }
    };

    // 5. Tag.
    if !state.tagged {
        interrupt::check("the tag (step 5)")?;
        let message = release::tag_message(&version_text, &facts.branch, &amis, &commits);
        let signer = signing::signer(&signing_repo.repo, options.sign)?;
        git.create_tag(&facts.tag, &commit, &message, signer.as_ref())?;
        state.tagged = true;
        state.save(sh)?;
        eprintln!("tagged {} `{}`", short(&commit), facts.tag);
    }

    // 6. Push.
    if let Some(remote) = &options.push {
        if state.pushed_to.as_deref() != Some(remote) {
            interrupt::check("the push (step 6)")?;
            git::push(sh, root, remote, &facts.push_branch, &facts.tag).fix(
                || format!("release {version_text} stopped at step 6 (push); the commit and the tag are made"),
                || format!("resolve the cause above, then run `{resume_command}` to push them"),
            )?;
            state.pushed_to = Some(remote.clone());
            state.save(sh)?;
        }
    }

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
        "  AMIs    {} in {} regions, {} (publish run `{run_id}`)",
        amis.len(),
        regions.len(),
        if candidate {
            format!("private; in the tag message, not in `{REGISTRY_PATH}`")
        } else {
            format!("public, in `{REGISTRY_PATH}`")
        }
    ));
    match &state.pushed_to {
        Some(remote) => output::say(format!("  pushed  to `{remote}`")),
        None => output::say(format!(
            "  not pushed: run `git push --atomic origin {} {}` or this command with `--push`",
            facts.push_branch, facts.tag
        )),
    }
    output::document(serde_json::json!({
        "command": "release",
        "ok": true,
        "version": version_text,
        "candidate": candidate,
        "rehearsal": options.local,
        "branch": facts.branch,
        "commit": commit,
        "tag": facts.tag,
        "pushed_to": state.pushed_to,
        "publish_run": finished.record,
        "amis": amis,
    }));
    Ok(())
}

/// Every check, whatever fails first: the user fixes everything in one go.
fn preflight(
    sh: &Shell,
    root: &Path,
    git: &Git,
    signing_repo: &Git,
    options: &Options,
    state: Option<&State>,
    contact_remote: bool,
) -> (Vec<Check>, Option<Facts>) {
    let (check, parsed) = check_version(&options.version);
    let mut checks = vec![check];
    let (parsed, tag) = match parsed {
        Some((v, tag)) => (Some(v), Some(tag)),
        None => (None, None),
    };
    if parsed.is_some() {
        checks.push(match project::matrix(sh) {
            Ok(m) => match matrix::check_names(&m, &options.version) {
                Ok(()) => Check::ok(
                    "image names",
                    format!("valid for AWS with version {}", options.version),
                ),
                Err(e) => Check::fail("image names", e),
            },
            Err(e) => Check::fail("image names", format!("{e:#}")),
        });
    }
    let branch = options
        .branch
        .clone()
        .or_else(|| parsed.as_ref().map(version::default_branch));
    let own_tag = state.filter(|s| s.tagged).map(|s| s.tag.as_str());
    if let (Some(v), Some(tag)) = (&parsed, &tag) {
        checks.push(check_tag_free(git, tag, own_tag));
        checks.push(check_order(git, v, own_tag));
    }
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
    // On resume the release's own edits are expected.
    let allowed: Vec<&str> = match state {
        Some(s) if s.version_set && s.commit.is_none() => {
            files.iter().map(String::as_str).collect()
        }
        _ => Vec::new(),
    };
    checks.push(check_clean(git, &allowed));
    let head = git.head_commit();
    if let Some(state) = state {
        let expected = state.commit.as_deref().unwrap_or(&state.start_head);
        checks.push(match &head {
            Ok(head) if head == expected => Check::ok("HEAD", format!("{} as the release left it", short(head))),
            Ok(head) => Check::fail("HEAD", format!(
                "HEAD moved since this release started (expected {}, found {}): check out {} again, or remove `{}` to start the release over",
                short(expected), short(head), short(expected), State::path(&state.version)
            )),
            Err(e) => Check::fail("HEAD", format!("{e:#}")),
        });
    }
    if let (None, Err(e)) = (state, &head) {
        checks.push(Check::fail("HEAD", format!("{e:#}")));
    }
    if let Some(branch) = &branch {
        checks.push(if options.local {
            check_rehearsal_branch(git, branch)
        } else {
            check_branch(git, branch, options.allow_branch)
        });
    }
    let (check, identity) = check_identity(git);
    checks.push(check);
    if !state.is_some_and(|s| s.tagged) {
        checks.push(check_signing(signing_repo, options.sign));
    }
    checks.push(if options.local {
        Check::ok("credentials", "not needed: the local stand-in has its own")
    } else {
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
    });
    checks.push(match Packer::detect(sh) {
        Ok(p) => Check::ok("packer", format!("Packer {}", p.version)),
        Err(e) => Check::fail("packer", format!("{e:#}")),
    });
    // With `--allow-branch` the release commit goes on the current branch, and that is pushed.
    let push_branch = match (git.current_branch(), &branch) {
        (Ok(Some(current)), _) if options.allow_branch => Some(current),
        (_, branch) => branch.clone(),
    };
    if let (Some(remote), Some(tag)) = (&options.push, &tag) {
        let pushed = state.is_some_and(|s| s.pushed_to.as_deref() == Some(remote));
        if contact_remote {
            checks.push(check_remote(
                sh,
                root,
                git,
                remote,
                tag,
                pushed,
                options.local,
            ));
            if let (false, Some(branch)) = (pushed, &push_branch) {
                checks.push(check_remote_branch(
                    sh,
                    root,
                    git,
                    remote,
                    branch,
                    options.dry_run,
                ));
            }
        } else {
            checks.push(Check::ok(
                "remote",
                "not asked: the rehearsal pushes to a scratch bare repository",
            ));
        }
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

/// A rehearsal (`--local`) releases the current commit whatever the branch here: its scratch
/// clone gets the commit as the release branch.
fn check_rehearsal_branch(git: &Git, branch: &str) -> Check {
    if let Err(e) = ds0::check_branch(branch) {
        return Check::fail("branch", e);
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

/// The cloud preflight of the release's publish, as checks of the release's report; and
/// whether the cloud was asked (then the publish need not ask again).
fn check_cloud(
    sh: &Shell,
    root: &Path,
    options: &Options,
    standin_root: Option<&Path>,
    profile: Result<Option<String>>,
) -> (Vec<Check>, bool) {
    if options.skip_cloud_checks {
        return (vec![Check::ok("cloud", cloud::SKIPPED)], false);
    }
    let Ok(parsed) = version::parse(&options.version) else {
        return (Vec::new(), false);
    };
    let version = parsed.to_string();
    let branch = options
        .branch
        .clone()
        .unwrap_or_else(|| version::default_branch(&parsed));
    // Errors of the matrix are the image-names check's to report.
    let Ok(matrix) = project::matrix(sh) else {
        return (Vec::new(), false);
    };
    let inputs = template::Inputs {
        kind: Kind::Official,
        version: &version,
        branch: &branch,
        epoch: 0,
        git_commit: "",
        run_id: "",
        only: &[],
        private: !parsed.pre.is_empty(),
        report_dir: "",
        local: None,
    };
    let Ok(plan) = template::plan(&matrix, &inputs) else {
        return (Vec::new(), false);
    };
    let running;
    let (standin, expected_account, credentials_source) = if options.local {
        match Standin::running(standin_root.unwrap_or(root)) {
            Some(standin) => {
                running = standin;
                (Some(&running), None, None)
            }
            None => {
                return (
                    vec![Check::ok(
                        "cloud",
                        "not asked: no stand-in is running (`cargo xtask local up` first includes the cloud checks in a local dry run; a rehearsal asks before it builds)",
                    )],
                    false,
                )
            }
        }
    } else {
        match (profile, credentials::load(sh, root, true)) {
            (Ok(source), Ok(credentials)) => (None, credentials.account_id, source),
            (Ok(_), Err(_)) => {
                return (
                    vec![Check::ok(
                        "cloud",
                        "not asked until the credentials check passes",
                    )],
                    false,
                )
            }
            (Err(e), _) => return (vec![Check::fail("aws identity", format!("{e:#}"))], false),
        }
    };
    let gate = cloud::Gate {
        planned: plan.builders,
        public: template::is_public(&matrix, &inputs),
        standin,
        expected_account,
        credentials_source,
        owner: None,
        resume: format!(
            "cargo xtask publish{} --resume",
            if options.local { " --local" } else { "" }
        ),
        same_base_for_both: preflight::same_base_for_both(&matrix),
    };
    match cloud::ask(sh, root, gate) {
        Ok(outcome) => (outcome.checks, true),
        Err(e) => (vec![Check::fail("aws identity", format!("{e:#}"))], false),
    }
}

/// The command that resumes this release: the same command, confirmed.
fn resume_command(options: &Options) -> String {
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
    command
}

fn progress(state: &State, push: Option<&str>) -> String {
    let steps = [
        ("version set", state.version_set),
        ("published", state.published || state.commit.is_some()),
        ("committed", state.commit.is_some()),
        ("tagged", state.tagged),
        (
            "pushed",
            push.is_none() || state.pushed_to.as_deref() == push,
        ),
    ];
    let done: Vec<&str> = steps.iter().filter(|s| s.1).map(|s| s.0).collect();
    let next = steps
        .iter()
        .find(|s| !s.1)
        .map(|s| s.0)
        .unwrap_or("nothing");
    format!(
        "done: {}; next: {}",
        if done.is_empty() {
            "nothing".to_string()
        } else {
            done.join(", ")
        },
        match next {
            "published" => "publish (resumes its run)",
            "version set" => "set the version",
            "committed" => "commit",
            "tagged" => "tag",
            "pushed" => "push",
            other => other,
        }
    )
}

/// Recognises what this release did but could not record because its command died: its own
/// commit on top of the start (same parent, its message) and its own tag on that commit.
/// Returns whether the state changed.
fn adopt_own_work(git: &Git, state: &mut State) -> bool {
    let mut changed = false;
    if state.version_set && state.commit.is_none() {
        let subject = format!("Release ComboAMI {}\n", state.version);
        if let Ok(head) = git.head_commit() {
            if head != state.start_head
                && git
                    .parents(&head)
                    .is_ok_and(|p| p == [state.start_head.clone()])
                && git
                    .commit_message(&head)
                    .is_ok_and(|m| m.starts_with(&subject))
            {
                eprintln!(
                    "found this release's own commit {} (made just before its command stopped): carrying on from it",
                    short(&head)
                );
                state.published = true;
                state.commit = Some(head);
                changed = true;
            }
        }
    }
    if let (Some(commit), false) = (&state.commit, state.tagged) {
        let heading = format!("ComboAMI {} (branch ", state.version);
        if git.tag_target(&state.tag).as_ref() == Some(commit)
            && git
                .tag_message(&state.tag)
                .is_some_and(|m| m.starts_with(&heading))
        {
            eprintln!(
                "found this release's own tag `{}` on {}: carrying on from it",
                state.tag,
                short(commit)
            );
            state.tagged = true;
            changed = true;
        }
    }
    changed
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("     {l}\n")).collect()
}

/// Where a rehearsal of `version` keeps its scratch clone and remote.
pub fn rehearsal_dir(root: &Path, version: &str) -> PathBuf {
    root.join(format!("target/rehearsal/release-{version}"))
}
