//! The simulated world of a local build: the real `build/provision.sh` runs on the stand-in
//! instance against one simulated image root per builder, with the system commands replaced by
//! stand-ins (`build/local/standin.sh`) that answer from the root and an archive fixture per
//! release, "ComboAMI" cloned from this repository's commit being built (pushed to the run's own
//! repository as the branch being built), and the EC2 tools downloaded from fixture zips
//! (`build/local/fixtures/`). Nothing needs the network. What each builder's provisioning left is kept in the run folder:
//! `image-root/BUILDER/` and `image-root/BUILDER.commands`.

use crate::pure::image_root::{self, Entry};
use crate::pure::matrix::{Image, Matrix};
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The system commands the stand-in replaces on PATH. Anything the provisioning calls that
/// would change the machine (packages, services, owners) or reach the network is here.
const STANDIN_COMMANDS: [&str; 16] = [
    "apt-get",
    "apt-key",
    "add-apt-repository",
    "debconf-set-selections",
    "update-java-alternatives",
    "update-rc.d",
    "service",
    "sysctl",
    "chown",
    "stat",
    "dpkg-query",
    "lsb_release",
    "sudo",
    "git",
    "curl",
    "wget",
];

/// The identity and date of the commit that bakes a folder that is not a git repository: fixed,
/// so the same files give the same commit on every attempt.
const SNAPSHOT_AUTHOR: (&str, &str, i64) = ("xtask local build", "xtask@localhost", 1_420_070_400);

pub struct World {
    pub image_roots: PathBuf,
    pub bin: PathBuf,
    pub comboami: PathBuf,
    pub downloads: PathBuf,
    /// The archive fixtures (`CODENAME.txt`) the stand-in apt-get answers from.
    pub archive: PathBuf,
    /// Builders whose checkout the stand-in edits before the report (`XTASK_LOCAL_WRONG_VERSION`).
    pub wrong_version: PathBuf,
}

impl World {
    /// The world of the run in `run_dir` (absolute: the stand-in instance sees these paths).
    pub fn new(run_dir: &Path) -> World {
        let standin = run_dir.join("standin");
        World {
            image_roots: run_dir.join("image-root"),
            bin: standin.join("bin"),
            comboami: standin.join("comboami.git"),
            downloads: standin.join("downloads"),
            archive: standin.join("archive"),
            wrong_version: standin.join("wrong-version"),
        }
    }

    /// What the run's builders share: the stand-in commands, the repository that stands for
    /// ComboAMI's (branch `branch` at `commit`, the commit being built), the archive fixtures
    /// and the EC2 tool zips. Made again on every attempt, from the repository at `root`.
    pub fn prepare(
        &self,
        sh: &Shell,
        root: &Path,
        matrix: &Matrix,
        (branch, commit): (&str, &str),
        python: &Path,
    ) -> Result<()> {
        let fixtures = root.join("build/local/fixtures");
        for dir in [&self.bin, &self.downloads, &self.archive] {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
        }
        let standin = root.join("build/local/standin.sh");
        for name in STANDIN_COMMANDS {
            std::os::unix::fs::symlink(&standin, self.bin.join(name))
                .with_context(|| format!("cannot link the stand-in `{name}`"))?;
        }
        // The report's measuring step runs `python`, as on the image.
        std::os::unix::fs::symlink(python, self.bin.join("python"))
            .context("cannot link the stand-in instance's `python`")?;
        self.comboami_repository(sh, root, branch, commit)?;
        copy_tree(&fixtures.join("archive"), &self.archive)?;
        let wrong =
            crate::project::split_names(&[sh.var("XTASK_LOCAL_WRONG_VERSION").unwrap_or_default()]);
        let wrong: String = wrong.iter().map(|b| format!("{b}\n")).collect();
        std::fs::write(&self.wrong_version, wrong)
            .with_context(|| format!("cannot write `{}`", self.wrong_version.display()))?;
        for (tools, version) in [
            ("ec2-ami-tools", &matrix.settings.ec2_ami_tools_version),
            ("ec2-api-tools", &matrix.settings.ec2_api_tools_version),
        ] {
            let named = self.downloads.join(format!("{tools}-{version}"));
            copy_tree(&fixtures.join(tools), &named)?;
            let zip = self.downloads.join(format!("{tools}-{version}.zip"));
            // Detached from Ctrl-C: no Python traceback; the build checks for it after.
            crate::interrupt::run_detached(cmd!(sh, "{python} -m zipfile -c {zip} {named}"))
                .with_context(|| format!("cannot zip the fixture `{}`", zip.display()))?;
        }
        Ok(())
    }

