//! Printing that survives a closed stdout or stderr.
//!
//! `println!` panics (exit 101) when its pipe is closed, as in `cargo xtask config | head -1`.
//! `main.rs` shadows `println!`, `print!`, `eprintln!` and `eprint!` crate-wide with these
//! functions: a closed pipe means nobody reads any more, so its writes are dropped and the
//! command goes on to its own exit code. Any other failure to write stdout (a full disk) is kept
//! and turned into an error at the end, since the output is then incomplete.

use std::fmt::{Arguments, Display};
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The first failure to write stdout that was not a closed pipe.
static STDOUT_FAILURE: Mutex<Option<String>> = Mutex::new(None);

pub fn stdout(args: Arguments, newline: bool) {
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = result {
        if e.kind() != ErrorKind::BrokenPipe {
            let mut failure = STDOUT_FAILURE.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| e.to_string());
        }
    }
}

pub fn stderr(args: Arguments, newline: bool) {
    let mut err = std::io::stderr().lock();
    // Nowhere is left to report a failure to write stderr.
    let _ = err.write_fmt(args).and_then(|()| {
        if newline {
            err.write_all(b"\n")
        } else {
            Ok(())
        }
    });
}

/// Flushes stdout; the first failure to write it, other than a closed pipe.
pub fn stdout_failure() -> Option<String> {
    if let Err(e) = std::io::stdout().lock().flush() {
        if e.kind() != ErrorKind::BrokenPipe {
            return Some(e.to_string());
        }
    }
    STDOUT_FAILURE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

// `--json`: a command's report for people goes to stderr, and stdout carries one JSON document
// at the end (the run's summary, or the error), so `cargo xtask publish --json | jq .` sees only
// the document.

static JSON: AtomicBool = AtomicBool::new(false);
static EMITTED: AtomicBool = AtomicBool::new(false);

pub fn set_json(on: bool) {
    JSON.store(on, Ordering::SeqCst);
}

pub fn json() -> bool {
    JSON.load(Ordering::SeqCst)
}

/// A line of the report for people: stdout, or stderr when stdout carries the JSON document.
pub fn say(text: impl Display) {
    if json() {
        stderr(format_args!("{text}"), true);
    } else {
        stdout(format_args!("{text}"), true);
    }
}

/// The end-of-run document, with `--json`: printed once, on stdout; later ones are dropped
/// (a release's own summary wins over the publish it drives).
pub fn document(value: serde_json::Value) {
    if json() && !EMITTED.swap(true, Ordering::SeqCst) {
        let text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
        stdout(format_args!("{text}"), true);
    }
}
