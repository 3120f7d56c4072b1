//! What a cleanup deletes: the filters, the parsing of the `aws` CLI's JSON answers, the plan
//! per region (with the published images of `ami_ids.json` held back) and its table. Pure.

use crate::core::template::Kind;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Which builds to clean up. At least one of `run`, `version`, `kind` must be set.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub run: Option<String>,
    pub version: Option<String>,
    pub kind: Option<Kind>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.run.is_none() && self.version.is_none() && self.kind.is_none()
    }

    /// `--filters` values for `aws ec2 describe-*`: the project marker and every set filter.
    pub fn tag_filters(&self, project: &str) -> Vec<String> {
        let mut filters = vec![format!("Name=tag:Project,Values={project}")];
        for (tag, value) in [
            ("RunId", &self.run),
            ("Version", &self.version),
            ("Kind", &self.kind.map(|k| k.as_str().to_string())),
        ] {
            if let Some(value) = value {
                filters.push(format!("Name=tag:{tag},Values={value}"));
            }
        }
        filters
    }

    pub fn matches(&self, run: &str, version: &str, kind: &str) -> bool {
        self.run.as_deref().is_none_or(|r| r == run)
            && self.version.as_deref().is_none_or(|v| v == version)
            && self.kind.is_none_or(|k| k.as_str() == kind)
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(run) = &self.run {
            parts.push(format!("run `{run}`"));
        }
        if let Some(version) = &self.version {
            parts.push(format!("version {version}"));
        }
        if let Some(kind) = &self.kind {
            parts.push(format!("kind {kind}"));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub snapshots: Vec<String>,
    /// `RunId` and `Kind` tags (empty when untagged).
    pub run: String,
    pub kind: String,
    /// `BUCKET/PREFIX` of an instance-store image's bundle, from its manifest location.
    pub bundle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Bundle {
    pub bucket: String,
    pub prefix: String,
    pub objects: usize,
}

/// Everything to delete in one region, and what is held back.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RegionPlan {
    pub region: String,
    pub images: Vec<Image>,
    pub snapshots: Vec<String>,
    pub volumes: Vec<String>,
    pub bundles: Vec<Bundle>,
    /// Matching images listed in `ami_ids.json`: never deleted.
    pub protected: Vec<Image>,
}

impl RegionPlan {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.snapshots.is_empty()
            && self.volumes.is_empty()
            && self.bundles.is_empty()
            && self.protected.is_empty()
    }

    /// Buckets the plan empties prefixes of: deleted afterwards if nothing else is left in them.
    pub fn buckets(&self) -> BTreeSet<&str> {
        self.bundles.iter().map(|b| b.bucket.as_str()).collect()
    }
}

fn parse(json: &str, what: &str) -> Result<Value, String> {
    crate::core::json::parse(json)
        .map_err(|e| format!("the `aws` CLI's answer to {what} is not JSON ({e})"))
}

