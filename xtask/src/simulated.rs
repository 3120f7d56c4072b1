//! The simulated world of a local build: the real `build/provision.sh` runs on the stand-in
//! instance against one simulated image root per builder, with the system commands replaced by
//! recording stand-ins (`build/local/standin.sh`), ComboAMI cloned from a fixture repository and
//! the EC2 tools downloaded from fixture zips (`build/local/fixtures/`). Nothing needs the
//! network. What each builder's provisioning left is kept in the run folder:
//! `image-root/BUILDER/` and `image-root/BUILDER.commands`.

use crate::core::image_root::{self, Entry};
use crate::core::matrix::{Image, Matrix};
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The system commands the stand-in replaces on PATH. Anything the provisioning calls that
/// would change the machine (packages, services, owners) or reach the network is here.
const STANDIN_COMMANDS: [&str; 14] = [
    "apt-get",
    "apt-key",
    "add-apt-repository",
    "debconf-set-selections",
    "update-java-alternatives",
    "update-rc.d",
    "service",
    "sysctl",
    "chown",
    "lsb_release",
    "sudo",
    "git",
    "curl",
    "wget",
];

/// The fixture repository's identity and date: fixed, so its commits are the same every run.
const FIXTURE_AUTHOR: (&str, &str, i64) = ("ComboAMI fixture", "fixture@localhost", 1_420_070_400);

pub struct World {
    pub image_roots: PathBuf,
    pub bin: PathBuf,
    pub comboami: PathBuf,
    pub downloads: PathBuf,
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
        }
    }

    /// What the run's builders share: the stand-in commands, the ComboAMI fixture repository
    /// (branches `master`, `2.6` and the run's `branch`) and the EC2 tool zips. Made again on
    /// every attempt, from the files in the repository at `root`.
    pub fn prepare(
        &self,
        sh: &Shell,
        root: &Path,
        matrix: &Matrix,
        branch: &str,
        python: &Path,
    ) -> Result<()> {
        let fixtures = root.join("build/local/fixtures");
        for dir in [&self.bin, &self.comboami, &self.downloads] {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
        }
        let standin = root.join("build/local/standin.sh");
        for name in STANDIN_COMMANDS {
            std::os::unix::fs::symlink(&standin, self.bin.join(name))
                .with_context(|| format!("cannot link the stand-in `{name}`"))?;
        }
        fixture_repository(&fixtures.join("comboami"), &self.comboami, branch)?;
        for (tools, version) in [
            ("ec2-ami-tools", &matrix.settings.ec2_ami_tools_version),
            ("ec2-api-tools", &matrix.settings.ec2_api_tools_version),
        ] {
            let named = self.downloads.join(format!("{tools}-{version}"));
            copy_tree(&fixtures.join(tools), &named)?;
            let zip = self.downloads.join(format!("{tools}-{version}.zip"));
            // Detached from Ctrl-C: no Python traceback; the build checks for it after.
            crate::standin::run_detached(cmd!(sh, "{python} -m zipfile -c {zip} {named}"))
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
        Ok(())
    }
}

/// A bare repository at `to` holding the files of `from`: `master` and, one commit on, `2.6`
/// (and `branch`, when another), the way ComboAMI keeps a branch per release line.
fn fixture_repository(from: &Path, to: &Path, branch: &str) -> Result<()> {
    let context = || {
        format!(
            "cannot make the ComboAMI fixture repository `{}`",
            to.display()
        )
    };
    let repo = git2::Repository::init_bare(to).with_context(context)?;
    let tree = tree_of(&repo, from).with_context(context)?;
    let tree = repo.find_tree(tree).with_context(context)?;
    let (name, email, time) = FIXTURE_AUTHOR;
    let signature = git2::Signature::new(name, email, &git2::Time::new(time, 0))?;
    let master = repo
        .commit(
            Some("refs/heads/master"),
            &signature,
            &signature,
            "ComboAMI fixture",
            &tree,
            &[],
        )
        .with_context(context)?;
    let master = repo.find_commit(master)?;
    let release_line = repo
        .commit(
            Some("refs/heads/2.6"),
            &signature,
            &signature,
            "Start the 2.6 line (fixture)",
            &tree,
            &[&master],
        )
        .with_context(context)?;
    if branch != "2.6" && branch != "master" {
        let commit = repo.find_commit(release_line)?;
        repo.branch(branch, &commit, true).with_context(|| {
            format!("cannot make branch `{branch}` in the ComboAMI fixture repository")
        })?;
    }
    repo.set_head("refs/heads/master").with_context(context)?;
    Ok(())
}

fn tree_of(repo: &git2::Repository, dir: &Path) -> Result<git2::Oid> {
    let mut builder = repo.treebuilder(None)?;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            builder.insert(&*name, tree_of(repo, &path)?, 0o040000)?;
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
