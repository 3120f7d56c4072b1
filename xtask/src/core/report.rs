//! The image report: the small JSON file the last step of `build/provision.sh` writes on the
//! build instance and Packer downloads into `build/runs/<run>/reports/<builder>.json`. It says
//! what was really baked; an image whose report is missing or disagrees with what the run
//! meant to build is not accepted. Pure.

use serde::{Deserialize, Serialize};

/// Where `provision.sh` writes the report on the instance (below the image root).
pub const REMOTE_PATH: &str = "/tmp/comboami-image-report.json";
/// The boot hook every image must have.
pub const BOOT_HOOK: &str = "/etc/init.d/start-ami-script.sh";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageReport {
    pub version: String,
    pub branch: String,
    pub comboami_commit: String,
    pub virtualization: String,
    pub boot_hook: String,
    pub java_home: String,
}

/// What the run meant to bake into one builder's image.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The version of `ds0_utils.py` (recorded when the run started).
    pub version: &'a str,
    pub branch: &'a str,
    /// The row's virtualization type in `build/images.json`.
    pub virtualization: &'a str,
}

/// Parses the report and compares it with what was meant; the error names every difference.
pub fn check(text: Option<&str>, expected: &Expected) -> Result<ImageReport, String> {
    let text = text.ok_or("no image report: the provisioning did not finish its last step")?;
    let report: ImageReport =
        super::json::parse(text).map_err(|e| format!("the image report is damaged: {e}"))?;
    let mut problems = Vec::new();
    if report.version != expected.version {
        problems.push(format!(
            "version `{}` was baked, but `ds0_utils.py` says `{}`",
            report.version, expected.version
        ));
    }
    if report.branch != expected.branch {
        problems.push(format!(
            "branch `{}` was baked, but the run builds `{}`",
            report.branch, expected.branch
        ));
    }
    if report.virtualization != expected.virtualization {
        problems.push(format!(
            "it was prepared as `{}`, but its row in `build/images.json` is `{}`",
            report.virtualization, expected.virtualization
        ));
    }
    if report.boot_hook != BOOT_HOOK {
        problems.push(format!(
            "the boot hook `{BOOT_HOOK}` running `ds0_updater.py` is missing"
        ));
    }
    if report.comboami_commit.len() < 7
        || !report
            .comboami_commit
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    {
        problems.push(format!(
            "`comboami_commit` is `{}`, not a git commit",
            report.comboami_commit
        ));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "builder": "us-east-1-1404-hvm",
        "version": "2.6.3",
        "branch": "2.6",
        "comboami_commit": "8de7e41622133c7367ceb2783048f82ba12b74de",
        "virtualization": "hvm",
        "boot_hook": "/etc/init.d/start-ami-script.sh",
        "java_home": "/usr/lib/jvm/java-7-openjdk-amd64",
        "os_release": "14.04"
    }"#;

    fn expected() -> Expected<'static> {
        Expected {
            version: "2.6.3",
            branch: "2.6",
            virtualization: "hvm",
        }
    }

    #[test]
    fn a_matching_report_is_accepted() {
        let report = check(Some(GOOD), &expected()).unwrap();
        assert_eq!(
            report.comboami_commit,
            "8de7e41622133c7367ceb2783048f82ba12b74de"
        );
    }

    #[test]
    fn every_difference_is_named() {
        let bad = GOOD
            .replace("\"2.6.3\"", "\"2.6.3-wrong\"")
            .replace("\"hvm\"", "\"paravirtual\"")
            .replace("/etc/init.d/start-ami-script.sh", "");
        let err = check(Some(&bad), &expected()).unwrap_err();
        assert_eq!(
            err,
            "version `2.6.3-wrong` was baked, but `ds0_utils.py` says `2.6.3`; \
             it was prepared as `paravirtual`, but its row in `build/images.json` is `hvm`; \
             the boot hook `/etc/init.d/start-ami-script.sh` running `ds0_updater.py` is missing"
        );
    }

    #[test]
    fn missing_or_damaged_reports_are_refused() {
        assert!(check(None, &expected())
            .unwrap_err()
            .contains("no image report"));
        let err = check(Some("{\"version\": 1}"), &expected()).unwrap_err();
        assert!(
            err.starts_with("the image report is damaged: line 1"),
            "{err}"
        );
    }
}
