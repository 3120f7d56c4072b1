//! Issue 10, item 8: odd input is refused with a clear message, changes nothing (byte for byte)
//! and never echoes a secret. Driven through the built binary in temporary copies of the repo.

use crate::common;

use common::{data, Repo, Run, RunExt};
use std::process::Stdio;

/// A secret as a user would have it in `build/local.json`.
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";
const ACCESS: &str = "AKIAIOSFODNN7SECRETX";

#[track_caller]
fn assert_no_secret(run: &Run) {
    for secret in [SECRET, ACCESS, "SECRETKEY", "SECRETX"] {
        assert!(
            !run.all().contains(secret),
            "a secret was printed:\n{run:#?}"
        );
    }
}

#[track_caller]
fn assert_clean_refusal(run: &Run) {
    let all = run.all();
    assert!(
        !all.contains("panicked") && !all.contains("Traceback"),
        "{run:#?}"
    );
}

#[test]
fn a_key_twice_in_any_json_is_refused_naming_it() {
    let repo = Repo::new("dup-keys");
    let log = data("packer-1.6.6-ebs-success.log");

    // `ami_ids.json` with `us-east-1` twice: a plain JSON reader would drop the first copy.
    let registry = repo.read("ami_ids.json");
    let twice = registry.replacen(
        "{\n",
        "{\n    \"us-east-1\": [\n        {\n            \"Distributor ID\": \"Ubuntu\",\n            \
         \"Release\": \"1204\",\n            \"id\": \"ami-12345678\",\n            \
         \"virtualization type\": \"pv\"\n        }\n    ],\n",
        1,
    );
    repo.write("ami_ids.json", &twice);
    let line = twice
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\"us-east-1\""))
        .nth(1)
        .unwrap()
        .0
        + 1;
    let before = repo.snapshot();
    let run = repo.xtask(&["ami-ids", &log]).fails(
        2,
        &[
            "`ami_ids.json` is not a valid registry",
            &format!("line {line}, column"),
            "duplicate key `us-east-1` in the top-level object",
            "remove one, or merge the two",
        ],
    );
    assert_clean_refusal(&run);
    // A merge through another registry path names that file.
    std::fs::copy(repo.path("ami_ids.json"), repo.path("other.json")).unwrap();
    let before_other = repo.snapshot();
    repo.xtask(&["ami-ids", &log, "--registry", "other.json"])
        .fails(2, &["`other.json` is not a valid registry", "`us-east-1`"]);
    assert_eq!(before_other, repo.snapshot());
    std::fs::remove_file(repo.path("other.json")).unwrap();
    assert_eq!(before, repo.snapshot());
    repo.write("ami_ids.json", &registry);

    // The image matrix: every command reads it first.
    let matrix = repo.read("build/images.json");
    repo.write(
        "build/images.json",
        &matrix.replacen(
            "\"public\": true,",
            "\"public\": true,\n        \"public\": false,",
            1,
        ),
    );
    let before = repo.snapshot();
    for args in [
        &["config", "official"][..],
        &["set-version", "2.6.4"][..],
        &["publish", "--local", "--yes"][..],
    ] {
        let run = repo.xtask(args).fails(
            2,
            &[
                "`build/images.json`",
                "line 9,",
                "duplicate key `public` in `settings`",
            ],
        );
        assert_clean_refusal(&run);
    }
    assert_eq!(before, repo.snapshot());
    repo.write("build/images.json", &matrix);

    // A Packer manifest with a builder's name twice.
    repo.write(
        "manifest.json",
        "{\"builds\": [\n  {\"name\": \"sa-east-1-1204-pv\",\n   \"name\": \"us-east-1-1204-pv\", \
         \"artifact_id\": \"sa-east-1:ami-11111111\"}\n]}\n",
    );
    let before = repo.snapshot();
    repo.xtask(&["ami-ids", "manifest.json"]).fails(
        2,
        &[
            "`manifest.json` is not a Packer manifest: line 3,",
            "duplicate key `name` in `builds[0]`",
        ],
    );
    assert_eq!(before, repo.snapshot());

    // A run record.
    repo.write(
        "build/runs/official-local-20260101-000000/run.json",
        "{\"run_id\": \"official-local-20260101-000000\",\n \"run_id\": \"x\"}\n",
    );
    let before = repo.snapshot();
    repo.xtask(&[
        "publish",
        "--local",
        "--yes",
        "--resume",
        "official-local-20260101-000000",
    ])
    .fails(
        2,
        &["run.json` is damaged", "line 2,", "duplicate key `run_id`"],
    );
    assert_eq!(before, repo.snapshot());
}

