//! Issue 11: published images are never lost, old releases retire in stages, test images are
//! retained by count and age, used images are skipped, and `audit` ties tags, `ami_ids.json`
//! and the cloud together — all against one stand-in kept by `local up` per test.

use crate::common;

use common::{standin_aws, BuildDoc, Repo};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One built image: its builder, region, id and bundle location (`BUCKET/PREFIX`).
#[derive(Debug, Clone)]
struct Built {
    builder: String,
    region: String,
    id: String,
    bundle: Option<String>,
}

/// The images a build made, from its `--json` document.
fn built(run: &common::Run) -> BTreeMap<String, Built> {
    let doc: BuildDoc = run.doc();
    doc.run
        .builders
        .iter()
        .map(|(name, b)| {
            (
                name.clone(),
                Built {
                    builder: name.clone(),
                    region: b.region.clone(),
                    id: b.ami().to_string(),
                    bundle: b.bundle.clone(),
                },
            )
        })
        .collect()
}

/// `ami_ids.json` holding exactly these images.
fn registry(images: &[&Built]) -> String {
    let mut registry: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for image in images {
        let parts: Vec<&str> = image.builder.rsplitn(3, '-').collect();
        registry
            .entry(image.region.clone())
            .or_default()
            .push(json!({
                "Distributor ID": "Ubuntu",
                "Release": parts[1],
                "id": image.id,
                "virtualization type": parts[0],
            }));
    }
    serde_json::to_string_pretty(&registry).unwrap() + "\n"
}

/// What the stand-in holds in some regions, read with a few calls per region (every `aws` call
/// costs a CLI start-up): images by id, snapshot ids, and S3 objects as `BUCKET/KEY`.
#[derive(Debug, Default)]
struct World {
    images: BTreeMap<String, Value>,
    snapshots: Vec<String>,
    objects: Vec<String>,
}

impl World {
    fn images(repo: &Repo, regions: &[&str]) -> World {
        let mut world = World::default();
        for region in regions {
            let found = standin_aws(
                repo,
                region,
                &["ec2", "describe-images", "--owners", "self"],
            );
            for image in found["Images"].as_array().unwrap() {
                let id = image["ImageId"].as_str().unwrap().to_string();
                world.images.insert(id, image.clone());
            }
        }
        world
    }

    /// Images, snapshots and every object of every bucket.
    fn all(repo: &Repo, regions: &[&str]) -> World {
        let mut world = World::images(repo, regions);
        for region in regions {
            let found = standin_aws(
                repo,
                region,
                &["ec2", "describe-snapshots", "--owner-ids", "self"],
            );
            world.snapshots.extend(
                found["Snapshots"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["SnapshotId"].as_str().unwrap().to_string()),
            );
        }
        let buckets = standin_aws(repo, regions[0], &["s3api", "list-buckets"]);
        for bucket in buckets["Buckets"].as_array().unwrap() {
            let name = bucket["Name"].as_str().unwrap();
            let listed = standin_aws(
                repo,
                regions[0],
                &["s3api", "list-objects-v2", "--bucket", name],
            );
            world.objects.extend(
                listed["Contents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| format!("{name}/{}", o["Key"].as_str().unwrap())),
            );
        }
        world
    }

    fn exists(&self, image: &Built) -> bool {
        self.images.contains_key(&image.id)
    }

    fn public(&self, image: &Built) -> bool {
        self.images[&image.id]["Public"] == true
    }

    fn deprecated(&self, image: &Built) -> bool {
        self.images[&image.id]["DeprecationTime"].is_string()
    }

    fn snapshots_of(&self, image: &Built) -> Vec<String> {
        self.images[&image.id]["BlockDeviceMappings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Ebs"]["SnapshotId"].as_str().map(String::from))
            .collect()
    }

    fn has_snapshots(&self, snapshots: &[String]) -> bool {
        snapshots.iter().all(|s| self.snapshots.contains(s))
    }

