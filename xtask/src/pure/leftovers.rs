//! What a run's Packer launched and deletes when it ends — build instances, and the temporary
//! security groups and key pairs Packer 1.6.6 makes for them — found when Packer died before it
//! could (a kill -9 of its whole process group, a reboot). Pure.
//!
//! Packer tags the instance with `run_tags` (the run's `RunId`), but names its security group
//! and key pair `packer_<uuid>` without tags (builder/amazon/common/step_security_group.go and
//! run_config.go in v1.6.6). They are known from the run's output ("Creating temporary security
//! group for this instance: packer_…") and from the run's instances.

use crate::pure::ec2::{parse_answer, tags, NotJson};
use std::collections::{BTreeMap, BTreeSet};

/// Packer's names for what it made, from the run's machine-readable output, by region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub security_groups: BTreeSet<String>,
    pub key_pairs: BTreeSet<String>,
}

/// A build instance of the run that is not terminated (yet: `shutting-down` counts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub builder: String,
}

/// One region's leftovers of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Launched {
    pub region: String,
    pub instances: Vec<Instance>,
    /// Security group ids, with their `packer_…` names.
    pub security_groups: BTreeMap<String, String>,
    pub key_pairs: Vec<String>,
}

impl Launched {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.security_groups.is_empty() && self.key_pairs.is_empty()
    }
}

const GROUP_SAID: &str = "Creating temporary security group for this instance: ";
const KEY_SAID: &str = "Creating temporary keypair: ";

/// The `packer_…` names a run's output gives, by the region of the builder that made them
/// (`regions`: builder name to region).
pub fn named_in_output(
    output: &str,
    regions: &BTreeMap<String, String>,
) -> BTreeMap<String, Named> {
    let mut named: BTreeMap<String, Named> = BTreeMap::new();
    for line in output.lines() {
        for (said, is_group) in [(GROUP_SAID, true), (KEY_SAID, false)] {
            let Some((before, name)) = line.split_once(said) else {
                continue;
            };
            let name = name.trim();
            let builder = before
                .rsplit_once("==> ")
                .map(|(_, b)| b.trim_end_matches(": ").trim_end_matches(':'));
            let Some(region) = builder.and_then(|b| regions.get(b)) else {
                continue;
            };
            if !is_packer_name(name) {
                continue;
            }
            let entry = named.entry(region.clone()).or_default();
            if is_group {
                entry.security_groups.insert(name.to_string());
            } else {
                entry.key_pairs.insert(name.to_string());
            }
        }
    }
    named
}

/// `packer_` and a UUID's characters: only such names are Packer's temporary ones.
pub fn is_packer_name(name: &str) -> bool {
    name.strip_prefix("packer_").is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    })
}