#[test]
fn local_json_errors_never_echo_a_secret() {
    let repo = Repo::new("local-json");
    repo.git_init("2.6");
    let cases = [
        // A bare string: serde's own message would quote it.
        (
            format!("\"{SECRET}\""),
            "holds a string, not a JSON object of variables",
        ),
        (
            format!("[\"{ACCESS}\", \"{SECRET}\"]"),
            "holds an array, not a JSON object",
        ),
        (
            format!("{{\"aws_access_key\": \"{ACCESS}\", \"aws_secret_key\": [\"{SECRET}\"]}}"),
            "field `aws_secret_key` holds an array, not a string",
        ),
        (
            format!(
                "{{\"aws_access_key\": \"{ACCESS}\",\n \"aws_secret_key\": \"{SECRET}\" \"x\"}}"
            ),
            "line 2, column",
        ),
        (
            format!("{{\"aws_secret_key\": \"{SECRET}\",\n \"aws_secret_key\": \"{SECRET}2\"}}"),
            "duplicate key `aws_secret_key`",
        ),
        // A secret pasted as a key is never named.
        (
            format!("{{\"{ACCESS}\": \"\",\n \"{ACCESS}\": \"\"}}"),
            "line 2, column",
        ),
        (
            format!("{{\"{SECRET}\": 7}}"),
            "a field whose name is not a variable name",
        ),
    ];
    for (text, needle) in &cases {
        repo.write("build/local.json", text);
        let before = repo.snapshot();
        for args in [
            &["test-ebs"][..],
            &["publish", "--yes"][..],
            &["cleanup", "--kind", "test-ebs"][..],
            &["release", "2.6.4", "--dry-run"][..],
        ] {
            let run = repo.xtask(args).fails(2, &["`build/local.json`", needle]);
            assert_no_secret(&run);
            assert_clean_refusal(&run);
        }
        assert_eq!(before, repo.snapshot());
    }
}

#[test]
fn branch_names_follow_git_rules() {
    let repo = Repo::new("branch-names");
    let ds0 = repo.read("ds0_utils.py");
    let git_accepts = |name: &str| {
        std::process::Command::new("git")
            .args(["check-ref-format", "--branch", name])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
            .status
            .success()
    };
    let before = repo.snapshot();
    let refused = [
        ("2.6.lock", "its part `2.6.lock` ends with `.lock`"),
        ("a//b", "contains `//`"),
        ("a/.b", "its part `.b` starts with `.`"),
        ("..", "contains `..`"),
        ("a..b", "contains `..`"),
        ("x@{1}", "contains `@{`"),
        ("a\u{1b}[31mred", "the control character `\\u{1b}`"),
        ("a b", "a space"),
        ("a~1", "contains `~`"),
        ("a:b", "contains `:`"),
        ("a/", "ends with `/`"),
        ("/a", "starts with `/`"),
        ("a.", "ends with `.`"),
        ("-a", "starts with `-`"),
        ("HEAD", "`HEAD`"),
    ];
    for (name, rule) in refused {
        assert!(!git_accepts(name), "git accepts {name:?}");
        let run = repo
            .xtask(&["set-version", "2.6.4", &format!("--branch={name}")])
            .fails(
                2,
                &[
                    "is not a valid git branch name",
                    rule,
                    "git help check-ref-format",
                ],
            );
        assert!(
            !run.stderr.contains('\u{1b}'),
            "a control character was printed"
        );
    }
    // Names git allows but this project keeps out of `ds0_utils.py` and image tags.
    for name in ["a+b", "a@b", "é"] {
        assert!(git_accepts(name), "git refuses {name:?}");
        repo.xtask(&["set-version", "2.6.4", "--branch", name])
            .fails(2, &["git allows it, but this project's branch names"]);
    }
    assert_eq!(before, repo.snapshot());
    for name in ["2.6", "dev/2.6", "release-2.6_x", "a.lock.b"] {
        assert!(git_accepts(name), "git refuses {name:?}");
        repo.xtask(&["set-version", "2.6.4", "--branch", name]).ok();
        assert!(repo.read("ds0_utils.py").contains(&format!("\"{name}\"")));
        repo.write("ds0_utils.py", &ds0);
    }
}

