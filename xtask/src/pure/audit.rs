//! What `audit` expects of every image git and the registry name, and the mismatches with what
//! AWS holds. Pure.

use crate::pure::ec2::Image;
use crate::pure::legacy::Legacy;
use crate::pure::protect::{self, Listed};
use crate::pure::registry::REGISTRY_PATH;
use crate::pure::release;
use crate::pure::retire::{DeregistrationProtection, Retired};
use std::collections::{BTreeMap, BTreeSet};

/// An image as git and the registry know it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub region: String,
    pub id: String,
    /// `release/2.6.3`, `candidate/2.6.4-rc1`, `ami_ids.json`.
    pub sources: Vec<String>,
    /// The version its tag names, if a tag lists it.
    pub version: Option<String>,
    /// Launch permission `all` required (a release or the registry), or forbidden (only
    /// candidates).
    pub public: bool,
    /// Stages of `build/retired.json` done for it.
    pub retired: BTreeSet<String>,
    /// The version of the release made before the tool that lists it (no `Version` or `Commit`
    /// tag expected: the images predate them).
    pub legacy: Option<String>,
}

/// What AWS says, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub image: Option<Image>,
    /// For an instance-store image: whether its manifest is still in S3.
    pub bundle_present: Option<bool>,
    /// What is wrong with its `Commit` tag, judged against git by the caller.
    pub commit_problem: Option<String>,
}

/// A `release/*` or `candidate/*` tag: its name, the commit it points at, its message.
#[derive(Debug, Clone, Copy)]
pub struct TagRef<'a> {
    pub name: &'a str,
    pub commit: &'a str,
    pub message: &'a str,
}

/// What git itself gets wrong about an image, before AWS is asked. `region` is `None` when
/// the tag lists the image without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitProblem {
    pub region: Option<String>,
    pub id: String,
    pub problem: String,
}

/// Every image git and the registry name, by (region, id), with the commit its `Commit` tag
/// must be in the history of; and what git gets wrong.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    pub images: BTreeMap<(String, String), (Expected, String)>,
    pub git_problems: Vec<GitProblem>,
}

impl Expectations {
    /// The regions to ask, sorted, once each.
    pub fn regions(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.images.keys().map(|(r, _)| r).collect();
        set.into_iter().cloned().collect()
    }

    /// The ids expected in `region`.
    pub fn ids_in(&self, region: &str) -> Vec<&str> {
        self.images
            .keys()
            .filter(|(r, _)| r == region)
            .map(|(_, id)| id.as_str())
            .collect()
    }
}

/// What the tags and the registry (`registry`: its AMIs; `head`: the commit it is at) expect,
/// with the stages of `retired` done for each image; only the regions of `only`, when given.
pub fn expectations(
    tags: &[TagRef],
    registry: &[Listed],
    head: &str,
    retired: &Retired,
    local: bool,
    only: &BTreeSet<String>,
) -> Expectations {
    let mut out = Expectations::default();
    for tag in tags {
        let version = tag.name.split_once('/').map(|(_, v)| v.to_string());
        for ami in protect::tag_amis(tag.message) {
            let Some(region) = ami.region else {
                out.git_problems.push(GitProblem {
                    region: None,
                    id: ami.id,
                    problem: format!(
                        "{}: listed without a region, so it cannot be checked",
                        tag.name
                    ),
                });
                continue;
            };
            let (entry, _) = out
                .images
                .entry((region.clone(), ami.id.clone()))
                .or_insert_with(|| {
                    let expected = Expected {
                        region,
                        id: ami.id.clone(),
                        version: version.clone(),
                        ..Expected::default()
                    };
                    (expected, tag.commit.to_string())
                });
            entry.sources.push(tag.name.to_string());
            entry.public |= tag.name.starts_with("release/");
        }
    }
    for ami in registry {
        let region = ami.region.clone().unwrap_or_default();
        let key = (region.clone(), ami.id.clone());
        if !out.images.contains_key(&key) {
            out.git_problems.push(GitProblem {
                region: Some(region.clone()),
                id: ami.id.clone(),
                problem: format!(
                    "`{REGISTRY_PATH}`: listed, but in no `release/*` or `candidate/*` tag"
                ),
            });
        }
        let (entry, _) = out.images.entry(key).or_insert_with(|| {
            (
                Expected {
                    region,
                    id: ami.id.clone(),
                    ..Expected::default()
                },
                head.to_string(),
            )
        });
        entry.sources.push(format!("`{REGISTRY_PATH}`"));
        entry.public = true;
    }
    for (entry, _) in out.images.values_mut() {
        entry.retired = retired.done(&entry.id, local);
    }
    let wanted = |region: &str| only.is_empty() || only.contains(region);
    out.images.retain(|(region, _), _| wanted(region));
    // An image listed without a region is in none of the regions asked for.
    out.git_problems
        .retain(|p| p.region.as_deref().map_or(only.is_empty(), wanted));
    out
}

