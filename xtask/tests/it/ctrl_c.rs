//! Issue 19: Ctrl-C typed in a real terminal (tmux `send-keys C-c`, which signals the whole
//! foreground process group) while the stand-in starts and the cloud is asked, and again once
//! builders run: nothing of the repository is left running, and a resume finishes the run.

use crate::common;

use common::tmux::Tmux;
use common::Repo;
use std::process::Command;
use std::time::{Duration, Instant};

/// Everything the pane showed, as one text.
fn history(tmux: &Tmux) -> String {
    tmux.history().join("\n")
}

/// Waits until the pane shows `text`; panics with the screen after `limit`.
fn wait_for(tmux: &Tmux, text: &str, limit: Duration) {
    let start = Instant::now();
    while !history(tmux).contains(text) {
        assert!(
            start.elapsed() < limit,
            "no `{text}` after {limit:?}:\n{}",
            history(tmux)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Processes whose command line names the repository (moto, sshd, Packer, the xtask itself),
/// but not the shell script and `sleep` that keep the pane open.
fn running_in(repo: &Repo) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", &repo.root.display().to_string()])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("run.sh") && !l.contains("tmux"))
        .map(str::to_string)
        .collect()
}

/// Nothing of the repository runs within `limit`; the list of what still does otherwise.
fn assert_nothing_left(repo: &Repo, limit: Duration, when: &str) {
    let start = Instant::now();
    loop {
        let left = running_in(repo);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{when}: still running after {limit:?}:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs `args` in the pane through a script that prints the exit status, then waits.
fn start(tmux: &Tmux, repo: &Repo, args: &str, first: bool) {
    let script = common::tmux::script(repo, &format!("clear\nxtask {args}\necho \"EXIT=$?\""));
    repo.write("run.sh", &script);
    let run_sh = format!("bash '{}'", repo.path("run.sh").display());
    if first {
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "ctrl-c",
            "-x",
            "100",
            "-y",
            "30",
            &run_sh,
        ]);
    } else {
        tmux.run(&["respawn-pane", "-k", "-t", "ctrl-c", &run_sh]);
        tmux.run(&["clear-history", "-t", "ctrl-c"]);
    }
}

#[test]
fn ctrl_c_in_a_terminal_leaves_nothing_running_and_resume_finishes() {
    common::require(&["tmux", "packer", "sshd"]);
    let repo = Repo::new("ctrl-c");
    let tmux = Tmux::new("ctrl-c");

    // 1. While the cloud is asked: the stand-in this command started is stopped with it.
    start(&tmux, &repo, "publish --local --yes", true);
    wait_for(&tmux, "cloud checks:", Duration::from_secs(180));
    assert!(
        !running_in(&repo).is_empty(),
        "the stand-in runs while the cloud is asked"
    );
    tmux.run(&["send-keys", "-t", "ctrl-c", "C-c"]);
    wait_for(&tmux, "EXIT=", Duration::from_secs(60));
    let screen = history(&tmux);
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(
        screen.contains("interrupted: stopped before anything started"),
        "{screen}"
    );
    assert_nothing_left(
        &repo,
        Duration::from_secs(30),
        "Ctrl-C during the cloud checks",
    );
    let status = repo.xtask(&["local", "status"]).ok().all();
    assert!(!status.contains("left running"), "{status}");

    // 2. Once builders run: Packer cancels and cleans up, nothing is left running.
    start(&tmux, &repo, "publish --local --yes", false);
    wait_for(&tmux, "running,", Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(3));
    tmux.run(&["send-keys", "-t", "ctrl-c", "C-c"]);
    wait_for(&tmux, "EXIT=", Duration::from_secs(180));
    let screen = history(&tmux);
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(screen.contains("--resume"), "the resume is named: {screen}");
    // The handler's line is printed above the live view, which is drawn again below it: under
    // the frame, the next redraw in place would overwrite it.
    let stopping = screen
        .find("stopping: Packer cancels its builds")
        .unwrap_or_else(|| panic!("the handler's line is on the screen:\n{screen}"));
    assert!(
        screen[stopping..].contains(" cancelled  ["),
        "the view is drawn below it:\n{screen}"
    );
    // Erased line by line, the frame above it leaves no copy in tmux's scrollback.
    let headers = screen
        .lines()
        .filter(|l| l.contains(" done, ") && l.contains(" running, "))
        .count();
    assert_eq!(headers, 1, "one live view header, no stale one:\n{screen}");
    assert_nothing_left(
        &repo,
        Duration::from_secs(30),
        "Ctrl-C with builders running",
    );

    // 3. The resume finishes the run.
    let resumed = repo
        .xtask(&["publish", "--resume", "--local", "--yes"])
        .ok()
        .all();
    assert!(
        resumed.contains("32 of 32") || resumed.contains("32/32"),
        "{resumed}"
    );
    assert_nothing_left(&repo, Duration::from_secs(30), "after the resume");
}
