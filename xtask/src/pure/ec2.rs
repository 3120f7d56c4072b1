//! The one model of an image in AWS: `Image`, parsed from `aws ec2 describe-images`, and
//! `ImageQuery`, the question that finds images (which owners, which filters). Cleanup, retire,
//! audit, base-images and the cloud preflight all ask and read images through these. Pure.

use crate::pure::time;
use serde_json::Value;
use std::collections::BTreeMap;

/// An image as `aws ec2 describe-images` describes it. The fields a cleanup's `--json` document
/// shows are serialized; the rest (what only the preflight and base-images read) is not, so that
/// document keeps its shape.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub snapshots: Vec<String>,
    /// `RunId`, `Kind`, `Version` and `Commit` tags (empty when untagged).
    pub run: String,
    pub kind: String,
    pub version: String,
    pub commit: String,
    /// `BUCKET/PREFIX` of an instance-store image's bundle, from its manifest location.
    pub bundle: Option<String>,
    /// The manifest location itself (`BUCKET/PREFIX/image.manifest.xml`).
    pub location: Option<String>,
    /// `instance-store` or `ebs`.
    pub root_device_type: String,
    /// `available`, `pending`, `failed`, ...
    pub state: String,
    /// Launch permission `all`.
    pub public: bool,
    /// When the image was made (seconds since the epoch), if AWS said.
    pub created: Option<u64>,
    /// `DeprecationTime` as AWS writes it.
    pub deprecation: Option<String>,
    /// `paravirtual` or `hvm`.
    #[serde(skip)]
    pub virtualization_type: String,
    #[serde(skip)]
    pub owner_id: String,
    /// `CreationDate` as AWS writes it (ISO 8601, so it sorts as text).
    #[serde(skip)]
    pub creation_date: String,
    /// Every tag, key to value.
    #[serde(skip)]
    pub tags: BTreeMap<String, String>,
    /// `DeregistrationProtection` as AWS writes it (`disabled`, `enabled-with-cooldown`, ...;
    /// empty when AWS does not say).
    #[serde(skip)]
    pub deregistration_protection: String,
}

impl Image {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// An answer of the `aws` CLI that is not what its command answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the `aws` CLI's answer to `{what}` is not JSON ({detail})")]
pub struct NotJson {
    pub what: &'static str,
    pub detail: String,
}

/// The answer of `aws WHAT` as JSON.
pub fn parse_answer(text: &str, what: &'static str) -> Result<Value, NotJson> {
    crate::pure::json::parse(text).map_err(|e| NotJson {
        what,
        detail: e.to_string(),
    })
}

/// The `Tags` list of an EC2 answer (`[{"Key": .., "Value": ..}]`) as a map.
pub fn tags(value: &Value) -> BTreeMap<String, String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["Key"].as_str()?.into(), t["Value"].as_str()?.into())))
        .collect()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// `aws ec2 describe-images`: every image with an id.
pub fn parse_images(json: &str) -> Result<Vec<Image>, NotJson> {
    let value = parse_answer(json, "ec2 describe-images")?;
    Ok(value["Images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(image)
        .collect())
}

fn image(image: &Value) -> Option<Image> {
    let tags = tags(&image["Tags"]);
    let tag = |key: &str| tags.get(key).cloned().unwrap_or_default();
    let location = image["ImageLocation"].as_str().map(String::from);
    Some(Image {
        id: image["ImageId"].as_str()?.to_string(),
        name: text(&image["Name"]),
        snapshots: image["BlockDeviceMappings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Ebs"]["SnapshotId"].as_str().map(String::from))
            .collect(),
        run: tag("RunId"),
        kind: tag("Kind"),
        version: tag("Version"),
        commit: tag("Commit"),
        bundle: location
            .as_deref()
            .filter(|l| l.ends_with(".manifest.xml"))
            .and_then(|l| l.rsplit_once('/'))
            .map(|(dir, _)| dir.to_string()),
        location,
        root_device_type: text(&image["RootDeviceType"]),
        state: text(&image["State"]),
        public: image["Public"].as_bool().unwrap_or(false),
        created: image["CreationDate"]
            .as_str()
            .and_then(|t| time::parse_time(t).ok()),
        deprecation: image["DeprecationTime"].as_str().map(String::from),
        virtualization_type: text(&image["VirtualizationType"]),
        owner_id: text(&image["OwnerId"]),
        creation_date: text(&image["CreationDate"]),
        deregistration_protection: text(&image["DeregistrationProtection"]),
        tags,
    })
}

/// Which images `describe-images` lists: those of `owners` (all visible ones when empty) that
/// match every filter (AWS joins filters with AND, the values of one filter with OR).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageQuery {
    pub owners: Vec<String>,
    pub filters: Vec<(String, Vec<String>)>,
    /// Deprecated images of other accounts too (AWS leaves them out otherwise, though they
    /// still launch; an owner always sees its own).
    pub include_deprecated: bool,
}

