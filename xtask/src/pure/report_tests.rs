//! Every declared item of `build/expect.json` can fail: each test breaks one kind of item in an
//! otherwise good report and sees the difference named.

use super::*;
use serde_json::{json, Value};

const EXPECT: &str = include_str!("../../../build/expect.json");
const COMMIT: &str = "8de7e41622133c7367ceb2783048f82ba12b74de";
const HOME: &str = "/usr/lib/jvm/java-7-openjdk-amd64";

fn expectation() -> Expectation {
    Expectation::parse(EXPECT).unwrap()
}

fn expected(virtualization: &'static str) -> Expected<'static> {
    Expected {
        builder: "us-east-1-1204-hvm",
        version: "2.6.3",
        branch: "2.6",
        ds0_branch: Some("2.6"),
        commit: COMMIT,
        os_version: "1204",
        virtualization,
        archive: Some("http://old-releases.ubuntu.com/ubuntu"),
        local: false,
    }
}

/// A file that meets `wanted`, as the measuring step would describe it.
fn good_file(wanted: &FileExpected) -> Value {
    let mut lines: Vec<String> = wanted.first_line.iter().cloned().collect();
    lines.extend(wanted.lines.iter().cloned());
    lines.extend(wanted.contains.iter().cloned());
    json!({
        "owner": wanted.owner.clone().unwrap_or("root:root".into()),
        "mode": wanted.mode.clone().unwrap_or("644".into()),
        "link": wanted.link,
        "text": if wanted.link.is_some() { None } else { Some(lines.join("\n") + "\n") },
    })
}

/// A report of an image that has everything the expectation and the row ask for.
fn good(virtualization: &str) -> Value {
    let expect = expectation();
    let virt = &expect.virtualization[virtualization];
    let mut files = serde_json::Map::new();
    let all = expect
        .files
        .iter()
        .chain(&virt.files)
        .chain(&expect.archive_kept);
    for (path, wanted) in all {
        files.insert(path.clone(), good_file(wanted));
    }
    files.insert(
        "/etc/apt/sources.list".into(),
        json!({"owner": "root:root"}),
    );
    let packages: serde_json::Map<String, Value> = (expect.packages.iter())
        .chain(&virt.packages)
        .chain([&"python2.7".to_string()])
        .map(|p| (p.clone(), json!("1.0")))
        .collect();
    json!({
        "builder": "us-east-1-1204-hvm",
        "release": "12.04",
        "codename": "precise",
        "archive": "http://old-releases.ubuntu.com/ubuntu/",
        "comboami": {
            "exists": true, "commit": COMMIT, "branch": "2.6", "status": "",
            "owner": "ubuntu:ubuntu", "entries": expect.comboami.entries,
            "version": "2.6.3", "ds0_branch": "2.6",
            "origin": "https://github.com/riptano/ComboAMI.git",
        },
        "java": {
            "default": format!("{HOME}/jre/bin/java"),
            "version": "java version \"1.7.0_95\"\nOpenJDK Runtime Environment\n",
            "homes": { HOME: true },
        },
        "packages": packages,
        "files": files,
    })
}

fn problems(report: &Value, virtualization: &'static str) -> String {
    check(
        Some(&report.to_string()),
        &expectation(),
        &expected(virtualization),
    )
    .unwrap_err()
}

#[test]
fn the_shipped_expectation_parses_and_a_good_image_passes() {
    for virt in ["hvm", "paravirtual"] {
        let report = check(
            Some(&good(virt).to_string()),
            &expectation(),
            &expected(virt),
        )
        .unwrap();
        assert_eq!(report.comboami.commit, COMMIT);
    }
}

#[test]
fn every_package_is_checked() {
    let expect = expectation();
    for (virt, package) in (expect.packages.iter().map(|p| ("paravirtual", p))).chain(
        expect.virtualization["hvm"]
            .packages
            .iter()
            .map(|p| ("hvm", p)),
    ) {
        let mut report = good(virt);
        report["packages"].as_object_mut().unwrap().remove(package);
        let virt = if virt == "hvm" { "hvm" } else { "paravirtual" };
        assert_eq!(
            problems(&report, virt),
            format!("package `{package}` is not installed")
        );
    }
}

/// Each file of the expectation: missing, and then each of its declared properties broken.
#[test]
fn every_file_and_each_of_its_properties_is_checked() {
    let expect = expectation();
    let mut cases: Vec<(&'static str, &String, &FileExpected)> = Vec::new();
    for (path, wanted) in expect.files.iter().chain(&expect.archive_kept) {
        cases.push(("paravirtual", path, wanted));
    }
    for virt in ["hvm", "paravirtual"] {
        for (path, wanted) in &expect.virtualization[virt].files {
            cases.push((virt, path, wanted));
        }
    }
    for (virt, path, wanted) in cases {
        let name = format!("`{path}` ({})", wanted.what);
        let mut report = good(virt);
        report["files"].as_object_mut().unwrap().remove(path);
        let err = problems(&report, virt);
        assert!(err.contains(&format!("{name} is missing")), "{err}");
        let mut breaks: Vec<(&str, Value, String)> = Vec::new();
        if let Some(owner) = &wanted.owner {
            breaks.push(("owner", json!("nobody:nogroup"), format!("not `{owner}`")));
        }
        if let Some(mode) = &wanted.mode {
            breaks.push(("mode", json!("600"), format!("not `{mode}`")));
        }
        if let Some(link) = &wanted.link {
            breaks.push(("link", Value::Null, format!("is not a link to `{link}`")));
        }
        let text = good(virt)["files"][path]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        for line in wanted.lines.iter().chain(&wanted.first_line) {
            let without: Vec<&str> = text.lines().filter(|l| l != line).collect();
            breaks.push(("text", json!(without.join("\n")), format!("`{line}`")));
        }
        for part in &wanted.contains {
            breaks.push((
                "text",
                json!(text.replace(part, "")),
                format!("lacks `{part}`"),
            ));
        }
        for part in &wanted.lacks {
            breaks.push((
                "text",
                json!(format!("{text}{part}\n")),
                format!("still has `{part}`"),
            ));
        }
        for (field, value, says) in breaks {
            let mut report = good(virt);
            report["files"][path][field] = value;
            let err = problems(&report, virt);
            assert!(
                err.starts_with(&name) && err.contains(&says),
                "{name}: {says}: {err}"
            );
        }
    }
}

#[test]
fn every_absent_item_is_checked() {
    let expect = expectation();
    for (pattern, what) in &expect.absent {
        let path = pattern.replace('*', "ssh_host_rsa_key").replace('?', "2");
        let mut report = good("hvm");
        report["files"][&path] = json!({"owner": "root:root", "mode": "600", "text": "k"});
        assert_eq!(
            problems(&report, "hvm"),
            format!("`{path}` ({what}) must not ship, but is in the image")
        );
    }
}

#[test]
fn the_checkout_is_the_commit_version_and_branch_of_the_run_and_clean() {
    let expect = expectation();
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "version",
            json!("2.6.2"),
            "`ds0_utils.py` says version `2.6.2`, but the run builds `2.6.3`".into(),
        ),
        (
            "branch",
            json!("master"),
            "the branch checked out is `master`".into(),
        ),
        (
            "ds0_branch",
            json!("2.5"),
            "the branch of the baked `ds0_utils.py` is `2.5`".into(),
        ),
        (
            "commit",
            json!("0123abc"),
            "is at commit `0123abc`, but the run bakes".into(),
        ),
        (
            "status",
            json!(" M VERSION\n"),
            "was changed after the clone: M VERSION".into(),
        ),
        (
            "owner",
            json!("root:root"),
            "is owned by `root:root`, not `ubuntu:ubuntu`".into(),
        ),
        (
            "owners",
            json!({"ds0_utils.py": "ubuntu:ubuntu", ".git/index": "root:root"}),
            "`/home/ubuntu/datastax_ami/.git/index` is owned by `root:root`, not `ubuntu:ubuntu`"
                .into(),
        ),
        (
            "origin",
            json!("https://github.com/someone/ComboAMI.git"),
            "fetches its updates from `https://github.com/someone/ComboAMI.git`, not `https://github.com/riptano/ComboAMI.git`".into(),
        ),
        (
            "exists",
            json!(false),
            "the ComboAMI checkout `/home/ubuntu/datastax_ami` is missing".into(),
        ),
    ];
    for (field, value, says) in cases {
        let mut report = good("hvm");
        report["comboami"][field] = value;
        let err = problems(&report, "hvm");
        assert!(err.contains(&says), "{field}: {err}");
    }
    for entry in &expect.comboami.entries {
        let mut report = good("hvm");
        let entries = report["comboami"]["entries"].as_array_mut().unwrap();
        entries.retain(|e| e != entry);
        assert_eq!(
            problems(&report, "hvm"),
            format!("ComboAMI's `{entry}` is missing from `/home/ubuntu/datastax_ami`")
        );
    }
}

