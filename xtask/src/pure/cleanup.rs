//! What a cleanup deletes: the filters, the parsing of the `aws` CLI's JSON answers, the plan
//! per region (published, used and retained images held back with their snapshots and bundles)
//! and its table. Pure.

use crate::pure::ec2::{self, parse_answer, Image, ImageQuery, NotJson};
use crate::pure::guard;
use crate::pure::protect::Protection;
use crate::pure::template::Kind;
use crate::pure::time;
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

    /// Our images with the project marker and every set filter's tag.
    pub fn image_query(&self, project: &str) -> ImageQuery {
        let mut query = ImageQuery::own().tagged("Project", project);
        for (tag, value) in [
            ("RunId", self.run.clone()),
            ("Version", self.version.clone()),
            ("Kind", self.kind.map(|k| k.as_str().to_string())),
        ] {
            if let Some(value) = value {
                query = query.tagged(tag, &value);
            }
        }
        query
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

/// A snapshot or volume with its `RunId` tag and creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tagged {
    pub id: String,
    pub run: String,
    pub created: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Bundle {
    pub bucket: String,
    pub prefix: String,
    pub objects: usize,
}

impl Bundle {
    pub fn location(&self) -> String {
        format!("{}/{}", self.bucket, self.prefix)
    }
}

/// An image the plan does not delete, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    pub image: Image,
    pub reasons: Vec<String>,
    /// Published (never deleted, whatever the flags) rather than kept by retention or use.
    pub protected: bool,
}

/// What one region holds for a cleanup, before the rules decide.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub region: String,
    pub images: Vec<Image>,
    pub snapshots: Vec<Tagged>,
    pub volumes: Vec<Tagged>,
    pub bundles: Vec<Bundle>,
    /// Image id to what uses it (`instance i-0123 (running)`, `launch template lt-0123`).
    pub in_use: BTreeMap<String, Vec<String>>,
    /// Image id to its bundle's `BUCKET/PREFIX` according to the run records.
    pub record_bundles: BTreeMap<String, String>,
}

/// What decides what survives: protection, use, retention.
#[derive(Debug, Clone, Default)]
pub struct Rules<'a> {
    pub protection: Option<&'a Protection>,
    /// The tags of this clone, the remote and the images: an image of a release or candidate
    /// that is not retired stays, even when this clone lacks its tag.
    pub guard: Option<&'a crate::pure::guard::Sources>,
    pub even_if_used: bool,
    /// The newest N runs per kind and region survive.
    pub keep: Option<usize>,
    /// Only what is older than this many seconds goes.
    pub older_than: Option<u64>,
    pub now: u64,
}

/// Everything to delete in one region, and what is held back.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RegionPlan {
    pub region: String,
    pub images: Vec<Image>,
    pub snapshots: Vec<String>,
    pub volumes: Vec<String>,
    pub bundles: Vec<Bundle>,
    /// Matching images that stay, with the reasons.
    pub kept: Vec<Kept>,
}

impl RegionPlan {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.snapshots.is_empty()
            && self.volumes.is_empty()
            && self.bundles.is_empty()
            && self.kept.is_empty()
    }

    /// Whether there is anything to delete.
    pub fn deletes(&self) -> bool {
        !(self.images.is_empty()
            && self.snapshots.is_empty()
            && self.volumes.is_empty()
            && self.bundles.is_empty())
    }

    /// Buckets the plan empties prefixes of: deleted afterwards if nothing else is left in them.
    pub fn buckets(&self) -> BTreeSet<&str> {
        self.bundles.iter().map(|b| b.bucket.as_str()).collect()
    }
}

fn tag(tags: &Value, key: &str) -> String {
    ec2::tags(tags).remove(key).unwrap_or_default()
}

fn time(value: &Value) -> Option<u64> {
    value.as_str().and_then(|t| time::parse_time(t).ok())
}

