//! The record of one run (`run.json`): what it builds (the spec), every builder's state, its
//! attempts, and for a release the release's steps. Pure: reading and writing it is `runs.rs`'s.

use crate::pure::packer_log::{Ami, Outcome, Tracker};
use crate::pure::release::Steps;
use crate::pure::template::{Plan, PlannedBuilder, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where run folders live, relative to the repository.
pub const RUNS_DIR: &str = "build/runs";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// What the run builds; its fields sit at the top level of `run.json`.
    #[serde(flatten)]
    pub spec: Spec,
    /// The cloud preflight's verdict: `passed`, or that it was skipped (`--skip-cloud-checks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_checks: Option<String>,
    pub builders: BTreeMap<String, BuilderRecord>,
    pub attempts: Vec<Attempt>,
    /// The release this run publishes, and how far it got; `None` for a build of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Steps>,
    /// Its images were made public (and protected) once every builder was proven; until then
    /// they are private and nothing is merged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub made_public: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuilderRecord {
    pub region: String,
    pub ami_name: String,
    pub state: BuilderState,
    #[serde(default)]
    pub amis: Vec<Ami>,
    #[serde(default)]
    pub error: Option<String>,
    /// The AMI that already holds this builder's name, when Packer refused for that reason.
    #[serde(default)]
    pub existing_ami: Option<String>,
    /// `BUCKET/PREFIX` of an instance-store bundle.
    #[serde(default)]
    pub bundle: Option<String>,
    /// The ComboAMI commit the image was built from, from its checked image report.
    #[serde(default)]
    pub comboami_commit: Option<String>,
    /// How the builder got its state, when not by building (an adopted image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where one builder of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderState {
    /// Not built yet (or not by an attempt that finished).
    Pending,
    Succeeded,
    Failed,
    /// Packer refused: an image with its AMI name already exists.
    Exists,
    /// Stopped by Ctrl-C (or SIGTERM) before it finished.
    Interrupted,
}

