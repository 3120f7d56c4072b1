//! The `aws` command-line tool, run through xshell with `--output json`: no SDK crate, so the
//! tool keeps compiling in seconds. Credentials travel in the child's environment, never on its
//! command line, and every error it prints is masked.

use crate::credentials;
use crate::error::FixContext;
use crate::pure::cleanup::{self, Tagged};
use crate::pure::ec2::{self, Image, ImageQuery};
use crate::pure::mask::Masker;
use crate::standin::{self, Standin};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use xshell::{cmd, Shell};

pub struct Aws {
    program: String,
    endpoint: Option<String>,
    environment: Vec<(&'static str, String)>,
    masker: Masker,
}

impl Aws {
    /// The user's `aws`, with the keys of `build/local.json` when it has them, else the standard
    /// AWS environment and configuration.
    pub fn real(sh: &Shell, root: &Path) -> Result<Aws> {
        let (environment, masker) = credentials::for_aws_cli(sh, root)?;
        let aws = Aws {
            program: "aws".into(),
            endpoint: None,
            environment,
            masker,
        };
        aws.check(sh)?;
        Ok(aws)
    }

    /// The stand-in's `aws` (installed in its virtualenv), aimed at its endpoint with its dummy
    /// keys; the user's AWS configuration is kept out.
    pub fn local(standin: &Standin) -> Aws {
        Aws {
            program: standin.aws_cli().display().to_string(),
            endpoint: Some(standin.endpoint()),
            environment: vec![
                ("AWS_ACCESS_KEY_ID", standin::ACCESS_KEY.to_string()),
                ("AWS_SECRET_ACCESS_KEY", standin::SECRET_KEY.to_string()),
                ("AWS_CONFIG_FILE", "/dev/null".to_string()),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
            ],
            masker: Masker::new([standin::SECRET_KEY]),
        }
    }

    fn check(&self, sh: &Shell) -> Result<()> {
        let program = &self.program;
        if cmd!(sh, "{program} --version")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_err()
        {
            bail!(
                "`aws` not found on PATH: install the AWS command-line tool (Debian: `apt-get install awscli`; \
                 elsewhere: https://aws.amazon.com/cli/) and configure it, or fill in `{}`",
                credentials::LOCAL_JSON
            );
        }
        Ok(())
    }

    /// Runs `aws ARGS --region REGION --output json` and returns its stdout.
    pub fn run(&self, sh: &Shell, region: &str, args: &[&str]) -> Result<String> {
        let output = self.command(sh, region, args).output().map_err(|e| {
            anyhow::anyhow!("cannot run `aws {}`: {e}", args.first().unwrap_or(&""))
        })?;
        self.answer(region, args, &output)
    }

    /// The images `query` finds in `region`.
    pub fn describe_images(
        &self,
        sh: &Shell,
        region: &str,
        query: &ImageQuery,
    ) -> Result<Vec<Image>> {
        let args = query.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(ec2::parse_images(&self.run(sh, region, &args)?)?)
    }

    /// [`Aws::describe_images`] for every `(region, query)` at once, [`pool`] at a time; the
    /// answers (or errors, as text) in the order asked.
    pub fn describe_images_in(
        &self,
        sh: &Shell,
        asks: &[(String, ImageQuery)],
    ) -> Vec<Result<Vec<Image>, String>> {
        let questions: Vec<(String, Vec<String>)> = asks
            .iter()
            .map(|(region, query)| (region.clone(), query.args()))
            .collect();
        self.run_all(sh, &questions)
            .into_iter()
            .map(|answer| answer.and_then(|t| ec2::parse_images(&t).map_err(|e| e.to_string())))
            .collect()
    }

    /// Runs every question (`aws ARGS` in REGION), [`pool`] at a time; the answers (or errors,
    /// as text) in the order asked.
    pub fn run_all(
        &self,
        sh: &Shell,
        asks: &[(String, Vec<String>)],
    ) -> Vec<Result<String, String>> {
        self.run_all_with(sh, asks, &|_| {})
    }

