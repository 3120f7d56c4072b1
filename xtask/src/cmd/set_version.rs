//! `cargo xtask set-version`: edit the version (and branch) literals of `ds0_utils.py`.

use crate::core::{ds0, matrix, version};
use crate::project;
use anyhow::{Context, Result};
use xshell::Shell;

pub fn run(sh: &Shell, new_version: &str, new_branch: Option<&str>) -> Result<()> {
    let (old_version, old_branch) = apply(sh, new_version, new_branch)?;
    println!("{}: version {old_version} -> {new_version}", ds0::DS0_PATH);
    if let Some(branch) = new_branch {
        println!("{}: branch  {old_branch} -> {branch}", ds0::DS0_PATH);
    }
    Ok(())
}

/// Validates and writes; returns the old version and branch. Nothing is written on any error.
pub fn apply(sh: &Shell, new_version: &str, new_branch: Option<&str>) -> Result<(String, String)> {
    version::parse(new_version).map_err(anyhow::Error::msg)?;
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
