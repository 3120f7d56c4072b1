//! Issue 4: `release` and `tag` in real git repositories (temporary copies, a bare repository as
//! remote), with git isolated from the user's configuration and a fixed identity.

use crate::common;

use common::{git_in, ReleaseDoc, Repo};

/// A copy of the repository as a git repository on the release branch `2.6`, holding 2.6.3.
fn git_repo(name: &str) -> Repo {
    let repo = Repo::new(name);
    repo.git_init("2.6");
    repo
}

/// `git_repo` whose matrix builds only the rows of `regions` (4 per region): a release that
/// builds, with fewer builders to wait for.
fn git_repo_of(name: &str, regions: &[&str]) -> Repo {
    let repo = Repo::new(name);
    common::matrix_of(&repo, regions);
    repo.git_init("2.6");
    repo
}

/// Whether the run record `run_id` in the clone says its images were made public.
fn record_made_public(clone: &std::path::Path, run_id: &str) -> bool {
    let text =
        std::fs::read_to_string(clone.join(format!("build/runs/{run_id}/run.json"))).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["made_public"] == true
}

fn refs(repo: &Repo) -> String {
    repo.git(&["show-ref"])
}

#[test]
fn tag_names_plain_and_candidate_versions_as_annotated_tags() {
    let repo = git_repo("tag");
    let run = repo.xtask(&["tag", "2.6.3"]).ok();
    assert!(run.stdout.contains("`release/2.6.3`"), "{run:#?}");
    let tag = repo.git(&["cat-file", "-p", "release/2.6.3"]);
    let head = repo.git(&["rev-parse", "HEAD"]);
    assert!(tag.starts_with(&format!("object {head}type commit\ntag release/2.6.3\ntagger Xtask Test <xtask-test@example.invalid>")), "{tag}");
    // The message lists the registry's AMIs.
    assert!(tag.contains("ComboAMI 2.6.3 (branch 2.6)"), "{tag}");
    assert!(
        tag.contains("ap-northeast-1  1404 hvm  ami-580eb458"),
        "{tag}"
    );

    // The same version again: the tag is never moved.
    repo.xtask(&["tag", "2.6.3"])
        .fails(2, &["`release/2.6.3` already exists", "never moved"]);

    // A pre-release becomes a candidate tag.
    repo.xtask(&["set-version", "2.6.4-beta1"]).ok();
    repo.git(&["commit", "--quiet", "--all", "--message", "2.6.4-beta1"]);
    repo.xtask(&["tag", "2.6.4-beta1"]).ok();
    assert_eq!(
        repo.git(&["tag", "--list"]),
        "candidate/2.6.4-beta1\nrelease/2.6.3\n"
    );
    assert_eq!(
        repo.git(&["cat-file", "-t", "candidate/2.6.4-beta1"]),
        "tag\n"
    );

    // `ds0_utils.py` must already hold the version.
    let before = refs(&repo);
    let refused = repo.xtask(&["tag", "2.6.4"]).fails(
        2,
        &["FAIL  ds0_utils.py", "holds 2.6.4-beta1 at HEAD, not 2.6.4"],
    );
    // Failures are listed on top, as the error says.
    let first_check = refused.stderr.lines().nth(1).unwrap_or_default();
    assert!(first_check.starts_with("  FAIL"), "{}", refused.stderr);
    // An older version than the newest release is refused too (`set-version` says so first).
    let set = repo.xtask(&["set-version", "2.6.2"]).ok();
    assert!(
        set.stderr
            .contains("note: 2.6.2 is not newer than the latest release 2.6.3"),
        "{set:#?}"
    );
    repo.git(&["commit", "--quiet", "--all", "--message", "2.6.2"]);
    repo.xtask(&["tag", "2.6.2"])
        .fails(2, &["2.6.2 is not newer than the latest release 2.6.3"]);
    assert_eq!(
        refs(&repo)
            .lines()
            .filter(|l| l.contains("refs/tags"))
            .count(),
        before.lines().filter(|l| l.contains("refs/tags")).count()
    );

    // A release whose `ami_ids.json` still lists the last release's AMIs is refused (a local
    // publish merges only into its run folder), and so is one that lists a bad id...
    repo.xtask(&["set-version", "2.6.4"]).ok();
    repo.git(&["commit", "--quiet", "--all", "--message", "2.6.4"]);
    repo.xtask(&["tag", "2.6.4"]).fails(
        2,
        &[
            "FAIL  ami_ids.json",
            "lists the same 32 AMIs as `release/2.6.3`",
        ],
    );
    let registry = repo.read("ami_ids.json");
    repo.write("ami_ids.json", &registry.replace("ami-580eb458", "ami-XYZ"));
    repo.git(&["commit", "--quiet", "--all", "--message", "A typo"]);
    repo.xtask(&["tag", "2.6.4"])
        .fails(2, &["`ami-XYZ` is not an AMI id"]);
    // ...and tagged once its AMIs are merged and committed.
    repo.write("ami_ids.json", &registry);
    repo.xtask(&["ami-ids", &common::data("packer-1.6.6-ebs-success.log")])
        .ok();
    repo.git(&[
        "commit",
        "--quiet",
        "--all",
        "--message",
        "The AMIs of 2.6.4",
    ]);
    repo.xtask(&["tag", "2.6.4"]).ok();
}

