//! The live view of a build. On a terminal: a header line (done / failed / running / waiting /
//! cancelled, elapsed and the time the last complete run of the kind took) and as many builder lines as fit the terminal, redrawn in place; the size
//! is asked of the terminal at every redraw, so a resize is picked up by the next one.
//! Otherwise: one line per builder state change (started, finished, failed, cancelled). A
//! failed builder shows its provisioning's cause first. Packer's full output is in the run
//! folder either way.

use crate::pure::packer_log::{Event, Outcome, Record, Tracker};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// When the command started: the one clock every printed time counts from.
static COMMAND_STARTED: OnceLock<Instant> = OnceLock::new();

/// Starts the command's clock (`main`, first thing).
pub fn start_clock() {
    COMMAND_STARTED.get_or_init(Instant::now);
}

/// Time since the command started: the live view's header, its lines without a terminal and
/// the summary all show this one clock.
pub fn since_start() -> Duration {
    COMMAND_STARTED.get_or_init(Instant::now).elapsed()
}

pub struct View {
    terminal: bool,
    order: Vec<String>,
    /// How long the last complete run of the same kind took: the header shows it.
    expected: Option<Duration>,
    /// When Packer first said something about a builder: the others are still waiting.
    seen: BTreeMap<String, Duration>,
    ended: BTreeMap<String, Duration>,
    /// Lines of the last frame, and the terminal size it was drawn for.
    drawn: usize,
    drawn_size: Option<Size>,
    last_draw: Option<Instant>,
    /// Packer ended after a Ctrl-C: a builder it never reported on was interrupted (as the
    /// record says), not still waiting or running.
    interrupted: bool,
}

/// A terminal size in columns and rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub cols: usize,
    pub rows: usize,
}

/// Where a builder is, in the order the view lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Failed,
    Running,
    Waiting,
    /// Cancelled by Ctrl-C or SIGTERM: not done, whatever Packer printed.
    Cancelled,
    Done,
}

/// One builder as the view shows it.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: Group,
    pub name: String,
    pub elapsed: Duration,
    pub text: String,
}

impl View {
    pub fn new(builders: Vec<String>, terminal: bool) -> View {
        if terminal {
            crate::interrupt::view_shown(true);
        }
        View {
            terminal,
            order: builders,
            expected: None,
            seen: BTreeMap::new(),
            ended: BTreeMap::new(),
            drawn: 0,
            drawn_size: None,
            last_draw: None,
            interrupted: false,
        }
    }

    /// Sets how long this build is expected to take (the header says `[elapsed/~expected]`).
    pub fn expect(&mut self, expected: Duration) {
        self.expected = Some(expected);
    }

