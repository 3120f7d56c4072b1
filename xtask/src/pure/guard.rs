//! What must not be removed or hidden, decided from every source at once, not from one clone:
//! this clone's tags, the remote's tags (`git ls-remote --tags`), the images' own `Version`,
//! `Kind` and verdict tags in the cloud, and the versions `build/retired.json` retired. Cleanup
//! and retire ask here before they touch anything. Pure: the callers ask git and the cloud.

use crate::pure::retire::Retired;
use crate::pure::verdict::{Tags, REJECTED};
use semver::Version;
use std::collections::BTreeSet;
use std::fmt;

/// A tag of the remote as `git ls-remote --tags` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTag {
    pub name: String,
    /// The commit it names (for an annotated tag, the peeled `^{}` line's).
    pub commit: String,
}

/// `git ls-remote --tags REMOTE` output: `<sha>\trefs/tags/<name>` lines, an annotated tag
/// followed by its peeled `<sha>\trefs/tags/<name>^{}` line. Each tag once, with its commit.
pub fn parse_ls_remote(text: &str) -> Result<Vec<RemoteTag>, String> {
    let mut tags: Vec<RemoteTag> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "`git ls-remote` line {} is not `SHA<tab>REF`: `{line}`",
                number + 1
            )
        };
        let (sha, refname) = line.split_once('\t').ok_or_else(bad)?;
        if sha.len() < 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let Some(name) = refname.strip_prefix("refs/tags/") else {
            continue;
        };
        let (name, peeled) = match name.strip_suffix("^{}") {
            Some(name) => (name, true),
            None => (name, false),
        };
        match tags.iter_mut().find(|t| t.name == name) {
            Some(tag) if peeled => tag.commit = sha.to_string(),
            Some(_) => {}
            None => tags.push(RemoteTag {
                name: name.to_string(),
                commit: sha.to_string(),
            }),
        }
    }
    Ok(tags)
}

/// What a tag name says of a version: released, or a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Released,
    Candidate,
}

/// `release/2.6.9`, `candidate/2.6.10-beta1`, or a plain `2.6.3` of the releases made before
/// this tool; a pre-release version is a candidate whatever its prefix.
pub fn tag_version(name: &str) -> Option<(Stage, Version)> {
    let text = name
        .strip_prefix("release/")
        .or_else(|| name.strip_prefix("candidate/"))
        .unwrap_or(name);
    let version = Version::parse(text).ok()?;
    let stage = if version.pre.is_empty() && !name.starts_with("candidate/") {
        Stage::Released
    } else {
        Stage::Candidate
    };
    Some((stage, version))
}

/// The release version an image's tags claim: an official (or untagged-kind) image with a
/// plain `Version`, not rejected. Test images and candidates claim none.
pub fn image_release(tags: &Tags) -> Option<Version> {
    let official = tags.get("Kind").is_none_or(|k| k == "official");
    let version = Version::parse(tags.get("Version")?).ok()?;
    (official && version.pre.is_empty() && !tags.contains_key(REJECTED)).then_some(version)
}

/// The newest released version known from this clone's tags, the remote's tags and the
/// versions images claim, in semver order; pre-releases are candidates, not releases.
pub fn newest_release(
    local: &[String],
    remote: &[String],
    image_versions: &[Version],
) -> Option<Version> {
    local
        .iter()
        .chain(remote)
        .filter_map(|name| tag_version(name))
        .filter(|(stage, _)| *stage == Stage::Released)
        .map(|(_, version)| version)
        .chain(image_versions.iter().filter(|v| v.pre.is_empty()).cloned())
        .max()
}

/// An image in the cloud: its id and tags.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub tags: Tags,
}

impl From<&crate::pure::ec2::Image> for Image {
    fn from(image: &crate::pure::ec2::Image) -> Image {
        Image {
            id: image.id.clone(),
            tags: image.tags.clone(),
        }
    }
}

/// Everything protection is decided from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Tag names in this clone.
    pub local_tags: Vec<String>,
    /// The remote's name and its tags; `None` when it was not asked (`--offline-ok`).
    pub remote: Option<(String, Vec<RemoteTag>)>,
    /// Every image of the project the cloud listed.
    pub images: Vec<Image>,
    /// Versions `build/retired.json` records a retirement stage of.
    pub retired: BTreeSet<String>,
}

