//! Issue 2: matrix, templates, `set-version` and `ami-ids`, driven through the built binary.

use crate::common;

use common::{data, Repo, RunExt};
use serde_json::Value;

const EPOCH: &str = "1795573423";

fn template(repo: &Repo, kind: &str) -> Value {
    let run = repo
        .command_in(".", &["config", kind])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .run()
        .ok();
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn help_lists_every_command() {
    let repo = Repo::new("help");
    for args in [&[][..], &["help"][..]] {
        let run = repo.xtask(args).ok();
        for command in [
            "config",
            "set-version",
            "ami-ids",
            "test-ebs",
            "test-instance",
            "publish",
            "local",
            "release",
            "tag",
            "cleanup",
        ] {
            assert!(
                run.stdout.contains(&format!("  {command} ")),
                "`{command}` missing:\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn config_is_deterministic_and_works_from_any_folder() {
    let repo = Repo::new("config");
    let official = template(&repo, "official");
    assert_eq!(official["builders"].as_array().unwrap().len(), 32);
    let again = repo
        .command_in("build/local", &["config", "official"])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .run()
        .ok();
    assert_eq!(
        serde_json::to_string_pretty(&official).unwrap() + "\n",
        again.stdout
    );
    // Credentials only ever as references, declared sensitive.
    assert!(!again.stdout.contains("YOUR-AWS"));
    assert_eq!(
        official["sensitive-variables"],
        serde_json::json!(["aws_access_key", "aws_secret_key", "aws_session_token"])
    );
    for b in official["builders"].as_array().unwrap() {
        let name = b["name"].as_str().unwrap();
        assert!(name.ends_with("-pv") || name.ends_with("-hvm"), "{name}");
        // Registered private: the tool makes them public once every builder is proven.
        assert_eq!(b["ami_groups"], serde_json::json!([]));
        assert!(b["s3_bucket"]
            .as_str()
            .unwrap()
            .contains(&format!("/{EPOCH}-")));
    }
    let provisioner = &official["provisioners"][0];
    let env = provisioner["environment_vars"].to_string();
    for var in [
        "COMBOAMI_VERSION=2.6.3",
        "COMBOAMI_BRANCH=2.6",
        "COMBOAMI_COMMIT=unknown",
        "COMBOAMI_ARCHIVES=1204=http://old-releases.ubuntu.com/ubuntu",
        "EC2_AMI_TOOLS_VERSION=1.5.3",
        "EC2_API_TOOLS_VERSION=1.7.4.0",
    ] {
        assert!(env.contains(var), "{env}");
    }
}

#[test]
fn config_writes_a_file_and_only_selects_builders() {
    let repo = Repo::new("config-out");
    repo.xtask(&[
        "config",
        "test-ebs",
        "--only",
        "us-east-1-1404-hvm,us-east-1-1204-pv",
        "--out",
        "t.json",
    ])
    .ok();
    let t: Value = serde_json::from_str(&repo.read("t.json")).unwrap();
    let names: Vec<&str> = t["builders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["us-east-1-1204-pv", "us-east-1-1404-hvm"]);
    assert_eq!(t["builders"][1]["source_ami"], "ami-45709f2e");
    let before = repo.snapshot();
    repo.xtask(&["config", "official", "--only", "us-east-1-1404"])
        .fails(
            2,
            &[
                "unknown builder `us-east-1-1404`",
                "us-east-1-1404-hvm",
                "eu-west-1-1204-pv",
            ],
        );
    repo.xtask(&["config", "nightly"])
        .fails(2, &["invalid value 'nightly'", "test-ebs"]);
    assert_eq!(before, repo.snapshot());
}

#[test]
fn every_template_passes_packer_validate() {
    let repo = Repo::new("validate");
    // A local.json made from local-default.json, with cert and key files that exist.
    let mut vars: Value = serde_json::from_str(&repo.read("build/local-default.json")).unwrap();
    repo.write("keys/cert.pem", "cert");
    repo.write("keys/key.pem", "key");
    vars["aws_signing_cert"] = repo.path("keys/cert.pem").display().to_string().into();
    vars["aws_signing_key"] = repo.path("keys/key.pem").display().to_string().into();
    repo.write("build/local.json", &vars.to_string());
    for kind in ["official", "test-ebs", "test-instance"] {
        let file = format!("{kind}.json");
        repo.xtask(&["config", kind, "--out", &file]).ok();
        common::require(&["packer"]);
        let out = std::process::Command::new("packer")
            .args(["validate", "-var-file=build/local.json", &file])
            .current_dir(&repo.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "packer validate {kind}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_matrix_rows_are_named_by_row_and_field() {
    let repo = Repo::new("matrix");
    let mut matrix: Value = serde_json::from_str(&repo.read("build/images.json")).unwrap();
    let images = matrix["images"].as_array_mut().unwrap();
    images[0]["region"] = "US_East".into();
    images[1]["instance_store_ami"] = "ami-xyz".into();
    images[2]["virtualization"] = "container".into();
    images[4] = images[5].clone();
    repo.write(
        "build/images.json",
        &serde_json::to_string_pretty(&matrix).unwrap(),
    );
    let before = repo.snapshot();
    repo.xtask(&["config", "official"]).fails(
        2,
        &[
            "image 1 (US_East 1204 paravirtual): field `region`: `US_East` is not a region name",
            "image 2 (ap-northeast-1 1204 hvm): field `instance_store_ami`: `ami-xyz` is not an AMI id",
            "field `virtualization`: unknown virtualization type `container`",
            "image 6 (ap-southeast-1 1204 hvm): duplicate builder name `ap-southeast-1-1204-hvm` (also image 5)",
        ],
    );
    repo.xtask(&["set-version", "2.6.4"])
        .fails(2, &["`build/images.json` has"]);
    assert_eq!(before, repo.snapshot());

    let mut matrix: Value =
        serde_json::from_str(&Repo::new("m2").read("build/images.json")).unwrap();
    matrix["settings"]["bucket"] = "comboami_{version}-{region}".into();
    repo.write(
        "build/images.json",
        &serde_json::to_string_pretty(&matrix).unwrap(),
    );
    repo.xtask(&["config", "official"]).fails(
        2,
        &[
            "S3 bucket name (settings `bucket`) `comboami_2.6.3-",
            "contains `_`",
        ],
    );
}

fn python_reads(repo: &Repo) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import ds0_utils; print(ds0_utils.comboami_version(), ds0_utils.comboami_defaultbranch())"])
        .current_dir(&repo.root)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn set_version_edits_only_the_literals() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new("set-version");
    std::fs::set_permissions(
        repo.path("ds0_utils.py"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let before = repo.read("ds0_utils.py");
    let run = repo
        .xtask_in(
            "build",
            &["set-version", "2.6.4-beta1", "--branch", "dev-2.6"],
        )
        .ok();
    assert!(
        run.stdout.contains("version 2.6.3 -> 2.6.4-beta1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("branch  2.6 -> dev-2.6"),
        "{}",
        run.stdout
    );
    assert_eq!(python_reads(&repo), "2.6.4-beta1 dev-2.6");
    let after = repo.read("ds0_utils.py");
    assert_eq!(
        after,
        before
            .replace("\"2.6.3\"", "\"2.6.4-beta1\"")
            .replace("return \"2.6\"", "return \"dev-2.6\"")
    );
    let mode = std::fs::metadata(repo.path("ds0_utils.py"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // No temporary file is left behind.
    assert!(std::fs::read_dir(&repo.root).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("tmp")));

    // Single quotes and a version-only change.
    repo.write("ds0_utils.py", "def comboami_version():\n    return '1.0.0'\n\ndef comboami_defaultbranch():\n    return '1.0'\n");
    repo.xtask(&["set-version", "1.0.1"]).ok();
    assert_eq!(python_reads(&repo), "1.0.1 1.0");
}

#[test]
fn set_version_refusals_change_nothing() {
    let repo = Repo::new("set-version-bad");
    let before = repo.snapshot();
    repo.xtask(&["set-version", "2.6"])
        .fails(2, &["`2.6` is not a semantic version"]);
    repo.xtask(&["set-version", "v2.6.1"])
        .fails(2, &["`v2.6.1` is not a semantic version"]);
    repo.xtask(&["set-version", "2.6.1+build.5"])
        .fails(2, &["contains `+`", "AMI name"]);
    repo.xtask(&["set-version", "2.6.4", "--branch", "my branch"])
        .fails(
            2,
            &["`my branch` is not a valid git branch name: it contains a space"],
        );
    assert_eq!(before, repo.snapshot());

    let cases = [
        ("def comboami_defaultbranch():\n    return '2.6'\n", "no function `comboami_version()`"),
        ("def comboami_version():\n    return '1.0.0'\ndef comboami_version():\n    return '1.0.1'\ndef comboami_defaultbranch():\n    return '2.6'\n", "defines `comboami_version()` more than once (lines 1 and 3)"),
        ("VERSION = '1.0.0'\ndef comboami_version():\n    return VERSION\ndef comboami_defaultbranch():\n    return '2.6'\n", "line 2: `comboami_version()` must be a single `return \"...\"` of a plain string literal"),
    ];
    for (text, message) in cases {
        repo.write("ds0_utils.py", text);
        let before = repo.snapshot();
        repo.xtask(&["set-version", "2.6.4"])
            .fails(2, &["`ds0_utils.py`", message]);
        assert_eq!(before, repo.snapshot(), "{message}");
    }
}

#[test]
fn ami_ids_merges_without_wiping_and_is_idempotent() {
    let repo = Repo::new("ami-ids");
    let before: Value = serde_json::from_str(&repo.read("ami_ids.json")).unwrap();
    let log = data("packer-1.6.6-ebs-success.log");
    let run = repo.xtask_in("build", &["ami-ids", &log]).ok();
    assert!(
        run.stdout
            .contains("replaced us-east-1 1404 hvm: ami-711ca91a ->"),
        "{}",
        run.stdout
    );
    let text = repo.read("ami_ids.json");
    let after: Value = serde_json::from_str(&text).unwrap();
    for region in before.as_object().unwrap().keys() {
        if region != "us-east-1" {
            assert_eq!(before[region], after[region], "{region} must not change");
        }
    }
    assert!(
        text.ends_with("}\n")
            && text.contains("\n    \"us-east-1\": [\n        {\n            \"Distributor ID\"")
    );
    let once = repo.snapshot();
    let run = repo.xtask(&["ami-ids", &log]).ok();
    assert!(run.stdout.contains("nothing changed"), "{}", run.stdout);
    assert_eq!(once, repo.snapshot());
}

#[test]
fn ami_ids_reads_several_pairs_manifests_and_ignores_failures() {
    let repo = Repo::new("ami-ids-2");
    repo.write(
        "multi.log",
        "1795573423,us-west-2-1404-hvm,artifact-count,2\n\
         1795573423,us-west-2-1404-hvm,artifact,0,builder-id,mitchellh.amazon.instance\n\
         1795573423,us-west-2-1404-hvm,artifact,0,id,us-west-2:ami-ebd1934921f437dda%!(PACKER_COMMA)eu-central-1:ami-511ba79f3df822121\n\
         1795573423,us-west-2-1404-hvm,artifact,0,end\n\
         1795573423,us-west-2-1404-hvm,artifact,1,id,us-west-2:ami-ebd1934921f437dda%!(PACKER_COMMA)eu-central-1:ami-511ba79f3df822121\n\
         1795573423,,ui,say,Build 'us-west-2-1404-hvm' finished after 1 second.\n",
    );
    let run = repo
        .xtask(&[
            "ami-ids",
            "multi.log",
            &data("packer-1.6.6-source-ami-missing.log"),
        ])
        .ok();
    // A copy outside the builder's own region is merged, with a warning; an errored builder
    // is named.
    assert!(
        run.stderr.contains("warning: builder `us-west-2-1404-hvm` reported ami-511ba79f3df822121 in `eu-central-1`, not in its own region `us-west-2`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("warning: 1 builder(s) errored and add nothing: `us-east-1-1404-hvm`"),
        "{}",
        run.stderr
    );
    let after: Value = serde_json::from_str(&repo.read("ami_ids.json")).unwrap();
    assert!(after["eu-central-1"]
        .to_string()
        .contains("ami-511ba79f3df822121"));
    assert!(after["us-west-2"]
        .to_string()
        .contains("ami-ebd1934921f437dda"));
    assert!(!after.to_string().contains("ami-0000dead"));

    repo.write(
        "manifest.json",
        r#"{"builds": [
            {"name": "sa-east-1-1204-pv", "builder_type": "amazon-instance", "build_time": 1, "files": null,
             "artifact_id": "sa-east-1:ami-11111111,us-east-1:ami-22222222", "packer_run_uuid": "a", "custom_data": null}
           ], "last_run_uuid": "a"}"#,
    );
    let run = repo.xtask(&["ami-ids", "manifest.json"]).ok();
    assert!(
        run.stdout.contains("sa-east-1 1204 pv: ami-2bc24336")
            || run.stdout.contains("sa-east-1 1204 pv"),
        "{}",
        run.stdout
    );
    let after: Value = serde_json::from_str(&repo.read("ami_ids.json")).unwrap();
    assert!(after["sa-east-1"].to_string().contains("ami-11111111"));
}

#[test]
fn ami_ids_malformed_input_names_file_and_line_and_changes_nothing() {
    let repo = Repo::new("ami-ids-bad");
    let before = repo.snapshot();
    // The first line shows whether a file is a machine-readable log at all; later lines are
    // decoded when they can matter (the scan skips provisioning output without decoding it).
    repo.write(
        "bad.log",
        "1,,ui,say,fine\nBuild 'x' is not packer output\n",
    );
    repo.write(
        "plain.log",
        "==> us-east-1-1404-hvm: Creating AMI\n1,,ui,say,fine\n",
    );
    repo.write(
        "badpair.log",
        "1,,ui,say,fine\n1,x-1404-hvm,artifact,0,id,us-east-1-ami-12345678\n",
    );
    repo.write("badname.log", "1,weird-builder,artifact,0,id,us-east-1:ami-12345678\n1,,ui,say,Build 'weird-builder' finished.\n");
    repo.write("bad.json", "{\"builds\": [}");
    let mut before_with_inputs = repo.snapshot();
    repo.xtask(&["ami-ids", "bad.log"]).fails(
        2,
        &["`bad.log` line 2 is not a Packer machine-readable record"],
    );
    repo.xtask(&["ami-ids", "plain.log"]).fails(
        2,
        &[
            "`plain.log` line 1 is not a Packer machine-readable record",
            "`-machine-readable`",
        ],
    );
    repo.xtask(&["ami-ids", "badpair.log"])
        .fails(2, &["`badpair.log` line 2", "not a `REGION:AMI` pair"]);
    repo.xtask(&["ami-ids", "badname.log"]).fails(
        2,
        &[
            "`badname.log`",
            "builder `weird-builder` is not named `REGION-OSVERSION-pv|hvm`",
        ],
    );
    let run = repo.xtask(&["ami-ids", "bad.json"]).fails(
        2,
        &["`bad.json` is not a Packer manifest: line 1, column 13: expected value"],
    );
    assert!(!run.stderr.contains("at line"), "{}", run.stderr);
    repo.xtask(&["ami-ids", "missing.log"]).fails(
        2,
        &["cannot open `missing.log`", "fix: give what a build wrote"],
    );
    // A test build's output (its AMI names say so) never goes into the registry.
    let test_build = std::fs::read_to_string(data("packer-1.6.6-ebs-success.log"))
        .unwrap()
        .replace(
            "Creating AMI test ebs 1404 hvm",
            "Creating AMI DataStax Auto-Clustering AMI 2.6.3-1404-hvm (test-ebs 1795587273)",
        );
    repo.write("test-ebs.log", &test_build);
    let registry = repo.read("ami_ids.json");
    let refused = repo.xtask(&["ami-ids", "test-ebs.log"]).fails(
        2,
        &[
            "`test-ebs.log` is the output of a `test-ebs` build",
            "test images are private and never listed in `ami_ids.json`",
        ],
    );
    // One fix, its own: not the generic one for files that are no build's output.
    assert_eq!(
        refused.stderr.matches("fix:").count(),
        1,
        "{}",
        refused.stderr
    );
    assert_eq!(repo.read("ami_ids.json"), registry);
    std::fs::remove_file(repo.path("test-ebs.log")).unwrap();
    repo.write("ami_ids.json", "{ broken");
    repo.xtask(&["ami-ids", &data("packer-1.6.6-ebs-success.log")])
        .fails(2, &["`ami_ids.json` is not a valid registry"]);
    before_with_inputs.retain(|(p, _)| !p.ends_with("ami_ids.json"));
    let mut now = repo.snapshot();
    now.retain(|(p, _)| !p.ends_with("ami_ids.json"));
    assert_eq!(before_with_inputs, now);
    assert_eq!(before.len() + 5, repo.snapshot().len());
}

#[test]
fn path_arguments_are_relative_to_the_callers_folder() {
    let repo = Repo::new("caller-paths");
    let run = repo
        .xtask_in("build", &["config", "test-ebs", "--out", "t.json"])
        .ok();
    assert!(repo.path("build/t.json").is_file(), "{run:#?}");
    assert!(!repo.path("t.json").exists());
    assert!(run.stderr.contains("`build/t.json`"), "{}", run.stderr);

    std::fs::copy(
        data("packer-1.6.6-ebs-success.log"),
        repo.path("build/here.log"),
    )
    .unwrap();
    let registry = repo.read("ami_ids.json");
    repo.write("build/mine.json", &registry);
    let run = repo
        .xtask_in("build", &["ami-ids", "here.log", "--registry", "mine.json"])
        .ok();
    assert!(run.stdout.contains("`build/mine.json`"), "{}", run.stdout);
    assert_ne!(repo.read("build/mine.json"), registry);
    assert_eq!(
        repo.read("ami_ids.json"),
        registry,
        "the default registry is untouched"
    );
    // Without `--registry`, the repository's own `ami_ids.json`, from any folder.
    repo.xtask_in("build", &["ami-ids", "here.log"]).ok();
    assert_eq!(repo.read("ami_ids.json"), repo.read("build/mine.json"));
    repo.xtask_in("build", &["ami-ids", "gone.log"])
        .fails(2, &["cannot open `build/gone.log`"]);
}

#[test]
fn ami_ids_without_a_successful_build_says_so_and_fails() {
    let repo = Repo::new("ami-ids-none");
    let before = repo.snapshot();
    let run = repo
        .xtask(&["ami-ids", &data("packer-1.6.6-source-ami-missing.log")])
        .fails(
            1,
            &[
                "error: no successful build in",
                "1 builder(s) errored: `us-east-1-1404-hvm` (",
                "InvalidAMIID.NotFound",
                "`ami_ids.json` was not changed",
            ],
        );
    assert!(!run.stdout.contains("nothing changed"), "{}", run.stdout);
    assert_eq!(before, repo.snapshot());
}

/// A PATH like the test's own without `program`: folders that hold it are replaced by copies made
/// of links to everything else in them.
fn path_without(program: &str, scratch: &std::path::Path) -> String {
    let path = std::env::var_os("PATH").unwrap();
    let dirs: Vec<String> = std::env::split_paths(&path)
        .enumerate()
        .map(|(index, dir)| {
            if !dir.join(program).exists() {
                return dir.display().to_string();
            }
            let shadow = scratch.join(format!("bin-{index}"));
            std::fs::create_dir_all(&shadow).unwrap();
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                if entry.file_name() != program {
                    let _ =
                        std::os::unix::fs::symlink(entry.path(), shadow.join(entry.file_name()));
                }
            }
            shadow.display().to_string()
        })
        .collect();
    dirs.join(":")
}

#[test]
fn doctor_names_what_is_missing_with_its_install_command() {
    let repo = Repo::new("doctor");
    let run = repo.xtask(&["doctor"]);
    assert_eq!(
        run.code, 0,
        "this machine has every prerequisite:\n{run:#?}"
    );
    assert!(
        run.stdout.contains("ok       packer        Packer "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("local.json"), "{}", run.stdout);
    let run = repo.xtask(&["doctor", "--install"]).ok();
    assert!(
        run.stdout.starts_with("nothing to install\n"),
        "{}",
        run.stdout
    );

    let path = path_without("packer", &repo.path("target/doctor"));
    let run = repo
        .command_in("build", &["doctor"])
        .env("PATH", &path)
        .run();
    assert_eq!(run.code, 1, "{run:#?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(" packer "))
        .unwrap_or_else(|| panic!("no line about packer:\n{}", run.stdout));
    assert!(line.contains("MISSING"), "{line}");
    assert!(line.contains("apt-get install packer`"), "{line}");
    assert!(run.stdout.contains("\nmissing: packer\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("cargo xtask doctor --install"),
        "{}",
        run.stdout
    );
    // The other checks still pass, and a named check alone fails alone.
    assert!(run.stdout.contains("ok       curl"), "{}", run.stdout);
    let run = repo
        .command_in(".", &["doctor", "curl", "git"])
        .env("PATH", &path)
        .run();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!run.stdout.contains("packer"), "{}", run.stdout);
    repo.xtask(&["doctor", "nonsense"])
        .fails(2, &["unknown check `nonsense`", "`packer`"]);
    // Without a git identity, `--real` fails on it (the test's home has no configuration).
    let run = repo.xtask(&["doctor", "--real"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let missing = run
        .stdout
        .lines()
        .find(|l| l.starts_with("missing: "))
        .unwrap();
    assert!(
        missing.contains("git-identity") && missing.contains("local.json"),
        "{missing}"
    );
}

/// Issue 9: every change to a template shows up in review as a change of these files.
#[test]
fn templates_of_every_kind_match_the_golden_files() {
    let repo = Repo::new("golden");
    // A fixed version and branch, whatever `ds0_utils.py` holds today.
    repo.xtask(&["set-version", "2.6.3", "--branch", "2.6"])
        .ok();
    for kind in ["official", "test-ebs", "test-instance"] {
        let run = repo
            .command_in(".", &["config", kind])
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .run()
            .ok();
        common::golden(&format!("template-{kind}.json"), &run.stdout);
    }
    let official = template(&repo, "official");
    assert_eq!(
        official["builders"][0]["ami_description"],
        "Launch a DataStax Enterprise or DataStax Community cluster (https://github.com/riptano/ComboAMI)."
    );
}
