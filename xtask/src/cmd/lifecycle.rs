//! What `cleanup`, `retire` and `audit` share: the `aws` to use, what protects images (the
//! registry now and in git history, release and candidate tags), bundles by run record, and
//! what uses an image.

use crate::aws::Aws;
use crate::error::FixContext;
use crate::git::{Git, TagInfo};
use crate::pure::matrix::Matrix;
use crate::pure::protect::Protection;
use crate::pure::registry::{self, Registry, REGISTRY_PATH};
use crate::pure::retire::{self, Retired, RETIRED_PATH};
use crate::pure::{ds0, guard, legacy};
use crate::runs::RunRecord;
use crate::standin::Standin;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;
use xshell::Shell;

pub const TAG_PREFIXES: [&str; 2] = ["release/", "candidate/"];

/// The stand-in's `aws` for `--local` (the one `local up` keeps), else the user's.
pub fn connect(sh: &Shell, root: &Path, local: bool, command: &str) -> Result<Aws> {
    if local {
        let standin = Standin::running(root).ok_or_else(|| crate::error::refused(
            format!(
                "no local stand-in is running: `{command} --local` works on the stand-in that `cargo xtask local up` keeps \
                 (a stand-in started by one command forgets everything when that command ends)"
            ),
            "start it with `cargo xtask local up` (and build what to look at there), then run the same command again",
        ))?;
        Ok(Aws::local(&standin))
    } else {
        Aws::real(sh, root)
    }
}

/// Everything that protects an image: `ami_ids.json` now, every committed version of it and
/// every `release/*` and `candidate/*` tag message. Outside a git repository only the current
/// registry counts, and the returned note says so.
pub fn protection(root: &Path, current: &Registry) -> Result<(Protection, Option<String>)> {
    let mut protection = Protection::default();
    protection.current_registry(current);
    let Ok(git) = Git::open(root) else {
        return Ok((
            protection,
            Some(format!(
                "note: `{}` is not a git repository: only the current `{REGISTRY_PATH}` and public launch \
                 permissions protect images (no history, no release tags)",
                root.display()
            )),
        ));
    };
    for (commit, text) in git.file_history(REGISTRY_PATH)? {
        // A damaged old version protects what it still names.
        match registry::parse(&text) {
            Ok(old) => protection.past_registry(&commit, &old),
            Err(_) => {
                for word in text
                    .split('"')
                    .filter(|w| crate::pure::protect::is_ami_id(w))
                {
                    protection.add(
                        word,
                        format!("in `{REGISTRY_PATH}` as committed in {commit}"),
                    );
                }
            }
        }
    }
    for tag in release_tags(&git)? {
        protection.tag(&tag.name, &tag.message);
    }
    Ok((protection, None))
}

/// A mistyped `--region` would only end in an error from AWS, after the other regions: refused
/// first, naming the regions the project publishes to.
pub fn refuse_unknown_regions(matrix: &Matrix, regions: &[String]) -> Result<()> {
    for region in crate::project::names("--region", regions)? {
        if matrix.check_region(&region).is_err() {
            let known = &matrix.settings.regions;
            let lower = region.to_ascii_lowercase();
            let fix = if known.contains(&lower) {
                format!("region names are lower-case: `--region {lower}`")
            } else {
                format!("use one of those names, or add `{region}` to `settings.regions` in `build/images.json` if the project is to publish there")
            };
            return Err(crate::error::refused(
                format!(
                    "`--region {region}` is refused: `{region}` is not one of the regions this project publishes to ({})",
                    known.join(", ")
                ),
                fix,
            ));
        }
    }
    Ok(())
}

pub fn release_tags(git: &Git) -> Result<Vec<TagInfo>> {
    git.tags_with_messages(&TAG_PREFIXES)
}

/// Where each image's bundle is (`BUCKET/PREFIX`) according to the run records: by the AMI id
/// a record holds, or else by the image's `RunId` tag and name (a run stopped before it could
/// record the id). The manifest location an image carries comes first, when there is one.
#[derive(Debug, Clone, Default)]
pub struct Bundles {
    by_id: BTreeMap<String, String>,
    by_run_and_name: BTreeMap<(String, String), String>,
}

impl Bundles {
    pub fn from_records(records: &[RunRecord]) -> Bundles {
        let mut bundles = Bundles::default();
        for record in records {
            for builder in record.builders.values() {
                let Some(bundle) = &builder.bundle else {
                    continue;
                };
                for ami in &builder.amis {
                    bundles.by_id.insert(ami.id.clone(), bundle.clone());
                }
                bundles.by_run_and_name.insert(
                    (record.run_id.clone(), builder.ami_name.clone()),
                    bundle.clone(),
                );
            }
        }
        bundles
    }

    /// The image's bundle: its manifest location, else what the records say.
    pub fn of(&self, image: &crate::pure::ec2::Image) -> Option<String> {
        image
            .bundle
            .clone()
            .or_else(|| self.by_id.get(&image.id).cloned())
            .or_else(|| {
                self.by_run_and_name
                    .get(&(image.run.clone(), image.name.clone()))
                    .cloned()
            })
    }
}

/// The keys under `PREFIX/`.
pub fn under<'a>(keys: &'a [String], prefix: &str) -> impl Iterator<Item = &'a String> {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    keys.iter().filter(move |k| k.starts_with(&prefix))
}

