//! Issue 12: signed release tags, the remote check, and the cloud preflight against the stand-in.

use crate::common;

use common::{git_in, BuildDoc, Repo, RunRecord};
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

#[test]
fn release_tags_are_signed_and_verified_too() {
    let repo = Repo::new("signed-release");
    common::small_matrix(&repo);
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

    // `tag --push` fetches and names the commit with its subject, before tagging; the fetch
    // moves no ref (not even `origin/2.6`: the refusal changes nothing).
    let tracking = repo.git(&["rev-parse", "origin/2.6"]);
    repo.xtask(&["tag", "2.6.3", "--push", "--yes"]).fails(
        2,
        &[
            "FAIL  upstream",
            "`2.6` is behind `origin/2.6`",
            &format!("{short} Fix the notes"),
        ],
    );
    assert_eq!(repo.git(&["tag", "--list"]), "");
    assert_eq!(repo.git(&["rev-parse", "origin/2.6"]), tracking);

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

/// The port of the stand-in that `local up` keeps for `repo`.
fn standin_endpoint(repo: &Repo) -> String {
    let state: serde_json::Value =
        serde_json::from_str(&repo.read("target/standin/state.json")).unwrap();
    format!("http://127.0.0.1:{}", state["moto_port"])
}

/// Runs a few lines of boto3 against the kept stand-in (one Python process, not one `aws` per
/// call): `endpoint` and `ec2(region)` are defined; the script prints its answer.
fn boto(repo: &Repo, script: &str) -> String {
    let prelude = format!(
        "import boto3, json\nendpoint = {:?}\ndef ec2(region):\n    return boto3.client('ec2', region_name=region, endpoint_url=endpoint, aws_access_key_id='x', aws_secret_access_key='x')\n",
        standin_endpoint(repo)
    );
    let output = std::process::Command::new(common::standin_venv().join("bin/python"))
        .arg("-c")
        .arg(prelude + script)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Every instance the stand-in ever launched in these regions (terminated ones stay listed).
fn instances(repo: &Repo) -> usize {
    boto(
        repo,
        "print(sum(len(r['Instances']) for region in ['us-east-1', 'eu-west-1'] for r in ec2(region).describe_instances()['Reservations']))",
    )
    .parse()
    .unwrap()
}

fn with_env(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> common::Run {
    use common::RunExt;
    let mut command = repo.command_in(".", args);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut run = command.stdin(std::process::Stdio::null()).run();
    run.stderr = unwrap_report(&run.stderr);
    run
}

/// The cloud report wraps at 80 columns, continuation lines under the check's text (column 22):
/// joined back into one line per problem, so assertions can quote whole sentences.
fn unwrap_report(text: &str) -> String {
    text.replace(&format!("\n{}", " ".repeat(22)), " ")
}

const TWO: &str = "us-east-1-1404-hvm,eu-west-1-1204-pv";

#[test]
fn cloud_preflight_against_a_kept_standin() {
    let repo = Repo::new("cloud");
    // A newer Canonical image for one row, seeded into the stand-in when it starts.
    let newer = serde_json::json!([{
        "ami_id": "ami-0abc1404de0f12345",
        "name": "ubuntu/images/hvm-instance/ubuntu-trusty-14.04-amd64-server-20160101",
        "owner_id": "099720109477", "public": true, "virtualization_type": "hvm",
        "architecture": "x86_64", "state": "available", "image_type": "machine",
        "hypervisor": "xen", "root_device_name": "/dev/sda1",
        "root_device_type": "instance-store", "creation_date": "2016-01-01T00:00:00.000Z",
        "region_name": "us-east-1"
    }]);
    repo.write("seed.json", &newer.to_string());
    let seed = repo.path("seed.json");
    with_env(
        &repo,
        &["local", "up"],
        &[("XTASK_LOCAL_SEED_AMIS", seed.to_str().unwrap())],
    )
    .ok();

    // Each rehearsed failure is reported at once with the others, before any launch.
    let run = with_env(
        &repo,
        &["publish", "--local", "--yes", "--only", TWO],
        &[
            ("XTASK_LOCAL_MISSING_AMI", "ami-7beb9d0c"),
            ("XTASK_LOCAL_BLOCK_PUBLIC", "us-east-1"),
            ("XTASK_LOCAL_ACCOUNT", "111122223333"),
        ],
    )
    .fails(
        2,
        &[
            "FAIL  aws identity  the credentials (arn:aws:sts::111122223333:user/moto) belong to account 111122223333, not to account 123456789012",
            "FAIL  base AMIs     `eu-west-1-1204-pv`: base AMI ami-7beb9d0c (field `instance_store_ami`) does not exist in eu-west-1",
            "cargo xtask base-images --region eu-west-1",
            "FAIL  public AMIs   us-east-1: block public access for AMIs is on (`block-new-sharing`)",
            "aws ec2 disable-image-block-public-access --region us-east-1",
            "nothing was launched",
        ],
    );
    assert!(!run.all().contains("building"), "{run:#?}");
    assert_eq!(instances(&repo), 0);

    // `--skip-cloud-checks` is loud in the plan (the run would go ahead: here it stops at `--yes`).
    let run = with_env(
        &repo,
        &["publish", "--local", "--only", TWO, "--skip-cloud-checks"],
        &[],
    )
    .fails(2, &["publishing needs confirmation"]);
    assert!(
        run.stderr
            .contains("!!! CLOUD CHECKS SKIPPED (`--skip-cloud-checks`)"),
        "{run:#?}"
    );

    // The first publish passes the checks and builds.
    let first = with_env(
        &repo,
        &["publish", "--local", "--yes", "--only", TWO, "--json"],
        &[],
    )
    .ok();
    assert!(
        first
            .stderr
            .contains("ok    AMI names     2 planned name(s) are free"),
        "{first:#?}"
    );
    let doc: BuildDoc = first.doc();
    let id = doc.run_id;
    let record_path = format!("build/runs/{id}/run.json");
    let record = RunRecord::read(&repo.root, &id);
    assert_eq!(record.cloud_checks.as_deref(), Some("passed"));
    let launched = instances(&repo);
    assert_eq!(launched, 2);

    // In a copy that is not a git repository (its commit is known only once the build commits
    // it), a second publish of the same version is refused, naming every taken name and its id.
    let second = with_env(&repo, &["publish", "--local", "--yes", "--only", TWO], &[]);
    let second = second.fails(2, &["FAIL  AMI names", "nothing was launched"]);
    for (name, builder) in &record.builders {
        let line = format!(
            "`{}` is taken in {} by {} (made by run `{id}`, version 2.6.3, public)",
            builder.ami_name,
            builder.region,
            builder.ami()
        );
        assert!(
            second.stderr.contains(&line),
            "{name}: lacks {line:?}:\n{}",
            second.stderr
        );
    }
    assert!(second
        .stderr
        .contains(&format!("cargo xtask publish --local --resume {id}")));
    assert_eq!(
        instances(&repo),
        launched,
        "a refused publish launched instances"
    );

    // A resume adopts an image made with this run's tags (as if Packer finished it but the run
    // never recorded it) instead of failing on its name...
    let forget = |builder: &str| {
        let mut record: serde_json::Value = serde_json::from_str(&repo.read(&record_path)).unwrap();
        let ami = record["builders"][builder]["amis"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        record["builders"][builder]["state"] = "failed".into();
        record["builders"][builder]["amis"] = serde_json::json!([]);
        record["builders"][builder]["error"] = "Packer timed out waiting for the AMI".into();
        repo.write(
            &record_path,
            &serde_json::to_string_pretty(&record).unwrap(),
        );
        ami
    };
    let adopted = forget("us-east-1-1404-hvm");
    let resumed = with_env(
        &repo,
        &["publish", "--local", "--yes", "--resume", &id],
        &[],
    )
    .ok();
    assert!(
        resumed.stderr.contains(&format!("adopted us-east-1-1404-hvm: its image {adopted} in us-east-1 carries this run's tags and a `Verified` verdict")),
        "{resumed:#?}"
    );
    assert!(
        resumed.stdout.contains("2 of 2 builders succeeded"),
        "{resumed:#?}"
    );
    let record = RunRecord::read(&repo.root, &id);
    let hvm = &record.builders["us-east-1-1404-hvm"];
    assert_eq!(hvm.state, "succeeded");
    assert_eq!(hvm.ami(), adopted);
    assert!(
        hvm.note.as_deref().is_some_and(|n| n.contains("adopted")),
        "{hvm:?}"
    );
    assert_eq!(instances(&repo), launched, "an adoption launched instances");

    // ...but never one that bakes another commit (whichever run made it).
    let foreign = forget("eu-west-1-1204-pv");
    let other = "0123456789abcdef0123456789abcdef01234567";
    boto(
        &repo,
        &format!("ec2('eu-west-1').create_tags(Resources=['{foreign}'], Tags=[{{'Key': 'Commit', 'Value': '{other}'}}])"),
    );
    let refused = with_env(
        &repo,
        &["publish", "--local", "--yes", "--resume", &id],
        &[],
    )
    .fails(2, &["FAIL  AMI names", "nothing was launched"]);
    let flat = refused.flat_stderr();
    let line = format!(
        "by {foreign} (made by run `{id}`, version 2.6.3, public); it bakes commit 0123456, not this run's"
    );
    assert!(flat.contains(&line), "lacks {line:?}:\n{}", refused.stderr);
    assert_eq!(instances(&repo), launched);

    // A session token reaches Packer (its template variable and the bundle upload's `-t`),
    // masked, and is never printed or saved.
    let token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789";
    let run = with_env(
        &repo,
        &[
            "test-instance",
            "--local",
            "--only",
            "us-east-1-1204-pv",
            "--json",
        ],
        &[("AWS_SESSION_TOKEN", token)],
    )
    .ok();
    let test_id = run.doc::<BuildDoc>().run_id;
    let template: serde_json::Value =
        serde_json::from_str(&repo.read(&format!("build/runs/{test_id}/template.json"))).unwrap();
    assert_eq!(
        template["variables"]["aws_session_token"],
        "{{env `AWS_SESSION_TOKEN`}}"
    );
    assert!(template["sensitive-variables"]
        .as_array()
        .unwrap()
        .contains(&"aws_session_token".into()));
    assert_eq!(
        template["builders"][0]["token"],
        "{{user `aws_session_token`}}"
    );
    let standin_record = repo.read(&format!("build/runs/{test_id}/standin/standin-record.txt"));
    assert!(standin_record.contains("-t <hidden>"), "{standin_record}");
    assert!(!run.all().contains(token));
    for (path, bytes) in repo.snapshot() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(token),
            "the session token is in {}",
            path.display()
        );
    }

    // A real test build without a terminal and without `--yes` shows its plan and refuses
    // (exit 2) before anything is asked or launched.
    repo.write("build/local.json", r#"{"aws_account_id": "123456789012", "aws_access_key": "AKIAREALLOOKING00000", "aws_secret_key": "real/looking/secret"}"#);
    let run = with_env(&repo, &["test-ebs", "--only", "us-east-1-1404-hvm"], &[]).fails(
        2,
        &["building test images on AWS needs confirmation", "--yes"],
    );
    assert!(
        run.stderr.contains("against AWS (this costs money)"),
        "{run:#?}"
    );
    std::fs::remove_file(repo.path("build/local.json")).unwrap();

    // A named profile works without keys in `build/local.json` (account id and X.509 paths
    // only), resolved once: `release --dry-run` runs every check, the cloud's included, on the
    // real path, aimed at the stand-in through the standard `AWS_ENDPOINT_URL` and the
    // stand-in's `aws` on PATH.
    repo.git_init("2.6");
    let home = repo.home();
    std::fs::write(home.join("cert.pem"), "x509 cert\n").unwrap();
    std::fs::write(home.join("key.pem"), "x509 key\n").unwrap();
    repo.write(
        "build/local.json",
        &serde_json::json!({
            "aws_account_id": "123456789012",
            "aws_signing_cert": home.join("cert.pem"),
            "aws_signing_key": home.join("key.pem"),
        })
        .to_string(),
    );
    let secret = "profileSECRETkey0123456789abcdefghijklmn";
    std::fs::write(
        home.join("credentials"),
        format!(
            "[ci]\naws_access_key_id = AKIAPROFILE000000001\naws_secret_access_key = {secret}\n"
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        common::standin_venv().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let credentials_file = home.join("credentials");
    let endpoint = standin_endpoint(&repo);
    // Without `--push` a real release needs its prepare commit on the remote already (issue 17):
    // the dry run says so, and still asks the cloud with the profile's credentials.
    let run = with_env(
        &repo,
        &["release", "2.6.9", "--dry-run"],
        &[
            ("AWS_PROFILE", "ci"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials_file.to_str().unwrap(),
            ),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("PATH", &path),
        ],
    )
    .fails(2, &["FAIL  prepared"]);
    for needle in [
        "ok    credentials",
        "ok    aws identity  account 123456789012 as `aws_account_id` says",
        "profile `ci`, resolved once",
        "ok    AMI names     32 planned name(s) are free",
        "ok    public AMIs   block public access for AMIs is off in all 8 region(s)",
    ] {
        assert!(
            run.stderr.contains(needle),
            "lacks {needle:?}:\n{}",
            run.stderr
        );
    }
    assert!(!run.all().contains(secret));
    std::fs::remove_file(repo.path("build/local.json")).unwrap();

    // `base-images --local` proposes exactly the seeded change; `--update` writes only that id.
    let matrix = repo.read("build/images.json");
    let run = repo.xtask(&["base-images", "--local"]).ok();
    let proposals: Vec<&str> = run.stdout.lines().filter(|l| l.contains("->")).collect();
    assert_eq!(proposals.len(), 1, "{}", run.stdout);
    assert!(
        proposals[0].contains("-> ami-0abc1404de0f12345 (ubuntu/images/hvm-instance/ubuntu-trusty-14.04-amd64-server-20160101, 2016-01-01)"),
        "{}",
        run.stdout
    );
    let old = run
        .stdout
        .lines()
        .find(|l| l.starts_with("us-east-1-1404-hvm ") && l.contains("instance_store_ami"))
        .unwrap();
    assert!(
        old.ends_with("ami-eb6b8480 (ubuntu/images/hvm-instance/ubuntu-trusty-14.04-amd64-server-20150701, 2015-07-01)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        repo.read("build/images.json"),
        matrix,
        "without --update nothing is written"
    );
    // The stand-in's made-up catalogue never reaches the real matrix: `--local --update` writes
    // a copy beside the stand-in, where that one id changes, and every base image's name is
    // recorded after its id (the cloud preflight asks for base images by these names).
    let run = repo.xtask(&["base-images", "--local", "--update"]).ok();
    assert!(
        run.stdout.contains("updated `target/standin/images.json`"),
        "{}",
        run.stdout
    );
    assert_eq!(repo.read("build/images.json"), matrix);
    let updated = repo.read("target/standin/images.json");
    let without_names: String = updated
        .lines()
        .filter(|l| !l.contains("_ami_name\": "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        without_names,
        matrix.replacen(
            "\"instance_store_ami\": \"ami-eb6b8480\"",
            "\"instance_store_ami\": \"ami-0abc1404de0f12345\"",
            1
        )
    );
    // Every base image found gets its name: all but the instance-store one of
    // `us-east-1-1204-pv`, whose row names one image as both bases (the stand-in holds it as
    // EBS, so no instance-store image fits and that row keeps its id without a name).
    for (field, unnamed) in [("instance_store_ami", 1), ("ebs_ami", 0)] {
        let ids = matrix.matches(&format!("\"{field}\": ")).count();
        let names = updated.matches(&format!("\"{field}_name\": ")).count();
        assert_eq!(names, ids - unnamed, "{field}: {updated}");
    }
    assert!(updated.contains("\"instance_store_ami\": \"ami-0abc1404de0f12345\",\n            \"instance_store_ami_name\": \"ubuntu/images/hvm-instance/ubuntu-trusty-14.04-amd64-server-20160101\""), "{updated}");
    repo.xtask(&["local", "down"]).ok();
}