#[test]
fn tag_push_goes_to_the_bare_remote() {
    let repo = git_repo("tag-push");
    let remote = repo.root.with_extension("remote.git");
    git_in(
        &repo.root,
        &repo.home(),
        &["init", "--quiet", "--bare", remote.to_str().unwrap()],
    );
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    // Pushing needs a yes.
    repo.xtask(&["tag", "2.6.3", "--push"])
        .fails(2, &["pushing needs confirmation", "--yes"]);
    assert_eq!(repo.git(&["tag", "--list"]), "");
    let run = repo
        .xtask(&["tag", "2.6.3", "--push", "--yes", "--json"])
        .ok();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["tag"], "release/2.6.3", "{doc:#}");
    assert_eq!(doc["pushed_to"], "origin");
    assert_eq!(
        doc["commit"].as_str().unwrap(),
        repo.git(&["rev-parse", "HEAD"]).trim()
    );
    assert!(run
        .stderr
        .contains("pushed `2.6` and `release/2.6.3` to `origin`"));
    let remote_refs = git_in(&remote, &repo.home(), &["show-ref"]);
    assert!(remote_refs.contains("refs/heads/2.6"), "{remote_refs}");
    assert!(
        remote_refs.contains("refs/tags/release/2.6.3"),
        "{remote_refs}"
    );
    let _ = std::fs::remove_dir_all(remote);
}

