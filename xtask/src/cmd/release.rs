//! `cargo xtask release VERSION`: the official checklist as one command. Preflight (every check
//! at once), plan, then set the version, publish, merge, commit, tag and push — each step
//! recorded in `build/runs/release-VERSION/release.json`, so running the same command again
//! resumes where it stopped. `--local` rehearses all of it in a scratch clone.

use crate::cmd::{build, set_version, FixContext};
use crate::core::release::{self, Check};
use crate::core::template::Kind;
use crate::core::{ds0, matrix, registry::REGISTRY_PATH, version};
use crate::credentials;
use crate::git::{self, Git};
use crate::packer::Packer;
use crate::{interrupt, project, runs, signing};
use anyhow::{bail, Context, Result};
use semver::Version;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

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
        serde_json::from_str(&text).map(Some).with_context(|| {
            format!("`{path}` is damaged: fix it, or remove it to start the release over")
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
    branch: String,
    tag: String,
    head: String,
    identity: String,
}

pub fn run(sh: &Shell, root: &Path, options: &Options) -> Result<()> {
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
    let (checks, _) = preflight(sh, root, &real, &real, &real_options, None);
    if release::failures(&checks) > 0 {
        eprint!("{}", release::report(&checks));
        bail!(
            "{} preflight check(s) failed in the real repository; nothing was changed: fix them and run the same command again",
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
            .run()
            .context("cannot make the scratch remote for the rehearsal")?;
        cmd!(sh, "git clone --quiet {remote} {clone}")
            .run()
            .context("cannot make the scratch clone for the rehearsal")?;
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
    let state = State::load(sh, &options.version)?;
    if let Some(state) = &state {
        if state.done(options.push.as_deref()) {
            println!(
                "release {} is already done: commit {} tagged `{}`{}",
                state.version,
                short(state.commit.as_deref().unwrap_or("?")),
                state.tag,
                state
                    .pushed_to
                    .as_ref()
                    .map(|r| format!(", pushed to `{r}`"))
                    .unwrap_or_default()
            );
            return Ok(());
        }
        eprintln!(
            "resuming release {}: {}",
            state.version,
            progress(state, options.push.as_deref())
        );
    }
    let (checks, facts) = preflight(sh, root, &git, &signing_repo, options, state.as_ref());
    eprint!("{}", release::report(&checks));
    let failed = release::failures(&checks);
    if failed > 0 {
        bail!("{failed} preflight check(s) failed; nothing was changed: fix them and run the same command again");
    }
    let facts = facts.expect("facts are known when every check passed");
    let version_text = facts.version.to_string();
    let resume_command = resume_command(options);
    let build_options = build::Options {
        local: options.local,
        yes: true,
        registry: Some(REGISTRY_PATH.to_string()),
        standin_root: standin_root.map(Path::to_path_buf),
        resume_command: Some(resume_command.clone()),
        ..Default::default()
    };

    // The plan: every step, with the exact file change and what is already done.
    let ds0_old = project::read(sh, ds0::DS0_PATH)?;
    let ds0_new =
        ds0::edit(&ds0_old, &version_text, Some(&facts.branch)).map_err(anyhow::Error::msg)?;
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
        let diff = release::diff(ds0::DS0_PATH, &ds0_old, &ds0_new, 2);
        plan.push_str(&indent(if diff.is_empty() {
            "(it already holds this version and branch)\n"
        } else {
            &diff
        }));
    }
    plan.push_str(&format!(
        "2. publish every enabled row as public images{}\n",
        match state_ref.and_then(|s| s.publish_run.as_deref()) {
            Some(run) => format!(" (resumes run `{run}`: only what did not succeed is rebuilt)"),
            None => String::new(),
        }
    ));
    plan.push_str(&indent(&build::preview(
        sh,
        Kind::Official,
        &version_text,
        &facts.branch,
        &build_options,
    )?));
    plan.push_str(&format!(
        "3. merge the new AMIs into `{REGISTRY_PATH}` (an entry is replaced only by a new AMI of its region, release and virtualization type)\n"
    ));
    plan.push_str(&format!(
        "4. commit `{}` and `{REGISTRY_PATH}` as {}: \"Release ComboAMI {version_text}\"{}\n",
        ds0::DS0_PATH,
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
            facts.branch, facts.tag
        )),
        None => plan.push_str("6. no push (add `--push` to push the commit and the tag)\n"),
    }
    eprint!("{plan}");
    if options.dry_run {
        eprintln!("\ndry run: nothing was changed (no file, no ref, nothing launched)");
        return Ok(());
    }
    crate::cmd::confirm(options.yes, "releasing", &format!("release {version_text}"))?;
    interrupt::check()?;

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
            let run_id = runs::new_run_id(
                root,
                Kind::Official.as_str(),
                options.local,
                project::epoch()?,
            );
            state.publish_run = Some(run_id.clone());
            state.save(sh)?;
            run_id
        }
    };
    let started = runs::run_dir(root, &run_id).join("run.json").exists();
    let publish = build::Options {
        run_id: Some(run_id.clone()),
        resume: started.then(|| Some(run_id.clone())),
        ..build_options
    };
    let finished = build::run(sh, root, Kind::Official, &publish).fix(
        || format!("release {version_text} stopped at step 2 (publish); what succeeded is kept"),
        || format!("run `{resume_command}` to resume: only what did not succeed is rebuilt"),
    )?;
    let amis = finished.record.amis();

    // 4. Commit.
    let commit = match &state.commit {
        Some(commit) => commit.clone(),
        None => {
            let message = release::commit_message(&version_text, &facts.branch, &amis);
            let commit = git.commit(&[ds0::DS0_PATH, REGISTRY_PATH], &message)?;
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
        let message = release::tag_message(&version_text, &facts.branch, &amis);
        let signer = signing::signer(&signing_repo.repo, options.sign)?;
        git.create_tag(&facts.tag, &commit, &message, signer.as_ref())?;
        state.tagged = true;
        state.save(sh)?;
        eprintln!("tagged {} `{}`", short(&commit), facts.tag);
    }

    // 6. Push.
    if let Some(remote) = &options.push {
        if state.pushed_to.as_deref() != Some(remote) {
            git::push(sh, root, remote, &facts.branch, &facts.tag).fix(
                || format!("release {version_text} stopped at step 6 (push); the commit and the tag are made"),
                || format!("resolve the cause above, then run `{resume_command}` to push them"),
            )?;
            state.pushed_to = Some(remote.clone());
            state.save(sh)?;
        }
    }

    let regions: std::collections::BTreeSet<&str> =
        amis.iter().map(|a| a.region.as_str()).collect();
    println!("\nreleased ComboAMI {version_text}:");
    println!("  commit  {} on `{}`", short(&commit), facts.branch);
    println!("  tag     {}", facts.tag);
    println!(
        "  AMIs    {} in {} regions, in `{REGISTRY_PATH}` (publish run `{run_id}`)",
        amis.len(),
        regions.len()
    );
    match &state.pushed_to {
        Some(remote) => println!("  pushed  to `{remote}`"),
        None => println!(
            "  not pushed: run `git push --atomic origin {} {}` or this command with `--push`",
            facts.branch, facts.tag
        ),
    }
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
) -> (Vec<Check>, Option<Facts>) {
    let mut checks = Vec::new();
    let parsed = version::parse(&options.version);
    let tag = parsed.as_ref().ok().map(version::tag_name);
    match &parsed {
        Ok(v) => checks.push(Check::ok(
            "version",
            format!("{v} (tag `{}`)", version::tag_name(v)),
        )),
        Err(e) => checks.push(Check::fail("version", e.clone())),
    }
    if parsed.is_ok() {
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
        .or_else(|| parsed.as_ref().ok().map(version::default_branch));
    let own_tag = state.filter(|s| s.tagged).map(|s| s.tag.as_str());
    if let (Ok(v), Some(tag)) = (&parsed, &tag) {
        checks.push(check_tag_free(git, tag, own_tag));
        checks.push(check_order(git, v, own_tag));
    }
    // On resume the release's own edits are expected.
    let allowed: &[&str] = match state {
        Some(s) if s.version_set && s.commit.is_none() => &[ds0::DS0_PATH, REGISTRY_PATH],
        _ => &[],
    };
    checks.push(check_clean(git, allowed));
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
    if let Some(branch) = &branch {
        checks.push(check_branch(git, branch, options.allow_branch));
    }
    let identity = git.signature().map(|s| {
        format!(
            "{} <{}>",
            String::from_utf8_lossy(s.name_bytes()),
            String::from_utf8_lossy(s.email_bytes())
        )
    });
    checks.push(match &identity {
        Ok(identity) => Check::ok("git identity", identity.clone()),
        Err(e) => Check::fail("git identity", format!("{e:#}")),
    });
    if !state.is_some_and(|s| s.tagged) {
        checks.push(check_signing(signing_repo, options.sign));
    }
    checks.push(if options.local {
        Check::ok("credentials", "not needed: the local stand-in has its own")
    } else {
        match credentials::load(root, true) {
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
    if let (Some(remote), Some(tag)) = (&options.push, &tag) {
        let pushed = state.is_some_and(|s| s.pushed_to.as_deref() == Some(remote));
        checks.push(check_remote(
            sh,
            root,
            git,
            remote,
            tag,
            pushed,
            options.local,
        ));
        if let (false, Some(branch)) = (pushed, &branch) {
            checks.push(check_remote_branch(
                sh,
                root,
                git,
                remote,
                branch,
                options.dry_run,
            ));
        }
    }
    let facts = match (parsed, branch, tag, head, identity) {
        (Ok(version), Some(branch), Some(tag), Ok(head), Ok(identity)) => Some(Facts {
            version,
            branch,
            tag,
            head,
            identity,
        }),
        _ => None,
    };
    (checks, facts)
}

/// The signing check: unsigned, or the configured program and key are there.
pub fn check_signing(git: &Git, choice: signing::Choice) -> Check {
    match signing::signer(&git.repo, choice) {
        Ok(None) => Check::ok(
            "signing",
            "the tag will not be signed (`tag.gpgSign` is off; `--sign` signs it)",
        ),
        Ok(Some(signer)) => match signer.check() {
            Ok(detail) => Check::ok("signing", format!("signed with {detail}")),
            Err(e) => Check::fail("signing", format!("{e:#}")),
        },
        Err(e) => Check::fail("signing", format!("{e:#}")),
    }
}

/// How the plan describes the tag.
pub fn signing_summary(git: &Git, choice: signing::Choice) -> &'static str {
    match signing::signer(&git.repo, choice) {
        Ok(Some(signer)) if signer.format == signing::Format::Ssh => "annotated, signed with ssh",
        Ok(Some(_)) => "annotated, signed with OpenPGP",
        _ => "annotated",
    }
}

pub fn check_tag_free(git: &Git, tag: &str, own: Option<&str>) -> Check {
    match git.tag_target(tag) {
        Some(_) if own == Some(tag) => Check::ok("tag", format!("`{tag}` was made by this release")),
        Some(target) => Check::fail(
            "tag",
            format!("`{tag}` already exists (on {}); tags are never moved or overwritten: release a new version", short(&target)),
        ),
        None => Check::ok("tag", format!("`{tag}` does not exist yet")),
    }
}

pub fn check_order(git: &Git, version: &Version, own: Option<&str>) -> Check {
    let tags = match git.tag_names() {
        Ok(tags) => tags,
        Err(e) => return Check::fail("order", format!("{e:#}")),
    };
    let others = tags.iter().map(String::as_str).filter(|t| Some(*t) != own);
    match version::newest_release(others) {
        Some(newest) if *version <= newest => Check::fail(
            "order",
            format!("{version} is not newer than the latest release {newest} (`release/{newest}`): release a higher version"),
        ),
        Some(newest) => Check::ok("order", format!("newer than the latest release {newest}")),
        None => Check::ok("order", "no `release/*` tag yet"),
    }
}

pub fn check_clean(git: &Git, allowed: &[&str]) -> Check {
    match git.dirty_paths() {
        Ok(paths) => {
            let dirty: Vec<String> = paths
                .into_iter()
                .filter(|p| !allowed.contains(&p.as_str()))
                .collect();
            if dirty.is_empty() {
                Check::ok("working tree", "clean")
            } else {
                let shown: Vec<String> = dirty.iter().take(5).map(|p| format!("`{p}`")).collect();
                let more = match dirty.len() {
                    n if n > 5 => format!(" and {} more", n - 5),
                    _ => String::new(),
                };
                Check::fail(
                    "working tree",
                    format!(
                        "uncommitted changes or untracked files: {}{more}: commit, stash or remove them, so the release commit holds only the release",
                        shown.join(", ")
                    ),
                )
            }
        }
        Err(e) => Check::fail("working tree", format!("{e:#}")),
    }
}

fn check_branch(git: &Git, branch: &str, allow_other: bool) -> Check {
    if let Err(e) = ds0::check_branch(branch) {
        return Check::fail("branch", e);
    }
    match git.current_branch() {
        Ok(Some(current)) if current == branch => Check::ok("branch", format!("on `{branch}`")),
        Ok(Some(current)) if allow_other => Check::ok(
            "branch",
            format!("on `{current}`, not `{branch}` (allowed by `--allow-branch`)"),
        ),
        Ok(Some(current)) => Check::fail(
            "branch",
            format!("on `{current}`, not the release branch `{branch}`: run `git checkout {branch}` (or name another release branch with `--branch`, or pass `--allow-branch`)"),
        ),
        Ok(None) => Check::fail(
            "branch",
            format!("HEAD is detached, so the release commit would be on no branch: run `git checkout {branch}`"),
        ),
        Err(e) => Check::fail("branch", format!("{e:#}")),
    }
}

pub fn check_remote(
    sh: &Shell,
    root: &Path,
    git: &Git,
    remote: &str,
    tag: &str,
    pushed: bool,
    rehearsal: bool,
) -> Check {
    if !git.has_remote(remote) {
        if rehearsal {
            return Check::ok(
                "remote",
                "the rehearsal pushes to a scratch bare repository",
            );
        }
        return Check::fail(
            "remote",
            format!("no remote `{remote}`: add it with `git remote add {remote} URL`, or name another with `--push REMOTE`"),
        );
    }
    match git::remote_has_tag(sh, root, remote, tag) {
        Ok(true) if pushed => Check::ok("remote", format!("`{remote}` has `{tag}` from this release")),
        Ok(true) => Check::fail(
            "remote",
            format!("`{remote}` already has tag `{tag}`; tags are never overwritten: release a new version"),
        ),
        Ok(false) => Check::ok("remote", format!("`{remote}` does not have `{tag}` yet")),
        Err(e) => Check::fail("remote", format!("{e:#}")),
    }
}

/// With `--push`: the remote's copy of `branch` must not have commits the local branch lacks,
/// or `git push --atomic` would be refused after every image is paid for. A dry run only asks
/// (`git ls-remote`); otherwise the remote's commits are fetched (no ref is touched) to name them.
pub fn check_remote_branch(
    sh: &Shell,
    root: &Path,
    git: &Git,
    remote: &str,
    branch: &str,
    dry_run: bool,
) -> Check {
    const WHAT: &str = "upstream";
    if !git.has_remote(remote) {
        return Check::ok(WHAT, format!("no remote `{remote}` (see the remote check)"));
    }
    let local = match git.branch_commit(branch) {
        Ok(commit) => commit,
        Err(_) => {
            return Check::ok(
                WHAT,
                format!("no local branch `{branch}` yet (see the branch check)"),
            )
        }
    };
    let tip = match git::remote_branch_tip(sh, root, remote, branch) {
        Ok(Some(tip)) => tip,
        Ok(None) => {
            return Check::ok(
                WHAT,
                format!("`{remote}` has no branch `{branch}` yet: the push creates it"),
            )
        }
        Err(e) => return Check::fail(WHAT, format!("{e:#}")),
    };
    if tip == local {
        return Check::ok(
            WHAT,
            format!(
                "`{branch}` is even with `{remote}/{branch}` ({})",
                short(&tip)
            ),
        );
    }
    if !git.has_commit(&tip) && !dry_run {
        if let Err(e) = git::fetch_branch(sh, root, remote, branch) {
            return Check::fail(WHAT, format!("{e:#}"));
        }
    }
    let pull = format!("run `git pull {remote} {branch}` (and check the result) before releasing");
    if !git.has_commit(&tip) {
        return Check::fail(
            WHAT,
            format!(
                "`{remote}/{branch}` is at {}, a commit this repository does not have: the local branch is behind or has diverged, so the push would be refused after the build: {pull}",
                short(&tip)
            ),
        );
    }
    let theirs = git.commits_missing_from(&tip, &local);
    let ours = git.commits_missing_from(&local, &tip);
    match (theirs, ours) {
        (Ok(theirs), _) if theirs.is_empty() => Check::ok(
            WHAT,
            format!(
                "`{branch}` is ahead of `{remote}/{branch}` ({})",
                short(&tip)
            ),
        ),
        (Ok(theirs), Ok(ours)) => {
            let list = |commits: &[String]| {
                commits
                    .iter()
                    .take(10)
                    .map(|c| format!("\n  {c}"))
                    .collect::<String>()
                    + &if commits.len() > 10 {
                        format!("\n  and {} more", commits.len() - 10)
                    } else {
                        String::new()
                    }
            };
            let state = if ours.is_empty() {
                "is behind"
            } else {
                "has diverged from"
            };
            let mut text = format!(
                "`{branch}` {state} `{remote}/{branch}`: the push would be refused after the build; {pull}\n`{remote}` has {} commit(s) that `{branch}` lacks:{}",
                theirs.len(),
                list(&theirs)
            );
            if !ours.is_empty() {
                text.push_str(&format!(
                    "\n`{branch}` has {} commit(s) that `{remote}` lacks:{}",
                    ours.len(),
                    list(&ours)
                ));
            }
            Check::fail(WHAT, text)
        }
        (Err(e), _) | (_, Err(e)) => Check::fail(WHAT, format!("{e:#}")),
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
        ("published", state.commit.is_some()),
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

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("     {l}\n")).collect()
}

/// Where a rehearsal of `version` keeps its scratch clone and remote.
pub fn rehearsal_dir(root: &Path, version: &str) -> PathBuf {
    root.join(format!("target/rehearsal/release-{version}"))
}