/// `describe-snapshots` (`Snapshots`/`SnapshotId`, `StartTime`) or `describe-volumes`
/// (`Volumes`/`VolumeId`, `CreateTime`) with their `RunId` tags.
pub fn parse_tagged(json: &str, list: &'static str, id: &str) -> Result<Vec<Tagged>, NotJson> {
    let value = parse_answer(json, list)?;
    Ok(value[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            Some(Tagged {
                id: item[id].as_str()?.to_string(),
                run: tag(&item["Tags"], "RunId"),
                created: time(&item["StartTime"]).or_else(|| time(&item["CreateTime"])),
            })
        })
        .collect())
}

/// What uses images: `describe-instances` (pending, running, stopping or stopped instances) and
/// `describe-launch-template-versions`. Image id to its users.
pub fn parse_users(
    instances: &str,
    templates: &str,
) -> Result<BTreeMap<String, Vec<String>>, NotJson> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let value = parse_answer(instances, "ec2 describe-instances")?;
    for instance in value["Reservations"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["Instances"].as_array().into_iter().flatten())
    {
        let state = instance["State"]["Name"].as_str().unwrap_or_default();
        if matches!(state, "terminated" | "shutting-down") {
            continue;
        }
        if let (Some(image), Some(id)) = (
            instance["ImageId"].as_str(),
            instance["InstanceId"].as_str(),
        ) {
            users
                .entry(image.to_string())
                .or_default()
                .push(format!("instance {id} ({state})"));
        }
    }
    let value = parse_answer(templates, "ec2 describe-launch-template-versions")?;
    for version in value["LaunchTemplateVersions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(image) = version["LaunchTemplateData"]["ImageId"].as_str() {
            let user = format!(
                "launch template {} ({}) version {}",
                version["LaunchTemplateId"].as_str().unwrap_or("?"),
                version["LaunchTemplateName"].as_str().unwrap_or("?"),
                version["VersionNumber"]
            );
            let list = users.entry(image.to_string()).or_default();
            if !list.contains(&user) {
                list.push(user);
            }
        }
    }
    Ok(users)
}

/// The number of objects of `aws s3api list-objects-v2` (no `Contents` when there are none).
pub fn count_objects(json: &str) -> Result<usize, NotJson> {
    if json.trim().is_empty() {
        return Ok(0);
    }
    let value = parse_answer(json, "s3api list-objects-v2")?;
    Ok(value["Contents"].as_array().map_or(0, Vec::len))
}

/// The keys of `aws s3api list-objects-v2`.
pub fn object_keys(json: &str) -> Result<Vec<String>, NotJson> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value = parse_answer(json, "s3api list-objects-v2")?;
    Ok(value["Contents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["Key"].as_str().map(String::from))
        .collect())
}

/// `BUCKET/PREFIX` into its parts; a bare bucket has an empty prefix.
pub fn split_bundle(location: &str) -> (String, String) {
    match location.split_once('/') {
        Some((bucket, prefix)) => (bucket.to_string(), prefix.trim_end_matches('/').to_string()),
        None => (location.to_string(), String::new()),
    }
}

/// Runs that retention keeps, with the reason: per kind, the newest `keep` runs, and runs
/// newer than `older_than`. A run's time is that of its newest image.
fn retained_runs(images: &[Image], rules: &Rules, region: &str) -> BTreeMap<String, String> {
    let mut retained = BTreeMap::new();
    let mut runs: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for image in images.iter().filter(|i| !i.run.is_empty()) {
        let time = runs
            .entry(image.kind.as_str())
            .or_default()
            .entry(image.run.as_str())
            .or_insert(0);
        *time = (*time).max(image.created.unwrap_or(0));
    }
    for (kind, runs) in runs {
        let mut newest: Vec<(&str, u64)> = runs.into_iter().collect();
        newest.sort_by(|a, b| (b.1, b.0).cmp(&(a.1, a.0)));
        for (rank, (run, time)) in newest.into_iter().enumerate() {
            if let Some(keep) = rules.keep.filter(|&keep| rank < keep) {
                let kind = if kind.is_empty() { "untagged" } else { kind };
                retained.insert(
                    run.to_string(),
                    format!("run `{run}` is one of the newest {keep} {kind} run(s) in {region} (`--keep {keep}`)"),
                );
            } else if let Some(limit) = rules.older_than {
                if rules.now.saturating_sub(time) < limit {
                    retained.insert(
                        run.to_string(),
                        format!(
                            "made {} ago, not older than `--older-than` {}",
                            time::age(rules.now.saturating_sub(time)),
                            time::age(limit)
                        ),
                    );
                }
            }
        }
    }
    retained
}

