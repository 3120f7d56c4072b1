//! Issue 12: signed release tags, the remote check, and the cloud preflight against the stand-in.

mod common;

use common::{git_in, Repo};
use std::path::Path;

/// A copy of the repository as a git repository on the release branch `2.6`, holding 2.6.3.
fn git_repo(name: &str) -> Repo {
    let repo = Repo::new(name);
    repo.git_init("2.6");
    repo
}

/// An ssh signing key made here, configured the way a maintainer would: `tag.gpgSign`,
/// `gpg.format=ssh`, `user.signingKey`, and an allowed-signers file so `git tag -v` can verify.
fn configure_ssh_signing(repo: &Repo) -> std::path::PathBuf {
    let key = repo.home().join("signing_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "xtask-test", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = repo.home().join("allowed_signers");
    std::fs::write(&allowed, format!("xtask-test@example.invalid {public}")).unwrap();
    let public_path = key.with_extension("pub");
    for (name, value) in [
        ("tag.gpgSign", "true"),
        ("gpg.format", "ssh"),
        ("user.signingKey", public_path.to_str().unwrap()),
        ("gpg.ssh.allowedSignersFile", allowed.to_str().unwrap()),
    ] {
        repo.git(&["config", "--global", name, value]);
    }
    key
}

fn verify_tag(dir: &Path, home: &Path, tag: &str) -> String {
    let output = std::process::Command::new("git")
        .args(["tag", "-v", tag])
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`git tag -v {tag}` failed:\n{text}"
    );
    text
}

#[test]
fn tags_are_signed_as_git_is_configured_and_git_verifies_them() {
    let repo = git_repo("signed-tag");
    let key = configure_ssh_signing(&repo);

    // A missing key is a preflight failure with the fix; nothing is tagged.
    std::fs::rename(&key, key.with_extension("away")).unwrap();
    std::fs::rename(key.with_extension("pub"), key.with_extension("pub-away")).unwrap();
    repo.xtask(&["tag", "2.6.3"]).fails(
        2,
        &[
            "FAIL  signing",
            "does not exist",
            "ssh-keygen -t ed25519",
            "--no-sign",
        ],
    );
    assert_eq!(repo.git(&["tag", "--list"]), "");
    std::fs::rename(key.with_extension("away"), &key).unwrap();
    std::fs::rename(key.with_extension("pub-away"), key.with_extension("pub")).unwrap();

    let run = repo.xtask(&["tag", "2.6.3"]).ok();
    assert!(run.stderr.contains("ok    signing"), "{run:#?}");
    assert!(
        run.stderr.contains("annotated, signed with ssh"),
        "{run:#?}"
    );
    let verified = verify_tag(&repo.root, &repo.home(), "release/2.6.3");
    assert!(
        verified.contains("Good \"git\" signature for xtask-test@example.invalid"),
        "{verified}"
    );
    let object = repo.git(&["cat-file", "-p", "release/2.6.3"]);
    assert!(object.contains("-----BEGIN SSH SIGNATURE-----"), "{object}");
    assert!(object.contains("ComboAMI 2.6.3 (branch 2.6)"), "{object}");

    // `--no-sign` overrides `tag.gpgSign`.
    repo.xtask(&["set-version", "2.6.4-beta1"]).ok();
    repo.git(&["commit", "--quiet", "--all", "--message", "2.6.4-beta1"]);
    repo.xtask(&["tag", "2.6.4-beta1", "--no-sign"]).ok();
    let object = repo.git(&["cat-file", "-p", "candidate/2.6.4-beta1"]);
    assert!(!object.contains("SIGNATURE"), "{object}");
    assert_eq!(
        repo.git(&["cat-file", "-t", "candidate/2.6.4-beta1"]),
        "tag\n"
    );
}

/// Only the test region's rows stay enabled: a release rehearsal of 4 builders.
fn small_matrix(repo: &Repo) {
    let mut matrix: serde_json::Value =
        serde_json::from_str(&repo.read("build/images.json")).unwrap();
    for row in matrix["images"].as_array_mut().unwrap() {
        if row["region"] != "us-east-1" {
            row["enabled"] = false.into();
            row["disabled_because"] = "a small matrix for the test".into();
        }
    }
    repo.write(
        "build/images.json",
        &(serde_json::to_string_pretty(&matrix).unwrap() + "\n"),
    );
}

