//! `cargo xtask set-version`: edit the version (and branch) literals of `ds0_utils.py`.

use crate::cmd::{Cmd, Context};
use crate::lock::Busy;
use crate::project;
use crate::pure::{ds0, matrix, version};
use anyhow::{Context as _, Result};
use std::process::ExitCode;
use xshell::Shell;

/// Set the version (and default branch) baked into the images, in `ds0_utils.py`.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cargo xtask set-version 2.6.4 --branch 2.6")]
pub struct SetVersion {
    /// The new version, like `2.6.4` (semver; `2.6.4-beta1` for a candidate).
    version: String,
    /// Also set the default branch baked into the images (the repository branch the images
    /// check out on first boot, like `2.6`); without it the branch is left as it is.
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
}

impl Cmd for SetVersion {
    const NAME: &'static str = "set-version";
    fn lock(&self) -> Option<Busy> {
        Some(Busy::Refuse)
    }
    fn run(self, cx: &Context) -> Result<ExitCode> {
        let (old_version, old_branch) = apply(cx.sh, &self.version, self.branch.as_deref())?;
        println!(
            "{}: version {old_version} -> {}",
            ds0::DS0_PATH,
            self.version
        );
        if let Some(branch) = &self.branch {
            println!("{}: branch  {old_branch} -> {branch}", ds0::DS0_PATH);
        }
        let older = |than: &str| matches!((version::parse(&self.version), version::parse(than)), (Ok(new), Ok(old)) if new < old);
        if older(&old_version) {
            eprintln!(
                "note: {} is older than the {old_version} it replaces: `release` refuses to go back",
                self.version
            );
        }
        if let Some(newest) = newest_release_at_least(cx.root(), &self.version) {
            eprintln!(
                "note: {} is not newer than the latest release {newest}: `release` and `tag` will refuse it (set a higher version to release)",
                self.version
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The newest release of this clone when it is not older than `version` (none outside git).
fn newest_release_at_least(root: &std::path::Path, version: &str) -> Option<semver::Version> {
    let parsed = version::parse(version).ok()?;
    let tags = crate::git::Git::open(root).ok()?.tag_names().ok()?;
    version::newest_release(tags.iter().map(String::as_str)).filter(|newest| *newest >= parsed)
}

/// Validates and writes; returns the old version and branch. Nothing is written on any error.
pub fn apply(sh: &Shell, new_version: &str, new_branch: Option<&str>) -> Result<(String, String)> {
    version::parse(new_version)?;
    let matrix = project::matrix(sh)?;
    matrix::check_names(&matrix, new_version).map_err(anyhow::Error::msg)?;
    let text = project::read(sh, ds0::DS0_PATH)?;
    let (old_version, old_branch) = ds0::read(&text).map_err(anyhow::Error::msg)?;
    let edited = ds0::edit(&text, new_version, new_branch).map_err(anyhow::Error::msg)?;
    if edited != text {
        project::write_atomic(sh, ds0::DS0_PATH, &edited)
            .with_context(|| format!("cannot update `{}`", ds0::DS0_PATH))?;
    }
    Ok((old_version, old_branch))
}
