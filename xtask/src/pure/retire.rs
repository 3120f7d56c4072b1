//! Retiring a release's images in stages — deprecate, make private, deregister — and the record
//! of it, `build/retired.json`. The plan per image from its present state, with every refusal
//! named; the record's format. Pure.

use crate::pure::ec2::Image;
use crate::pure::protect::{self, Listed};
use crate::pure::registry::REGISTRY_PATH;
use crate::pure::time;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const RETIRED_PATH: &str = "build/retired.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Deprecate,
    MakePrivate,
    Deregister,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Deprecate => "deprecate",
            Stage::MakePrivate => "make-private",
            Stage::Deregister => "deregister",
        }
    }
}

/// One image of the release and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub region: String,
    pub id: String,
    /// `listed in release/2.6.3`, `Version tag 2.6.3`, ...
    pub sources: Vec<String>,
}

/// The image's present state in AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub exists: bool,
    pub public: bool,
    pub deprecation: Option<String>,
    pub users: Vec<String>,
    pub snapshots: Vec<String>,
    /// `BUCKET/PREFIX` of its bundle (manifest location or run record).
    pub bundle: Option<String>,
    /// Listed in the current `ami_ids.json`.
    pub in_registry: bool,
    pub protection: DeregistrationProtection,
}

/// EC2 deregistration protection, as `describe-images` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeregistrationProtection {
    #[default]
    Off,
    On {
        cooldown: bool,
    },
    /// Lifted, but with the cooldown AWS keeps it until this time.
    CoolingUntil(String),
}

impl DeregistrationProtection {
    /// `disabled`, `enabled-with-cooldown`, `enabled-without-cooldown`, `enabled`, or
    /// `disabled-until TIME` (the stand-in) / `disabled-until-TIME`; empty: not said.
    pub fn parse(field: &str) -> DeregistrationProtection {
        if let Some(until) = field.strip_prefix("disabled-until") {
            return DeregistrationProtection::CoolingUntil(
                until.trim_start_matches([' ', '-']).to_string(),
            );
        }
        match field.strip_prefix("enabled") {
            Some(rest) => DeregistrationProtection::On {
                cooldown: rest == "-with-cooldown",
            },
            None => DeregistrationProtection::Off,
        }
    }

    /// Whether it still blocks a deregistration at `now`.
    pub fn blocks(&self, now: u64) -> bool {
        match self {
            DeregistrationProtection::Off => false,
            DeregistrationProtection::On { .. } => true,
            DeregistrationProtection::CoolingUntil(until) => {
                time::parse_time(until).map_or(true, |until| now < until)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub deprecate_at: u64,
    pub grace_days: u64,
    pub even_if_used: bool,
    pub now: u64,
}

/// One stage for one image: what it does, or why it is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub stage: Stage,
    pub region: String,
    pub id: String,
    pub action: Result<Action, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deprecate {
        at: String,
    },
    MakePrivate,
    Deregister {
        snapshots: Vec<String>,
        bundle: Option<String>,
        /// Its deregistration protection is lifted first.
        lift: bool,
    },
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::Deprecate { at } => format!("deprecate at {at}"),
            Action::MakePrivate => "make private (remove launch permission `all`)".into(),
            Action::Deregister {
                snapshots,
                bundle,
                lift,
            } => {
                let mut text = String::from(match lift {
                    true => "lift deregistration protection, deregister",
                    false => "deregister",
                });
                if !snapshots.is_empty() {
                    text.push_str(&format!(", delete snapshot(s) {}", snapshots.join(", ")));
                }
                if let Some(bundle) = bundle {
                    text.push_str(&format!(", delete bundle s3://{bundle}/"));
                }
                text
            }
        }
    }
}

/// `now` rounded up to the next whole minute: AWS takes no deprecation time in the past.
pub fn deprecate_now(now: u64) -> u64 {
    (now / 60 + 1) * 60
}

/// What `retire` refuses before it looks at any image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`--at`: {0}")]
    BadTime(String),
    #[error("`--at {0}` is in the past: AWS deprecates only at a future time; leave `--at` out to deprecate now")]
    PastTime(String),
}

