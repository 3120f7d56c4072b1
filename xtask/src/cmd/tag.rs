//! `cargo xtask tag VERSION`: only the tag (and push) of a release, for images built another
//! way. The same checks on the version and the tag; `ds0_utils.py` must already hold VERSION.

use crate::cmd::checks::{
    check_clean, check_identity, check_order, check_remote, check_remote_branch, check_signing,
    check_tag_free, check_version, short, signing_summary, SignArgs,
};
use crate::cmd::Cmd;
use crate::error::FixContext;
use crate::git::{self, Git};
use crate::interrupt;
use crate::lock::Busy;
use crate::pure::release::{self, Check};
use crate::pure::{ds0, registry, registry::REGISTRY_PATH};
use crate::{output, signing};
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use xshell::Shell;

/// Tag the current commit `release/VERSION` (or `candidate/VERSION`) for images built another way.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cargo xtask tag 2.6.4 --push --dry-run")]
pub struct Tag {
    /// The released version, like `2.6.4` (a pre-release like `2.6.4-beta1` is tagged
    /// `candidate/2.6.4-beta1`).
    version: String,
    /// Tag this commit instead of HEAD: adopts a release made before the tool (its
    /// `ami_ids.json` there lists the AMIs); the version may then be older than the newest.
    #[arg(long, value_name = "COMMIT")]
    commit: Option<String>,
    /// Push the branch and the tag to REMOTE (default `origin`).
    #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "origin")]
    push: Option<String>,
    /// Print the checks and the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Push without asking, after the plan is shown.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    sign: SignArgs,
    /// Print what was tagged (and pushed) as one JSON document on stdout (everything else
    /// goes to stderr).
    #[arg(long)]
    json: bool,
}