/// Images `ami_ids.json` lists for a release made before the tool (not adopted yet): not "in no
/// tag" but that release's, expected without the tags they never had; in the stand-in (which
/// never held them) not expected at all.
pub fn mark_legacy(out: &mut Expectations, legacies: &[Legacy], local: bool) {
    for release in legacies.iter().filter(|l| l.adopt.is_some()) {
        for ami in &release.amis {
            let Some(region) = &ami.region else { continue };
            let key = (region.clone(), ami.id.clone());
            out.git_problems
                .retain(|p| !(p.id == ami.id && p.region.as_ref() == Some(region)));
            if local {
                out.images.remove(&key);
            } else if let Some((entry, _)) = out.images.get_mut(&key) {
                entry.legacy = Some(release.version.clone());
                entry
                    .sources
                    .push(format!("{} (before the tool)", release.version));
            }
        }
    }
}

/// Tags that adopted a release made before the tool (`tag --commit`): their images are judged
/// like the legacy ones (no `Version` or `Commit` tag expected), and not looked for in the
/// stand-in, which never held them.
pub fn mark_adopted(out: &mut Expectations, tags: &[TagRef], local: bool) {
    for tag in tags.iter().filter(|t| t.message.contains(release::ADOPTED)) {
        let version = tag.name.split_once('/').map_or(tag.name, |(_, v)| v);
        for ami in protect::tag_amis(tag.message) {
            let Some(region) = ami.region else { continue };
            let key = (region, ami.id);
            if local {
                out.images.remove(&key);
            } else if let Some((entry, _)) = out.images.get_mut(&key) {
                entry.legacy = Some(version.to_string());
            }
        }
    }
}

/// The section on releases made before the tool: what lists them, what is missing, and the
/// command that adopts each.
pub fn legacy_section(legacies: &[Legacy], local: bool) -> String {
    let waiting: Vec<&Legacy> = legacies.iter().filter(|l| l.adopt.is_some()).collect();
    if waiting.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "releases made before the tool (not adopted: no `release/*` tag lists them){}:\n",
        if local {
            "; their images are in AWS, never in the stand-in, so they are not checked here"
        } else {
            ""
        }
    );
    for legacy in waiting {
        out.push_str(&legacy.render());
    }
    out
}

/// The mismatches of one region (`seen`: what AWS holds, by id, commit problems judged), one
/// line each: `  ID  SOURCES: PROBLEM`.
pub fn region_lines(
    expectations: &Expectations,
    region: &str,
    seen: &BTreeMap<String, Seen>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for ((_, id), (entry, _)) in expectations.images.iter().filter(|((r, _), _)| r == region) {
        let seen = seen.get(id).cloned().unwrap_or_default();
        for problem in check(entry, &seen) {
            lines.push(format!("  {id}  {}: {problem}", entry.sources.join(", ")));
        }
    }
    for p in expectations
        .git_problems
        .iter()
        .filter(|p| p.region.as_deref() == Some(region))
    {
        lines.push(format!("  {}  {}", p.id, p.problem));
    }
    lines
}

