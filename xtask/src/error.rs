//! The errors every command shares: what failed, its causes, the fix, and the exit code they
//! mean. `main` renders them; commands and edges raise them.

use crate::interrupt::{self, Progress};
use crate::{lock, output};
use anyhow::Result;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use std::process::ExitCode;

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
    cause: Option<anyhow::Error>,
}

impl std::fmt::Display for Fixable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Fixable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|cause| cause.as_ref() as _)
    }
}

/// An error with nothing beneath it: `what` failed, `fix` is what to do.
pub fn refused(what: impl Into<String>, fix: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fixable {
        what: what.into(),
        fix: fix.into(),
        cause: None,
    })
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
                cause: Some(cause.into()),
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
        // The core's refusals carry their fix too.
        if let Some(refused) = cause.downcast_ref::<crate::pure::refusal::Refusal>() {
            fixes.push(refused.fix.clone());
        }
        if let Some(fix) = cause
            .downcast_ref::<crate::pure::template::TemplateError>()
            .and_then(|e| e.fix())
        {
            fixes.push(fix);
        }
        // A version any command was given: the same rule, the same fix.
        if cause.is::<crate::pure::version::NotSemver>() {
            fixes.push(crate::pure::version::NotSemver::FIX.to_string());
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

/// Whether the error already says what fixes it (a wrapper then adds no second fix).
pub fn has_fix(error: &anyhow::Error) -> bool {
    !parts(error).fixes.is_empty()
}

/// The JSON document of a command that failed (`--json`), every message masked.
pub fn error_document(
    command: &str,
    error: &anyhow::Error,
    exit_code: u8,
    progress: &Progress,
    masker: &crate::pure::mask::Masker,
) -> serde_json::Value {
    let mut parts = parts(error);
    if let Some(text) = interrupted_text(error, progress) {
        parts = Parts {
            what: text,
            causes: Vec::new(),
            fixes: vec![progress.resume_command().map_or_else(
                || "run the same command again".to_string(),
                |resume| format!("run `{resume}` to resume"),
            )],
        };
    }
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

/// The interrupt an error chain carries, if any.
fn interruption(error: &anyhow::Error) -> Option<&interrupt::Interrupted> {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<interrupt::Interrupted>())
}

/// What an interrupted command says, on the terminal and in its `--json` document alike: where
/// it stopped and how to go on. A step that failed because of the interrupt (a helper that got
/// the Ctrl-C) counts as interrupted too.
fn interrupted_text(error: &anyhow::Error, progress: &Progress) -> Option<String> {
    if let Some(interrupted) = interruption(error) {
        return Some(interrupted.explain(progress));
    }
    if !interrupt::requested() {
        return None;
    }
    let what = error.to_string();
    let what = what.lines().next().unwrap_or("");
    Some(format!(
        "stopped, cutting a step short ({what}); {}",
        interrupt::how_to_go_on(progress)
    ))
}

/// An error as the user reads it: what failed on the first line, each cause on its own
/// indented line, the fix (if any) last.
pub fn render_error(error: &anyhow::Error, progress: &Progress) -> String {
    // An interrupt is one line: where it stopped, and how to go on.
    if let Some(text) = interrupted_text(error, progress) {
        return format!("interrupted: {text}\n");
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

/// 0 done; 1 some builders or steps failed, the rest done; 2 refused before anything started;
/// 130 interrupted.
pub fn exit_code(error: &anyhow::Error, progress: &Progress) -> u8 {
    let any = |test: fn(&(dyn std::error::Error + 'static)) -> bool| error.chain().any(test);
    if any(|e| e.is::<interrupt::Interrupted>()) || interrupt::requested() {
        130
    } else if any(|e| e.is::<BuildsFailed>() || e.is::<PartlyFailed>()) {
        1
    } else if any(|e| e.is::<lock::Locked>()) || !progress.started() {
        2
    } else {
        1
    }
}

/// The end of a command: its `--json` document, and its error printed, masked; the exit code.
pub fn report(
    name: &str,
    result: Result<ExitCode>,
    progress: &Progress,
    masker: &crate::pure::mask::Masker,
) -> ExitCode {
    match result {
        Ok(code) => {
            output::document(serde_json::json!({"command": name, "ok": true}));
            match output::stdout_failure() {
                None => code,
                Some(failure) => {
                    eprintln!("error: cannot write the output: {}", masker.mask(&failure));
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            let code = exit_code(&e, progress);
            eprint!("{}", masker.mask(&render_error(&e, progress)));
            output::document(error_document(name, &e, code, progress, masker));
            ExitCode::from(code)
        }
    }
}

/// A command line clap refused (or `--help`): clap's message, then the fix, and with `--json`
/// the error document on stdout, like every other failure.
pub fn usage(error: clap::Error) -> ExitCode {
    if !error.use_stderr() {
        // `--help` and `--version` are answers, not errors.
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let text = error.render().to_string();
    let fix = usage_fix(&error);
    eprint!("{}", text.trim_end());
    eprintln!("\nfix: {fix}");
    if std::env::args().any(|a| a == "--json") {
        let what = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        let document = serde_json::json!({
            "command": std::env::args().nth(1).unwrap_or_default(),
            "ok": false,
            "exit_code": 2,
            "error": what,
            "causes": [],
            "fixes": [fix],
        });
        output::set_json(true);
        output::document(document);
    }
    ExitCode::from(2)
}

/// What to type instead: clap's suggestion when it has one, else the command's help.
fn usage_fix(error: &clap::Error) -> String {
    let suggested = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.first().cloned(),
        _ => None,
    };
    let command = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if let Some(sub) = suggested(ContextKind::SuggestedSubcommand) {
        return format!("did you mean `cargo xtask {sub}`? `cargo xtask help` lists every command");
    }
    let help = match &command {
        Some(c) if error.kind() != ErrorKind::InvalidSubcommand => format!("cargo xtask help {c}"),
        _ => "cargo xtask help".to_string(),
    };
    let invalid =
        suggested(ContextKind::InvalidArg).filter(|_| error.kind() == ErrorKind::ValueValidation);
    match (suggested(ContextKind::SuggestedArg), invalid) {
        (Some(arg), _) => format!("did you mean `{arg}`? `{help}` shows every option"),
        // A value this project's parser refused: its message says which values are taken.
        (None, Some(arg)) => {
            format!("give `{arg}` a value the message above allows; `{help}` shows every option")
        }
        (None, None) => format!("see `{help}` for the options and an example"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn errors_read_what_then_causes_then_the_fix() {
        let none = Progress::default();
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
            render_error(&error, &none),
            "error: release 2.6.4 stopped at step 6 (push); the commit and the tag are made\n  \
             caused by: cannot push branch `2.6` and tag `release/2.6.4` to `origin`\n  \
             caused by: command exited with non-zero code `git push`: 1\n\
             fix: resolve the cause above, then run `cargo xtask release 2.6.4 --push origin`\n"
        );
        assert_eq!(exit_code(&error, &none), 2);
        let failed = Err::<(), _>(anyhow::Error::new(BuildsFailed))
            .context("run `x`: 1 of 4 builders did not succeed")
            .unwrap_err();
        assert_eq!(
            render_error(&failed, &none),
            "error: run `x`: 1 of 4 builders did not succeed\n"
        );
        assert_eq!(exit_code(&failed, &none), 1);
    }

    #[test]
    fn an_interrupt_says_how_to_go_on_from_what_the_command_recorded() {
        let progress = Progress::default();
        let stopped = || interrupt::interrupted("the tag (step 5)").context("step 5");
        let read = |progress: &Progress| {
            (
                render_error(&stopped(), progress),
                exit_code(&stopped(), progress),
            )
        };
        assert_eq!(
            read(&progress),
            (
                "interrupted: stopped before the tag (step 5); nothing was started\n".into(),
                130
            )
        );
        progress.mark_started();
        assert_eq!(
            read(&progress).0,
            "interrupted: stopped before the tag (step 5); nothing is left half-done\n"
        );
        progress.set_resume("cargo xtask release 2.6.4");
        assert_eq!(
            read(&progress).0,
            "interrupted: stopped before the tag (step 5); what finished is recorded: \
             run `cargo xtask release 2.6.4` to resume\n"
        );
        // The `--json` document says the same.
        let document = error_document(
            "release",
            &stopped(),
            130,
            &progress,
            &crate::pure::mask::Masker::new([]),
        );
        assert_eq!(
            document["error"],
            "stopped before the tag (step 5); what finished is recorded: run `cargo xtask release 2.6.4` to resume"
        );
        assert_eq!(document["causes"], serde_json::json!([]));
        assert_eq!(
            document["fixes"],
            serde_json::json!(["run `cargo xtask release 2.6.4` to resume"])
        );
        // Once started, a plain failure is "some steps failed", not "refused".
        let failed = anyhow::anyhow!("cannot write `ami_ids.json`");
        assert_eq!(exit_code(&failed, &Progress::default()), 2);
        assert_eq!(exit_code(&failed, &progress), 1);
    }
}
