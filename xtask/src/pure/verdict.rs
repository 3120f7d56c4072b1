//! The verdict an image carries in the cloud, so that any machine can tell what was proven:
//! `Verified=<sha256 of its image report>` when its checks passed, `Rejected=<reason>` when they
//! did not. Adoption (a resume, or a rerun on a machine without the run folder) takes an image
//! only when its verdict is `Verified`, the report it is given has that digest and passes its
//! checks again, and its tags are the run's own. Also: EC2's deregistration protection as
//! `describe-images` shows it. Pure: the callers read tags, reports and answers.
// Wired in by the issue-18 integration.
#![allow(dead_code)]

use crate::pure::{json, sha256, time};
use serde_json::Value;
use std::collections::BTreeMap;

/// The tag key of a passing verdict; its value is the report's SHA-256 in hex.
pub const VERIFIED: &str = "Verified";
/// The tag key of a failing verdict; its value is the reason, fit for a tag.
pub const REJECTED: &str = "Rejected";
/// The longest tag value AWS accepts, in characters.
pub const TAG_VALUE_MAX: usize = 256;

/// An image's tags, key to value.
pub type Tags = BTreeMap<String, String>;

/// Tags from (key, value) pairs, as the cloud answers list them.
pub fn tags<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Verified { digest: String },
    Rejected { reason: String },
}

impl Verdict {
    /// The verdict of a report that passed its checks: its digest, byte for byte.
    pub fn verified(report: &str) -> Verdict {
        Verdict::Verified {
            digest: sha256::hex(report.as_bytes()),
        }
    }

    /// The verdict of a failed check, the reason made fit for a tag value.
    pub fn rejected(reason: &str) -> Verdict {
        Verdict::Rejected {
            reason: tag_value(reason),
        }
    }

    /// The one tag that records it.
    pub fn tag(&self) -> (&'static str, &str) {
        match self {
            Verdict::Verified { digest } => (VERIFIED, digest),
            Verdict::Rejected { reason } => (REJECTED, reason),
        }
    }

    /// The verdict an image's tags record: none, one, or an error when they contradict
    /// themselves (both keys) or the digest is not one.
    pub fn from_tags(tags: &Tags) -> Result<Option<Verdict>, String> {
        match (tags.get(VERIFIED), tags.get(REJECTED)) {
            (Some(_), Some(_)) => Err(format!(
                "it carries both `{VERIFIED}` and `{REJECTED}` tags"
            )),
            (Some(digest), None) if is_digest(digest) => Ok(Some(Verdict::Verified {
                digest: digest.clone(),
            })),
            (Some(digest), None) => Err(format!(
                "its `{VERIFIED}` tag `{digest}` is not a SHA-256 digest"
            )),
            (None, Some(reason)) => Ok(Some(Verdict::Rejected {
                reason: reason.clone(),
            })),
            (None, None) => Ok(None),
        }
    }
}

fn is_digest(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `text` as a tag value every AWS service accepts: letters, digits, spaces and `+ - = . _ : / @`
/// (backticks and quotes dropped, anything else a space, spaces collapsed), not starting with
/// AWS's reserved `aws:`, at most [`TAG_VALUE_MAX`] characters, cut after a word with `...`.
pub fn tag_value(text: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " +-=._:/@".contains(c);
    let cleaned: String = text
        .chars()
        .filter(|c| !"`'\"".contains(*c))
        .map(|c| if allowed(c) { c } else { ' ' })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut value = words.join(" ");
    if value.is_empty() {
        value = "no reason given".into();
    }
    // AWS reserves the `aws:` prefix in keys and values (any case).
    if value
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
    {
        value.insert_str(0, "reason ");
    }
    if value.len() > TAG_VALUE_MAX {
        // Cut at a word's end where there is one, to leave no half word before the dots.
        value.truncate(TAG_VALUE_MAX - 3);
        if let Some(space) = value.rfind(' ') {
            value.truncate(space);
        }
        value.push_str("...");
    }
    value
}

/// What the run expects of an image it may adopt.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub project: &'a str,
    pub version: &'a str,
    /// The commit the run builds from (the image's `Commit` tag).
    pub commit: &'a str,
    /// The builder (matrix row) the image is for; its report names it.
    pub builder: &'a str,
    /// `official`, `test-ebs` or `test-instance` (the image's `Kind` tag).
    pub kind: &'a str,
}

