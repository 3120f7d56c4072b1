//! Issue 19's edge fixes, each as the user meets it: a `local.json` without keys, stand-in
//! buckets in the right region, a repository path with a space, a validated `ami_ids.json`.

use crate::common;

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

/// A repository in a folder whose path has a space: the stand-in (sshd's config), Packer's
/// template paths and the stand-in's scripts all take it; a local test build succeeds.
#[test]
fn local_builds_work_in_a_path_with_a_space() {
    common::require(&common::PREREQUISITES);
    let repo = Repo::new("with space");
    assert!(repo.root.display().to_string().contains(' '));
    // Each build's own stand-in, then one kept by `local up` for the commands after it.
    let run = repo.xtask(&["test-ebs", "--local"]).ok();
    assert!(
        run.all().contains("4 of 4 builders succeeded"),
        "{}",
        run.all()
    );
    repo.xtask(&["local", "up"]).ok();
    // Instance-store builds run the bundle scripts with paths under the repository.
    let run = repo.xtask(&["test-instance", "--local"]).ok();
    assert!(
        run.all().contains("4 of 4 builders succeeded"),
        "{}",
        run.all()
    );
    let record = std::fs::read_dir(repo.path("build/runs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("standin/standin-record.txt"))
        .find(|p| p.is_file())
        .expect("the bundle scripts kept their record");
    let record = std::fs::read_to_string(record).unwrap();
    assert_eq!(
        record.matches("bundle-upload builder=").count(),
        4,
        "{record}"
    );
    let listing = repo
        .xtask(&["cleanup", "--local", "--kind", "test-instance"])
        .ok();
    assert!(listing.all().contains("test-instance"), "{}", listing.all());
    repo.xtask(&["local", "status"]).ok();
    repo.xtask(&["local", "down"]).ok();
}

/// Each bundle bucket lands in its image's region and a later run there is not refused for
/// it: a first test run in us-east-1, then two in eu-west-1, on one kept stand-in.
#[test]
fn stand_in_buckets_are_made_in_their_region() {
    common::require(&common::PREREQUISITES);
    let repo = Repo::new("buckets");
    repo.xtask(&["local", "up"]).ok();
    repo.xtask(&["test-instance", "--local"]).ok();
    let matrix = repo.read("build/images.json");
    repo.write(
        "build/images.json",
        &matrix.replacen(
            "\"test_region\": \"us-east-1\"",
            "\"test_region\": \"eu-west-1\"",
            1,
        ),
    );
    repo.xtask(&["test-instance", "--local"]).ok();
    let again = repo.xtask(&["test-instance", "--local"]).ok();
    assert!(
        again.all().contains("1 bundle bucket(s) are ours"),
        "{}",
        again.all()
    );
    for region in ["us-east-1", "eu-west-1"] {
        let bucket = format!("comboami-test-2.6.3-{region}");
        let location = common::standin_aws(
            &repo,
            "us-east-1",
            &["s3api", "get-bucket-location", "--bucket", &bucket],
        );
        // S3 names us-east-1 by no constraint at all.
        let expected = if region == "us-east-1" {
            serde_json::Value::Null
        } else {
            region.into()
        };
        assert_eq!(location["LocationConstraint"], expected, "{bucket}");
    }
    repo.xtask(&["local", "down"]).ok();
}

/// A bucket S3 will not create stops the upload, with S3's status and answer (Python's
/// `http.server` answers 501 to a PUT, as a refusing S3 would answer with an error).
#[test]
fn a_refused_bucket_fails_the_upload_loudly() {
    let repo = Repo::new("refused-bucket");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&repo.root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "http.server never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    repo.write("bundle/image.manifest.xml", "<manifest/>");
    let output = std::process::Command::new("sh")
        .arg(repo.path("build/local/bundle-upload.sh"))
        .arg(repo.path("record.txt"))
        .arg(format!("http://127.0.0.1:{port}"))
        .args([
            "eu-west-1-1404-pv",
            "-b",
            "comboami-2.6.3-eu-west-1/p",
            "-m",
        ])
        .arg(repo.path("bundle/image.manifest.xml"))
        .args(["-a", "AKIAEXAMPLE", "-s", "secret", "--region", "eu-west-1"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        stderr.contains(
            "bundle-upload: S3 refused to create bucket comboami-2.6.3-eu-west-1 in eu-west-1: HTTP 501"
        ),
        "{stderr}"
    );
    assert!(!repo.read("record.txt").contains("secret"));
}

/// Issue 19: `base-images --local` while a `publish --local` builds must not take the build's
/// stand-in away (it once deleted `target/standin` and failed all 32 builders): it waits its turn
/// or is refused, and the publish finishes.
#[test]
fn base_images_during_a_local_publish_leaves_the_publish_alone() {
    let repo = Repo::new("base-during-publish");
    let logs = repo.root.with_extension("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut publish = repo
        .command_in(
            ".",
            &[
                "publish",
                "--local",
                "--yes",
                "--only",
                "us-east-1-1404-hvm",
            ],
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(logs.join("publish.out")).unwrap())
        .stderr(std::fs::File::create(logs.join("publish.err")).unwrap())
        .spawn()
        .unwrap();
    // Once Packer runs against the publish's stand-in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !std::fs::read_to_string(logs.join("publish.err"))
        .unwrap_or_default()
        .contains("building 1 image")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the publish never started building"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let base = repo.xtask(&["base-images", "--local"]);
    assert_ne!(base.code, 0, "it ran beside the publish: {base:#?}");
    assert!(base.stderr.contains("fix:"), "{base:#?}");
    let status = publish.wait().unwrap();
    let err = std::fs::read_to_string(logs.join("publish.err")).unwrap();
    assert!(status.success(), "the publish failed:\n{err}");
    let out = std::fs::read_to_string(logs.join("publish.out")).unwrap();
    assert!(out.contains("1 of 1 builders succeeded"), "{out}\n{err}");
}