#[test]
fn release_tags_are_signed_and_verified_too() {
    let repo = Repo::new("signed-release");
    small_matrix(&repo);
    repo.git_init("2.6");
    configure_ssh_signing(&repo);
    let run = repo.xtask(&["release", "2.6.9", "--local", "--yes"]).ok();
    assert!(
        run.stderr.contains("annotated, signed with ssh"),
        "{run:#?}"
    );
    let clone = repo.path("target/rehearsal/release-2.6.9/repo");
    let verified = verify_tag(&clone, &repo.home(), "release/2.6.9");
    assert!(verified.contains("Good \"git\" signature"), "{verified}");
    let object = git_in(&clone, &repo.home(), &["cat-file", "-p", "release/2.6.9"]);
    assert!(object.contains("4 AMIs:"), "{object}");
}

#[test]
fn push_refuses_a_branch_behind_its_remote_naming_the_commits() {
    let repo = git_repo("remote-behind");
    let remote = repo.root.with_extension("remote.git");
    let other = repo.root.with_extension("other");
    let _ = std::fs::remove_dir_all(&remote);
    let _ = std::fs::remove_dir_all(&other);
    git_in(
        &repo.root,
        &repo.home(),
        &["clone", "--quiet", "--bare", ".", remote.to_str().unwrap()],
    );
    repo.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    repo.git(&["fetch", "--quiet", "origin"]);
    repo.git(&["branch", "--quiet", "--set-upstream-to", "origin/2.6"]);
    // Someone else pushes a commit to the release branch.
    git_in(
        &repo.root,
        &repo.home(),
        &[
            "clone",
            "--quiet",
            remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    std::fs::write(other.join("NOTES"), "a fix\n").unwrap();
    git_in(&other, &repo.home(), &["add", "NOTES"]);
    git_in(
        &other,
        &repo.home(),
        &["commit", "--quiet", "-m", "Fix the notes"],
    );
    git_in(&other, &repo.home(), &["push", "--quiet", "origin", "2.6"]);
    let theirs = git_in(&other, &repo.home(), &["rev-parse", "HEAD"]);
    let short = &theirs[..10];

    // A dry run only asks the remote: it names the commit and changes nothing.
    let before = repo.snapshot();
    let run = repo
        .xtask(&["release", "2.6.9", "--push", "--dry-run"])
        .fails(2, &["FAIL  upstream", short, "git pull origin 2.6"]);
    assert!(run.stderr.contains("behind or has diverged"), "{run:#?}");
    // A rehearsal pushes to its scratch remote: its dry run asks the real one nothing (issue 10).
    let local = repo
        .xtask(&["release", "2.6.9", "--local", "--push", "--dry-run"])
        .ok();
    assert!(local.stderr.contains("not asked"), "{local:#?}");
    assert!(
        before == repo.snapshot(),
        "a dry run changed a file or a ref"
    );

    // `tag --push` fetches and names the commit with its subject, before tagging.
    repo.xtask(&["tag", "2.6.3", "--push", "--yes"]).fails(
        2,
        &[
            "FAIL  upstream",
            "`2.6` is behind `origin/2.6`",
            &format!("{short} Fix the notes"),
        ],
    );
    assert_eq!(repo.git(&["tag", "--list"]), "");

    // A local commit on top: diverged, both sides named.
    repo.write("LOCAL", "mine\n");
    repo.git(&["add", "LOCAL"]);
    repo.git(&["commit", "--quiet", "-m", "Local work"]);
    repo.xtask(&["tag", "2.6.3", "--push", "--yes"]).fails(
        2,
        &[
            "`2.6` has diverged from `origin/2.6`",
            "Fix the notes",
            "Local work",
        ],
    );

    // After `git pull` the check passes.
    repo.git(&[
        "pull",
        "--quiet",
        "--no-rebase",
        "--no-edit",
        "origin",
        "2.6",
    ]);
    // (The real release's dry run: a rehearsal's asks no remote. Without credentials it
    // fails on those, after reporting every check.)
    let run = repo.xtask(&["release", "2.6.9", "--push", "--dry-run"]);
    assert!(
        run.stderr
            .contains("ok    upstream      `2.6` is ahead of `origin/2.6`"),
        "{run:#?}"
    );
    let _ = std::fs::remove_dir_all(&remote);
    let _ = std::fs::remove_dir_all(&other);
}