#[test]
fn release_preflight_reports_every_failure_at_once_and_changes_nothing() {
    let repo = git_repo("preflight");
    repo.git(&["checkout", "--quiet", "-b", "main"]);
    repo.git(&["tag", "release/2.6.5"]);
    repo.write("notes.txt", "work in progress\n");
    let before = repo.snapshot();
    // Older than what `ds0_utils.py` holds (a release made before the tool has no tag to say so).
    repo.xtask(&["release", "2.6.2", "--local", "--dry-run"])
        .fails(
            2,
            &["FAIL  order         2.6.2 is older than 2.6.3, which `ds0_utils.py` holds at HEAD"],
        );
    let run = repo.xtask(&["release", "2.6.4", "--push", "--yes"]).fails(
        2,
        &["preflight check(s) failed (listed on top); nothing was changed"],
    );
    for needle in [
        "FAIL  order         2.6.4 is not newer than the latest release 2.6.5",
        "FAIL  working tree  uncommitted changes or untracked files: `notes.txt`",
        "FAIL  branch        on `main`, not the release branch `2.6`: run `git switch 2.6`",
        "FAIL  credentials   `build/local.json` not found: copy `build/local-default.json`",
        "FAIL  remote        no remote `origin`",
        "ok    packer",
    ] {
        assert!(
            run.stderr.contains(needle),
            "lacks {needle:?}:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("5 preflight check(s) failed"));
    // With `--json`, the refusal is a document listing the checks, failed ones first.
    let run = repo
        .xtask(&["release", "2.6.4", "--push", "--yes", "--json"])
        .fails(2, &["5 preflight check(s) failed"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(
        (doc["ok"].clone(), doc["dry_run"].clone()),
        (false.into(), false.into())
    );
    let oks: Vec<bool> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(&oks[..5], [false; 5], "{doc:#}");
    assert!(oks[5..].iter().all(|ok| *ok), "{doc:#}");
    assert!(before == repo.snapshot(), "a refused release changed files");

    // A version AWS would reject, a version that is not semver, an existing tag.
    let run = repo
        .xtask(&["release", "2.6.1+build.5", "--local", "--allow-branch"])
        .fails(2, &[]);
    assert!(
        run.stderr
            .contains("AMI name `DataStax Auto-Clustering AMI 2.6.1+build.5-1204-pv` contains `+`"),
        "{}",
        run.stderr
    );
    repo.xtask(&["release", "2.6", "--local"])
        .fails(2, &["FAIL  version", "`2.6` is not a semantic version"]);
    repo.xtask(&["release", "2.6.5", "--local"])
        .fails(2, &["FAIL  tag", "`release/2.6.5` already exists"]);
    // `--allow-branch` accepts the branch; a rehearsal takes the commit whatever the branch.
    let run = repo
        .xtask(&["release", "2.7.0", "--allow-branch", "--dry-run"])
        .fails(2, &[]);
    assert!(
        run.stderr
            .contains("ok    branch        on `main`, not `2.7` (allowed by `--allow-branch`)"),
        "{}",
        run.stderr
    );
    let run = repo
        .xtask(&["release", "2.7.0", "--local", "--dry-run"])
        .fails(2, &[]);
    assert!(
        run.stderr.contains(
            "ok    branch        on `main`; the rehearsal puts this commit on `2.7` in its scratch clone"
        ),
        "{}",
        run.stderr
    );

    // A dry run shows the plan and the diff even when checks fail, the failures on top; with
    // `--json`, all of it is one document on stdout.
    let run = repo
        .xtask(&["release", "2.6.6", "--dry-run", "--push", "--json"])
        .fails(2, &["preflight check(s) failed (listed on top)"]);
    let report: Vec<&str> = run
        .stderr
        .lines()
        .skip_while(|l| *l != "preflight:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| l.starts_with("  ok  ") || l.starts_with("  FAIL"))
        .collect();
    let first_ok = report.iter().position(|l| l.starts_with("  ok")).unwrap();
    assert!(first_ok >= 4, "{report:#?}");
    assert!(
        report[first_ok..].iter().all(|l| l.starts_with("  ok")),
        "{report:#?}"
    );
    for needle in [
        "plan: release ComboAMI 2.6.6 from branch `2.6`",
        "-    return \"2.6.3\"\n     +    return \"2.6.6\"",
        "launches 32 m3.medium instance(s) in 8 region(s)",
        "6. push branch `2.6` and tag `release/2.6.6` to `origin`",
    ] {
        assert!(
            run.stderr.contains(needle),
            "lacks {needle:?}:\n{}",
            run.stderr
        );
    }
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["checks"][0]["ok"], false, "{doc:#}");
    assert!(doc["plan"]
        .as_str()
        .unwrap()
        .contains("+    return \"2.6.6\""));

    // No identity: a clear error naming the fix.
    std::fs::remove_file(repo.home().join(".gitconfig")).unwrap();
    repo.xtask(&["release", "2.7.0", "--branch", "main", "--local"])
        .fails(2, &["FAIL  git identity", "git config --global user.name"]);
    assert!(before == repo.snapshot(), "a refused release changed files");
}

#[test]
fn dry_run_prints_the_plan_and_changes_no_byte_and_no_ref() {
    let repo = git_repo("dry-run");
    let before = repo.snapshot();
    for args in [
        &["release", "2.6.4", "--dry-run", "--local", "--push"][..],
        &["release", "2.6.4-beta1", "--dry-run", "--local"][..],
        &["tag", "2.6.3", "--dry-run"][..],
        // The publish options of `publish`, and Packer's after `--`, are accepted too.
        &[
            "release",
            "2.6.4",
            "--dry-run",
            "--local",
            "--no-parallel",
            "--debug",
            "--",
            "-on-error=abort",
        ][..],
    ] {
        let run = repo.xtask(args).ok();
        assert!(
            run.stderr.contains("dry run: nothing was changed"),
            "{run:#?}"
        );
    }
    let run = repo
        .xtask(&["release", "2.6.4", "--dry-run", "--local"])
        .ok();
    for needle in [
        "ok    tag           `release/2.6.4` does not exist yet",
        "-    return \"2.6.3\"\n     +    return \"2.6.4\"",
        "launches 32 m3.medium instance(s) in 8 region(s)",
        "images will be PUBLIC",
        "and commit it as \"Prepare ComboAMI 2.6.4\" (the prepare commit); push it to the rehearsal's scratch remote",
        "every one baking the prepare commit",
        "commit `ami_ids.json` as Xtask Test <xtask-test@example.invalid> on top of the prepare commit: \"Release ComboAMI 2.6.4\"",
        "tag that commit `release/2.6.4`",
    ] {
        assert!(run.stderr.contains(needle), "lacks {needle:?}:\n{}", run.stderr);
    }
    let run = repo
        .xtask(&["release", "2.6.4-beta1", "--dry-run", "--local"])
        .ok();
    assert!(run.stderr.contains("`candidate/2.6.4-beta1`"));
    assert!(
        before == repo.snapshot(),
        "a dry run changed a file or a ref (the snapshot includes `.git/`)"
    );
}

#[test]
fn local_release_resumes_after_a_failure_then_commits_tags_and_pushes() {
    let repo = git_repo_of("release-local", &["us-east-1", "eu-west-1"]);
    // The stand-in keeps its images between the two commands, as AWS does.
    repo.xtask(&["local", "up"]).ok();
    let before = repo.snapshot_without_target();
    let scratch = repo.path("target/rehearsal/release-2.6.4");
    let clone = scratch.join("repo");
    let remote = scratch.join("remote.git");

    // One builder fails: the release stops after publishing, says where and how to go on.
    let first = repo
        .command_in(".", &["release", "2.6.4", "--local", "--push", "--yes"])
        .env("XTASK_LOCAL_FAIL", "eu-west-1-1204-pv")
        .output()
        .unwrap();
    let first = common::Run {
        code: first.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&first.stdout).into(),
        stderr: String::from_utf8_lossy(&first.stderr).into(),
    }
    .fails(
        1,
        &[
            "release 2.6.4 stopped at step 2 (publish)",
            "run `cargo xtask release 2.6.4 --push origin --local --yes` to resume",
            "1 of 8 builders did not succeed",
        ],
    );
    assert!(
        first.stdout.contains("7 of 8 builders succeeded"),
        "{first:#?}"
    );
    // The error reads top-down: what failed, each cause on its own line, the fix last.
    assert!(
        first.stderr.contains(
            "error: release 2.6.4 stopped at step 2 (publish); what succeeded is kept\n  \
             caused by: run `"
        ),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.trim_end().lines().last().unwrap().starts_with(
            "fix: run `cargo xtask release 2.6.4 --push origin --local --yes` to resume"
        ),
        "{}",
        first.stderr
    );
    assert!(
        first.stdout.lines().any(|line| line
            .split_whitespace()
            .take(2)
            .eq(["eu-west-1-1204-pv", "FAILED"])),
        "the summary marks the failed builder:\n{}",
        first.stdout
    );
    let ds0 = std::fs::read_to_string(clone.join("ds0_utils.py")).unwrap();
    assert!(
        ds0.contains("return \"2.6.4\""),
        "the version is set in the clone"
    );
    assert_eq!(git_in(&clone, &repo.home(), &["tag", "--list"]), "");
    // The version change is the prepare commit, on the remote's branch before anything ran.
    let prepare = git_in(&clone, &repo.home(), &["rev-parse", "HEAD"]);
    assert_eq!(
        git_in(&clone, &repo.home(), &["log", "-1", "--format=%s"]),
        "Prepare ComboAMI 2.6.4\n"
    );
    assert_eq!(
        git_in(&remote, &repo.home(), &["rev-parse", "refs/heads/2.6"]),
        prepare
    );
    assert!(
        before == repo.snapshot_without_target(),
        "a rehearsal changed the real repository"
    );

    // The same command resumes: only the failed builder is rebuilt, then commit, tag, push.
    let second = repo
        .xtask(&["release", "2.6.4", "--local", "--push", "--yes", "--json"])
        .ok();
    assert!(
        second
            .stderr
            .contains("rebuilding 1 of 8 builders: eu-west-1-1204-pv"),
        "{second:#?}"
    );
    assert!(second.stderr.contains("released ComboAMI 2.6.4"));
    let doc: ReleaseDoc = second.doc();
    assert!(doc.ok);
    assert_eq!(doc.tag, "release/2.6.4");
    assert_eq!(doc.pushed_to.as_deref(), Some("origin"));
    let head = git_in(&clone, &repo.home(), &["rev-parse", "HEAD"]);
    assert_eq!(head.trim(), doc.commit);
    let message = git_in(
        &clone,
        &repo.home(),
        &["log", "-1", "--format=%s%n%an <%ae>"],
    );
    assert_eq!(
        message,
        "Release ComboAMI 2.6.4\nXtask Test <xtask-test@example.invalid>\n"
    );
    let changed = git_in(
        &clone,
        &repo.home(),
        &["show", "--name-only", "--format=", "HEAD"],
    );
    // The release commit merges the AMIs on top of the prepare commit the images baked.
    assert_eq!(changed, "ami_ids.json\n");
    assert_eq!(
        git_in(&clone, &repo.home(), &["rev-parse", "HEAD~1"]),
        prepare
    );
    let tag = git_in(&clone, &repo.home(), &["cat-file", "-p", "release/2.6.4"]);
    assert!(
        tag.contains(&format!("Every image baked commit {}", prepare.trim())),
        "{tag}"
    );
    assert!(tag.starts_with(&format!("object {head}")), "{tag}");
    assert!(tag.contains("8 AMIs:"), "{tag}");
    // Every AMI of the run is in the committed registry and in the tag message.
    let record = &doc.publish_run;
    let run_id = &record.run_id;
    assert_eq!(record.builders.len(), 8);
    assert_eq!(doc.amis.len(), 8);
    let committed = git_in(&clone, &repo.home(), &["show", "HEAD:ami_ids.json"]);
    for (name, builder) in &record.builders {
        let id = builder.ami();
        assert!(committed.contains(id), "{name}: {id} not in the registry");
        assert!(tag.contains(id), "{name}: {id} not in the tag message");
        // Every image's report was checked; its ComboAMI commit is in the record and the tag,
        // and it is the prepare commit.
        let commit = builder.comboami_commit.as_deref().unwrap();
        assert_eq!(commit, prepare.trim(), "{name}");
        assert!(
            tag.contains(&format!("{id}  ComboAMI {commit}")),
            "{name}: {commit} not in the tag message:\n{tag}"
        );
        assert!(clone
            .join(format!("build/runs/{run_id}/reports/{name}.json"))
            .is_file());
    }
    // A release registers private images: the tool makes them public once all are proven.
    let template: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(clone.join(format!("build/runs/{run_id}/template.json"))).unwrap(),
    )
    .unwrap();
    for builder in template["builders"].as_array().unwrap() {
        assert_eq!(builder["ami_groups"], serde_json::json!([]));
    }
    assert!(
        record_made_public(&clone, run_id),
        "the release's images were made public"
    );
    assert_eq!(record.attempts[1].builders, ["eu-west-1-1204-pv"]);
    // Pushed to the scratch bare remote.
    let remote_refs = git_in(&remote, &repo.home(), &["show-ref"]);
    assert!(
        remote_refs.contains(&format!("{} refs/heads/2.6", head.trim())),
        "{remote_refs}"
    );
    assert!(
        remote_refs.contains("refs/tags/release/2.6.4"),
        "{remote_refs}"
    );
    // The real repository is exactly as it was.
    assert!(
        before == repo.snapshot_without_target(),
        "a rehearsal changed the real repository"
    );
    assert_eq!(repo.git(&["tag", "--list"]), "");
}

#[test]
fn local_candidate_rehearsal_builds_private_images_and_leaves_the_registry() {
    let repo = git_repo_of("candidate-local", &["us-east-1"]);
    let dry = repo
        .xtask(&["release", "2.6.9-beta1", "--local", "--dry-run"])
        .ok();
    for needle in [
        "2. publish every enabled row as PRIVATE (a candidate) images",
        "images will be PRIVATE (ami_groups empty",
        "3. leave `ami_ids.json` as it is",
    ] {
        assert!(
            dry.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            dry.stderr
        );
    }
    let run = repo
        .xtask(&["release", "2.6.9-beta1", "--local", "--yes", "--json"])
        .ok();
    assert!(
        run.stderr.contains("released ComboAMI 2.6.9-beta1"),
        "{run:#?}"
    );
    let doc: ReleaseDoc = run.doc();
    assert_eq!(doc.tag, "candidate/2.6.9-beta1");
    let clone = repo.path("target/rehearsal/release-2.6.9-beta1/repo");
    let record = &doc.publish_run;
    let run_id = &record.run_id;
    let template: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(clone.join(format!("build/runs/{run_id}/template.json"))).unwrap(),
    )
    .unwrap();
    let builders = template["builders"].as_array().unwrap();
    assert_eq!(builders.len(), 4);
    for builder in builders {
        assert_eq!(builder["ami_groups"], serde_json::json!([]), "{builder}");
    }
    // The registry is as it was; the AMIs are in the run record and the candidate tag.
    assert_eq!(
        git_in(&clone, &repo.home(), &["diff", "HEAD~1", "--name-only"]),
        "ds0_utils.py\n"
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("ami_ids.json")).unwrap(),
        repo.read("ami_ids.json")
    );
    let tag = git_in(
        &clone,
        &repo.home(),
        &["cat-file", "-p", "candidate/2.6.9-beta1"],
    );
    assert!(tag.contains("4 AMIs:"), "{tag}");
    assert_eq!(record.builders.len(), 4);
    for (name, builder) in &record.builders {
        let id = builder.ami();
        assert!(tag.contains(id), "{name}: {id} not in the tag message");
    }
}