/// An image found under the run's name or by the run's tags.
#[derive(Debug, Clone)]
pub struct Found<'a> {
    pub id: &'a str,
    /// `available`, `pending`, `failed`... as `describe-images` says.
    pub state: &'a str,
    pub public: bool,
    pub tags: &'a Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// Verified, its report re-checked, and the run's own: it counts as built.
    Adopt,
    /// Not adoptable; the builder is built again (under a new name while this image holds
    /// the old one).
    Rebuild { reason: String },
    /// A private image this tool rejected under the run's name: deregister it (with its
    /// snapshots), then build the builder again under the same name.
    RemoveRejected { reason: String },
}

/// Decides what a run does with an image it finds: `report` is the image report kept for it
/// (run folder, or the copy stored beside the image), `check` the run's check of a report
/// (`pure::report::check` with the run's expectations).
pub fn adoption(
    found: &Found,
    report: Option<&str>,
    expected: &Expected,
    check: &dyn Fn(&str) -> Result<(), String>,
) -> Adoption {
    let rebuild = |why: String| Adoption::Rebuild {
        reason: format!("{} is not adopted: {why}", found.id),
    };
    if let Some(why) = not_the_runs(found.tags, expected) {
        return rebuild(why);
    }
    let verdict = match Verdict::from_tags(found.tags) {
        Ok(verdict) => verdict,
        Err(why) => return rebuild(why),
    };
    let digest = match verdict {
        None => return rebuild("it has no verdict (it was never checked, or its check was interrupted)".into()),
        Some(Verdict::Rejected { reason }) if found.public => {
            return rebuild(format!(
                "it was rejected ({reason}) but is public; make it private before anything removes it"
            ))
        }
        Some(Verdict::Rejected { reason }) => {
            return Adoption::RemoveRejected {
                reason: format!(
                    "{} was rejected ({reason}) and is private: it is deregistered, with its snapshots, so the builder can be built again under its name",
                    found.id
                ),
            }
        }
        Some(Verdict::Verified { digest }) => digest,
    };
    if found.state != "available" {
        return rebuild(format!("it is `{}`, not `available`", found.state));
    }
    let Some(report) = report else {
        return rebuild(
            "its image report is not here (not in the run folder, nor stored beside the image)"
                .into(),
        );
    };
    if sha256::hex(report.as_bytes()) != digest {
        return rebuild(format!(
            "its image report is not the one it was verified with (digest {}, `{VERIFIED}` says {digest})",
            sha256::hex(report.as_bytes())
        ));
    }
    match report_builder(report) {
        Some(builder) if builder == expected.builder => {}
        Some(builder) => {
            return rebuild(format!(
                "its image report is of builder `{builder}`, not `{}`",
                expected.builder
            ))
        }
        None => return rebuild("its image report names no builder".into()),
    }
    match check(report) {
        Ok(()) => Adoption::Adopt,
        Err(why) => rebuild(format!("its image report fails its checks again: {why}")),
    }
}

