//! What `audit` expects of every image git and the registry name, and the mismatches with what
//! AWS holds. Pure.

use crate::core::ec2::Image;
use std::collections::BTreeSet;

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
                ..Image::default()
            }),
            bundle_present: Some(true),
            commit_problem: None,
        }
    }

    #[test]
    fn a_healthy_release_image_passes() {
        assert!(check(&expected(), &seen()).is_empty());
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