#[test]
fn a_test_build_of_another_branch_may_bake_a_ds0_utils_of_its_release_line() {
    let mut report = good("hvm");
    report["comboami"]["ds0_branch"] = json!("2.5");
    let test_build = Expected {
        ds0_branch: None,
        ..expected("hvm")
    };
    check(Some(&report.to_string()), &expectation(), &test_build).unwrap();
    report["comboami"]["branch"] = json!("2.5");
    let err = check(Some(&report.to_string()), &expectation(), &test_build).unwrap_err();
    assert_eq!(
        err,
        "the branch checked out is `2.5`, but the run builds `2.6`"
    );
}

#[test]
fn java_7_is_the_default_and_java_home_exists() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "default",
            json!("/usr/lib/jvm/java-6-openjdk-amd64/jre/bin/java"),
            "`/usr/bin/java` is `/usr/lib/jvm/java-6",
        ),
        ("default", json!(""), "`/usr/bin/java` is `missing`"),
        (
            "version",
            json!("java version \"1.6.0_41\"\n"),
            "`java -version` says `java version \"1.6.0_41\"`",
        ),
        (
            "homes",
            json!({HOME: false}),
            "is not a folder in the image",
        ),
        (
            "homes",
            json!({HOME: true, "/usr/lib/jvm/java-7-oracle": false}),
            "`JAVA_HOME=/usr/lib/jvm/java-7-oracle` is set",
        ),
    ];
    for (field, value, says) in cases {
        let mut report = good("hvm");
        report["java"][field] = value;
        let err = problems(&report, "hvm");
        assert!(err.contains(says), "{field}: {err}");
    }
}

