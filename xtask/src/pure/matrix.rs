//! The image matrix (`build/images.json`): the single source of truth for every template.
//!
//! Pure: parses a string, validates, and answers questions about rows. No I/O.

use crate::pure::json;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Where the matrix lives, relative to the repo root; used in messages.
pub const MATRIX_PATH: &str = "build/images.json";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub settings: Settings,
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Marker for tags and names: everything this project creates carries it.
    pub project: String,
    /// Pattern with `{version}`, `{os_version}`, `{virt}` (`pv` or `hvm`).
    pub ami_name: String,
    pub ami_description: String,
    /// S3 bucket of official bundles; pattern with `{version}`, `{region}`.
    pub bucket: String,
    /// S3 bucket of test bundles, kept apart so cleaning tests never touches official bundles.
    pub test_bucket: String,
    /// Whether official images are public (`ami_groups: ["all"]`).
    pub public: bool,
    pub launch_size: String,
    pub ssh_user: String,
    pub ec2_ami_tools_version: String,
    pub ec2_api_tools_version: String,
    /// The region of the test builds.
    pub test_region: String,
    /// The regions this project may publish to: every row, the test region and every AMI merged
    /// into `ami_ids.json` must be in one of them, so a typo never reaches AWS or the registry.
    pub regions: Vec<String>,
    /// The Ubuntu archive of a release (`os_version` like `1204`) whose upstream images point at
    /// an archive that no longer serves it (12.04: `http://old-releases.ubuntu.com/ubuntu`).
    /// `build/provision.sh` rewrites the image's sources to it and keeps them on the image.
    #[serde(default)]
    pub archives: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub region: String,
    pub os_version: String,
    /// `paravirtual` or `hvm`, as AWS spells it.
    pub virtualization: String,
    /// The upstream instance-store Ubuntu AMI (official and instance-store test builds).
    pub instance_store_ami: String,
    /// The upstream EBS-backed Ubuntu AMI, where known (EBS test builds need one).
    #[serde(default)]
    pub ebs_ami: Option<String>,
    /// The names of those base images, as `cargo xtask base-images --update` records them: with
    /// every row of a region named, the cloud preflight asks one `describe-images` there, by name,
    /// for the base images and the planned names together (AWS joins filters with AND, so by id
    /// it takes two).
    #[serde(default)]
    pub instance_store_ami_name: Option<String>,
    #[serde(default)]
    pub ebs_ami_name: Option<String>,
    pub enabled: bool,
    #[serde(default)]
    pub disabled_because: Option<String>,
}

impl Image {
    /// `pv` or `hvm`: the suffix of builder names that `provision.sh` keys off.
    pub fn virt_short(&self) -> &str {
        match self.virtualization.as_str() {
            "paravirtual" => "pv",
            other => other,
        }
    }

    /// `REGION-OSVERSION-pv|hvm`, the builder name every template uses.
    pub fn builder_name(&self) -> String {
        format!("{}-{}-{}", self.region, self.os_version, self.virt_short())
    }

    /// The recorded name of the row's base image for builds with this root device (`ebs` or
    /// `instance-store`), if `base-images` recorded one.
    pub fn base_name(&self, root_device: &str) -> Option<&str> {
        match root_device {
            "ebs" => self.ebs_ami_name.as_deref(),
            _ => self.instance_store_ami_name.as_deref(),
        }
    }

    /// HVM images of every release after 12.04 need an MBR partition table in the bundle.
    pub fn needs_mbr_partition(&self) -> bool {
        self.virtualization == "hvm" && self.os_version.as_str() > "1204"
    }
}

impl Matrix {
    /// `1204=URL 1404=URL`: the archives for `build/provision.sh` (`COMBOAMI_ARCHIVES`).
    pub fn archives_setting(&self) -> String {
        let pairs: Vec<String> = (self.settings.archives.iter())
            .map(|(release, archive)| format!("{release}={archive}"))
            .collect();
        pairs.join(" ")
    }

