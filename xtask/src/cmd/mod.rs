//! One module per command: each parses nothing, does its I/O through `sh`, and calls the core.

pub mod ami_ids;
pub mod build;
pub mod cleanup;
pub mod config;
pub mod local;
pub mod release;
pub mod set_version;
pub mod tag;

use crate::core::template::Kind;
use anyhow::{bail, Context, Result};
use std::io::IsTerminal;

/// Marks an error as "some builders failed" (exit 1) rather than a usage or configuration
/// error (exit 2).
#[derive(Debug)]
pub struct BuildsFailed;

impl std::fmt::Display for BuildsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some builders failed")
    }
}

impl std::error::Error for BuildsFailed {}

/// Marks an error as "part of the work failed, the rest was done" (exit 1), as when a cleanup
/// fails in one region.
#[derive(Debug)]
pub struct PartlyFailed;

impl std::fmt::Display for PartlyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some steps failed")
    }
}

impl std::error::Error for PartlyFailed {}

pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error
        .chain()
        .any(|e| e.is::<BuildsFailed>() || e.is::<PartlyFailed>())
    {
        1
    } else {
        2
    }
}

pub fn parse_kind(text: &str) -> Result<Kind> {
    Kind::parse(text).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown template kind `{text}`: use `official`, `test-ebs` or `test-instance`"
        )
    })
}

/// Asks for a typed `answer` before a costly or destructive `action` (shown after its plan);
/// `--yes` answers for the user. Without a terminal and without `--yes` it refuses.
pub fn confirm(yes: bool, action: &str, answer: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{action} needs confirmation: run it from a terminal to answer, or add `--yes` after reading the plan above");
    }
    eprint!("type `{answer}` to go ahead, anything else to stop: ");
    let mut typed = String::new();
    std::io::stdin()
        .read_line(&mut typed)
        .context("cannot read the answer")?;
    if typed.trim() != answer {
        bail!("stopped: nothing was changed");
    }
    Ok(())
}
