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
}

/// What Packer's log has said of one builder so far (the run record keeps its outcome as a
/// [`crate::core::run::BuilderState`]).
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: String,
    pub outcome: Outcome,
    pub amis: Vec<Ami>,
    /// Set when this builder's step changed with the last record fed.
    pub last_error_line: Option<String>,
}

/// What one record changed, for a live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Step { builder: String, step: String },
    Finished { builder: String },
    Failed { builder: String, error: String },
    Artifact { builder: String, ami: Ami },
}

/// Per-builder state built from a stream of records.
#[derive(Debug, Default)]
pub struct Tracker {
    pub builders: BTreeMap<String, Progress>,
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
                let (Some(level), Some(text)) = (record.data.first(), record.data.get(1)) else {
                    return Ok(events);
                };
                if let Some(rest) = text.strip_prefix("==> ") {
                    if let Some((builder, step)) = rest.split_once(": ") {
                        if !builder.contains(' ') {
                            let step = step.lines().next().unwrap_or("").trim().to_string();
                            let state = self.state(builder);
                            state.step = step.clone();
                            if level == "error" {
                                state.last_error_line = Some(step.clone());
                            }
                            events.push(Event::Step {
                                builder: builder.to_string(),
                                step,
                            });
                        }
                    }
                } else if let Some(rest) = text.strip_prefix("Build '") {
                    if let Some((builder, tail)) = rest.split_once('\'') {
                        if tail.starts_with(" finished") {
                            self.finish(builder, &mut events);
                        } else if let Some((_, error)) = tail.split_once(": ") {
                            self.fail(builder, error, &mut events);
                        }
                    }
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

    fn finish(&mut self, builder: &str, events: &mut Vec<Event>) {
        let state = self.state(builder);
        if state.outcome == Outcome::Running {
            state.outcome = Outcome::Succeeded;
            state.step = "finished".to_string();
            events.push(Event::Finished {
                builder: builder.to_string(),
            });
        }
    }

    fn fail(&mut self, builder: &str, error: &str, events: &mut Vec<Event>) {
        let state = self.state(builder);
        if matches!(
            state.outcome,
            Outcome::Failed { .. } | Outcome::AlreadyExists { .. }
        ) {
            return;
        }
        let error = error.trim().to_string();
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
    if !crate::core::matrix::is_region(region) || !crate::core::matrix::is_ami_id(id) {
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
    crate::core::matrix::is_ami_id(&id).then_some(id)
}

/// Finds, in a chunk of a machine-readable log, the lines that can change a builder's outcome or
/// AMIs: artifacts, errors and Packer's `Build '...'` verdicts (a superset of what [`Tracker`]
/// acts on for [`Tracker::successful_amis`]). It searches the whole chunk for three byte strings
/// instead of splitting every line, so a log that is gigabytes of provisioning output is skipped
/// at memory speed and only the few records that matter are decoded.
pub struct OutcomeScanner {
    needles: [memchr::memmem::Finder<'static>; 3],
}

impl Default for OutcomeScanner {
    fn default() -> Self {
        // Escaping never changes these: Packer escapes only commas inside data and line breaks.
        OutcomeScanner {
            needles: [",artifact,", ",error,", "Build '"].map(memchr::memmem::Finder::new),
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
}
