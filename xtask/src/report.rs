//! Where a command reports. For people: its lines on stdout. With `--json`: one JSON document
//! on stdout at the end (the run's summary, or the error), and every line for people on stderr,
//! so `cargo xtask publish --json | jq .` sees only the document.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);
static EMITTED: AtomicBool = AtomicBool::new(false);

pub fn set_json(on: bool) {
    JSON.store(on, Ordering::SeqCst);
}

pub fn json() -> bool {
    JSON.load(Ordering::SeqCst)
}

/// A line of the report for people: stdout, or stderr when stdout carries the JSON document.
/// A closed stream is not an error worth dying for: the run's records hold the outcome.
pub fn say(text: impl Display) {
    if json() {
        let _ = writeln!(std::io::stderr(), "{text}");
    } else {
        let _ = writeln!(std::io::stdout(), "{text}");
    }
}

/// The end-of-run document, with `--json`: printed once, on stdout; later ones are dropped
/// (a release's own summary wins over the publish it drives).
pub fn document(value: serde_json::Value) {
    if json() && !EMITTED.swap(true, Ordering::SeqCst) {
        let text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }
}
