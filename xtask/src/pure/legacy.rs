//! Releases made before this tool (2.6.0-2.6.3): a plain tag like `2.6.3` at most, and images
//! without `Version` tags. What they published is found in the history of `ami_ids.json`: the
//! commit a plain tag names, else the newest commit whose `ds0_utils.py` holds the version,
//! else the newest whose message names it. Each is reported with what is missing and the one
//! command that adopts it (a `release/VERSION` tag listing its AMIs, which `retire`, `audit`
//! and cleanup's protection read). Pure: the caller reads git.

use crate::pure::protect::{registry_amis, Listed};
use crate::pure::registry;
use std::collections::BTreeSet;

/// One commit's `ami_ids.json` (the caller passes every commit that changed it, newest first,
/// and the commit of every plain version tag).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub commit: String,
    pub message: String,
    /// The version `ds0_utils.py` holds at that commit, when it can be read.
    pub ds0_version: Option<String>,
    pub registry: String,
}

/// How a legacy release's listing was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Already adopted: a `release/*` or `candidate/*` tag names the version.
    Tagged(String),
    /// The plain tag of the version names this commit.
    PlainTag(String),
    /// `ds0_utils.py` holds the version at this commit.
    Ds0,
    /// The commit message names the version.
    Message,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legacy {
    pub version: String,
    pub source: Source,
    /// The commit whose `ami_ids.json` lists the release (none when not found or tagged).
    pub commit: Option<String>,
    pub amis: Vec<Listed>,
    /// What is missing, one sentence each.
    pub missing: Vec<String>,
    /// The one command that adopts it, when one can.
    pub adopt: Option<String>,
}

/// A commit as people quote it; a tag read from the cloud may hold anything, so never panics.
pub fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// Whether a commit message names `version` as a word (`Release 2.6.2.` does, `2.6.20` not).
pub fn names(message: &str, version: &str) -> bool {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .any(|word| word.trim_end_matches('.') == version)
}

/// Finds what legacy release `version` listed. `tags` are (name, commit) of this clone's and
/// the remote's tags.
pub fn find(version: &str, snapshots: &[Snapshot], tags: &[(String, String)]) -> Legacy {
    let mut legacy = Legacy {
        version: version.to_string(),
        source: Source::NotFound,
        commit: None,
        amis: Vec::new(),
        missing: Vec::new(),
        adopt: None,
    };
    let tagged = [format!("release/{version}"), format!("candidate/{version}")];
    if let Some((name, _)) = tags.iter().find(|(name, _)| tagged.contains(name)) {
        legacy.source = Source::Tagged(name.clone());
        return legacy;
    }
    let plain = tags.iter().find(|(name, _)| name == version);
    let found = match plain {
        Some((name, commit)) => snapshots
            .iter()
            .find(|s| s.commit == *commit)
            .map(|s| (s, Source::PlainTag(name.clone()))),
        None => snapshots
            .iter()
            .find(|s| s.ds0_version.as_deref() == Some(version))
            .map(|s| (s, Source::Ds0))
            .or_else(|| {
                snapshots
                    .iter()
                    .find(|s| names(&s.message, version))
                    .map(|s| (s, Source::Message))
            }),
    };
    let Some((snapshot, source)) = found else {
        legacy.missing.push(match plain {
            Some((name, commit)) => format!(
                "the plain tag `{name}` names {}, whose `ami_ids.json` was not read",
                short(commit)
            ),
            None => format!(
                "no commit lists it: no tag `{version}`, no `ds0_utils.py` holding {version} in a commit that changed `ami_ids.json`, no commit message naming it"
            ),
        });
        return legacy;
    };
    legacy.source = source;
    legacy.commit = Some(snapshot.commit.clone());
    listed(&mut legacy, snapshot);
    legacy
}