    /// Parses and validates the structure (not the version-dependent names: see [`check_names`]).
    pub fn parse(text: &str) -> Result<Matrix, String> {
        let matrix: Matrix = json::parse(text).map_err(|e| match e.kind {
            json::ErrorKind::DuplicateKey { .. } => {
                format!("`{MATRIX_PATH}` is not a valid image matrix: {e}")
            }
            _ => format!(
                "`{MATRIX_PATH}` is not a valid image matrix: {e}; `build/README.md` describes \
                 its fields"
            ),
        })?;
        let problems = matrix.problems();
        if problems.is_empty() {
            Ok(matrix)
        } else {
            Err(format!(
                "`{MATRIX_PATH}` has {} problem(s):\n  {}",
                problems.len(),
                problems.join("\n  ")
            ))
        }
    }

    /// Whether the project may publish to `region` (`settings.regions`); the error says how to
    /// fix it.
    pub fn check_region(&self, region: &str) -> Result<(), String> {
        if self.settings.regions.iter().any(|r| r == region) {
            return Ok(());
        }
        Err(format!(
            "`{region}` is not one of the regions this project publishes to (`settings.regions` \
             in `{MATRIX_PATH}`: {}); fix the region name, or add `{region}` to \
             `settings.regions` if the project is to publish there",
            self.settings.regions.join(", ")
        ))
    }

    pub fn enabled(&self) -> impl Iterator<Item = &Image> {
        self.images.iter().filter(|i| i.enabled)
    }

    /// `settings.archives`: Ubuntu releases mapped to archive URLs.
    fn archive_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (release, archive) in &self.settings.archives {
            if !is_os_version(release) {
                problems.push(format!(
                    "settings: field `archives`: `{release}` is not an Ubuntu release like `1204`"
                ));
            }
            let host = archive
                .strip_prefix("http://")
                .or_else(|| archive.strip_prefix("https://"));
            if host.is_none_or(|rest| rest.is_empty() || rest.ends_with('/') || rest.contains(' '))
            {
                problems.push(format!(
                    "settings: field `archives`: `{archive}` (for `{release}`) is not an archive \
                 URL like `http://old-releases.ubuntu.com/ubuntu` (no trailing `/`)"
                ));
            }
        }
        problems
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        if self.settings.regions.is_empty() {
            problems.push(
                "settings: field `regions` is empty: list the regions this project publishes to, \
                 like `[\"us-east-1\", \"eu-west-1\"]`"
                    .to_string(),
            );
        }
        for (index, region) in self.settings.regions.iter().enumerate() {
            if !is_region(region) {
                problems.push(format!(
                    "settings: field `regions`: `{region}` is not a region name like `us-east-1`"
                ));
            } else if self.settings.regions[..index].contains(region) {
                problems.push(format!(
                    "settings: field `regions`: `{region}` is listed twice: remove one"
                ));
            }
        }
        problems.extend(self.archive_problems());
        if !is_region(&self.settings.test_region) {
            problems.push(format!(
                "settings: field `test_region`: `{}` is not a region name like `us-east-1`",
                self.settings.test_region
            ));
        } else if let Err(e) = self.check_region(&self.settings.test_region) {
            problems.push(format!("settings: field `test_region`: {e}"));
        }
        for (index, image) in self.images.iter().enumerate() {
            let row = index + 1;
            problems.extend(self.row_problems(row, image));
            let name = image.builder_name();
            if let Some(first) = seen.insert(name.clone(), row) {
                problems.push(format!(
                    "image {row} ({}): duplicate builder name `{name}` (also image {first})",
                    describe(image)
                ));
            }
        }
        problems
    }

    /// What is wrong with one row (number `row`, counted from 1).
    fn row_problems(&self, row: usize, image: &Image) -> Vec<String> {
        let mut problems = Vec::new();
        let at = |field: &str| format!("image {row} ({}): field `{field}`", describe(image));
        if !is_region(&image.region) {
            problems.push(format!(
                "{}: `{}` is not a region name like `us-east-1`",
                at("region"),
                image.region
            ));
        } else if let Err(e) = self.check_region(&image.region) {
            problems.push(format!("{}: {e}", at("region")));
        }
        if !is_os_version(&image.os_version) {
            problems.push(format!(
                "{}: `{}` is not an Ubuntu release like `1404`",
                at("os_version"),
                image.os_version
            ));
        }
        if !matches!(image.virtualization.as_str(), "paravirtual" | "hvm") {
            problems.push(format!(
                "{}: unknown virtualization type `{}` (use `paravirtual` or `hvm`)",
                at("virtualization"),
                image.virtualization
            ));
        }
        if !is_ami_id(&image.instance_store_ami) {
            problems.push(format!(
                "{}: `{}` is not an AMI id (`ami-` and 8 or 17 hex digits)",
                at("instance_store_ami"),
                image.instance_store_ami
            ));
        }
        if let Some(ebs) = &image.ebs_ami {
            if !is_ami_id(ebs) {
                problems.push(format!(
                    "{}: `{ebs}` is not an AMI id (`ami-` and 8 or 17 hex digits)",
                    at("ebs_ami")
                ));
            }
        }
        for (field, name) in [
            ("instance_store_ami_name", &image.instance_store_ami_name),
            ("ebs_ami_name", &image.ebs_ami_name),
        ] {
            if let Some(Err(e)) = name.as_deref().map(check_ami_name) {
                problems.push(format!("{}: the name {e}", at(field)));
            }
        }
        if image.ebs_ami_name.is_some() && image.ebs_ami.is_none() {
            problems.push(format!(
                "{}: names an EBS base image, but the row has no `ebs_ami`: remove the name or                  run `cargo xtask base-images --update`",
                at("ebs_ami_name")
            ));
        }
        if !image.enabled && image.disabled_because.is_none() {
            problems.push(format!(
                "{}: a disabled row needs a reason, so nobody re-enables it blindly",
                at("disabled_because")
            ));
        }
        problems
    }
}