    /// A fresh simulated root for `image`, as a new instance of its upstream AMI would have.
    pub fn seed(&self, image: &Image) -> Result<()> {
        let name = image.builder_name();
        let dir = self.image_roots.join(&name);
        let commands = self.image_roots.join(format!("{name}.commands"));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&commands);
        let _ = std::fs::remove_file(self.image_roots.join(format!("{name}.owners")));
        let context = || format!("cannot seed the simulated image root `{}`", dir.display());
        std::fs::create_dir_all(&dir).with_context(context)?;
        for entry in image_root::seed(image) {
            match entry {
                Entry::Dir(path) => {
                    std::fs::create_dir_all(dir.join(path)).with_context(context)?
                }
                Entry::File(path, text, mode) => {
                    let path = dir.join(path);
                    std::fs::create_dir_all(path.parent().expect("below the root"))
                        .with_context(context)?;
                    std::fs::write(&path, text).with_context(context)?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                        .with_context(context)?;
                }
                Entry::Symlink(path, target) => {
                    let path = dir.join(path);
                    std::fs::create_dir_all(path.parent().expect("below the root"))
                        .with_context(context)?;
                    std::os::unix::fs::symlink(target, &path).with_context(context)?;
                }
            }
        }
        std::fs::write(&commands, "").with_context(context)?;
        // The owners the stand-in `chown` records and its `stat` answers from.
        std::fs::write(self.image_roots.join(format!("{name}.owners")), "")
            .with_context(context)?;
        Ok(())
    }
}

impl World {
    /// The repository the stand-in `git clone` of ComboAMI clones: branch `branch` at `commit`,
    /// pushed from the git repository at `root`; or, when `root` is not one (the tests' copies),
    /// its files committed by [`World::snapshot`].
    fn comboami_repository(
        &self,
        sh: &Shell,
        root: &Path,
        branch: &str,
        commit: &str,
    ) -> Result<()> {
        if git2::Repository::open(root).is_err() {
            self.snapshot(root, branch)?;
            return Ok(());
        }
        let to = &self.comboami;
        let _ = std::fs::remove_dir_all(to);
        let repo = git2::Repository::init_bare(to)
            .with_context(|| format!("cannot create `{}`", to.display()))?;
        let refspec = format!("{commit}:refs/heads/{branch}");
        crate::interrupt::run_detached(cmd!(sh, "git -C {root} push --quiet --force {to} {refspec}"))
            .with_context(|| {
                format!("cannot give the stand-in's ComboAMI repository commit `{commit}` as branch `{branch}`")
            })?;
        repo.set_head(&format!("refs/heads/{branch}"))?;
        Ok(())
    }

    /// What a local build of a folder that is not a git repository bakes: its files (but
    /// `target/`, `build/runs/` and `build/local.json`) committed as branch `branch` of the
    /// stand-in's ComboAMI repository. Returns the commit: the same files give the same one.
    pub fn snapshot(&self, root: &Path, branch: &str) -> Result<String> {
        let to = &self.comboami;
        let context = || format!("cannot commit `{}` for the local build", root.display());
        let _ = std::fs::remove_dir_all(to);
        let repo = git2::Repository::init_bare(to).with_context(context)?;
        let skip = [".git", "target", "build/runs", "build/local.json"].map(|p| root.join(p));
        let tree = tree_of(&repo, root, &skip).with_context(context)?;
        let tree = repo.find_tree(tree).with_context(context)?;
        let (name, email, time) = SNAPSHOT_AUTHOR;
        let signature = git2::Signature::new(name, email, &git2::Time::new(time, 0))?;
        let head = format!("refs/heads/{branch}");
        let commit = (repo.commit(
            Some(&head),
            &signature,
            &signature,
            "Local build",
            &tree,
            &[],
        ))
        .with_context(context)?;
        repo.set_head(&head).with_context(context)?;
        Ok(commit.to_string())
    }
}

fn tree_of(repo: &git2::Repository, dir: &Path, skip: &[PathBuf]) -> Result<git2::Oid> {
    let mut builder = repo.treebuilder(None)?;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if skip.contains(&path) || path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            builder.insert(&*name, tree_of(repo, &path, skip)?, 0o040000)?;
        } else {
            let executable = std::fs::metadata(&path)?.permissions().mode() & 0o111 != 0;
            let blob = repo.blob(&std::fs::read(&path)?)?;
            builder.insert(&*name, blob, if executable { 0o100755 } else { 0o100644 })?;
        }
    }
    Ok(builder.write()?)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create `{}`", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read `{}`", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy `{}`", entry.path().display()))?;
        }
    }
    Ok(())
}