/// Why the image's tags are not the run's, if they are not: project, kind, version, commit.
fn not_the_runs(tags: &Tags, expected: &Expected) -> Option<String> {
    let checks = [
        ("Project", expected.project),
        ("Kind", expected.kind),
        ("Version", expected.version),
        ("Commit", expected.commit),
    ];
    let wrong: Vec<String> = checks
        .iter()
        .filter(|(key, want)| tags.get(*key).map(String::as_str) != Some(want))
        .map(|(key, want)| match tags.get(*key) {
            Some(have) => format!("`{key}` is `{have}`, the run's is `{want}`"),
            None => format!("it has no `{key}` tag (the run's is `{want}`)"),
        })
        .collect();
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// The `builder` a report names (`provision.sh` writes Packer's build name there).
fn report_builder(report: &str) -> Option<String> {
    let value: Value = json::parse(report).ok()?;
    value["builder"].as_str().map(String::from)
}

/// EC2's deregistration protection of an image, from the `DeregistrationProtection` field of
/// `describe-images`: `disabled`, `enabled-without-cooldown`, `enabled-with-cooldown` (AWS's
/// values), and `disabled-until TIME` while a disabled cooldown runs (the stand-in's form; see
/// `build/local/standin_server.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    Disabled,
    Enabled {
        cooldown: bool,
    },
    /// Disabled, but its 24-hour cooldown runs until `until` (seconds since the epoch).
    CoolingDown {
        until: u64,
    },
    /// A value this tool does not know, or none: taken as protecting (never deregistered on a
    /// guess) and reported by `audit`.
    Unknown(String),
}

pub fn parse_protection(field: Option<&str>) -> Protection {
    let Some(text) = field.map(str::trim) else {
        return Protection::Unknown(String::new());
    };
    match text {
        "disabled" => Protection::Disabled,
        "enabled-without-cooldown" | "enabled" => Protection::Enabled { cooldown: false },
        "enabled-with-cooldown" => Protection::Enabled { cooldown: true },
        _ => match text.strip_prefix("disabled-until ").map(time::parse_time) {
            Some(Ok(until)) => Protection::CoolingDown { until },
            _ => Protection::Unknown(text.to_string()),
        },
    }
}

/// Every image's protection in a `describe-images` answer, by image id.
pub fn protections(answer: &str) -> Result<BTreeMap<String, Protection>, String> {
    let value: Value = json::parse(answer)
        .map_err(|e| format!("the `describe-images` answer is not JSON: {e}"))?;
    let images = value["Images"]
        .as_array()
        .ok_or("the `describe-images` answer has no `Images` list")?;
    Ok(images
        .iter()
        .filter_map(|image| {
            let id = image["ImageId"].as_str()?;
            let field = image["DeregistrationProtection"].as_str();
            Some((id.to_string(), parse_protection(field)))
        })
        .collect())
}

impl Protection {
    /// Whether `DeregisterImage` would be refused at `now` (seconds since the epoch).
    pub fn blocks_deregistration(&self, now: u64) -> bool {
        match self {
            Protection::Disabled => false,
            Protection::CoolingDown { until } => *until > now,
            Protection::Enabled { .. } | Protection::Unknown(_) => true,
        }
    }