#[test]
fn the_row_release_archive_and_builder_are_checked() {
    let mut report = good("hvm");
    report["release"] = json!("14.04");
    report["archive"] = json!("http://us-east-1.ec2.archive.ubuntu.com/ubuntu/");
    report["builder"] = json!("us-east-1-1404-hvm");
    assert_eq!(
        problems(&report, "hvm"),
        "the report is of builder `us-east-1-1404-hvm`, not `us-east-1-1204-hvm`; \
         the image is Ubuntu `14.04`, but its row in `build/images.json` is `1204`; \
         the image's archive is `http://us-east-1.ec2.archive.ubuntu.com/ubuntu/`, not \
         `http://old-releases.ubuntu.com/ubuntu` (`settings.archives`)"
    );
    // Without an archive of its own, the image keeps its sources and no cloud-init order.
    let mut report = good("hvm");
    report["files"]
        .as_object_mut()
        .unwrap()
        .remove("/etc/cloud/cloud.cfg.d/99-comboami-archive.cfg");
    let without = Expected {
        archive: None,
        ..expected("hvm")
    };
    check(Some(&report.to_string()), &expectation(), &without).unwrap();
}

#[test]
fn a_local_build_expects_this_repository_files() {
    let mut report = good("hvm");
    report["comboami"]["entries"] = json!(["ds0_utils.py"]);
    let local = Expected {
        local: true,
        ..expected("hvm")
    };
    let err = check(Some(&report.to_string()), &expectation(), &local).unwrap_err();
    assert_eq!(
        err,
        "ComboAMI's `build/` is missing from `/home/ubuntu/datastax_ami`"
    );
}

#[test]
fn missing_or_damaged_reports_are_refused() {
    let err = check(None, &expectation(), &expected("hvm")).unwrap_err();
    assert!(err.contains("no image report"), "{err}");
    let err = check(Some("{\"version\": 1}"), &expectation(), &expected("hvm")).unwrap_err();
    assert!(
        err.starts_with("the image report is damaged: line 1"),
        "{err}"
    );
}

#[test]
fn globs_match_one_path_level() {
    assert!(glob_matches(
        "/etc/ssh/ssh_host_*",
        "/etc/ssh/ssh_host_rsa_key.pub"
    ));
    assert!(glob_matches("/etc/rc?.d/S99*", "/etc/rc2.d/S99x"));
    assert!(!glob_matches("/root/.ssh/*", "/root/.ssh"));
    assert!(!glob_matches(
        "/var/lib/cloud/instances/*",
        "/var/lib/cloud/instances/i/x"
    ));
}

#[test]
fn package_changes_name_new_gone_and_changed_versions() {
    let list = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    let old = list(&[
        ("curl", "7.35.0-1ubuntu2"),
        ("git", "1:1.9.1-1"),
        ("mdadm", "3.2.5"),
    ]);
    let new = list(&[
        ("curl", "7.35.0-1ubuntu2.20"),
        ("git", "1:1.9.1-1"),
        ("tree", "1.6.0"),
    ]);
    assert_eq!(
        package_changes(&old, &new),
        [
            "~ curl 7.35.0-1ubuntu2 -> 7.35.0-1ubuntu2.20",
            "- mdadm 3.2.5",
            "+ tree 1.6.0"
        ]
    );
    assert!(package_changes(&new, &new).is_empty());
}

#[test]
fn package_changes_are_grouped_by_builder() {
    let mut by_builder = BTreeMap::new();
    let curl = vec!["~ curl 1 -> 2".to_string()];
    by_builder.insert("us-east-1-1404-hvm".to_string(), curl.clone());
    by_builder.insert("us-east-1-1404-pv".to_string(), curl);
    by_builder.insert("us-east-1-1204-pv".to_string(), Vec::new());
    assert_eq!(
        render_package_changes("official-20260101-000000", &by_builder),
        [
            "packages changed since run `official-20260101-000000`:",
            "  us-east-1-1404-hvm, us-east-1-1404-pv:",
            "    ~ curl 1 -> 2"
        ]
    );
    by_builder.clear();
    assert!(render_package_changes("x", &by_builder).is_empty());
}