fn describe(image: &Image) -> String {
    format!(
        "{} {} {}",
        image.region, image.os_version, image.virtualization
    )
}

/// `1204`, `1404`: an Ubuntu release as the matrix spells it.
fn is_os_version(text: &str) -> bool {
    text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`, `cn-north-1`.
pub fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let lower = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(lower)
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// `ami-` followed by 8 or 17 lowercase hex digits.
pub fn is_ami_id(id: &str) -> bool {
    id.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Fills a name pattern (`{version}`, `{region}`, `{os_version}`, `{virt}`).
pub fn fill(pattern: &str, version: &str, image: &Image) -> String {
    pattern
        .replace("{version}", version)
        .replace("{region}", &image.region)
        .replace("{os_version}", &image.os_version)
        .replace("{virt}", image.virt_short())
}

/// Checks every name AWS would see for this version, before anything is launched.
pub fn check_names(matrix: &Matrix, version: &str) -> Result<(), String> {
    // One bad version breaks every row the same way: report each distinct reason once, with the
    // first name it hits and how many more.
    let mut found: Vec<(&str, String, String, String, usize)> = Vec::new();
    let mut note = |label: &'static str, builder: String, name: String, why: String| match found
        .iter_mut()
        .find(|f| f.0 == label && f.3 == why)
    {
        Some(first) => first.4 += 1,
        None => found.push((label, builder, name, why, 0)),
    };
    for image in matrix.enabled() {
        let ami_name = fill(&matrix.settings.ami_name, version, image);
        if let Err(why) = check_ami_name(&ami_name) {
            note(
                "ami",
                image.builder_name(),
                format!("AMI name `{ami_name}`"),
                why,
            );
        }
        for (field, pattern) in [
            ("bucket", &matrix.settings.bucket),
            ("test_bucket", &matrix.settings.test_bucket),
        ] {
            let bucket = fill(pattern, version, image);
            if let Err(why) = check_bucket_name(&bucket) {
                let name = format!("S3 bucket name (settings `{field}`) `{bucket}`");
                note(field, image.builder_name(), name, why);
            }
        }
    }
    let problems: Vec<String> = found
        .iter()
        .map(|(_, builder, name, why, more)| match more {
            0 => format!("`{builder}`: {name} {why}"),
            _ => format!("`{builder}` (and {more} more): {name} {why}"),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "version `{version}` gives names that AWS would reject ({} problem(s)); \
             fix the version or the patterns in `{MATRIX_PATH}`:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// AMI names: 3-128 characters of letters, digits, spaces and `( ) [ ] . / - ' @ _`.
pub fn check_ami_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(3..=128).contains(&len) {
        return Err(format!("is {len} characters long (AWS allows 3 to 128)"));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || " ()[]./-'@_".contains(c)))
    {
        return Err(format!(
            "contains `{bad}`, which AWS does not allow in AMI names \
             (allowed: letters, digits, spaces and ( ) [ ] . / - ' @ _)"
        ));
    }
    Ok(())
}