/// Which images go and which stay (with every reason): protected, public, in use (without
/// `--even-if-used`) or retained.
fn judge_images(
    images: Vec<Image>,
    rules: &Rules,
    retained: &BTreeMap<String, String>,
    in_use: &BTreeMap<String, Vec<String>>,
    record_bundles: &BTreeMap<String, String>,
) -> (Vec<Image>, Vec<Kept>) {
    let mut kept = Vec::new();
    let mut doomed = Vec::new();
    for mut image in images {
        let mut reasons: Vec<String> = rules
            .protection
            .map(|p| p.reasons(&image.id).to_vec())
            .unwrap_or_default();
        if image.public {
            reasons.push("public (launch permission `all`)".into());
        }
        // Named when nothing here protects it: a tag only the remote has, or a listing lost.
        let guarded = rules
            .guard
            .filter(|_| reasons.is_empty())
            .and_then(|sources| guard::protected(&(&image).into(), sources));
        reasons.extend(guarded.map(|keep| keep.reason()));
        let protected = !reasons.is_empty();
        if let Some(users) = in_use.get(&image.id).filter(|_| !rules.even_if_used) {
            reasons.push(format!(
                "in use by {} (`--even-if-used` deletes it anyway)",
                users.join(", ")
            ));
        }
        if let Some(reason) = retained.get(&image.run) {
            reasons.push(reason.clone());
        }
        if reasons.is_empty() {
            doomed.push(image);
            continue;
        }
        // Named in the plan: the bundle the image keeps, wherever it was learned.
        if image.bundle.is_none() {
            image.bundle = record_bundles.get(&image.id).cloned();
        }
        kept.push(Kept {
            image,
            reasons,
            protected,
        });
    }
    (doomed, kept)
}