/// When `--deprecate` deprecates: `--at` (which must be in the future), else now (rounded up).
pub fn deprecation_time(at: Option<&str>, now: u64) -> Result<u64, Refusal> {
    let Some(text) = at else {
        return Ok(deprecate_now(now));
    };
    let at = time::parse_time(text).map_err(|e| Refusal::BadTime(e.to_string()))?;
    if at <= now {
        return Err(Refusal::PastTime(text.to_string()));
    }
    Ok(at)
}

/// The images of a release as git lists them: id to its region (when a listing names it) and
/// where it is listed.
pub type Listing = BTreeMap<String, (Option<String>, Vec<String>)>;

/// What the release tag `tag_name` lists (its message) and what its release commit (`commit`)
/// added to `ami_ids.json` (`before`: the registry's AMIs at its parent; `after`: at the commit).
pub fn listing(
    tag_name: &str,
    message: &str,
    commit: &str,
    registry_change: Option<(&[Listed], &[Listed])>,
) -> Listing {
    let mut listed = Listing::new();
    for ami in protect::tag_amis(message) {
        add(&mut listed, ami, format!("listed in {tag_name}"));
    }
    if let Some((before, after)) = registry_change {
        let short = &commit[..7.min(commit.len())];
        for ami in after.iter().filter(|a| !before.contains(a)) {
            let source = format!("added to `{REGISTRY_PATH}` by {short}");
            add(&mut listed, ami.clone(), source);
        }
    }
    listed
}

fn add(listed: &mut Listing, ami: Listed, source: String) {
    let entry = listed.entry(ami.id).or_insert((None, Vec::new()));
    if entry.0.is_none() {
        entry.0 = ami.region;
    }
    if !entry.1.contains(&source) {
        entry.1.push(source);
    }
}

/// What one region holds of a release, as AWS answered.
#[derive(Debug, Clone)]
pub struct RegionFacts<'a> {
    pub region: &'a str,
    pub version: &'a str,
    /// The images found: those tagged with the version, and those the listing names here.
    pub seen: &'a [Image],
    /// Image id to what uses it.
    pub users: BTreeMap<String, Vec<String>>,
    pub in_registry: &'a BTreeSet<String>,
    /// Image id to its bundle (`BUCKET/PREFIX`).
    pub bundles: BTreeMap<String, String>,
}

/// Every image of the release in one region (listed there or found by its `Version` tag), with
/// its present state; a listed image AWS did not answer for does not exist.
pub fn region_images(listed: &Listing, facts: &RegionFacts) -> Vec<(Target, State)> {
    let region = facts.region;
    let mut ids: BTreeSet<&str> = listed
        .iter()
        .filter(|(_, (r, _))| r.as_deref() == Some(region))
        .map(|(id, _)| id.as_str())
        .collect();
    ids.extend(facts.seen.iter().map(|i| i.id.as_str()));
    let mut images = Vec::new();
    for id in ids {
        let image = facts.seen.iter().find(|i| i.id == id);
        let mut sources = listed.get(id).map(|(_, s)| s.clone()).unwrap_or_default();
        if image.is_some_and(|i| i.version == facts.version) {
            sources.push(format!("tagged Version {}", facts.version));
        }
        let in_registry = facts.in_registry.contains(id);
        let state = match image {
            Some(image) => State {
                exists: true,
                public: image.public,
                deprecation: image.deprecation.clone(),
                users: facts.users.get(id).cloned().unwrap_or_default(),
                snapshots: image.snapshots.clone(),
                bundle: facts.bundles.get(id).cloned(),
                in_registry,
                protection: DeregistrationProtection::parse(&image.deregistration_protection),
            },
            None => State {
                in_registry,
                ..State::default()
            },
        };
        let target = Target {
            region: region.to_string(),
            id: id.to_string(),
            sources,
        };
        images.push((target, state));
    }
    images
}