    /// As [`Aws::run_all`], calling `answered(i)` (on a worker thread) as soon as the answer to
    /// `asks[i]` is in: a long round of questions can show its progress.
    pub fn run_all_with(
        &self,
        sh: &Shell,
        asks: &[(String, Vec<String>)],
        answered: &(dyn Fn(usize) + Sync),
    ) -> Vec<Result<String, String>> {
        // Commands are made here, on the shell's thread; only the processes run on the workers.
        let commands: Vec<(usize, Mutex<Option<Command>>)> = asks
            .iter()
            .enumerate()
            .map(|(i, (region, args))| {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (i, Mutex::new(Some(self.command(sh, region, &args))))
            })
            .collect();
        let outputs = in_pool(&commands, pool(), |(i, slot)| {
            let command = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            let output =
                command.map(|mut command| command.stdin(std::process::Stdio::null()).output());
            answered(*i);
            output
        });
        asks.iter()
            .zip(outputs)
            .map(|((region, args), output)| {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                match output {
                    Some(Ok(output)) => self
                        .answer(region, &args, &output)
                        .map_err(|e| format!("{e:#}")),
                    Some(Err(e)) => Err(format!("cannot run `aws`: {e}")),
                    None => Err("not asked".into()),
                }
            })
            .collect()
    }

    /// Our snapshots that carry every tag of `tag_filters` (`Name=tag:K,Values=V`).
    pub fn snapshots(
        &self,
        sh: &Shell,
        region: &str,
        tag_filters: &[String],
    ) -> Result<Vec<Tagged>> {
        let ask = [
            "ec2",
            "describe-snapshots",
            "--owner-ids",
            "self",
            "--filters",
        ];
        self.tagged(sh, region, &ask, tag_filters, ("Snapshots", "SnapshotId"))
    }

    /// The volumes no instance uses (`available`) that carry every tag of `tag_filters`.
    pub fn loose_volumes(
        &self,
        sh: &Shell,
        region: &str,
        tag_filters: &[String],
    ) -> Result<Vec<Tagged>> {
        let ask = [
            "ec2",
            "describe-volumes",
            "--filters",
            "Name=status,Values=available",
        ];
        self.tagged(sh, region, &ask, tag_filters, ("Volumes", "VolumeId"))
    }