/// The README's rehearsal on a fresh clone, which has only `main`: the rehearsal takes the
/// current commit and its scratch clone gets the release branch. (Two rows of the matrix keep
/// it short.)
#[test]
fn rehearsal_runs_from_a_fresh_clone_with_only_main() {
    let repo = Repo::new("fresh-clone");
    let mut matrix: serde_json::Value =
        serde_json::from_str(&repo.read("build/images.json")).unwrap();
    for (index, row) in matrix["images"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        if index >= 2 {
            row["enabled"] = serde_json::json!(false);
            row["disabled_because"] = serde_json::json!("a short test");
        }
    }
    repo.write(
        "build/images.json",
        &serde_json::to_string_pretty(&matrix).unwrap(),
    );
    repo.git_init("main");
    let before = repo.snapshot_without_target();
    let run = repo
        .xtask(&["release", "2.6.4", "--local", "--push", "--yes", "--json"])
        .ok();
    let doc: ReleaseDoc = run.doc();
    assert!(doc.ok, "{doc:#?}");
    assert_eq!(doc.branch, "2.6");
    assert_eq!(doc.tag, "release/2.6.4");
    assert_eq!(doc.pushed_to.as_deref(), Some("origin"));
    assert_eq!(doc.amis.len(), 2, "{doc:#?}");
    assert_eq!(doc.publish_run.builders.len(), 2);
    assert!(
        run.stderr.contains(&format!(
            "rehearsal: commit {} (on `main`) is branch `2.6` in the scratch clone",
            &repo.git(&["rev-parse", "HEAD"])[..10]
        )),
        "{}",
        run.stderr
    );
    // The scratch remote got the release commit on `2.6`, on top of the prepare commit, on top
    // of the real HEAD.
    let remote = repo.path("target/rehearsal/release-2.6.4/remote.git");
    let released = git_in(&remote, &repo.home(), &["rev-parse", "refs/heads/2.6"]);
    assert_eq!(released.trim(), doc.commit);
    let parent = git_in(&remote, &repo.home(), &["rev-parse", "refs/heads/2.6~2"]);
    assert_eq!(parent, repo.git(&["rev-parse", "HEAD"]));
    assert!(git_in(&remote, &repo.home(), &["show-ref"]).contains("refs/tags/release/2.6.4"));
    // The real repository: still only `main`, no tag, not a byte changed.
    assert_eq!(
        repo.git(&["branch", "--list", "--format=%(refname:short)"]),
        "main\n"
    );
    assert_eq!(repo.git(&["tag", "--list"]), "");
    assert!(
        before == repo.snapshot_without_target(),
        "a rehearsal changed the real repository"
    );
}

