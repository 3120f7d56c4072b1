//! Ctrl-C and SIGTERM during long work: remember it, pass it on to Packer's process group once
//! (as a terminal would, so Packer cancels its builds and deletes what it launched), explain a
//! second one, and let the command stop at its next checkpoint with exit status 130.
//!
//! Packer runs in its own process group, so a Ctrl-C pressed while it cleans up cannot reach it
//! a second time and make it abandon its instances. Short helpers (ssh-keygen, the stand-in's
//! key import, `packer validate`) run in their own groups too, so a Ctrl-C never shows their
//! tracebacks or false failures: the command checks [`requested`] after them.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// The process group of the running `packer build`, 0 when none runs.
static PACKER_GROUP: AtomicI32 = AtomicI32::new(0);
/// What the interrupt handler and the error report must know of the running command: whether
/// it has changed anything yet, and what resumes it. The command owns it (`cmd::Context`) and
/// hands it to [`install`]; the signal's own state (requested, count, Packer's group) is
/// process-wide by nature and stays in statics.
#[derive(Debug, Default)]
pub struct Progress {
    /// Set once the command has changed something (a run folder, a file, a ref, a launch):
    /// from then on a failure is "some steps failed" (1), never "refused before anything
    /// started" (2).
    started: AtomicBool,
    /// What the user runs to continue after an interrupt, taken from the run's record.
    resume: Mutex<Option<String>>,
    /// The command's name, for the `--json` document of an interrupt before anything started.
    command: &'static str,
}

impl Progress {
    pub fn of(command: &'static str) -> Progress {
        Progress {
            command,
            ..Progress::default()
        }
    }

    pub fn mark_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Sets the command that resumes the work, shown when an interrupt stops it.
    pub fn set_resume(&self, command: impl Into<String>) {
        *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(command.into());
    }

