//! Issue 3: real Packer builds against the local AWS stand-in (moto + a loopback sshd), the
//! secret masking, resume, and the preflight refusals.

use crate::common;

use common::{BuildDoc, Repo, RunExt, RunRecord};
use serde_json::Value;

/// The stand-in's endpoint port recorded in a run's template: nothing may listen there after.
fn assert_standin_stopped(repo: &Repo, id: &str) {
    let template: Value =
        serde_json::from_str(&repo.read(&format!("build/runs/{id}/template.json"))).unwrap();
    let endpoint = template["builders"][0]["custom_endpoint_ec2"]
        .as_str()
        .unwrap();
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the stand-in still listens on {port}"
    );
    let ssh_port = template["builders"][0]["ssh_port"].as_u64().unwrap() as u16;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", ssh_port)).is_err(),
        "sshd still listens on {ssh_port}"
    );
}

/// The kept root of one builder's image in a local run.
fn image_root(repo: &Repo, id: &str, builder: &str) -> std::path::PathBuf {
    repo.path(&format!("build/runs/{id}/image-root/{builder}"))
}

fn kept(repo: &Repo, id: &str, builder: &str, file: &str) -> String {
    std::fs::read_to_string(image_root(repo, id, builder).join(file))
        .unwrap_or_else(|e| panic!("{builder}: `{file}`: {e}"))
}

