//! Packer's machine-readable output (`TIMESTAMP,TARGET,TYPE,DATA...`), one line at a time.
//!
//! [`Tracker`] folds records into per-builder state (current step, result, AMIs), so callers can
//! stream a log of any size through it. Pure: the caller reads the lines.

use std::collections::BTreeMap;

/// One machine-readable record, with Packer's escapes undone in `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub target: String,
    pub kind: String,
    pub data: Vec<String>,
}

/// Undoes Packer's escaping of commas and line breaks inside data fields.
pub fn unescape(field: &str) -> String {
    field
        .replace("%!(PACKER_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
}

/// Parses one line; `None` when the line is not a machine-readable record.
pub fn parse_line(line: &str) -> Option<Record> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = line.split(',');
    let timestamp = fields.next()?;
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let target = fields.next()?.to_string();
    let kind = fields.next()?.to_string();
    if kind.is_empty() {
        return None;
    }
    Some(Record {
        target,
        kind,
        data: fields.map(unescape).collect(),
    })
}

/// An AMI that a builder produced, with what the registry needs to file it. Run records keep
/// them too (records written before they named the builder read as `""`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Ami {
    #[serde(default)]
    pub builder: String,
    pub region: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Succeeded,
    Failed {
        error: String,
    },
    /// Packer refused because an image with this AMI name exists (an earlier attempt made it).
    AlreadyExists {
        ami: String,
        error: String,
    },
    /// Stopped by Ctrl-C or SIGTERM: Packer 1.6.6 says "Build '...' finished" of a cancelled
    /// build too (its builder returns no artifact and no error), so a build that ends after
    /// Packer's "Cancelling build after receiving ..." is this, unless all its steps had run
    /// before that notice.
    Cancelled,
}

/// What Packer's log has said of one builder so far (the run record keeps its outcome as a
/// [`crate::pure::run::BuilderState`]).
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: String,
    pub outcome: Outcome,
    pub amis: Vec<Ami>,
    /// Set when this builder's step changed with the last record fed.
    pub last_error_line: Option<String>,
    /// The last meaningful error line of its provisioning output (see [`error_weight`]), with
    /// its weight: what a failure's "Script exited with non-zero exit status" does not say.
    pub cause: Option<(u8, String)>,
    /// The AMI its build step announced (`AMI: ami-...`) and did not deregister: Packer prints
    /// no artifacts after an interrupt, so this is how an image made before one is known.
    pub announced_ami: Option<String>,
    /// Its clean-up began before Packer's cancel notice: every step had run (a failed step
    /// ends in an error instead), so its announced AMI is complete, tags and all.
    pub steps_done_before_cancel: bool,
}

/// What one record changed, for a live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Step { builder: String, step: String },
    Finished { builder: String },
    Failed { builder: String, error: String },
    Cancelled { builder: String },
    Artifact { builder: String, ami: Ami },
}

/// Per-builder state built from a stream of records.
#[derive(Debug, Default)]
pub struct Tracker {
    pub builders: BTreeMap<String, Progress>,
    /// Packer said it is cancelling the builds (it received SIGINT or SIGTERM).
    pub cancelling: bool,
}

impl Tracker {
    fn state(&mut self, builder: &str) -> &mut Progress {
        self.builders
            .entry(builder.to_string())
            .or_insert_with(|| Progress {
                step: "starting".to_string(),
                outcome: Outcome::Running,
                amis: Vec::new(),
                last_error_line: None,
                cause: None,
                announced_ami: None,
                steps_done_before_cancel: false,
            })
    }

    /// Registers the builders a run is expected to have, so ones Packer never mentions still
    /// show up (as not finished).
    pub fn expect(&mut self, builder: &str) {
        self.state(builder);
    }

    /// Feeds one record. Artifact ids that are not `REGION:ami-...` pairs are an error.
    pub fn feed(&mut self, record: &Record) -> Result<Vec<Event>, BadArtifact> {
        let mut events = Vec::new();
        match (record.target.as_str(), record.kind.as_str()) {
            ("", "ui") => {
                if let (Some(level), Some(text)) = (record.data.first(), record.data.get(1)) {
                    self.ui(level, text, &mut events);
                }
            }
            (builder, "error") if !builder.is_empty() => {
                let error = record.data.join(",");
                self.fail(builder, &error, &mut events);
            }
            (builder, "artifact")
                if !builder.is_empty() && record.data.get(1).map(String::as_str) == Some("id") =>
            {
                let id = record.data[2..].join(",");
                for pair in id.split(',').filter(|p| !p.is_empty()) {
                    let ami = parse_pair(builder, pair)?;
                    let state = self.state(builder);
                    if !state.amis.contains(&ami) {
                        state.amis.push(ami.clone());
                        events.push(Event::Artifact {
                            builder: builder.to_string(),
                            ami,
                        });
                    }
                }
            }
            _ => {}
        }
        Ok(events)
    }

