//! Version and tag rules for releases. Pure.

use semver::Version;

/// A version the release rules refuse. `main` prints its [`NotSemver::FIX`] as the error's
/// `fix:` line, whichever command was given the version.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a semantic version ({reason})")]
pub struct NotSemver {
    pub text: String,
    pub reason: semver::Error,
}

impl NotSemver {
    pub const FIX: &'static str = "give the version as MAJOR.MINOR.PATCH, like `2.6.1` (or \
        `2.6.1-beta1` for a candidate); `git tag -l 'release/*'` lists the released versions";
}

/// Parses a release version, saying why a bad one is refused.
pub fn parse(text: &str) -> Result<Version, NotSemver> {
    // Build metadata (`+build.5`) is valid semver; the image-name checks of the matrix refuse
    // it where AWS would, naming the character.
    Version::parse(text).map_err(|reason| NotSemver {
        text: text.to_string(),
        reason,
    })
}

/// `release/2.6.1` for a plain version, `candidate/2.6.2-beta1` for a pre-release.
pub fn tag_name(version: &Version) -> String {
    let kind = if version.pre.is_empty() {
        "release"
    } else {
        "candidate"
    };
    format!("{kind}/{version}")
}

/// The release branch a version belongs to by default: `2.6` for `2.6.1`.
pub fn default_branch(version: &Version) -> String {
    format!("{}.{}", version.major, version.minor)
}

/// The newest released version among tag names; tags that are not `release/SEMVER` are ignored.
pub fn newest_release<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Version> {
    tags.into_iter()
        .filter_map(|t| t.strip_prefix("release/"))
        .filter_map(|v| Version::parse(v).ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_for_plain_and_pre_release_versions() {
        assert_eq!(tag_name(&parse("2.6.1").unwrap()), "release/2.6.1");
        assert_eq!(
            tag_name(&parse("2.6.2-beta1").unwrap()),
            "candidate/2.6.2-beta1"
        );
        assert_eq!(default_branch(&parse("2.6.2-beta1").unwrap()), "2.6");
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            parse("2.6").unwrap_err().to_string(),
            "`2.6` is not a semantic version (unexpected end of input while parsing minor version \
             number)"
        );
    }

    #[test]
    fn newest_release_uses_semver_order() {
        let tags = [
            "release/2.6.10",
            "release/2.6.9",
            "candidate/3.0.0-beta1",
            "release/x",
        ];
        assert_eq!(newest_release(tags).unwrap(), parse("2.6.10").unwrap());
        assert!(parse("2.6.11-beta1").unwrap() > parse("2.6.10").unwrap());
    }
}