#[test]
fn symlinks_are_edited_through() {
    let repo = Repo::new("symlinks");
    for file in ["ds0_utils.py", "ami_ids.json"] {
        std::fs::create_dir_all(repo.path("shared")).unwrap();
        std::fs::rename(repo.path(file), repo.path(&format!("shared/{file}"))).unwrap();
        std::os::unix::fs::symlink(format!("shared/{file}"), repo.path(file)).unwrap();
    }
    repo.xtask(&["set-version", "2.6.4"]).ok();
    repo.xtask(&["ami-ids", &data("packer-1.6.6-ebs-success.log")])
        .ok();
    for file in ["ds0_utils.py", "ami_ids.json"] {
        let meta = std::fs::symlink_metadata(repo.path(file)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "`{file}` is no longer a link"
        );
    }
    assert!(
        repo.read("shared/ds0_utils.py").contains("'2.6.4'")
            || repo.read("shared/ds0_utils.py").contains("\"2.6.4\"")
    );
    assert!(repo
        .read("shared/ami_ids.json")
        .contains("ami-d0a24dc52b7332642"));
    // No temporary file is left beside the link or the target.
    for dir in [".", "shared"] {
        for entry in std::fs::read_dir(repo.path(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "left behind: {dir}/{name}");
        }
    }

    // A link that leads nowhere is refused, naming it, and stays as it was.
    std::os::unix::fs::symlink("missing/t.json", repo.path("t.json")).unwrap();
    repo.xtask(&["config", "official", "--out", "t.json"])
        .fails(
            2,
            &["`t.json` is a symbolic link to `missing/t.json`, which cannot be followed"],
        );
    assert_eq!(
        std::fs::read_link(repo.path("t.json")).unwrap(),
        std::path::Path::new("missing/t.json")
    );
}

#[test]
fn regions_outside_settings_are_refused() {
    let repo = Repo::new("regions");
    let matrix = repo.read("build/images.json");

    // A region typo in the matrix is refused before any stand-in starts.
    repo.write(
        "build/images.json",
        &matrix.replacen("\"region\": \"us-east-1\"", "\"region\": \"us-fake-9\"", 1),
    );
    let before = repo.snapshot();
    for args in [
        &["config", "official"][..],
        &["publish", "--local", "--yes"][..],
    ] {
        let run = repo.xtask(args).fails(
            2,
            &[
                "field `region`: `us-fake-9` is not one of the regions this project publishes to",
                "`settings.regions` in `build/images.json`",
                "add `us-fake-9` to `settings.regions`",
            ],
        );
        assert_clean_refusal(&run);
    }
    assert_eq!(before, repo.snapshot());
    assert!(!repo.path("target/standin").exists());
    repo.write("build/images.json", &matrix);

    // An AMI in an unknown region, from a log or a manifest, is never merged.
    let log = std::fs::read_to_string(data("packer-1.6.6-ebs-success.log"))
        .unwrap()
        .replace("us-east-1:ami-", "xx-fake-9:ami-");
    repo.write("fake.log", &log);
    repo.write(
        "manifest.json",
        "{\"builds\": [{\"name\": \"sa-east-1-1204-pv\", \
         \"artifact_id\": \"sa-east-1:ami-11111111,xx-fake-9:ami-22222222\"}]}",
    );
    let before = repo.snapshot();
    for file in ["fake.log", "manifest.json"] {
        repo.xtask(&["ami-ids", file]).fails(
            2,
            &[
                &format!("`{file}` cannot be merged"),
                "of builder `",
                "`xx-fake-9` is not one of the regions this project publishes to",
            ],
        );
    }
    // Nor is a region to search for leftovers.
    repo.xtask(&[
        "cleanup",
        "--kind",
        "test-ebs",
        "--region",
        "us-east-1,xx-fake-9",
    ])
    .fails(
        2,
        &["`--region xx-fake-9` is refused", "`settings.regions`"],
    );
    // base-images refuses a region it has no row for, a row it already has, and a name AWS
    // would not know, each with its fix, before asking anything.
    for (args, needles) in [
        (
            &["base-images", "--region", "bogus-1"][..],
            &[
                "no row of `build/images.json` is in region `bogus-1`",
                "fix: name one of",
            ][..],
        ),
        (
            &["base-images", "--add-region", "us-east-1"][..],
            &[
                "already has rows in `us-east-1`",
                "fix: refresh them with `--region us-east-1`",
            ][..],
        ),
        (
            &["base-images", "--add-region", "Not A Region"][..],
            &[
                "is not an AWS region name",
                "fix: give a region as AWS names it",
            ][..],
        ),
    ] {
        repo.xtask(args).fails(2, needles);
    }
    // A known region in capitals is named as it is spelled, not offered as a new region.
    let shouted = repo
        .xtask(&["cleanup", "--kind", "test-ebs", "--region", "EU-WEST-1"])
        .fails(
            2,
            &["fix: region names are lower-case: `--region eu-west-1`"],
        );
    assert!(!shouted.all().contains("add `EU-WEST-1`"), "{shouted:#?}");
    assert_eq!(before, repo.snapshot());
}