    /// The objects of an image's bundle folder.
    fn bundle_objects(&self, image: &Built) -> usize {
        let prefix = format!("{}/", image.bundle.as_deref().unwrap());
        self.objects
            .iter()
            .filter(|o| o.starts_with(&prefix))
            .count()
    }
}

const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

fn set_public(repo: &Repo, image: &Built, public: bool) {
    let change = if public {
        "Add=[{Group=all}]"
    } else {
        "Remove=[{Group=all}]"
    };
    standin_aws(
        repo,
        &image.region,
        &[
            "ec2",
            "modify-image-attribute",
            "--image-id",
            &image.id,
            "--launch-permission",
            change,
        ],
    );
}

/// Enables (without the cooldown) or disables an image's deregistration protection.
fn protect(repo: &Repo, image: &Built, on: bool) {
    let call = if on {
        "enable-image-deregistration-protection"
    } else {
        "disable-image-deregistration-protection"
    };
    standin_aws(repo, &image.region, &["ec2", call, "--image-id", &image.id]);
}

fn tag_message(version: &str, images: &[&Built]) -> String {
    let mut message = format!(
        "ComboAMI {version} (branch 2.6)\n\n{} AMIs:\n",
        images.len()
    );
    for image in images {
        let parts: Vec<&str> = image.builder.rsplitn(3, '-').collect();
        message.push_str(&format!(
            "{:<15} {} {:<3}  {}\n",
            image.region, parts[1], parts[0], image.id
        ));
    }
    message
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn published_images_survive_cleanup_retire_in_stages_and_audit_names_mismatches() {
    let repo = Repo::new("lifecycle");
    repo.git_init("2.6");
    repo.xtask(&["local", "up"]).ok();
    // Seven official (public, instance-store) images of 2.6.3 in two regions.
    let run = repo
        .xtask(&[
            "publish",
            "--local",
            "--yes",
            "--only",
            "us-east-1-1404-hvm,us-east-1-1204-pv,us-west-2-1404-hvm,us-west-2-1204-hvm,\
             us-east-1-1204-hvm,us-east-1-1404-pv,us-west-2-1404-pv",
            "--json",
        ])
        .ok();
    let images = built(&run);
    let get = |builder: &str| images[builder].clone();
    // A: only in an earlier committed `ami_ids.json`. B, D, F, G: the release (registry and
    // tag). C: only public. E: only in the release tag's message.
    let (a, b, c, d) = (
        get("us-east-1-1404-hvm"),
        get("us-east-1-1204-pv"),
        get("us-west-2-1404-hvm"),
        get("us-west-2-1204-hvm"),
    );
    let (e, f, g) = (
        get("us-east-1-1204-hvm"),
        get("us-east-1-1404-pv"),
        get("us-west-2-1404-pv"),
    );
    repo.write("ami_ids.json", &registry(&[&a]));
    repo.git(&["commit", "--quiet", "-am", "Release 2.6.3, first try"]);
    repo.write("ami_ids.json", &registry(&[&b, &d, &f, &g]));
    repo.git(&["commit", "--quiet", "-am", "Release 2.6.3"]);
    repo.git(&[
        "tag",
        "-a",
        "release/2.6.3",
        "-m",
        &tag_message("2.6.3", &[&b, &d, &e, &f, &g]),
    ]);

    // Released images are protected from deregistration (as publishing does; without the
    // cooldown, so `retire --deregister` below can lift it at once). A fresh release audits clean.
    for image in [&b, &d, &e, &f, &g] {
        protect(&repo, image, true);
    }
    let audit = repo.xtask(&["audit", "--local"]).ok();
    assert!(
        audit
            .stdout
            .contains("audit clean: 5 image(s) in 2 region(s)"),
        "{audit:#?}"
    );

    // Protection that no filter bypasses, each reason named; nothing of theirs is deleted.
    set_public(&repo, &a, false);
    set_public(&repo, &e, false);
    let all = [&a, &b, &c, &d, &e, &f, &g];
    let cleanup = repo
        .xtask(&["cleanup", "--local", "--version", "2.6.3", "--execute"])
        .ok();
    let keep = |image: &Built| line_with(&cleanup.stdout, &format!("KEEP      {}", image.id));
    let a_line = keep(&a);
    assert!(
        a_line.contains("in `ami_ids.json` as committed in ") && !a_line.contains("public"),
        "{a_line}"
    );
    assert!(
        a_line.ends_with(&format!(
            "never deleted, nor its snapshots and bundle s3://{}/",
            a.bundle.as_deref().unwrap()
        )),
        "{a_line}"
    );
    assert!(
        keep(&e).contains("released in release/2.6.3: never deleted"),
        "{}",
        keep(&e)
    );
    assert!(
        keep(&c).contains("  public (launch permission `all`): never deleted"),
        "{}",
        keep(&c)
    );
    assert!(keep(&b).contains("listed in `ami_ids.json`; released in release/2.6.3; public"));
    assert!(
        !cleanup.stdout.contains("deregistered"),
        "{}",
        cleanup.stdout
    );
    assert!(!cleanup.stdout.contains(": deleted"), "{}", cleanup.stdout);
    assert!(
        cleanup
            .stdout
            .contains("found 0 AMI(s), 0 snapshot(s), 0 volume(s), 0 bundle folder(s)"),
        "{}",
        cleanup.stdout
    );
    let world = World::all(&repo, &REGIONS);
    let snapshots: Vec<Vec<String>> = all.iter().map(|i| world.snapshots_of(i)).collect();
    for (image, snapshots) in all.iter().zip(&snapshots) {
        assert!(world.exists(image), "{image:?}");
        assert!(
            !snapshots.is_empty() && world.has_snapshots(snapshots),
            "{image:?}"
        );
        assert_eq!(world.bundle_objects(image), 1, "{image:?}");
    }
    set_public(&repo, &e, true);

    // 2.6.4 replaces B in the registry; D, F and G stay (their rows were not rebuilt).
    repo.xtask(&["set-version", "2.6.4"]).ok();
    repo.write("ami_ids.json", &registry(&[&d, &f, &g]));
    repo.git(&["commit", "--quiet", "-am", "Release 2.6.4"]);
    repo.git(&[
        "tag",
        "-a",
        "release/2.6.4",
        "-m",
        &tag_message("2.6.4", &[]),
    ]);
    repo.xtask(&["retire", "2.6.4", "--deprecate", "--local"])
        .fails(
            2,
            &[
                "`2.6.4` is the newest release (known from tag release/2.6.4 in this clone)",
                "fix: release a newer version first",
            ],
        );

    // A plan changes nothing.
    let plan = repo
        .xtask(&["retire", "2.6.3", "--deprecate", "--local"])
        .ok();
    assert!(
        plan.stdout.contains("retire 2.6.3: 7 image(s)"),
        "{plan:#?}"
    );
    assert!(
        line_with(&plan.stdout, &e.id)
            .contains("public, not deprecated, protected from deregistration  (listed in release/2.6.3; tagged Version 2.6.3)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("nothing was changed"),
        "{}",
        plan.stdout
    );
    let world = World::images(&repo, &REGIONS);
    for image in all {
        assert!(!world.deprecated(image), "{image:?}");
    }
    assert!(!repo.path("build/retired.json").exists());

    // An instance uses C: retire skips it, with the reason.
    let instance = standin_aws(
        &repo,
        &c.region,
        &["ec2", "run-instances", "--image-id", &c.id, "--count", "1"],
    );
    let instance_id = instance["Instances"][0]["InstanceId"].as_str().unwrap();
    let staged = repo
        .xtask(&[
            "retire",
            "2.6.3",
            "--deprecate",
            "--make-private",
            "--execute",
            "--local",
        ])
        .ok();
    let world = World::images(&repo, &REGIONS);
    for image in all {
        assert!(world.deprecated(image), "{image:?}");
    }
    for image in [&a, &b, &e] {
        assert!(!world.public(image), "{image:?}");
    }
    assert!(world.public(&c));
    assert!(
        staged
            .stdout
            .contains(&format!("skip: in use by instance {instance_id} (running)")),
        "{}",
        staged.stdout
    );
    for image in [&d, &f, &g] {
        assert!(world.public(image), "the published release stays public");
    }
    assert!(staged.stdout.contains("still listed in `ami_ids.json`"));
    let log = repo.git(&["log", "-1", "--format=%s"]);
    assert_eq!(
        log.trim(),
        "Retire ComboAMI 2.6.3: deprecate, make-private (local stand-in)"
    );
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "",
        "the record is committed"
    );

    // Deregistration waits for the grace period (`--execute` that can do nothing is refused);
    // `--grace 0` only needs the deprecation.
    let early = repo
        .xtask(&["retire", "2.6.3", "--deregister", "--execute", "--local"])
        .fails(
            2,
            &[
                "step(s) are refused and the rest skipped",
                "nothing was changed or recorded",
            ],
        );
    assert!(
        early.stdout.contains("less than 30 day(s) ago"),
        "{}",
        early.stdout
    );
    let world = World::images(&repo, &REGIONS);
    for image in all {
        assert!(world.exists(image));
    }
    let deregister = [
        "retire",
        "2.6.3",
        "--deregister",
        "--grace",
        "0",
        "--execute",
        "--local",
    ];
    // Released images carry deregistration protection with AWS's 24-hour cooldown: the first
    // try lifts it and says until when; the stand-in's clock then moves a day on.
    let cooling = repo.xtask(&deregister).fails(1, &["24-hour"]);
    assert!(
        cooling.all().contains("run the same command after"),
        "{}",
        cooling.all()
    );
    repo.write("target/standin/clock-offset", "90000");
    let gone = repo.xtask(&deregister).ok();
    let world = World::all(&repo, &REGIONS);
    for (image, snapshots) in all.iter().zip(&snapshots) {
        let retired = [&a.id, &b.id, &e.id].contains(&&image.id);
        assert_eq!(world.exists(image), !retired, "{image:?}\n{}", gone.stdout);
        assert_eq!(world.has_snapshots(snapshots), !retired, "{image:?}");
        assert_eq!(
            world.bundle_objects(image),
            usize::from(!retired),
            "{image:?}"
        );
    }
    assert!(
        line_with(&gone.stdout, &format!("deregister {}", a.id)).contains("deleted s3://"),
        "{}",
        gone.stdout
    );
    let record: Value = serde_json::from_str(&repo.read("build/retired.json")).unwrap();
    let stages: Vec<&str> = record["retirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stage"].as_str().unwrap())
        .collect();
    // The first `--deregister` lifted the protection and waited out the cooldown: recorded too.
    assert_eq!(
        stages,
        ["deprecate", "make-private", "deregister", "deregister"]
    );
    assert_eq!(record["retirements"][3]["version"], "2.6.3");
    // Images without a running cooldown go at the first try, the one in its cooldown at the
    // second: three in all.
    let done: usize = [2, 3]
        .iter()
        .map(|i| {
            record["retirements"][*i]["images"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["result"] == "done")
                .count()
        })
        .sum();
    assert_eq!(done, 3, "{record:#}");

    // Retired images are what audit expects; then three mismatches, each named.
    repo.xtask(&["audit", "--local"]).ok();
    standin_aws(
        &repo,
        &d.region,
        &[
            "ec2",
            "create-tags",
            "--resources",
            &d.id,
            "--tags",
            "Key=Version,Value=9.9.9",
        ],
    );
    let (bucket, prefix) = f.bundle.as_deref().unwrap().split_once('/').unwrap();
    standin_aws(
        &repo,
        &f.region,
        &[
            "s3",
            "rm",
            "--recursive",
            "--quiet",
            &format!("s3://{bucket}/{prefix}/"),
        ],
    );
    protect(&repo, &g, false);
    standin_aws(
        &repo,
        &g.region,
        &["ec2", "deregister-image", "--image-id", &g.id],
    );
    protect(&repo, &d, false);
    let audit = repo
        .xtask(&["audit", "--local"])
        .fails(1, &["audit found 4 mismatch(es)"]);
    assert!(
        audit.stdout.contains(&format!(
            "  {}  release/2.6.3, `ami_ids.json`: not protected from deregistration: `aws ec2 enable-image-deregistration-protection --region {} --image-id {} --with-cooldown` restores it",
            d.id, d.region, d.id
        )),
        "{}",
        audit.stdout
    );
    assert!(
        line_with(&audit.stdout, &d.id).contains("`Version` tag is `9.9.9`, expected `2.6.3`"),
        "{}",
        audit.stdout
    );
    assert!(
        line_with(&audit.stdout, &f.id)
            .contains("is missing: an instance-store image cannot launch without it"),
        "{}",
        audit.stdout
    );
    assert!(
        line_with(&audit.stdout, &g.id).contains("not found in AWS"),
        "{}",
        audit.stdout
    );
}

