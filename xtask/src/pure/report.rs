//! The image report: what the last step of `build/provision.sh` measured in the finished image
//! (files, packages, the ComboAMI checkout, Java, the release), downloaded by Packer into
//! `build/runs/<run>/reports/<builder>.json`, and the one declared expectation it is compared
//! with (`build/expect.json`) together with the builder's row and the run. An image whose report
//! is missing or differs in anything is not accepted; every difference is named. Pure.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Where `provision.sh` writes the report on the instance (below the image root).
pub const REMOTE_PATH: &str = "/tmp/comboami-image-report.json";
/// Where the expectation lives, relative to the repository root.
pub const EXPECT_PATH: &str = "build/expect.json";

/// What the image holds, as measured on it.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageReport {
    pub builder: String,
    /// `DISTRIB_RELEASE` of the image's `/etc/lsb-release`, like `14.04`.
    pub release: String,
    /// The first `deb` URL of the image's `/etc/apt/sources.list`.
    pub archive: String,
    pub comboami: Checkout,
    pub java: Java,
    /// Every installed package with its version (`dpkg-query`).
    pub packages: BTreeMap<String, String>,
    /// The measured places (see `PLACES` in `provision.sh`) that exist, by absolute path.
    pub files: BTreeMap<String, FileState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Checkout {
    pub exists: bool,
    pub commit: String,
    /// The checked-out branch (`git rev-parse --abbrev-ref HEAD`).
    pub branch: String,
    /// `git status --porcelain`: empty when the checkout is as cloned.
    pub status: String,
    pub owner: String,
    /// Top-level names, folders with a trailing `/`.
    pub entries: Vec<String>,
    /// What the checkout's own `ds0_utils.py` returns.
    pub version: String,
    pub ds0_branch: String,
    /// `remote.origin.url`: where the image's boot script fetches ComboAMI's updates from
    /// (`None` in reports made before it was measured).
    pub origin: Option<String>,
    /// Owners of its top-level entries, `.git` and `.git/index`, measured after the report's
    /// own git commands (`None` in reports made before they were measured).
    pub owners: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Java {
    /// Where `/usr/bin/java` leads, all links followed.
    pub default: String,
    /// What `java -version` printed.
    pub version: String,
    /// Every `JAVA_HOME=` of the measured files, and whether that folder exists in the image.
    pub homes: BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FileState {
    pub owner: String,
    pub mode: String,
    pub link: Option<String>,
    pub text: Option<String>,
}

/// `build/expect.json`: what every image must have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub comboami: ComboamiExpected,
    pub packages: Vec<String>,
    pub java: JavaExpected,
    pub files: BTreeMap<String, FileExpected>,
    /// Checked when the row's release has an archive of its own (`settings.archives`).
    pub archive_kept: BTreeMap<String, FileExpected>,
    /// Glob (`*`, `?`) → what a match would be, for the message.
    pub absent: BTreeMap<String, String>,
    /// Per virtualization type (`hvm`, `paravirtual`).
    pub virtualization: BTreeMap<String, VirtualizationExpected>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComboamiExpected {
    pub path: String,
    pub owner: String,
    /// The checkout's `origin`, which `ds0_updater.py` fetches from at first boot.
    pub origin: String,
    /// Top-level entries of ComboAMI itself (official builds).
    pub entries: Vec<String>,
    /// Top-level entries of this repository (local builds bake it).
    pub entries_local: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JavaExpected {
    pub command: String,
    /// How `java -version` starts its answer.
    pub version: String,
    pub java_home: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileExpected {
    pub what: String,
    pub owner: Option<String>,
    pub mode: Option<String>,
    pub link: Option<String>,
    pub first_line: Option<String>,
    /// Whole lines the file must have.
    pub lines: Vec<String>,
    /// Text the file must contain somewhere.
    pub contains: Vec<String>,
    /// Text the file must not contain.
    pub lacks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualizationExpected {
    pub packages: Vec<String>,
    pub files: BTreeMap<String, FileExpected>,
}

impl Expectation {
    pub fn parse(text: &str) -> Result<Expectation, String> {
        super::json::parse(text).map_err(|e| {
            format!("`{EXPECT_PATH}` is not a valid expectation: {e}; fix: correct that file")
        })
    }
}

/// What the run and the builder's row say this image is.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub builder: &'a str,
    /// The version of `ds0_utils.py` (recorded when the run started).
    pub version: &'a str,
    pub branch: &'a str,
    /// The branch the baked `ds0_utils.py` must return: the run's, except for a test build of
    /// another branch (`--branch`), whose `ds0_utils.py` may name its release line.
    pub ds0_branch: Option<&'a str>,
    /// The commit the run bakes.
    pub commit: &'a str,
    /// The row's `os_version`, like `1404`.
    pub os_version: &'a str,
    /// The row's virtualization type in `build/images.json`.
    pub virtualization: &'a str,
    /// The release's archive from `settings.archives`, if it has one.
    pub archive: Option<&'a str>,
    /// A local build bakes this repository, not ComboAMI.
    pub local: bool,
}

/// Parses the report and compares it with the expectation and the row; the error names every
/// difference.
pub fn check(
    text: Option<&str>,
    expectation: &Expectation,
    expected: &Expected,
) -> Result<ImageReport, String> {
    let text = text.ok_or("no image report: the provisioning did not finish its last step")?;
    let report: ImageReport =
        super::json::parse(text).map_err(|e| format!("the image report is damaged: {e}"))?;
    let mut problems = Vec::new();
    check_row(&report, expected, &mut problems);
    check_checkout(&report.comboami, expectation, expected, &mut problems);
    let Some(virtualization) = expectation.virtualization.get(expected.virtualization) else {
        problems.push(format!(
            "`{EXPECT_PATH}` says nothing of virtualization `{}`",
            expected.virtualization
        ));
        return Err(problems.join("; "));
    };
    for package in expectation.packages.iter().chain(&virtualization.packages) {
        if !report.packages.contains_key(package) {
            problems.push(format!("package `{package}` is not installed"));
        }
    }
    check_java(&report, &expectation.java, &mut problems);
    let mut files: Vec<_> = expectation.files.iter().collect();
    files.extend(&virtualization.files);
    if expected.archive.is_some() {
        files.extend(&expectation.archive_kept);
    }
    for (path, wanted) in files {
        check_file(path, report.files.get(path), wanted, &mut problems);
    }
    for (pattern, what) in &expectation.absent {
        for path in report.files.keys().filter(|p| glob_matches(pattern, p)) {
            problems.push(format!(
                "`{path}` ({what}) must not ship, but is in the image"
            ));
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(problems.join("; "))
    }
}

/// The image is the one the row and the run mean: its builder, release and archive.
fn check_row(report: &ImageReport, expected: &Expected, problems: &mut Vec<String>) {
    if report.builder != expected.builder {
        problems.push(format!(
            "the report is of builder `{}`, not `{}`",
            report.builder, expected.builder
        ));
    }
    let release = format!(
        "{}.{}",
        expected.os_version.get(..2).unwrap_or(""),
        expected.os_version.get(2..).unwrap_or("")
    );
    if report.release != release {
        problems.push(format!(
            "the image is Ubuntu `{}`, but its row in `build/images.json` is `{}`",
            report.release, expected.os_version
        ));
    }
    if let Some(archive) = expected.archive {
        if report.archive.trim_end_matches('/') != archive {
            problems.push(format!(
                "the image's archive is `{}`, not `{archive}` (`settings.archives`)",
                report.archive
            ));
        }
    }
}

fn check_checkout(
    checkout: &Checkout,
    expectation: &Expectation,
    expected: &Expected,
    problems: &mut Vec<String>,
) {
    let path = &expectation.comboami.path;
    if !checkout.exists {
        problems.push(format!("the ComboAMI checkout `{path}` is missing"));
        return;
    }
    if checkout.version != expected.version {
        problems.push(format!(
            "the baked `ds0_utils.py` says version `{}`, but the run builds `{}`",
            checkout.version, expected.version
        ));
    }
    let wanted = [
        ("checked out", &checkout.branch, Some(expected.branch)),
        (
            "of the baked `ds0_utils.py`",
            &checkout.ds0_branch,
            expected.ds0_branch,
        ),
    ];
    for (what, found, wanted) in wanted {
        if let Some(wanted) = wanted.filter(|w| found != w) {
            problems.push(format!(
                "the branch {what} is `{found}`, but the run builds `{wanted}`"
            ));
        }
    }
    if checkout.commit != expected.commit {
        problems.push(format!(
            "the checkout `{path}` is at commit `{}`, but the run bakes `{}`",
            checkout.commit, expected.commit
        ));
    }
    if !checkout.status.trim().is_empty() {
        let changed: Vec<&str> = checkout.status.lines().map(str::trim).collect();
        problems.push(format!(
            "the checkout `{path}` was changed after the clone: {}",
            changed.join(", ")
        ));
    }
    if let Some(origin) = checkout
        .origin
        .as_ref()
        .filter(|o| **o != expectation.comboami.origin)
    {
        problems.push(format!(
            "the checkout `{path}` fetches its updates from `{origin}`, not `{}`",
            expectation.comboami.origin
        ));
    }
    let owner = &expectation.comboami.owner;
    if checkout.owner != *owner {
        problems.push(format!(
            "the checkout `{path}` is owned by `{}`, not `{owner}`",
            checkout.owner
        ));
    }
    for (inside, found) in checkout.owners.iter().flatten() {
        if found != owner {
            problems.push(format!(
                "`{path}/{inside}` is owned by `{found}`, not `{owner}`"
            ));
        }
    }
    let entries = match expected.local {
        true => &expectation.comboami.entries_local,
        false => &expectation.comboami.entries,
    };
    for entry in entries.iter().filter(|e| !checkout.entries.contains(e)) {
        problems.push(format!("ComboAMI's `{entry}` is missing from `{path}`"));
    }
}

fn check_java(report: &ImageReport, java: &JavaExpected, problems: &mut Vec<String>) {
    let home = &java.java_home;
    if !report.java.default.starts_with(&format!("{home}/")) {
        problems.push(format!(
            "`{}` is `{}`, not the Java 7 of `{home}`",
            java.command,
            match report.java.default.as_str() {
                "" => "missing",
                other => other,
            }
        ));
    }
    if !report.java.version.starts_with(&java.version) {
        let first = report.java.version.lines().next().unwrap_or("");
        problems.push(format!("`java -version` says `{first}`, not Java 7"));
    }
    for (found, exists) in &report.java.homes {
        if found != home {
            problems.push(format!("`JAVA_HOME={found}` is set, not `{home}`"));
        } else if !exists {
            problems.push(format!("`JAVA_HOME` `{home}` is not a folder in the image"));
        }
    }
}

fn check_file(
    path: &str,
    found: Option<&FileState>,
    wanted: &FileExpected,
    problems: &mut Vec<String>,
) {
    let what = &wanted.what;
    let Some(found) = found else {
        problems.push(format!("`{path}` ({what}) is missing"));
        return;
    };
    let mut differs = |detail: String| problems.push(format!("`{path}` ({what}) {detail}"));
    if let Some(owner) = wanted.owner.as_ref().filter(|o| **o != found.owner) {
        differs(format!("is owned by `{}`, not `{owner}`", found.owner));
    }
    if let Some(mode) = wanted.mode.as_ref().filter(|m| **m != found.mode) {
        differs(format!("has mode `{}`, not `{mode}`", found.mode));
    }
    if let Some(link) = &wanted.link {
        if found.link.as_deref() != Some(link) {
            differs(format!("is not a link to `{link}`"));
        }
    }
    let text = found.text.as_deref().unwrap_or("");
    if let Some(first) = wanted.first_line.as_ref() {
        if text.lines().next() != Some(first.as_str()) {
            differs(format!("does not start with the line `{first}`"));
        }
    }
    for line in wanted
        .lines
        .iter()
        .filter(|l| !text.lines().any(|t| t == *l))
    {
        differs(format!("lacks the line `{line}`"));
    }
    for part in wanted
        .contains
        .iter()
        .filter(|p| !text.contains(p.as_str()))
    {
        differs(format!("lacks `{part}`"));
    }
    for part in wanted.lacks.iter().filter(|p| text.contains(p.as_str())) {
        differs(format!("still has `{part}`"));
    }
}

/// Shell-style matching of `*` (any run of characters but `/`) and `?` (one character).
fn glob_matches(pattern: &str, path: &str) -> bool {
    match pattern.chars().next() {
        None => path.is_empty(),
        Some('*') => {
            let rest = &pattern[1..];
            (0..=path.len())
                .filter(|&i| path.is_char_boundary(i) && !path[..i].contains('/'))
                .any(|i| glob_matches(rest, &path[i..]))
        }
        Some(c) => path.chars().next().is_some_and(|p| {
            (c == '?' || c == p) && glob_matches(&pattern[c.len_utf8()..], &path[p.len_utf8()..])
        }),
    }
}

/// The change lines between two runs' package lists: `+ name version` (new), `- name version`
/// (gone), `~ name old -> new` (another version). Empty when nothing changed.
pub fn package_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| match (old.get(name), new.get(name)) {
            (None, Some(version)) => Some(format!("+ {name} {version}")),
            (Some(version), None) => Some(format!("- {name} {version}")),
            (Some(was), Some(is)) if was != is => Some(format!("~ {name} {was} -> {is}")),
            _ => None,
        })
        .collect()
}

/// The lines that show, at the end of a publish, how each builder's packages changed since
/// `previous` (a run id): builders with the same changes share a line. Empty when none changed.
pub fn render_package_changes(
    previous: &str,
    by_builder: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut groups: BTreeMap<&Vec<String>, Vec<&str>> = BTreeMap::new();
    for (builder, changes) in by_builder.iter().filter(|(_, c)| !c.is_empty()) {
        groups.entry(changes).or_default().push(builder);
    }
    if groups.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!("packages changed since run `{previous}`:")];
    for (changes, builders) in groups {
        lines.push(format!("  {}:", builders.join(", ")));
        lines.extend(changes.iter().map(|c| format!("    {c}")));
    }
    lines
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
