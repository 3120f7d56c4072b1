//! The published image registry, `ami_ids.json`: parse, merge, render. Pure.
//!
//! Merging never wipes: an entry is replaced only by a new AMI for the same region, release and
//! virtualization type. Existing entries keep their place, so a release diff shows only what
//! changed; new entries go at the end of their region, in a stable order.

use crate::pure::json;
use crate::pure::packer_log::Ami;
use crate::pure::refusal::Refusal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const REGISTRY_PATH: &str = "ami_ids.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(rename = "Distributor ID")]
    pub distributor: String,
    #[serde(rename = "Release")]
    pub release: String,
    pub id: String,
    /// `pv` or `hvm`.
    #[serde(rename = "virtualization type")]
    pub virt: String,
}

/// Region to entries; a `BTreeMap` so regions come out sorted.
pub type Registry = BTreeMap<String, Vec<Entry>>;

pub fn parse(text: &str) -> Result<Registry, String> {
    json::parse(text).map_err(|e| match e.kind {
        json::ErrorKind::DuplicateKey { .. } => {
            format!("`{REGISTRY_PATH}` is not a valid registry: {e}; nothing was merged")
        }
        _ => format!(
            "`{REGISTRY_PATH}` is not a valid registry: {e}; \
             restore it from git (`git checkout -- {REGISTRY_PATH}`)"
        ),
    })
}

/// Every entry must be one the project could have merged: a region of `settings.regions`
/// (`regions`), an AMI id AWS could have made, a release `OSVERSION` and `pv` or `hvm`, and one
/// AMI per release and virtualization type in a region. `path` names the file in messages.
pub fn check(registry: &Registry, regions: &[String], path: &str) -> Result<(), Refusal> {
    let mut problems = Vec::new();
    for (region, entries) in registry {
        if !regions.contains(region) {
            problems.push(format!(
                "key `{region}` is not one of the regions of `settings.regions` in `{}` ({})",
                crate::pure::matrix::MATRIX_PATH,
                regions.join(", ")
            ));
        }
        for (index, entry) in entries.iter().enumerate() {
            let at = format!("key `{region}` entry {}", index + 1);
            problems.extend(
                entry_problems(entry)
                    .into_iter()
                    .map(|p| format!("{at}: {p}")),
            );
            let twice = entries[..index]
                .iter()
                .any(|e| e.release == entry.release && e.virt == entry.virt);
            if twice {
                problems.push(format!(
                    "{at}: a second AMI for release `{}` `{}` (the registry lists one)",
                    entry.release, entry.virt
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Refusal {
        what: format!(
            "`{path}` has {} bad entr{}:\n  {}",
            problems.len(),
            if problems.len() == 1 { "y" } else { "ies" },
            problems.join("\n  ")
        ),
        fix: format!(
            "correct or remove those entries of `{path}` (`git diff -- {path}` shows what changed \
             since the last commit, `git checkout -- {path}` restores it), or add the region to \
             `settings.regions` if the project publishes there"
        ),
    })
}

/// What is wrong with one entry, whatever its region.
fn entry_problems(entry: &Entry) -> Vec<String> {
    let mut problems = Vec::new();
    if !crate::pure::matrix::is_ami_id(&entry.id) {
        problems.push(format!(
            "`id` `{}` is not an AMI id (`ami-` and 8 or 17 lowercase hex digits)",
            entry.id
        ));
    }
    if entry.release.len() != 4 || !entry.release.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!(
            "`Release` `{}` is not an Ubuntu release like `1404`",
            entry.release
        ));
    }
    if entry.virt != "pv" && entry.virt != "hvm" {
        problems.push(format!(
            "`virtualization type` `{}` is neither `pv` nor `hvm`",
            entry.virt
        ));
    }
    problems
}

pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    registry
        .serialize(&mut serializer)
        .expect("a registry always serializes");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    text.push('\n');
    text
}

/// Release and virtualization type from a builder name `REGION-OSVERSION-pv|hvm`.
pub fn release_and_virt(builder: &str) -> Result<(String, String), String> {
    let mut parts = builder.rsplitn(3, '-');
    let (virt, release, region) = (parts.next(), parts.next(), parts.next());
    match (virt, release, region) {
        (Some(virt @ ("pv" | "hvm")), Some(release), Some(_))
            if release.len() == 4 && release.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok((release.to_string(), virt.to_string()))
        }
        _ => Err(format!(
            "builder `{builder}` is not named `REGION-OSVERSION-pv|hvm`, so its release and \
             virtualization type are unknown"
        )),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added {
        region: String,
        entry: Entry,
    },
    Replaced {
        region: String,
        old: String,
        entry: Entry,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { region, entry } => write!(
                f,
                "added    {region} {} {}: {}",
                entry.release, entry.virt, entry.id
            ),
            Change::Replaced { region, old, entry } => write!(
                f,
                "replaced {region} {} {}: {old} -> {}",
                entry.release, entry.virt, entry.id
            ),
        }
    }
}

/// Merges AMIs into the registry and says what changed; unchanged entries are not reported.
pub fn merge(registry: &mut Registry, amis: &[Ami]) -> Result<Vec<Change>, String> {
    if let Some(bad) = amis.iter().find(|a| !crate::pure::matrix::is_ami_id(&a.id)) {
        return Err(format!(
            "builder `{}` reported `{}`, which is not an AMI id; nothing was merged",
            bad.builder, bad.id
        ));
    }
    let mut sorted = amis.to_vec();
    sorted.sort();
    let mut changes = Vec::new();
    for ami in &sorted {
        let (release, virt) = release_and_virt(&ami.builder)?;
        let entry = Entry {
            distributor: "Ubuntu".to_string(),
            release,
            id: ami.id.clone(),
            virt,
        };
        let entries = registry.entry(ami.region.clone()).or_default();
        match entries
            .iter_mut()
            .find(|e| e.release == entry.release && e.virt == entry.virt)
        {
            Some(existing) if existing.id == entry.id => {}
            Some(existing) => {
                let old = std::mem::replace(&mut existing.id, entry.id.clone());
                changes.push(Change::Replaced {
                    region: ami.region.clone(),
                    old,
                    entry,
                });
            }
            None => {
                entries.push(entry.clone());
                changes.push(Change::Added {
                    region: ami.region.clone(),
                    entry,
                });
            }
        }
    }
    Ok(changes)
}

