//! The READMEs can be followed on a fresh clone, top to bottom: every command example in
//! `README.md` and then `build/README.md` runs, in order, in a real `git clone` of the
//! repository's tracked files, and the output each example shows is checked against what it
//! printed.
//!
//! The examples are read from the Markdown's fenced blocks, so changing an example changes this
//! test. In a block with `$ ` prompts, each prompt line is a command and the lines below it the
//! output it shows (`...` stands for any lines in between); in a block without prompts, every
//! line that is not a `#` comment is a command. An example that needs a real AWS account is
//! skipped only when the README says so where readers see it: `# needs AWS` at the end of its
//! line, or a comment line starting with `# needs AWS` that marks the rest of its block. Any other
//! example this test cannot run fails it, so a new example cannot go untested unnoticed. An
//! example that exits with another code than 0 says so where readers see it: `# exit 1: why`
//! at the start of its comment.
//!
//! The clones keep only the matrix rows of the test region (`us-east-1`): a local publish or
//! release builds 4 images instead of 32, and what the READMEs show is the same. The lifecycle
//! section (test build to retirement) runs in a test of its own, on a clone of its own: its two
//! releases and four retire steps would otherwise lengthen the one walkthrough.

use crate::common;

use common::{git_in, Repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The READMEs, in the order a newcomer follows them.
const FILES: [&str; 2] = ["README.md", "build/README.md"];

/// Never run here: each runs the whole test suite, which includes this test, so it would recurse.
const RECURSIVE: [&str; 2] = ["bash .ci/run", "cargo test --workspace"];

/// The mark of an example that needs a real AWS account (and so is not run here).
const NEEDS_AWS: &str = "# needs AWS";

/// The mark of an example's exit code when it is not 0: `# exit 1: why`.
const EXIT_MARK: &str = "# exit ";

/// The `## ` heading of the section `lifecycle_section_runs_on_a_fresh_clone_in_order` runs.
const LIFECYCLE: &str = "An image's life";

#[derive(Debug)]
struct Example {
    /// `FILE:LINE`, for messages.
    place: String,
    command: String,
    needs_aws: bool,
    /// The exit code the text gives it (`# exit 1: ...`), else 0.
    exit_code: i32,
    /// The `## ` heading it is under.
    section: String,
    /// The output the text shows below a `$ ` prompt (empty when none).
    shown: Vec<String>,
}

/// Every fenced block of `markdown`: the `## ` heading it is under, the number of its first
/// line and its lines.
fn fenced_blocks(file: &str, markdown: &str) -> Vec<(String, usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut open: Option<(String, usize, Vec<String>)> = None;
    for (index, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            match open.take() {
                Some(block) => blocks.push(block),
                None => open = Some((section.clone(), index + 2, Vec::new())),
            }
        } else if let Some((_, _, lines)) = &mut open {
            lines.push(line.to_string());
        } else if let Some(heading) = line.strip_prefix("## ") {
            section = heading.to_string();
        }
    }
    assert!(open.is_none(), "`{file}`: a fenced block is never closed");
    blocks
}

/// The examples of `markdown`, in order.
fn examples(file: &str, markdown: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    for (section, first_line, lines) in fenced_blocks(file, markdown) {
        let transcript = lines.iter().any(|l| l.starts_with("$ "));
        let mut block_needs_aws = false;
        for (offset, line) in lines.iter().enumerate() {
            let command_line = if transcript {
                match line.strip_prefix("$ ") {
                    Some(command) => command,
                    None => {
                        if let Some(example) = examples.last_mut() {
                            example.shown.push(line.clone());
                        }
                        continue;
                    }
                }
            } else if line.trim().is_empty() {
                continue;
            } else if line.trim_start().starts_with('#') {
                block_needs_aws |= line.trim_start().starts_with(NEEDS_AWS);
                continue;
            } else {
                line
            };
            let (command, comment) = split_comment(command_line);
            examples.push(Example {
                place: format!("{file}:{}", first_line + offset),
                command: command.to_string(),
                needs_aws: block_needs_aws || comment.contains(NEEDS_AWS),
                exit_code: exit_mark(comment),
                section: section.clone(),
                shown: Vec::new(),
            });
        }
    }
    for example in &mut examples {
        while example.shown.last().is_some_and(|l| l.trim().is_empty()) {
            example.shown.pop();
        }
    }
    examples
}