#[test]
fn a_closed_stdout_or_stderr_never_panics() {
    let repo = Repo::new("pipes");
    // `cargo xtask config test-ebs 2>&1 | head -1` with an invalid matrix, `head` gone already.
    let matrix = repo.read("build/images.json");
    repo.write(
        "build/images.json",
        &matrix.replace("\"region\": \"us-east-1\"", "\"region\": \"us-fake-9\""),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = repo
        .command_in(".", &["config", "test-ebs"])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "the refusal's own exit code");
    repo.write("build/images.json", &matrix);

    // A successful command whose reader left: the work is done, the exit code is its own.
    for args in [
        &["config", "official"][..],
        &["help"][..],
        &["ami-ids", &data("packer-1.6.6-ebs-success.log")][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let run = repo.command_in(".", args).stdout(writer).run();
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        assert_clean_refusal(&run);
    }
    assert!(repo.read("ami_ids.json").contains("ami-d0a24dc52b7332642"));

    // Any other failure to write the output is reported, not hidden: exit 1.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let run = repo
        .command_in(".", &["config", "official"])
        .stdout(Stdio::from(full))
        .run();
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("error: cannot write the output"),
        "{run:#?}"
    );
}

#[test]
fn a_release_commits_the_target_of_a_symlinked_file() {
    let repo = Repo::new("symlink-release");
    common::small_matrix(&repo);
    std::fs::create_dir_all(repo.path("shared")).unwrap();
    std::fs::rename(repo.path("ds0_utils.py"), repo.path("shared/ds0_utils.py")).unwrap();
    std::os::unix::fs::symlink("shared/ds0_utils.py", repo.path("ds0_utils.py")).unwrap();
    repo.git_init("2.6");

    // A link out of the repository cannot be committed: refused before anything starts.
    let outside = repo.root.with_extension("outside.json");
    std::fs::copy(repo.path("ami_ids.json"), &outside).unwrap();
    std::fs::remove_file(repo.path("ami_ids.json")).unwrap();
    std::os::unix::fs::symlink(&outside, repo.path("ami_ids.json")).unwrap();
    let before = repo.snapshot();
    repo.xtask(&["release", "2.6.9", "--dry-run"]).fails(
        2,
        &[
            "`ami_ids.json` is a symbolic link to",
            "outside the repository",
        ],
    );
    assert_eq!(before, repo.snapshot());
    std::fs::remove_file(&outside).unwrap();
    repo.git(&["checkout", "--", "ami_ids.json"]);

    repo.xtask(&["release", "2.6.9", "--local", "--yes"]).ok();
    let clone = repo.path("target/rehearsal/release-2.6.9/repo");
    let link = std::fs::symlink_metadata(clone.join("ds0_utils.py")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let committed = common::git_in(&clone, &repo.home(), &["show", "HEAD:shared/ds0_utils.py"]);
    assert!(committed.contains("2.6.9"), "{committed}");
    let status = common::git_in(&clone, &repo.home(), &["status", "--porcelain"]);
    assert_eq!(status, "", "the release left changes out of its commit");
}

#[test]
fn an_error_that_quotes_a_known_secret_masks_it() {
    let repo = Repo::new("mask-errors");
    // A secret from the environment, quoted back in a file name.
    let run = repo
        .command_in(".", &["ami-ids", &format!("{SECRET}.log")])
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .run();
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("cannot open `<sensitive>.log`"),
        "{run:#?}"
    );
    assert_no_secret(&run);
    // A key of `build/local.json`, typed where a version belongs.
    repo.write(
        "build/local.json",
        &format!("{{\"aws_access_key\": \"{ACCESS}\", \"aws_secret_key\": \"{SECRET}\"}}"),
    );
    let run = repo
        .xtask(&["set-version", ACCESS])
        .fails(2, &["`<sensitive>` is not a semantic version"]);
    assert_no_secret(&run);
}

