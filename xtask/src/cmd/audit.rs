//! `cargo xtask audit`: ties git, the registry and the cloud together. For every `release/*` and
//! `candidate/*` tag and every entry of `ami_ids.json`, checks in AWS (every region at once)
//! that the image exists, is available, has the launch permission its kind needs, is deprecated
//! only if retired, carries matching `Version` and `Commit` tags and, if instance-store, still
//! has its bundle. Prints the mismatches by region; exits 1 on any.

use crate::aws::{self, Aws};
use crate::cmd::lifecycle;
use crate::core::audit::{self, Expected, Seen};
use crate::core::cleanup;
use crate::core::ec2::{Image, ImageQuery};
use crate::core::protect;
use crate::core::registry::REGISTRY_PATH;
use crate::core::retire::{self, Retired, RETIRED_PATH};
use crate::error::PartlyFailed;
use crate::git::Git;
use crate::project;
use crate::runs;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use xshell::Shell;

/// Check every release and candidate tag and `ami_ids.json` against the images in AWS.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask audit\n  cargo xtask audit --region us-east-1,eu-west-1"
)]
pub struct Audit {
    /// Only these regions (comma-separated or repeated).
    #[arg(long = "region", value_name = "REGION", num_args = 1..)]
    regions: Vec<String>,
    /// Audit the local stand-in kept by `cargo xtask local up`.
    #[arg(long)]
    local: bool,
}

impl crate::cmd::Cmd for Audit {
    const NAME: &'static str = "audit";
    fn lock(&self) -> Option<crate::lock::Busy> {
        None
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        run(cx.sh, cx.root(), &self)?;
        Ok(std::process::ExitCode::SUCCESS)
    }
}

