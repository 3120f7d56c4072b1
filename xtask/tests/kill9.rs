//! Issue 19: a kill -9 of xtask mid-build leaks nothing. Packer's output goes to files, so it
//! outlives the killed command instead of dying at its next write; the next command stops it
//! with SIGINT and Packer deletes its instance and its `packer_*` security group. A `local up`
//! stand-in outlives the killed command, so what is left in it can be looked at.

mod common;

use common::{run_ids, standin_aws, Repo};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Packer's lines so far in the run's first attempt that contain `needle`.
fn said(repo: &Repo, id: &str, needle: &str) -> usize {
    std::fs::read_to_string(repo.path(&format!("build/runs/{id}/output-1.log")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// `packer build` processes whose working folder is the repository.
fn packers(repo: &Repo) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).starts_with("packer\0build") && cwd == repo.root
        })
        .count()
}

#[test]
fn kill_9_mid_build_leaves_no_instance_or_security_group() {
    let repo = Repo::new("kill9");
    common::small_matrix(&repo);
    repo.xtask(&["local", "up"]).ok();
    let logs = repo.root.with_extension("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut publish = repo.command_in(".", &["publish", "--local", "--yes"]);
    let mut killed = publish
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(logs.join("killed.out")).unwrap())
        .stderr(std::fs::File::create(logs.join("killed.err")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let id = loop {
        let launched = run_ids(&repo.root)
            .first()
            .filter(|id| said(&repo, id, "Waiting for instance (i-") >= 1)
            .cloned();
        if let Some(id) = launched {
            break id;
        }
        assert!(Instant::now() < deadline, "no instance was launched");
        std::thread::sleep(Duration::from_millis(50));
    };
    killed.kill().unwrap();
    killed.wait().unwrap();
    // Packer lives on (it used to die at its next write to the dead command's pipe) and keeps
    // writing its output.
    let before = said(&repo, &id, "");
    std::thread::sleep(Duration::from_millis(300));
    assert!(packers(&repo) >= 1, "Packer died with the killed command");
    let deadline = Instant::now() + Duration::from_secs(20);
    while said(&repo, &id, "") == before {
        assert!(Instant::now() < deadline, "Packer's output stopped");
        std::thread::sleep(Duration::from_millis(100));
    }

    let started = Instant::now();
    let next = repo.xtask(&["cleanup", "--run", &id, "--local", "--execute"]);
    assert!(
        next.stderr
            .contains("found what `cargo xtask publish` (pid ")
            && next
                .stderr
                .contains(&format!("cargo xtask cleanup --run {id} --local`")),
        "{}",
        next.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{next:#?}");
    assert_eq!(packers(&repo), 0, "Packer still runs");
    let instances = standin_aws(
        &repo,
        "us-east-1",
        &[
            "ec2",
            "describe-instances",
            "--filters",
            &format!("Name=tag:RunId,Values={id}"),
            "Name=instance-state-name,Values=pending,running,stopping,stopped",
        ],
    );
    let running: Vec<_> = instances["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap().clone())
        .collect();
    assert!(running.is_empty(), "instances left: {running:#?}");
    let groups = standin_aws(&repo, "us-east-1", &["ec2", "describe-security-groups"]);
    let packer_groups: Vec<_> = groups["SecurityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["GroupName"].as_str().unwrap().starts_with("packer_"))
        .collect();
    assert!(packer_groups.is_empty(), "groups left: {packer_groups:#?}");
    repo.xtask(&["local", "down"]).ok();
    let _ = std::fs::remove_dir_all(&logs);
}
