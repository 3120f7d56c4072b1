//! `cargo xtask audit`: ties git, the registry and the cloud together. For every `release/*` and
//! `candidate/*` tag and every entry of `ami_ids.json`, checks in AWS (every region at once)
//! that the image exists, is available, has the launch permission its kind needs, is deprecated
//! only if retired, carries matching `Version` and `Commit` tags and, if instance-store, still
//! has its bundle. Prints the mismatches by region; exits 1 on any.

use crate::aws::{self, Aws};
use crate::cmd::lifecycle;
use crate::error::{FixContext, PartlyFailed};
use crate::git::Git;
use crate::project;
use crate::pure::audit::{self, Seen, TagRef};
use crate::pure::cleanup;
use crate::pure::ec2::{Image, ImageQuery};
use crate::pure::protect;
use crate::pure::registry::REGISTRY_PATH;
use crate::pure::retire::RETIRED_PATH;
use crate::runs;
use anyhow::Result;
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
    let matrix = project::matrix(sh)?;
    lifecycle::refuse_unknown_regions(&matrix, &options.regions)?;
    let git = Git::open(root)?;
    let tags = lifecycle::release_tags(&git)?;
    let current = project::registry(sh, REGISTRY_PATH)?;
    let retired = lifecycle::retired(sh, root)?;
    let tag_refs: Vec<TagRef> = tags
        .iter()
        .map(|t| TagRef {
            name: &t.name,
            commit: &t.commit,
            message: &t.message,
        })
        .collect();
    let only: BTreeSet<String> = project::split_names(&options.regions).into_iter().collect();
    let listed = protect::registry_amis(&current);
    let head = git.head_commit()?;
    let mut expected =
        audit::expectations(&tag_refs, &listed, &head, &retired, options.local, &only);
    explain_legacy(sh, root, &git, &mut expected, options.local)?;
    audit::mark_adopted(&mut expected, &tag_refs, options.local);
    let regions = expected.regions();

    let aws = lifecycle::connect(sh, root, options.local, "audit")?;
    eprintln!(
        "auditing {} tag(s), {} entr(ies) of `{REGISTRY_PATH}`: {} image(s) in {} region(s){}",
        tags.len(),
        listed.len(),
        expected.images.len(),
        regions.len(),
        if options.local {
            " of the local stand-in"
        } else {
            ""
        }
    );
    let bundles = lifecycle::Bundles::from_records(&runs::list(root));
    let answers = aws::each_region(&regions, |sh, region| {
        look(sh, &aws, region, &expected.ids_in(region), &bundles)
    });
    let mut seen = BTreeMap::new();
    let mut failures = Vec::new();
    for (region, answer) in regions.iter().zip(answers) {
        match answer {
            Ok(mut images) => {
                judge_commits(&git, &expected, &mut images);
                seen.insert(region.clone(), images);
            }
            Err(e) => failures.push(format!("{region}: {e:#}")),
        }
    }
    let (report, mismatches) = audit::report(&expected, &seen);
    print!("{report}");
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    if mismatches > 0 || !failures.is_empty() {
        return Err(PartlyFailed).fix(
            || audit_failure(mismatches, failures.len()),
            || audit_fix(mismatches, failures.len()),
        );
    }
    println!(
        "audit clean: {} image(s) in {} region(s) match their tags, `{REGISTRY_PATH}` and `{RETIRED_PATH}`",
        expected.images.len(),
        regions.len()
    );
    Ok(())
}

/// What an audit that is not clean says: the mismatches it found, the regions it could not read.
fn audit_failure(mismatches: usize, unread: usize) -> String {
    let found = format!(
        "audit found {mismatches} mismatch(es) between git, `{REGISTRY_PATH}` and the cloud"
    );
    match (mismatches, unread) {
        (_, 0) => found,
        (0, n) => format!("audit is incomplete: it could not read {n} region(s); the others match"),
        (_, n) => format!("{found}, and could not read {n} region(s)"),
    }
}

fn audit_fix(mismatches: usize, unread: usize) -> String {
    let mismatched = "each line above names the image and what differs: restore what is wrong in the cloud (or record it with `cargo xtask retire`), or correct `ami_ids.json` and the tags";
    let unreadable = "resolve why the regions could not be read (each `error:` line above says)";
    match (mismatches, unread) {
        (_, 0) => format!("{mismatched}, then run `cargo xtask audit` again"),
        (0, _) => format!("{unreadable}, then run `cargo xtask audit` again"),
        _ => format!("{unreadable}; {mismatched}; then run `cargo xtask audit` again"),
    }
}

/// Releases made before the tool (found through `ami_ids.json` history and plain tags, here and
/// on the remote): their images are expected without the tags they never had, and the section
/// says what is missing and the command that adopts each.
fn explain_legacy(
    sh: &Shell,
    root: &Path,
    git: &Git,
    expected: &mut audit::Expectations,
    local: bool,
) -> Result<()> {
    // Listing only: a remote that cannot be asked is said, not fatal.
    let ask = lifecycle::RemoteAsk {
        execute: false,
        offline_ok: false,
    };
    let remote = lifecycle::ask_remotes(sh, root, git, ask)?;
    let legacies = lifecycle::legacy_releases(git, remote.as_ref().map_or(&[], |r| &r.1))?;
    audit::mark_legacy(expected, &legacies, local);
    print!("{}", audit::legacy_section(&legacies, local));
    Ok(())
}

/// Judges the `Commit` tag of every image found against git.
fn judge_commits(git: &Git, expected: &audit::Expectations, seen: &mut BTreeMap<String, Seen>) {
    for ((_, id), (entry, commit)) in expected
        .images
        .iter()
        .filter(|(_, (e, _))| e.legacy.is_none())
    {
        if let Some(seen) = seen.get_mut(id) {
            if let Some(image) = &seen.image {
                seen.commit_problem = commit_problem(git, image, commit, &entry.sources);
            }
        }
    }
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
            let keys = aws.bucket_keys(sh, region, bucket)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regions that could not be read are not called mismatches, and their fix is their own.
    #[test]
    fn an_unread_region_is_named_as_such() {
        assert_eq!(
            audit_failure(0, 2),
            "audit is incomplete: it could not read 2 region(s); the others match"
        );
        assert!(audit_fix(0, 2).starts_with("resolve why the regions could not be read"));
        assert!(!audit_fix(0, 2).contains("restore"));
        assert!(audit_failure(3, 1).ends_with("and could not read 1 region(s)"));
        assert!(audit_fix(3, 0).starts_with("each line above names the image"));
    }
}