/// Every AMI id the registry lists: the published images, which cleanup must never delete.
pub fn ids(registry: &Registry) -> Vec<&str> {
    registry.values().flatten().map(|e| e.id.as_str()).collect()
}

/// The registry's entries as AMIs named by builder (`REGION-RELEASE-VIRT`), e.g. for a tag
/// message.
pub fn amis(registry: &Registry) -> Vec<Ami> {
    registry
        .iter()
        .flat_map(|(region, entries)| {
            entries.iter().map(move |e| Ami {
                builder: format!("{region}-{}-{}", e.release, e.virt),
                region: region.clone(),
                id: e.id.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../ami_ids.json");

    fn ami(builder: &str, region: &str, id: &str) -> Ami {
        Ami {
            builder: builder.into(),
            region: region.into(),
            id: id.into(),
        }
    }

    #[test]
    fn round_trips_byte_for_byte() {
        assert_eq!(render(&parse(SHIPPED).unwrap()), SHIPPED);
    }

    #[test]
    fn merge_replaces_one_and_keeps_the_rest() {
        let mut registry = parse(SHIPPED).unwrap();
        let changes = merge(
            &mut registry,
            &[ami(
                "us-east-1-1404-hvm",
                "us-east-1",
                "ami-0123456789abcdef0",
            )],
        )
        .unwrap();
        assert_eq!(changes.len(), 1);
        assert!(matches!(changes[0], Change::Replaced { .. }));
        let before = parse(SHIPPED).unwrap();
        assert_eq!(ids(&registry).len(), ids(&before).len());
        for (region, entries) in &before {
            if region != "us-east-1" {
                assert_eq!(&registry[region], entries);
            }
        }
        // Idempotent.
        let again = merge(
            &mut registry,
            &[ami(
                "us-east-1-1404-hvm",
                "us-east-1",
                "ami-0123456789abcdef0",
            )],
        )
        .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn new_region_is_added_in_sorted_place() {
        let mut registry = parse(SHIPPED).unwrap();
        merge(
            &mut registry,
            &[ami("eu-central-1-1404-pv", "eu-central-1", "ami-12345678")],
        )
        .unwrap();
        let text = render(&registry);
        assert!(text.find("\"eu-central-1\"").unwrap() < text.find("\"eu-west-1\"").unwrap());
    }

    #[test]
    fn builder_names_must_carry_release_and_virt() {
        assert_eq!(
            release_and_virt("us-east-1-1204-pv").unwrap(),
            ("1204".into(), "pv".into())
        );
        assert!(release_and_virt("us-east-1-hvm-1204")
            .unwrap_err()
            .contains("`us-east-1-hvm-1204`"));
    }

    fn regions() -> Vec<String> {
        let matrix = include_str!("../../../build/images.json");
        crate::pure::matrix::Matrix::parse(matrix)
            .unwrap()
            .settings
            .regions
    }

    #[test]
    fn the_shipped_registry_passes_its_check() {
        check(&parse(SHIPPED).unwrap(), &regions(), REGISTRY_PATH).unwrap();
    }

    #[test]
    fn unknown_regions_and_malformed_ids_are_refused_with_key_and_fix() {
        let bad = SHIPPED
            .replacen("\"us-west-1\"", "\"us-wset-1\"", 1)
            .replacen("\"ami-", "\"ami-XYZ", 1);
        let refusal = check(&parse(&bad).unwrap(), &regions(), "ami_ids.json").unwrap_err();
        assert!(
            refusal
                .what
                .starts_with("`ami_ids.json` has 2 bad entries:"),
            "{}",
            refusal.what
        );
        assert!(
            refusal.what.contains(
                "key `us-wset-1` is not one of the regions of `settings.regions` in `build/images.json`"
            ),
            "{}",
            refusal.what
        );
        assert!(
            refusal
                .what
                .contains("key `ap-northeast-1` entry 1: `id` `ami-XYZ"),
            "{}",
            refusal.what
        );
        assert!(refusal.fix.contains("`git checkout -- ami_ids.json`"));
        let mut registry = parse(SHIPPED).unwrap();
        let first = registry.get_mut("us-east-1").unwrap();
        first[1].virt = "paravirtual".into();
        first[2].release = "14.04".into();
        first.push(first[0].clone());
        let refusal = check(&registry, &regions(), REGISTRY_PATH).unwrap_err();
        for needle in [
            "entry 2: `virtualization type` `paravirtual` is neither `pv` nor `hvm`",
            "entry 3: `Release` `14.04` is not an Ubuntu release",
            "a second AMI for release",
        ] {
            assert!(refusal.what.contains(needle), "{needle}: {}", refusal.what);
        }
    }

    #[test]
    fn merge_refuses_what_is_not_an_ami_id() {
        let mut registry = parse(SHIPPED).unwrap();
        let error = merge(
            &mut registry,
            &[ami("us-east-1-1404-hvm", "us-east-1", "ami-NOTHEX")],
        )
        .unwrap_err();
        assert!(
            error.contains("`ami-NOTHEX`, which is not an AMI id"),
            "{error}"
        );
        assert_eq!(registry, parse(SHIPPED).unwrap());
    }
}