/// Fills in the AMIs `snapshot` lists, what is missing, and the command that adopts them.
fn listed(legacy: &mut Legacy, snapshot: &Snapshot) {
    let version = legacy.version.clone();
    let at = short(&snapshot.commit).to_string();
    match registry::parse(&snapshot.registry) {
        Ok(registry) => legacy.amis = registry_amis(&registry),
        Err(e) => {
            legacy
                .missing
                .push(format!("`ami_ids.json` at {at} cannot be read: {e}"));
            return;
        }
    }
    legacy.missing.push(match &legacy.source {
        Source::PlainTag(name) => {
            format!("a `release/{version}` tag (only the plain tag `{name}`)")
        }
        _ => format!("a tag: neither `release/{version}` nor a plain `{version}`"),
    });
    match snapshot.ds0_version.as_deref() {
        Some(v) if v == version => {}
        Some(v) => legacy
            .missing
            .push(format!("`ds0_utils.py` at {at} holds {v}, not {version}")),
        None => legacy
            .missing
            .push(format!("`ds0_utils.py` at {at} names no version")),
    }
    legacy.adopt = Some(format!("cargo xtask tag {version} --commit {at}"));
}

/// Every legacy release the history knows: plain version tags and the versions `ds0_utils.py`
/// held in commits that changed `ami_ids.json`, older than `first_tool_release` (the first
/// `release/*` version), each found as [`find`] does.
pub fn all(
    snapshots: &[Snapshot],
    tags: &[(String, String)],
    first_tool_release: Option<&semver::Version>,
) -> Vec<Legacy> {
    let plain = tags.iter().map(|(name, _)| name.as_str());
    let held = snapshots.iter().filter_map(|s| s.ds0_version.as_deref());
    let versions: BTreeSet<semver::Version> = plain
        .chain(held)
        .filter_map(|v| semver::Version::parse(v).ok())
        .filter(|v| first_tool_release.is_none_or(|first| v < first))
        .collect();
    versions
        .iter()
        .map(|v| find(&v.to_string(), snapshots, tags))
        .collect()
}

impl Legacy {
    /// The lines `audit` and `retire` print for it.
    pub fn render(&self) -> String {
        let version = &self.version;
        let mut out = match (&self.source, &self.commit) {
            (Source::Tagged(tag), _) => {
                return format!("{version}: adopted (tag `{tag}` lists its AMIs)\n")
            }
            (Source::NotFound, _) | (_, None) => format!("{version}: not found\n"),
            (source, Some(commit)) => {
                let why = match source {
                    Source::PlainTag(name) => format!("the tag `{name}` names it"),
                    Source::Ds0 => format!("`ds0_utils.py` holds {version} there"),
                    _ => format!("its message names {version}"),
                };
                let regions: BTreeSet<_> = self.amis.iter().map(|a| &a.region).collect();
                format!(
                    "{version}: `ami_ids.json` at {} lists {} AMIs in {} regions ({why})\n",
                    short(commit),
                    self.amis.len(),
                    regions.len()
                )
            }
        };
        for missing in &self.missing {
            out.push_str(&format!("  missing: {missing}\n"));
        }
        match &self.adopt {
            Some(command) => out.push_str(&format!("  adopt:   `{command}`\n")),
            None => out.push_str(
                "  adopt:   nothing here lists its AMIs; find them by name in the cloud (`aws ec2 describe-images --owners self`)\n",
            ),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(ids: &[(&str, &str)]) -> String {
        let mut text = String::from("{");
        for (i, (region, id)) in ids.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            text.push_str(&format!(
                r#"{comma}"{region}": [{{"Distributor ID": "Ubuntu", "Release": "1404", "id": "{id}", "virtualization type": "hvm"}}]"#
            ));
        }
        text + "}"
    }

    fn snapshot(commit: &str, message: &str, ds0: Option<&str>, ids: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            commit: commit.into(),
            message: message.into(),
            ds0_version: ds0.map(String::from),
            registry: registry(ids),
        }
    }