impl ImageQuery {
    /// The images with these ids, whoever owns them. A filter, not `--image-ids`: an id that
    /// does not exist is then missing from the answer instead of failing the whole call.
    pub fn ids<S: AsRef<str>>(ids: &[S]) -> ImageQuery {
        ImageQuery::default().filter("image-id", ids)
    }

    /// The account's own images.
    pub fn own() -> ImageQuery {
        ImageQuery {
            owners: vec!["self".into()],
            ..ImageQuery::default()
        }
    }

    pub fn owned_by(owner: &str) -> ImageQuery {
        ImageQuery {
            owners: vec![owner.into()],
            ..ImageQuery::default()
        }
    }

    pub fn filter<S: AsRef<str>>(mut self, name: &str, values: &[S]) -> ImageQuery {
        let values = values.iter().map(|v| v.as_ref().to_string()).collect();
        self.filters.push((name.to_string(), values));
        self
    }

    /// With deprecated images of other accounts, as `include_deprecated` says.
    pub fn with_deprecated(self) -> ImageQuery {
        ImageQuery {
            include_deprecated: true,
            ..self
        }
    }

    /// Images tagged `KEY=VALUE`.
    pub fn tagged(self, key: &str, value: &str) -> ImageQuery {
        self.filter(&format!("tag:{key}"), &[value])
    }

    /// The arguments of `aws ec2 describe-images` (filters as JSON: a value may hold a comma).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["ec2".to_string(), "describe-images".to_string()];
        if !self.owners.is_empty() {
            args.push("--owners".into());
            args.extend(self.owners.iter().cloned());
        }
        if self.include_deprecated {
            args.push("--include-deprecated".into());
        }
        if !self.filters.is_empty() {
            let filters: Vec<Value> = self
                .filters
                .iter()
                .map(|(name, values)| serde_json::json!({ "Name": name, "Values": values }))
                .collect();
            args.push("--filters".into());
            args.push(Value::Array(filters).to_string());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGES: &str = r#"{"Images": [
        {"ImageId": "ami-11111111", "Name": "X 2.6.3-1404-hvm", "State": "available",
         "VirtualizationType": "hvm", "RootDeviceType": "ebs", "OwnerId": "123456789012",
         "CreationDate": "2016-01-01T00:00:00.000Z", "Public": true,
         "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-1"}}],
         "Tags": [{"Key": "RunId", "Value": "official-1"}, {"Key": "Project", "Value": "comboami"}]},
        {"ImageId": "ami-22222222", "RootDeviceType": "instance-store",
         "ImageLocation": "b-us-east-1/1-1404-pv/image.manifest.xml",
         "DeprecationTime": "2030-01-01T00:00:00.000Z"},
        {"Name": "no id: not an image"}
    ]}"#;

    #[test]
    fn images_parse_with_tags_snapshots_and_bundles() {
        let images = parse_images(IMAGES).unwrap();
        assert_eq!(images.len(), 2);
        let first = &images[0];
        assert_eq!(
            (first.id.as_str(), first.virtualization_type.as_str()),
            ("ami-11111111", "hvm")
        );
        assert_eq!(first.snapshots, ["snap-1"]);
        assert_eq!(first.run, "official-1");
        assert_eq!(first.tag("Project"), Some("comboami"));
        assert_eq!(first.tag("Kind"), None);
        assert_eq!(first.owner_id, "123456789012");
        assert_eq!(first.created, Some(1451606400));
        assert!(first.public);
        let second = &images[1];
        assert_eq!(second.bundle.as_deref(), Some("b-us-east-1/1-1404-pv"));
        assert_eq!(
            second.deprecation.as_deref(),
            Some("2030-01-01T00:00:00.000Z")
        );
        assert!(!second.public);
    }

    #[test]
    fn a_non_json_answer_is_named() {
        let error = parse_images("<html>").unwrap_err();
        assert!(error
            .to_string()
            .contains("answer to `ec2 describe-images` is not JSON"));
        assert_eq!(parse_images("{}").unwrap(), []);
    }

    #[test]
    fn queries_render_owners_and_filters() {
        assert_eq!(
            ImageQuery::ids(&["ami-1", "ami-2"]).args(),
            [
                "ec2",
                "describe-images",
                "--filters",
                r#"[{"Name":"image-id","Values":["ami-1","ami-2"]}]"#
            ]
        );
        let query = ImageQuery::own()
            .tagged("Project", "comboami")
            .filter("name", &["A, with comma"]);
        assert_eq!(
            query.args(),
            [
                "ec2",
                "describe-images",
                "--owners",
                "self",
                "--filters",
                r#"[{"Name":"tag:Project","Values":["comboami"]},{"Name":"name","Values":["A, with comma"]}]"#
            ]
        );
        assert_eq!(
            ImageQuery::owned_by("099720109477").args()[..4],
            ["ec2", "describe-images", "--owners", "099720109477"]
        );
    }
}