impl Cmd for Tag {
    const NAME: &'static str = "tag";
    fn lock(&self) -> Option<Busy> {
        (!self.dry_run).then_some(Busy::Refuse)
    }
    fn json(&self) -> bool {
        self.json
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<ExitCode> {
        tag(cx.sh, cx.root(), &self, &cx.progress)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn tag(
    sh: &Shell,
    root: &Path,
    options: &Tag,
    progress: &crate::interrupt::Progress,
) -> Result<()> {
    let git = Git::open(root)?;
    let (check, parsed) = check_version(&options.version);
    let tag = parsed.as_ref().map(|(_, tag)| tag.clone());
    let own = own_tag(&git, options, tag.as_deref());
    let branch = git.current_branch();
    let mut checks = vec![check];
    if let Some((v, tag)) = &parsed {
        checks.push(check_tag_free(&git, tag, own.as_deref()));
        checks.push(match &options.commit {
            None => check_order(&git, v, own.as_deref()),
            Some(commit) => Check::ok(
                "order",
                format!("adopting a release made before the tool at `{commit}`: not checked"),
            ),
        });
    }
    checks.extend(checks_of_head(
        sh,
        root,
        &git,
        options,
        tag.as_deref(),
        &branch,
    ));
    // Failures on top, where they are read first (as `release` lists them).
    checks.sort_by_key(|c| c.result.is_ok());
    eprint!("{}", release::report(&checks));
    let failed = release::failures(&checks);
    if failed > 0 {
        return Err(release::refusal(&checks, "check(s)", "").into());
    }
    let tag = tag.expect("the version parsed");
    let head = target(&git, options)?;
    let text = file_at(&git, &head, REGISTRY_PATH)?;
    let amis = registry::amis(&registry::parse(&text).map_err(anyhow::Error::msg)?);
    eprintln!(
        "\nplan: tag {} `{tag}` ({}; the message lists the {} AMIs of `{REGISTRY_PATH}`)",
        short(&head),
        signing_summary(&git, options.sign.choice()),
        amis.len()
    );
    let branch = branch.ok().flatten().unwrap_or_default();
    if let Some(remote) = &options.push {
        eprintln!("      then push branch `{branch}` and tag `{tag}` to `{remote}`");
    }
    let document = |pushed_to: Option<&str>| {
        serde_json::json!({
            "command": "tag",
            "ok": true,
            "dry_run": options.dry_run,
            "tag": tag,
            "commit": head,
            "branch": branch,
            "amis": amis,
            "pushed_to": pushed_to,
        })
    };
    if options.dry_run {
        output::document(document(None));
        eprintln!("\ndry run: nothing was changed");
        return Ok(());
    }
    if options.push.is_some() {
        crate::cmd::confirm(options.yes, "pushing", "push")?;
    }
    progress.mark_started();
    make_tag(&git, options, &tag, &head, own.is_some())?;
    if let Some(remote) = &options.push {
        push(sh, root, options, remote, &branch, &tag, progress)?;
    }
    output::document(document(options.push.as_deref()));
    Ok(())
}

/// The tag of an earlier run of this command, to push rather than make again: with `--push`, a
/// tag on HEAD with this command's message was made by a run whose push failed or was stopped.
/// Without `--push` there is nothing left to do, and the tag is refused.
fn own_tag(git: &Git, options: &Tag, tag: Option<&str>) -> Option<String> {
    let message = own_message(git, &options.version);
    tag.filter(|_| options.push.is_some())
        .filter(|tag| {
            let at_head = target(git, options).ok();
            git.tag_target(tag).is_some() && git.tag_target(tag) == at_head
        })
        // A signed tag's message ends with its signature.
        .filter(|tag| {
            let made = git.tag_message(tag);
            matches!((&made, &message), (Some(made), Some(message)) if made.starts_with(message.as_str()))
        })
        .map(String::from)
}

/// The checks of what is tagged and pushed: the tree, the version at HEAD, the branch, the
/// identity and signing, the remote.
fn checks_of_head(
    sh: &Shell,
    root: &Path,
    git: &Git,
    options: &Tag,
    tag: Option<&str>,
    branch: &Result<Option<String>>,
) -> Vec<Check> {
    let mut checks = vec![
        check_clean(git, &[]),
        check_committed_version(git, options),
        check_registry(sh, git, options, tag),
    ];
    if options.push.is_some() {
        checks.push(match branch {
            Ok(Some(b)) => Check::ok("branch", format!("on `{b}`")),
            Ok(None) => Check::fail(
                "branch",
                "HEAD is detached: check out the release branch to push it with the tag",
            ),
            Err(e) => Check::fail("branch", format!("{e:#}")),
        });
    }
    checks.push(check_identity(git).0);
    checks.push(check_signing(git, options.sign.choice()));
    if let (Some(remote), Some(tag)) = (&options.push, tag) {
        checks.push(check_remote(sh, root, git, remote, tag, false, false));
        if let Ok(Some(branch)) = branch {
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
    checks
}

/// The AMIs the tag's message lists: the committed `ami_ids.json` there, valid as every other
/// command reads it, and (for a release) not the listing of an earlier release: a local publish
/// merges only into its run folder, so a version can be tagged before its AMIs are merged.
fn check_registry(sh: &Shell, git: &Git, options: &Tag, tag: Option<&str>) -> Check {
    let regions = match crate::project::matrix(sh) {
        Ok(matrix) => matrix.settings.regions,
        Err(e) => return Check::fail(REGISTRY_PATH, format!("{e:#}")),
    };
    let listed = |commit: &str| -> Result<BTreeSet<String>> {
        let parsed =
            registry::parse(&file_at(git, commit, REGISTRY_PATH)?).map_err(anyhow::Error::msg)?;
        registry::check(&parsed, &regions, REGISTRY_PATH)?;
        Ok(registry::amis(&parsed).into_iter().map(|a| a.id).collect())
    };
    let Ok(commit) = target(git, options) else {
        return Check::fail(
            REGISTRY_PATH,
            "not read: the commit to tag is unknown (see above)",
        );
    };
    let ids = match listed(&commit) {
        Ok(ids) => ids,
        Err(e) => return Check::fail(REGISTRY_PATH, format!("{e:#}")),
    };
    let release = tag.is_some_and(|t| t.starts_with("release/"));
    let earlier = crate::cmd::lifecycle::release_tags(git)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| release && t.name.starts_with("release/") && Some(t.name.as_str()) != tag)
        .find(|t| listed(&t.commit).is_ok_and(|earlier| earlier == ids));
    match earlier {
        Some(earlier) => Check::fail(
            REGISTRY_PATH,
            format!(
                "lists the same {} AMIs as `{}`: the AMIs of {} are not merged yet; a publish merges them (a local one only into its run folder), or `cargo xtask ami-ids` does: commit them, then tag",
                ids.len(),
                earlier.name,
                options.version
            ),
        ),
        None => Check::ok(REGISTRY_PATH, format!("lists {} AMIs", ids.len())),
    }
}

/// The tag goes on HEAD (or `--commit`), so the committed `ds0_utils.py` is what counts; a
/// release made before the tool may not have set it, and is adopted when a plain tag or the
/// commit's message names the version.
fn check_committed_version(git: &Git, options: &Tag) -> Check {
    let version = &options.version;
    let commit = match target(git, options) {
        Ok(commit) => commit,
        // Named once, here; the registry's check says it was not read.
        Err(e) => return Check::fail(ds0::DS0_PATH, format!("{e:#}")),
    };
    let committed = file_at(git, &commit, ds0::DS0_PATH)
        .and_then(|text| ds0::read(&text).map_err(anyhow::Error::msg));
    let held = match &committed {
        Ok((v, _)) if v != version => format!("holds {v} there, not {version}"),
        Err(_) => "names no version there".to_string(),
        Ok(_) => String::new(),
    };
    if let (Some(given), false) = (&options.commit, held.is_empty()) {
        // A release made before the tool may not have set it: the commit is still its release
        // when a plain tag or its message names the version (as `audit` finds them).
        return match vouched_by(git, &commit, version) {
            Some(by) => Check::ok(
                ds0::DS0_PATH,
                format!("{held}, but {by}: a release made before the tool, adopted as it is"),
            ),
            None => Check::fail(
                ds0::DS0_PATH,
                format!(
                    "{held}, and neither a plain tag `{version}` nor the message of `{given}` names {version}: it is not the release of {version}; `cargo xtask audit` lists each release made before the tool with the command that adopts it"
                ),
            ),
        };
    }
    match committed {
        Ok((v, branch)) if v == *version => Check::ok(
            ds0::DS0_PATH,
            format!(
                "holds {v} (branch {branch}) at {}",
                options
                    .commit
                    .as_ref()
                    .map_or("HEAD".to_string(), |c| format!("`{c}`"))
            ),
        ),
        Ok((v, _)) => {
            // `release` only makes versions newer than the newest release.
            let newer = crate::pure::version::parse(version).is_ok_and(|parsed| {
                let tags = git.tag_names().unwrap_or_default();
                crate::pure::version::newest_release(tags.iter().map(String::as_str))
                    .is_none_or(|newest| parsed > newest)
            });
            let release = match newer {
                true => format!(", or use `cargo xtask release {version}` to build and tag it"),
                false => String::new(),
            };
            Check::fail(
                ds0::DS0_PATH,
                format!("holds {v} at HEAD, not {version}: tag the commit that set the version{release}"),
            )
        }
        Err(e) => Check::fail(ds0::DS0_PATH, format!("{e:#}")),
    }
}

/// What says `commit` released `version` when its `ds0_utils.py` does not: a plain tag
/// `version` on it, or its message naming the version.
fn vouched_by(git: &Git, commit: &str, version: &str) -> Option<String> {
    let plain = git
        .repo
        .revparse_single(&format!("refs/tags/{version}"))
        .and_then(|object| object.peel_to_commit())
        .is_ok_and(|c| c.id().to_string() == commit);
    if plain {
        return Some(format!("the plain tag `{version}` names it"));
    }
    let message = git.commit_message(commit).ok()?;
    crate::pure::legacy::names(&message, version).then(|| format!("its message names {version}"))
}

/// Makes the tag on HEAD, unless an earlier run made it (`own`).
fn make_tag(git: &Git, options: &Tag, tag: &str, head: &str, own: bool) -> Result<()> {
    if own {
        output::say(format!(
            "`{tag}` is already on {} (made by an earlier run)",
            short(head)
        ));
        return Ok(());
    }
    let text = file_at(git, head, REGISTRY_PATH)?;
    let amis = registry::amis(&registry::parse(&text).map_err(anyhow::Error::msg)?);
    // A release made before the tool may name no branch there: this checkout's then.
    let ds0_branch = [head.to_string(), git.head_commit()?]
        .iter()
        .find_map(|c| ds0::read(&file_at(git, c, ds0::DS0_PATH).ok()?).ok())
        .map(|(_, branch)| branch)
        .unwrap_or_default();
    // Images built another way: their ComboAMI commits are not known here.
    let mut message =
        release::tag_message(&options.version, &ds0_branch, &amis, &Default::default());
    if options.commit.is_some() {
        message.push_str(&release::adopted_line(head));
    }
    let signer = signing::signer(&git.repo, options.sign.choice())?;
    git.create_tag(tag, head, &message, signer.as_ref())?;
    output::say(format!("tagged {} `{tag}`", short(head)));
    Ok(())
}

fn push(
    sh: &Shell,
    root: &Path,
    options: &Tag,
    remote: &str,
    branch: &str,
    tag: &str,
    progress: &crate::interrupt::Progress,
) -> Result<()> {
    interrupt::check("the push")?;
    progress.set_resume(resume_command(options));
    git::push(sh, root, remote, branch, tag).fix(
        || format!("tag `{tag}` is made locally but not pushed"),
        || {
            format!(
                "resolve the cause above, then run `{}` again to push it",
                resume_command(options)
            )
        },
    )?;
    output::say(format!("pushed `{branch}` and `{tag}` to `{remote}`"));
    Ok(())
}

/// The message this command gives the tag of `version` at HEAD, when HEAD can be read.
fn own_message(git: &Git, version: &str) -> Option<String> {
    let amis = registry::amis(&registry::parse(&git.file_at_head(REGISTRY_PATH).ok()?).ok()?);
    let (_, branch) = ds0::read(&git.file_at_head(ds0::DS0_PATH).ok()?).ok()?;
    Some(release::tag_message(
        version,
        &branch,
        &amis,
        &Default::default(),
    ))
}

/// The commit to tag: `--commit`, else HEAD.
fn target(git: &Git, options: &Tag) -> Result<String> {
    let Some(commit) = &options.commit else {
        return git.head_commit();
    };
    git.repo
        .revparse_single(commit)
        .and_then(|object| object.peel_to_commit())
        .map(|c| c.id().to_string())
        .fix(
            || format!("`--commit {commit}` names no commit of this repository"),
            || "give a commit of its history (`git log --oneline -- ami_ids.json` lists those that changed the AMIs); if it is only on the remote, `git fetch` first".into(),
        )
}

fn file_at(git: &Git, commit: &str, path: &str) -> Result<String> {
    git.file_at(commit, path)
        .ok_or_else(|| anyhow::anyhow!("`{path}` cannot be read at {}", short(commit)))
}

fn resume_command(options: &Tag) -> String {
    let mut command = format!("cargo xtask tag {}", options.version);
    if let Some(commit) = &options.commit {
        command.push_str(&format!(" --commit {commit}"));
    }
    if let Some(remote) = &options.push {
        command.push_str(&format!(" --push {remote}"));
    }
    // As this command was confirmed and asked to report: a script can run it as it is.
    if options.yes {
        command.push_str(" --yes");
    }
    if options.json {
        command.push_str(" --json");
    }
    command
}