/// The versions with an executed retirement stage (in AWS, or in the stand-in for `local`).
pub fn retired_versions(retired: &Retired, local: bool) -> BTreeSet<String> {
    retired
        .retirements
        .iter()
        .filter(|r| r.local == local && r.images.iter().any(|i| i.result == "done"))
        .map(|r| r.version.clone())
        .collect()
}

/// Where a version's tag was seen, for the reason a plan prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub stage: Stage,
    pub tag: String,
    pub local: bool,
    pub remote: Option<String>,
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remote = self.remote.as_ref().map(|r| format!("on the remote `{r}`"));
        let place = match (self.local, remote) {
            (true, Some(remote)) => format!("in this clone and {remote}"),
            (true, None) => "in this clone".to_string(),
            (false, Some(remote)) => remote,
            (false, None) => "nowhere".to_string(),
        };
        write!(f, "tag {} {place}", self.tag)
    }
}

impl Sources {
    /// Every tag that names `version`, merged across this clone and the remote; releases
    /// first.
    pub fn seen(&self, version: &Version) -> Vec<Seen> {
        let (remote_name, remote_tags) = match &self.remote {
            Some((name, tags)) => (Some(name.as_str()), tags.as_slice()),
            None => (None, &[][..]),
        };
        let mut seen: Vec<Seen> = Vec::new();
        let local = self.local_tags.iter().map(|n| (n.as_str(), true));
        let remote = remote_tags.iter().map(|t| (t.name.as_str(), false));
        for (name, is_local) in local.chain(remote) {
            let Some((stage, _)) = tag_version(name).filter(|(_, v)| v == version) else {
                continue;
            };
            let index = match seen.iter().position(|s| s.tag == name) {
                Some(index) => index,
                None => {
                    seen.push(Seen {
                        stage,
                        tag: name.to_string(),
                        local: false,
                        remote: None,
                    });
                    seen.len() - 1
                }
            };
            if is_local {
                seen[index].local = true;
            } else {
                seen[index].remote = remote_name.map(String::from);
            }
        }
        seen.sort_by_key(|s| s.stage != Stage::Released);
        seen
    }

    pub fn newest_release(&self) -> Option<Version> {
        let remote: Vec<String> = self
            .remote
            .iter()
            .flat_map(|(_, tags)| tags.iter().map(|t| t.name.clone()))
            .collect();
        let claimed: Vec<Version> = self
            .images
            .iter()
            .filter_map(|i| image_release(&i.tags))
            .collect();
        newest_release(&self.local_tags, &remote, &claimed)
    }

    /// How many images claim `version` as their release.
    fn claimed_by(&self, version: &Version) -> usize {
        self.images
            .iter()
            .filter(|i| image_release(&i.tags).as_ref() == Some(version))
            .count()
    }
}

/// Why an image is kept: it belongs to a release or candidate that is not retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub id: String,
    pub version: Version,
    pub seen: Seen,
}

impl Keep {
    /// Why, without the image: `version 2.6.9 is released (tag ... on the remote `origin`)`.
    pub fn reason(&self) -> String {
        let what = match self.seen.stage {
            Stage::Released => "is released",
            Stage::Candidate => "is a release candidate",
        };
        format!(
            "version {} {what} ({}) and not retired in `{}`",
            self.version,
            self.seen,
            crate::pure::retire::RETIRED_PATH
        )
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KEEP {} {}", self.id, self.reason())
    }
}

/// Whether `image` must be kept: an official image (not rejected) whose `Version` has a
/// release or candidate tag in this clone or on the remote, and is not retired.
pub fn protected(image: &Image, sources: &Sources) -> Option<Keep> {
    let official = image.tags.get("Kind").is_none_or(|k| k == "official");
    if !official || image.tags.contains_key(REJECTED) {
        return None;
    }
    let version = Version::parse(image.tags.get("Version")?).ok()?;
    if sources.retired.contains(&version.to_string()) {
        return None;
    }
    let seen = sources.seen(&version).into_iter().next()?;
    Some(Keep {
        id: image.id.clone(),
        version,
        seen,
    })
}

/// Why a version may not be retired: what failed and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub what: String,
    pub fix: String,
}