    pub fn resume_command(&self) -> Option<String> {
        self.resume
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What stops the children a command started, for an exit before anything started (their
/// owners' `Drop` does not run then). Set by whoever records children (the repository lock).
static STOP_CHILDREN: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Names the function that stops this command's children when Ctrl-C ends it early.
pub fn on_early_exit(stop_children: fn()) {
    let _ = STOP_CHILDREN.set(stop_children);
}

/// Installs the handler (SIGINT, SIGTERM, SIGHUP); every command that may start work calls it.
pub fn install(progress: Arc<Progress>) {
    let _ = ctrlc::set_handler(move || {
        REQUESTED.store(true, Ordering::SeqCst);
        let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        let group = PACKER_GROUP.load(Ordering::SeqCst);
        if !progress.started() {
            // Nothing to record yet (checks, a plan, a prompt, a wait for the lock): stop now
            // rather than at the end of a prompt, with the stand-in it may have started.
            if let Some(stop_children) = STOP_CHILDREN.get() {
                stop_children();
            }
            let message = "stopped before anything started; nothing was changed";
            say(&format!(
                "\ninterrupted: {message}: run the same command to start again"
            ));
            crate::output::document(serde_json::json!({
                "command": progress.command,
                "ok": false,
                "exit_code": 130,
                "error": message,
                "causes": [],
                "fixes": ["run the same command again"],
            }));
            std::process::exit(130);
        }
        if count == 1 {
            if group != 0 {
                tell("stopping: Packer cancels its builds and deletes the instances it launched (this can take a minute)...");
                signal_group(group, libc::SIGINT);
            } else {
                tell("stopping at the next safe point...");
            }
        } else if group != 0 {
            tell("still stopping: Packer is deleting what it launched; waiting for it, so nothing is left running (or costing money); killing it now would leave instances behind");
        } else {
            tell("still stopping: finishing the current step, so nothing is left half-done...");
        }
    });
}

/// Set while a live view redraws the terminal's last lines in place: a line printed under it
/// would shift the frame and leave its top lines behind, so the handler's lines wait in
/// [`HELD`] for the view to print them ([`take_held`]).
static VIEW_SHOWN: AtomicBool = AtomicBool::new(false);
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Says that a live view owns the terminal's last lines (`true`) or no longer does; then the
/// lines it did not print yet are printed.
pub fn view_shown(shown: bool) {
    // Under the lock `tell` takes, so a line is either held before this or printed after.
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    VIEW_SHOWN.store(shown, Ordering::SeqCst);
    if !shown {
        for line in std::mem::take(&mut *held) {
            say(&line);
        }
    }
}

/// The handler's lines a live view has not printed yet.
pub fn take_held() -> Vec<String> {
    std::mem::take(&mut *HELD.lock().unwrap_or_else(|e| e.into_inner()))
}

/// What the handler says once work started: on its own line (after the terminal's `^C`), or
/// held for the live view.
fn tell(text: &str) {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if VIEW_SHOWN.load(Ordering::SeqCst) {
        held.push(text.to_string());
    } else {
        say(&format!("\n{text}"));
    }
}

/// A line on stderr that never panics (stderr may be closed).
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// `kill(-group, signal)`; a group that is gone is not an error.
pub fn signal_group(group: i32, signal: i32) {
    if group > 0 {
        // SAFETY: kill(2) has no memory effects; a negative pid names a process group.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// Registers (or, with 0, clears) Packer's process group, to receive the interrupt.
pub fn set_packer_group(group: i32) {
    PACKER_GROUP.store(group, Ordering::SeqCst);
    // Ctrl-C pressed between the spawn and this call must still reach Packer.
    if group != 0 && requested() {
        signal_group(group, libc::SIGINT);
    }
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Marks an error as "stopped by Ctrl-C or SIGTERM" (exit 130). The report says it in one line,
/// with how to go on ([`Interrupted::explain`]).
#[derive(Debug)]
pub enum Interrupted {
    /// Stopped at a checkpoint, before `next`.
    Before(String),
    /// Stopped, as the command itself explains (a build names its finished builders).
    Said(String),
}

impl Interrupted {
    /// The line the user reads: where it stopped and, once something started, how to resume.
    pub fn explain(&self, progress: &Progress) -> String {
        let next = match self {
            Interrupted::Said(message) => return message.clone(),
            Interrupted::Before(next) => next,
        };
        format!("stopped before {next}; {}", how_to_go_on(progress))
    }
}

/// How to go on after an interrupt: the resume command once the run is recorded.
pub fn how_to_go_on(progress: &Progress) -> String {
    match progress.resume_command() {
        Some(resume) => format!("what finished is recorded: run `{resume}` to resume"),
        None if progress.started() => "nothing is left half-done".to_string(),
        None => "nothing was started".to_string(),
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupted::Before(next) => write!(f, "stopped before {next}"),
            Interrupted::Said(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Interrupted {}

/// Fails with [`Interrupted`] when Ctrl-C was pressed, so the caller unwinds (stand-ins are
/// stopped by their `Drop`) before doing `next`.
pub fn check(next: &str) -> anyhow::Result<()> {
    pause_before(next);
    if requested() {
        return Err(interrupted(next));
    }
    Ok(())
}

/// Names the variable that pauses a command before a step, so a step that takes milliseconds
/// (a commit, a tag, a merge) can be interrupted by a test or a rehearsal of Ctrl-C.
pub const PAUSE_BEFORE: &str = "XTASK_PAUSE_BEFORE";

/// With `XTASK_PAUSE_BEFORE=WORDS` set and `next` containing WORDS: says so and waits (at most a
/// minute) for Ctrl-C or SIGTERM before `next`.
pub fn pause_before(next: &str) {
    let Ok(words) = std::env::var(PAUSE_BEFORE) else {
        return;
    };
    if words.is_empty() || !next.contains(&words) || requested() {
        return;
    }
    say(&format!(
        "paused before {next} (`{PAUSE_BEFORE}`): Ctrl-C interrupts here"
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !requested() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The interrupt error for a command stopped before `next`.
pub fn interrupted(next: &str) -> anyhow::Error {
    anyhow::Error::new(Interrupted::Before(next.to_string()))
}

/// Runs a short helper in its own process group with its output captured: a Ctrl-C meant for
/// this command neither kills it half-way nor prints its traceback (the caller checks for the
/// interrupt afterwards).
pub fn run_detached(command: xshell::Cmd) -> anyhow::Result<std::process::Output> {
    use anyhow::Context;
    let command = std::process::Command::from(command);
    let shown = format!("`{}`", command.get_program().to_string_lossy());
    let output = output_detached(command).with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(3).collect();
        anyhow::bail!(
            "{shown} failed ({}): {}",
            output.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(output)
}

/// Runs `command` in its own process group, its output captured and its status not judged.
pub fn output_detached(
    command: impl Into<std::process::Command>,
) -> std::io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    command
        .into()
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .output()
}
