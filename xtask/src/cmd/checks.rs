//! The checks `release` and `tag` share, each one line of a preflight report: the version, the
//! tag, the order of releases, the working tree, the branch, the git identity and the remote.

use crate::git::{self, Git};
use crate::pure::ds0;
use crate::pure::release::{self, Check};
use crate::pure::version;
use crate::signing;
use semver::Version;
use std::path::Path;
use xshell::Shell;

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// The version parses, and its tag name.
pub fn check_version(text: &str) -> (Check, Option<(Version, String)>) {
    match version::parse(text) {
        Ok(v) => {
            let tag = version::tag_name(&v);
            (
                Check::ok("version", format!("{v} (tag `{tag}`)")),
                Some((v, tag)),
            )
        }
        Err(e) => (
            Check::fail("version", format!("{e}: {}", version::NotSemver::FIX)),
            None,
        ),
    }
}

pub fn check_tag_free(git: &Git, tag: &str, own: Option<&str>) -> Check {
    match git.tag_target(tag) {
        Some(_) if own == Some(tag) => Check::ok("tag", format!("`{tag}` was made earlier by this command: kept, not made again")),
        Some(target) => Check::fail(
            "tag",
            format!("`{tag}` already exists (on {}): that version is made (a run of it that stopped after making its tag has nothing left to do), and tags are never moved or overwritten: release a new version", short(&target)),
        ),
        None => Check::ok("tag", format!("`{tag}` does not exist yet")),
    }
}