/// Cleanup keeping the newest test-ebs run per region, in the stand-in.
const KEEP_NEWEST: [&str; 7] = [
    "cleanup",
    "--local",
    "--keep",
    "1",
    "--kind",
    "test-ebs",
    "--execute",
];

#[test]
fn retention_keeps_the_newest_runs_and_used_images_are_skipped() {
    let repo = Repo::new("retention");
    repo.xtask(&["local", "up"]).ok();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let run = repo
            .xtask(&[
                "test-ebs",
                "--local",
                "--only",
                "us-east-1-1404-hvm",
                "--json",
            ])
            .ok();
        runs.push(built(&run)["us-east-1-1404-hvm"].clone());
        // Run ids and creation times have a resolution of one second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // Too young for `--older-than`: nothing goes.
    let young = repo
        .xtask(&[
            "cleanup",
            "--local",
            "--kind",
            "test-ebs",
            "--older-than",
            "12h",
            "--execute",
        ])
        .ok();
    assert!(!young.stdout.contains("deregistered"), "{}", young.stdout);
    assert!(
        young.stdout.contains("not older than `--older-than` 12h"),
        "{}",
        young.stdout
    );
    repo.xtask(&[
        "cleanup",
        "--local",
        "--kind",
        "test-ebs",
        "--older-than",
        "7",
    ])
    .fails(2, &["`7d` or `12h`"]);

    // The oldest is in use: skipped, with the reason; the middle one goes.
    let instance = standin_aws(
        &repo,
        "us-east-1",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &runs[0].id,
            "--count",
            "1",
        ],
    );
    let instance_id = instance["Instances"][0]["InstanceId"].as_str().unwrap();
    let used = repo.xtask(&KEEP_NEWEST).ok();
    assert!(
        line_with(&used.stdout, &format!("KEEP      {}", runs[0].id))
            .contains(&format!("in use by instance {instance_id} (running)")),
        "{}",
        used.stdout
    );
    assert!(
        line_with(&used.stdout, &format!("KEEP      {}", runs[2].id))
            .contains("newest 1 test-ebs run(s) in us-east-1"),
        "{}",
        used.stdout
    );
    assert!(used
        .stdout
        .contains(&format!("deregistered {}", runs[1].id)));
    let world = World::images(&repo, &["us-east-1"]);
    assert!(world.exists(&runs[0]) && !world.exists(&runs[1]));

    // Once the instance is gone, `--keep 1` leaves exactly the newest.
    standin_aws(
        &repo,
        "us-east-1",
        &["ec2", "terminate-instances", "--instance-ids", instance_id],
    );
    repo.xtask(&KEEP_NEWEST).ok();
    let left = common::own_images_tagged(&repo, "us-east-1", ("Kind", "test-ebs"));
    let ids: Vec<&str> = left
        .iter()
        .map(|i| i["ImageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [runs[2].id.as_str()]);
}