/// S3 bucket names: 3-63 characters of lowercase letters, digits, `.` and `-`,
/// starting and ending with a letter or digit.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let len = name.len();
    if !(3..=63).contains(&len) {
        return Err(format!("is {len} characters long (S3 allows 3 to 63)"));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'))
    {
        return Err(format!(
            "contains `{bad}`, which S3 does not allow in bucket names \
             (allowed: lowercase letters, digits, . and -)"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return Err("must start and end with a lowercase letter or digit".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../build/images.json");

    #[test]
    fn shipped_matrix_has_32_enabled_rows() {
        let matrix = Matrix::parse(SHIPPED).unwrap();
        assert_eq!(matrix.enabled().count(), 32);
        assert_eq!(matrix.images.len(), 40);
        check_names(&matrix, "2.6.3").unwrap();
    }

    #[test]
    fn archives_are_per_release_urls() {
        let matrix = Matrix::parse(SHIPPED).unwrap();
        assert_eq!(
            matrix.archives_setting(),
            "1204=http://old-releases.ubuntu.com/ubuntu"
        );
        let bad = SHIPPED.replace(
            "\"1204\": \"http://old-releases.ubuntu.com/ubuntu\"",
            "\"12.04\": \"old-releases.ubuntu.com/ubuntu/\"",
        );
        let err = Matrix::parse(&bad).unwrap_err();
        assert!(
            err.contains("`12.04` is not an Ubuntu release like `1204`"),
            "{err}"
        );
        assert!(
            err.contains("`old-releases.ubuntu.com/ubuntu/` (for `12.04`) is not an archive URL"),
            "{err}"
        );
    }

    #[test]
    fn names_and_ids() {
        assert!(is_region("us-east-1") && is_region("us-gov-west-1") && is_region("cn-north-1"));
        assert!(!is_region("US-east-1") && !is_region("useast1") && !is_region("us-east-"));
        assert!(is_ami_id("ami-eb6b8480") && is_ami_id("ami-ebd1934921f437dda"));
        assert!(!is_ami_id("ami-eb6b848") && !is_ami_id("ami-EB6B8480") && !is_ami_id("eb6b8480"));
    }

    #[test]
    fn build_metadata_version_is_refused_naming_the_character() {
        let matrix = Matrix::parse(SHIPPED).unwrap();
        let err = check_names(&matrix, "2.6.1+build.5").unwrap_err();
        assert!(err.contains("contains `+`"), "{err}");
        assert!(err.contains("(and 31 more): AMI name"), "{err}");
        assert!(err.contains("settings `test_bucket`"), "{err}");
    }

    #[test]
    fn bucket_rules() {
        assert!(check_bucket_name("comboami-2.6.3-us-east-1").is_ok());
        assert!(check_bucket_name("comboami_2").unwrap_err().contains("`_`"));
        assert!(check_bucket_name("-abc")
            .unwrap_err()
            .contains("start and end"));
        assert!(check_bucket_name("ab").unwrap_err().contains("3 to 63"));
        assert!(check_ami_name("a".repeat(129).as_str()).is_err());
    }

    #[test]
    fn regions_must_be_listed_in_settings() {
        let matrix = Matrix::parse(SHIPPED).unwrap();
        assert_eq!(matrix.settings.regions.len(), 10);
        assert!(matrix.check_region("eu-central-1").is_ok());
        let err = matrix.check_region("xx-fake-9").unwrap_err();
        assert!(
            err.contains("`xx-fake-9` is not one of the regions"),
            "{err}"
        );
        assert!(
            err.contains("settings.regions") && err.contains("us-west-2"),
            "{err}"
        );

        let typo = SHIPPED.replacen("\"region\": \"us-east-1\"", "\"region\": \"us-fake-9\"", 1);
        let err = Matrix::parse(&typo).unwrap_err();
        assert!(
            err.contains("field `region`: `us-fake-9` is not one of"),
            "{err}"
        );

        let test_region = SHIPPED.replace(
            "\"test_region\": \"us-east-1\"",
            "\"test_region\": \"eu-west-3\"",
        );
        let err = Matrix::parse(&test_region).unwrap_err();
        assert!(
            err.contains("field `test_region`: `eu-west-3` is not one of"),
            "{err}"
        );

        let twice = SHIPPED.replace(
            "\"us-west-2\"\n        ]",
            "\"us-west-2\",\n \"us-west-2\"]",
        );
        let err = Matrix::parse(&twice).unwrap_err();
        assert!(err.contains("`us-west-2` is listed twice"), "{err}");

        let mut empty: serde_json::Value = json::parse(SHIPPED).unwrap();
        empty["settings"]["regions"] = serde_json::json!([]);
        let err = Matrix::parse(&empty.to_string()).unwrap_err();
        assert!(err.contains("field `regions` is empty"), "{err}");
    }

    #[test]
    fn a_key_twice_is_refused_naming_it() {
        let twice = SHIPPED.replacen(
            "\"public\": true,",
            "\"public\": true, \"public\": false,",
            1,
        );
        let err = Matrix::parse(&twice).unwrap_err();
        assert!(
            err.contains("duplicate key `public` in `settings`"),
            "{err}"
        );
        assert!(err.contains("line 8"), "{err}");
    }

    #[test]
    fn hvm_after_1204_needs_mbr() {
        let matrix = Matrix::parse(SHIPPED).unwrap();
        let mbr: Vec<_> = matrix
            .enabled()
            .filter(|i| i.region == "us-east-1" && i.needs_mbr_partition())
            .map(Image::builder_name)
            .collect();
        assert_eq!(mbr, ["us-east-1-1404-hvm"]);
    }

    /// Base image names are AMI names; an EBS name needs the EBS image it names.
    #[test]
    fn base_image_names_are_checked() {
        let named = SHIPPED.replacen(
            "\"instance_store_ami\": \"ami-f0f82ff0\",",
            "\"instance_store_ami\": \"ami-f0f82ff0\", \"instance_store_ami_name\": \"ubuntu/images/ubuntu-precise-12.04-amd64-server-20150701\",",
            1,
        );
        assert_ne!(named, SHIPPED);
        let matrix = Matrix::parse(&named).unwrap();
        assert_eq!(
            matrix.images[0].base_name("instance-store"),
            Some("ubuntu/images/ubuntu-precise-12.04-amd64-server-20150701")
        );
        assert_eq!(matrix.images[0].base_name("ebs"), None);
        let bad = named.replacen("server-20150701", "server-2015*", 1);
        let err = Matrix::parse(&bad).unwrap_err();
        assert!(
            err.contains("field `instance_store_ami_name`: the name contains `*`"),
            "{err}"
        );
        let orphan = named.replacen(
            "\"instance_store_ami_name\"",
            "\"ebs_ami_name\": \"ubuntu/x\", \"instance_store_ami_name\"",
            1,
        );
        let err = Matrix::parse(&orphan).unwrap_err();
        assert!(err.contains("but the row has no `ebs_ami`"), "{err}");
    }
}