#[test]
fn test_ebs_local_runs_the_real_provisioning_and_checks_its_reports() {
    let repo = Repo::new("ebs-local");
    let registry = repo.read("ami_ids.json");
    repo.xtask(&["local", "up"]).ok();
    let run = repo
        .command_in(".", &["test-ebs", "--local", "--json"])
        .env("SOURCE_DATE_EPOCH", "1795573423")
        .run()
        .ok();
    // `--json`: the document on stdout, everything for people on stderr.
    let doc: BuildDoc = run.doc();
    assert!(doc.ok && doc.failed.is_empty(), "{doc:#?}");
    let builders = &doc.run.builders;
    assert_eq!(builders.len(), 4);
    assert_eq!(doc.succeeded, 4);
    let id = doc.run_id.clone();
    for (name, b) in builders {
        assert_eq!(b.state, "succeeded", "{name}: {b:?}");
        assert!(b.ami().starts_with("ami-"));
        assert!(run.stderr.contains(b.ami()), "summary lists the AMI");
        // Every builder's report was downloaded and its ComboAMI commit recorded.
        let report: Value =
            serde_json::from_str(&repo.read(&format!("build/runs/{id}/reports/{name}.json")))
                .unwrap();
        // Measured in the image: what its own ds0_utils.py says, at the commit being built.
        assert_eq!(report["comboami"]["version"], "2.6.3", "{name}");
        assert_eq!(
            b.comboami_commit.as_deref(),
            report["comboami"]["commit"].as_str(),
            "{name}"
        );
        assert!(report["packages"]["mdadm"].is_string(), "{name}: {report}");
    }
    assert!(run.stderr.contains("4 of 4 builders succeeded"));
    // Without a terminal: one line per builder state change, not one per Packer message.
    let changes: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("[")).collect();
    assert_eq!(changes.len(), 8, "{}", run.stderr);
    for name in builders.keys() {
        assert!(
            run.stderr.contains(&format!("] {name}: started")),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("] {name}: finished\n")),
            "{}",
            run.stderr
        );
    }
    // The stand-in is kept by `local up`: the hint cleans it up there.
    assert!(
        run.stderr.contains(&format!(
            "remove them with `cargo xtask cleanup --run {id} --local --execute`"
        )),
        "{}",
        run.stderr
    );

    // The real build/provision.sh made a 2.6 image of the simulated root of an HVM 14.04 builder.
    let hvm = "us-east-1-1404-hvm";
    assert!(kept(&repo, &id, hvm, "boot/grub/menu.lst").contains("ro console=ttyS0"));
    assert!(!kept(&repo, &id, hvm, "boot/grub/menu.lst").contains("hvc0"));
    let fstab = kept(&repo, &id, hvm, "etc/fstab");
    assert!(
        !fstab.contains("LABEL=UEFI") && fstab.contains("cloudimg-rootfs"),
        "{fstab}"
    );
    let hook = image_root(&repo, &id, hvm).join("etc/init.d/start-ami-script.sh");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&hook).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "the boot hook is executable");
    }
    assert!(
        kept(&repo, &id, hvm, "etc/init.d/start-ami-script.sh").contains("python ds0_updater.py")
    );
    let limits = kept(&repo, &id, hvm, "etc/security/limits.d/cassandra.conf");
    assert!(
        limits.contains("cassandra - nofile 100000") && limits.contains("root - memlock unlimited"),
        "{limits}"
    );
    assert_eq!(
        kept(&repo, &id, hvm, "etc/sysctl.d/99-cassandra.conf"),
        "vm.max_map_count = 131072\n"
    );
    let profile = kept(&repo, &id, hvm, "home/ubuntu/.profile");
    assert!(
        profile.starts_with("python datastax_ami/ds4_motd.py\n"),
        "{profile}"
    );
    assert!(
        profile.contains("export JAVA_HOME=/usr/lib/jvm/java-7-openjdk-amd64"),
        "{profile}"
    );
    let clone = image_root(&repo, &id, hvm).join("home/ubuntu/datastax_ami");
    assert_eq!(
        common::git_in(&clone, &repo.home(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "2.6\n",
        "checked out at the branch of ds0_utils.py"
    );
    // This repository's own files at the commit being built, and nothing written into them.
    assert_eq!(
        common::git_in(&clone, &repo.home(), &["status", "--porcelain"]),
        "",
        "the checkout is clean"
    );
    assert_eq!(
        kept(&repo, &id, hvm, "home/ubuntu/datastax_ami/ds0_utils.py"),
        repo.read("ds0_utils.py")
    );
    let rc = image_root(&repo, &id, hvm).join("etc/rc2.d/S99start-ami-script.sh");
    assert_eq!(
        std::fs::read_link(&rc).unwrap(),
        std::path::Path::new("../init.d/start-ami-script.sh")
    );
    // 12.04 left the main archive: its images are built from, and keep, old-releases.
    for builder in ["us-east-1-1204-hvm", "us-east-1-1204-pv"] {
        let sources = kept(&repo, &id, builder, "etc/apt/sources.list");
        assert!(
            sources.starts_with("deb http://old-releases.ubuntu.com/ubuntu precise main"),
            "{sources}"
        );
        assert_eq!(
            kept(
                &repo,
                &id,
                builder,
                "etc/cloud/cloud.cfg.d/99-comboami-archive.cfg"
            ),
            "apt_preserve_sources_list: true\n"
        );
        let report: Value =
            serde_json::from_str(&repo.read(&format!("build/runs/{id}/reports/{builder}.json")))
                .unwrap();
        assert_eq!(report["archive"], "http://old-releases.ubuntu.com/ubuntu");
    }
    assert!(!image_root(&repo, &id, hvm)
        .join("etc/ssh/ssh_host_rsa_key")
        .exists());
    assert!(!image_root(&repo, &id, hvm)
        .join("home/ubuntu/.ssh/authorized_keys")
        .exists());
    let instances = std::fs::read_dir(image_root(&repo, &id, hvm).join("var/lib/cloud/instances"))
        .unwrap()
        .count();
    assert_eq!(instances, 0, "cloud-init runs again at first boot");
    assert!(image_root(&repo, &id, hvm)
        .join("tmp/ec2/bin/ec2-bundle-vol")
        .exists());
    // Its commands went to the recording stand-ins.
    let commands = repo.read(&format!("build/runs/{id}/image-root/{hvm}.commands"));
    for command in [
        "apt-get -y -q -o Acquire::Retries=3 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confnew dist-upgrade",
        "install --no-install-recommends mdadm",
        "install grub",
        "update-rc.d -f start-ami-script.sh start 99 2 3 4 5 .",
        "git clone https://github.com/riptano/ComboAMI.git /home/ubuntu/datastax_ami",
        "curl -fsSL --retry 3 -o",
    ] {
        assert!(commands.contains(command), "`{command}` not run:\n{commands}");
    }
    // Its AMIs exist only in the stand-in: its output is never merged into the registry.
    let merged = repo.read("ami_ids.json");
    repo.xtask(&["ami-ids", &format!("build/runs/{id}/output-1.log")])
        .fails(
            2,
            &["is the output of a local run (its `run.json` says so)"],
        );
    assert_eq!(repo.read("ami_ids.json"), merged);
    // A PV builder keeps its boot menu; its fstab is not an HVM one's business.
    let pv = "us-east-1-1404-pv";
    assert!(kept(&repo, &id, pv, "boot/grub/menu.lst").contains("ro console=hvc0"));
    assert!(kept(&repo, &id, pv, "etc/fstab").contains("LABEL=UEFI"));
    assert!(!repo
        .read(&format!("build/runs/{id}/image-root/{pv}.commands"))
        .contains("install grub"));

    // The template of a local test-ebs build, machine details aside, is the golden one.
    let text = repo.read(&format!("build/runs/{id}/template.json"));
    let template: Value = serde_json::from_str(&text).unwrap();
    let port = &template["builders"][0]["ssh_port"];
    let endpoint = template["builders"][0]["custom_endpoint_ec2"]
        .as_str()
        .unwrap();
    let text = text
        .replace(&repo.root.display().to_string(), "$ROOT")
        .replace(
            &format!("\"ssh_port\": {port}"),
            "\"ssh_port\": \"$SSH_PORT\"",
        )
        .replace(endpoint, "$EC2_ENDPOINT")
        .replace(&doc.run.commit, "$COMMIT");
    common::golden("template-test-ebs-local.json", &text);

    // A provisioning that bakes another version is caught by its report.
    let wrong = repo
        .command_in(".", &["test-ebs", "--local", "--only", "us-east-1-1204-pv"])
        .env("XTASK_LOCAL_WRONG_VERSION", "us-east-1-1204-pv")
        .run()
        .fails(1, &["1 of 1 builders did not succeed"]);
    // The error's last line is the fix.
    assert!(
        wrong.stderr.trim_end().ends_with(
            "\nfix: the summary above says why each failed; \
             `cargo xtask test-ebs --only us-east-1-1204-pv --local` rebuilds only those"
        ),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong.stdout.contains(
            "the baked `ds0_utils.py` says version `2.6.3-wrong`, but the run builds `2.6.3`; \
             the checkout `/home/ubuntu/datastax_ami` was changed after the clone: M ds0_utils.py"
        ),
        "{wrong:#?}"
    );
    let newest = common::run_ids(&repo.root).pop().unwrap();
    assert_ne!(newest, id);
    let rec = RunRecord::read(&repo.root, &newest);
    assert_eq!(rec.builders["us-east-1-1204-pv"].state, "failed");

    // Test images are listed, never merged.
    assert_eq!(registry, repo.read("ami_ids.json"));
    repo.xtask(&["local", "down"]).ok();
    assert_standin_stopped(&repo, &id);
}

/// One `test-instance --local` of two builders on `--branch 2.6-next`, run once for the tests
/// that read it. The stand-in of ec2-upload-bundle prints its arguments, secret key included,
/// the way a verbose or failing real tool would.
fn instance_run() -> &'static (&'static Repo, common::Run, BuildDoc) {
    static RUN: std::sync::OnceLock<(&'static Repo, common::Run, BuildDoc)> =
        std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let repo = Repo::new("instance-local").shared();
        let script = repo.read("build/local/bundle-upload.sh");
        repo.write(
            "build/local/bundle-upload.sh",
            &script.replacen("set -eu\n", "set -eu\necho \"called with: $*\"\n", 1),
        );
        let run = repo
            .xtask(&[
                "test-instance",
                "--local",
                "--only",
                "us-east-1-1404-hvm,us-east-1-1204-pv",
                "--branch",
                "2.6-next",
                "--json",
            ])
            .ok();
        let doc = run.doc();
        (repo, run, doc)
    })
}

