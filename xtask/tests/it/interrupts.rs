//! Issue 10: a run survives Ctrl-C, kill -9 and a second command. Real Packer against the local
//! stand-in; interrupts are sent to the command's process group, as a terminal sends them.

use crate::common;

use common::{git_in, run_ids as runs, ReleaseDoc, Repo, RunRecord};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A command running in the background, in its own process group, its output in files.
struct Background {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn start(mut command: Command, logs: &Path, name: &str) -> Background {
        std::fs::create_dir_all(logs).unwrap();
        let stdout = logs.join(format!("{name}.out"));
        let stderr = logs.join(format!("{name}.err"));
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        Background {
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT to the whole process group, as Ctrl-C in a terminal.
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", "--", &format!("-{}", self.pid())])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn kill9(&self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most `limit`) and returns its exit code and output.
    fn wait(mut self, limit: Duration) -> common::Run {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}: {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        common::Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&self.stdout).unwrap(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap(),
        }
    }
}

/// Processes whose command line or working folder is in `root` (Packer, its plugins, moto,
/// sshd, the stand-in scripts).
fn processes_of(root: &Path) -> Vec<String> {
    let root_text = root.display().to_string();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie && (cmdline.contains(&root_text) || cwd.starts_with(root)) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

#[track_caller]
fn assert_nothing_left(root: &Path, within: Duration) {
    assert_none_left_but(root, within, |_| false);
}

/// As [`assert_nothing_left`], but the stand-in kept by `local up` (its server, sshd and `aws`
/// server).
#[track_caller]
fn assert_only_standin_left(root: &Path, within: Duration) {
    assert_none_left_but(root, within, |p| {
        p.contains("standin_server.py") || p.contains("sshd") || p.contains("aws_warm.py")
    });
}

/// Waits (at most `within`) until no process of the repository runs but those `kept` names.
#[track_caller]
fn assert_none_left_but(root: &Path, within: Duration, kept: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<String> = processes_of(root)
            .into_iter()
            .filter(|p| !kept(p))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the repository still run after {within:?}:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `ready` holds (at most `limit`).
#[track_caller]
fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Builder outcome lines Packer has printed in a run's first attempt so far.
fn builds_finished(root: &Path, id: &str, attempt: usize) -> usize {
    std::fs::read_to_string(root.join(format!("build/runs/{id}/output-{attempt}.log")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Provisioning with shell script"))
        .count()
}

/// The builders the publishes of the interrupt test run: one region's 4, one of them slow.
const ONLY: &str = "us-east-1-1204-pv,us-east-1-1204-hvm,us-east-1-1404-pv,us-east-1-1404-hvm";

/// The builder that meets a slow mirror (`XTASK_LOCAL_SLOW`): still building, certainly, when
/// the interrupt comes after two others finished.
const SLOW: &str = "us-east-1-1404-hvm";

/// `args` run in the repository with [`SLOW`] slow.
fn slowly(repo: &Repo, args: &[&str]) -> Command {
    let mut command = repo.command_in(".", args);
    command.env("XTASK_LOCAL_SLOW", SLOW);
    command
}

/// Every AMI of a run's record is in its scratch registry, and all `count` builders succeeded.
#[track_caller]
fn assert_all_merged(root: &Path, id: &str, run: &common::Run, count: usize) {
    assert!(
        run.stdout
            .contains(&format!("{count} of {count} builders succeeded")),
        "{run:#?}"
    );
    let rec = RunRecord::read(root, id);
    let registry =
        std::fs::read_to_string(root.join(format!("build/runs/{id}/ami_ids.json"))).unwrap();
    assert_eq!(rec.builders.len(), count);
    for (name, b) in &rec.builders {
        assert_eq!(b.state, "succeeded", "{name}");
        let ami = b.ami();
        assert!(
            registry.contains(ami),
            "{name}: {ami} is not in the registry"
        );
    }
}

#[track_caller]
fn assert_no_traceback(run: &common::Run) {
    let all = run.all();
    for bad in ["Traceback", "KeyboardInterrupt", "panicked", "rejected"] {
        assert!(!all.contains(bad), "{bad} in:\n{all}");
    }
}

#[test]
fn publish_survives_ctrl_c_kill_9_and_a_second_command() {
    let repo = Repo::new("interrupts");
    let root = repo.root.clone();
    let logs = root.with_extension("logs");
    let publish = ["publish", "--local", "--yes", "--only", ONLY];
    let resume = ["publish", "--resume", "--local", "--yes"];

    // Two publishes started together: one runs, the other is refused before it starts anything.
    let a = Background::start(slowly(&repo, &publish), &logs, "a");
    let b = Background::start(slowly(&repo, &publish), &logs, "b");
    let (a_pid, b_pid) = (a.pid(), b.pid());
    let (refused, running, running_pid) = {
        // Whichever lost the race ends at once.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut a = Some(a);
        let mut b = Some(b);
        loop {
            if let Some(Some(_)) = b.as_mut().map(|b| b.child.try_wait().unwrap()) {
                break (b.take().unwrap(), a.take().unwrap(), a_pid);
            }
            if let Some(Some(_)) = a.as_mut().map(|a| a.child.try_wait().unwrap()) {
                break (a.take().unwrap(), b.take().unwrap(), b_pid);
            }
            assert!(Instant::now() < deadline, "neither publish was refused");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let refused = refused.wait(Duration::from_secs(5)).fails(
        2,
        &[&format!(
            "another `cargo xtask publish` (pid {running_pid}) is running in this repository since"
        )],
    );
    assert_no_traceback(&refused);

    // Ctrl-C in the middle of the builds: Packer cancels, the command stops with 130, nothing
    // of this repository keeps running, and nothing is merged.
    wait_for(Duration::from_secs(120), "the first builds", || {
        runs(&root)
            .first()
            .is_some_and(|id| builds_finished(&root, id, 1) >= 2)
    });
    let id = runs(&root)[0].clone();
    running.interrupt();
    let stopped = running.wait(Duration::from_secs(120));
    assert_eq!(stopped.code, 130, "{stopped:#?}");
    assert_no_traceback(&stopped);
    assert!(
        stopped
            .stderr
            .contains(&format!("interrupted: run `{id}` stopped: "))
            && stopped.stderr.contains(&format!(
                "run `cargo xtask publish --resume {id} --local --yes`"
            )),
        "{}",
        stopped.stderr
    );
    assert_nothing_left(&root, Duration::from_secs(30));
    let rec = RunRecord::read(&root, &id);
    assert!(rec.attempts[0].interrupted);
    assert!(
        rec.builders.values().any(|b| b.state == "interrupted"),
        "{rec:#?}"
    );
    let registry = std::fs::read_to_string(root.join(format!("build/runs/{id}/ami_ids.json")));
    assert_eq!(
        registry.unwrap(),
        repo.read("ami_ids.json"),
        "an interrupted run merges nothing"
    );
    // The same command resumes: it rebuilds what did not finish and merges everything.
    let resumed = repo.xtask(&resume).ok();
    assert_all_merged(&root, &id, &resumed, 4);
    assert_nothing_left(&root, Duration::from_secs(10));

    // Ctrl-C before Packer starts (while the stand-in starts): one line, 130; the resume
    // builds everything.
    let early = Background::start(repo.command_in(".", &publish), &logs, "early");
    wait_for(Duration::from_secs(60), "the second run's record", || {
        runs(&root).len() == 2
            && root
                .join(format!("build/runs/{}/run.json", runs(&root)[1]))
                .exists()
    });
    early.interrupt();
    let early = early.wait(Duration::from_secs(60));
    assert_eq!(early.code, 130, "{early:#?}");
    assert_no_traceback(&early);
    assert_eq!(
        early
            .stderr
            .lines()
            .filter(|l| l.starts_with("interrupted:"))
            .count(),
        1,
        "one line says it: {}",
        early.stderr
    );
    assert_nothing_left(&root, Duration::from_secs(30));
    let id = runs(&root)[1].clone();
    let resumed = repo.xtask(&resume).ok();
    assert_all_merged(&root, &id, &resumed, 4);

    // kill -9 in the middle of the builds: the next command finds the orphans (Packer, the
    // stand-in), stops them, and the resume completes; the killed attempt's logs are kept.
    let killed = Background::start(slowly(&repo, &publish), &logs, "killed");
    wait_for(Duration::from_secs(120), "the third run's builds", || {
        runs(&root).len() == 3 && builds_finished(&root, &runs(&root)[2], 1) >= 2
    });
    let id = runs(&root)[2].clone();
    killed.kill9();
    let _ = killed.wait(Duration::from_secs(10));
    assert!(
        !processes_of(&root).is_empty(),
        "kill -9 left nothing to find"
    );
    let killed_log =
        std::fs::read_to_string(root.join(format!("build/runs/{id}/output-1.log"))).unwrap();
    let resumed = repo.xtask(&resume).ok();
    assert!(
        resumed
            .stderr
            .contains("found what `cargo xtask publish` (pid ")
            && resumed
                .stderr
                .contains("stopped the orphans of the killed command")
            && resumed.stderr.contains("attempt 1 never finished"),
        "{}",
        resumed.stderr
    );
    // Packer is stopped first, while the stand-in it deletes its instances through still runs.
    assert!(
        resumed
            .stderr
            .contains("left running when it was killed: packer (pid "),
        "{}",
        resumed.stderr
    );
    assert_all_merged(&root, &id, &resumed, 4);
    // Packer outlived the killed command and wrote on until the next command stopped it.
    assert!(
        std::fs::read_to_string(root.join(format!("build/runs/{id}/output-1.log")))
            .unwrap()
            .starts_with(&killed_log),
        "the killed attempt's log is kept"
    );
    assert!(root.join(format!("build/runs/{id}/output-2.log")).exists());
    assert_nothing_left(&root, Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&logs);
}

#[test]
fn release_interrupted_mid_publish_commits_nothing_then_completes() {
    let repo = Repo::new("release-interrupt");
    // The release builds every enabled row: the 4 of `ONLY`, one of them slow.
    common::small_matrix(&repo);
    repo.git_init("2.6");
    let root = repo.root.clone();
    let logs = root.with_extension("logs");
    let clone = repo.path("target/rehearsal/release-2.6.9/repo");
    let release = ["release", "2.6.9", "--local", "--yes"];
    // The stand-in keeps the first command's images for the second, as AWS does (a run's
    // images are made public only when all are proven, so the resume needs them).
    repo.xtask(&["local", "up"]).ok();

    let first = Background::start(slowly(&repo, &release), &logs, "release");
    wait_for(Duration::from_secs(180), "the release's builds", || {
        runs(&clone)
            .iter()
            .find(|id| id.starts_with("official"))
            .is_some_and(|id| builds_finished(&clone, id, 1) >= 2)
    });
    first.interrupt();
    let first = first.wait(Duration::from_secs(120));
    assert_eq!(first.code, 130, "{first:#?}");
    assert_no_traceback(&first);
    assert!(
        first
            .stderr
            .contains("run `cargo xtask release 2.6.9 --local --yes` to"),
        "{}",
        first.stderr
    );
    assert_only_standin_left(&root, Duration::from_secs(30));
    let git = |args: &[&str]| git_in(&clone, &repo.home(), args);
    // Only the prepare commit, made before anything launched; no release commit.
    assert_eq!(
        git(&["rev-list", "--count", "HEAD"]).trim(),
        "2",
        "no release commit"
    );
    assert_eq!(git(&["tag", "--list"]), "", "no tag");

    // The same command completes: the release commit holds the 4 new AMIs.
    let second = repo.xtask(&release).ok();
    assert!(
        second.stdout.contains("released ComboAMI 2.6.9"),
        "{second:#?}"
    );
    // Its commit and tag are in the scratch clone: the way on is the rehearsal's own push.
    assert!(
        second.stdout.contains(
            "not pushed: run `cargo xtask release 2.6.9 --local --yes --push` to rehearse the push too"
        ),
        "{second:#?}"
    );
    let id = runs(&clone)
        .into_iter()
        .find(|id| id.starts_with("official"))
        .unwrap();
    let rec = RunRecord::read(&clone, &id);
    let committed = git(&["show", "release/2.6.9:ami_ids.json"]);
    assert_eq!(rec.builders.len(), 4);
    for (name, b) in &rec.builders {
        let ami = b.ami();
        assert!(
            committed.contains(ami),
            "{name}: {ami} is not in the release commit"
        );
    }
    assert_eq!(git(&["rev-list", "--count", "HEAD"]).trim(), "3");

    // A release that died between its commit (and tag) and saving that: the next run
    // recognises its own commit and tag instead of refusing "HEAD moved".
    // The release's steps are kept in its publish's run record.
    let state_path = clone.join(format!("build/runs/{id}/run.json"));
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["release"]["commit"] = Value::Null;
    state["release"]["tagged"] = Value::Bool(false);
    state["release"]["published"] = Value::Bool(false);
    std::fs::write(&state_path, state.to_string()).unwrap();
    let third = repo.xtask(&release).ok();
    assert!(
        third.stderr.contains("found this release's own commit")
            && third
                .stderr
                .contains("found this release's own tag `release/2.6.9`"),
        "{third:#?}"
    );
    assert!(
        third.stdout.contains("release 2.6.9 is already done"),
        "{third:#?}"
    );
    assert_eq!(git(&["rev-list", "--count", "HEAD"]).trim(), "3");
    assert_only_standin_left(&root, Duration::from_secs(10));
    repo.xtask(&["local", "down"]).ok();
    assert_nothing_left(&root, Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&logs);
}

#[test]
fn concurrent_ami_ids_merges_keep_every_ami() {
    let repo = Repo::new("merge-race");
    let manifest = |builder: &str, region: &str, id: &str| {
        format!(
            "{{\"builds\": [{{\"name\": \"{builder}\", \"artifact_id\": \"{region}:{id}\"}}]}}\n"
        )
    };
    for pair in 0..20 {
        let a_id = format!("ami-{:08x}", 0x1000_0000 + pair);
        let b_id = format!("ami-{:08x}", 0x2000_0000 + pair);
        repo.write(
            "a.json",
            &manifest("us-east-1-1404-hvm", "us-east-1", &a_id),
        );
        repo.write("b.json", &manifest("eu-west-1-1204-pv", "eu-west-1", &b_id));
        let spawn = |file: &str| {
            repo.command_in(".", &["ami-ids", file])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("a.json"), spawn("b.json"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
        let registry = repo.read("ami_ids.json");
        assert!(
            registry.contains(&a_id) && registry.contains(&b_id),
            "pair {pair} lost an AMI:\n{registry}"
        );
    }
}

/// Only the first row of the matrix stays enabled: a release of one builder.
fn one_builder(repo: &Repo) {
    let mut matrix: Value = serde_json::from_str(&repo.read("build/images.json")).unwrap();
    for row in matrix["images"].as_array_mut().unwrap().iter_mut().skip(1) {
        row["enabled"] = serde_json::json!(false);
        row["disabled_because"] = serde_json::json!("a short test");
    }
    repo.write(
        "build/images.json",
        &serde_json::to_string_pretty(&matrix).unwrap(),
    );
}

/// Issue 19: a rehearsal interrupted while it made its scratch clone left a half-made
/// `remote.git`, and every later rehearsal exited 2 "cannot make the scratch remote". Both
/// half-made forms (the old one at the scratch folder, the new one beside it) are remade.
#[test]
fn a_half_made_rehearsal_is_remade() {
    let repo = Repo::new("half-made-rehearsal");
    one_builder(&repo);
    repo.git_init("main");
    let scratch = repo.path("target/rehearsal/release-2.6.4");
    std::fs::create_dir_all(scratch.join("remote.git/objects")).unwrap();
    let partial = repo.path("target/rehearsal/release-2.6.4.partial");
    std::fs::create_dir_all(partial.join("remote.git")).unwrap();
    let run = repo.xtask(&["release", "2.6.4", "--local", "--push", "--yes"]);
    // What the release does after its scratch clone is not this test's concern: only that it
    // got past it (2 is "refused before anything started").
    assert_ne!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("rehearsal: removing the half-made rehearsal")
            && run.stderr.contains("is branch `2.6` in the scratch clone"),
        "{}",
        run.stderr
    );
    let remote = scratch.join("remote.git");
    // The real HEAD is on the scratch remote's release branch (under the release commit, once
    // the release pushed it).
    let head = repo.git(&["rev-parse", "HEAD"]);
    git_in(
        &remote,
        &repo.home(),
        &["merge-base", "--is-ancestor", head.trim(), "refs/heads/2.6"],
    );
    // The clone (made beside, then renamed) pushes to the renamed remote.
    let origin = git_in(
        &scratch.join("repo"),
        &repo.home(),
        &["remote", "get-url", "origin"],
    );
    assert_eq!(origin.trim(), remote.to_str().unwrap());
    assert!(!partial.exists());
    // The summary's paths work from where the user typed the command: they name the clone.
    assert!(
        run.stdout.contains(&format!(
            "full output (secrets masked):\n  {}/repo/build/runs/official-local-",
            scratch.display()
        )),
        "{}",
        run.stdout
    );
}

/// Issue 19: Ctrl-C (SIGINT to the process group) at every phase of a release rehearsal — the
/// stand-in's start, the launch after the preflight, the merge, the commit, the tag, the push —
/// stops it with 130, leaves nothing running and nothing half-done, and the same command
/// resumes. Phases that take milliseconds are held with `XTASK_PAUSE_BEFORE` so the interrupt
/// lands in them. One builder keeps it short.
#[test]
fn ctrl_c_at_every_phase_of_a_release_leaves_nothing_half_done() {
    let repo = Repo::new("every-phase");
    one_builder(&repo);
    repo.git_init("2.6");
    let root = repo.root.clone();
    let logs = root.with_extension("logs");
    let release = ["release", "2.6.3", "--local", "--push", "--yes"];
    let scratch = repo.path("target/rehearsal/release-2.6.3");
    let (clone, remote) = (scratch.join("repo"), scratch.join("remote.git"));
    let head = repo.git(&["rev-parse", "HEAD"]);
    let refs = |dir: &Path| {
        if dir.exists() {
            git_in(dir, &repo.home(), &["show-ref"])
        } else {
            String::new()
        }
    };
    let phases: [(&str, &str); 6] = [
        ("starting the stand-in", "stand-in"),
        ("launching Packer", "launch"),
        ("merging", "merge"),
        ("the commit (step 4)", "commit"),
        ("the tag (step 5)", "tag"),
        ("the push (step 6)", "push"),
    ];
    for (phase, name) in phases {
        let mut command = repo.command_in(".", &release);
        command.env("XTASK_PAUSE_BEFORE", phase);
        let running = Background::start(command, &logs, name);
        wait_for(Duration::from_secs(120), phase, || {
            std::fs::read_to_string(&running.stderr)
                .is_ok_and(|e| e.contains(&format!("paused before {phase}")))
        });
        running.interrupt();
        let stopped = running.wait(Duration::from_secs(60));
        assert_eq!(stopped.code, 130, "{phase}: {stopped:#?}");
        assert_no_traceback(&stopped);
        // What the message says is what is true: the step it did not take.
        let said = match name {
            "merge" => "`ami_ids.json` was not changed".to_string(),
            _ => format!("stopped before {phase}"),
        };
        assert!(
            stopped.stderr.contains(&said),
            "{phase}: {}",
            stopped.stderr
        );
        assert_nothing_left(&root, Duration::from_secs(30));
        // Nothing half-done: the commit, the tag and the push happen whole or not at all.
        let (here, there) = (refs(&clone), refs(&remote));
        let committed = clone.exists()
            && git_in(&clone, &repo.home(), &["rev-parse", "HEAD"]).trim() != head.trim();
        let order = ["stand-in", "launch", "merge", "commit", "tag", "push"];
        let at = order.iter().position(|p| *p == name).unwrap();
        assert_eq!(committed, at > 3, "{phase}: the commit");
        assert_eq!(
            here.contains("refs/tags/release/2.6.3"),
            at > 4,
            "{phase}: the tag"
        );
        assert!(
            !there.contains("refs/tags/release/2.6.3"),
            "{phase}: the push"
        );
    }
    // The same command finishes the release.
    let done = repo.xtask(&release).ok();
    assert!(
        refs(&remote).contains("refs/tags/release/2.6.3"),
        "{}",
        done.stderr
    );
    // Its plan marks what was done, the publish and its merge included (no build plan then).
    for step in ["2. publish every enabled row", "3. merge the new AMIs"] {
        let line = done
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with(step));
        assert!(
            line.is_some_and(|l| l.ends_with("(done)")),
            "{step}: {}",
            done.stderr
        );
    }
    assert!(!done.stderr.contains("instance(s) in"), "{}", done.stderr);
    assert_nothing_left(&root, Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&logs);
}

/// `Build 'NAME' finished` lines Packer has printed in a run's first attempt so far: with
/// `--no-parallel`, the builders done before the one that is running.
fn builders_done(root: &Path, id: &str) -> usize {
    std::fs::read_to_string(root.join(format!("build/runs/{id}/output-1.log")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ui,say,Build '") && l.contains("' finished after"))
        .count()
}

/// Issue 18 item 2: a release stopped on one machine is finished on another. The first
/// rehearsal is interrupted after 2 of its 4 builders; its run folder and its whole scratch
/// clone and remote are removed (what a fresh machine lacks); the same command then finds the
/// 2 images through their tags in the stand-in (which `local up` keeps, as AWS would), adopts
/// them, builds the other 2 and completes: 4 images, each listed once.
#[test]
fn a_release_stopped_on_one_machine_is_finished_on_another() {
    let repo = Repo::new("anywhere");
    common::small_matrix(&repo);
    repo.git_init("2.6");
    let root = repo.root.clone();
    let logs = root.with_extension("logs");
    let clone = repo.path("target/rehearsal/release-2.6.9/repo");
    let release = [
        "release",
        "2.6.9",
        "--local",
        "--yes",
        "--no-parallel",
        "--json",
    ];
    repo.xtask(&["local", "up"]).ok();

    let first = Background::start(repo.command_in(".", &release), &logs, "first");
    let official = || {
        runs(&clone)
            .into_iter()
            .find(|id| id.starts_with("official"))
    };
    wait_for(Duration::from_secs(300), "2 builders done", || {
        official().is_some_and(|id| builders_done(&clone, &id) >= 2)
    });
    first.interrupt();
    let first = first.wait(Duration::from_secs(120));
    assert_eq!(first.code, 130, "{first:#?}");
    let first_run = RunRecord::read(&clone, &official().unwrap());
    let built: BTreeMap<String, String> = first_run
        .builders
        .iter()
        .filter(|(_, b)| b.state == "succeeded")
        .map(|(name, b)| (name.clone(), b.ami().to_string()))
        .collect();
    assert!(built.len() >= 2, "{first_run:#?}");
    assert!(
        built.len() < 4,
        "the interrupt came too late: {first_run:#?}"
    );
    let prepare = first_run.commit.clone();

    // A fresh machine: no run folder, no scratch clone, no scratch remote.
    for gone in ["build/runs", "target/rehearsal"] {
        let _ = std::fs::remove_dir_all(repo.path(gone));
    }
    let second = repo.xtask(&release).ok();
    let doc: ReleaseDoc = second.doc();
    assert!(doc.ok, "{second:#?}");
    // The prepare commit is made again, identical: the images' `Commit` tag names it.
    assert_eq!(doc.publish_run.commit, prepare, "{}", second.stderr);
    let released: Vec<&str> = doc.amis.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(released.len(), 4, "{doc:#?}");
    // The plan says what the images found leave to launch.
    let launches = format!(
        "so {} of the 4 planned instance(s) will launch: {} image(s) exist",
        4 - built.len(),
        built.len()
    );
    assert!(
        second.flat_stderr().contains(&launches),
        "lacks {launches:?}:\n{}",
        second.stderr
    );
    for (builder, ami) in &built {
        assert_eq!(doc.publish_run.builders[builder].ami(), ami, "{builder}");
        assert!(
            second
                .stderr
                .contains(&format!("adopted {builder}: its image {ami}")),
            "{}",
            second.stderr
        );
    }
    // Each image once: in the tag, in the release commit's registry, and in the stand-in.
    let git = |args: &[&str]| git_in(&clone, &repo.home(), args);
    let tag = git(&["tag", "--list", "--format=%(contents)", "release/2.6.9"]);
    let registry = git(&["show", "release/2.6.9:ami_ids.json"]);
    for ami in &released {
        assert_eq!(tag.matches(ami).count(), 1, "{ami} in the tag:\n{tag}");
        assert_eq!(registry.matches(ami).count(), 1, "{ami} in the registry");
    }
    let images = common::own_images_tagged(&repo, "us-east-1", ("Version", "2.6.9"));
    let mut in_cloud: Vec<&str> = images
        .iter()
        .map(|i| i["ImageId"].as_str().unwrap())
        .collect();
    in_cloud.sort();
    let mut expected = released.clone();
    expected.sort();
    assert_eq!(
        in_cloud, expected,
        "the stand-in holds exactly the released images"
    );
    assert!(images.iter().all(|i| i["Public"] == true), "{images:#?}");
    repo.xtask(&["local", "down"]).ok();
    assert_nothing_left(&root, Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&logs);
}