/// The report of every region (`seen` by region; a region missing there could not be read)
/// and of the images listed without a region; with the number of mismatches.
pub fn report(
    expectations: &Expectations,
    seen: &BTreeMap<String, BTreeMap<String, Seen>>,
) -> (String, usize) {
    let mut report = String::new();
    let mut mismatches = 0;
    for (region, seen) in seen {
        let lines = region_lines(expectations, region, seen);
        if !lines.is_empty() {
            mismatches += lines.len();
            report.push_str(&format!("{region}\n{}\n", lines.join("\n")));
        }
    }
    for p in expectations
        .git_problems
        .iter()
        .filter(|p| p.region.is_none())
    {
        mismatches += 1;
        report.push_str(&format!("(no region)\n  {}  {}\n", p.id, p.problem));
    }
    (report, mismatches)
}

/// Every mismatch of one image, one line each.
pub fn check(expected: &Expected, seen: &Seen) -> Vec<String> {
    let mut problems = Vec::new();
    let retired = |stage: &str| expected.retired.contains(stage);
    let Some(image) = &seen.image else {
        if !retired("deregister") {
            problems.push("not found in AWS (deregistered, or never there)".into());
        }
        return problems;
    };
    if retired("deregister") {
        problems.push("retired (deregistered in `build/retired.json`) but still exists".into());
    }
    if image.state != "available" {
        problems.push(format!("state is `{}`, not `available`", image.state));
    }
    match (expected.public, image.public) {
        (true, false) if !retired("make-private") => {
            problems.push("private: the launch permission `all` a release needs is missing".into())
        }
        (_, true) if retired("make-private") => problems
            .push("public again, though retired (made private in `build/retired.json`)".into()),
        (false, true) => problems.push("public: a candidate's images stay private".into()),
        _ => {}
    }
    if let Some(at) = &image.deprecation {
        if !retired("deprecate") {
            problems.push(format!(
                "deprecated at {at}, but not retired (no `deprecate` stage in `build/retired.json`)"
            ));
        }
    } else if retired("deprecate") {
        problems.push("retired (deprecated in `build/retired.json`) but not deprecated".into());
    }
    if let Some(version) = &expected.version {
        if &image.version != version {
            let found = if image.version.is_empty() {
                "missing".to_string()
            } else {
                format!("`{}`", image.version)
            };
            problems.push(format!("`Version` tag is {found}, expected `{version}`"));
        }
    }
    if let Some(problem) = &seen.commit_problem {
        problems.push(problem.clone());
    }
    let released = expected.public && !retired("make-private") && !retired("deregister");
    let protection = DeregistrationProtection::parse(&image.deregistration_protection);
    if released && !matches!(protection, DeregistrationProtection::On { .. }) {
        problems.push(format!(
            "not protected from deregistration: `aws ec2 enable-image-deregistration-protection --region {} --image-id {} --with-cooldown` restores it",
            expected.region, expected.id
        ));
    }
    if seen.bundle_present == Some(false) {
        problems.push(format!(
            "its bundle s3://{} is missing: an instance-store image cannot launch without it",
            image.location.as_deref().unwrap_or("?")
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected {
            region: "us-east-1".into(),
            id: "ami-11111111".into(),
            sources: vec!["release/2.6.3".into()],
            version: Some("2.6.3".into()),
            public: true,
            retired: BTreeSet::new(),
            legacy: None,
        }
    }

    fn seen() -> Seen {
        Seen {
            image: Some(Image {
                id: "ami-11111111".into(),
                version: "2.6.3".into(),
                state: "available".into(),
                public: true,
                location: Some("b/p/image.manifest.xml".into()),
                deregistration_protection: "enabled-with-cooldown".into(),
                ..Image::default()
            }),
            bundle_present: Some(true),
            commit_problem: None,
        }
    }

    #[test]
    fn registry_images_of_a_release_made_before_the_tool_are_explained_not_mismatched() {
        let listed = vec![Listed {
            region: Some("us-east-1".into()),
            id: "ami-26300001".into(),
        }];
        let expect = |local| {
            let mut out = expectations(
                &[],
                &listed,
                "head",
                &Retired::default(),
                local,
                &BTreeSet::new(),
            );
            assert_eq!(out.git_problems.len(), 1);
            let legacy = crate::pure::legacy::Legacy {
                version: "2.6.3".into(),
                source: crate::pure::legacy::Source::Ds0,
                commit: Some("a50c342".into()),
                amis: listed.clone(),
                missing: vec![],
                adopt: Some("cargo xtask tag 2.6.3 --commit a50c342".into()),
            };
            mark_legacy(&mut out, std::slice::from_ref(&legacy), local);
            (out, legacy_section(&[legacy], local))
        };
        let (out, section) = expect(false);
        assert!(out.git_problems.is_empty());
        let (entry, _) = &out.images[&("us-east-1".to_string(), "ami-26300001".to_string())];
        assert_eq!(entry.legacy.as_deref(), Some("2.6.3"));
        assert!(
            section.contains("adopt:   `cargo xtask tag 2.6.3 --commit a50c342`"),
            "{section}"
        );
        // The stand-in never held it: not expected there at all.
        let (out, section) = expect(true);
        assert!(out.images.is_empty() && out.git_problems.is_empty());
        assert!(section.contains("never in the stand-in"), "{section}");
    }

    #[test]
    fn a_healthy_release_image_passes() {
        assert!(check(&expected(), &seen()).is_empty());
    }

    #[test]
    fn a_released_image_without_deregistration_protection_is_named() {
        let mut unprotected = seen();
        for field in ["disabled", "disabled-until 2026-01-01T00:00:00Z", ""] {
            unprotected
                .image
                .as_mut()
                .unwrap()
                .deregistration_protection = field.into();
            assert_eq!(
                check(&expected(), &unprotected),
                ["not protected from deregistration: `aws ec2 enable-image-deregistration-protection --region us-east-1 --image-id ami-11111111 --with-cooldown` restores it"],
                "{field:?}"
            );
        }
        // A candidate (private) or a retired release needs none.
        let candidate = Expected {
            public: false,
            ..expected()
        };
        unprotected.image.as_mut().unwrap().public = false;
        assert!(check(&candidate, &unprotected).is_empty());
    }

    #[test]
    fn each_mismatch_is_named() {
        assert_eq!(
            check(&expected(), &Seen::default()),
            ["not found in AWS (deregistered, or never there)"]
        );
        let mut bad = seen();
        let image = bad.image.as_mut().unwrap();
        image.version = "2.6.9".into();
        image.public = false;
        image.deprecation = Some("2026-11-25T02:24:00.000Z".into());
        bad.bundle_present = Some(false);
        bad.commit_problem = Some("`Commit` tag is missing".into());
        let problems = check(&expected(), &bad);
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].starts_with("private"));
        assert!(problems[1].starts_with("deprecated at 2026-11-25T02:24:00.000Z, but not retired"));
        assert_eq!(problems[2], "`Version` tag is `2.6.9`, expected `2.6.3`");
        assert!(problems[4].contains("bundle s3://b/p/image.manifest.xml is missing"));
    }

    const RELEASE: &str = "Release 2.6.3\n\nus-east-1  ami-11111111\neu-west-1  ami-22222222\n";

    /// The expectations of `tags` alone: no registry, nothing retired, every region.
    fn of_tags(tags: &[TagRef]) -> Expectations {
        expectations(
            tags,
            &[],
            "head",
            &Retired::default(),
            false,
            &BTreeSet::new(),
        )
    }

    /// An adopted release's images are judged without the tags they never had, and are not
    /// looked for in the stand-in.
    #[test]
    fn an_adopted_release_is_judged_as_made_before_the_tool() {
        let message = format!("{RELEASE}{}", release::adopted_line("a50c3421"));
        let tags = [TagRef {
            name: "release/2.6.3",
            commit: "c1",
            message: &message,
        }];
        let make = || of_tags(&tags);
        let key = ("us-east-1".to_string(), "ami-11111111".to_string());
        let mut cloud = make();
        mark_adopted(&mut cloud, &tags, false);
        assert_eq!(cloud.images[&key].0.legacy.as_deref(), Some("2.6.3"));
        let mut standin = make();
        assert!(standin.images.contains_key(&key));
        mark_adopted(&mut standin, &tags, true);
        assert!(standin.images.is_empty(), "{:?}", standin.images);
    }

    #[test]
    fn tags_and_the_registry_make_the_expectations() {
        let tags = [
            TagRef {
                name: "release/2.6.3",
                commit: "c1",
                message: RELEASE,
            },
            TagRef {
                name: "candidate/2.6.4-rc1",
                commit: "c2",
                message: "ami-33333333 without region",
            },
        ];
        let registry = [
            Listed {
                region: Some("us-east-1".into()),
                id: "ami-11111111".into(),
            },
            Listed {
                region: Some("us-west-2".into()),
                id: "ami-44444444".into(),
            },
        ];
        let all = expectations(
            &tags,
            &registry,
            "head",
            &Retired::default(),
            false,
            &BTreeSet::new(),
        );
        assert_eq!(all.regions(), ["eu-west-1", "us-east-1", "us-west-2"]);
        let (release, commit) = &all.images[&("us-east-1".into(), "ami-11111111".into())];
        assert_eq!(release.sources, ["release/2.6.3", "`ami_ids.json`"]);
        assert_eq!(
            (release.version.as_deref(), release.public, commit.as_str()),
            (Some("2.6.3"), true, "c1")
        );
        let (untagged, commit) = &all.images[&("us-west-2".into(), "ami-44444444".into())];
        assert_eq!(
            (untagged.version.as_deref(), commit.as_str()),
            (None, "head")
        );
        let problems: Vec<(Option<&str>, &str)> = all
            .git_problems
            .iter()
            .map(|p| (p.region.as_deref(), p.id.as_str()))
            .collect();
        assert_eq!(
            problems,
            [(None, "ami-33333333"), (Some("us-west-2"), "ami-44444444")]
        );
        assert!(all.git_problems[1]
            .problem
            .contains("in no `release/*` or `candidate/*` tag"));

        let only: BTreeSet<String> = ["eu-west-1".to_string()].into();
        let some = expectations(&tags, &registry, "head", &Retired::default(), false, &only);
        assert_eq!(some.regions(), ["eu-west-1"]);
        assert_eq!(some.git_problems, []);
    }

    #[test]
    fn the_report_lists_mismatches_by_region() {
        let tags = [TagRef {
            name: "release/2.6.3",
            commit: "c1",
            message: RELEASE,
        }];
        let all = of_tags(&tags);
        let mut healthy = seen();
        healthy.image.as_mut().unwrap().id = "ami-11111111".into();
        let seen: BTreeMap<String, BTreeMap<String, Seen>> = [
            (
                "us-east-1".to_string(),
                [("ami-11111111".to_string(), healthy)].into(),
            ),
            ("eu-west-1".to_string(), BTreeMap::new()),
        ]
        .into();
        let (report, mismatches) = report(&all, &seen);
        assert_eq!(mismatches, 1);
        assert_eq!(report, "eu-west-1\n  ami-22222222  release/2.6.3: not found in AWS (deregistered, or never there)\n");
    }

    #[test]
    fn retired_stages_are_expected() {
        let mut retired = expected();
        retired.retired = ["deprecate", "make-private", "deregister"]
            .map(String::from)
            .into();
        assert!(check(&retired, &Seen::default()).is_empty());
        retired.retired.remove("deregister");
        let mut gone_private = seen();
        let image = gone_private.image.as_mut().unwrap();
        image.public = false;
        image.deprecation = Some("2026-11-25T02:24:00.000Z".into());
        assert!(check(&retired, &gone_private).is_empty());
        let mut candidate = expected();
        candidate.public = false;
        assert_eq!(
            check(&candidate, &seen()),
            ["public: a candidate's images stay private"]
        );
    }
}
