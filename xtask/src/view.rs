//! The live view of a build: one line per builder on a terminal, plain lines otherwise, and the
//! summary table at the end.

use crate::core::packer_log::{Event, Outcome, Record, Tracker};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

pub struct View {
    terminal: bool,
    order: Vec<String>,
    started: Instant,
    ended: BTreeMap<String, Duration>,
    drawn: usize,
    last_draw: Option<Instant>,
}

impl View {
    pub fn new(builders: Vec<String>, terminal: bool) -> View {
        View {
            terminal,
            order: builders,
            started: Instant::now(),
            ended: BTreeMap::new(),
            drawn: 0,
            last_draw: None,
        }
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
        let now = self.started.elapsed();
        for event in events {
            if let Event::Finished { builder } | Event::Failed { builder, .. } = event {
                self.ended.entry(builder.clone()).or_insert(now);
            }
        }
        if self.terminal {
            // Redraw at most ten times a second: 32 builders print a lot.
            if self
                .last_draw
                .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
            {
                self.draw(tracker);
            }
            return;
        }
        let stamp = format!("[{:>4}s]", now.as_secs());
        for event in events {
            match event {
                Event::Step { builder, step } => eprintln!("{stamp} {builder}: {step}"),
                Event::Finished { builder } => eprintln!("{stamp} {builder}: finished"),
                Event::Failed { builder, error } => {
                    eprintln!("{stamp} {builder}: FAILED: {}", first_line(error))
                }
                Event::Artifact { .. } => {}
            }
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

    pub fn finish(&mut self, tracker: &Tracker) {
        if self.terminal {
            self.draw(tracker);
        }
    }

    fn clear(&mut self) {
        if self.terminal && self.drawn > 0 {
            eprint!("\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, tracker: &Tracker) {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let width = self.order.iter().map(String::len).max().unwrap_or(0);
        let now = self.started.elapsed();
        for name in &self.order {
            let state = tracker.builders.get(name);
            let elapsed = self.ended.get(name).copied().unwrap_or(now);
            let (mark, text) = match state.map(|s| &s.outcome) {
                Some(Outcome::Succeeded) => ("done", "finished".to_string()),
                Some(Outcome::Failed { error }) => ("FAIL", first_line(error).to_string()),
                Some(Outcome::AlreadyExists { ami, .. }) => {
                    ("FAIL", format!("AMI name already used by {ami}"))
                }
                _ => (
                    "....",
                    state.map_or("waiting".to_string(), |s| s.step.clone()),
                ),
            };
            let line = format!(
                "{mark} {name:<width$} {:>2}:{:02}  {text}",
                elapsed.as_secs() / 60,
                elapsed.as_secs() % 60
            );
            out.push_str("\x1b[2K");
            out.push_str(&line.chars().take(160).collect::<String>());
            out.push('\n');
        }
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(out.as_bytes());
        let _ = stderr.flush();
        self.drawn = self.order.len();
        self.last_draw = Some(Instant::now());
    }
}

pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