/// `build/retired.json`, or an empty record when there is none yet.
pub fn retired(sh: &Shell, root: &Path) -> Result<Retired> {
    if !root.join(RETIRED_PATH).exists() {
        return Ok(Retired::default());
    }
    retire::parse_retired(&crate::project::read(sh, RETIRED_PATH)?).map_err(anyhow::Error::msg)
}

/// How protection asks the remote: whether a failure refuses (`--execute`) and whether the user
/// accepted deciding without it (`--offline-ok`).
#[derive(Debug, Clone, Copy)]
pub struct RemoteAsk {
    pub execute: bool,
    pub offline_ok: bool,
}

/// What protection is decided from: this clone's tags, every remote's tags (`git ls-remote`),
/// the images the cloud listed and the versions `build/retired.json` retired. A remote that
/// cannot be asked refuses an `--execute` (unless `--offline-ok`); a listing only says so.
pub fn guard_sources(
    sh: &Shell,
    root: &Path,
    images: &[crate::pure::ec2::Image],
    local: bool,
    ask: RemoteAsk,
) -> Result<guard::Sources> {
    let mut sources = guard::Sources {
        images: images.iter().map(guard::Image::from).collect(),
        retired: guard::retired_versions(&retired(sh, root)?, local),
        ..guard::Sources::default()
    };
    // Outside a git repository there are no tags and no remote (`protection` says so).
    if let Ok(git) = Git::open(root) {
        sources.local_tags = git.tag_names()?;
        sources.remote = ask_remotes(sh, root, &git, ask)?;
    }
    Ok(sources)
}

/// Every remote's tags (`git ls-remote --tags`), merged, with the remotes' names; `None` when
/// there is no remote or none answered. A remote that cannot be asked refuses an `--execute`
/// (unless `--offline-ok`); otherwise it is said, loudly with `--offline-ok`.
pub fn ask_remotes(
    sh: &Shell,
    root: &Path,
    git: &Git,
    ask: RemoteAsk,
) -> Result<Option<(String, Vec<guard::RemoteTag>)>> {
    let names = git.remote_names()?;
    if names.is_empty() {
        eprintln!(
            "note: this repository has no remote: protection rests on its own tags and the images' tags"
        );
        return Ok(None);
    }
    let mut tags = Vec::new();
    let mut asked = Vec::new();
    for name in &names {
        let answer = crate::git::remote_tags(sh, root, name)
            .and_then(|text| guard::parse_ls_remote(&text).map_err(anyhow::Error::msg));
        match answer {
            Ok(found) => {
                tags.extend(found);
                asked.push(name.as_str());
            }
            Err(e) if ask.execute && !ask.offline_ok => {
                return Err(e).fix(
                    || format!("refusing to remove or hide anything: the remote `{name}` could not be asked which releases and candidates exist, and this clone may lack their tags"),
                    || format!("make the remote reachable (`git ls-remote --tags {name}` must work), or add `--offline-ok` to decide from this clone's tags and the images' own tags only"),
                );
            }
            Err(e) => {
                let how = if ask.offline_ok {
                    "WARNING (`--offline-ok`)"
                } else {
                    "note"
                };
                eprintln!(
                    "{how}: the remote `{name}` was not asked ({e:#}): releases and candidates only it knows are NOT protected"
                );
            }
        }
    }
    Ok((!asked.is_empty()).then(|| (asked.join("`, `"), tags)))
}

/// Tag names with their commits: this clone's, then the remote's (`RemoteTag`s).
pub fn named_tags(git: &Git, remote: &[guard::RemoteTag]) -> Result<Vec<(String, String)>> {
    let mut tags: Vec<(String, String)> = git
        .tag_names()?
        .into_iter()
        .filter_map(|name| git.tag_target(&name).map(|commit| (name, commit)))
        .collect();
    tags.extend(remote.iter().map(|t| (t.name.clone(), t.commit.clone())));
    Ok(tags)
}

/// Every commit's `ami_ids.json` (newest first) and the commit of every plain version tag, with
/// its message and the version `ds0_utils.py` held there: what `pure::legacy` reads.
pub fn legacy_snapshots(git: &Git, tags: &[(String, String)]) -> Result<Vec<legacy::Snapshot>> {
    let mut commits: Vec<(String, String)> = git.file_history(REGISTRY_PATH)?;
    for (name, commit) in tags {
        let plain = semver::Version::parse(name).is_ok();
        if let Some(text) = git.file_at(commit, REGISTRY_PATH).filter(|_| plain) {
            commits.push((commit.clone(), text));
        }
    }
    Ok(commits
        .into_iter()
        .map(|(commit, registry)| legacy::Snapshot {
            message: git.commit_message(&commit).unwrap_or_default(),
            ds0_version: git
                .file_at(&commit, ds0::DS0_PATH)
                .and_then(|text| ds0::read(&text).ok())
                .map(|(version, _)| version),
            commit,
            registry,
        })
        .collect())
}

/// The releases made before this tool: older than the first `release/*` tag (here or on the
/// remote), found through the history of `ami_ids.json` and the plain tags.
pub fn legacy_releases(git: &Git, remote: &[guard::RemoteTag]) -> Result<Vec<legacy::Legacy>> {
    let tags = named_tags(git, remote)?;
    let snapshots = legacy_snapshots(git, &tags)?;
    let first = tags
        .iter()
        .filter_map(|(name, _)| name.strip_prefix("release/"))
        .filter_map(|v| semver::Version::parse(v).ok())
        .min();
    Ok(legacy::all(&snapshots, &tags, first.as_ref()))
}