    /// A `ui` record: a builder's step (`==> B: ...`), its provisioning output (`    B: ...`),
    /// Packer's cancel notice, or a `Build 'B' ...` verdict.
    fn ui(&mut self, level: &str, text: &str, events: &mut Vec<Event>) {
        if let Some(rest) = text.strip_prefix("==> ") {
            let Some((builder, step)) = rest.split_once(": ") else {
                return;
            };
            if builder.contains(' ') {
                return;
            }
            let step = step.lines().next().unwrap_or("").trim().to_string();
            let cancelling = self.cancelling;
            let state = self.state(builder);
            state.step = step.clone();
            // The first clean-up of both amazon builders, run once the steps have ended.
            if !cancelling && step.starts_with("Terminating the source AWS instance") {
                state.steps_done_before_cancel = true;
            }
            if level == "error" {
                state.last_error_line = Some(step.clone());
            }
            self.output(builder, level, &step);
            events.push(Event::Step {
                builder: builder.to_string(),
                step,
            });
        } else if let Some(rest) = text.strip_prefix("    ") {
            if let Some((builder, line)) = rest.split_once(": ") {
                let line = line.lines().next().unwrap_or("").trim().to_string();
                // An announced AMI counts even when the lines before it were skipped.
                let known = self.builders.contains_key(builder) || line.starts_with("AMI: ");
                if !builder.contains(' ') && known {
                    self.output(builder, level, &line);
                }
            }
        } else if level == "error" && text.starts_with("Cancelling build after receiving ") {
            self.cancel(events);
        } else if let Some(rest) = text.strip_prefix("Build '") {
            if let Some((builder, tail)) = rest.split_once('\'') {
                if tail.starts_with(" finished") {
                    self.finish(builder, events);
                } else if let Some((_, error)) = tail.split_once(": ") {
                    self.fail(builder, error, events);
                }
            }
        }
    }

    /// One line a builder printed: the AMI it announced or deregistered, and its error cause.
    fn output(&mut self, builder: &str, level: &str, line: &str) {
        let state = self.state(builder);
        if let Some(id) = line.strip_prefix("AMI: ") {
            if crate::pure::matrix::is_ami_id(id.trim()) {
                state.announced_ami = Some(id.trim().to_string());
            }
        } else if let Some(id) = line.strip_prefix("Deregistered AMI id: ") {
            if state.announced_ami.as_deref() == Some(id.trim()) {
                state.announced_ami = None;
            }
        }
        if let Some(weight) = error_weight(level, line) {
            if state.cause.as_ref().is_none_or(|(w, _)| weight >= *w) {
                state.cause = Some((weight, line.to_string()));
            }
        }
    }

    /// Packer is cancelling every build, and prints no artifacts after an interrupt: the
    /// builders that already finished keep the AMI they announced.
    fn cancel(&mut self, events: &mut Vec<Event>) {
        self.cancelling = true;
        let names: Vec<String> = self.builders.keys().cloned().collect();
        for name in names {
            if self.builders[&name].outcome == Outcome::Succeeded {
                self.adopt_announced(&name, events);
            }
        }
    }

    /// The announced AMI as the builder's artifact, in its own region, when it has none and
    /// all its steps ran; whether it has an AMI now.
    fn adopt_announced(&mut self, builder: &str, events: &mut Vec<Event>) -> bool {
        let Some(region) = builder_region(builder) else {
            return false;
        };
        let state = self.state(builder);
        if !state.steps_done_before_cancel {
            return !state.amis.is_empty();
        }
        let Some(id) = state
            .announced_ami
            .clone()
            .filter(|_| state.amis.is_empty())
        else {
            return !state.amis.is_empty();
        };
        let ami = Ami {
            builder: builder.to_string(),
            region: region.to_string(),
            id,
        };
        state.amis.push(ami.clone());
        events.push(Event::Artifact {
            builder: builder.to_string(),
            ami,
        });
        true
    }