fn run(sh: &Shell, root: &Path, options: &Audit) -> Result<()> {
    let git = Git::open(root)?;
    let tags = lifecycle::release_tags(&git)?;
    let current = project::registry(sh, REGISTRY_PATH)?;
    let retired: Retired = if root.join(RETIRED_PATH).exists() {
        retire::parse_retired(&project::read(sh, RETIRED_PATH)?).map_err(anyhow::Error::msg)?
    } else {
        Retired::default()
    };
    let head = git.head_commit()?;

    // What git and the registry say: (region, id) to what is expected, and the commit its
    // `Commit` tag must be in the history of.
    let mut expected: BTreeMap<(String, String), (Expected, String)> = BTreeMap::new();
    let mut git_problems: Vec<(String, String, String)> = Vec::new();
    for tag in &tags {
        let version = tag.name.split_once('/').map(|(_, v)| v.to_string());
        for ami in protect::tag_amis(&tag.message) {
            let Some(region) = ami.region else {
                git_problems.push((
                    "?".into(),
                    ami.id.clone(),
                    format!(
                        "{}: listed without a region, so it cannot be checked",
                        tag.name
                    ),
                ));
                continue;
            };
            let (entry, _) = expected
                .entry((region.clone(), ami.id.clone()))
                .or_insert_with(|| {
                    (
                        Expected {
                            region,
                            id: ami.id.clone(),
                            version: version.clone(),
                            ..Expected::default()
                        },
                        tag.commit.clone(),
                    )
                });
            entry.sources.push(tag.name.clone());
            entry.public |= tag.name.starts_with("release/");
        }
    }
    for ami in protect::registry_amis(&current) {
        let region = ami.region.clone().unwrap_or_default();
        let key = (region.clone(), ami.id.clone());
        if !expected.contains_key(&key) {
            git_problems.push((
                region.clone(),
                ami.id.clone(),
                format!("`{REGISTRY_PATH}`: listed, but in no `release/*` or `candidate/*` tag"),
            ));
        }
        let (entry, _) = expected.entry(key).or_insert_with(|| {
            (
                Expected {
                    region,
                    id: ami.id.clone(),
                    ..Expected::default()
                },
                head.clone(),
            )
        });
        entry.sources.push(format!("`{REGISTRY_PATH}`"));
        entry.public = true;
    }
    for (entry, _) in expected.values_mut() {
        entry.retired = retired.done(&entry.id, options.local);
    }
    let only: BTreeSet<String> = project::split_names(&options.regions).into_iter().collect();
    expected.retain(|(region, _), _| only.is_empty() || only.contains(region));
    git_problems.retain(|(region, _, _)| only.is_empty() || only.contains(region));
    let regions: Vec<String> = expected
        .keys()
        .map(|(r, _)| r.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let aws = lifecycle::connect(sh, root, options.local, "audit")?;
    eprintln!(
        "auditing {} tag(s), {} entr(ies) of `{REGISTRY_PATH}`: {} image(s) in {} region(s){}",
        tags.len(),
        protect::registry_amis(&current).len(),
        expected.len(),
        regions.len(),
        if options.local {
            " of the local stand-in"
        } else {
            ""
        }
    );
    let bundles = lifecycle::Bundles::from_records(&runs::list(root));
    let seen = aws::each_region(&regions, |sh, region| {
        let ids: Vec<&str> = expected
            .keys()
            .filter(|(r, _)| r == region)
            .map(|(_, id)| id.as_str())
            .collect();
        look(sh, &aws, region, &ids, &bundles)
    });

    let mut report = String::new();
    let mut mismatches = 0;
    let mut failures = Vec::new();
    for (region, seen) in regions.iter().zip(seen) {
        let mut seen = match seen {
            Ok(seen) => seen,
            Err(e) => {
                failures.push(format!("{region}: {e:#}"));
                continue;
            }
        };
        let mut lines = Vec::new();
        for ((_, id), (entry, commit)) in expected.iter().filter(|((r, _), _)| r == region) {
            let mut seen = seen.remove(id).unwrap_or_default();
            if let Some(image) = &seen.image {
                seen.commit_problem = commit_problem(&git, image, commit, &entry.sources);
            }
            for problem in audit::check(entry, &seen) {
                lines.push(format!("  {id}  {}: {problem}", entry.sources.join(", ")));
            }
        }
        for (_, id, problem) in git_problems.iter().filter(|(r, _, _)| r == region) {
            lines.push(format!("  {id}  {problem}"));
        }
        if !lines.is_empty() {
            mismatches += lines.len();
            report.push_str(&format!("{region}\n{}\n", lines.join("\n")));
        }
    }
    for (_, id, problem) in git_problems.iter().filter(|(r, _, _)| r == "?") {
        mismatches += 1;
        report.push_str(&format!("(no region)\n  {id}  {problem}\n"));
    }
    print!("{report}");
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    if mismatches > 0 || !failures.is_empty() {
        return Err(anyhow::Error::new(PartlyFailed)).context(format!(
            "audit found {mismatches} mismatch(es) between git, `{REGISTRY_PATH}` and the cloud{}",
            if failures.is_empty() {
                String::new()
            } else {
                format!(", and could not read {} region(s)", failures.len())
            }
        ));
    }
    println!(
        "audit clean: {} image(s) in {} region(s) match their tags, `{REGISTRY_PATH}` and `{RETIRED_PATH}`",
        expected.len(),
        regions.len()
    );
    Ok(())
}

/// One region's images and, for instance-store ones, whether their bundle is still there.
fn look(
    sh: &Shell,
    aws: &Aws,
    region: &str,
    ids: &[&str],
    bundles: &lifecycle::Bundles,
) -> Result<BTreeMap<String, Seen>> {
    let images = aws.describe_images(sh, region, &ImageQuery::ids(ids))?;
    let mut seen = BTreeMap::new();
    // One listing per bucket, however many bundles it holds.
    let mut buckets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut keys = |bucket: &str| -> Result<Vec<String>> {
        if !buckets.contains_key(bucket) {
            let keys = lifecycle::bucket_keys(sh, aws, region, bucket)?;
            buckets.insert(bucket.to_string(), keys);
        }
        Ok(buckets[bucket].clone())
    };
    for image in images {
        let bundle_present = match (&image.location, bundles.of(&image)) {
            (Some(location), _) if location.ends_with(".manifest.xml") => {
                let (bucket, key) = cleanup::split_bundle(location);
                Some(keys(&bucket)?.contains(&key))
            }
            (_, Some(bundle)) if image.root_device_type == "instance-store" => {
                let (bucket, prefix) = cleanup::split_bundle(&bundle);
                Some(lifecycle::under(&keys(&bucket)?, &prefix).next().is_some())
            }
            _ => None,
        };
        seen.insert(
            image.id.clone(),
            Seen {
                image: Some(image),
                bundle_present,
                commit_problem: None,
            },
        );
    }
    Ok(seen)
}

/// An image's `Commit` tag must name a commit in the history of what lists it.
fn commit_problem(git: &Git, image: &Image, of: &str, sources: &[String]) -> Option<String> {
    if image.commit.is_empty() {
        return Some("`Commit` tag is missing".into());
    }
    if git.is_ancestor(&image.commit, of) {
        return None;
    }
    Some(format!(
        "`Commit` tag `{}` is not in the history of {}",
        &image.commit[..image.commit.len().min(10)],
        sources.first().map_or("HEAD", String::as_str)
    ))
}
