//! The cloud preflight's questions, asked through the `aws` CLI before anything is launched:
//! every region at once (a bounded number of `aws` processes at a time), every answer kept, so
//! `core::preflight` can report every failure together.

use crate::aws::Aws;
use crate::core::preflight::{self, Adopted, Bucket, Facts, Hints, Outcome, Ownership, Planned};
use crate::core::release;
use crate::error::FixContext;
use crate::standin::{self, Standin};
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use xshell::Shell;

pub struct Request<'a> {
    pub planned: &'a [Planned],
    pub public: bool,
    pub expected_account: Option<String>,
    pub credentials_source: Option<String>,
    /// Set on a resume: images with these tags are adopted.
    pub owner: Option<Ownership>,
    pub hints: Hints<'a>,
    pub same_base_for_both: Vec<(String, String)>,
}

/// One question to AWS.
#[derive(Debug, Clone)]
enum Ask {
    Identity,
    Base(String),
    Named(String),
    BlockPublic(String),
    HeadBucket(String),
    Ownership(String),
}

pub fn check(sh: &Shell, aws: &Aws, request: &Request) -> Outcome {
    let planned = request.planned;
    let mut asks: Vec<(Ask, String, Vec<String>)> = Vec::new();
    let any_region = planned
        .first()
        .map(|p| p.region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    asks.push((
        Ask::Identity,
        any_region,
        vec!["sts".into(), "get-caller-identity".into()],
    ));
    for region in preflight::regions(planned) {
        let in_region: Vec<&Planned> = planned.iter().filter(|p| p.region == region).collect();
        let mut ids: Vec<&str> = in_region.iter().map(|p| p.source_ami.as_str()).collect();
        ids.sort();
        ids.dedup();
        let names: Vec<&str> = in_region.iter().map(|p| p.ami_name.as_str()).collect();
        let filter = |name: &str, values: &[&str]| {
            serde_json::json!([{ "Name": name, "Values": values }]).to_string()
        };
        asks.push((
            Ask::Base(region.clone()),
            region.clone(),
            vec![
                "ec2".into(),
                "describe-images".into(),
                "--filters".into(),
                filter("image-id", &ids),
            ],
        ));
        asks.push((
            Ask::Named(region.clone()),
            region.clone(),
            vec![
                "ec2".into(),
                "describe-images".into(),
                "--owners".into(),
                "self".into(),
                "--filters".into(),
                filter("name", &names),
            ],
        ));
        if request.public {
            asks.push((
                Ask::BlockPublic(region.clone()),
                region.clone(),
                vec!["ec2".into(), "get-image-block-public-access-state".into()],
            ));
        }
    }
    let buckets = preflight::buckets(planned);
    for (bucket, region) in &buckets {
        asks.push((
            Ask::HeadBucket(bucket.clone()),
            region.clone(),
            vec![
                "s3api".into(),
                "head-bucket".into(),
                "--bucket".into(),
                bucket.clone(),
            ],
        ));
    }
    let mut facts = Facts {
        expected_account: request.expected_account.clone(),
        credentials_source: request.credentials_source.clone(),
        same_base_for_both: request.same_base_for_both.clone(),
        ..Default::default()
    };
    let answers = ask_all(sh, aws, &questions(&asks));
    let mut follow_up = Vec::new();
    for ((ask, region, _), answer) in asks.iter().zip(answers) {
        match ask {
            Ask::Identity => {
                facts.identity = Some(answer.and_then(|t| preflight::parse_identity(&t)));
            }
            Ask::Base(r) => {
                facts
                    .base
                    .insert(r.clone(), answer.and_then(|t| preflight::parse_images(&t)));
            }
            Ask::Named(r) => {
                facts
                    .named
                    .insert(r.clone(), answer.and_then(|t| preflight::parse_images(&t)));
            }
            Ask::BlockPublic(r) => {
                facts.block_public.insert(
                    r.clone(),
                    answer.and_then(|t| preflight::parse_block_state(&t)),
                );
            }
            Ask::HeadBucket(bucket) => {
                let fact = match answer {
                    Ok(text) => {
                        follow_up.push((
                            Ask::Ownership(bucket.clone()),
                            region.clone(),
                            vec![
                                "s3api".into(),
                                "get-bucket-ownership-controls".into(),
                                "--bucket".into(),
                                bucket.clone(),
                            ],
                        ));
                        Bucket::Ours {
                            region: preflight::parse_bucket_region(&text),
                            object_ownership: None,
                        }
                    }
                    Err(e) if e.contains("(404)") || e.contains("Not Found") => Bucket::Free,
                    Err(e) if e.contains("(403)") || e.contains("Forbidden") => Bucket::Foreign,
                    Err(e) => Bucket::Error(e),
                };
                facts.buckets.insert(bucket.clone(), fact);
            }
            Ask::Ownership(_) => {}
        }
    }
    let answers = ask_all(sh, aws, &questions(&follow_up));
    for ((ask, _, _), answer) in follow_up.iter().zip(answers) {
        if let (Ask::Ownership(bucket), Ok(text)) = (ask, answer) {
            if let Some(Bucket::Ours {
                object_ownership, ..
            }) = facts.buckets.get_mut(bucket)
            {
                *object_ownership = preflight::parse_ownership(&text);
            }
        }
    }
    preflight::evaluate(
        planned,
        &facts,
        request.public,
        request.owner.as_ref(),
        &request.hints,
    )
}

fn questions(asks: &[(Ask, String, Vec<String>)]) -> Vec<(String, Vec<String>)> {
    asks.iter()
        .map(|(_, region, args)| (region.clone(), args.clone()))
        .collect()
}

/// Runs every question (`aws ARGS` in REGION), [`crate::aws::pool`] at a time; answers in the order
/// asked.
pub fn ask_all(
    sh: &Shell,
    aws: &Aws,
    asks: &[(String, Vec<String>)],
) -> Vec<Result<String, String>> {
    // Commands are made here, on the shell's thread; only the processes run on the workers.
    let commands: Vec<Mutex<Option<Command>>> = asks
        .iter()
        .map(|(region, args)| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Mutex::new(Some(aws.command(sh, region, &args)))
        })
        .collect();
    let outputs = crate::aws::in_pool(&commands, crate::aws::pool(), |slot| {
        let command = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        command.map(|mut command| command.stdin(std::process::Stdio::null()).output())
    });
    asks.iter()
        .zip(outputs)
        .map(|((region, args), output)| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match output {
                Some(Ok(output)) => aws
                    .answer(region, &args, &output)
                    .map_err(|e| format!("{e:#}")),
                Some(Err(e)) => Err(format!("cannot run `aws`: {e}")),
                None => Err("not asked".into()),
            }
        })
        .collect()
}