    fn finish(&mut self, builder: &str, events: &mut Vec<Event>) {
        if self.state(builder).outcome != Outcome::Running {
            return;
        }
        let builder_name = builder.to_string();
        if self.cancelling && !self.adopt_announced(builder, events) {
            let state = self.state(builder);
            state.outcome = Outcome::Cancelled;
            state.step = "cancelled".to_string();
            events.push(Event::Cancelled {
                builder: builder_name,
            });
            return;
        }
        let state = self.state(builder);
        state.outcome = Outcome::Succeeded;
        state.step = "finished".to_string();
        events.push(Event::Finished {
            builder: builder_name,
        });
    }

    /// The last meaningful error line of a builder's provisioning output, if any.
    pub fn cause(&self, builder: &str) -> Option<&str> {
        let (_, line) = self.builders.get(builder)?.cause.as_ref()?;
        Some(line)
    }

    fn fail(&mut self, builder: &str, error: &str, events: &mut Vec<Event>) {
        let cancelling = self.cancelling;
        let state = self.state(builder);
        if matches!(
            state.outcome,
            Outcome::Failed { .. } | Outcome::AlreadyExists { .. } | Outcome::Cancelled
        ) {
            return;
        }
        let error = error.trim().to_string();
        if cancelling && error.contains("context canceled") {
            state.outcome = Outcome::Cancelled;
            state.step = "cancelled".to_string();
            events.push(Event::Cancelled {
                builder: builder.to_string(),
            });
            return;
        }
        state.outcome = match existing_ami(&error) {
            Some(ami) => Outcome::AlreadyExists {
                ami,
                error: error.clone(),
            },
            None => Outcome::Failed {
                error: error.clone(),
            },
        };
        events.push(Event::Failed {
            builder: builder.to_string(),
            error,
        });
    }

    /// Builders that failed (or were refused), with the first line of their error.
    pub fn failed_builders(&self) -> Vec<(String, String)> {
        self.builders
            .iter()
            .filter_map(|(name, s)| match &s.outcome {
                Outcome::Failed { error } | Outcome::AlreadyExists { error, .. } => {
                    Some((name.clone(), error.lines().next().unwrap_or("").to_string()))
                }
                _ => None,
            })
            .collect()
    }

    /// The AMIs of builders that succeeded; failed builders contribute nothing.
    pub fn successful_amis(&self) -> Vec<Ami> {
        self.builders
            .values()
            .filter(|s| s.outcome == Outcome::Succeeded)
            .flat_map(|s| s.amis.iter().cloned())
            .collect()
    }
}

/// How telling a line of a builder's output is as the cause of a failure: 2 for an error a
/// program marks as one (apt's `E: ...`, `error: ...`, `fatal: ...`), 1 for any other line on
/// its stderr (`level` `error`; what a script prints before `exit 1`), except the shell's
/// `set -x` trace and known noise (apt's `W:`, debconf's complaints, warnings); `None` for the
/// rest. Pure, so what counts is tested on lines captured from real Packer runs.
pub fn error_weight(level: &str, line: &str) -> Option<u8> {
    let line = line.trim();
    let lower = line.to_ascii_lowercase();
    let marked = line.starts_with("E: ")
        || ["error:", "fatal:", "error "]
            .iter()
            .any(|m| lower.starts_with(m))
        || [": error:", ": fatal:", ": error "]
            .iter()
            .any(|m| lower.contains(m));
    if marked {
        return Some(2);
    }
    const NOISE: [&str; 7] = [
        "+",
        "w: ",
        "debconf:",
        "dpkg-preconfigure:",
        "warning",
        "update-alternatives:",
        "extracting templates from packages",
    ];
    let noise = line.is_empty() || NOISE.iter().any(|n| lower.starts_with(n));
    (level == "error" && !noise).then_some(1)
}

/// Warnings for AMIs outside their builder's own region (the `REGION` of
/// `REGION-OSVERSION-pv|hvm`): a copy to another region, or a builder aimed at the wrong one.
pub fn region_warnings(amis: &[Ami]) -> Vec<String> {
    amis.iter()
        .filter_map(|ami| {
            let own = builder_region(&ami.builder)?;
            (own != ami.region).then(|| {
                format!(
                    "builder `{}` reported {} in `{}`, not in its own region `{own}`; it is filed under `{}`",
                    ami.builder, ami.id, ami.region, ami.region
                )
            })
        })
        .collect()
}