/// One region's leftovers: the instances of `aws ec2 describe-instances` (already filtered by
/// the run's tag) that are not terminated, the `packer_…` groups of `describe-security-groups`
/// that the output named or an instance of the run uses, and the named key pairs of
/// `describe-key-pairs` (with those the instances use).
pub fn plan_region(
    region: &str,
    named: &Named,
    instances_json: &str,
    groups_json: &str,
    keys_json: &str,
) -> Result<Launched, NotJson> {
    let mut wanted_groups = named.security_groups.clone();
    let mut wanted_keys = named.key_pairs.clone();
    let mut instances = Vec::new();
    let answer = parse_answer(instances_json, "ec2 describe-instances")?;
    let reservations = answer["Reservations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for instance in reservations
        .iter()
        .flat_map(|r| r["Instances"].as_array().cloned().unwrap_or_default())
    {
        let state = instance["State"]["Name"].as_str().unwrap_or("").to_string();
        for group in instance["SecurityGroups"].as_array().into_iter().flatten() {
            if let Some(name) = group["GroupName"].as_str().filter(|n| is_packer_name(n)) {
                wanted_groups.insert(name.to_string());
            }
        }
        if let Some(key) = instance["KeyName"].as_str().filter(|k| is_packer_name(k)) {
            wanted_keys.insert(key.to_string());
        }
        if state == "terminated" {
            continue;
        }
        instances.push(Instance {
            id: instance["InstanceId"].as_str().unwrap_or("").to_string(),
            builder: tags(&instance["Tags"]).remove("Name").unwrap_or_default(),
            state,
        });
    }
    let groups = parse_answer(groups_json, "ec2 describe-security-groups")?;
    let security_groups = groups["SecurityGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| Some((g["GroupId"].as_str()?, g["GroupName"].as_str()?)))
        .filter(|(_, name)| wanted_groups.contains(*name))
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect();
    let keys = parse_answer(keys_json, "ec2 describe-key-pairs")?;
    let key_pairs = keys["KeyPairs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["KeyName"].as_str())
        .filter(|name| wanted_keys.contains(*name))
        .map(str::to_string)
        .collect();
    Ok(Launched {
        region: region.to_string(),
        instances,
        security_groups,
        key_pairs,
    })
}

/// The list a user reads before saying yes: one line per thing, by region.
pub fn render(launched: &[Launched]) -> String {
    let mut out = String::new();
    for region in launched.iter().filter(|l| !l.is_empty()) {
        for instance in &region.instances {
            out.push_str(&format!(
                "  {}: instance {} ({}, {})\n",
                region.region, instance.id, instance.state, instance.builder
            ));
        }
        for (id, name) in &region.security_groups {
            out.push_str(&format!(
                "  {}: security group {id} ({name})\n",
                region.region
            ));
        }
        for key in &region.key_pairs {
            out.push_str(&format!("  {}: key pair {key}\n", region.region));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_output_instances_and_answers_make_the_plan() {
        let regions: BTreeMap<String, String> = [
            ("us-east-1-1404-hvm".to_string(), "us-east-1".to_string()),
            ("eu-west-1-1204-pv".to_string(), "eu-west-1".to_string()),
        ]
        .into();
        let output = "\
1,us-east-1-1404-hvm,ui,say,==> us-east-1-1404-hvm: Creating temporary security group for this instance: packer_6b0c7146-eacb\n\
1,,ui,say,==> eu-west-1-1204-pv: Creating temporary keypair: packer_6b0c7146-1ad9\n\
1,,ui,say,==> other-builder: Creating temporary keypair: packer_aa\n\
1,,ui,say,==> eu-west-1-1204-pv: Creating temporary keypair: not-packers\n";
        let named = named_in_output(output, &regions);
        assert_eq!(
            named["us-east-1"].security_groups,
            BTreeSet::from(["packer_6b0c7146-eacb".to_string()])
        );
        assert_eq!(
            named["eu-west-1"].key_pairs,
            BTreeSet::from(["packer_6b0c7146-1ad9".to_string()])
        );
        assert_eq!(
            named.len(),
            2,
            "unknown builders and other names are not taken"
        );

        let instances = r#"{"Reservations": [{"Instances": [
            {"InstanceId": "i-1", "State": {"Name": "running"}, "KeyName": "packer_bb",
             "SecurityGroups": [{"GroupId": "sg-2", "GroupName": "packer_cc"}],
             "Tags": [{"Key": "Name", "Value": "Packer Builder"}]},
            {"InstanceId": "i-2", "State": {"Name": "terminated"},
             "SecurityGroups": [{"GroupId": "sg-9", "GroupName": "default"}]}]}]}"#;
        let groups = r#"{"SecurityGroups": [
            {"GroupId": "sg-1", "GroupName": "packer_6b0c7146-eacb"},
            {"GroupId": "sg-2", "GroupName": "packer_cc"},
            {"GroupId": "sg-3", "GroupName": "packer_dd"},
            {"GroupId": "sg-9", "GroupName": "default"}]}"#;
        let keys = r#"{"KeyPairs": [{"KeyName": "packer_bb"}, {"KeyName": "mine"}]}"#;
        let plan = plan_region("us-east-1", &named["us-east-1"], instances, groups, keys).unwrap();
        assert_eq!(plan.instances.len(), 1, "a terminated instance is gone");
        assert_eq!(plan.instances[0].id, "i-1");
        // Named in the output, or used by the run's instance; another run's group stays.
        assert_eq!(
            plan.security_groups.keys().collect::<Vec<_>>(),
            ["sg-1", "sg-2"]
        );
        assert_eq!(plan.key_pairs, ["packer_bb"]);
        let text = render(&[plan]);
        assert!(text.contains("us-east-1: instance i-1 (running, Packer Builder)"));
        assert!(text.contains("security group sg-2 (packer_cc)"));
        assert!(text.contains("key pair packer_bb"));
        assert!(plan_region("r", &Named::default(), "not json", "{}", "{}").is_err());
    }
}