#[test]
fn test_instance_local_bundles_and_uploads() {
    let (repo, run, doc) = instance_run();
    let id = &doc.run_id;
    let rec = &doc.run;
    // `--branch` bakes that branch, with the version of `ds0_utils.py`.
    assert_eq!(rec.branch, "2.6-next");
    assert!(run.stderr.contains("branch 2.6-next"), "{}", run.stderr);
    let report: Value = serde_json::from_str(
        &repo.read(&format!("build/runs/{id}/reports/us-east-1-1204-pv.json")),
    )
    .unwrap();
    assert_eq!(report["comboami"]["branch"], "2.6-next");
    assert_eq!(report["comboami"]["version"], "2.6.3");
    assert_eq!(rec.builders.len(), 2);
    let hvm = &rec.builders["us-east-1-1404-hvm"];
    assert_eq!(hvm.state, "succeeded");
    let bundle = hvm.bundle.as_deref().unwrap();
    assert!(
        bundle.starts_with("comboami-test-2.6.3-us-east-1/"),
        "{bundle}"
    );
    let standin_record = repo.read(&format!("build/runs/{id}/standin/standin-record.txt"));
    assert!(
        standin_record.contains("bundle-vol builder=us-east-1-1404-hvm"),
        "{standin_record}"
    );
    assert!(
        standin_record.contains("--partition mbr"),
        "HVM 14.04 needs an MBR partition"
    );
    assert!(
        standin_record.contains(&format!(
            "bundle-upload builder=us-east-1-1404-hvm args= -b {bundle}"
        )),
        "{standin_record}"
    );
    assert!(standin_record.contains("-s <hidden>"));
    assert_standin_stopped(repo, id);
}

