//! Issue 13: the live view in a real terminal (tmux at 80x24, resized while it runs), and
//! `--json`: one local publish of all 32 builders serves both.

use crate::common;

use common::tmux::Tmux;
use common::Repo;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `3 done, 0 failed, 29 running, 0 waiting  [0:12]`
fn is_header(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.len() == 9
        && words[1] == "done,"
        && words[3] == "failed,"
        && words[5] == "running,"
        && words[7] == "waiting"
        && words[8].starts_with('[')
        && words[8].ends_with(']')
}

fn is_builder_line(line: &str) -> bool {
    ["FAIL ", ".... ", "done ", "     "]
        .iter()
        .any(|mark| line.starts_with(mark))
}

fn wider_than(lines: &[String], cols: usize) -> Vec<&String> {
    lines.iter().filter(|l| l.chars().count() > cols).collect()
}

/// The screen right after a resize and a redraw: the view starts at the top (a header, then
/// builder lines), fits `cols`, and nothing of the frame drawn before is left around it.
#[track_caller]
fn assert_clean_view(screen: &[String], cols: usize) {
    let shown: Vec<&String> = screen.iter().filter(|l| !l.trim().is_empty()).collect();
    assert!(wider_than(screen, cols).is_empty(), "{screen:#?}");
    assert!(
        is_header(&screen[0]),
        "the view starts at the top: {screen:#?}"
    );
    assert_eq!(
        shown.iter().filter(|l| is_header(l)).count(),
        1,
        "{screen:#?}"
    );
    assert!(shown[1..].iter().all(|l| is_builder_line(l)), "{screen:#?}");
}

#[test]
fn publish_fits_an_80x24_terminal_and_json_lists_every_builder() {
    common::require(&["tmux", "jq"]);
    let repo = Repo::new("terminal");
    // The command as a user types it in the terminal, with the test's isolated environment.
    let script = common::tmux::script(
        &repo,
        "xtask publish --local --yes --json | jq . > pretty.json\n\
         echo \"EXIT=${PIPESTATUS[0]} JQ=${PIPESTATUS[1]}\"",
    );
    repo.write("run.sh", &script);
    let tmux = Tmux::new("view");
    let run_sh = repo.path("run.sh").display().to_string();
    tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        "-s",
        "view",
        "bash",
        &run_sh,
    ]);

    let deadline = Instant::now() + Duration::from_secs(900);
    let mut resized = false;
    let mut headers_seen = 0;
    let finished = loop {
        assert!(
            Instant::now() < deadline,
            "no end in sight:\n{:#?}",
            tmux.history()
        );
        std::thread::sleep(Duration::from_millis(250));
        let screen = tmux.screen();
        if let Some(line) = screen.iter().find(|l| l.starts_with("EXIT=")) {
            break line.clone();
        }
        if !screen.iter().any(|l| is_header(l)) {
            continue;
        }
        headers_seen += 1;
        assert!(wider_than(&screen, 80).is_empty(), "{screen:#?}");
        assert_eq!(
            screen.iter().filter(|l| is_header(l)).count(),
            1,
            "{screen:#?}"
        );
        if !resized && screen.iter().any(|l| l.starts_with(".... ")) {
            // Taller (the frame no longer fills the screen), narrower (the terminal rewraps
            // the old frame's lines), shorter, then back, while builders run: each redraw
            // starts over at the top instead of leaving pieces of the old frame.
            resized = true;
            for (cols, rows) in [(80, 50), (60, 50), (60, 16), (80, 24)] {
                let (x, y) = (cols.to_string(), rows.to_string());
                tmux.run(&["resize-window", "-t", "view", "-x", &x, "-y", &y]);
                std::thread::sleep(Duration::from_millis(1500));
                let screen = tmux.screen();
                if screen.iter().any(|l| l.starts_with("EXIT=")) {
                    break;
                }
                assert_eq!(screen.len(), rows);
                assert_clean_view(&screen, cols);
            }
        }
    };
    assert!(resized && headers_seen > 0, "the view never showed");
    assert_eq!(finished, "EXIT=0 JQ=0", "{:#?}", tmux.history());

    // Everything the terminal showed fits 80 columns, and the summary is readable.
    let history = tmux.history();
    assert!(wider_than(&history, 80).is_empty(), "{history:#?}");
    let text = history.join("\n");
    assert!(text.contains("32 of 32 builders succeeded"), "{text}");
    let table: Vec<&String> = history
        .iter()
        .filter(|l| l.split_whitespace().nth(1) == Some("ok"))
        .collect();
    assert_eq!(table.len(), 32, "{text}");
    assert!(table.iter().all(|l| l.contains(":ami-")), "{text}");

    // `--json`: one document on stdout, through jq, with every builder and its AMI.
    let doc: Value = serde_json::from_str(&repo.read("pretty.json")).unwrap();
    assert_eq!(doc["command"], "publish");
    assert_eq!(doc["ok"], true);
    let builders = doc["run"]["builders"].as_object().unwrap();
    assert_eq!(builders.len(), 32, "{doc:#}");
    for (name, builder) in builders {
        let id = builder["amis"][0]["id"].as_str().unwrap_or_default();
        assert!(id.starts_with("ami-"), "{name}: {builder}");
        assert!(text.contains(id), "the summary on the terminal lists {id}");
    }
    assert_eq!(doc["amis"].as_array().unwrap().len(), 32);
    assert_eq!(doc["failed"], serde_json::json!([]));
    assert!(doc["registry_changes"].as_array().unwrap().len() >= 32);
}
