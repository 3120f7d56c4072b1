//! Issue 18: the stand-in protects images from deregistration as EC2 does, so the release and
//! retire steps that use it can be rehearsed: `EnableImageDeregistrationProtection` (with or
//! without the 24-hour cooldown), `DisableImageDeregistrationProtection`, the
//! `DeregistrationProtection` field of `DescribeImages`, and `DeregisterImage` refused while an
//! image is protected. Asked through the `aws` CLI of the stand-in's virtualenv, as a user would.

use crate::common;

use common::Repo;
use std::process::Command;

/// An `aws` call against the stand-in kept by `local up`, failing or not: (exit code, stdout,
/// stderr). `common::standin_aws` asserts success; a refusal is what these tests look at.
fn aws(repo: &Repo, args: &[&str]) -> (i32, String, String) {
    let output = common::standin_aws_output(repo, "us-east-1", "text", args);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

#[track_caller]
fn answer(repo: &Repo, args: &[&str]) -> String {
    let (code, stdout, stderr) = aws(repo, args);
    assert_eq!(code, 0, "aws {args:?} failed: {stderr}");
    stdout
}

fn register(repo: &Repo, name: &str) -> String {
    answer(
        repo,
        &[
            "ec2",
            "register-image",
            "--name",
            name,
            "--query",
            "ImageId",
        ],
    )
}

fn shown(repo: &Repo, id: &str) -> String {
    answer(
        repo,
        &[
            "ec2",
            "describe-images",
            "--image-ids",
            id,
            "--query",
            "Images[0].DeregistrationProtection",
        ],
    )
}

fn deregister(repo: &Repo, id: &str) -> (i32, String, String) {
    aws(repo, &["ec2", "deregister-image", "--image-id", id])
}

fn exists(repo: &Repo, id: &str) -> bool {
    let ids = answer(
        repo,
        &[
            "ec2",
            "describe-images",
            "--owners",
            "self",
            "--query",
            "Images[].ImageId",
        ],
    );
    ids.split_whitespace().any(|i| i == id)
}

#[test]
fn protected_images_cannot_be_deregistered_and_the_cooldown_outlasts_disabling() {
    let repo = Repo::new("standin-protection");
    // Asked before and after the cooldown starts: a run across midnight sees either date.
    let before = date_in_a_day();
    repo.xtask(&["local", "up"]).ok();
    let plain = register(&repo, "plain-image");
    let without = register(&repo, "protected-without-cooldown");
    let with = register(&repo, "protected-with-cooldown");

    // A new image is not protected, and says so.
    assert_eq!(shown(&repo, &plain), "disabled");

    // Enabling answers the protection now in force, which `describe-images` shows too.
    let enable = [
        "ec2",
        "enable-image-deregistration-protection",
        "--image-id",
    ];
    let args: Vec<&str> = enable.iter().copied().chain([without.as_str()]).collect();
    assert_eq!(answer(&repo, &args), "enabled-without-cooldown");
    let args: Vec<&str> = enable
        .iter()
        .copied()
        .chain([with.as_str(), "--with-cooldown"])
        .collect();
    assert_eq!(answer(&repo, &args), "enabled-with-cooldown");
    assert_eq!(shown(&repo, &without), "enabled-without-cooldown");
    assert_eq!(shown(&repo, &with), "enabled-with-cooldown");

    // A protected image is refused, with a reason, and stays.
    for id in [&without, &with] {
        let (code, _, stderr) = deregister(&repo, id);
        assert_ne!(code, 0, "{id} was deregistered while protected");
        assert!(
            stderr.contains("OperationNotPermitted")
                && stderr.contains("deregistration protection"),
            "{stderr}"
        );
        assert!(exists(&repo, id));
    }

    // Disabling lifts protection at once without the cooldown; with it, the image stays
    // protected for 24 hours, and `describe-images` says until when.
    let disable = [
        "ec2",
        "disable-image-deregistration-protection",
        "--image-id",
    ];
    for id in [&without, &with] {
        let args: Vec<&str> = disable.iter().copied().chain([id.as_str()]).collect();
        assert_eq!(answer(&repo, &args), "disabled");
    }
    assert_eq!(shown(&repo, &without), "disabled");
    let cooling = shown(&repo, &with);
    let until = cooling
        .strip_prefix("disabled-until ")
        .unwrap_or_else(|| panic!("no cooldown shown: {cooling:?}"));
    let (code, _, stderr) = deregister(&repo, &with);
    assert_ne!(code, 0, "deregistered within its cooldown");
    assert!(
        stderr.contains(&format!("cooldown until {until}")),
        "{stderr}"
    );
    assert!(exists(&repo, &with));
    // The cooldown ends a day from now (the stand-in's clock is this machine's).
    let tomorrow = [before, date_in_a_day()];
    assert!(
        tomorrow.iter().any(|day| until.starts_with(day.as_str())),
        "{until} is not a day from now ({tomorrow:?})"
    );

    // Enabling and disabling again without the cooldown does not shorten the one running.
    let args: Vec<&str> = enable.iter().copied().chain([with.as_str()]).collect();
    answer(&repo, &args);
    let args: Vec<&str> = disable.iter().copied().chain([with.as_str()]).collect();
    answer(&repo, &args);
    assert_ne!(deregister(&repo, &with).0, 0, "the cooldown was cut short");

    // Unprotected images go as before; an unknown image is refused as EC2 refuses it.
    assert_eq!(deregister(&repo, &without).0, 0);
    assert_eq!(deregister(&repo, &plain).0, 0);
    assert!(!exists(&repo, &without) && !exists(&repo, &plain));
    let args: Vec<&str> = enable
        .iter()
        .copied()
        .chain(["ami-0123456789abcdef0"])
        .collect();
    let (code, _, stderr) = aws(&repo, &args);
    assert_ne!(code, 0);
    assert!(stderr.contains("InvalidAMIID"), "{stderr}");
    repo.xtask(&["local", "down"]).ok();
}

/// The UTC date (`YYYY-MM-DD`) a day from now, as `date` prints it.
fn date_in_a_day() -> String {
    let output = Command::new("date")
        .args(["-u", "-d", "+1 day", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
