//! One module per command: each parses nothing, does its I/O through `sh`, and calls the core.

pub mod ami_ids;
pub mod audit;
pub mod base_images;
pub mod build;
pub mod checks;
pub mod cleanup;
pub mod config;
pub mod doctor;
pub mod lifecycle;
pub mod local;
pub mod release;
pub mod retire;
pub mod set_version;
pub mod tag;

use crate::{interrupt, lock};
use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// An error that knows what fixes it: `main` prints `what` first, the causes below it, and the
/// fix last, so a fix never ends up in the middle of a chain of causes.
#[derive(Debug)]
pub struct Fixable {
    what: String,
    fix: String,
    cause: anyhow::Error,
}

impl std::fmt::Display for Fixable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Fixable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

/// `.fix(what, fix)`: like anyhow's `with_context`, with the action that fixes it.
pub trait FixContext<T> {
    fn fix(self, what: impl FnOnce() -> String, fix: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> FixContext<T> for std::result::Result<T, E> {
    fn fix(self, what: impl FnOnce() -> String, fix: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|cause| {
            anyhow::Error::new(Fixable {
                what: what(),
                fix: fix(),
                cause: cause.into(),
            })
        })
    }
}

/// An error taken apart: what failed, its causes (outermost first) and the fixes.
struct Parts {
    what: String,
    causes: Vec<String>,
    fixes: Vec<String>,
}

fn parts(error: &anyhow::Error) -> Parts {
    let mut messages = Vec::new();
    let mut fixes = Vec::new();
    for (index, cause) in error.chain().enumerate() {
        if let Some(fixable) = cause.downcast_ref::<Fixable>() {
            fixes.push(fixable.fix.clone());
        }
        // Edges cannot build a `Fixable` (they never import `cmd`): theirs carry the fix.
        if let Some(refused) = cause.downcast_ref::<crate::core::refusal::Refusal>() {
            fixes.push(refused.fix.clone());
        }
        // Markers such as `BuildsFailed` only carry the exit code when a message says more.
        if index > 0
            && (cause.is::<BuildsFailed>()
                || cause.is::<PartlyFailed>()
                || cause.is::<lock::Locked>())
        {
            continue;
        }
        messages.push(cause.to_string());
    }
    let what = messages.remove(0);
    Parts {
        what,
        causes: messages,
        fixes,
    }
}

/// The JSON document of a command that failed (`--json`), every message masked.
pub fn error_document(
    command: &str,
    error: &anyhow::Error,
    exit_code: u8,
    masker: &crate::core::mask::Masker,
) -> serde_json::Value {
    let parts = parts(error);
    let masked = |texts: &[String]| -> Vec<String> {
        texts.iter().map(|t| masker.mask(t).to_string()).collect()
    };
    serde_json::json!({
        "command": command,
        "ok": false,
        "exit_code": exit_code,
        "error": masker.mask(&parts.what).to_string(),
        "causes": masked(&parts.causes),
        "fixes": masked(&parts.fixes),
    })
}

/// An error as the user reads it: what failed on the first line, each cause on its own
/// indented line, the fix (if any) last.
pub fn render_error(error: &anyhow::Error) -> String {
    // An interrupt is one line: where it stopped, and how to go on.
    if let Some(interrupted) = error
        .chain()
        .find_map(|e| e.downcast_ref::<interrupt::Interrupted>())
    {
        return format!("interrupted: {interrupted}\n");
    }
    if interrupt::requested() {
        // A step that failed because of the interrupt (a `git push` that got the Ctrl-C).
        let what = error.to_string();
        let what = what.lines().next().unwrap_or("");
        return format!(
            "interrupted: stopped ({what}); {}\n",
            match interrupt::resume_command() {
                Some(resume) => format!("what finished is recorded: run `{resume}` to resume"),
                None => "nothing was started".to_string(),
            }
        );
    }
    let parts = parts(error);
    let mut lines: Vec<String> = Vec::new();
    let messages = std::iter::once(&parts.what).chain(&parts.causes);
    for (index, text) in messages.enumerate() {
        let mut text_lines = text.lines();
        let first = text_lines.next().unwrap_or("");
        lines.push(if index == 0 {
            format!("error: {first}")
        } else {
            format!("  caused by: {first}")
        });
        // A message of several lines (a list of problems) keeps its own indentation.
        for more in text_lines {
            lines.push(format!("    {more}"));
        }
    }
    for fix in &parts.fixes {
        lines.push(format!("fix: {fix}"));
    }
    lines.join("\n") + "\n"
}

/// Set once a command has changed something (a run folder, a file, a ref, a launch): from then
/// on a failure is "some steps failed" (1), never "refused before anything started" (2).
static STARTED: AtomicBool = AtomicBool::new(false);

pub fn mark_started() {
    STARTED.store(true, Ordering::SeqCst);
}

pub fn started() -> bool {
    STARTED.load(Ordering::SeqCst)
}

/// 0 done; 1 some builders or steps failed, the rest done; 2 refused before anything started;
/// 130 interrupted.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let any = |test: fn(&(dyn std::error::Error + 'static)) -> bool| error.chain().any(test);
    if any(|e| e.is::<interrupt::Interrupted>()) || interrupt::requested() {
        130
    } else if any(|e| e.is::<BuildsFailed>() || e.is::<PartlyFailed>()) {
        1
    } else if any(|e| e.is::<lock::Locked>()) || !started() {
        2
    } else {
        1
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_what_then_causes_then_the_fix() {
        let push: Result<()> = Err(anyhow::anyhow!(
            "command exited with non-zero code `git push`: 1"
        ))
        .context("cannot push branch `2.6` and tag `release/2.6.4` to `origin`");
        let error = push
            .fix(
                || "release 2.6.4 stopped at step 6 (push); the commit and the tag are made".into(),
                || {
                    "resolve the cause above, then run `cargo xtask release 2.6.4 --push origin`"
                        .into()
                },
            )
            .unwrap_err();
        assert_eq!(
            render_error(&error),
            "error: release 2.6.4 stopped at step 6 (push); the commit and the tag are made\n  \
             caused by: cannot push branch `2.6` and tag `release/2.6.4` to `origin`\n  \
             caused by: command exited with non-zero code `git push`: 1\n\
             fix: resolve the cause above, then run `cargo xtask release 2.6.4 --push origin`\n"
        );
        assert_eq!(exit_code(&error), 2);
        let failed = Err::<(), _>(anyhow::Error::new(BuildsFailed))
            .context("run `x`: 1 of 4 builders did not succeed")
            .unwrap_err();
        assert_eq!(
            render_error(&failed),
            "error: run `x`: 1 of 4 builders did not succeed\n"
        );
        assert_eq!(exit_code(&failed), 1);
    }
}