/// Every stage for every image, in stage order, each judged on the state the earlier stages
/// leave (a deprecation in this run counts for the grace of a deregistration in this run).
pub fn plan(images: &[(Target, State)], stages: &[Stage], settings: &Settings) -> Vec<Step> {
    let mut steps = Vec::new();
    for (target, state) in images {
        let mut state = state.clone();
        for &stage in stages {
            let action = judge(stage, &state, settings);
            if let Ok(action) = &action {
                match action {
                    Action::Deprecate { at } => state.deprecation = Some(at.clone()),
                    Action::MakePrivate => state.public = false,
                    Action::Deregister { .. } => state.exists = false,
                }
            }
            steps.push(Step {
                stage,
                region: target.region.clone(),
                id: target.id.clone(),
                action,
            });
        }
    }
    steps
}

fn judge(stage: Stage, state: &State, settings: &Settings) -> Result<Action, String> {
    if !state.exists {
        return Err("skip: the image does not exist (already deregistered?)".into());
    }
    let used = || -> Result<(), String> {
        if state.users.is_empty() || settings.even_if_used {
            Ok(())
        } else {
            Err(format!(
                "skip: in use by {} (`--even-if-used` overrides)",
                state.users.join(", ")
            ))
        }
    };
    match stage {
        Stage::Deprecate => {
            let at = time::iso(settings.deprecate_at);
            let same = state
                .deprecation
                .as_deref()
                .and_then(|d| time::parse_time(d).ok())
                == Some(settings.deprecate_at);
            if same {
                return Err(format!("skip: already deprecated at {at}"));
            }
            Ok(Action::Deprecate { at })
        }
        Stage::MakePrivate => {
            if !state.public {
                return Err("skip: already private".into());
            }
            if state.in_registry {
                return Err("refused: still listed in `ami_ids.json`, the published release: users launch it by id".into());
            }
            used()?;
            Ok(Action::MakePrivate)
        }
        Stage::Deregister => {
            if state.public {
                return Err(
                    "refused: still public; make it private first (`--make-private`)".into(),
                );
            }
            if state.in_registry {
                return Err("refused: still listed in `ami_ids.json`, the published release; publish its replacement first".into());
            }
            let Some(deprecation) = &state.deprecation else {
                return Err(format!(
                    "refused: not deprecated; deprecate it first (`--deprecate`) and deregister after {} day(s) of grace",
                    settings.grace_days
                ));
            };
            if settings.grace_days > 0 {
                let since = time::parse_time(deprecation).unwrap_or(settings.now);
                let until = since + settings.grace_days * time::DAY;
                if settings.now < until {
                    return Err(format!(
                        "refused: deprecated at {deprecation}, less than {} day(s) ago; deregister after {} (or shorten `--grace`)",
                        settings.grace_days,
                        time::iso(until)
                    ));
                }
            }
            used()?;
            if let DeregistrationProtection::CoolingUntil(until) = &state.protection {
                if state.protection.blocks(settings.now) {
                    return Err(format!(
                        "refused: deregistration protection is lifted, but AWS keeps it until {until} (24-hour cooldown); run the same command after {until}"
                    ));
                }
            }
            Ok(Action::Deregister {
                snapshots: state.snapshots.clone(),
                bundle: state.bundle.clone(),
                lift: matches!(state.protection, DeregistrationProtection::On { .. }),
            })
        }
    }
}

/// The plan by region: each image with its present state, then its steps.
pub fn render(images: &[(Target, State)], steps: &[Step]) -> String {
    let mut out = String::new();
    let mut region = "";
    for (target, state) in images {
        if target.region != region {
            region = &target.region;
            out.push_str(&format!("{region}\n"));
        }
        let mut facts = Vec::new();
        if state.exists {
            facts.push(if state.public { "public" } else { "private" }.to_string());
            facts.push(match &state.deprecation {
                Some(at) => format!("deprecated at {at}"),
                None => "not deprecated".into(),
            });
            if !state.users.is_empty() {
                facts.push(format!("in use by {}", state.users.join(", ")));
            }
            if state.in_registry {
                facts.push("in `ami_ids.json`".into());
            }
            match &state.protection {
                DeregistrationProtection::Off => {}
                DeregistrationProtection::On { .. } => {
                    facts.push("protected from deregistration".into())
                }
                DeregistrationProtection::CoolingUntil(until) => {
                    facts.push(format!("deregistration protection until {until}"))
                }
            }
        } else {
            facts.push("does not exist".into());
        }
        out.push_str(&format!(
            "  {}  {}  ({})\n",
            target.id,
            facts.join(", "),
            target.sources.join("; ")
        ));
        for step in steps
            .iter()
            .filter(|s| s.id == target.id && s.region == target.region)
        {
            let text = match &step.action {
                Ok(action) => action.describe(),
                Err(why) => why.clone(),
            };
            out.push_str(&format!("    {:<13} {text}\n", step.stage.name()));
        }
    }
    out
}

