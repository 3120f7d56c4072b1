//! Issue 19's edge fixes, each as the user meets it: a `local.json` without keys, stand-in
//! buckets in the right region, a repository path with a space, a validated `ami_ids.json`.

mod common;

use common::{Repo, RunExt};

/// A missing `local.json` says how to make one; a copied template's placeholder keys say to
/// delete them or fill them; following those fixes, with the keys in the environment, the
/// credentials are accepted (the command goes on to ask for its confirmation).
#[test]
fn local_json_may_leave_the_keys_to_the_environment() {
    let repo = Repo::new("keys");
    let missing = repo.xtask(&["test-ebs"]).fails(
        2,
        &["fix: run `cp build/local-default.json build/local.json && chmod 600 build/local.json`"],
    );
    assert!(
        missing.stderr.contains("`AWS_PROFILE`"),
        "{}",
        missing.stderr
    );
    // Followed: the copy is refused for its placeholders, with the keys' own fix.
    std::fs::copy(
        repo.path("build/local-default.json"),
        repo.path("build/local.json"),
    )
    .unwrap();
    let placeholders = repo.xtask(&["test-ebs"]).fails(
        2,
        &[
            "still has the placeholder values of `build/local-default.json`",
            "fix: delete the `aws_access_key` and `aws_secret_key` lines from `build/local.json`",
        ],
    );
    assert!(
        !placeholders.all().contains("YOUR-AWS-SECRET"),
        "placeholders are masked like the secrets they stand for: {}",
        placeholders.all()
    );
    // Followed: the key lines deleted, the other fields filled, the keys in the environment.
    let template = repo.read("build/local.json");
    let kept: String = template
        .lines()
        .filter(|l| !l.contains("\"aws_access_key\"") && !l.contains("\"aws_secret_key\""))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("YOUR-12-DIGIT-AWS-ACCOUNT-ID", "111122223333")
        .replace("/path/to/your/x509-signing-cert.pem", "cert.pem")
        .replace("/path/to/your/x509-signing-key.pem", "key.pem");
    repo.write("build/local.json", &kept);
    use std::os::unix::fs::PermissionsExt;
    let private = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(repo.path("build/local.json"), private).unwrap();
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let without_env = repo.xtask(&["test-ebs"]).fails(
        2,
        &["`build/local.json` has no `aws_access_key` and `AWS_ACCESS_KEY_ID` is not set"],
    );
    assert!(without_env.all().contains("fix: "), "{}", without_env.all());
    let accepted = repo
        .command_in(".", &["test-ebs", "--skip-cloud-checks"])
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .run()
        .fails(2, &["needs confirmation"]);
    assert!(!accepted.all().contains("local.json"), "{}", accepted.all());
    assert!(!accepted.all().contains(secret));
}

/// An `ami_ids.json` with an entry the project could not have merged is refused on read, named
/// by file and key with a fix, and nothing is written.
#[test]
fn a_bad_registry_is_refused_on_read() {
    let repo = Repo::new("registry");
    let log = common::source_root().join("xtask/tests/data/packer-1.6.6-ebs-success.log");
    std::fs::copy(log, repo.path("build.log")).unwrap();
    let bad = repo
        .read("ami_ids.json")
        .replacen("\"us-west-2\"", "\"us-wset-2\"", 1)
        .replacen("\"ami-", "\"ami-ZZ", 1);
    repo.write("ami_ids.json", &bad);
    let refused = repo.xtask(&["ami-ids", "build.log"]).fails(
        2,
        &[
            "`ami_ids.json` has 2 bad entries:",
            "key `us-wset-2` is not one of the regions of `settings.regions` in `build/images.json`",
            "key `ap-northeast-1` entry 1: `id` `ami-ZZ",
            "fix: correct or remove those entries of `ami_ids.json`",
        ],
    );
    assert_eq!(repo.read("ami_ids.json"), bad, "{refused:?}");
    // Fixed as the fix says (restored), the same merge goes through.
    let good = common::source_root().join("ami_ids.json");
    std::fs::copy(good, repo.path("ami_ids.json")).unwrap();
    repo.xtask(&["ami-ids", "build.log"]).ok();
}
