//! The repository's git state through git2 (local operations only: status, branch, tags, commit,
//! annotated tags), and the two network operations through the `git` command, so the user's own
//! credentials, SSH agent and helpers apply.

use crate::signing;
use anyhow::{bail, Context, Result};
use git2::{Repository, StatusOptions};
use std::path::Path;
use xshell::{cmd, Shell};

pub struct Git {
    pub repo: Repository,
}

impl Git {
    pub fn open(root: &Path) -> Result<Git> {
        // libgit2's own message adds only its error class and code.
        let repo = Repository::open(root).map_err(|_| {
            anyhow::anyhow!(
                "`{}` is not a git repository: releases commit and tag, so run them in a clone of the image repository",
                root.display()
            )
        })?;
        Ok(Git { repo })
    }

    /// Paths with uncommitted changes or untracked files (ignored files do not count).
    pub fn dirty_paths(&self) -> Result<Vec<String>> {
        let mut options = StatusOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false);
        let statuses = self
            .repo
            .statuses(Some(&mut options))
            .context("cannot read the git status")?;
        Ok(statuses
            .iter()
            .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
            .collect())
    }

    /// The checked-out branch, or `None` on a detached HEAD.
    pub fn current_branch(&self) -> Result<Option<String>> {
        if self.repo.head_detached().unwrap_or(false) {
            return Ok(None);
        }
        let head = self
            .repo
            .head()
            .context("cannot read HEAD (is there a first commit?)")?;
        Ok(Some(
            String::from_utf8_lossy(head.shorthand_bytes()).into_owned(),
        ))
    }

    pub fn head_commit(&self) -> Result<String> {
        let commit = self
            .repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .context("cannot read the commit at HEAD")?;
        Ok(commit.id().to_string())
    }

    pub fn tag_names(&self) -> Result<Vec<String>> {
        let names = self.repo.tag_names(None).context("cannot list the tags")?;
        Ok(names.iter().flatten().flatten().map(String::from).collect())
    }

    /// The commit a tag points to, if the tag exists.
    pub fn tag_target(&self, name: &str) -> Option<String> {
        let reference = self
            .repo
            .find_reference(&format!("refs/tags/{name}"))
            .ok()?;
        reference.peel_to_commit().ok().map(|c| c.id().to_string())
    }

    /// The id of an annotated tag's object (what a remote lists for the tag), if it exists.
    pub fn tag_object(&self, name: &str) -> Option<String> {
        let reference = self
            .repo
            .find_reference(&format!("refs/tags/{name}"))
            .ok()?;
        reference.target().map(|id| id.to_string())
    }

    /// An annotated tag's message.
    pub fn tag_message(&self, name: &str) -> Option<String> {
        let reference = self
            .repo
            .find_reference(&format!("refs/tags/{name}"))
            .ok()?;
        let tag = reference.peel_to_tag().ok()?;
        tag.message_bytes()
            .map(|m| String::from_utf8_lossy(m).into_owned())
    }

    /// A commit's parents.
    pub fn parents(&self, commit: &str) -> Result<Vec<String>> {
        let commit = self
            .repo
            .revparse_single(commit)
            .and_then(|o| o.peel_to_commit())
            .with_context(|| format!("cannot find commit `{commit}`"))?;
        Ok(commit.parent_ids().map(|id| id.to_string()).collect())
    }

    /// A commit's message.
    pub fn commit_message(&self, commit: &str) -> Result<String> {
        let commit = self
            .repo
            .revparse_single(commit)
            .and_then(|o| o.peel_to_commit())
            .with_context(|| format!("cannot find commit `{commit}`"))?;
        Ok(String::from_utf8_lossy(commit.message_bytes()).into_owned())
    }

    /// The identity for commits and tags, from the user's git configuration.
    pub fn signature(&self) -> Result<git2::Signature<'static>> {
        self.repo.signature().map_err(|e| {
            anyhow::anyhow!(
                "no git identity ({}): set one with `git config --global user.name \"Your Name\"` \
                 and `git config --global user.email you@example.com`",
                e.message()
            )
        })
    }

    /// Whether the object database has `commit`.
    pub fn has_commit(&self, commit: &str) -> bool {
        git2::Oid::from_str(commit)
            .ok()
            .and_then(|id| self.repo.find_commit(id).ok())
            .is_some()
    }

    /// Commits reachable from `tip` but not from `base`, newest first, as `SHORT subject`.
    pub fn commits_missing_from(&self, tip: &str, base: &str) -> Result<Vec<String>> {
        let mut walk = self.repo.revwalk().context("cannot walk the history")?;
        walk.push(git2::Oid::from_str(tip)?)
            .with_context(|| format!("cannot find commit `{tip}`"))?;
        walk.hide(git2::Oid::from_str(base)?)
            .with_context(|| format!("cannot find commit `{base}`"))?;
        let mut commits = Vec::new();
        for id in walk {
            let id = id.context("cannot walk the history")?;
            let commit = self.repo.find_commit(id)?;
            let text = id.to_string();
            commits.push(format!(
                "{} {}",
                &text[..10],
                String::from_utf8_lossy(commit.summary_bytes().unwrap_or(b"(no message)"))
            ));
        }
        Ok(commits)
    }

    /// The commit a local branch points to.
    pub fn branch_commit(&self, branch: &str) -> Result<String> {
        let reference = self
            .repo
            .find_reference(&format!("refs/heads/{branch}"))
            .with_context(|| format!("there is no local branch `{branch}`"))?;
        let commit = reference
            .peel_to_commit()
            .with_context(|| format!("cannot read branch `{branch}`"))?;
        Ok(commit.id().to_string())
    }

    pub fn has_remote(&self, name: &str) -> bool {
        self.repo.find_remote(name).is_ok()
    }

    /// The names of the configured remotes.
    pub fn remote_names(&self) -> Result<Vec<String>> {
        let names = self.repo.remotes().context("cannot list the remotes")?;
        Ok(names.iter().flatten().flatten().map(String::from).collect())
    }

    /// A file's text at HEAD.
    pub fn file_at_head(&self, path: &str) -> Result<String> {
        let tree = self
            .repo
            .head()
            .and_then(|h| h.peel_to_tree())
            .context("cannot read the tree at HEAD")?;
        let entry = tree
            .get_path(Path::new(path))
            .with_context(|| format!("`{path}` is not committed at HEAD"))?;
        let blob = entry
            .to_object(&self.repo)
            .and_then(|o| o.peel_to_blob())
            .with_context(|| format!("cannot read `{path}` at HEAD"))?;
        String::from_utf8(blob.content().to_vec())
            .with_context(|| format!("`{path}` at HEAD is not UTF-8"))
    }

    /// Commits `paths` as they are in the working tree on top of HEAD; returns the new commit.
    pub fn commit(&self, paths: &[&str], message: &str) -> Result<String> {
        self.commit_dated(paths, message, false)
    }

    /// As [`Git::commit`], dated with its parent's commit time: the same change of the same
    /// commit by the same identity is then the same commit on any machine, so a release
    /// rehearsal whose scratch remote is gone makes its prepare commit again, identical.
    pub fn commit_reproducibly(&self, paths: &[&str], message: &str) -> Result<String> {
        self.commit_dated(paths, message, true)
    }

    fn commit_dated(&self, paths: &[&str], message: &str, parent_time: bool) -> Result<String> {
        let mut signature = self.signature()?;
        let mut index = self.repo.index().context("cannot open the git index")?;
        for path in paths {
            index
                .add_path(Path::new(path))
                .with_context(|| format!("cannot stage `{path}`"))?;
        }
        index.write().context("cannot write the git index")?;
        let tree_id = index.write_tree().context("cannot write the tree")?;
        let tree = self.repo.find_tree(tree_id)?;
        let parent = self
            .repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .context("cannot read the commit at HEAD")?;
        if parent_time {
            let (name, email) = (signature.name(), signature.email());
            let (name, email) = (name.unwrap_or_default(), email.unwrap_or_default());
            signature = git2::Signature::new(name, email, &parent.time())
                .context("cannot make the commit's signature")?;
        }
        let id = self
            .repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &[&parent],
            )
            .context("cannot commit")?;
        Ok(id.to_string())
    }

    /// Creates an annotated tag on `commit`, signed when `signer` is set; never moves or
    /// overwrites an existing one.
    pub fn create_tag(
        &self,
        name: &str,
        commit: &str,
        message: &str,
        signer: Option<&signing::Signer>,
    ) -> Result<String> {
        let signature = self.signature()?;
        let target = self
            .repo
            .revparse_single(commit)
            .with_context(|| format!("cannot find commit `{commit}`"))?;
        if self.tag_target(name).is_some() {
            bail!("tag `{name}` already exists; tags are never moved or overwritten");
        }
        let id = signing::create_tag(&self.repo, name, target.id(), &signature, message, signer)?;
        Ok(id.to_string())
    }
}