    /// Newest first: 2.6.3 set in ds0_utils.py, 2.6.2 only in a message, 2.6.1 plain-tagged.
    fn history() -> Vec<Snapshot> {
        vec![
            snapshot(
                "a50c342320dbbdc27b0aabdbb9c1650711a57e0f",
                "Start the xtask workspace",
                Some("2.6.3"),
                &[("us-east-1", "ami-26300001"), ("eu-west-1", "ami-26300002")],
            ),
            snapshot(
                "bbbbbbb000",
                "New AMIs for 2.6.2.",
                None,
                &[("us-east-1", "ami-26200001")],
            ),
            snapshot(
                "ccccccc000",
                "ami ids",
                Some("2.6.0"),
                &[("us-east-1", "ami-26100001")],
            ),
        ]
    }

    fn tags() -> Vec<(String, String)> {
        vec![
            ("2.6.1".into(), "ccccccc000".into()),
            ("release/2.6.4".into(), "ddddddd000".into()),
        ]
    }

    #[test]
    fn a_release_set_in_ds0_utils_is_found_with_the_command_that_adopts_it() {
        let legacy = find("2.6.3", &history(), &tags());
        assert_eq!(legacy.source, Source::Ds0);
        assert_eq!(legacy.amis.len(), 2);
        assert_eq!(
            legacy.render(),
            "2.6.3: `ami_ids.json` at a50c342 lists 2 AMIs in 2 regions (`ds0_utils.py` holds 2.6.3 there)\n\
             \x20 missing: a tag: neither `release/2.6.3` nor a plain `2.6.3`\n\
             \x20 adopt:   `cargo xtask tag 2.6.3 --commit a50c342`\n"
        );
    }

    #[test]
    fn plain_tags_and_messages_find_the_others_and_say_what_is_odd() {
        let history = history();
        let plain = find("2.6.1", &history, &tags());
        assert_eq!(plain.source, Source::PlainTag("2.6.1".into()));
        assert_eq!(
            plain.render(),
            "2.6.1: `ami_ids.json` at ccccccc lists 1 AMIs in 1 regions (the tag `2.6.1` names it)\n\
             \x20 missing: a `release/2.6.1` tag (only the plain tag `2.6.1`)\n\
             \x20 missing: `ds0_utils.py` at ccccccc holds 2.6.0, not 2.6.1\n\
             \x20 adopt:   `cargo xtask tag 2.6.1 --commit ccccccc`\n"
        );
        let message = find("2.6.2", &history, &tags());
        assert_eq!(message.source, Source::Message);
        assert_eq!(message.amis[0].id, "ami-26200001");
        assert!(message
            .missing
            .contains(&"`ds0_utils.py` at bbbbbbb names no version".to_string()));
        // "2.6.2" must be a whole word: 2.6.20 or 12.6.2 name another version.
        assert!(!names("AMIs for 2.6.20 and 12.6.2", "2.6.2"));
    }

    #[test]
    fn tagged_and_unknown_versions() {
        assert_eq!(
            find("2.6.4", &history(), &tags()).render(),
            "2.6.4: adopted (tag `release/2.6.4` lists its AMIs)\n"
        );
        let unknown = find("2.5.9", &history(), &tags());
        assert_eq!(unknown.adopt, None);
        assert!(unknown.render().starts_with(
            "2.5.9: not found\n  missing: no commit lists it: no tag `2.5.9`, no `ds0_utils.py` holding 2.5.9"
        ), "{}", unknown.render());
        let mut broken = history();
        broken[0].registry = "{".into();
        let legacy = find("2.6.3", &broken, &[]);
        assert!(
            legacy.missing[0].starts_with("`ami_ids.json` at a50c342 cannot be read"),
            "{:?}",
            legacy.missing
        );
        assert_eq!(legacy.adopt, None);
    }

    #[test]
    fn all_lists_the_versions_before_the_first_tool_release() {
        let first = semver::Version::parse("2.6.4").unwrap();
        let found: Vec<String> = all(&history(), &tags(), Some(&first))
            .into_iter()
            .map(|l| l.version)
            .collect();
        assert_eq!(found, ["2.6.0", "2.6.1", "2.6.3"]);
    }
}