/// `build/retired.json`: every executed stage of every retirement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retired {
    pub retirements: Vec<Retirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retirement {
    pub version: String,
    /// `deprecate`, `make-private` or `deregister`.
    pub stage: String,
    /// When the stage ran (UTC).
    pub time: String,
    /// Against the local stand-in (a rehearsal), not AWS.
    #[serde(default)]
    pub local: bool,
    pub images: Vec<ImageResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageResult {
    pub region: String,
    pub id: String,
    /// `done`, `skipped` or `failed`.
    pub result: String,
    pub detail: String,
}

/// `build/retired.json` is not a record this tool wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{RETIRED_PATH}` is not a valid record: {0}; restore it from git (`git checkout -- {RETIRED_PATH}`)")]
pub struct BadRecord(String);

pub fn parse_retired(text: &str) -> Result<Retired, BadRecord> {
    crate::pure::json::parse(text).map_err(|e| BadRecord(e.to_string()))
}

pub fn render_retired(retired: &Retired) -> String {
    serde_json::to_string_pretty(retired).expect("a record serializes") + "\n"
}

impl Retired {
    /// The stages done for an image of a version (in AWS, or in the stand-in for `local`).
    pub fn done(&self, id: &str, local: bool) -> BTreeSet<String> {
        self.retirements
            .iter()
            .filter(|r| r.local == local)
            .filter(|r| r.images.iter().any(|i| i.id == id && i.result == "done"))
            .map(|r| r.stage.clone())
            .collect()
    }
}

pub fn commit_message(
    version: &str,
    stages: &[Stage],
    results: &[(Stage, Vec<ImageResult>)],
    local: bool,
) -> String {
    let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
    let mut out = format!(
        "Retire ComboAMI {version}: {}{}\n\n",
        names.join(", "),
        if local { " (local stand-in)" } else { "" }
    );
    out.push_str(&format!(
        "Record the executed stages in `{RETIRED_PATH}`.\n\n"
    ));
    for (stage, images) in results {
        for image in images {
            out.push_str(&format!(
                "{:<13} {:<15} {}  {}: {}\n",
                stage.name(),
                image.region,
                image.id,
                image.result,
                image.detail
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(public: bool, deprecation: Option<&str>) -> (Target, State) {
        (
            Target {
                region: "us-east-1".into(),
                id: "ami-11111111".into(),
                sources: vec!["listed in release/2.6.3".into()],
            },
            State {
                exists: true,
                public,
                deprecation: deprecation.map(String::from),
                snapshots: vec!["snap-1".into()],
                bundle: Some("b/1-1404-hvm".into()),
                ..State::default()
            },
        )
    }

    const NOW: u64 = 1_795_573_423; // 2026-11-25T02:23:43Z

    fn settings(grace_days: u64) -> Settings {
        Settings {
            deprecate_at: deprecate_now(NOW),
            grace_days,
            even_if_used: false,
            now: NOW,
        }
    }

    #[test]
    fn the_deprecation_time_is_now_or_a_future_at() {
        let now = time::parse_time("2026-11-25T02:23:30Z").unwrap();
        assert_eq!(deprecation_time(None, now), Ok(now + 30));
        let later = deprecation_time(Some("2027-01-01"), now).unwrap();
        assert_eq!(time::iso(later), "2027-01-01T00:00:00Z");
        let past = deprecation_time(Some("2026-01-01"), now).unwrap_err();
        assert!(
            past.to_string()
                .contains("`--at 2026-01-01` is in the past"),
            "{past}"
        );
        assert!(matches!(
            deprecation_time(Some("soon"), now),
            Err(Refusal::BadTime(_))
        ));
    }

    #[test]
    fn the_listing_joins_the_tag_and_what_the_release_commit_added() {
        let listed = |region: &str, id: &str| Listed {
            region: Some(region.into()),
            id: id.into(),
        };
        let before = [listed("us-east-1", "ami-00000000")];
        let after = [
            listed("us-east-1", "ami-00000000"),
            listed("us-east-1", "ami-11111111"),
            listed("eu-west-1", "ami-22222222"),
        ];
        let listing = listing(
            "release/2.6.3",
            "Release 2.6.3\n\nus-east-1 ami-11111111\n",
            "0123456789abcdef",
            Some((&before, &after)),
        );
        assert_eq!(listing.len(), 2, "{listing:#?}");
        assert_eq!(
            listing["ami-11111111"],
            (
                Some("us-east-1".to_string()),
                vec![
                    "listed in release/2.6.3".to_string(),
                    "added to `ami_ids.json` by 0123456".to_string()
                ]
            )
        );
        assert_eq!(
            listing["ami-22222222"].1,
            ["added to `ami_ids.json` by 0123456"]
        );
    }

    #[test]
    fn a_region_holds_listed_and_tagged_images_with_their_state() {
        let listing: Listing = [
            (
                "ami-11111111".to_string(),
                (
                    Some("us-east-1".to_string()),
                    vec!["listed in release/2.6.3".to_string()],
                ),
            ),
            (
                "ami-22222222".to_string(),
                (Some("eu-west-1".to_string()), vec!["elsewhere".to_string()]),
            ),
        ]
        .into();
        let seen = [Image {
            id: "ami-33333333".into(),
            version: "2.6.3".into(),
            public: true,
            snapshots: vec!["snap-1".into()],
            ..Image::default()
        }];
        let in_registry: BTreeSet<String> = ["ami-11111111".to_string()].into();
        let facts = RegionFacts {
            region: "us-east-1",
            version: "2.6.3",
            seen: &seen,
            users: [(
                "ami-33333333".to_string(),
                vec!["instance i-1 (running)".to_string()],
            )]
            .into(),
            in_registry: &in_registry,
            bundles: [("ami-33333333".to_string(), "b/p".to_string())].into(),
        };
        let images = region_images(&listing, &facts);
        let ids: Vec<&str> = images.iter().map(|(t, _)| t.id.as_str()).collect();
        assert_eq!(ids, ["ami-11111111", "ami-33333333"]);
        let (gone, gone_state) = &images[0];
        assert_eq!(gone.sources, ["listed in release/2.6.3"]);
        assert!(!gone_state.exists && gone_state.in_registry);
        let (tagged, state) = &images[1];
        assert_eq!(tagged.sources, ["tagged Version 2.6.3"]);
        assert!(state.exists && state.public && !state.in_registry);
        assert_eq!(state.users, ["instance i-1 (running)"]);
        assert_eq!(
            (state.snapshots.as_slice(), state.bundle.as_deref()),
            (&["snap-1".to_string()][..], Some("b/p"))
        );
    }

    #[test]
    fn stages_build_on_each_other_in_one_run() {
        let all = [Stage::Deprecate, Stage::MakePrivate, Stage::Deregister];
        let steps = plan(&[image(true, None)], &all, &settings(0));
        assert_eq!(
            steps[0].action,
            Ok(Action::Deprecate {
                at: "2026-11-25T02:24:00Z".into()
            })
        );
        assert_eq!(steps[1].action, Ok(Action::MakePrivate));
        assert!(matches!(steps[2].action, Ok(Action::Deregister { .. })));
        let steps = plan(&[image(true, None)], &all, &settings(30));
        assert!(steps[2]
            .action
            .as_ref()
            .unwrap_err()
            .contains("less than 30 day(s) ago"));
    }

    #[test]
    fn deregister_refuses_public_listed_undeprecated_and_recent_images() {
        let deregister = [Stage::Deregister];
        let why = |image: (Target, State), grace| {
            plan(&[image], &deregister, &settings(grace))[0]
                .action
                .clone()
                .unwrap_err()
        };
        assert!(why(image(true, Some("2026-01-01T00:00:00.000Z")), 30).contains("still public"));
        assert!(why(image(false, None), 30).contains("not deprecated"));
        assert!(why(image(false, Some("2026-11-20T00:00:00.000Z")), 30)
            .contains("deregister after 2026-12-20T00:00:00Z"));
        let mut listed = image(false, Some("2026-01-01T00:00:00.000Z"));
        listed.1.in_registry = true;
        assert!(why(listed, 0).contains("`ami_ids.json`"));
        let mut used = image(false, Some("2026-01-01T00:00:00.000Z"));
        used.1.users = vec!["instance i-1 (running)".into()];
        assert!(why(used.clone(), 30).contains("in use by instance i-1 (running)"));
        let even = Settings {
            even_if_used: true,
            ..settings(30)
        };
        assert_eq!(
            plan(&[used.clone()], &deregister, &even)[0].action,
            Ok(Action::Deregister {
                snapshots: vec!["snap-1".into()],
                bundle: Some("b/1-1404-hvm".into()),
                lift: false,
            })
        );
        // Protected: lifted first; within the cooldown: refused, saying when it may run.
        let mut protected = used.clone();
        protected.1.protection = DeregistrationProtection::parse("enabled-with-cooldown");
        let lifted = plan(&[protected.clone()], &deregister, &even)[0]
            .action
            .clone();
        assert!(
            matches!(lifted, Ok(Action::Deregister { lift: true, .. })),
            "{lifted:?}"
        );
        assert!(lifted
            .unwrap()
            .describe()
            .starts_with("lift deregistration protection, deregister"));
        let until = time::iso(even.now + time::DAY);
        protected.1.protection =
            DeregistrationProtection::parse(&format!("disabled-until {until}"));
        assert_eq!(
            plan(&[protected.clone()], &deregister, &even)[0].action,
            Err(format!("refused: deregistration protection is lifted, but AWS keeps it until {until} (24-hour cooldown); run the same command after {until}"))
        );
        // The cooldown is over: it goes.
        let late = Settings {
            now: even.now + 2 * time::DAY,
            ..even.clone()
        };
        assert!(plan(&[protected], &deregister, &late)[0].action.is_ok());
        assert_eq!(
            DeregistrationProtection::parse("disabled-until-2026-01-02T03:04:05Z"),
            DeregistrationProtection::CoolingUntil("2026-01-02T03:04:05Z".into())
        );
        assert_eq!(
            DeregistrationProtection::parse(""),
            DeregistrationProtection::Off
        );
        let mut gone = image(false, None);
        gone.1.exists = false;
        assert!(why(gone, 0).contains("does not exist"));
    }

    #[test]
    fn the_plan_names_state_and_steps_by_region() {
        let images = [image(true, None)];
        let steps = plan(&images, &[Stage::MakePrivate], &settings(30));
        let text = render(&images, &steps);
        assert_eq!(
            text,
            "us-east-1\n  ami-11111111  public, not deprecated  (listed in release/2.6.3)\n    make-private  make private (remove launch permission `all`)\n"
        );
    }

    #[test]
    fn the_record_round_trips_and_answers_what_was_done() {
        let retired = Retired {
            retirements: vec![Retirement {
                version: "2.6.3".into(),
                stage: "deprecate".into(),
                time: "2026-11-25T02:23:43Z".into(),
                local: true,
                images: vec![ImageResult {
                    region: "us-east-1".into(),
                    id: "ami-11111111".into(),
                    result: "done".into(),
                    detail: "deprecate at 2026-11-25T02:24:00Z".into(),
                }],
            }],
        };
        let text = render_retired(&retired);
        assert_eq!(parse_retired(&text), Ok(retired.clone()));
        assert_eq!(
            retired.done("ami-11111111", true),
            ["deprecate".to_string()].into()
        );
        assert!(retired.done("ami-11111111", false).is_empty());
        assert!(parse_retired("{}")
            .unwrap_err()
            .to_string()
            .contains(RETIRED_PATH));
    }
}