/// An annotated (or lightweight) tag: its name, message and the commit it points to.
#[derive(Debug, Clone)]
pub struct TagInfo {
    pub name: String,
    pub message: String,
    pub commit: String,
}

impl Git {
    /// Every tag whose name starts with one of `prefixes`, with its message (empty for a
    /// lightweight tag).
    pub fn tags_with_messages(&self, prefixes: &[&str]) -> Result<Vec<TagInfo>> {
        let mut tags = Vec::new();
        for name in self.tag_names()? {
            if !prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let reference = self
                .repo
                .find_reference(&format!("refs/tags/{name}"))
                .with_context(|| format!("cannot read tag `{name}`"))?;
            let message = reference
                .peel_to_tag()
                .ok()
                .and_then(|t| {
                    t.message_bytes()
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                })
                .unwrap_or_default();
            let commit = reference
                .peel_to_commit()
                .map(|c| c.id().to_string())
                .unwrap_or_default();
            tags.push(TagInfo {
                name,
                message,
                commit,
            });
        }
        Ok(tags)
    }

    /// Every committed version of `path`, newest first, each once, with the short id of the
    /// oldest commit holding it (the one that made it, not a later commit that changed other
    /// files and whose message may name another version): the history of every branch, tag
    /// and remote-tracking branch.
    pub fn file_history(&self, path: &str) -> Result<Vec<(String, String)>> {
        let mut walk = self.repo.revwalk().context("cannot walk the git history")?;
        walk.set_sorting(git2::Sort::TIME)?;
        // An unborn HEAD has no history; any ref that is not a commit is skipped.
        let _ = walk.push_head();
        for glob in ["refs/heads/*", "refs/tags/*", "refs/remotes/*"] {
            let _ = walk.push_glob(glob);
        }
        // Each version's place in `versions`: the walk goes from newest to oldest, so an older
        // commit holding a version seen already takes its place.
        let mut seen: std::collections::HashMap<git2::Oid, usize> =
            std::collections::HashMap::new();
        let mut versions: Vec<(String, String)> = Vec::new();
        for id in walk {
            let id = id.context("cannot walk the git history")?;
            let commit = self.repo.find_commit(id)?;
            let Ok(entry) = commit.tree()?.get_path(Path::new(path)) else {
                continue;
            };
            let short = id.to_string()[..7].to_string();
            if let Some(&index) = seen.get(&entry.id()) {
                versions[index].0 = short;
                continue;
            }
            let Ok(blob) = self.repo.find_blob(entry.id()) else {
                continue;
            };
            seen.insert(entry.id(), versions.len());
            versions.push((short, String::from_utf8_lossy(blob.content()).into_owned()));
        }
        Ok(versions)
    }