#[test]
fn tag_push_resumes_and_branch_and_dry_run_slips_are_fixed() {
    let repo = git_repo("slips");
    let remote = repo.root.with_extension("slips-remote.git");
    git_in(
        &repo.root,
        &repo.home(),
        &["init", "--quiet", "--bare", remote.to_str().unwrap()],
    );
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    // The remote refuses the push: the tag is made, the push is not; exit 1 (something was
    // done), and the same command finishes the job once the remote accepts.
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'refused by policy' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    repo.xtask(&["tag", "2.6.3", "--push", "--yes"]).fails(
        1,
        &[
            "is made locally but not pushed",
            "`cargo xtask tag 2.6.3 --push origin --yes`",
        ],
    );
    assert_eq!(repo.git(&["tag", "--list"]), "release/2.6.3\n");
    std::fs::remove_file(&hook).unwrap();
    let again = repo.xtask(&["tag", "2.6.3", "--push", "--yes"]).ok();
    assert!(again.stdout.contains("already on"), "{again:#?}");
    let remote_refs = git_in(&remote, &repo.home(), &["show-ref"]);
    assert!(
        remote_refs.contains("refs/tags/release/2.6.3"),
        "{remote_refs}"
    );
    // Now the remote has it: a third run sees the very same tag there and pushes nothing new.
    repo.xtask(&["tag", "2.6.3", "--push", "--yes"]).ok();

    // `--local --dry-run` never asks the real remote (here: one that does not exist).
    repo.git(&["remote", "set-url", "origin", "/nonexistent/remote.git"]);
    let run = repo
        .xtask(&["release", "2.6.4", "--local", "--dry-run", "--push"])
        .ok();
    assert!(run.stderr.contains("not asked"), "{}", run.stderr);

    // `--allow-branch` on another branch plans (and pushes) that branch, not `2.6`.
    repo.git(&["checkout", "--quiet", "-b", "main"]);
    let run = repo
        .xtask(&[
            "release",
            "2.6.4",
            "--local",
            "--dry-run",
            "--push",
            "--allow-branch",
        ])
        .ok();
    assert!(
        run.stderr
            .contains("push branch `main` and tag `release/2.6.4` to `origin`"),
        "{}",
        run.stderr
    );
    let _ = std::fs::remove_dir_all(remote);
}