/// The region of a builder named `REGION-OSVERSION-pv|hvm`.
pub fn builder_region(builder: &str) -> Option<&str> {
    let mut parts = builder.rsplitn(3, '-');
    let (_virt, _release) = (parts.next()?, parts.next()?);
    parts.next()
}

/// `us-east-1:ami-...` into an [`Ami`].
/// An artifact id that is not a list of `REGION:AMI` pairs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("artifact of `{builder}` is `{pair}`, not a `REGION:AMI` pair")]
pub struct BadArtifact {
    pub builder: String,
    pub pair: String,
}

pub fn parse_pair(builder: &str, pair: &str) -> Result<Ami, BadArtifact> {
    let bad = || BadArtifact {
        builder: builder.to_string(),
        pair: pair.to_string(),
    };
    let (region, id) = pair.trim().split_once(':').ok_or_else(bad)?;
    if !crate::pure::matrix::is_region(region) || !crate::pure::matrix::is_ami_id(id) {
        return Err(bad());
    }
    Ok(Ami {
        builder: builder.to_string(),
        region: region.to_string(),
        id: id.to_string(),
    })
}

/// The id in Packer's "AMI Name: '...' is used by an existing AMI: ami-..." refusal.
pub fn existing_ami(error: &str) -> Option<String> {
    let (_, tail) = error.split_once("is used by an existing AMI: ")?;
    let id: String = tail
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    crate::pure::matrix::is_ami_id(&id).then_some(id)
}