    pub fn builders(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// A line Packer printed that is not a record (usage errors, for instance).
    pub fn note(&mut self, line: &str) {
        if !line.trim().is_empty() {
            self.clear();
            eprintln!("packer: {line}");
        }
    }

    pub fn update(&mut self, tracker: &Tracker, events: &[Event], record: &Record) {
        let now = since_start();
        let mut changed = false;
        for event in events {
            match event {
                Event::Step { builder, .. } => {
                    if !self.seen.contains_key(builder) {
                        self.seen.insert(builder.clone(), now);
                        if !self.terminal {
                            eprintln!("{} {builder}: started", stamp(now));
                        }
                    }
                }
                Event::Finished { builder }
                | Event::Failed { builder, .. }
                | Event::Cancelled { builder } => {
                    self.seen.entry(builder.clone()).or_insert(now);
                    if self.ended.insert(builder.clone(), now).is_none() {
                        changed = true;
                        if !self.terminal {
                            eprintln!("{} {builder}: {}", stamp(now), outcome(tracker, builder));
                        }
                    }
                }
                Event::Artifact { .. } => {}
            }
        }
        if self.terminal {
            // Redraw at most ten times a second (32 builders print a lot), and at once when a
            // builder ends, so the counts are never behind.
            if changed
                || self
                    .last_draw
                    .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
            {
                self.draw(tracker);
            }
            return;
        }
        // Packer's pause prompt in `-debug` mode is a plain ui line; show it.
        if events.is_empty()
            && record.kind == "ui"
            && record
                .data
                .get(1)
                .is_some_and(|t| t.contains("Press enter"))
        {
            eprintln!("{}", record.data[1]);
        }
    }

    /// Prints what the interrupt handler said since the last call above the frame, which is
    /// drawn again below it.
    pub fn show_held(&mut self, tracker: &Tracker) {
        let held = crate::interrupt::take_held();
        if held.is_empty() {
            return;
        }
        self.clear();
        for line in held {
            eprintln!("{line}");
        }
        if self.terminal {
            self.draw(tracker);
        }
    }

    /// Packer was quiet for a while: on a terminal, redraw so the clocks move on.
    pub fn tick(&mut self, tracker: &Tracker) {
        if self.terminal && self.drawn > 0 {
            self.draw(tracker);
        }
    }

    pub fn finish(&mut self, tracker: &Tracker) {
        self.interrupted = crate::interrupt::requested();
        if self.terminal {
            self.draw(tracker);
        }
    }

    /// Erases the frame line by line (and the line below it, where the terminal echoes `^C`),
    /// leaving the cursor where it began. Not with "erase to the end of the screen": from the
    /// top left corner, tmux copies the whole screen into its scrollback first.
    fn clear(&mut self) {
        if self.terminal && self.drawn > 0 {
            let n = self.drawn;
            eprint!("\r\x1b[{n}A{}\x1b[2K\x1b[{n}A", "\x1b[2K\n".repeat(n));
            self.drawn = 0;
        }
    }

    fn rows(&self, tracker: &Tracker) -> Vec<Row> {
        let now = since_start();
        self.order
            .iter()
            .map(|name| {
                let state = tracker.builders.get(name);
                let begun = self.seen.get(name).copied().unwrap_or(now);
                let elapsed = self
                    .ended
                    .get(name)
                    .copied()
                    .unwrap_or(now)
                    .saturating_sub(begun);
                let (group, text) = match state.map(|s| &s.outcome) {
                    Some(Outcome::Succeeded) => (Group::Done, "finished".to_string()),
                    Some(Outcome::Cancelled) => (Group::Cancelled, "cancelled".to_string()),
                    Some(Outcome::Failed { error }) => {
                        (Group::Failed, failure(error, tracker.cause(name)))
                    }
                    Some(Outcome::AlreadyExists { ami, .. }) => {
                        (Group::Failed, format!("AMI name already used by {ami}"))
                    }
                    _ if self.interrupted => (Group::Cancelled, "interrupted".to_string()),
                    _ if !self.seen.contains_key(name) => (Group::Waiting, "waiting".to_string()),
                    _ => (
                        Group::Running,
                        state.map_or(String::new(), |s| s.step.clone()),
                    ),
                };
                Row {
                    group,
                    name: name.clone(),
                    elapsed,
                    text,
                }
            })
            .collect()
    }

    fn draw(&mut self, tracker: &Tracker) {
        let size = terminal_size();
        let clock = Clock {
            elapsed: since_start(),
            expected: self.expected,
        };
        let lines = frame(&self.rows(tracker), clock, size);
        // From the start of the line, whatever the terminal echoed there (`^C`).
        let mut out = String::from("\r");
        if self.drawn > 0 {
            if self.drawn_size == Some(size) {
                out.push_str(&format!("\r\x1b[{}A", self.drawn));
            } else {
                // The terminal was resized: it may have rewrapped or scrolled the last frame,
                // so counting lines up is no longer exact. Start again from the top.
                out.push_str("\x1b[H\x1b[2J");
            }
        }
        for line in &lines {
            out.push_str("\x1b[2K");
            out.push_str(line);
            out.push('\n');
        }
        // Whatever a longer earlier frame left below goes.
        out.push_str("\x1b[J");
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(out.as_bytes());
        let _ = stderr.flush();
        self.drawn = lines.len();
        self.drawn_size = Some(size);
        self.last_draw = Some(Instant::now());
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if self.terminal {
            crate::interrupt::view_shown(false);
        }
    }
}

/// The view's header clock: time since the command started, and how long the last complete run
/// of the same kind took (from its command's start until its Packer ended).
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    pub elapsed: Duration,
    pub expected: Option<Duration>,
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.expected {
            // One word, so the header keeps its shape: "1:02/~4:30" is 1:02 of about 4:30.
            Some(expected) => write!(f, "{}/~{}", clock(self.elapsed), clock(expected)),
            None => f.write_str(&clock(self.elapsed)),
        }
    }
}