    /// `ask` with `tag_filters` added, its answer's `(list, id)` read as tagged resources.
    fn tagged(
        &self,
        sh: &Shell,
        region: &str,
        ask: &[&str],
        tag_filters: &[String],
        (list, id): (&'static str, &str),
    ) -> Result<Vec<Tagged>> {
        let mut args = ask.to_vec();
        args.extend(tag_filters.iter().map(String::as_str));
        Ok(cleanup::parse_tagged(
            &self.run(sh, region, &args)?,
            list,
            id,
        )?)
    }

    /// What uses images in a region, by image id: instances that are not terminated, and the
    /// latest and default versions of every launch template.
    pub fn image_users(&self, sh: &Shell, region: &str) -> Result<BTreeMap<String, Vec<String>>> {
        let states = "Name=instance-state-name,Values=pending,running,stopping,stopped";
        let instances = self.run(
            sh,
            region,
            &["ec2", "describe-instances", "--filters", states],
        )?;
        let versions = [
            "ec2",
            "describe-launch-template-versions",
            "--versions",
            "$Latest",
            "$Default",
        ];
        let templates = self.run(sh, region, &versions)?;
        Ok(cleanup::parse_users(&instances, &templates)?)
    }

    pub fn deregister_image(&self, sh: &Shell, region: &str, id: &str) -> Result<()> {
        self.run(sh, region, &["ec2", "deregister-image", "--image-id", id])?;
        Ok(())
    }

    pub fn delete_snapshot(&self, sh: &Shell, region: &str, id: &str) -> Result<()> {
        self.run(sh, region, &["ec2", "delete-snapshot", "--snapshot-id", id])?;
        Ok(())
    }

    pub fn delete_volume(&self, sh: &Shell, region: &str, id: &str) -> Result<()> {
        self.run(sh, region, &["ec2", "delete-volume", "--volume-id", id])?;
        Ok(())
    }

    /// Deprecates an image at `at` (`YYYY-MM-DDTHH:MM:SSZ`, in the future).
    pub fn deprecate_image(&self, sh: &Shell, region: &str, id: &str, at: &str) -> Result<()> {
        let args = [
            "ec2",
            "enable-image-deprecation",
            "--image-id",
            id,
            "--deprecate-at",
            at,
        ];
        self.run(sh, region, &args)?;
        Ok(())
    }

    /// Removes the launch permission `all`: the image is private again.
    pub fn make_image_private(&self, sh: &Shell, region: &str, id: &str) -> Result<()> {
        let args = [
            "ec2",
            "modify-image-attribute",
            "--image-id",
            id,
            "--launch-permission",
            "Remove=[{Group=all}]",
        ];
        self.run(sh, region, &args)?;
        Ok(())
    }

    /// Every key of a bucket (the CLI pages through them); a bucket that is gone holds none.
    /// One call per bucket, however many bundles it holds.
    pub fn bucket_keys(&self, sh: &Shell, region: &str, bucket: &str) -> Result<Vec<String>> {
        match self.run(
            sh,
            region,
            &["s3api", "list-objects-v2", "--bucket", bucket],
        ) {
            Ok(out) => Ok(cleanup::object_keys(&out)?),
            Err(e) if format!("{e:#}").contains("NoSuchBucket") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes everything under `s3://BUCKET/PREFIX/`; false when the bucket is gone.
    pub fn delete_prefix(
        &self,
        sh: &Shell,
        region: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<bool> {
        let url = format!("s3://{bucket}/{prefix}/");
        match self.run(
            sh,
            region,
            &["s3", "rm", "--recursive", "--only-show-errors", &url],
        ) {
            Ok(_) => Ok(true),
            Err(e) if format!("{e:#}").contains("NoSuchBucket") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a bundle folder (`BUCKET/PREFIX`), then its bucket if nothing else is left in
    /// it; returns what was done, one line each.
    pub fn delete_bundle(&self, sh: &Shell, region: &str, location: &str) -> Result<Vec<String>> {
        let (bucket, prefix) = cleanup::split_bundle(location);
        let mut done = Vec::new();
        if !self.delete_prefix(sh, region, &bucket, &prefix)? {
            return Ok(done);
        }
        done.push(format!("deleted s3://{bucket}/{prefix}/"));
        done.extend(self.delete_bucket_if_empty(sh, region, &bucket)?);
        Ok(done)
    }

    /// Deletes a bucket that holds nothing (it may hold other builds' bundles); says so.
    pub fn delete_bucket_if_empty(
        &self,
        sh: &Shell,
        region: &str,
        bucket: &str,
    ) -> Result<Option<String>> {
        let args = [
            "s3api",
            "list-objects-v2",
            "--bucket",
            bucket,
            "--max-keys",
            "1",
        ];
        let left = match self.run(sh, region, &args) {
            Ok(out) => cleanup::count_objects(&out)?,
            Err(e) if format!("{e:#}").contains("NoSuchBucket") => return Ok(None),
            Err(e) => return Err(e),
        };
        if left > 0 {
            return Ok(None);
        }
        self.run(sh, region, &["s3api", "delete-bucket", "--bucket", bucket])?;
        Ok(Some(format!("deleted empty bucket {bucket}")))
    }

    /// The command [`Aws::run`] runs, to be run elsewhere (several regions at once: a `Shell`
    /// stays on its thread, a `Command` may move).
    pub fn command(&self, sh: &Shell, region: &str, args: &[&str]) -> std::process::Command {
        log_call(sh, region, args);
        let program = &self.program;
        let endpoint: Vec<String> = match &self.endpoint {
            Some(url) => vec!["--endpoint-url".into(), url.clone()],
            None => Vec::new(),
        };
        let mut command = cmd!(
            sh,
            "{program} {endpoint...} --region {region} --output json {args...}"
        )
        .quiet()
        .env("AWS_PAGER", "");
        for (key, value) in &self.environment {
            command = command.env(key, value);
        }
        let mut command = std::process::Command::from(command);
        if sh.var("AWS_PROFILE").is_ok_and(|p| p.is_empty()) {
            // Resolved by `credentials::resolve_profile`: an empty profile would be an unknown one.
            command.env_remove("AWS_PROFILE");
        }
        command
    }

    /// The stdout of a finished [`Aws::command`], or its error, masked and explained.
    pub fn answer(
        &self,
        region: &str,
        args: &[&str],
        output: &std::process::Output,
    ) -> Result<String> {
        let stderr = self
            .masker
            .mask(&String::from_utf8_lossy(&output.stderr))
            .into_owned();
        if !output.status.success() {
            let mut message = format!(
                "`aws {}` failed in {region}: {}",
                args.iter().take(2).copied().collect::<Vec<_>>().join(" "),
                stderr.trim()
            );
            if stderr.contains("Unable to locate credentials") {
                message.push_str(&format!(
                    " (fill in `aws_access_key` and `aws_secret_key` in `{}`, set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` or `AWS_PROFILE`, or run `aws configure`)",
                    credentials::LOCAL_JSON
                ));
                // Not a problem of one region: every other call would fail the same way.
                return Err(anyhow::Error::new(Unconfigured).context(message));
            }
            if is_network_error(&stderr) {
                return Err(anyhow::anyhow!(message)).fix(
                    || format!("a network error: `aws` could not reach AWS in {region}"),
                    || "check the network connection (and `HTTPS_PROXY` if a proxy is needed; for `--local`, that the stand-in runs: `cargo xtask local up`), then run the same command again".to_string(),
                );
            }
            bail!(message);
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The arguments of the questions asked many at once through [`Aws::run_all`] (the cloud
/// preflight's), so that this module stays the one place that spells `aws` commands.
pub mod ask {
    fn words(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    /// Whose credentials these are (account and ARN).
    pub fn identity() -> Vec<String> {
        words(&["sts", "get-caller-identity"])
    }

    /// Whether the region blocks public sharing of images.
    pub fn block_public_state() -> Vec<String> {
        words(&["ec2", "get-image-block-public-access-state"])
    }

    /// A bucket's object ownership (whether it takes ACLs); refused as `NoSuchBucket` for a
    /// free name and `AccessDenied` for another account's bucket.
    pub fn bucket_ownership(bucket: &str) -> Vec<String> {
        words(&["s3api", "get-bucket-ownership-controls", "--bucket", bucket])
    }

    /// The account's buckets whose names start with `prefix`, each with its region (S3 names
    /// `BucketRegion` only when the request has a parameter: `--prefix`, or `--max-buckets`
    /// for an empty prefix).
    pub fn list_buckets(prefix: &str) -> Vec<String> {
        if prefix.is_empty() {
            words(&["s3api", "list-buckets", "--max-buckets", "10000"])
        } else {
            words(&["s3api", "list-buckets", "--prefix", prefix])
        }
    }
}

/// What the `aws` CLI (botocore) prints when it cannot reach the endpoint at all.
fn is_network_error(stderr: &str) -> bool {
    [
        "Could not connect to the endpoint URL",
        "Connect timeout on endpoint URL",
        "Read timeout on endpoint URL",
        "Failed to resolve",
        "Name or service not known",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// With `XTASK_AWS_LOG=FILE`, every `aws` call appends one line to FILE (region and the first
/// two arguments: never a value that could be a secret), so a test can count the calls.
fn log_call(sh: &Shell, region: &str, args: &[&str]) {
    use std::io::Write;
    let Ok(path) = sh.var("XTASK_AWS_LOG") else {
        return;
    };
    let line = format!(
        "{region} {}\n",
        args.iter().take(2).copied().collect::<Vec<_>>().join(" ")
    );
    // One short append (O_APPEND) per call: concurrent calls do not mix their lines.
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Marks an error that no retry in another region can avoid: `aws` has no credentials.
#[derive(Debug)]
pub struct Unconfigured;

impl std::fmt::Display for Unconfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the `aws` command has no credentials")
    }
}

impl std::error::Error for Unconfigured {}

/// How many `aws` processes run at once: regions are independent, and each call waits mostly
/// on the network, but the CLI's start-up costs CPU (a 2-core machine runs four well).
/// `XTASK_AWS_POOL` changes it (1: one region after another, as the benchmark compares).
pub fn pool() -> usize {
    std::env::var("XTASK_AWS_POOL")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4)
}

/// Runs `work` for every region on a small bounded pool of threads, each call with its own
/// shell; the results come back in the order of `regions`. A cleanup, retire or audit of every
/// region then costs about as much as its slowest region.
pub fn each_region<T, F>(regions: &[String], work: F) -> Vec<T>
where
    T: Send,
    F: Fn(&Shell, &str) -> T + Sync,
{
    in_pool(regions, pool(), |region| {
        let sh = Shell::new().expect("a shell starts where the main one did");
        work(&sh, region)
    })
}

/// Runs `work` on every item, at most `size` at once on scoped threads; the results come back
/// in the order of `items`. The one pool behind every concurrent `aws` call.
pub fn in_pool<I, T, F>(items: &[I], size: usize, work: F) -> Vec<T>
where
    I: Sync,
    T: Send,
    F: Fn(&I) -> T + Sync,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<T>>> =
        std::sync::Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..size.max(1).min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was worked on"))
        .collect()
}

/// Deregistration protection (issue 18): `retire --deregister` lifts it first.
impl Aws {
    /// Lifts an image's deregistration protection; if it was enabled with the cooldown, AWS
    /// keeps it 24 more hours (`describe-images` then shows until when).
    pub fn disable_deregistration_protection(
        &self,
        sh: &Shell,
        region: &str,
        id: &str,
    ) -> Result<()> {
        let args = [
            "ec2",
            "disable-image-deregistration-protection",
            "--image-id",
            id,
        ];
        self.run(sh, region, &args)?;
        Ok(())
    }
}

/// The calls that record what an image proved: its verdict as tags, its report in S3 for any
/// machine to fetch again.
impl Aws {
    /// Tags every resource (an image and its snapshots) with `key=value`; the tags go as JSON,
    /// so a value may hold spaces and commas.
    pub fn tag_resources(
        &self,
        sh: &Shell,
        region: &str,
        ids: &[String],
        key: &str,
        value: &str,
    ) -> Result<()> {
        let tags = serde_json::json!([{ "Key": key, "Value": value }]).to_string();
        let mut args = vec!["ec2", "create-tags", "--resources"];
        args.extend(ids.iter().map(String::as_str));
        args.extend(["--tags", &tags]);
        self.run(sh, region, &args)?;
        Ok(())
    }

    /// Stores the file `body` as `s3://BUCKET/KEY`, making the bucket when it is missing (an
    /// EBS build has no bundle that made it).
    pub fn put_object(
        &self,
        sh: &Shell,
        region: &str,
        (bucket, key): (&str, &str),
        body: &Path,
    ) -> Result<()> {
        let body = body.display().to_string();
        let put = [
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            key,
            "--body",
            &body,
        ];
        match self.run(sh, region, &put) {
            Err(e) if format!("{e:#}").contains("NoSuchBucket") => {
                let mut args = vec!["s3api", "create-bucket", "--bucket", bucket];
                let constraint = format!("LocationConstraint={region}");
                // us-east-1 refuses its own name as a location constraint.
                if region != "us-east-1" {
                    args.extend(["--create-bucket-configuration", &constraint]);
                }
                self.run(sh, region, &args)?;
                self.run(sh, region, &put)?;
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// The text of `s3://BUCKET/KEY`, or `None` when the bucket or the key does not exist.
    pub fn get_object(
        &self,
        sh: &Shell,
        region: &str,
        (bucket, key): (&str, &str),
    ) -> Result<Option<String>> {
        let url = format!("s3://{bucket}/{key}");
        match self.run(sh, region, &["s3", "cp", "--only-show-errors", &url, "-"]) {
            Ok(text) => Ok(Some(text)),
            Err(e) => {
                let text = format!("{e:#}");
                let missing = ["NoSuchBucket", "NoSuchKey", "404", "Not Found"];
                if missing.iter().any(|m| text.contains(m)) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn failed(stderr: &str) -> anyhow::Error {
        let aws = Aws {
            program: "aws".into(),
            endpoint: None,
            environment: Vec::new(),
            masker: Masker::new(["secret"]),
        };
        let output = std::process::Output {
            status: std::process::ExitStatus::from_raw(255 << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        };
        aws.answer("eu-west-1", &["ec2", "describe-images"], &output)
            .unwrap_err()
    }

    #[test]
    fn a_network_error_is_named_with_its_fix() {
        let error = failed(
            "\nCould not connect to the endpoint URL: \"https://ec2.eu-west-1.amazonaws.com/\"\n",
        );
        let text = crate::error::render_error(&error, &Default::default());
        assert!(
            text.contains("a network error: `aws` could not reach AWS in eu-west-1"),
            "{text}"
        );
        assert!(
            text.contains("Could not connect to the endpoint URL"),
            "{text}"
        );
        assert!(text.contains("fix: check the network connection"), "{text}");
        let other = crate::error::render_error(
            &failed("An error occurred (AuthFailure): secret"),
            &Default::default(),
        );
        assert!(!other.contains("network"), "{other}");
        assert!(!other.contains("secret"), "the masker hides it: {other}");
    }
}