/// For the report's heading.
pub fn describe(request: &Request) -> String {
    let regions = preflight::regions(request.planned);
    format!(
        "cloud checks: {} builder(s) in {} region(s), asked through `aws`",
        request.planned.len(),
        regions.len()
    )
}

/// What a build asks of the cloud before it launches.
pub struct Gate<'a> {
    pub planned: Vec<Planned>,
    pub public: bool,
    /// Set for `--local`: the stand-in answers, and its account is the expected one.
    pub standin: Option<&'a Standin>,
    /// `aws_account_id` of `build/local.json`, for real builds.
    pub expected_account: Option<String>,
    pub credentials_source: Option<String>,
    pub owner: Option<Ownership>,
    /// The command that resumes a run, without its id.
    pub resume: String,
    pub same_base_for_both: Vec<(String, String)>,
}

/// Asks (the stand-in, or AWS through the user's `aws`) and judges, without printing a report.
pub fn ask(sh: &Shell, root: &Path, gate: Gate) -> Result<Outcome> {
    let aws = match gate.standin {
        Some(standin) => {
            for line in standin.rehearse(sh)? {
                eprintln!("local: rehearsing {line}");
            }
            Aws::local(standin)
        }
        None => Aws::real(sh, root)?,
    };
    let expected_account = match gate.standin {
        Some(_) => Some(standin::ACCOUNT_ID.to_string()),
        None => gate.expected_account,
    };
    let request = Request {
        planned: &gate.planned,
        public: gate.public,
        expected_account,
        credentials_source: gate.credentials_source,
        owner: gate.owner,
        hints: Hints {
            resume: &gate.resume,
            local: gate.standin.is_some(),
        },
        same_base_for_both: gate.same_base_for_both,
    };
    eprintln!("{}...", describe(&request));
    Ok(check(sh, &aws, &request))
}

/// Asks, prints the report, and refuses (exit 2) when a check failed; returns the images a
/// resume adopts.
pub fn gate(sh: &Shell, root: &Path, gate: Gate) -> Result<Vec<Adopted>> {
    let outcome = ask(sh, root, gate)?;
    let report = release::report(&outcome.checks);
    // Short lines: the report stays readable in an 80-column terminal.
    eprint!(
        "{}",
        preflight::wrap_report(&report.replacen("preflight:", "cloud preflight:", 1), 80)
    );
    let failed = release::failures(&outcome.checks);
    if failed > 0 {
        return Err(anyhow::anyhow!(
            "{failed} cloud check(s) failed: every failure is listed above"
        ))
        .fix(
            || "the cloud preflight failed; nothing was launched".to_string(),
            || "fix what the report says and run the same command again (only in an emergency: `--skip-cloud-checks`)".to_string(),
        );
    }
    Ok(outcome.adopted)
}

/// The loud line of a plan (and a run record's reason) when the cloud checks are skipped.
pub const SKIPPED: &str =
    "!!! CLOUD CHECKS SKIPPED (`--skip-cloud-checks`): AWS is not asked before launching; \
     a taken name, a missing base AMI or blocked public sharing fails only after instances run";

/// What the run record says when the cloud checks were skipped.
pub const SKIPPED_RECORD: &str = "SKIPPED with --skip-cloud-checks";