    /// How a plan or `audit` names it.
    pub fn describe(&self) -> String {
        match self {
            Protection::Disabled => "not protected from deregistration".into(),
            Protection::Enabled { cooldown: true } => {
                "protected from deregistration (24-hour cooldown)".into()
            }
            Protection::Enabled { cooldown: false } => {
                "protected from deregistration (no cooldown)".into()
            }
            Protection::CoolingDown { until } => format!(
                "protection disabled, in its cooldown until {}",
                time::iso(*until)
            ),
            Protection::Unknown(text) if text.is_empty() => {
                "deregistration protection not shown by `describe-images`".into()
            }
            Protection::Unknown(text) => {
                format!("deregistration protection `{text}` (unknown to this tool)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
    "builder": "us-east-1-1404-hvm",
    "version": "2.6.8",
    "branch": "2.6",
    "comboami_commit": "8de7e41622133c7367ceb2783048f82ba12b74de"
}
"#;

    fn expected() -> Expected<'static> {
        Expected {
            project: "comboami",
            version: "2.6.8",
            commit: "abc1234",
            builder: "us-east-1-1404-hvm",
            kind: "official",
        }
    }

    fn image_tags(verdict: Option<(&str, &str)>) -> Tags {
        let mut tags = tags([
            ("Project", "comboami"),
            ("Version", "2.6.8"),
            ("Commit", "abc1234"),
            ("Kind", "official"),
            ("RunId", "official-20261129-101010"),
        ]);
        if let Some((k, v)) = verdict {
            tags.insert(k.into(), v.into());
        }
        tags
    }

    fn decide(tags: &Tags, public: bool, report: Option<&str>) -> Adoption {
        let found = Found {
            id: "ami-0123456789abcdef0",
            state: "available",
            public,
            tags,
        };
        adoption(&found, report, &expected(), &|_| Ok(()))
    }

    fn verified() -> String {
        sha256::hex(REPORT.as_bytes())
    }

    #[test]
    fn a_verified_image_of_the_run_with_its_report_is_adopted() {
        let tags = image_tags(Some((VERIFIED, &verified())));
        assert_eq!(decide(&tags, true, Some(REPORT)), Adoption::Adopt);
        assert_eq!(
            Verdict::verified(REPORT).tag(),
            (VERIFIED, verified().as_str())
        );
    }

    #[test]
    fn every_reason_not_to_adopt_is_said() {
        let digest = verified();
        let cases: Vec<(Tags, Option<&str>, &str)> = vec![
            (image_tags(None), Some(REPORT), "ami-0123456789abcdef0 is not adopted: it has no verdict (it was never checked, or its check was interrupted)"),
            (image_tags(Some((VERIFIED, &digest))), None, "ami-0123456789abcdef0 is not adopted: its image report is not here (not in the run folder, nor stored beside the image)"),
            (image_tags(Some((VERIFIED, &"0".repeat(64)))), Some(REPORT), "its image report is not the one it was verified with (digest"),
            (image_tags(Some((VERIFIED, "abc"))), Some(REPORT), "its `Verified` tag `abc` is not a SHA-256 digest"),
        ];
        for (tags, report, reason) in cases {
            match decide(&tags, false, report) {
                Adoption::Rebuild { reason: said } => assert!(said.contains(reason), "{said}"),
                other => panic!("{other:?} for {reason}"),
            }
        }
    }

    #[test]
    fn tags_of_another_version_commit_or_kind_are_named() {
        let mut tags = image_tags(Some((VERIFIED, &verified())));
        tags.insert("Version".into(), "2.6.8-wrong".into());
        tags.insert("Commit".into(), "fff0000".into());
        tags.remove("Kind");
        assert_eq!(
            decide(&tags, false, Some(REPORT)),
            Adoption::Rebuild {
                reason: "ami-0123456789abcdef0 is not adopted: it has no `Kind` tag (the run's is `official`), \
                         `Version` is `2.6.8-wrong`, the run's is `2.6.8`, `Commit` is `fff0000`, the run's is `abc1234`"
                    .into()
            }
        );
    }

    #[test]
    fn a_report_of_another_builder_or_failing_its_checks_is_not_adopted() {
        let other = REPORT.replace("us-east-1-1404-hvm", "eu-west-1-1404-hvm");
        let tags = image_tags(Some((VERIFIED, &sha256::hex(other.as_bytes()))));
        let Adoption::Rebuild { reason } = decide(&tags, false, Some(&other)) else {
            panic!("adopted another builder's image");
        };
        assert!(
            reason.ends_with(
                "its image report is of builder `eu-west-1-1404-hvm`, not `us-east-1-1404-hvm`"
            ),
            "{reason}"
        );

        let tags = image_tags(Some((VERIFIED, &verified())));
        let failed = Found {
            id: "ami-1",
            state: "failed",
            public: false,
            tags: &tags,
        };
        assert_eq!(
            adoption(&failed, Some(REPORT), &expected(), &|_| Ok(())),
            Adoption::Rebuild {
                reason: "ami-1 is not adopted: it is `failed`, not `available`".into()
            }
        );
        let found = Found {
            state: "available",
            ..failed
        };
        let failing = |_: &str| Err("version `2.6.8-wrong` was baked".to_string());
        assert_eq!(
            adoption(&found, Some(REPORT), &expected(), &failing),
            Adoption::Rebuild {
                reason: "ami-1 is not adopted: its image report fails its checks again: version `2.6.8-wrong` was baked".into()
            }
        );
    }

    #[test]
    fn a_private_rejected_image_is_removed_a_public_one_is_not() {
        let reason =
            Verdict::rejected("version `2.6.8-wrong` was baked, but `ds0_utils.py` says `2.6.8`");
        let (key, value) = reason.tag();
        let tags = image_tags(Some((key, value)));
        assert_eq!(
            decide(&tags, false, Some(REPORT)),
            Adoption::RemoveRejected {
                reason: "ami-0123456789abcdef0 was rejected (version 2.6.8-wrong was baked but ds0_utils.py says 2.6.8) \
                         and is private: it is deregistered, with its snapshots, so the builder can be built again under its name"
                    .into()
            }
        );
        let Adoption::Rebuild { reason } = decide(&tags, true, Some(REPORT)) else {
            panic!("a public image would be removed");
        };
        assert!(
            reason.contains("but is public; make it private"),
            "{reason}"
        );
        let mut both = tags.clone();
        both.insert(VERIFIED.into(), verified());
        assert!(
            matches!(decide(&both, false, Some(REPORT)), Adoption::Rebuild { reason } if reason.contains("both"))
        );
    }

    #[test]
    fn rejection_reasons_fit_a_tag() {
        assert_eq!(
            tag_value("version `2.6.8-wrong` was baked; the \"hook\" is missing\n(see log)"),
            "version 2.6.8-wrong was baked the hook is missing see log"
        );
        assert_eq!(tag_value(" ;; "), "no reason given");
        let long = tag_value(&"word ".repeat(100));
        assert!(
            long.len() <= TAG_VALUE_MAX && long.len() > 240,
            "{}",
            long.len()
        );
        assert!(long.ends_with(" word..."), "{long}");
        let unbroken = tag_value(&"x".repeat(300));
        assert_eq!(unbroken, format!("{}...", "x".repeat(253)));
        assert_eq!(tag_value("a/b:c=d+e@f_g.h-i"), "a/b:c=d+e@f_g.h-i");
        assert_eq!(tag_value("AWS: throttled"), "reason AWS: throttled");
    }

    #[test]
    fn protection_as_describe_images_shows_it() {
        assert_eq!(parse_protection(Some("disabled")), Protection::Disabled);
        assert_eq!(
            parse_protection(Some("enabled-with-cooldown")),
            Protection::Enabled { cooldown: true }
        );
        assert_eq!(
            parse_protection(Some("enabled-without-cooldown")),
            Protection::Enabled { cooldown: false }
        );
        let cooling = parse_protection(Some("disabled-until 2026-11-30T18:50:33.000Z"));
        let until = time::parse_time("2026-11-30T18:50:33Z").unwrap();
        assert_eq!(cooling, Protection::CoolingDown { until });
        assert!(cooling.blocks_deregistration(until - 1));
        assert!(!cooling.blocks_deregistration(until));
        assert_eq!(
            cooling.describe(),
            "protection disabled, in its cooldown until 2026-11-30T18:50:33Z"
        );
        assert!(parse_protection(None).blocks_deregistration(0));
        assert!(parse_protection(Some("locked"))
            .describe()
            .contains("`locked` (unknown"));
        assert!(!Protection::Disabled.blocks_deregistration(0));
    }

    #[test]
    fn protections_of_a_whole_answer() {
        let answer = r#"{"Images": [
            {"ImageId": "ami-11111111", "DeregistrationProtection": "enabled-with-cooldown"},
            {"ImageId": "ami-22222222"}]}"#;
        let found = protections(answer).unwrap();
        assert_eq!(
            found["ami-11111111"],
            Protection::Enabled { cooldown: true }
        );
        assert_eq!(found["ami-22222222"], Protection::Unknown(String::new()));
        assert!(protections("{}").unwrap_err().contains("no `Images` list"));
    }
}