/// The region's plan: matching images minus those that are protected, in use (without
/// `--even-if-used`) or kept by retention; their snapshots and the tagged ones, left-over
/// volumes, and bundles with objects — minus everything that belongs to a kept image.
pub fn plan_region(found: Found, rules: &Rules) -> RegionPlan {
    let Found {
        region,
        images,
        snapshots: tagged_snapshots,
        volumes,
        bundles,
        in_use,
        record_bundles,
    } = found;
    let mut unique: BTreeMap<String, Image> = BTreeMap::new();
    for image in images {
        unique.entry(image.id.clone()).or_insert(image);
    }
    let images: Vec<Image> = unique.into_values().collect();
    let retained = retained_runs(&images, rules, &region);
    let (doomed, kept) = judge_images(images, rules, &retained, &in_use, &record_bundles);
    // Whatever belongs to a kept image stays: its snapshots, and its bundle as named by its
    // manifest location or by the run records.
    let kept_snapshots: BTreeSet<&String> = kept.iter().flat_map(|k| &k.image.snapshots).collect();
    let kept_bundles: BTreeSet<String> = kept
        .iter()
        .flat_map(|k| {
            k.image
                .bundle
                .iter()
                .chain(record_bundles.get(&k.image.id))
                .map(|b| b.trim_end_matches('/').to_string())
        })
        .collect();
    let too_new = |t: &Tagged| {
        retained.contains_key(&t.run)
            || rules.older_than.is_some_and(|limit| {
                t.created
                    .is_some_and(|c| rules.now.saturating_sub(c) < limit)
            })
    };
    let snapshots: BTreeSet<String> = doomed
        .iter()
        .flat_map(|i| i.snapshots.iter().cloned())
        .chain(
            tagged_snapshots
                .iter()
                .filter(|t| !too_new(t))
                .map(|t| t.id.clone()),
        )
        .filter(|s| !kept_snapshots.contains(s))
        .collect();
    let bundles: BTreeSet<Bundle> = bundles
        .into_iter()
        .filter(|b| b.objects > 0)
        .filter(|b| !kept_bundles.contains(&b.location()))
        .collect();
    let volumes: BTreeSet<String> = volumes
        .iter()
        .filter(|v| !too_new(v))
        .map(|v| v.id.clone())
        .collect();
    RegionPlan {
        region,
        images: doomed,
        snapshots: snapshots.into_iter().collect(),
        volumes: volumes.into_iter().collect(),
        bundles: bundles.into_iter().collect(),
        kept,
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
        for kept in &plan.kept {
            let bundle = match &kept.image.bundle {
                Some(bundle) => format!(" s3://{}/", bundle.trim_end_matches('/')),
                None => String::new(),
            };
            let what = if kept.protected {
                format!("never deleted, nor its snapshots and bundle{bundle}")
            } else {
                format!("kept, with its snapshots and bundle{bundle}")
            };
            out.push_str(&format!(
                "  KEEP      {:<22}  {}: {what}\n",
                kept.image.id,
                kept.reasons.join("; ")
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
        let images = ec2::parse_images(IMAGES).unwrap();
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
        assert!(object_keys("<html>")
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }

    fn bundle(prefix: &str, objects: usize) -> Bundle {
        Bundle {
            bucket: "comboami-2.6.3-us-east-1".into(),
            prefix: prefix.into(),
            objects,
        }
    }

    fn tagged(id: &str, run: &str) -> Tagged {
        Tagged {
            id: id.into(),
            run: run.into(),
            created: None,
        }
    }

    #[test]
    fn published_images_and_their_snapshots_and_bundles_are_held_back() {
        let mut protection = Protection::default();
        protection.add("ami-22222222", "released in release/2.6.3".into());
        let found = Found {
            region: "us-east-1".into(),
            images: ec2::parse_images(IMAGES).unwrap(),
            snapshots: vec![tagged("snap-2", ""), tagged("snap-3", "")],
            volumes: vec![tagged("vol-1", "")],
            bundles: vec![
                bundle("1-1404-pv", 4),
                bundle("1-1204-pv", 2),
                bundle("1-1404-hvm", 0),
                bundle("1-1204-hvm", 3),
            ],
            in_use: BTreeMap::new(),
            // The stand-in (like an image registered from a copied manifest) may not say where
            // the manifest is: the run record does.
            record_bundles: [(
                "ami-22222222".to_string(),
                "comboami-2.6.3-us-east-1/1-1204-hvm".to_string(),
            )]
            .into(),
        };
        let rules = Rules {
            protection: Some(&protection),
            ..Rules::default()
        };
        let plan = plan_region(found, &rules);
        assert_eq!(plan.images.len(), 1);
        assert_eq!(plan.kept[0].image.id, "ami-22222222");
        assert_eq!(plan.kept[0].reasons, ["released in release/2.6.3"]);
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
        assert!(
            table.contains(
                "KEEP      ami-22222222            released in release/2.6.3: never deleted, \
                 nor its snapshots and bundle s3://comboami-2.6.3-us-east-1/1-1404-pv/\n"
            ),
            "{table}"
        );
        assert_eq!(
            totals(&[plan]),
            "1 AMI(s), 2 snapshot(s), 1 volume(s), 1 bundle folder(s) in 1 region(s)"
        );
    }

    fn test_image(id: &str, run: &str, created: u64) -> Image {
        Image {
            id: id.into(),
            run: run.into(),
            kind: "test-ebs".into(),
            snapshots: vec![format!("snap-{id}")],
            created: Some(created),
            ..Image::default()
        }
    }

    #[test]
    fn public_and_used_images_stay_unless_used_is_overridden() {
        let mut public = test_image("ami-1", "r1", 0);
        public.public = true;
        let found = || Found {
            region: "us-east-1".into(),
            images: vec![public.clone(), test_image("ami-2", "r2", 0)],
            in_use: [(
                "ami-2".to_string(),
                vec!["instance i-1 (stopped)".to_string()],
            )]
            .into(),
            ..Found::default()
        };
        let plan = plan_region(found(), &Rules::default());
        assert!(plan.images.is_empty());
        assert_eq!(plan.kept[0].reasons, ["public (launch permission `all`)"]);
        assert!(plan.kept[0].protected);
        assert!(plan.kept[1].reasons[0].starts_with("in use by instance i-1 (stopped)"));
        assert!(plan.snapshots.is_empty());
        let rules = Rules {
            even_if_used: true,
            ..Rules::default()
        };
        let plan = plan_region(found(), &rules);
        assert_eq!(plan.images[0].id, "ami-2");
        assert_eq!(plan.kept.len(), 1, "public images stay even so");
    }

    #[test]
    fn images_of_a_release_only_the_remote_knows_stay_with_their_snapshots() {
        let mut image = test_image("ami-26900001", "official-1", 0);
        image.kind = "official".into();
        image.tags = crate::pure::verdict::tags([("Version", "2.6.9"), ("Kind", "official")]);
        let found = || Found {
            region: "us-east-1".into(),
            images: vec![image.clone()],
            ..Found::default()
        };
        let remote =
            guard::parse_ls_remote(&format!("{}\trefs/tags/release/2.6.9\n", "a".repeat(40)))
                .unwrap();
        let mut sources = guard::Sources {
            remote: Some(("origin".into(), remote)),
            ..guard::Sources::default()
        };
        let rules = Rules {
            guard: Some(&sources),
            ..Rules::default()
        };
        let plan = plan_region(found(), &rules);
        assert!(!plan.deletes(), "{plan:?}");
        assert!(plan.kept[0].protected);
        assert_eq!(
            plan.kept[0].reasons,
            ["version 2.6.9 is released (tag release/2.6.9 on the remote `origin`) and not retired in `build/retired.json`"]
        );
        // Retired, or not asked at all: it goes.
        sources.retired.insert("2.6.9".into());
        let rules = Rules {
            guard: Some(&sources),
            ..Rules::default()
        };
        assert_eq!(plan_region(found(), &rules).images.len(), 1);
        assert_eq!(plan_region(found(), &Rules::default()).images.len(), 1);
    }

    #[test]
    fn retention_keeps_the_newest_runs_per_kind_and_what_is_too_new() {
        let found = || Found {
            region: "us-east-1".into(),
            images: vec![
                test_image("ami-1", "r1", 100),
                test_image("ami-2", "r2", 200),
                test_image("ami-3", "r3", 300),
                test_image("ami-4", "r3", 300),
            ],
            snapshots: vec![tagged("snap-x", "r3"), tagged("snap-y", "r1")],
            ..Found::default()
        };
        let keep = Rules {
            keep: Some(1),
            now: 1000,
            ..Rules::default()
        };
        let plan = plan_region(found(), &keep);
        let ids: Vec<&str> = plan.images.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["ami-1", "ami-2"]);
        assert_eq!(plan.kept.len(), 2);
        assert!(plan.kept[0].reasons[0].contains("newest 1 test-ebs run(s) in us-east-1"));
        assert!(!plan.snapshots.contains(&"snap-x".to_string()));
        assert!(plan.snapshots.contains(&"snap-y".to_string()));
        let older = Rules {
            older_than: Some(750),
            now: 1000,
            ..Rules::default()
        };
        let plan = plan_region(found(), &older);
        let ids: Vec<&str> = plan.images.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["ami-1", "ami-2"]);
        let both = Rules {
            keep: Some(1),
            older_than: Some(850),
            now: 1000,
            ..Rules::default()
        };
        let plan = plan_region(found(), &both);
        let ids: Vec<&str> = plan.images.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["ami-1"]);
    }

    #[test]
    fn users_are_instances_and_launch_templates() {
        let instances = r#"{"Reservations": [{"Instances": [
            {"InstanceId": "i-1", "ImageId": "ami-1", "State": {"Name": "running"}},
            {"InstanceId": "i-2", "ImageId": "ami-1", "State": {"Name": "terminated"}}]}]}"#;
        let templates = r#"{"LaunchTemplateVersions": [{"LaunchTemplateId": "lt-1",
            "LaunchTemplateName": "web", "VersionNumber": 3, "LaunchTemplateData": {"ImageId": "ami-2"}}]}"#;
        let users = parse_users(instances, templates).unwrap();
        assert_eq!(users["ami-1"], ["instance i-1 (running)"]);
        assert_eq!(users["ami-2"], ["launch template lt-1 (web) version 3"]);
    }
}