/// The exit code a comment gives (`# exit 1: why`), else 0.
fn exit_mark(comment: &str) -> i32 {
    comment
        .strip_prefix(EXIT_MARK)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A command line and its trailing `# comment` (as `sh` reads it: a `#` that starts a word,
/// outside quotes).
fn split_comment(line: &str) -> (&str, &str) {
    let mut quote = None;
    let mut previous = ' ';
    for (index, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => {
                return (line[..index].trim(), &line[index..]);
            }
            None => {}
        }
        previous = c;
    }
    (line.trim(), "")
}

/// What to do with an example: `Ok(None)` run it, `Ok(Some(why))` skip it, `Err(why)` fail.
fn plan(example: &Example) -> Result<Option<&'static str>, String> {
    let command = example.command.as_str();
    if RECURSIVE.contains(&command) {
        return Ok(Some("it runs the whole test suite, this test included"));
    }
    if example.needs_aws {
        if command.split_whitespace().any(|word| word == "--local") {
            return Err(format!(
                "{}: `{command}` is marked `{NEEDS_AWS}` but runs against the local stand-in \
                 (`--local`): remove the mark so the test runs it",
                example.place
            ));
        }
        return Ok(Some("needs AWS"));
    }
    // After any `NAME=value` assignments, the program: what a newcomer would type.
    let mut words = command.split_whitespace().skip_while(|word| {
        word.split_once('=')
            .is_some_and(|(name, _)| is_env_name(name))
    });
    match (words.next(), words.next()) {
        (Some("cargo"), Some("xtask")) | (Some("git" | "bash" | "echo"), _) => Ok(None),
        _ => Err(format!(
            "{}: `{command}` is not an example this test can run (it runs `cargo xtask`, `git`, \
             `bash` and `echo` lines): mark it `{NEEDS_AWS}` if it needs AWS, or teach \
             `xtask/tests/it/readme.rs` to run it",
            example.place
        )),
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The first shown line (with its neighbours' context) that the output lacks, or `None` when
/// every shown line is there. Lines shown one after another must be printed one after another;
/// a `...` line stands for any lines. Whitespace runs count as one space, and what differs from
/// run to run (AWS ids, times, run ids, durations, pids) is masked on both sides.
fn missing_shown_line(shown: &[String], output: &str) -> Option<String> {
    let printed: Vec<String> = output.lines().map(normalize).collect();
    let mut from = 0;
    for group in shown.split(|line| line.trim() == "...") {
        let group: Vec<String> = group.iter().map(|l| normalize(l)).collect();
        if group.is_empty() {
            continue;
        }
        let found = (from..=printed.len().saturating_sub(group.len()))
            .find(|&start| printed[start..].starts_with(&group));
        match found {
            Some(start) => from = start + group.len(),
            None => {
                // Name the first line of the group that is not printed at all, if any.
                let missing = group
                    .iter()
                    .find(|line| !printed[from..].contains(line))
                    .unwrap_or(&group[0]);
                return Some(missing.clone());
            }
        }
    }
    None
}

/// One line with whitespace runs as one space and the parts that change from run to run masked.
fn normalize(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut masked = Vec::new();
    for (index, word) in words.iter().enumerate() {
        let after_pid = index > 0 && words[index - 1].trim_start_matches('(') == "pid";
        masked.push(if after_pid {
            mask_leading_digits(word)
        } else if is_commit_id(word) {
            "COMMIT".to_string()
        } else {
            mask_word(word)
        });
    }
    masked.join(" ")
}

/// A commit id as git and the tool abbreviate it: 7 to 40 hex digits with a digit among them
/// (so English words like `effaced` stay), or of the tool's length, 10, or a whole id, 40, with
/// or without one (one 10-digit id in 180 has no digit).
fn is_commit_id(word: &str) -> bool {
    (7..=40).contains(&word.len())
        && word.chars().all(|c| c.is_ascii_hexdigit())
        && (word.chars().any(|c| c.is_ascii_digit()) || [10, 40].contains(&word.len()))
}

fn mask_leading_digits(word: &str) -> String {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("N{rest}")
}

/// The AWS resource ids the tool prints: `ami-0123abcd...`, `snap-...`, ...
const AWS_ID_PREFIXES: [&str; 6] = ["ami", "snap", "vol", "i", "sg", "key"];

/// Masks AWS ids (`ami-0123abcd...`), dates, times and run ids (`20261129-185705`, `18:57:05`)
/// and durations (`12.3s`, `52ms`) in one word.
fn mask_word(word: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_word = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if c.is_ascii_alphabetic() && starts_word {
            let prefix: String = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            let after = i + prefix.len();
            let hex = chars[(after + 1).min(chars.len())..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if AWS_ID_PREFIXES.contains(&prefix.as_str())
                && chars.get(after) == Some(&'-')
                && hex >= 8
            {
                out.push_str(&prefix);
                out.push_str("-ID");
                i = after + 1 + hex;
                continue;
            }
        }
        if c.is_ascii_digit() && starts_word {
            let end = (i..chars.len())
                .find(|&j| !(chars[j].is_ascii_digit() || ":-.".contains(chars[j])))
                .unwrap_or(chars.len());
            let number: String = chars[i..end].iter().collect();
            let unit: String = chars[end..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            if number.contains([':', '-']) {
                // An ISO time (`2026-11-30T21:54:08.000Z`) is one time, its hour included.
                let mut end = end;
                if chars.get(end) == Some(&'T')
                    && chars.get(end + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    end = (end + 1..chars.len())
                        .find(|&j| !(chars[j].is_ascii_digit() || ":.".contains(chars[j])))
                        .unwrap_or(chars.len());
                }
                out.push('T');
                i = end;
                continue;
            }
            if unit == "s" || unit == "ms" {
                out.push('D');
                i = end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A folder under the temporary folder for this test run, empty.
fn scratch(name: &str) -> PathBuf {
    // Two walkthroughs run at once in one test process: each its own folders.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nth = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let root = std::env::temp_dir().join(format!(
        "xtask-test-readme-{name}-{}-{nth}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// A repository of the tracked files of this one (as they are in the worktree) with one commit on
/// `main`, and a `git clone` of it: what a newcomer starts from. `adapt` may change the files
/// before they are committed.
fn fresh_clone(adapt: impl FnOnce(&Repo)) -> (Repo, Repo) {
    let source = common::source_root();
    let origin = Repo {
        root: scratch("origin"),
    };
    std::fs::create_dir_all(origin.home()).unwrap();
    let tracked = git_in(&source, &origin.home(), &["ls-files", "-z"]);
    for file in tracked.split('\0').filter(|f| !f.is_empty()) {
        let from = source.join(file);
        if from.is_file() {
            let to = origin.path(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
    adapt(&origin);
    origin.git_init("main");
    let clone = Repo {
        root: scratch("clone"),
    };
    let _ = std::fs::remove_dir_all(&clone.root);
    git_in(
        &origin.root,
        &origin.home(),
        &["clone", "--quiet", ".", clone.root.to_str().unwrap()],
    );
    std::fs::create_dir_all(clone.home()).unwrap();
    std::fs::copy(
        origin.home().join(".gitconfig"),
        clone.home().join(".gitconfig"),
    )
    .unwrap();
    (origin, clone)
}

/// A folder with a `cargo` that runs `cargo xtask ARGS` as the built binary: the clone has no
/// build of its own, and building the workspace again there would only test cargo.
fn cargo_shim(clone: &Repo) -> PathBuf {
    let bin = clone.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         [ \"$1\" = xtask ] || {{ echo \"the README test runs only \\`cargo xtask\\`, not \\`cargo $*\\`\" >&2; exit 127; }}\n\
         shift\n\
         exec '{}' \"$@\"\n",
        env!("CARGO_BIN_EXE_xtask")
    );
    let path = bin.join("cargo");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs one example with `sh` in the clone, as typed at a prompt there (no terminal, no AWS
/// credentials, git configured only by the test's home); returns its exit code and output.
fn run(clone: &Repo, shim: &Path, command: &str) -> (i32, String) {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(command)
        .current_dir(&clone.root)
        .stdin(Stdio::null())
        .env(
            "PATH",
            format!(
                "{}:{}",
                shim.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("XTASK_STANDIN_VENV", common::standin_venv())
        .env_remove("SOURCE_DATE_EPOCH");
    for name in [
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "SESSION_TOKEN",
        "PROFILE",
    ] {
        sh.env_remove(format!("AWS_{name}"));
    }
    common::isolate_git(&mut sh, &clone.home());
    let output = sh.output().expect("sh runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Runs `example` in the clone and checks it exited as the text says and printed what it shows.
fn follow(clone: &Repo, shim: &Path, example: &Example) -> Duration {
    let started = Instant::now();
    let (code, output) = run(clone, shim, &example.command);
    let took = started.elapsed();
    assert!(
        code == example.exit_code,
        "{}: `{}` exited with {code} on a fresh clone, not {} (if it needs a real AWS account, \
         mark it `{NEEDS_AWS}` in the README; another exit code, `{EXIT_MARK}N: why`):\n{output}",
        example.place,
        example.command,
        example.exit_code
    );
    if let Some(line) = missing_shown_line(&example.shown, &output) {
        panic!(
            "{}: `{}` did not print what the README shows; no line like\n  {line}\n\
             (normalized; it printed:)\n{output}",
            example.place, example.command
        );
    }
    took
}

/// Every example of the READMEs, in order.
fn all_examples() -> Vec<Example> {
    let source = common::source_root();
    FILES
        .iter()
        .flat_map(|file| examples(file, &std::fs::read_to_string(source.join(file)).unwrap()))
        .collect()
}

/// Runs `examples` in order in a fresh clone (`adapt` changes its files first) and prints the
/// time each took.
fn walk(examples: &[&Example], adapt: impl FnOnce(&Repo)) {
    common::require(&common::PREREQUISITES);
    common::require(&["jq"]);
    let plans: Vec<Option<&str>> = examples
        .iter()
        .map(|example| plan(example).unwrap_or_else(|why| panic!("{why}")))
        .collect();
    let (_origin, clone) = fresh_clone(adapt);
    let shim = cargo_shim(&clone);
    let started = Instant::now();
    let mut report = Vec::new();
    for (example, skip) in examples.iter().zip(&plans) {
        let line = match skip {
            Some(why) => format!("skipped ({why})"),
            None => format!("{:.1} s", follow(&clone, &shim, example).as_secs_f64()),
        };
        report.push(format!(
            "  {:<22} {line:<14} {}",
            example.place, example.command
        ));
    }
    let ran = plans.iter().filter(|p| p.is_none()).count();
    eprintln!(
        "ran {ran} of {} README examples in {:.1} s:\n{}",
        examples.len(),
        started.elapsed().as_secs_f64(),
        report.join("\n")
    );
    assert!(ran > 0, "no runnable example found in {FILES:?}");
}

/// The matrix of the clones: only the rows of `us-east-1`, the test region (4 builders a
/// publish or release instead of 32, one region to search). No example shows a count that
/// depends on it: the test region's 4 builders are the same either way.
fn us_east_1_only(origin: &Repo) {
    let mut matrix: serde_json::Value =
        serde_json::from_str(&origin.read("build/images.json")).unwrap();
    matrix["images"]
        .as_array_mut()
        .unwrap()
        .retain(|row| row["region"] == "us-east-1");
    origin.write(
        "build/images.json",
        &(serde_json::to_string_pretty(&matrix).unwrap() + "\n"),
    );
}

#[test]
fn every_readme_example_runs_on_a_fresh_clone_in_order() {
    let all = all_examples();
    let outside: Vec<&Example> = all
        .iter()
        .filter(|e| !e.section.starts_with(LIFECYCLE))
        .collect();
    walk(&outside, us_east_1_only);
}

/// The lifecycle section, from `local up` to `local down`, on a clone of its own.
#[test]
fn lifecycle_section_runs_on_a_fresh_clone_in_order() {
    let all = all_examples();
    let section: Vec<&Example> = all
        .iter()
        .filter(|e| e.section.starts_with(LIFECYCLE))
        .collect();
    assert!(
        section.first().is_some_and(|e| e.command == "cargo xtask local up")
            && section.last().is_some_and(|e| e.command == "cargo xtask local down"),
        "the section `{LIFECYCLE}` starts with `cargo xtask local up` and ends with `cargo xtask local down`: {section:#?}"
    );
    walk(&section, us_east_1_only);
}

/// The parsing and matching rules, each shown able to fail.
mod rules {
    use super::*;

    const MARKDOWN: &str = "Text `cargo xtask inline`.\n\
        ```\n\
        cargo xtask test-ebs --local   # four images\n\
        \n\
        cargo xtask publish            # needs AWS\n\
        ```\n\
        ```\n\
        $ cargo xtask doctor\n\
        ok  packer\n\
        ...\n\
        ready\n\
        \n\
        $ git status\n\
        ```\n\
        ```\n\
        # needs AWS: the real thing\n\
        cargo xtask release 2.6.4 --push\n\
        ```\n";

    #[test]
    fn examples_are_read_from_fenced_blocks_with_their_marks_and_shown_output() {
        let found = examples("R.md", MARKDOWN);
        let summary: Vec<(&str, &str, bool, usize)> = found
            .iter()
            .map(|e| {
                (
                    e.place.as_str(),
                    e.command.as_str(),
                    e.needs_aws,
                    e.shown.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("R.md:3", "cargo xtask test-ebs --local", false, 0),
                ("R.md:5", "cargo xtask publish", true, 0),
                ("R.md:8", "cargo xtask doctor", false, 3),
                ("R.md:13", "git status", false, 0),
                ("R.md:17", "cargo xtask release 2.6.4 --push", true, 0),
            ]
        );
    }

    fn example(command: &str, needs_aws: bool) -> Example {
        Example {
            place: "R.md:1".into(),
            command: command.into(),
            needs_aws,
            exit_code: 0,
            section: String::new(),
            shown: Vec::new(),
        }
    }

    #[test]
    fn examples_know_their_section_and_the_exit_code_their_comment_gives() {
        let markdown = "## Start\n```\ncargo xtask doctor\n```\n## An image's life: x\n\
            ```\n$ cargo xtask retire 2.6.5 --local   # exit 1: the cooldown\nerror: wait\n\
            $ cargo xtask audit --local   # exit code below\n```\n";
        let read = examples("R.md", markdown);
        let found: Vec<(&str, i32, &str)> = read
            .iter()
            .map(|e| (e.section.as_str(), e.exit_code, e.command.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("Start", 0, "cargo xtask doctor"),
                ("An image's life: x", 1, "cargo xtask retire 2.6.5 --local"),
                ("An image's life: x", 0, "cargo xtask audit --local"),
            ]
        );
    }

    #[test]
    fn an_unmarked_example_it_cannot_run_and_a_wrongly_marked_one_fail() {
        let unknown = plan(&example("aws s3 ls", false)).unwrap_err();
        assert!(
            unknown.contains("`aws s3 ls` is not an example this test can run"),
            "{unknown}"
        );
        let cargo_other = plan(&example("cargo build", false)).unwrap_err();
        assert!(
            cargo_other.contains("mark it `# needs AWS`"),
            "{cargo_other}"
        );
        let local = plan(&example("cargo xtask audit --local", true)).unwrap_err();
        assert!(
            local.contains("is marked `# needs AWS` but runs against"),
            "{local}"
        );
        assert_eq!(
            plan(&example("cargo xtask audit", true)),
            Ok(Some("needs AWS"))
        );
        assert_eq!(
            plan(&example("X_Y=1 cargo xtask publish --local", false)),
            Ok(None)
        );
        assert!(plan(&example("cargo test --workspace", false))
            .unwrap()
            .is_some());
    }

    #[test]
    fn shown_output_must_be_printed_in_order_with_ids_and_times_masked() {
        let output = "plan\n  \"id\": \"ami-a94010c0dea25e5d9\",\n  \"ok\": true\nrun `publish-20261129-185705` took 12.3s (pid 3791)\nend\n";
        let shown = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let same = shown(&["\"id\": \"ami-0123456789abcdef0\",", "  \"ok\":   true"]);
        assert_eq!(missing_shown_line(&same, output), None);
        let masked = shown(&[
            "...",
            "run `publish-20260101-000000` took 1.0s (pid 1)",
            "...",
            "end",
        ]);
        assert_eq!(missing_shown_line(&masked, output), None);
        // Not consecutive without `...`, out of order, or simply absent: each is named.
        let gap = shown(&["plan", "\"ok\": true"]);
        assert_eq!(missing_shown_line(&gap, output), Some("plan".into()));
        let order = shown(&["end", "...", "plan"]);
        assert_eq!(missing_shown_line(&order, output), Some("plan".into()));
        let absent = shown(&["\"ok\": false"]);
        assert_eq!(
            missing_shown_line(&absent, output),
            Some("\"ok\": false".into())
        );
        // ISO times, the hour included.
        let iso = shown(&["kept until 2026-11-30T21:54:08.000Z (24-hour cooldown)"]);
        assert_eq!(
            missing_shown_line(
                &iso,
                "kept until 2026-12-01T09:07:06.000Z (24-hour cooldown)\n"
            ),
            None
        );
        // Commit ids differ from clone to clone; a count of 7 digits would too.
        let commit = shown(&["committed 0123456789 \"Retire\""]);
        assert_eq!(
            missing_shown_line(&commit, "committed fa8f6d9484 \"Retire\"\n"),
            None
        );
        assert_eq!(
            missing_shown_line(&commit, "committed fa8f6d9484 \"Release\"\n"),
            Some("committed COMMIT \"Retire\"".into())
        );
        // One commit id in 180 has no digit among its 10; an English word of hex letters stays.
        assert_eq!(
            missing_shown_line(&commit, "committed dbfbbcdccc \"Retire\"\n"),
            None
        );
        let word = shown(&["it was effaced"]);
        assert_eq!(
            missing_shown_line(&word, "it was defaced\n"),
            Some("it was effaced".into())
        );
        // Counts are what the text claims: they are not masked.
        let count = shown(&["found 4 AMI(s)"]);
        assert_eq!(
            missing_shown_line(&count, "found 3 AMI(s)\n"),
            Some("found 4 AMI(s)".into())
        );
    }
}
