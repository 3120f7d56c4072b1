//! The cloud preflight's questions, asked through the `aws` CLI before anything is launched:
//! every region at once (a bounded number of `aws` processes at a time), every answer kept, so
//! `pure::preflight` can report every failure together.

use crate::aws::{self, Aws};
use crate::error::FixContext;
use crate::pure::ec2;
use crate::pure::preflight::{self, Adopted, Facts, Hints, ImageAsk, Outcome, Ownership};
use crate::pure::release;
use crate::pure::template::PlannedBuilder;
use crate::standin::{self, Standin};
use anyhow::Result;
use std::path::Path;
use xshell::Shell;

pub struct Request<'a> {
    pub planned: &'a [PlannedBuilder],
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
    Images(ImageAsk),
    BlockPublic(String),
    Bucket(String),
}

/// A question with the region it is asked in and the `aws` arguments that ask it.
type Question = (Ask, String, Vec<String>);

pub fn check(sh: &Shell, aws: &Aws, request: &Request) -> Outcome {
    let mut facts = Facts {
        expected_account: request.expected_account.clone(),
        credentials_source: request.credentials_source.clone(),
        same_base_for_both: request.same_base_for_both.clone(),
        ..Default::default()
    };
    let asks = questions(request);
    let answers = aws.run_all_with(sh, &arguments(&asks), &progress(&asks));
    for ((ask, region, _), answer) in asks.iter().zip(answers) {
        record(&mut facts, ask, region, answer);
    }
    // Only when a bucket exists: the account's bucket list names its region, and tells a
    // bucket of another account that lets this one read it from one of ours.
    if preflight::any_bucket_exists(&facts.buckets) {
        let names = facts.buckets.keys().map(String::as_str);
        let args = aws::ask::list_buckets(&preflight::common_prefix(names));
        let region = asks.last().map(|(_, r, _)| r.clone()).unwrap_or_default();
        let answer = aws
            .run_all(sh, &[(region, args)])
            .pop()
            .expect("one answer");
        let list = answer.and_then(|t| preflight::parse_bucket_list(&t).map_err(|e| e.to_string()));
        preflight::apply_bucket_list(&mut facts.buckets, list);
    }
    preflight::evaluate(
        request.planned,
        &facts,
        request.public,
        request.owner.as_ref(),
        &request.hints,
    )
}

/// Every question of the first round: identity once; per region its images (the base AMIs and
/// our images with a planned name: one question by name, or two, see
/// `preflight::image_questions`) and, for a public build, the block-public-access state; per
/// bundle bucket whether it exists and whose it is (its ownership controls answer all three).
fn questions(request: &Request) -> Vec<Question> {
    let planned = request.planned;
    let any_region = planned
        .first()
        .map(|p| p.region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    let mut asks = vec![(Ask::Identity, any_region, aws::ask::identity())];
    for region in preflight::regions(planned) {
        for (ask, query) in preflight::image_questions(planned, &region) {
            asks.push((Ask::Images(ask), region.clone(), query.args()));
        }
        if request.public {
            let args = aws::ask::block_public_state();
            asks.push((Ask::BlockPublic(region.clone()), region.clone(), args));
        }
    }
    for (bucket, region) in preflight::buckets(planned) {
        let args = aws::ask::bucket_ownership(&bucket);
        asks.push((Ask::Bucket(bucket), region, args));
    }
    asks
}

/// Keeps one answer in `facts`.
fn record(facts: &mut Facts, ask: &Ask, region: &str, answer: Result<String, String>) {
    let images = |answer: Result<String, String>| {
        answer.and_then(|t| ec2::parse_images(&t).map_err(|e| e.to_string()))
    };
    match ask {
        Ask::Identity => {
            facts.identity =
                Some(answer.and_then(|t| preflight::parse_identity(&t).map_err(|e| e.to_string())));
        }
        Ask::Images(ask) => {
            let images = images(answer);
            let region = region.to_string();
            if matches!(ask, ImageAsk::Both | ImageAsk::Base) {
                facts.base.insert(region.clone(), images.clone());
            }
            if matches!(ask, ImageAsk::Both | ImageAsk::Named) {
                facts.named.insert(region.clone(), images);
            }
            if *ask == ImageAsk::Both {
                facts.by_name.insert(region);
            }
        }
        Ask::BlockPublic(r) => {
            let state =
                answer.and_then(|t| preflight::parse_block_state(&t).map_err(|e| e.to_string()));
            facts.block_public.insert(r.clone(), state);
        }
        Ask::Bucket(bucket) => {
            facts
                .buckets
                .insert(bucket.clone(), preflight::parse_bucket(answer));
        }
    }
}

/// Says each region as its last answer comes in (`  us-east-1 answered (3 of 8 regions)`), so
/// the half minute of questions is not silent.
fn progress(asks: &[Question]) -> impl Fn(usize) + Sync + '_ {
    let mut left: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (_, region, _) in asks {
        *left.entry(region.as_str()).or_default() += 1;
    }
    let regions = left.len();
    let left = std::sync::Mutex::new(left);
    move |i| {
        let region = asks[i].1.as_str();
        let mut left = left.lock().unwrap_or_else(|e| e.into_inner());
        let count = left.get_mut(region).expect("a region asked");
        *count -= 1;
        // After a Ctrl-C the interrupt's line is the last word, not a region's answer.
        if *count == 0 && !crate::interrupt::requested() {
            let done = left.values().filter(|&&n| n == 0).count();
            eprintln!("  {region} answered ({done} of {regions} regions)");
        }
    }
}

fn arguments(asks: &[Question]) -> Vec<(String, Vec<String>)> {
    asks.iter()
        .map(|(_, region, args)| (region.clone(), args.clone()))
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
    pub planned: Vec<PlannedBuilder>,
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