/// Issue 19: every command that takes a version refuses one that is not semver with the same
/// `fix:` line (the typed error's, added by `main`), exit 2, changing nothing.
#[test]
fn every_command_that_takes_a_version_refuses_a_bad_one_with_its_fix() {
    let repo = Repo::new("bad-version-fix");
    repo.git_init("2.6");
    let before = repo.snapshot_without_target();
    let fix = "fix: give the version as MAJOR.MINOR.PATCH, like `2.6.1` (or `2.6.1-beta1` for a \
               candidate); `git tag -l 'release/*'` lists the released versions";
    for args in [
        &["set-version", "x"][..],
        &["retire", "nope"],
        &["retire", "nope", "--local"],
        &["cleanup", "--version", "2.6"],
    ] {
        let run = repo
            .xtask(args)
            .fails(2, &["is not a semantic version", fix]);
        // The fix is the last line, once.
        assert!(run.stderr.trim_end().ends_with(fix), "{args:?}: {run:#?}");
    }
    // `release` and `tag` list the version among their checks, and their fix names it.
    for args in [
        &["release", "2.6"][..],
        &["release", "2.6", "--dry-run"],
        &["release", "2.6", "--local", "--yes"],
        &["tag", "x"],
    ] {
        let run = repo.xtask(args).fails(
            2,
            &[
                "FAIL  version",
                "is not a semantic version",
                "give the version as MAJOR.MINOR.PATCH",
                "nothing was changed",
                "fix: fix `version`",
            ],
        );
        let last = run.stderr.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("fix: fix `version`")
                && last.ends_with("then run the same command again"),
            "{args:?}: {run:#?}"
        );
    }
    assert_eq!(repo.snapshot_without_target(), before);
}

/// A run id is a folder name of `build/runs/`, never a path out of it.
#[test]
fn a_run_id_that_is_a_path_is_refused() {
    let repo = Repo::new("run-id-path");
    let before = repo.snapshot();
    repo.xtask(&["publish", "--resume", "../../etc"]).fails(
        2,
        &[
            "`../../etc` is not a run id: runs are the folders of `build/runs/`",
            "fix: give a run id as `ls build/runs` lists it",
        ],
    );
    repo.xtask(&["cleanup", "--run", "../../etc"]).fails(
        2,
        &["`../../etc` is not a run id: runs are the folders of `build/runs/`"],
    );
    assert_eq!(before, repo.snapshot());
}

/// What a build bakes is checked before anything starts: the version and branch of
/// `ds0_utils.py` are ones `set-version` accepts, HEAD holds them (images bake a commit, not the
/// working tree), and a flag given empty does not widen the build to every builder.
#[test]
fn a_build_refuses_what_it_could_not_bake_before_anything_starts() {
    let repo = Repo::new("bake-refusals");
    repo.git_init("2.6");
    let before = repo.snapshot();
    let publish = ["publish", "--local", "--only", "us-east-1-1404-hvm"];
    for only in ["", ",", "us-east-1-1404-hvm,,eu-west-1-1204-pv"] {
        repo.xtask(&["test-ebs", "--local", "--yes", "--only", only])
            .fails(2, &["names an empty name", "fix: give each name"]);
    }
    assert_eq!(before, repo.snapshot(), "a refused build changed files");

    // A version set but not committed: the images would bake HEAD's 2.6.3.
    repo.xtask(&["set-version", "2.6.4"]).ok();
    let refused = repo.xtask(&publish).fails(
        2,
        &[
            "`ds0_utils.py` holds version 2.6.4 (branch 2.6), but HEAD, the commit the images bake, holds 2.6.3 (branch 2.6)",
            "fix: commit it first (`git commit -m \"ComboAMI 2.6.4\" ds0_utils.py`)",
        ],
    );
    assert!(!refused.all().contains("plan:"), "{refused:#?}");
    // Following the fix, the plan is shown (and the launch waits for a yes).
    repo.git(&["commit", "--quiet", "-m", "ComboAMI 2.6.4", "ds0_utils.py"]);
    repo.command_in(".", &publish)
        .stdin(Stdio::null())
        .run()
        .fails(
            2,
            &[
                "plan: official build of ComboAMI 2.6.4",
                "needs confirmation",
            ],
        );

    // A version no build can use, committed or not, is refused naming its line.
    let ds0 = repo.read("ds0_utils.py");
    repo.write("ds0_utils.py", &ds0.replace("\"2.6.4\"", "\"v2.6.4\""));
    repo.git(&["commit", "--quiet", "-am", "v2.6.4"]);
    repo.xtask(&publish).fails(
        2,
        &[
            "`comboami_version()` returns `v2.6.4`, which no build can use: not a semantic version",
            "cargo xtask set-version MAJOR.MINOR.PATCH --branch BRANCH",
        ],
    );
    assert!(!repo.path("build/runs").exists(), "a run was started");
}