/// Refuses the newest release and anything newer (known from every source), so a clone that
/// lacks a tag cannot retire what users run.
pub fn may_retire(version: &Version, sources: &Sources) -> Result<(), Refusal> {
    let Some(newest) = sources.newest_release() else {
        return Ok(());
    };
    if *version < newest {
        return Ok(());
    }
    let mut known: Vec<String> = sources
        .seen(&newest)
        .iter()
        .filter(|s| s.stage == Stage::Released)
        .map(Seen::to_string)
        .collect();
    match sources.claimed_by(&newest) {
        0 => {}
        n => known.push(format!(
            "{n} image(s) tagged `Version={newest}` in the cloud"
        )),
    }
    let known = known.join("; ");
    if *version == newest {
        return Err(Refusal {
            what: format!(
                "`{version}` is the newest release (known from {known}): its images are what users launch now"
            ),
            fix: format!(
                "release a newer version first, then retire {newest}; if this clone lacks that release's tag, `git fetch --tags` shows it"
            ),
        });
    }
    let fix = if version.pre.is_empty() {
        format!("retire only versions older than {newest} (the newest release stays until a newer one is out): no tag here or on the remote says {version} was released")
    } else {
        format!(
            "an abandoned candidate is not retired: delete its tag (`git tag -d candidate/{version}` and `git push REMOTE :refs/tags/candidate/{version}`), then `cargo xtask cleanup --version {version}` removes its images"
        )
    };
    Err(Refusal {
        what: format!(
            "`{version}` is newer than the newest release {newest} (known from {known}): retiring it would hide a version users may be about to launch"
        ),
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::verdict;

    const LS_REMOTE: &str = "\
1111111111111111111111111111111111111111\trefs/heads/2.6
2222222222222222222222222222222222222222\trefs/tags/2.6.3
3333333333333333333333333333333333333333\trefs/tags/release/2.6.9
4444444444444444444444444444444444444444\trefs/tags/release/2.6.9^{}
5555555555555555555555555555555555555555\trefs/tags/candidate/2.6.10-beta1
6666666666666666666666666666666666666666\trefs/tags/candidate/2.6.10-beta1^{}
";

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn image(id: &str, pairs: &[(&str, &str)]) -> Image {
        Image {
            id: id.into(),
            tags: verdict::tags(pairs.iter().copied()),
        }
    }

    /// A clone that lacks `release/2.6.9`; the remote `origin` has it and a candidate.
    fn sources() -> Sources {
        Sources {
            local_tags: vec!["release/2.6.8".into(), "2.6.3".into()],
            remote: Some(("origin".into(), parse_ls_remote(LS_REMOTE).unwrap())),
            images: vec![
                image(
                    "ami-26900001",
                    &[("Version", "2.6.9"), ("Kind", "official")],
                ),
                image(
                    "ami-26900002",
                    &[("Version", "2.6.9"), ("Kind", "official")],
                ),
            ],
            retired: BTreeSet::new(),
        }
    }

    #[test]
    fn ls_remote_tags_take_their_peeled_commit() {
        let tags = parse_ls_remote(LS_REMOTE).unwrap();
        let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["2.6.3", "release/2.6.9", "candidate/2.6.10-beta1"]);
        assert_eq!(tags[1].commit, "4".repeat(40));
        assert_eq!(tags[0].commit, "2".repeat(40));
        assert_eq!(parse_ls_remote("").unwrap(), []);
        assert_eq!(
            parse_ls_remote("abc refs/tags/x").unwrap_err(),
            "`git ls-remote` line 1 is not `SHA<tab>REF`: `abc refs/tags/x`"
        );
    }

    #[test]
    fn the_newest_release_comes_from_every_source_in_semver_order() {
        let local = ["release/2.6.9".to_string(), "candidate/2.6.11-rc1".into()];
        let remote = ["release/2.6.10".to_string()];
        assert_eq!(newest_release(&local, &[], &[]), Some(v("2.6.9")));
        assert_eq!(newest_release(&local, &remote, &[]), Some(v("2.6.10")));
        assert_eq!(
            newest_release(&local, &remote, &[v("2.6.11")]),
            Some(v("2.6.11"))
        );
        assert_eq!(newest_release(&[], &[], &[v("2.7.0-beta1")]), None);
        assert_eq!(
            newest_release(&["2.6.3".into()], &[], &[]),
            Some(v("2.6.3"))
        );
    }

    #[test]
    fn images_of_a_release_only_on_the_remote_are_kept_with_the_reason() {
        let sources = sources();
        assert_eq!(
            protected(&sources.images[0], &sources).unwrap().to_string(),
            "KEEP ami-26900001 version 2.6.9 is released (tag release/2.6.9 on the remote `origin`) and not retired in `build/retired.json`"
        );
        let candidate = image(
            "ami-beta0001",
            &[("Version", "2.6.10-beta1"), ("Kind", "official")],
        );
        assert_eq!(
            protected(&candidate, &sources).unwrap().to_string(),
            "KEEP ami-beta0001 version 2.6.10-beta1 is a release candidate (tag candidate/2.6.10-beta1 on the remote `origin`) and not retired in `build/retired.json`"
        );
        let legacy = image("ami-26300001", &[("Version", "2.6.3")]);
        assert_eq!(
            protected(&legacy, &sources).unwrap().to_string(),
            "KEEP ami-26300001 version 2.6.3 is released (tag 2.6.3 in this clone and on the remote `origin`) and not retired in `build/retired.json`"
        );
    }

    #[test]
    fn test_rejected_untagged_and_retired_images_are_not_kept_by_the_guard() {
        let mut sources = sources();
        for pairs in [
            &[("Version", "2.6.9"), ("Kind", "test-ebs")][..],
            &[
                ("Version", "2.6.9"),
                ("Kind", "official"),
                ("Rejected", "version 2.6.9-wrong was baked"),
            ],
            &[("Version", "2.6.11"), ("Kind", "official")],
            &[("Kind", "official")],
        ] {
            assert_eq!(
                protected(&image("ami-00000001", pairs), &sources),
                None,
                "{pairs:?}"
            );
        }
        sources.retired.insert("2.6.9".into());
        assert_eq!(protected(&sources.images[0], &sources), None);
    }

    #[test]
    fn retiring_the_newest_release_or_newer_is_refused_whoever_knows_it() {
        let sources = sources();
        assert_eq!(may_retire(&v("2.6.8"), &sources), Ok(()));
        let refusal = may_retire(&v("2.6.9"), &sources).unwrap_err();
        assert_eq!(
            refusal.what,
            "`2.6.9` is the newest release (known from tag release/2.6.9 on the remote `origin`; \
             2 image(s) tagged `Version=2.6.9` in the cloud): its images are what users launch now"
        );
        assert!(
            refusal.fix.contains("`git fetch --tags`"),
            "{}",
            refusal.fix
        );
        let newer = may_retire(&v("2.6.10-beta1"), &sources).unwrap_err();
        assert!(
            newer
                .what
                .starts_with("`2.6.10-beta1` is newer than the newest release 2.6.9"),
            "{}",
            newer.what
        );
        assert!(
            newer.fix.contains("`git tag -d candidate/2.6.10-beta1`"),
            "{}",
            newer.fix
        );
        let unknown = may_retire(&v("2.6.11"), &sources).unwrap_err();
        assert!(
            unknown
                .fix
                .starts_with("retire only versions older than 2.6.9"),
            "{}",
            unknown.fix
        );
        // Without the remote, the images' own tags still know 2.6.9.
        let offline = Sources {
            remote: None,
            ..sources
        };
        let refusal = may_retire(&v("2.6.9"), &offline).unwrap_err();
        assert!(
            refusal
                .what
                .contains("(known from 2 image(s) tagged `Version=2.6.9` in the cloud)"),
            "{}",
            refusal.what
        );
        assert_eq!(may_retire(&v("2.6.9"), &Sources::default()), Ok(()));
    }

    #[test]
    fn retired_versions_count_only_done_stages_of_the_same_cloud() {
        let retired = crate::pure::retire::parse_retired(
            r#"{"retirements": [
                {"version": "2.6.4", "stage": "deprecate", "time": "t", "images": [{"region": "us-east-1", "id": "ami-1", "result": "done", "detail": ""}]},
                {"version": "2.6.5", "stage": "deprecate", "time": "t", "images": [{"region": "us-east-1", "id": "ami-2", "result": "failed", "detail": ""}]},
                {"version": "2.6.6", "stage": "deprecate", "time": "t", "local": true, "images": [{"region": "us-east-1", "id": "ami-3", "result": "done", "detail": ""}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            retired_versions(&retired, false),
            BTreeSet::from(["2.6.4".to_string()])
        );
        assert_eq!(
            retired_versions(&retired, true),
            BTreeSet::from(["2.6.6".to_string()])
        );
    }
}