impl BuilderState {
    pub fn as_str(self) -> &'static str {
        match self {
            BuilderState::Pending => "pending",
            BuilderState::Succeeded => "succeeded",
            BuilderState::Failed => "failed",
            BuilderState::Exists => "exists",
            BuilderState::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for BuilderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BuilderRecord {
    /// A builder of the plan, not built yet.
    pub fn pending(planned: &PlannedBuilder) -> BuilderRecord {
        BuilderRecord {
            region: planned.region.clone(),
            ami_name: planned.ami_name.clone(),
            state: BuilderState::Pending,
            amis: Vec::new(),
            error: None,
            existing_ami: None,
            bundle: planned.bundle.clone(),
            comboami_commit: None,
            note: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub number: usize,
    /// When the command that made this attempt started (seconds since the epoch): with `ended`,
    /// the time the view's clock showed when Packer exited.
    pub started: u64,
    pub builders: Vec<String>,
    pub output_log: String,
    pub packer_log: String,
    pub interrupted: bool,
    /// False while Packer runs; stays false when the command was killed.
    #[serde(default = "finished_default")]
    pub finished: bool,
    /// When Packer exited (seconds since the epoch): the next run of the kind expects as long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<u64>,
}

/// How long Packer took in the latest attempt, of a run of the same kind and place as `spec`,
/// that built every builder of its run to the end (not interrupted): what the next one may take.
pub fn expected_seconds(records: &[RunRecord], spec: &Spec) -> Option<u64> {
    records
        .iter()
        .filter(|r| r.spec.kind == spec.kind && r.spec.local == spec.local)
        .flat_map(|r| {
            r.attempts
                .iter()
                .filter(|a| !a.interrupted && a.builders.len() == r.builders.len())
        })
        .filter_map(|a| Some((a.started, a.ended?.checked_sub(a.started)?)))
        .max()
        .map(|(_, took)| took)
}

fn finished_default() -> bool {
    true
}

impl RunRecord {
    /// A new run of `plan`: every builder pending, no attempt yet.
    pub fn new(run_id: String, spec: Spec, plan: &Plan, cloud_checks: Option<String>) -> RunRecord {
        RunRecord {
            run_id,
            spec,
            cloud_checks,
            builders: plan
                .builders
                .iter()
                .map(|planned| (planned.name.clone(), BuilderRecord::pending(planned)))
                .collect(),
            attempts: Vec::new(),
            release: None,
            made_public: false,
        }
    }

    pub fn dir(&self) -> String {
        format!("{RUNS_DIR}/{}", self.run_id)
    }

    /// Where Packer downloads the image reports, `BUILDER.json` each.
    pub fn report_dir(&self) -> String {
        format!("{}/reports", self.dir())
    }

    /// The ComboAMI commit of every builder that succeeded, by builder.
    pub fn comboami_commits(&self) -> BTreeMap<String, String> {
        self.builders
            .iter()
            .filter(|(_, b)| b.state == BuilderState::Succeeded)
            .filter_map(|(name, b)| Some((name.clone(), b.comboami_commit.clone()?)))
            .collect()
    }

    pub fn unfinished(&self) -> Vec<String> {
        self.builders
            .iter()
            .filter(|(_, b)| b.state != BuilderState::Succeeded)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// AMIs of every builder that succeeded, in any attempt.
    pub fn amis(&self) -> Vec<Ami> {
        // Named by the record's key: records of older versions kept no builder in their AMIs.
        self.builders
            .iter()
            .filter(|(_, b)| b.state == BuilderState::Succeeded)
            .flat_map(|(name, b)| {
                b.amis.iter().map(move |a| Ami {
                    builder: name.clone(),
                    region: a.region.clone(),
                    id: a.id.clone(),
                })
            })
            .collect()
    }

    /// Counts a builder as built by an image that exists with this run's tags (a resume found
    /// it: Packer finished it, but the run did not record it), or, for a release, by an image
    /// of its version and prepare commit that run `made_by` made (on this machine or another).
    pub fn adopt(&mut self, builder: &str, region: &str, ami: &str, made_by: Option<&str>) {
        let note = match made_by.filter(|run| *run != self.run_id) {
            Some(run) => format!(
                "adopted: it already existed with this version's Project, Version and Commit tags, made by run `{run}`"
            ),
            None => "adopted on resume: it already existed with this run's Project, Version, Commit and RunId tags".to_string(),
        };
        if let Some(b) = self.builders.get_mut(builder) {
            b.state = BuilderState::Succeeded;
            b.amis = vec![Ami {
                builder: builder.to_string(),
                region: region.to_string(),
                id: ami.to_string(),
            }];
            b.error = None;
            b.existing_ami = None;
            b.note = Some(note);
        }
    }

    /// Folds one attempt's results in. Builders Packer never finished count as failed (or as
    /// interrupted after a Ctrl-C).
    pub fn apply(&mut self, tracker: &Tracker, attempted: &[String], interrupted: bool, log: &str) {
        for name in attempted {
            let Some(builder) = self.builders.get_mut(name) else {
                continue;
            };
            let state = tracker.builders.get(name);
            builder.existing_ami = None;
            builder.error = None;
            builder.comboami_commit = None;
            // Packer says "finished" of a cancelled build too: only an AMI makes a success.
            let no_ami = state.is_none_or(|s| s.amis.is_empty());
            match state.map(|s| &s.outcome) {
                Some(Outcome::Succeeded) if no_ami && interrupted => {
                    builder.state = BuilderState::Interrupted;
                    builder.error = Some("interrupted (Ctrl-C or SIGTERM)".into());
                }
                Some(Outcome::Succeeded) if no_ami => {
                    builder.state = BuilderState::Failed;
                    builder.error = Some(format!(
                        "Packer reported this build finished but named no AMI; see `{log}`"
                    ));
                }
                Some(Outcome::Succeeded) => {
                    builder.state = BuilderState::Succeeded;
                    builder.amis = state.unwrap().amis.clone();
                }
                // What Packer reports of builds it cancelled.
                Some(Outcome::Failed { error })
                    if interrupted && error.contains("context canceled") =>
                {
                    builder.state = BuilderState::Interrupted;
                    builder.error = Some("interrupted (Ctrl-C or SIGTERM)".into());
                }
                Some(Outcome::Failed { error }) => {
                    builder.state = BuilderState::Failed;
                    // The provisioning's own words first (`E: Unable to locate package ...`):
                    // Packer's "Script exited with non-zero exit status: 100" says only where.
                    builder.error = Some(match tracker.cause(name) {
                        Some(cause) if !error.contains(cause) => format!("{cause} ({error})"),
                        _ => error.clone(),
                    });
                }
                Some(Outcome::AlreadyExists { ami, error }) => {
                    builder.state = BuilderState::Exists;
                    builder.existing_ami = Some(ami.clone());
                    builder.error = Some(error.clone());
                }
                // Packer cancelled it (it says "finished" of those): nothing of it exists.
                Some(Outcome::Cancelled) => {
                    builder.state = BuilderState::Interrupted;
                    builder.error = Some("interrupted (Ctrl-C or SIGTERM)".into());
                }
                Some(Outcome::Running) | None if interrupted => {
                    builder.state = BuilderState::Interrupted;
                    builder.error = Some("interrupted (Ctrl-C or SIGTERM)".into());
                }
                Some(Outcome::Running) | None => {
                    builder.state = BuilderState::Failed;
                    builder.error = Some(format!(
                        "Packer ended without finishing this builder (last step: {}); see `{log}`",
                        state.map_or("none", |s| s.step.as_str())
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pure::matrix::Matrix;
    use crate::pure::packer_log::parse_line;
    use crate::pure::template::{self, Kind};

    /// A test-ebs run of the first `n` builders of the test region, all pending.
    fn record(n: usize) -> RunRecord {
        let matrix = Matrix::parse(include_str!("../../../build/images.json")).unwrap();
        let spec = Spec {
            local: true,
            commit: "abc".into(),
            ..template::tests::spec(Kind::TestEbs)
        };
        let mut plan = template::plan(&matrix, &spec).unwrap();
        plan.builders.truncate(n);
        RunRecord::new("run".into(), spec, &plan, None)
    }

    /// A failed builder's error starts with what its provisioning said (apt's `E:` line), then
    /// Packer's own words; captured from Packer 1.6.6 with `XTASK_LOCAL_FAIL`.
    #[test]
    fn a_failed_builder_is_recorded_with_the_cause_its_output_named() {
        let log = include_str!("../../tests/data/packer-1.6.6-local-apt-fails.log");
        let tracker = tracker(
            &log.lines()
                .filter(|l| parse_line(l).is_some())
                .collect::<Vec<_>>(),
        );
        let mut record = record(4);
        let names: Vec<String> = record.builders.keys().cloned().collect();
        record.apply(&tracker, &names, false, "output-1.log");
        let failed = &record.builders["us-east-1-1404-hvm"];
        assert_eq!(failed.state, BuilderState::Failed);
        let error = failed.error.as_deref().unwrap();
        assert!(
            error.starts_with(
                "E: rehearsed failure of us-east-1-1404-hvm (XTASK_LOCAL_FAIL) (Script exited"
            ),
            "{error}"
        );
    }

    /// Feeds Packer's machine-readable lines, `{builder}` standing for `names[i]` in line i.
    fn tracker(lines: &[&str]) -> Tracker {
        let mut tracker = Tracker::default();
        for line in lines {
            tracker.feed(&parse_line(line).unwrap()).unwrap();
        }
        tracker
    }

    fn names(record: &RunRecord) -> Vec<String> {
        record.builders.keys().cloned().collect()
    }

    #[test]
    fn the_expected_duration_is_the_latest_complete_attempt_of_the_kind() {
        let run = |kind: Kind, local: bool, started: u64, ended, interrupted, builders: usize| {
            let mut r = record(2);
            r.spec.kind = kind;
            r.spec.local = local;
            r.attempts.push(Attempt {
                number: 1,
                started,
                builders: names(&r)[..builders].to_vec(),
                output_log: String::new(),
                packer_log: String::new(),
                interrupted,
                finished: true,
                ended,
            });
            r
        };
        let records = [
            run(Kind::TestEbs, true, 100, Some(400), false, 2),
            // Newer, but interrupted, partial, of another kind, not local or killed: no measure.
            run(Kind::TestEbs, true, 500, Some(510), true, 2),
            run(Kind::TestEbs, true, 600, Some(610), false, 1),
            run(Kind::Official, true, 700, Some(710), false, 2),
            run(Kind::TestEbs, false, 800, Some(810), false, 2),
            run(Kind::TestEbs, true, 900, None, false, 2),
        ];
        let spec = records[0].spec.clone();
        assert_eq!(expected_seconds(&records, &spec), Some(300));
        assert_eq!(expected_seconds(&records[1..], &spec), None);
    }

    #[test]
    fn an_attempt_folds_in_what_packer_said_of_each_builder() {
        let mut record = record(4);
        let [ok, failed, exists, silent] = <[String; 4]>::try_from(names(&record)).unwrap();
        let t = tracker(&[
            &format!("1,{ok},artifact,0,id,us-east-1:ami-11111111"),
            &format!("1,,ui,say,Build '{ok}' finished after 1 minute"),
            &format!("1,{failed},error,Script exited with non-zero exit status: 100"),
            &format!(
                "1,{exists},error,Error: AMI Name: 'x' is used by an existing AMI: ami-22222222"
            ),
            &format!("1,,ui,say,==> {silent}: Waiting for SSH to become available..."),
        ]);
        record.apply(&t, &names(&record), false, "out.log");
        let state = |name: &str| record.builders[name].state;
        assert_eq!(state(&ok), BuilderState::Succeeded);
        assert_eq!(record.builders[&ok].amis[0].id, "ami-11111111");
        assert_eq!(state(&failed), BuilderState::Failed);
        assert_eq!(state(&exists), BuilderState::Exists);
        assert_eq!(
            record.builders[&exists].existing_ami.as_deref(),
            Some("ami-22222222")
        );
        // Packer ended without a word on this one: failed, with its last step named.
        assert_eq!(state(&silent), BuilderState::Failed);
        let error = record.builders[&silent].error.clone().unwrap();
        assert!(error.contains("last step: Waiting for SSH"), "{error}");
        // A resume rebuilds exactly what did not succeed; only successes count as AMIs.
        assert_eq!(record.unfinished(), vec![failed, exists, silent]);
        assert_eq!(record.amis().len(), 1);
    }

    #[test]
    fn after_ctrl_c_unfinished_and_cancelled_builders_are_interrupted_not_failed() {
        let mut record = record(3);
        let [cancelled, running, no_ami] = <[String; 3]>::try_from(names(&record)).unwrap();
        let t = tracker(&[
            &format!("1,{cancelled},error,context canceled"),
            &format!("1,,ui,say,==> {running}: Provisioning with shell script"),
            // Packer says "finished" of a cancelled build too.
            &format!("1,,ui,say,Build '{no_ami}' finished after 3 seconds"),
        ]);
        record.apply(&t, &names(&record), true, "out.log");
        for name in names(&record) {
            assert_eq!(
                record.builders[&name].state,
                BuilderState::Interrupted,
                "{name}"
            );
        }
        // Without the Ctrl-C, a "finished" build without an AMI is a failure.
        let mut record = self::record(3);
        record.apply(&t, &names(&record), false, "out.log");
        assert_eq!(record.builders[&no_ami].state, BuilderState::Failed);
        assert_eq!(record.builders[&cancelled].state, BuilderState::Failed);
    }

    #[test]
    fn only_attempted_builders_change_and_adoption_counts_as_built() {
        let mut record = record(2);
        let [first, second] = <[String; 2]>::try_from(names(&record)).unwrap();
        let t = tracker(&[&format!("1,{second},error,boom")]);
        record.apply(&t, std::slice::from_ref(&first), false, "out.log");
        assert_eq!(record.builders[&second].state, BuilderState::Pending);
        record.adopt(&second, "us-east-1", "ami-33333333", None);
        assert_eq!(record.builders[&second].state, BuilderState::Succeeded);
        assert!(record.builders[&second]
            .note
            .as_deref()
            .unwrap()
            .starts_with("adopted"));
        assert_eq!(record.unfinished(), vec![first]);
    }

    /// `run.json` keeps its flat shape: records written before the spec existed still load, and
    /// the spec's fields are written at the top level where cleanup and users look for them.
    #[test]
    fn the_spec_is_flat_in_run_json() {
        let old = r#"{"run_id": "publish-20260101-000000", "kind": "official", "local": true,
            "version": "2.6.3", "branch": "2.6", "commit": "abc", "epoch": 1700000000,
            "registry": null, "builders": {}, "attempts": []}"#;
        let record: RunRecord = crate::pure::json::parse(old).unwrap();
        assert_eq!(record.spec.kind, Kind::Official);
        assert!(record.spec.local && !record.spec.private && record.spec.only.is_empty());
        let written = serde_json::to_value(&record).unwrap();
        assert_eq!(written["version"], "2.6.3");
        assert_eq!(written["epoch"], 1700000000);
        assert!(written.get("spec").is_none() && written.get("only").is_none());
        // The flattened spec does not hide a key written twice, at either level.
        for twice in [r#""run_id": "x", "#, r#""version": "2.6.4", "#] {
            let damaged = old.replacen('{', &format!("{{{twice}"), 1);
            let error = crate::pure::json::parse::<RunRecord>(&damaged).unwrap_err();
            assert!(error.to_string().contains("duplicate key"), "{error}");
        }
    }
}