/// Finds, in a chunk of a machine-readable log, the lines that can change a builder's outcome or
/// AMIs: artifacts, errors, Packer's `Build '...'` verdicts and announced or deregistered AMIs (a superset of what [`Tracker`]
/// acts on for [`Tracker::successful_amis`]). It searches the whole chunk for a few byte strings
/// instead of splitting every line, so a log that is gigabytes of provisioning output is skipped
/// at memory speed and only the few records that matter are decoded.
pub struct OutcomeScanner {
    needles: [memchr::memmem::Finder<'static>; 5],
}

impl Default for OutcomeScanner {
    fn default() -> Self {
        // Escaping never changes these: Packer escapes only commas inside data and line breaks.
        OutcomeScanner {
            needles: [
                ",artifact,",
                ",error,",
                "Build '",
                // What an image made before an interrupt is known by (a deregistered one never
                // ran all its steps, so its deregistration need not be found).
                ": AMI: ami-",
                ": Terminating the source AWS instance",
            ]
            .map(memchr::memmem::Finder::new),
        }
    }
}

impl OutcomeScanner {
    /// Byte ranges of the matching lines of `chunk` (without their line break), in order.
    pub fn lines(&self, chunk: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut starts: Vec<usize> = Vec::new();
        for needle in &self.needles {
            let mut from = 0;
            while let Some(found) = needle.find(&chunk[from..]) {
                let at = from + found;
                let start = memchr::memrchr(b'\n', &chunk[..at]).map_or(0, |i| i + 1);
                let end = memchr::memchr(b'\n', &chunk[at..]).map_or(chunk.len(), |i| at + i);
                starts.push(start);
                from = end.max(at + 1).min(chunk.len());
            }
        }
        starts.sort_unstable();
        starts.dedup();
        starts
            .into_iter()
            .map(|start| {
                let end = memchr::memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |i| start + i);
                start..end
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(log: &str) -> Tracker {
        let mut tracker = Tracker::default();
        for line in log.lines() {
            if let Some(record) = parse_line(line) {
                tracker.feed(&record).unwrap();
            }
        }
        tracker
    }

    #[test]
    fn golden_ebs_success() {
        let t = track(include_str!(
            "../../tests/data/packer-1.6.6-ebs-success.log"
        ));
        let state = &t.builders["us-east-1-1404-hvm"];
        assert_eq!(state.outcome, Outcome::Succeeded);
        assert_eq!(state.amis.len(), 1);
        assert_eq!(state.amis[0].region, "us-east-1");
        assert!(state.amis[0].id.starts_with("ami-"));
    }

    #[test]
    fn golden_instance_success() {
        let t = track(include_str!(
            "../../tests/data/packer-1.6.6-instance-success.log"
        ));
        assert_eq!(t.successful_amis().len(), 1);
    }

    #[test]
    fn golden_existing_ami_is_recognised() {
        let t = track(include_str!(
            "../../tests/data/packer-1.6.6-ami-name-exists.log"
        ));
        match &t.builders["us-east-1-1404-hvm"].outcome {
            Outcome::AlreadyExists { ami, .. } => assert!(ami.starts_with("ami-")),
            other => panic!("{other:?}"),
        }
        assert!(t.successful_amis().is_empty());
    }

    #[test]
    fn golden_failure_keeps_the_error() {
        let t = track(include_str!(
            "../../tests/data/packer-1.6.6-source-ami-missing.log"
        ));
        match &t.builders["us-east-1-1404-hvm"].outcome {
            Outcome::Failed { error } => {
                assert!(error.contains("InvalidAMIID.NotFound"), "{error}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn several_pairs_and_repeated_artifacts() {
        let log = "1,b-1404-hvm,artifact,0,id,us-east-1:ami-ebd1934921f437dda%!(PACKER_COMMA)us-west-1:ami-511ba79f3df822121\n\
                   1,b-1404-hvm,artifact,1,id,us-east-1:ami-ebd1934921f437dda%!(PACKER_COMMA)us-west-1:ami-511ba79f3df822121\n\
                   1,,ui,say,Build 'b-1404-hvm' finished after 1 second.\n";
        let t = track(log);
        assert_eq!(t.successful_amis().len(), 2);
        // The copy to us-west-1 is outside the builder's own region `b`: a warning each.
        assert_eq!(region_warnings(&t.successful_amis()).len(), 2);
        let own = Ami {
            builder: "us-east-1-1404-hvm".into(),
            region: "us-east-1".into(),
            id: "ami-ebd1934921f437dda".into(),
        };
        let copy = Ami {
            region: "us-west-1".into(),
            ..own.clone()
        };
        assert!(region_warnings(&[own]).is_empty());
        assert_eq!(
            region_warnings(&[copy]),
            ["builder `us-east-1-1404-hvm` reported ami-ebd1934921f437dda in `us-west-1`, not in its own region `us-east-1`; it is filed under `us-west-1`"]
        );
    }

    #[test]
    fn failed_builders_are_named() {
        let t = track(include_str!(
            "../../tests/data/packer-1.6.6-source-ami-missing.log"
        ));
        let failed = t.failed_builders();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "us-east-1-1404-hvm");
        assert!(failed[0].1.contains("InvalidAMIID.NotFound"), "{failed:?}");
    }

    #[test]
    fn non_records_are_not_parsed() {
        assert!(parse_line("Usage: packer build").is_none());
        assert!(parse_line("").is_none());
        assert_eq!(
            parse_line("1,,ui,say,a%!(PACKER_COMMA) b\\nc")
                .unwrap()
                .data,
            ["say", "a, b\nc"]
        );
    }

    #[test]
    fn the_scanner_finds_every_line_the_tracker_needs() {
        let logs = [
            include_str!("../../tests/data/packer-1.6.6-ebs-success.log"),
            include_str!("../../tests/data/packer-1.6.6-instance-success.log"),
            include_str!("../../tests/data/packer-1.6.6-ami-name-exists.log"),
            include_str!("../../tests/data/packer-1.6.6-source-ami-missing.log"),
            include_str!("../../tests/data/packer-1.6.6-instance-echoes-secret.log"),
            APT_FAILS,
            CANCELLED,
            include_str!("../../tests/data/packer-1.6.6-local-cancelled-late.log"),
        ];
        let scanner = OutcomeScanner::default();
        for log in logs {
            let full = track(log);
            let found: String = scanner
                .lines(log.as_bytes())
                .into_iter()
                .map(|r| format!("{}\n", &log[r]))
                .collect();
            assert!(found.lines().count() < log.lines().count());
            let scanned = track(&found);
            assert_eq!(scanned.successful_amis(), full.successful_amis());
            for (name, state) in &full.builders {
                assert_eq!(scanned.builders[name].outcome, state.outcome, "{name}");
            }
        }
        // Line boundaries: the first and last line, no final line break, several hits a line.
        let chunk = b"1,b,artifact,0,id,x\n1,,ui,message,  b: noise\n1,,ui,error,Build 'b' errored: x,error,y";
        let lines: Vec<_> = scanner
            .lines(chunk)
            .into_iter()
            .map(|r| String::from_utf8_lossy(&chunk[r]).into_owned())
            .collect();
        assert_eq!(
            lines,
            [
                "1,b,artifact,0,id,x",
                "1,,ui,error,Build 'b' errored: x,error,y"
            ]
        );
        assert!(scanner.lines(b"").is_empty());
    }

    /// Captured from Packer 1.6.6 on the stand-in, `XTASK_LOCAL_FAIL=us-east-1-1404-hvm`: apt's
    /// `E:` line is on Packer's stderr records, the error only says the script's exit status.
    const APT_FAILS: &str = include_str!("../../tests/data/packer-1.6.6-local-apt-fails.log");

    #[test]
    fn a_failed_builder_keeps_the_cause_its_output_named() {
        let t = track(APT_FAILS);
        match &t.builders["us-east-1-1404-hvm"].outcome {
            Outcome::Failed { error } => assert!(error.starts_with("Script exited"), "{error}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.cause("us-east-1-1404-hvm"),
            Some("E: rehearsed failure of us-east-1-1404-hvm (XTASK_LOCAL_FAIL)")
        );
        assert_eq!(t.successful_amis().len(), 3);
        // A later weak line (a script's own message) never hides apt's marked one.
        let mut t = track(APT_FAILS);
        let later = "1,,ui,error,==> us-east-1-1404-hvm: Reading package lists...";
        t.feed(&parse_line(later).unwrap()).unwrap();
        assert_eq!(
            t.cause("us-east-1-1404-hvm"),
            Some("E: rehearsed failure of us-east-1-1404-hvm (XTASK_LOCAL_FAIL)")
        );
    }

    #[test]
    fn what_counts_as_an_error_line() {
        // Lines as they come out of real provisioning (apt, git, curl, a script's message).
        for line in [
            "E: Unable to locate package openjdk-7-jdk",
            "fatal: unable to access 'https://github.com/riptano/ComboAMI.git/': Could not resolve host",
            "error: pathspec '2.6' did not match any file(s) known to git",
            "gpg: error: no valid OpenPGP data found.",
        ] {
            assert_eq!(error_weight("message", line), Some(2), "{line}");
        }
        assert_eq!(
            error_weight("error", "cloud-init did not finish within 10 minutes"),
            Some(1)
        );
        for noise in [
            "+ apt-get -y -q update",
            "W: Some index files failed to download.",
            "debconf: unable to initialize frontend: Dialog",
            "",
        ] {
            assert_eq!(error_weight("error", noise), None, "{noise}");
        }
        // Stdout that is not marked is not a cause.
        assert_eq!(error_weight("message", "Reading package lists..."), None);
    }

    /// What Packer 1.6.6 prints when it gets SIGINT mid-build (command/build.go and signal.go
    /// at v1.6.6): "Cancelling build after receiving interrupt", then each cancelled build
    /// "finished" (the amazon builders return no artifact and no error), "Cleanly cancelled
    /// builds after being interrupted." and no artifact records at all.
    const CANCELLED: &str = "\
1,,ui,say,==> us-east-1-1204-pv: Provisioning with shell script: build/provision.sh
1,,ui,say,==> us-east-1-1404-hvm: Creating AMI DataStax 2.6.3-1404-hvm from instance i-1
1,,ui,message,    us-east-1-1404-hvm: AMI: ami-d0a24dc52b7332642
1,,ui,say,==> us-east-1-1404-hvm: Waiting for AMI to become ready...
1,,ui,say,==> us-east-1-1404-hvm: Terminating the source AWS instance...
1,,ui,say,Build 'us-east-1-1404-hvm' finished after 41 seconds.
1,,ui,say,==> us-east-1-1204-hvm: AMI: ami-1111111111111111a
1,,ui,say,==> us-east-1-1204-hvm: Terminating the source AWS instance...
1,,ui,say,==> us-west-1-1404-hvm: AMI: ami-2222222222222222b
1,,ui,say,==> us-east-1-1404-pv: Creating AMI DataStax 2.6.3-1404-pv from instance i-2
1,,ui,message,    us-east-1-1404-pv: AMI: ami-0123456789abcdef0
1,,ui,error,Cancelling build after receiving interrupt
1,,ui,say,==> us-east-1-1404-pv: Deregistering the AMI and deleting associated snapshots because of cancellation%!(PACKER_COMMA) or error...
1,,ui,say,==> us-east-1-1404-pv: Deregistered AMI id: ami-0123456789abcdef0
1,,ui,say,==> us-east-1-1204-pv: Terminating the source AWS instance...
1,,ui,say,Build 'us-east-1-1204-pv' finished after 40 seconds.
1,,ui,say,Build 'us-east-1-1404-pv' finished after 42 seconds.
1,,ui,say,Build 'us-east-1-1204-hvm' finished after 42 seconds.
1,,ui,say,==> us-west-1-1404-hvm: Terminating the source AWS instance...
1,,ui,say,Build 'us-west-1-1404-hvm' finished after 42 seconds.
1,,ui,say,\\n==> Wait completed after 42 seconds
1,,ui,say,Cleanly cancelled builds after being interrupted.
";

    #[test]
    fn a_real_ctrl_c_cancels_every_build_packer_calls_finished() {
        // Captured from a local publish of 32 builders, SIGINT during provisioning (the
        // provisioning output left out).
        let log = include_str!("../../tests/data/packer-1.6.6-local-cancelled.log");
        assert_eq!(log.matches("' finished after ").count(), 32);
        let t = track(log);
        assert!(t.cancelling);
        assert_eq!(t.builders.len(), 32);
        assert!(t.builders.values().all(|s| s.outcome == Outcome::Cancelled));
        assert!(t.successful_amis().is_empty());
    }

    #[test]
    fn a_late_ctrl_c_keeps_the_images_whose_steps_all_ran() {
        // The same publish, SIGINT once 4 builds had finished: 2 more were cleaning up after
        // their last step (tags done), 25 had registered an AMI without finishing, 1 had not.
        let log = include_str!("../../tests/data/packer-1.6.6-local-cancelled-late.log");
        let t = track(log);
        let count = |outcome: Outcome| t.builders.values().filter(|s| s.outcome == outcome).count();
        assert_eq!(count(Outcome::Succeeded), 6);
        assert_eq!(count(Outcome::Cancelled), 26);
        assert_eq!(t.successful_amis().len(), 6);
        assert!(t.builders["us-west-1-1404-hvm"].outcome == Outcome::Succeeded);
    }

    #[test]
    fn cancelled_builds_are_not_finished_and_made_images_still_count() {
        let t = track(CANCELLED);
        assert!(t.cancelling);
        assert_eq!(t.builders["us-east-1-1204-pv"].outcome, Outcome::Cancelled);
        // Its AMI was deregistered in Packer's clean-up: nothing of it exists.
        assert_eq!(t.builders["us-east-1-1404-pv"].outcome, Outcome::Cancelled);
        // An instance-store AMI registered but cancelled before its last steps (no tags, not
        // shared): not made, though Packer does not deregister it.
        assert_eq!(t.builders["us-west-1-1404-hvm"].outcome, Outcome::Cancelled);
        // Finished before the interrupt, or cleaning up after its last step when it came:
        // its image exists though Packer never printed it.
        let made = |builder: &str, id: &str| Ami {
            builder: builder.into(),
            region: "us-east-1".into(),
            id: id.into(),
        };
        assert_eq!(
            t.successful_amis(),
            [
                made("us-east-1-1204-hvm", "ami-1111111111111111a"),
                made("us-east-1-1404-hvm", "ami-d0a24dc52b7332642"),
            ]
        );
        // Without Packer's cancel notice the same lines are finished builds.
        let uncancelled: String = CANCELLED
            .lines()
            .filter(|l| !l.contains("Cancelling build"))
            .map(|l| format!("{l}\n"))
            .collect();
        let t = track(&uncancelled);
        assert!(t.builders.values().all(|s| s.outcome == Outcome::Succeeded));
        // An interrupted build that errors with the cancelled context is cancelled too.
        let t = track(
            "1,,ui,error,Cancelling build after receiving terminated\n\
             1,,ui,error,Build 'b-1404-hvm' errored after 1 second: context canceled\n",
        );
        assert_eq!(t.builders["b-1404-hvm"].outcome, Outcome::Cancelled);
    }
}