#[test]
fn secrets_echoed_by_a_bundle_command_are_masked_everywhere() {
    let (repo, run, doc) = instance_run();
    let vars: Value = serde_json::from_str(&repo.read("target/standin/local.json")).unwrap();
    let secret = vars["aws_secret_key"].as_str().unwrap();
    let access = vars["aws_access_key"].as_str().unwrap();
    assert!(
        !run.all().contains(secret) && !run.all().contains(access),
        "terminal output leaks"
    );
    let id = &doc.run_id;
    let output = repo.read(&format!("build/runs/{id}/output-1.log"));
    assert!(
        output.contains("called with:") && output.contains("-s <sensitive>"),
        "the echo happened and was masked:\n{output}"
    );
    for entry in std::fs::read_dir(repo.path(&format!("build/runs/{id}"))).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(secret) && !text.contains(access),
                "{} leaks a secret",
                path.display()
            );
        }
    }
    let standin_record = repo.read(&format!("build/runs/{id}/standin/standin-record.txt"));
    assert!(!standin_record.contains(secret));
}

#[test]
fn publish_failure_then_resume_rebuilds_only_the_failed_builder() {
    let repo = Repo::new("resume");
    let registry = repo.read("ami_ids.json");
    repo.xtask(&["local", "up"]).ok();
    let only = "us-east-1-1404-hvm,eu-west-1-1204-pv,ap-southeast-2-1404-pv,sa-east-1-1204-hvm";
    // One builder fails in provisioning.
    let first = repo
        .command_in(
            ".",
            &["publish", "--local", "--yes", "--only", only, "--json"],
        )
        .env("XTASK_LOCAL_FAIL", "eu-west-1-1204-pv")
        .run();
    assert_eq!(first.code, 1, "{first:#?}");
    let doc: BuildDoc = first.doc();
    let id = doc.run_id.clone();
    assert!(!doc.ok);
    assert_eq!(doc.failed, ["eu-west-1-1204-pv"]);
    assert!(
        first.stderr.contains("3 of 4 builders succeeded"),
        "{}",
        first.stderr
    );
    let resume = format!("cargo xtask publish --resume {id} --local");
    assert!(first.stderr.contains(&resume), "{}", first.stderr);
    assert!(
        doc.retry.as_deref().is_some_and(|r| r.contains(&resume)),
        "{doc:#?}"
    );
    let rec = &doc.run;
    assert_eq!(rec.builders["eu-west-1-1204-pv"].state, "failed");
    let first_amis: Vec<String> = [
        "us-east-1-1404-hvm",
        "ap-southeast-2-1404-pv",
        "sa-east-1-1204-hvm",
    ]
    .iter()
    .map(|b| rec.builders[*b].ami().to_string())
    .collect();

    // A changed input is refused.
    let ds0 = repo.read("ds0_utils.py");
    repo.write("ds0_utils.py", &ds0.replace("\"2.6.3\"", "\"2.6.4\""));
    repo.xtask(&["publish", "--local", "--yes", "--resume"])
        .fails(2, &["`ds0_utils.py` changed since run", "restore it"]);
    repo.write("ds0_utils.py", &ds0);

    let second = repo
        .xtask(&["publish", "--local", "--yes", "--resume"])
        .ok();
    let rec = RunRecord::read(&repo.root, &id);
    assert_eq!(rec.attempts[1].builders, ["eu-west-1-1204-pv"]);
    assert!(
        second.stdout.contains("4 of 4 builders succeeded"),
        "{}",
        second.stdout
    );
    let scratch = repo.read(&format!("build/runs/{id}/ami_ids.json"));
    for ami in &first_amis {
        assert!(
            scratch.contains(ami.as_str()),
            "{ami} from the first attempt is kept"
        );
    }
    assert!(scratch.contains(rec.builders["eu-west-1-1204-pv"].ami()));
    assert_eq!(
        registry,
        repo.read("ami_ids.json"),
        "a rehearsal never writes the real registry"
    );

    // Nothing left to resume.
    let third = repo
        .xtask(&["publish", "--local", "--yes", "--resume", &id])
        .ok();
    assert!(third.all().contains("nothing to rebuild"), "{third:#?}");

    // A new run asks for names that exist: the cloud preflight refuses, naming the image, and
    // launches nothing.
    let epoch = rec.epoch.to_string();
    let again = |extra: &[&str]| {
        let mut args = vec![
            "publish",
            "--local",
            "--yes",
            "--only",
            "us-east-1-1404-hvm",
        ];
        args.extend_from_slice(extra);
        repo.command_in(".", &args)
            .env("SOURCE_DATE_EPOCH", &epoch)
            .run()
    };
    let refused = again(&[]).fails(2, &["nothing was launched"]);
    // The report wraps at 80 columns: compare its words.
    let words = refused
        .stderr
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains(&format!("is taken in us-east-1 by {}", first_amis[0])),
        "{}",
        refused.stderr
    );
    // Past the preflight (`--skip-cloud-checks`), Packer refuses the name, reported with the id.
    let skipped = again(&["--skip-cloud-checks"]);
    assert_eq!(skipped.code, 1, "{skipped:#?}");
    assert!(
        skipped
            .stdout
            .contains(&format!("already exists: {}", first_amis[0])),
        "{}",
        skipped.stdout
    );
    assert!(skipped
        .stdout
        .contains("cloud checks: SKIPPED with --skip-cloud-checks"));
    repo.xtask(&["local", "down"]).ok();
}