/// The frame for a terminal of `size`: a header line, then failed, running and waiting
/// builders (finished ones last, when there is room), each line cut to the width; when not all
/// fit, the last line counts the rest. Leaves the terminal's last row for the cursor.
pub fn frame(rows: &[Row], elapsed: Clock, size: Size) -> Vec<String> {
    let width = size.cols.saturating_sub(1).max(10);
    let room = size.rows.saturating_sub(1).max(1);
    let count = |group| rows.iter().filter(|r| r.group == group).count();
    let cancelled = match count(Group::Cancelled) {
        0 => String::new(),
        n => format!(", {n} cancelled"),
    };
    let header = format!(
        "{} done, {} failed, {} running, {} waiting{cancelled}  [{}]",
        count(Group::Done),
        count(Group::Failed),
        count(Group::Running),
        count(Group::Waiting),
        elapsed
    );
    let mut lines = vec![cut(&header, width)];
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| r.group);
    let builder_room = room - 1;
    let shown = if sorted.len() <= builder_room {
        sorted.len()
    } else {
        builder_room.saturating_sub(1)
    };
    let name_width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for row in &sorted[..shown] {
        let mark = match row.group {
            Group::Failed => "FAIL",
            Group::Running => "....",
            Group::Waiting => "    ",
            Group::Cancelled => "stop",
            Group::Done => "done",
        };
        let line = format!(
            "{mark} {:<name_width$} {:>5}  {}",
            row.name,
            clock(row.elapsed),
            row.text
        );
        lines.push(cut(&line, width));
    }
    if shown < sorted.len() && builder_room > 0 {
        let rest = &sorted[shown..];
        let mut parts = Vec::new();
        for (group, word) in [
            (Group::Failed, "failed"),
            (Group::Running, "running"),
            (Group::Waiting, "waiting"),
            (Group::Cancelled, "cancelled"),
            (Group::Done, "done"),
        ] {
            let n = rest.iter().filter(|r| r.group == group).count();
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        let line = format!("     ... {} more: {}", rest.len(), parts.join(", "));
        lines.push(cut(&line, width));
    }
    lines
}

/// At most `width` characters, with control characters (tabs, escapes) made spaces so a line
/// never moves the cursor.
fn cut(text: &str, width: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(width)
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn clock(elapsed: Duration) -> String {
    crate::pure::time::clock(elapsed.as_secs())
}

/// A line's time stamp without a terminal: the header's clock, `[M:SS]`.
fn stamp(elapsed: Duration) -> String {
    format!("[{:>5}]", clock(elapsed))
}

/// How a builder ended, for the one-line-per-change form.
fn outcome(tracker: &Tracker, builder: &str) -> String {
    let Some(state) = tracker.builders.get(builder) else {
        return "ended".into();
    };
    match &state.outcome {
        // Packer reports the AMIs after every build ended: the summary lists them.
        Outcome::Succeeded => "finished".into(),
        Outcome::Failed { error } => format!("FAILED: {}", failure(error, tracker.cause(builder))),
        Outcome::AlreadyExists { ami, .. } => format!("FAILED: AMI name already used by {ami}"),
        Outcome::Cancelled => "cancelled".into(),
        Outcome::Running => "ended".into(),
    }
}

/// A failure as one line: the cause its output named first (Packer's own error rarely says
/// it: "Script exited with non-zero exit status: 100"), then Packer's error.
pub fn failure(error: &str, cause: Option<&str>) -> String {
    let error = first_line(error);
    match cause {
        Some(cause) if !error.contains(cause) => format!("{cause}  [{error}]"),
        _ => error.to_string(),
    }
}

/// The size of the terminal on stderr (where the view is drawn); `COLUMNS`/`LINES`, then 80x24,
/// when it cannot be asked.
pub fn terminal_size() -> Size {
    // SAFETY: TIOCGWINSZ fills a `winsize` and touches nothing else; a zeroed `winsize` is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let asked = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if asked && ws.ws_col > 0 && ws.ws_row > 0 {
        return Size {
            cols: ws.ws_col.into(),
            rows: ws.ws_row.into(),
        };
    }
    let env = |name: &str, default| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(default)
    };
    Size {
        cols: env("COLUMNS", 80),
        rows: env("LINES", 24),
    }
}

pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(groups: &[(Group, usize)]) -> Vec<Row> {
        let mut rows = Vec::new();
        for &(group, n) in groups {
            for i in 0..n {
                rows.push(Row {
                    group,
                    name: format!("ap-southeast-{i}-1404-hvm"),
                    elapsed: Duration::from_secs(75),
                    text: "Waiting for SSH to become available... and a very long step text that goes on and on".into(),
                });
            }
        }
        rows
    }

    #[test]
    fn a_frame_fits_80x24_and_lists_failed_and_running_first() {
        let rows = rows(&[
            (Group::Done, 10),
            (Group::Running, 18),
            (Group::Failed, 2),
            (Group::Waiting, 2),
        ]);
        let size = Size { cols: 80, rows: 24 };
        let lines = frame(
            &rows,
            Clock {
                elapsed: Duration::from_secs(62),
                expected: Some(Duration::from_secs(270)),
            },
            size,
        );
        assert_eq!(lines.len(), 23, "{lines:#?}");
        assert!(lines.iter().all(|l| l.chars().count() < 80), "{lines:#?}");
        assert_eq!(
            lines[0],
            "10 done, 2 failed, 18 running, 2 waiting  [1:02/~4:30]"
        );
        assert!(lines[1].starts_with("FAIL ") && lines[2].starts_with("FAIL "));
        assert!(
            lines[3..21].iter().all(|l| l.starts_with("....")),
            "{lines:#?}"
        );
        assert_eq!(lines[22], "     ... 11 more: 1 waiting, 10 done");
    }

    /// One clock: the lines without a terminal stamp the time as the header shows it.
    #[test]
    fn lines_without_a_terminal_and_the_header_show_one_clock() {
        let elapsed = Duration::from_secs(62);
        assert_eq!(stamp(elapsed), "[ 1:02]");
        let size = Size { cols: 80, rows: 24 };
        let clock = Clock {
            elapsed,
            expected: None,
        };
        let header = frame(&rows(&[(Group::Done, 1)]), clock, size).remove(0);
        assert!(header.ends_with("[1:02]"), "{header}");
    }

    #[test]
    fn small_and_roomy_terminals() {
        let rows = rows(&[(Group::Done, 3), (Group::Running, 2)]);
        let roomy = frame(
            &rows,
            Clock::default(),
            Size {
                cols: 200,
                rows: 50,
            },
        );
        assert_eq!(roomy.len(), 6);
        assert!(
            roomy[5].starts_with("done"),
            "finished ones last: {roomy:#?}"
        );
        let tiny = frame(&rows, Clock::default(), Size { cols: 20, rows: 4 });
        assert_eq!(tiny.len(), 3, "{tiny:#?}");
        assert!(tiny.iter().all(|l| l.chars().count() < 20), "{tiny:#?}");
        assert!(tiny[2].starts_with("     ... 4 more"), "{tiny:#?}");
        assert_eq!(
            frame(&rows, Clock::default(), Size { cols: 80, rows: 1 }).len(),
            1
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(cut("a\tb\x1b[2Jc", 80), "a b [2Jc");
    }

    #[test]
    fn a_failed_line_shows_the_cause_before_packers_error() {
        let error = "Script exited with non-zero exit status: 100.Allowed exit codes are: [0]";
        let cause = "E: Unable to locate package openjdk-7-jdk";
        assert_eq!(failure(error, Some(cause)), format!("{cause}  [{error}]"));
        assert_eq!(failure(error, None), error);
        // A cause that is the error itself is not said twice.
        assert_eq!(
            failure(
                "Error launching source instance: x",
                Some("Error launching source instance: x")
            ),
            "Error launching source instance: x"
        );
        let mut tracker = Tracker::default();
        for line in [
            "1,,ui,say,==> us-east-1-1404-hvm: Provisioning with shell script: build/provision.sh",
            &format!("1,,ui,error,==> us-east-1-1404-hvm: {cause}"),
            &format!("1,,ui,error,Build 'us-east-1-1404-hvm' errored after 1 second: {error}"),
        ] {
            tracker
                .feed(&crate::pure::packer_log::parse_line(line).unwrap())
                .unwrap();
        }
        let mut view = View::new(vec!["us-east-1-1404-hvm".into()], true);
        view.seen
            .insert("us-east-1-1404-hvm".into(), Duration::ZERO);
        let rows = view.rows(&tracker);
        assert_eq!(rows[0].group, Group::Failed);
        assert!(rows[0].text.starts_with(cause), "{rows:?}");
        assert!(outcome(&tracker, "us-east-1-1404-hvm").starts_with(&format!("FAILED: {cause}")));
    }

    #[test]
    fn cancelled_builders_are_neither_done_nor_hidden() {
        let mut tracker = Tracker::default();
        for line in [
            "1,,ui,say,==> b-1404-hvm: Waiting for SSH to become available...",
            "1,,ui,error,Cancelling build after receiving interrupt",
            "1,,ui,say,Build 'b-1404-hvm' finished after 3 seconds.",
        ] {
            tracker
                .feed(&crate::pure::packer_log::parse_line(line).unwrap())
                .unwrap();
        }
        let mut view = View::new(vec!["b-1404-hvm".into()], true);
        view.seen.insert("b-1404-hvm".into(), Duration::ZERO);
        let rows = view.rows(&tracker);
        assert_eq!(rows[0].group, Group::Cancelled);
        let lines = frame(&rows, Clock::default(), Size { cols: 80, rows: 24 });
        assert_eq!(
            lines[0],
            "0 done, 0 failed, 0 running, 0 waiting, 1 cancelled  [0:00]"
        );
        assert!(lines[1].starts_with("stop b-1404-hvm"), "{lines:?}");
        assert_eq!(outcome(&tracker, "b-1404-hvm"), "cancelled");
    }

    /// After a Ctrl-C that came before Packer said anything of a builder, the last frame shows it
    /// interrupted, as the record does, not waiting.
    #[test]
    fn builders_packer_never_reported_on_are_interrupted_at_the_end() {
        let tracker = Tracker::default();
        let mut view = View::new(vec!["a-1404-hvm".into(), "b-1404-hvm".into()], false);
        view.seen.insert("b-1404-hvm".into(), Duration::ZERO);
        let groups = |view: &View| -> Vec<(Group, String)> {
            view.rows(&tracker)
                .into_iter()
                .map(|r| (r.group, r.text))
                .collect()
        };
        assert_eq!(
            groups(&view),
            [
                (Group::Waiting, "waiting".into()),
                (Group::Running, String::new())
            ]
        );
        view.interrupted = true;
        assert_eq!(
            groups(&view),
            [
                (Group::Cancelled, "interrupted".into()),
                (Group::Cancelled, "interrupted".into())
            ]
        );
    }
}