pub fn check_order(git: &Git, version: &Version, own: Option<&str>) -> Check {
    // Releases made before the tool have no `release/*` tag: the version HEAD holds counts too.
    let current = git
        .file_at_head(crate::pure::ds0::DS0_PATH)
        .ok()
        .and_then(|text| crate::pure::ds0::read(&text).ok())
        .and_then(|(held, _)| version::parse(&held).ok());
    if let Some(current) = current.filter(|current| version < current) {
        return Check::fail(
            "order",
            format!("{version} is older than {current}, which `ds0_utils.py` holds at HEAD: release a version above the latest release (or {current} itself, if it was never released)"),
        );
    }
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

pub fn check_branch(git: &Git, branch: &str, allow_other: bool) -> Check {
    if let Err(e) = ds0::check_branch(branch) {
        return Check::fail("branch", e.to_string());
    }
    let switch = release::switch_command(branch, branch_exists(git, branch));
    match git.current_branch() {
        Ok(Some(current)) if current == branch => Check::ok("branch", format!("on `{branch}`")),
        Ok(Some(current)) if allow_other => Check::ok(
            "branch",
            format!("on `{current}`, not `{branch}` (allowed by `--allow-branch`)"),
        ),
        Ok(Some(current)) => Check::fail(
            "branch",
            format!("on `{current}`, not the release branch `{branch}`: run `{switch}` (or name another release branch with `--branch`, or pass `--allow-branch`)"),
        ),
        Ok(None) => Check::fail(
            "branch",
            format!("HEAD is detached, so the release commit would be on no branch: run `{switch}`"),
        ),
        Err(e) => Check::fail("branch", format!("{e:#}")),
    }
}

/// Whether `branch` is a local branch or a remote-tracking one (`git switch` then finds it).
fn branch_exists(git: &Git, branch: &str) -> bool {
    git.branch_commit(branch).is_ok()
        || git
            .repo
            .references_glob(&format!("refs/remotes/*/{branch}"))
            .is_ok_and(|mut refs| refs.next().is_some())
}

/// Without `--push`, the prepare commit must be on the remote's release branch before anything
/// launches: the version is committed at HEAD and HEAD is on `REMOTE/BRANCH`.
pub fn check_prepared_on_remote(
    sh: &Shell,
    root: &Path,
    git: &Git,
    (remote, branch): (&str, &str),
    (version, ds0_branch): (&str, &str),
) -> Check {
    const WHAT: &str = "prepared";
    let fix = format!(
        "add `--push` (the release pushes its prepare commit before launching), or prepare by hand: \
         `cargo xtask set-version {version} --branch {ds0_branch}`, `git commit -m \"Prepare ComboAMI {version}\" {}`, \
         `git push {remote} HEAD:{branch}`, then run the same command again",
        ds0::DS0_PATH
    );
    let committed = git
        .file_at_head(ds0::DS0_PATH)
        .ok()
        .is_some_and(|text| ds0::edit(&text, version, Some(ds0_branch)).is_ok_and(|e| e == text));
    if !committed {
        return Check::fail(WHAT, format!(
            "without `--push` the images can only bake a commit already on `{remote}/{branch}`, and `{}` at HEAD does not hold {version} (branch {ds0_branch}): {fix}",
            ds0::DS0_PATH
        ));
    }
    let head = match git.head_commit() {
        Ok(head) => head,
        Err(e) => return Check::fail(WHAT, format!("{e:#}")),
    };
    let on_remote = match git::remote_branch_tip(sh, root, remote, branch) {
        Ok(Some(tip)) => tip == head || (git.has_commit(&tip) && git.is_ancestor(&head, &tip)),
        Ok(None) => false,
        Err(e) => return Check::fail(WHAT, format!("{e:#}")),
    };
    if on_remote {
        Check::ok(
            WHAT,
            format!(
                "HEAD {} holds {version} and is on `{remote}/{branch}`: every image bakes it",
                short(&head)
            ),
        )
    } else {
        Check::fail(WHAT, format!(
            "without `--push` the images can only bake a commit already on `{remote}/{branch}`, and HEAD {} is not there: {fix}",
            short(&head)
        ))
    }
}

/// The identity commits and tags are made with, as `Name <email>`.
pub fn check_identity(git: &Git) -> (Check, Option<String>) {
    match git.signature() {
        Ok(s) => {
            let identity = format!(
                "{} <{}>",
                String::from_utf8_lossy(s.name_bytes()),
                String::from_utf8_lossy(s.email_bytes())
            );
            (Check::ok("git identity", identity.clone()), Some(identity))
        }
        Err(e) => (Check::fail("git identity", format!("{e:#}")), None),
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
    match git::remote_tag(sh, root, remote, tag) {
        Ok(Some(_)) if pushed => Check::ok("remote", format!("`{remote}` has `{tag}` from this release")),
        // A push that was stopped (or rejected for the branch) after the tag arrived.
        Ok(Some(object)) if git.tag_object(tag).as_deref() == Some(object.as_str()) => Check::ok(
            "remote",
            format!("`{remote}` already has this very `{tag}` (an earlier push got that far)"),
        ),
        Ok(Some(_)) => Check::fail(
            "remote",
            format!("`{remote}` already has tag `{tag}`; tags are never overwritten: release a new version"),
        ),
        Ok(None) => Check::ok("remote", format!("`{remote}` does not have `{tag}` yet")),
        Err(e) => Check::fail("remote", format!("{e:#}")),
    }
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
        (Ok(theirs), Ok(ours)) => Check::fail(WHAT, behind(remote, branch, &theirs, &ours, &pull)),
        (Err(e), _) | (_, Err(e)) => Check::fail(WHAT, format!("{e:#}")),
    }
}

/// The problem of a local branch behind (or diverged from) the remote's: the commits each lacks.
fn behind(remote: &str, branch: &str, theirs: &[String], ours: &[String], pull: &str) -> String {
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
        list(theirs)
    );
    if !ours.is_empty() {
        text.push_str(&format!(
            "\n`{branch}` has {} commit(s) that `{remote}` lacks:{}",
            ours.len(),
            list(ours)
        ));
    }
    text
}

/// Whether the release tag is signed; without either flag git's `tag.gpgSign` decides.
#[derive(clap::Args, Clone)]
pub struct SignArgs {
    /// Sign the tag (with `user.signingKey`, `gpg.format` and `gpg.program` of git's configuration).
    #[arg(short = 's', long, conflicts_with = "no_sign")]
    sign: bool,
    /// Do not sign the tag, whatever `tag.gpgSign` says.
    #[arg(long)]
    no_sign: bool,
}

impl SignArgs {
    pub fn choice(&self) -> crate::signing::Choice {
        crate::signing::Choice::from_flags(self.sign, self.no_sign)
    }
}