#[test]
fn preflight_refusals_launch_nothing() {
    let repo = Repo::new("preflight");
    let before = repo.snapshot();
    repo.xtask(&["test-ebs"]).fails(
        2,
        &["`build/local.json` not found: copy `build/local-default.json` to `build/local.json`"],
    );
    std::fs::copy(
        repo.path("build/local-default.json"),
        repo.path("build/local.json"),
    )
    .unwrap();
    repo.xtask(&["publish", "--yes"]).fails(
        2,
        &["still has the placeholder values of `build/local-default.json` in `aws_account_id`, `aws_access_key`, `aws_secret_key`, `aws_signing_cert`, `aws_signing_key`"],
    );
    repo.write(
        "build/local.json",
        r#"{"aws_account_id": "111122223333", "aws_access_key": "AKIAREALLOOKING00000", "aws_secret_key": "real/looking/secret", "aws_signing_cert": "missing-cert.pem", "aws_signing_key": "missing-key.pem"}"#,
    );
    let run = repo.xtask(&["test-instance"]).fails(
        2,
        &[
            "field `aws_signing_cert`: cannot read `missing-cert.pem`",
            "field `aws_signing_key`: cannot read `missing-key.pem`",
        ],
    );
    assert!(!run.all().contains("real/looking/secret"));
    repo.write("cert.pem", "c");
    repo.write("key.pem", "k");
    repo.write(
        "build/local.json",
        r#"{"aws_account_id": "111122223333", "aws_access_key": "AKIAREALLOOKING00000", "aws_secret_key": "real/looking/secret", "aws_signing_cert": "cert.pem", "aws_signing_key": "key.pem"}"#,
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            repo.path("build/local.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    // No terminal and no --yes: the plan is shown, then refused.
    let run = repo.xtask(&["publish"]).fails(
        2,
        &[
            "readable by group or others (mode 644)",
            "plan: official build of ComboAMI 2.6.3 (branch 2.6)",
            "launches 32 m3.medium instance(s) in 8 region(s)",
            "PUBLIC",
            "publishing needs confirmation",
        ],
    );
    assert!(!run.all().contains("real/looking/secret"));
    // `--private`: the plan says so, from the template it would run.
    repo.xtask(&["publish", "--private", "--local"]).fails(
        2,
        &[
            "images will be PRIVATE (ami_groups empty",
            "`ami_ids.json` is left alone",
            "publishing needs confirmation",
        ],
    );
    // No packer on PATH.
    repo.command_in(".", &["test-ebs", "--local"])
        .env("PATH", "/nonexistent")
        .run()
        .fails(2, &["`packer` not found on PATH", "apt-get install packer"]);
    let mut now = repo.snapshot();
    now.retain(|(p, _)| {
        !p.ends_with("local.json") && !p.ends_with("cert.pem") && !p.ends_with("key.pem")
    });
    assert_eq!(before, now, "a refused build writes nothing");
}

/// The end of a publish names the packages that changed in each image since the previous
/// publish: two small publishes, the archive's curl for 14.04 newer for the second.
#[test]
fn a_publish_names_the_packages_that_changed_since_the_previous_one() {
    let repo = Repo::new("package-changes");
    let only = "us-west-2-1404-pv,us-west-2-1204-hvm";
    let first = repo
        .xtask(&["publish", "--local", "--yes", "--only", only])
        .ok();
    assert!(
        !first.stdout.contains("packages changed"),
        "{}",
        first.stdout
    );
    let previous = common::run_ids(&repo.root).pop().unwrap();
    let trusty = repo.read("build/local/fixtures/archive/trusty.txt");
    repo.write(
        "build/local/fixtures/archive/trusty.txt",
        &trusty.replace("package curl 14.04-standin1", "package curl 14.04-standin2"),
    );
    let second = repo
        .xtask(&["publish", "--local", "--yes", "--only", only])
        .ok();
    assert!(
        second
            .stdout
            .contains(&format!("packages changed since run `{previous}`:")),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains(" us-west-2-1404-pv:\n    ~ curl 14.04-standin1 -> 14.04-standin2\n"),
        "{}",
        second.stdout
    );
    assert!(
        !second.stdout.contains("1204-hvm:\n    ~ curl"),
        "{}",
        second.stdout
    );
}

/// Issue 17: a provisioning that leaves out any declared item fails its builders naming it, and
/// nothing is merged. One Packer run of a `build/provision.sh` with several steps broken.
#[test]
fn a_sabotaged_provisioning_fails_its_builders_naming_each_item() {
    let repo = Repo::new("sabotage");
    let registry = repo.read("ami_ids.json");
    let script = repo.read("build/provision.sh");
    let mut sabotaged = script.clone();
    for (step, broken) in [
        ("apt_get install --no-install-recommends mdadm\n", ""),
        (
            "update-rc.d -f start-ami-script.sh start 99 2 3 4 5 .\n",
            "",
        ),
        (
            "for user in cassandra root; do",
            "for user in cassandra; do",
        ),
        (
            "echo \"vm.max_map_count = 131072\" >\"$root/etc/sysctl.d/99-cassandra.conf\"\n",
            "",
        ),
        ("    echo \"python datastax_ami/ds4_motd.py\"\n", ""),
        ("rm -f \"$root\"/etc/ssh/ssh_host_*\n", ""),
        (
            "rm -rf \"$root/var/lib/cloud/instance\" \"$root\"/var/lib/cloud/instances/*\n",
            "",
        ),
        ("    sed -i '/LABEL=UEFI/d' \"$root/etc/fstab\"\n", ""),
    ] {
        assert!(
            sabotaged.contains(step),
            "`{step}` is no longer in the script"
        );
        sabotaged = sabotaged.replace(step, broken);
    }
    repo.write("build/provision.sh", &sabotaged);
    let only = "us-east-1-1404-hvm,us-east-1-1204-pv";
    repo.command_in(".", &["publish", "--local", "--yes", "--only", only])
        .run()
        .fails(1, &["2 of 2 builders did not succeed"]);
    let id = common::run_ids(&repo.root).pop().unwrap();
    let rec = RunRecord::read(&repo.root, &id);
    for builder in only.split(',') {
        let b = &rec.builders[builder];
        assert_eq!(b.state, "failed", "{builder}: {b:?}");
        let error = b.error.as_deref().unwrap();
        for item in [
            "package `mdadm` is not installed",
            "`/etc/rc2.d/S99start-ami-script.sh` (the boot hook's rc link of runlevel 2) is missing",
            "`/etc/security/limits.d/cassandra.conf` (the limits file) lacks the line `root - nofile 100000`",
            "`/etc/sysctl.d/99-cassandra.conf` (the sysctl file) is missing",
            "`/home/ubuntu/.profile` (the login profile of `ubuntu`) does not start with the line `python datastax_ami/ds4_motd.py`",
            "`/etc/ssh/ssh_host_rsa_key` (an SSH host key) must not ship",
            "`/var/lib/cloud/instance` (cloud-init instance state) must not ship",
        ] {
            assert!(error.contains(item), "{builder}: `{item}` not named: {error}");
        }
        let hvm_only = "`/etc/fstab` (the HVM fstab) still has `LABEL=UEFI`";
        assert_eq!(
            error.contains(hvm_only),
            builder.ends_with("1404-hvm"),
            "{error}"
        );
        assert!(
            error.contains("is rejected (private, not merged"),
            "{error}"
        );
    }
    let id = common::run_ids(&repo.root).pop().unwrap();
    assert_eq!(
        repo.read(&format!("build/runs/{id}/ami_ids.json")),
        registry
    );
    assert_eq!(repo.read("ami_ids.json"), registry);
}

/// The stand-in refuses what the archive would: a misspelled package, an archive that no longer
/// serves the release, an EC2 tools zip of another layout.
#[test]
fn the_standin_refuses_what_the_archive_and_downloads_would() {
    let repo = Repo::new("archive");
    repo.xtask(&["local", "up"]).ok();
    let script = repo.read("build/provision.sh");
    repo.write(
        "build/provision.sh",
        &script.replace(
            "install --no-install-recommends mdadm",
            "install --no-install-recommends mdamd",
        ),
    );
    // 12.04's rows without their archive setting: the EC2 mirror no longer serves precise.
    let matrix = repo.read("build/images.json");
    let without = matrix.replace(
        "\"archives\": {\n            \"1204\": \"http://old-releases.ubuntu.com/ubuntu\"\n        },",
        "",
    );
    assert_ne!(without, matrix);
    repo.write("build/images.json", &without);
    let run = repo
        .command_in(
            ".",
            &[
                "test-ebs",
                "--local",
                "--only",
                "us-east-1-1404-pv,us-east-1-1204-pv",
            ],
        )
        .run()
        .fails(1, &["2 of 2 builders did not succeed"]);
    let id = common::run_ids(&repo.root).pop().unwrap();
    let log = repo.read(&format!("build/runs/{id}/output-1.log"));
    assert!(
        log.contains("us-east-1-1404-pv: E: Unable to locate package mdamd"),
        "{log}"
    );
    assert!(
        log.contains(
            "us-east-1-1204-pv: W: Failed to fetch http://us-east-1.ec2.archive.ubuntu.com/ubuntu/dists/precise/main/binary-amd64/Packages  404  Not Found"
        ),
        "{log}"
    );
    // The summary says why, in apt's words, before Packer's exit status.
    for (builder, cause) in [
        ("us-east-1-1404-pv", "E: Unable to locate package mdamd"),
        (
            "us-east-1-1204-pv",
            "E: Some index files failed to download.",
        ),
    ] {
        assert!(
            run.stdout
                .contains(&format!("{builder}  FAILED       {cause}")),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout
                .contains("(Script exited with non-zero exit status: 100"),
            "{}",
            run.stdout
        );
    }

    // A zip without the layout the bundle commands need fails the step, not installs nothing.
    repo.write("build/provision.sh", &script);
    repo.write("build/images.json", &matrix);
    std::fs::remove_dir_all(repo.path("build/local/fixtures/ec2-ami-tools/etc")).unwrap();
    repo.command_in(".", &["test-ebs", "--local", "--only", "us-east-1-1404-pv"])
        .run()
        .fails(1, &["1 of 1 builders did not succeed"]);
    let id = common::run_ids(&repo.root).pop().unwrap();
    let log = repo.read(&format!("build/runs/{id}/output-1.log"));
    assert!(
        log.contains("ec2-ami-tools-1.5.3.zip has no `ec2-ami-tools-1.5.3/etc/`"),
        "{log}"
    );

    // A user the image does not have is refused, as chown would (long before step 13).
    let typo = script.replace("chown -R ubuntu:ubuntu", "chown -R ubnutu:ubuntu");
    assert_ne!(typo, script);
    repo.write("build/provision.sh", &typo);
    repo.command_in(".", &["test-ebs", "--local", "--only", "us-east-1-1404-pv"])
        .run()
        .fails(1, &["1 of 1 builders did not succeed"]);
    let log = repo.read(&format!(
        "build/runs/{}/output-1.log",
        common::run_ids(&repo.root).pop().unwrap()
    ));
    assert!(
        log.contains("chown: invalid user: 'ubnutu:ubuntu'"),
        "{log}"
    );
    repo.xtask(&["local", "down"]).ok();
}