fn tag(tags: &Value, key: &str) -> String {
    tags.as_array()
        .into_iter()
        .flatten()
        .find(|t| t["Key"] == key)
        .and_then(|t| t["Value"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// `aws ec2 describe-images`.
pub fn parse_images(json: &str) -> Result<Vec<Image>, String> {
    let value = parse(json, "describe-images")?;
    Ok(value["Images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|image| {
            Some(Image {
                id: image["ImageId"].as_str()?.to_string(),
                name: image["Name"].as_str().unwrap_or_default().to_string(),
                snapshots: image["BlockDeviceMappings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["Ebs"]["SnapshotId"].as_str().map(String::from))
                    .collect(),
                run: tag(&image["Tags"], "RunId"),
                kind: tag(&image["Tags"], "Kind"),
                bundle: image["ImageLocation"]
                    .as_str()
                    .filter(|l| l.ends_with(".manifest.xml"))
                    .and_then(|l| l.rsplit_once('/'))
                    .map(|(dir, _)| dir.to_string()),
            })
        })
        .collect())
}

/// The ids of `aws ec2 describe-snapshots` (`Snapshots`/`SnapshotId`) or `describe-volumes`.
pub fn parse_ids(json: &str, list: &str, id: &str) -> Result<Vec<String>, String> {
    let value = parse(json, list)?;
    Ok(value[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[id].as_str().map(String::from))
        .collect())
}

/// The number of objects of `aws s3api list-objects-v2` (no `Contents` when there are none).
pub fn count_objects(json: &str) -> Result<usize, String> {
    if json.trim().is_empty() {
        return Ok(0);
    }
    let value = parse(json, "list-objects-v2")?;
    Ok(value["Contents"].as_array().map_or(0, Vec::len))
}

/// `BUCKET/PREFIX` into its parts; a bare bucket has an empty prefix.
pub fn split_bundle(location: &str) -> (String, String) {
    match location.split_once('/') {
        Some((bucket, prefix)) => (bucket.to_string(), prefix.trim_end_matches('/').to_string()),
        None => (location.to_string(), String::new()),
    }
}

/// The region's plan: matching images (minus the published ones), their snapshots and the tagged
/// ones (minus those of published images), left-over volumes, and bundles with objects.
pub fn plan_region(
    region: &str,
    images: Vec<Image>,
    tagged_snapshots: Vec<String>,
    volumes: Vec<String>,
    bundles: Vec<Bundle>,
    published: &BTreeSet<String>,
) -> RegionPlan {
    let mut unique: BTreeMap<String, Image> = BTreeMap::new();
    for image in images {
        unique.entry(image.id.clone()).or_insert(image);
    }
    let (protected, images): (Vec<Image>, Vec<Image>) = unique
        .into_values()
        .partition(|i| published.contains(&i.id));
    let kept: BTreeSet<&String> = protected.iter().flat_map(|i| &i.snapshots).collect();
    let kept_bundles: BTreeSet<&String> =
        protected.iter().filter_map(|i| i.bundle.as_ref()).collect();
    let snapshots: BTreeSet<String> = images
        .iter()
        .flat_map(|i| i.snapshots.iter().cloned())
        .chain(tagged_snapshots)
        .filter(|s| !kept.contains(s))
        .collect();
    let bundles: BTreeSet<Bundle> = bundles
        .into_iter()
        .filter(|b| b.objects > 0)
        .filter(|b| !kept_bundles.contains(&format!("{}/{}", b.bucket, b.prefix)))
        .collect();
    let volumes: BTreeSet<String> = volumes.into_iter().collect();
    RegionPlan {
        region: region.to_string(),
        images,
        snapshots: snapshots.into_iter().collect(),
        volumes: volumes.into_iter().collect(),
        bundles: bundles.into_iter().collect(),
        protected,
    }
}

/// The table of what was found, grouped by region.
pub fn render(plans: &[RegionPlan]) -> String {
    let mut out = String::new();
    for plan in plans.iter().filter(|p| !p.is_empty()) {
        out.push_str(&format!("{}\n", plan.region));
        for image in &plan.images {
            out.push_str(&format!(
                "  AMI       {:<22}  {:<13}  {:<36}  {}\n",
                image.id, image.kind, image.run, image.name
            ));
        }
        for snapshot in &plan.snapshots {
            let of = plan
                .images
                .iter()
                .find(|i| i.snapshots.contains(snapshot))
                .map(|i| format!("  (of {})", i.id))
                .unwrap_or_default();
            out.push_str(&format!("  snapshot  {snapshot}{of}\n"));
        }
        for volume in &plan.volumes {
            out.push_str(&format!("  volume    {volume}  (left over, available)\n"));
        }
        for bundle in &plan.bundles {
            out.push_str(&format!(
                "  bundle    s3://{}/{}/  ({} object(s))\n",
                bundle.bucket, bundle.prefix, bundle.objects
            ));
        }
        for image in &plan.protected {
            out.push_str(&format!(
                "  KEEP      {:<22}  listed in `ami_ids.json` (the published release): never deleted\n",
                image.id
            ));
        }
    }
    out
}

/// `3 AMI(s), 3 snapshot(s), ...` over all regions.
pub fn totals(plans: &[RegionPlan]) -> String {
    let count = |f: fn(&RegionPlan) -> usize| plans.iter().map(f).sum::<usize>();
    format!(
        "{} AMI(s), {} snapshot(s), {} volume(s), {} bundle folder(s) in {} region(s)",
        count(|p| p.images.len()),
        count(|p| p.snapshots.len()),
        count(|p| p.volumes.len()),
        count(|p| p.bundles.len()),
        plans.iter().filter(|p| !p.is_empty()).count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGES: &str = r#"{"Images": [
        {"ImageId": "ami-11111111", "Name": "test a", "ImageLocation": "123/x",
         "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-1"}}],
         "Tags": [{"Key": "RunId", "Value": "test-ebs-1"}, {"Key": "Kind", "Value": "test-ebs"}]},
        {"ImageId": "ami-22222222", "Name": "published",
         "ImageLocation": "comboami-2.6.3-us-east-1/1-1404-pv/image.manifest.xml",
         "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-2"}}],
         "Tags": []}
    ]}"#;

    #[test]
    fn filters_become_tag_filters_and_match_records() {
        let filter = Filter {
            run: None,
            version: Some("2.6.3".into()),
            kind: Some(Kind::TestEbs),
        };
        assert_eq!(
            filter.tag_filters("comboami"),
            [
                "Name=tag:Project,Values=comboami",
                "Name=tag:Version,Values=2.6.3",
                "Name=tag:Kind,Values=test-ebs"
            ]
        );
        assert!(filter.matches("any", "2.6.3", "test-ebs"));
        assert!(!filter.matches("any", "2.6.3", "test-instance"));
        assert!(Filter::default().is_empty());
    }

    #[test]
    fn images_parse_with_snapshots_tags_and_bundles() {
        let images = parse_images(IMAGES).unwrap();
        assert_eq!(images[0].snapshots, ["snap-1"]);
        assert_eq!(images[0].run, "test-ebs-1");
        assert_eq!(images[0].bundle, None);
        assert_eq!(
            images[1].bundle.as_deref(),
            Some("comboami-2.6.3-us-east-1/1-1404-pv")
        );
        assert_eq!(
            count_objects(r#"{"Contents": [{"Key": "a"}, {"Key": "b"}]}"#).unwrap(),
            2
        );
        assert_eq!(count_objects("").unwrap(), 0);
        assert!(parse_images("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn published_images_and_their_snapshots_and_bundles_are_held_back() {
        let published: BTreeSet<String> = ["ami-22222222".to_string()].into();
        let bundle = |prefix: &str, objects| Bundle {
            bucket: "comboami-2.6.3-us-east-1".into(),
            prefix: prefix.into(),
            objects,
        };
        let plan = plan_region(
            "us-east-1",
            parse_images(IMAGES).unwrap(),
            vec!["snap-2".into(), "snap-3".into()],
            vec!["vol-1".into()],
            vec![
                bundle("1-1404-pv", 4),
                bundle("1-1204-pv", 2),
                bundle("1-1404-hvm", 0),
            ],
            &published,
        );
        assert_eq!(plan.images.len(), 1);
        assert_eq!(plan.protected[0].id, "ami-22222222");
        assert_eq!(plan.snapshots, ["snap-1", "snap-3"]);
        assert_eq!(plan.bundles, [bundle("1-1204-pv", 2)]);
        let table = render(std::slice::from_ref(&plan));
        assert!(
            table.starts_with("us-east-1\n  AMI       ami-11111111"),
            "{table}"
        );
        assert!(
            table.contains("  snapshot  snap-1  (of ami-11111111)\n"),
            "{table}"
        );
        assert!(table.contains("KEEP      ami-22222222"), "{table}");
        assert_eq!(
            totals(&[plan]),
            "1 AMI(s), 2 snapshot(s), 1 volume(s), 1 bundle folder(s) in 1 region(s)"
        );
    }
}
