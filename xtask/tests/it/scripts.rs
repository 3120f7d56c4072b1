//! Issue 9: every shell script under `build/` passes `shellcheck` (and `bash -n`), and the
//! provisioning makes a 2.6 image (no `presetup/`, which the 2.6 branch does not have).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Run folders are output, not sources.
            if path.file_name().is_some_and(|n| n != "runs") {
                scripts(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "sh") {
            found.push(path);
        }
    }
}

#[test]
fn every_build_script_passes_shellcheck() {
    let build = common::source_root().join("build");
    let mut found = Vec::new();
    scripts(&build, &mut found);
    found.sort();
    assert!(
        found.iter().any(|p| p.ends_with("build/provision.sh")),
        "{found:?}"
    );
    // Without shellcheck, the test fails with the doctor's report and install command.
    common::require(&["shellcheck"]);
    let output = Command::new("shellcheck")
        .args(["--external-sources", "--format", "gcc"])
        .args(&found)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shellcheck finds problems in the scripts under `build/`:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for script in &found {
        let status = Command::new("bash").arg("-n").arg(script).status().unwrap();
        assert!(status.success(), "`bash -n {}` fails", script.display());
    }
}

#[test]
fn provisioning_targets_the_2_6_layout() {
    let script = std::fs::read_to_string(common::source_root().join("build/provision.sh")).unwrap();
    assert!(
        !script.contains("presetup/"),
        "the 2.6 branch has no `presetup/`"
    );
    // Issue 17: the checkout is exactly the commit being built; nothing is written into it.
    assert!(
        !script.contains("/VERSION"),
        "the provisioning writes into the checkout"
    );
    assert!(script.contains("git reset -q --hard \"$wanted\""));
    // Every path of the image goes through the one root variable.
    for path in [
        "/etc/",
        "/home/ubuntu",
        "/boot/grub/menu.lst",
        "/var/lib/cloud",
    ] {
        for line in script.lines().filter(|l| l.contains(path)) {
            let code = line.trim_start();
            if code.starts_with('#') {
                continue;
            }
            assert!(
                line.contains("$root") || !line.contains(&format!(" {path}")),
                "`{path}` reached without `$root`: {line}"
            );
        }
    }
}