    /// A file's text at a commit (`None` when the commit does not hold it).
    pub fn file_at(&self, commit: &str, path: &str) -> Option<String> {
        let commit = self
            .repo
            .revparse_single(commit)
            .ok()?
            .peel_to_commit()
            .ok()?;
        let entry = commit.tree().ok()?.get_path(Path::new(path)).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        Some(String::from_utf8_lossy(blob.content()).into_owned())
    }

    /// The first parent of a commit.
    pub fn parent(&self, commit: &str) -> Option<String> {
        let commit = self
            .repo
            .revparse_single(commit)
            .ok()?
            .peel_to_commit()
            .ok()?;
        commit.parent_id(0).ok().map(|id| id.to_string())
    }

    /// Whether `commit` is `of` or one of its ancestors; `false` for an unknown commit.
    pub fn is_ancestor(&self, commit: &str, of: &str) -> bool {
        let (Ok(commit), Ok(of)) = (git2::Oid::from_str(commit), git2::Oid::from_str(of)) else {
            return false;
        };
        if self.repo.find_commit(commit).is_err() {
            return false;
        }
        commit == of || self.repo.graph_descendant_of(of, commit).unwrap_or(false)
    }

    /// Commits `path` as it is in the working tree, and nothing else (whatever else is staged
    /// stays staged, out of this commit), on top of HEAD; returns the new commit.
    pub fn commit_file(&self, path: &str, message: &str) -> Result<String> {
        let signature = self.signature()?;
        let parent = self
            .repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .context("cannot read the commit at HEAD")?;
        let workdir = self
            .repo
            .workdir()
            .context("the repository has no working tree")?;
        let content = std::fs::read(workdir.join(path))
            .with_context(|| format!("cannot read `{path}` to commit it"))?;
        let blob = self
            .repo
            .blob(&content)
            .context("cannot write a git blob")?;
        // The tree of HEAD with this one file replaced, built in an index of its own.
        let mut tree_index = git2::Index::new().context("cannot make a git index")?;
        tree_index.read_tree(&parent.tree()?)?;
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: content.len() as u32,
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        tree_index.add(&entry).context("cannot stage the file")?;
        let tree_id = tree_index
            .write_tree_to(&self.repo)
            .context("cannot write the tree")?;
        let tree = self.repo.find_tree(tree_id)?;
        let id = self
            .repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &[&parent],
            )
            .context("cannot commit")?;
        // The real index learns the committed file, so `git status` shows it as committed.
        let mut index = self.repo.index().context("cannot open the git index")?;
        index
            .add_path(Path::new(path))
            .with_context(|| format!("cannot stage `{path}`"))?;
        index.write().context("cannot write the git index")?;
        Ok(id.to_string())
    }
}

