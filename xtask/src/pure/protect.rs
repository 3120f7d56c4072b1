//! Which images are published, and why: `ami_ids.json` now and in every committed version, the
//! AMIs listed in `release/*` and `candidate/*` tag messages. Cleanup never deletes a protected
//! image (nor its snapshots or bundle), whatever its filter; `retire` and `audit` find a
//! release's images here. Pure: the callers read git and the files.

use crate::pure::registry::Registry;
use std::collections::BTreeMap;

/// An AMI named by a tag message or a registry, with its region where known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub region: Option<String>,
    pub id: String,
}

/// The AMIs a tag message lists (`us-east-1       1404 hvm  ami-0123`, one a line, as `release`
/// and `tag` write them); an id on a line without a region is kept without one.
pub fn tag_amis(message: &str) -> Vec<Listed> {
    let mut amis = Vec::new();
    for line in message.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let region = words
            .first()
            .filter(|w| looks_like_region(w))
            .map(|w| w.to_string());
        for word in &words {
            let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            if is_ami_id(word) {
                amis.push(Listed {
                    region: region.clone(),
                    id: word.to_string(),
                });
            }
        }
    }
    amis
}

pub fn is_ami_id(word: &str) -> bool {
    word.strip_prefix("ami-").is_some_and(|hex| {
        hex.len() >= 8
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

fn looks_like_region(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() >= 3
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Every AMI of a registry with its region.
pub fn registry_amis(registry: &Registry) -> Vec<Listed> {
    registry
        .iter()
        .flat_map(|(region, entries)| {
            entries.iter().map(move |e| Listed {
                region: Some(region.clone()),
                id: e.id.clone(),
            })
        })
        .collect()
}

/// AMI id to the reasons it is protected, in the order they were found.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    reasons: BTreeMap<String, Vec<String>>,
}

impl Protection {
    pub fn add(&mut self, id: &str, reason: String) {
        let reasons = self.reasons.entry(id.to_string()).or_default();
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }

    /// The registry as it is in the working tree.
    pub fn current_registry(&mut self, registry: &Registry) {
        for ami in registry_amis(registry) {
            self.add(&ami.id, "listed in `ami_ids.json`".into());
        }
    }

    /// A committed version of the registry; `commit` is the newest commit that holds it. An AMI
    /// listed in the working tree or a newer version is named once, by its newest listing.
    pub fn past_registry(&mut self, commit: &str, registry: &Registry) {
        for ami in registry_amis(registry) {
            let listed = self
                .reasons
                .get(&ami.id)
                .is_some_and(|r| r.iter().any(|r| r.contains("`ami_ids.json`")));
            if !listed {
                self.add(
                    &ami.id,
                    format!("in `ami_ids.json` as committed in {commit}"),
                );
            }
        }
    }

    /// A `release/*` or `candidate/*` tag and its message.
    pub fn tag(&mut self, name: &str, message: &str) {
        let reason = match name.split_once('/') {
            Some(("release", _)) => format!("released in {name}"),
            Some(("candidate", _)) => format!("release candidate in {name}"),
            _ => format!("listed in tag {name}"),
        };
        for ami in tag_amis(message) {
            self.add(&ami.id, reason.clone());
        }
    }

    pub fn reasons(&self, id: &str) -> &[String] {
        self.reasons.get(id).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::registry;

    const MESSAGE: &str = "ComboAMI 2.6.3 (branch 2.6)\n\n2 AMIs:\n\
        us-east-1       1404 hvm  ami-0123456789abcdef0\n\
        eu-west-1       1204 pv   ami-deadbeef\n\
        see also ami-notanid and AMI-DEADBEEF\n";

    #[test]
    fn tag_messages_list_amis_with_their_regions() {
        assert_eq!(
            tag_amis(MESSAGE),
            [
                Listed {
                    region: Some("us-east-1".into()),
                    id: "ami-0123456789abcdef0".into()
                },
                Listed {
                    region: Some("eu-west-1".into()),
                    id: "ami-deadbeef".into()
                },
            ]
        );
        assert_eq!(
            tag_amis("(ami-12345678)"),
            [Listed {
                region: None,
                id: "ami-12345678".into()
            }]
        );
    }

    #[test]
    fn every_source_names_its_reason_once() {
        let now = registry::parse(
            r#"{"us-east-1": [{"Distributor ID": "Ubuntu", "Release": "1404", "id": "ami-11111111", "virtualization type": "hvm"}]}"#,
        )
        .unwrap();
        let old = registry::parse(
            r#"{"us-east-1": [
                {"Distributor ID": "Ubuntu", "Release": "1404", "id": "ami-11111111", "virtualization type": "hvm"},
                {"Distributor ID": "Ubuntu", "Release": "1204", "id": "ami-22222222", "virtualization type": "hvm"}]}"#,
        )
        .unwrap();
        let mut protection = Protection::default();
        protection.current_registry(&now);
        protection.past_registry("abc1234", &old);
        protection.past_registry("0ld0000", &old);
        protection.tag("release/2.6.3", "us-east-1 1204 hvm ami-22222222\n");
        protection.tag("candidate/2.6.4-rc1", "us-east-1 1204 hvm ami-33333333\n");
        assert_eq!(
            protection.reasons("ami-11111111"),
            ["listed in `ami_ids.json`"]
        );
        assert_eq!(
            protection.reasons("ami-22222222"),
            [
                "in `ami_ids.json` as committed in abc1234",
                "released in release/2.6.3"
            ]
        );
        assert_eq!(
            protection.reasons("ami-33333333"),
            ["release candidate in candidate/2.6.4-rc1"]
        );
        assert!(protection.reasons("ami-44444444").is_empty());
    }
}
