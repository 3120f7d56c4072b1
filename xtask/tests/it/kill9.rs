//! Issue 19: a kill -9 of xtask mid-build leaks nothing. Packer's output goes to files, so it
//! outlives the killed command instead of dying at its next write; the next command stops it
//! with SIGINT and Packer deletes its instance and its `packer_*` security group. A `local up`
//! stand-in outlives the killed command, so what is left in it can be looked at.

use crate::common;

use common::{run_ids, standin_aws, Repo};
use serde_json::Value;
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

/// The pids of the `packer build` processes whose working folder is the repository.
fn packer_pids(repo: &Repo) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).starts_with("packer\0build") && cwd == repo.root
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn packers(repo: &Repo) -> usize {
    packer_pids(repo).len()
}

/// Starts `publish --local --yes` in its own process group, its output in files.
fn start_publish(repo: &Repo, nth: usize) -> std::process::Child {
    let logs = repo.root.with_extension("logs");
    std::fs::create_dir_all(&logs).unwrap();
    repo.command_in(".", &["publish", "--local", "--yes"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(logs.join(format!("{nth}.out"))).unwrap())
        .stderr(std::fs::File::create(logs.join(format!("{nth}.err"))).unwrap())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Run number `nth` of the repository, once its Packer launched an instance.
fn launched_run(repo: &Repo, nth: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let launched = run_ids(&repo.root)
            .get(nth)
            .filter(|id| said(repo, id, "Waiting for instance (i-") >= 1)
            .cloned();
        if let Some(id) = launched {
            return id;
        }
        assert!(Instant::now() < deadline, "no instance was launched");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The run's instances that are not terminated, and every `packer_*` security group, in the
/// stand-in's `us-east-1`.
fn left_in_standin(repo: &Repo, id: &str) -> (Vec<Value>, Vec<Value>) {
    let instances = standin_aws(
        repo,
        "us-east-1",
        &[
            "ec2",
            "describe-instances",
            "--filters",
            &format!("Name=tag:RunId,Values={id}"),
            "Name=instance-state-name,Values=pending,running,shutting-down,stopping,stopped",
        ],
    );
    let running: Vec<Value> = instances["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap().clone())
        .collect();
    let groups = standin_aws(repo, "us-east-1", &["ec2", "describe-security-groups"]);
    let packer_groups: Vec<Value> = groups["SecurityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["GroupName"].as_str().unwrap().starts_with("packer_"))
        .cloned()
        .collect();
    (running, packer_groups)
}

#[track_caller]
fn assert_nothing_left(repo: &Repo, id: &str) {
    let (instances, groups) = left_in_standin(repo, id);
    assert!(instances.is_empty(), "instances left: {instances:#?}");
    assert!(groups.is_empty(), "groups left: {groups:#?}");
}

#[test]
fn kill_9_mid_build_leaves_no_instance_or_security_group() {
    let repo = Repo::new("kill9");
    common::small_matrix(&repo);
    repo.xtask(&["local", "up"]).ok();

    // Only xtask is killed: its Packer lives on and is stopped by the next command.
    let mut killed = start_publish(&repo, 0);
    let id = launched_run(&repo, 0);
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
    assert_nothing_left(&repo, &id);

    // Packer is killed with it (its whole group): the run's instance and group stay, `cleanup
    // --run` lists them, and the resume removes them before it builds.
    let mut killed = start_publish(&repo, 1);
    let id = launched_run(&repo, 1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    for pid in packer_pids(&repo) {
        // SIGKILL to Packer's process group: Packer, its plugins and its output relays.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
    let (instances, groups) = left_in_standin(&repo, &id);
    assert!(
        !instances.is_empty() && !groups.is_empty(),
        "nothing was left to find"
    );
    let listed = repo.xtask(&["cleanup", "--run", &id, "--local"]).ok();
    let instance = instances[0]["InstanceId"].as_str().unwrap();
    let group = groups[0]["GroupName"].as_str().unwrap();
    assert!(
        listed
            .stdout
            .contains(&format!("us-east-1: instance {instance} (running"))
            && listed.stdout.contains(&format!("({group})")),
        "{listed:#?}"
    );
    let resumed = repo
        .xtask(&["publish", "--resume", &id, "--local", "--yes"])
        .ok();
    assert!(
        resumed.stderr.contains(
            "its killed attempt left these (its Packer died before it could delete them)"
        ) && resumed
            .stdout
            .contains(&format!("us-east-1: terminating instance {instance}"))
            // The cloud checks of the resume say each region as it answers.
            && resumed
                .stderr
                .contains("\n  us-east-1 answered (1 of 1 regions)\n"),
        "{resumed:#?}"
    );
    assert_nothing_left(&repo, &id);
    repo.xtask(&["local", "down"]).ok();
    let _ = std::fs::remove_dir_all(repo.root.with_extension("logs"));
}