/// The object the remote's tag points to (`None`: it has no such tag), asked through
/// `git ls-remote`.
pub fn remote_tag(sh: &Shell, root: &Path, remote: &str, tag: &str) -> Result<Option<String>> {
    let reference = format!("refs/tags/{tag}");
    let output = cmd!(sh, "git -C {root} ls-remote --tags {remote} {reference}")
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| format!("cannot ask remote `{remote}` for its tags (`git ls-remote`)"))?;
    Ok(output
        .lines()
        .find(|l| l.ends_with(&reference))
        .and_then(|l| l.split_whitespace().next())
        .map(String::from))
}

/// The commit the remote's `branch` points to (`None` when it has no such branch), asked
/// through `git ls-remote`: nothing is written.
pub fn remote_branch_tip(
    sh: &Shell,
    root: &Path,
    remote: &str,
    branch: &str,
) -> Result<Option<String>> {
    let reference = format!("refs/heads/{branch}");
    let output = cmd!(sh, "git -C {root} ls-remote --heads {remote} {reference}")
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| {
            format!("cannot ask remote `{remote}` for branch `{branch}` (`git ls-remote`)")
        })?;
    Ok(output
        .lines()
        .find(|l| l.ends_with(&format!("\t{reference}")))
        .and_then(|l| l.split_whitespace().next())
        .map(String::from))
}

/// Fetches the objects of the remote's `branch` without updating any ref or `FETCH_HEAD`.
pub fn fetch_branch(sh: &Shell, root: &Path, remote: &str, branch: &str) -> Result<()> {
    let reference = format!("refs/heads/{branch}");
    cmd!(
        sh,
        "git -C {root} fetch --quiet --no-write-fetch-head --no-tags --refmap= {remote} {reference}"
    )
    .quiet()
    .run()
    .with_context(|| format!("cannot fetch branch `{branch}` from `{remote}`"))
}

/// Pushes the branch and the tag in one atomic push.
pub fn push(sh: &Shell, root: &Path, remote: &str, branch: &str, tag: &str) -> Result<()> {
    let branch_ref = format!("refs/heads/{branch}:refs/heads/{branch}");
    let tag_ref = format!("refs/tags/{tag}:refs/tags/{tag}");
    cmd!(
        sh,
        "git -C {root} push --atomic {remote} {branch_ref} {tag_ref}"
    )
    .run()
    .with_context(|| format!("cannot push branch `{branch}` and tag `{tag}` to `{remote}`"))
}

/// Every tag of the remote, as `git ls-remote --tags` prints them (peeled lines included). A
/// prompt for credentials would hang a command with no terminal: git fails instead.
pub fn remote_tags(sh: &Shell, root: &Path, remote: &str) -> Result<String> {
    cmd!(sh, "git -C {root} ls-remote --tags {remote}")
        .env("GIT_TERMINAL_PROMPT", "0")
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| format!("cannot ask remote `{remote}` for its tags (`git ls-remote --tags {remote}` failed)"))
}
