//! The cloud preflight's rules: what a build plans (from its template), what AWS answered (the
//! `aws` CLI's JSON), and the checks that come out of both — every failure with its fix, and the
//! images a resume adopts. Pure: the answers are gathered by `cloud.rs`.

use crate::pure::ec2::{parse_answer, Image, ImageQuery, NotJson};
use crate::pure::json;
use crate::pure::release::Check;
use crate::pure::template::{Plan, PlannedBuilder};
use crate::pure::verdict::Verdict;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The builders of a plan the preflight checks: all of them, or those named in `only`.
pub fn builders(plan: &Plan, only: &[String]) -> Vec<PlannedBuilder> {
    plan.builders
        .iter()
        .filter(|b| only.is_empty() || only.contains(&b.name))
        .cloned()
        .collect()
}

/// The S3 bucket of an instance-store builder's bundle.
fn bucket(builder: &PlannedBuilder) -> Option<String> {
    let bundle = builder.bundle.as_deref()?;
    bundle.split('/').next().map(String::from)
}

/// Builders whose row names one image as both its instance-store and its EBS base image.
pub fn same_base_for_both(matrix: &crate::pure::matrix::Matrix) -> Vec<(String, String)> {
    matrix
        .images
        .iter()
        .filter(|r| r.ebs_ami.as_ref() == Some(&r.instance_store_ami))
        .map(|r| (r.builder_name(), r.instance_store_ami.clone()))
        .collect()
}

/// The regions of a plan, sorted, once each.
pub fn regions(planned: &[PlannedBuilder]) -> Vec<String> {
    let set: BTreeSet<&str> = planned.iter().map(|p| p.region.as_str()).collect();
    set.into_iter().map(String::from).collect()
}

/// The buckets of a plan with their regions, once each.
pub fn buckets(planned: &[PlannedBuilder]) -> BTreeMap<String, String> {
    planned
        .iter()
        .filter_map(|p| bucket(p).map(|b| (b, p.region.clone())))
        .collect()
}

/// What one `describe-images` question of the preflight asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAsk {
    /// By name alone: the base images (by the names the matrix records) and the planned names,
    /// in one question. Anyone's images come back; only the account's own take a name.
    Both,
    /// The base AMIs by id, whoever owns them.
    Base,
    /// The account's own images with a planned name.
    Named,
}

/// The `describe-images` questions of one region. AWS joins filters with AND, so the base AMIs
/// by id and our images by name are two questions; when the matrix records the name of every
/// base image the region's builders start from, both are one question by name. Base images
/// are asked with deprecated ones included: Canonical deprecates its images after a while, and
/// a deprecated image still launches.
pub fn image_questions(planned: &[PlannedBuilder], region: &str) -> Vec<(ImageAsk, ImageQuery)> {
    let here: Vec<&PlannedBuilder> = planned.iter().filter(|p| p.region == region).collect();
    let planned_names = here.iter().map(|p| p.ami_name.as_str());
    let base_names: Option<Vec<&str>> = here.iter().map(|p| p.source_name.as_deref()).collect();
    if let Some(base_names) = base_names {
        let names: BTreeSet<&str> = planned_names.chain(base_names).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let query = ImageQuery::default()
            .filter("name", &names)
            .with_deprecated();
        return vec![(ImageAsk::Both, query)];
    }
    let ids: BTreeSet<&str> = here.iter().map(|p| p.source_ami.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let names: Vec<&str> = planned_names.collect();
    vec![
        (ImageAsk::Base, ImageQuery::ids(&ids).with_deprecated()),
        (ImageAsk::Named, ImageQuery::own().filter("name", &names)),
    ]
}

/// An answer of the `aws` CLI the preflight cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unexpected {
    #[error(transparent)]
    NotJson(#[from] NotJson),
    #[error("`aws {command}` named no {what}")]
    Missing {
        command: &'static str,
        what: &'static str,
    },
}

/// The account of `aws sts get-caller-identity`, and the ARN.
pub fn parse_identity(text: &str) -> Result<(String, String), Unexpected> {
    const COMMAND: &str = "sts get-caller-identity";
    let value = parse_answer(text, COMMAND)?;
    match (value["Account"].as_str(), value["Arn"].as_str()) {
        (Some(account), arn) => Ok((account.to_string(), arn.unwrap_or_default().to_string())),
        _ => Err(Unexpected::Missing {
            command: COMMAND,
            what: "account",
        }),
    }
}

/// `unblocked` or `block-new-sharing`, from `aws ec2 get-image-block-public-access-state`.
pub fn parse_block_state(text: &str) -> Result<String, Unexpected> {
    const COMMAND: &str = "ec2 get-image-block-public-access-state";
    let value = parse_answer(text, COMMAND)?;
    value["ImageBlockPublicAccessState"]
        .as_str()
        .map(String::from)
        .ok_or(Unexpected::Missing {
            command: COMMAND,
            what: "state",
        })
}

/// What S3 said about a bundle bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bucket {
    /// Ours (or at least ours to write). `region` when S3 named it; `object_ownership` when the
    /// bucket has ownership controls.
    Ours {
        region: Option<String>,
        object_ownership: Option<String>,
    },
    /// No such bucket: the bundle upload creates it.
    Free,
    /// Someone else's (S3 refused it, or it is not among the account's buckets).
    Foreign,
    Error(String),
}

/// What `aws s3api get-bucket-ownership-controls` says of a bundle bucket: it answers for a
/// bucket of this account (its rules, or `OwnershipControlsNotFoundError` when it has none),
/// `NoSuchBucket` for a free name and `AccessDenied` for another account's bucket. Its region
/// comes from the bucket list ([`apply_bucket_list`]).
pub fn parse_bucket(answer: Result<String, String>) -> Bucket {
    match answer {
        Ok(text) => Bucket::Ours {
            region: None,
            object_ownership: parse_ownership(&text),
        },
        Err(e) if e.contains("(OwnershipControlsNotFoundError)") => Bucket::Ours {
            region: None,
            object_ownership: None,
        },
        Err(e) if e.contains("(NoSuchBucket)") => Bucket::Free,
        Err(e) if e.contains("(AccessDenied)") || e.contains("(403)") => Bucket::Foreign,
        Err(e) => Bucket::Error(e),
    }
}

/// Whether any bucket exists, so the account's bucket list is worth asking for.
pub fn any_bucket_exists(buckets: &BTreeMap<String, Bucket>) -> bool {
    buckets
        .values()
        .any(|b| matches!(b, Bucket::Ours { .. } | Bucket::Foreign))
}

/// The longest prefix the names share: `list-buckets --prefix` then lists only these (and,
/// given a parameter, S3 names each bucket's region).
pub fn common_prefix<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names = names.into_iter();
    let Some(first) = names.next() else {
        return String::new();
    };
    let mut len = first.len();
    for name in names {
        len = first
            .bytes()
            .zip(name.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    first[..len].to_string()
}

/// The buckets of `aws s3api list-buckets` (this account's), each with its `BucketRegion`.
pub fn parse_bucket_list(text: &str) -> Result<BTreeMap<String, Option<String>>, Unexpected> {
    let value = parse_answer(text, "s3api list-buckets")?;
    Ok(value["Buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let name = b["Name"].as_str()?.to_string();
            Some((name, b["BucketRegion"].as_str().map(String::from)))
        })
        .collect())
}

/// The account's bucket list checked against what each bucket answered: a bucket that answered
/// as ours gets its region, or, missing from the list, is another account's that lets this
/// one read it; one that refused but is listed is ours without the right to read its controls.
pub fn apply_bucket_list(
    buckets: &mut BTreeMap<String, Bucket>,
    list: Result<BTreeMap<String, Option<String>>, String>,
) {
    for (name, bucket) in buckets.iter_mut() {
        let listed = list.as_ref().map(|l| l.get(name));
        let checked = match (&*bucket, listed) {
            (Bucket::Ours { object_ownership, .. }, Ok(Some(region))) => Bucket::Ours {
                region: region.clone(),
                object_ownership: object_ownership.clone(),
            },
            (Bucket::Ours { .. }, Ok(None)) => Bucket::Foreign,
            (Bucket::Foreign, Ok(Some(_))) => Bucket::Error(format!(
                "this account's bucket, but reading its ownership controls was refused: allow `s3:GetBucketOwnershipControls` on `{name}`"
            )),
            (Bucket::Ours { .. }, Err(e)) => Bucket::Error(e.clone()),
            _ => continue,
        };
        *bucket = checked;
    }
}

/// The object ownership of `aws s3api get-bucket-ownership-controls`.
fn parse_ownership(text: &str) -> Option<String> {
    let value: Value = json::parse(text).ok()?;
    value["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
        .as_str()
        .map(String::from)
}

/// Everything the cloud answered, by region (and bucket).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The account the credentials belong to, and their ARN.
    pub identity: Option<Result<(String, String), String>>,
    /// `aws_account_id` of `build/local.json` (or the stand-in's).
    pub expected_account: Option<String>,
    /// How the credentials were found (a profile, the environment), for the report.
    pub credentials_source: Option<String>,
    /// The base AMIs found in each region.
    pub base: BTreeMap<String, Result<Vec<Image>, String>>,
    /// Images that carry a planned name, in each region: the account's own, or, in the regions
    /// of `by_name`, anyone's (only the account's own count).
    pub named: BTreeMap<String, Result<Vec<Image>, String>>,
    /// The regions asked by name alone ([`ImageAsk::Both`]).
    pub by_name: BTreeSet<String>,
    /// Image block-public-access state of each region (public builds only).
    pub block_public: BTreeMap<String, Result<String, String>>,
    pub buckets: BTreeMap<String, Bucket>,
    /// Builders whose row names one image as both its instance-store and EBS base image.
    pub same_base_for_both: Vec<(String, String)>,
}

/// Whose images a build may adopt: an existing image with these tags is its own. A test build
/// resumes its run (`run_id` set); an official publish or a release owns every image of its
/// version and of the commit it bakes, whichever run (and machine) made it (`run_id` unset), and
/// before its prepare commit exists a release reviews every image of its version (`commit`
/// unset).
#[derive(Debug, Clone)]
pub struct Ownership {
    pub project: String,
    pub version: String,
    pub commit: Option<String>,
    pub run_id: Option<String>,
}

impl Ownership {
    fn owns(&self, image: &Image) -> bool {
        let matches =
            |key: &str, want: Option<&String>| want.is_none_or(|w| image.tag(key) == Some(w));
        image.tag("Project") == Some(&self.project)
            && image.tag("Version") == Some(&self.version)
            && matches("Commit", self.commit.as_ref())
            && matches("RunId", self.run_id.as_ref())
    }
}

/// A builder whose image already exists with the owner's tags: it is reviewed (adopted only
/// when its verdict holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub builder: String,
    pub region: String,
    pub ami: String,
    /// The run that made it (its `RunId` tag).
    pub run: Option<String>,
    /// What its tags say of it, for the plan: its verdict and whether it is public.
    pub state: String,
}

/// An image's verdict tag and visibility in words: `verified, private`, `rejected (REASON),
/// private`, `no verdict, public`.
fn described(image: &Image) -> String {
    let verdict = match Verdict::from_tags(&image.tags) {
        Ok(Some(Verdict::Verified { .. })) => "verified".to_string(),
        Ok(Some(Verdict::Rejected { reason })) => format!("rejected ({reason})"),
        Ok(None) => "no verdict".to_string(),
        Err(why) => format!("unreadable verdict ({why})"),
    };
    let public = if image.public { "public" } else { "private" };
    format!("{verdict}, {public}")
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub checks: Vec<Check>,
    pub adopted: Vec<Adopted>,
}

/// How the tool says "run this to go on" in the AMI name check.
pub struct Hints<'a> {
    /// `cargo xtask publish --resume` (with `--local` when local), to which a run id is added.
    pub resume: &'a str,
    /// Against the local stand-in: the fixes name `--local` commands, never the user's `aws`.
    pub local: bool,
}

/// The checks, every failure listed with its fix; `owner` is set on a resume (adoption).
pub fn evaluate(
    planned: &[PlannedBuilder],
    facts: &Facts,
    public: bool,
    owner: Option<&Ownership>,
    hints: &Hints,
) -> Outcome {
    let mut outcome = Outcome::default();
    outcome.checks.push(identity_check(facts));
    // Without working credentials every other answer is the same error: say it once.
    if matches!(facts.identity, Some(Err(_))) {
        return outcome;
    }
    outcome.checks.push(base_check(planned, facts));
    let (names, adopted) = names_check(planned, facts, owner, hints);
    outcome.checks.push(names);
    outcome.adopted = adopted;
    if let Some(check) = buckets_check(planned, facts) {
        outcome.checks.push(check);
    }
    if public {
        outcome.checks.push(public_check(planned, facts));
    }
    outcome
}

fn identity_check(facts: &Facts) -> Check {
    const WHAT: &str = "aws identity";
    let source = facts
        .credentials_source
        .as_ref()
        .map(|s| format!("; credentials from {s}"))
        .unwrap_or_default();
    match &facts.identity {
        None => Check::fail(WHAT, "not asked"),
        Some(Err(e)) if is_network_error(e) => Check::fail(
            WHAT,
            format!(
                "AWS cannot be reached (the network, not the keys): {e}\ncheck the connection, \
                 DNS and any proxy (`HTTPS_PROXY`), then run the command again; `--local` \
                 rehearses without AWS"
            ),
        ),
        Some(Err(e)) => Check::fail(
            WHAT,
            format!(
                "the credentials do not work: {e}\nfix the keys of `build/local.json`, the `AWS_*` variables or `AWS_PROFILE` (expired temporary credentials need renewing)"
            ),
        ),
        Some(Ok((account, arn))) => match &facts.expected_account {
            Some(expected) if expected != account => Check::fail(
                WHAT,
                format!(
                    "the credentials ({arn}) belong to account {account}, not to account {expected} (`aws_account_id` of `build/local.json`){source}\nuse credentials of account {expected}, or correct `aws_account_id` if the images belong in {account}"
                ),
            ),
            Some(_) => Check::ok(WHAT, format!("account {account} as `aws_account_id` says ({arn}){source}")),
            None => Check::ok(WHAT, format!("account {account} ({arn}){source}")),
        },
    }
}

/// Whether an `aws` CLI error says AWS could not be reached (no network, a DNS failure, a
/// timeout, a proxy or TLS interception), so no credential is to blame. The texts are
/// botocore's (`EndpointConnectionError`, `ConnectTimeoutError`, `ReadTimeoutError`,
/// `ProxyConnectionError`, `SSLError`) and the resolver's.
pub fn is_network_error(aws_error: &str) -> bool {
    const SIGNS: [&str; 8] = [
        "Could not connect to the endpoint URL",
        "Connect timeout on endpoint URL",
        "Read timeout on endpoint URL",
        "Failed to connect to proxy URL",
        "SSL validation failed for",
        "Name or service not known",
        "Temporary failure in name resolution",
        "Network is unreachable",
    ];
    SIGNS.iter().any(|sign| aws_error.contains(sign))
}

fn base_check(planned: &[PlannedBuilder], facts: &Facts) -> Check {
    const WHAT: &str = "base AMIs";
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let planned_both: BTreeSet<(&str, &str)> = facts
        .same_base_for_both
        .iter()
        .map(|(b, a)| (b.as_str(), a.as_str()))
        .collect();
    for p in planned {
        let field = if p.root_device == "ebs" {
            "ebs_ami"
        } else {
            "instance_store_ami"
        };
        let refresh = format!(
            "find the current one with `cargo xtask base-images --region {}` (`--update` writes it into `build/images.json`)",
            p.region
        );
        let images = match facts.base.get(&p.region) {
            Some(Ok(images)) => images,
            Some(Err(e)) => {
                problems.push(format!("{}: {e}", p.region));
                continue;
            }
            None => continue,
        };
        let Some(image) = images.iter().find(|i| i.id == p.source_ami) else {
            problems.push(missing_base(p, field, facts, &refresh));
            continue;
        };
        if image.state != "available" {
            problems.push(format!(
                "`{}`: base AMI {} is `{}`, not `available`: {refresh}",
                p.name, p.source_ami, image.state
            ));
        }
        if image.virtualization_type != p.virtualization {
            problems.push(format!(
                "`{}`: base AMI {} is `{}`, but the row says `{}`: {refresh}",
                p.name, p.source_ami, image.virtualization_type, p.virtualization
            ));
        }
        // A row that names one image as both its instance-store and its EBS base (the 2.6
        // matrix does, for `us-east-1-1204-pv`) cannot satisfy both: say so without failing.
        let both = planned_both.contains(&(p.name.as_str(), p.source_ami.as_str()));
        if image.root_device_type != p.root_device && both {
            notes.push(format!(
                "note: `{}` names {} as both its instance-store and its EBS base image; AWS says its root device is `{}`: check the row with `cargo xtask base-images --region {}`",
                p.name, p.source_ami, image.root_device_type, p.region
            ));
        } else if image.root_device_type != p.root_device {
            problems.push(format!(
                "`{}`: base AMI {} (field `{field}`) has root device `{}`, this build needs `{}`: {refresh}",
                p.name, p.source_ami, image.root_device_type, p.root_device
            ));
        }
    }
    problems.dedup();
    if problems.is_empty() {
        let mut detail = format!(
            "{} base AMI(s) exist, available, with the virtualization and root device each build needs",
            planned.iter().map(|p| &p.source_ami).collect::<BTreeSet<_>>().len()
        );
        for note in notes {
            detail.push('\n');
            detail.push_str(&note);
        }
        Check::ok(WHAT, detail)
    } else {
        Check::fail(WHAT, problems.join("\n"))
    }
}

/// Why a builder's base AMI was not in its region's answer.
fn missing_base(p: &PlannedBuilder, field: &str, facts: &Facts, refresh: &str) -> String {
    let asked = match (&p.source_name, facts.by_name.contains(&p.region)) {
        (Some(name), true) => format!(
            "; asked by its recorded name `{name}` (field `{field}_name`), which a wrong name misses too"
        ),
        _ => String::new(),
    };
    format!(
        "`{}`: base AMI {} (field `{field}`) does not exist in {} (deregistered upstream?{asked}): {refresh}",
        p.name, p.source_ami, p.region
    )
}

fn names_check(
    planned: &[PlannedBuilder],
    facts: &Facts,
    owner: Option<&Ownership>,
    hints: &Hints,
) -> (Check, Vec<Adopted>) {
    const WHAT: &str = "AMI names";
    let mut problems = Vec::new();
    let mut adopted = Vec::new();
    let mut taken = Taken::default();
    for p in planned {
        let images = match facts.named.get(&p.region) {
            Some(Ok(images)) => images,
            Some(Err(e)) => {
                let line = format!("{}: {e}", p.region);
                if !problems.contains(&line) {
                    problems.push(line);
                }
                continue;
            }
            None => continue,
        };
        let Some(image) = images
            .iter()
            .find(|i| i.name == p.ami_name && takes_names(facts, &p.region, i))
        else {
            continue;
        };
        if owner.is_some_and(|o| o.owns(image)) {
            adopted.push(Adopted {
                builder: p.name.clone(),
                region: p.region.clone(),
                ami: image.id.clone(),
                run: image.tag("RunId").map(String::from),
                state: described(image),
            });
            continue;
        }
        problems.push(taken.add(p, image, owner));
    }
    let check = if problems.is_empty() {
        let detail = match adopted.len() {
            0 => format!("{} planned name(s) are free", planned.len()),
            n if owner.is_some_and(|o| o.run_id.is_none()) => format!(
                "{} planned name(s) are free; {n} image(s) of this version already exist (made by {}): each is adopted only if its `Verified` verdict, its stored report and its `Commit` tag (the commit this run bakes) hold, else a private one is deregistered and its builder rebuilt",
                planned.len() - n,
                made_by(&adopted)
            ),
            n => format!(
                "{} planned name(s) are free; {n} image(s) of this run already exist and are adopted",
                planned.len() - n
            ),
        };
        Check::ok(WHAT, detail)
    } else {
        problems.push(names_fix(&taken, owner.is_some(), hints));
        Check::fail(WHAT, problems.join("\n"))
    };
    (check, adopted)
}

/// The runs that made `found`, for a report line: "run `a`, run `b`".
fn made_by(found: &[Adopted]) -> String {
    let runs: BTreeSet<String> = found
        .iter()
        .map(|a| match &a.run {
            Some(run) => format!("run `{run}`"),
            None => "no recorded run".to_string(),
        })
        .collect();
    runs.into_iter().collect::<Vec<_>>().join(", ")
}

/// Whether `image` takes its name from this account's builds: an image name is unique per
/// account and region, so in a region asked by name alone another account's image of the same
/// name does not. Without a known account every image counts (the identity check fails then).
fn takes_names(facts: &Facts, region: &str, image: &Image) -> bool {
    if !facts.by_name.contains(region) {
        return true;
    }
    match &facts.identity {
        Some(Ok((account, _))) => image.owner_id == *account,
        _ => true,
    }
}

/// What the images under planned names say, for the fix: the runs that made them, the commits
/// they bake, and whether any is public (a published image is never to be removed for room).
#[derive(Default)]
struct Taken {
    runs: BTreeSet<String>,
    /// The commits of images a run at that commit would adopt (not rejected ones).
    commits: BTreeSet<String>,
    /// The runs of private images (`cleanup --run` removes those).
    private_runs: BTreeSet<String>,
    /// A private image no run of this tool made.
    private_untagged: bool,
    public: bool,
}

impl Taken {
    /// Notes `image`, which takes the name of `p`, and returns the report's line for it.
    fn add(&mut self, p: &PlannedBuilder, image: &Image, owner: Option<&Ownership>) -> String {
        let public = if image.public { ", public" } else { "" };
        let made_by = match (image.tag("RunId"), image.tag("Version")) {
            (Some(run), Some(version)) => {
                self.runs.insert(run.to_string());
                if !image.public {
                    self.private_runs.insert(run.to_string());
                }
                format!(" (made by run `{run}`, version {version}{public})")
            }
            _ => {
                self.private_untagged |= !image.public;
                format!(" (not tagged by this tool{public})")
            }
        };
        let mut foreign = not_adopted_because(owner, image);
        match image.tag("Rejected") {
            // No run adopts it, at any commit.
            Some(reason) => foreign.push_str(&format!("; it was rejected ({reason})")),
            None if !foreign.is_empty() => {
                self.commits.extend(image.tag("Commit").map(String::from));
            }
            None => {}
        }
        self.public |= image.public;
        format!(
            "`{}` is taken in {} by {}{made_by}{foreign}",
            p.ami_name, p.region, image.id
        )
    }
}

/// Why an image under a planned name is not adopted by `owner` ("" when nothing adopts).
fn not_adopted_because(owner: Option<&Ownership>, image: &Image) -> String {
    match (owner, image.tag("Commit")) {
        (Some(o), Some(theirs)) if o.commit.as_ref().is_some_and(|c| c != theirs) => format!(
            "; it bakes commit {}, not this run's {}, so it is not adopted",
            super::legacy::short(theirs),
            super::legacy::short(o.commit.as_deref().unwrap_or_default())
        ),
        (Some(_), _) => "; its tags are not this run's, so it is not adopted".to_string(),
        (None, _) => String::new(),
    }
}

/// What to do about taken names: resume the runs that made them (unless this is a resume), or
/// publish from the commit they bake, or deregister them, or build a new version.
fn names_fix(taken: &Taken, resuming: bool, hints: &Hints) -> String {
    let mut fix = String::from("an image name is unique per account and region: ");
    if !taken.runs.is_empty() && !resuming && !hints.resume.is_empty() {
        let resumes: Vec<String> = taken
            .runs
            .iter()
            .map(|r| format!("`{} {r}`", hints.resume))
            .collect();
        fix.push_str(&format!(
            "if that run did not finish, resume it on the machine that has its folder under `build/runs/` ({}); ",
            resumes.join(", ")
        ));
    }
    if !taken.commits.is_empty() {
        let commits: Vec<String> = taken
            .commits
            .iter()
            .map(|c| format!("`git switch --detach {c}`"))
            .collect();
        fix.push_str(&format!(
            "to publish what they bake, run the same command at that commit ({}, and `git switch -` back afterwards): its images are adopted where their verdicts hold; ",
            commits.join(", ")
        ));
    }
    let local = if hints.local { " --local" } else { "" };
    let mut unwanted: Vec<String> = taken
        .private_runs
        .iter()
        .map(|run| format!("`cargo xtask cleanup --run {run}{local} --execute`"))
        .collect();
    if taken.private_untagged && !hints.local {
        unwanted.push("`aws ec2 deregister-image --region REGION --image-id ID`".to_string());
    }
    if !unwanted.is_empty() {
        fix.push_str(&format!(
            "if the private images are unwanted, remove them ({}); ",
            unwanted.join(", ")
        ));
    }
    fix.push_str(if taken.public {
        "public images are published: keep them and build a new version (`cargo xtask set-version NEW_VERSION`)"
    } else {
        "otherwise build a new version (`cargo xtask set-version NEW_VERSION`)"
    });
    fix
}

fn buckets_check(planned: &[PlannedBuilder], facts: &Facts) -> Option<Check> {
    const WHAT: &str = "buckets";
    let wanted = buckets(planned);
    if wanted.is_empty() {
        return None;
    }
    let mut problems = Vec::new();
    let mut ours = 0;
    let mut free = 0;
    for (bucket, region) in &wanted {
        match facts.buckets.get(bucket) {
            Some(Bucket::Ours { region: found, object_ownership }) => {
                ours += 1;
                if let Some(found) = found.as_ref().filter(|f| *f != region) {
                    problems.push(format!(
                        "bucket `{bucket}` is in {found}, but the bundles of {region} go there: bundles must be in their image's region; change `bucket` in `build/images.json` settings"
                    ));
                }
                if object_ownership.as_deref() == Some("BucketOwnerEnforced") {
                    problems.push(format!(
                        "bucket `{bucket}` has ACLs disabled (Object Ownership `BucketOwnerEnforced`), but bundle uploads set ACLs: run `aws s3api put-bucket-ownership-controls --bucket {bucket} --ownership-controls 'Rules=[{{ObjectOwnership=ObjectWriter}}]'`"
                    ));
                }
            }
            Some(Bucket::Free) => free += 1,
            Some(Bucket::Foreign) => problems.push(format!(
                "bucket `{bucket}` exists but belongs to another account (S3 refused it, or it is not among this account's buckets): choose another name with `bucket` (or `test_bucket`) in `build/images.json` settings"
            )),
            Some(Bucket::Error(e)) => problems.push(format!("bucket `{bucket}`: {e}")),
            None => {}
        }
    }
    Some(if problems.is_empty() {
        Check::ok(
            WHAT,
            format!("{ours} bundle bucket(s) are ours, {free} will be created in their regions"),
        )
    } else {
        Check::fail(WHAT, problems.join("\n"))
    })
}

fn public_check(planned: &[PlannedBuilder], facts: &Facts) -> Check {
    const WHAT: &str = "public AMIs";
    let mut problems = Vec::new();
    let all = regions(planned);
    for region in &all {
        match facts.block_public.get(region) {
            Some(Ok(state)) if state == "unblocked" => {}
            Some(Ok(state)) => problems.push(format!(
                "{region}: block public access for AMIs is on (`{state}`), so making the images public would fail after they are built: run `aws ec2 disable-image-block-public-access --region {region}`"
            )),
            Some(Err(e)) => problems.push(format!("{region}: {e}")),
            None => {}
        }
    }
    if problems.is_empty() {
        Check::ok(
            WHAT,
            format!(
                "block public access for AMIs is off in all {} region(s)",
                all.len()
            ),
        )
    } else {
        Check::fail(WHAT, problems.join("\n"))
    }
}

/// A report (`pure::release::report`) with every line wrapped at word boundaries to `cols`
/// columns, continuation lines under the text they continue, so it reads in an 80-column
/// terminal.
pub fn wrap_report(report: &str, cols: usize) -> String {
    // Where the text of a check starts: after "  ok    WHAT  " (WHAT padded).
    let text_column = report
        .lines()
        .filter(|l| l.starts_with("  ok    ") || l.starts_with("  FAIL  "))
        .filter_map(|l| {
            let after = &l[8..];
            let what_end = after.find("  ")?;
            Some(8 + what_end + 2)
        })
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for line in report.lines() {
        if line.chars().count() <= cols {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let leading = line.len() - line.trim_start().len();
        let indent = if line.starts_with("  ok    ") || line.starts_with("  FAIL  ") {
            text_column
        } else {
            leading
        };
        let indent = if indent + 20 > cols { 4 } else { indent };
        let mut current = line[..leading].to_string();
        let mut empty = true;
        for word in line[leading..].split(' ') {
            let width = current.chars().count();
            if !empty && width + 1 + word.chars().count() > cols {
                out.push_str(current.trim_end());
                out.push('\n');
                current = " ".repeat(indent);
                empty = true;
            }
            if !empty {
                current.push(' ');
            }
            current.push_str(word);
            empty = false;
        }
        out.push_str(current.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(name: &str, source_ami: &str, virtualization: &str) -> PlannedBuilder {
        let region = name.rsplitn(3, '-').nth(2).unwrap().to_string();
        let suffix = name.strip_prefix(&format!("{region}-")).unwrap();
        PlannedBuilder {
            name: name.into(),
            ami_name: format!("X 2.6.9-{suffix}"),
            bundle: Some(format!("b-{region}/123-{suffix}")),
            region,
            source_ami: source_ami.into(),
            source_name: None,
            virtualization: virtualization.into(),
            root_device: "instance-store",
            os_version: "14.04".into(),
        }
    }

    fn plan() -> Vec<PlannedBuilder> {
        vec![
            builder("us-east-1-1404-hvm", "ami-11111111", "hvm"),
            builder("eu-west-1-1404-pv", "ami-22222222", "paravirtual"),
        ]
    }

    /// The plan says what the template builds: the preflight checks the plan, Packer runs the
    /// template.
    #[test]
    fn the_plan_holds_what_the_template_asks_of_aws() {
        use crate::pure::template::{self, Kind, Target};
        let matrix =
            crate::pure::matrix::Matrix::parse(include_str!("../../../build/images.json")).unwrap();
        for kind in [Kind::Official, Kind::TestEbs, Kind::TestInstance] {
            let spec = template::tests::spec(kind);
            let json = template::generate(&matrix, &spec, Target::PROBE).unwrap();
            let plan = template::plan(&matrix, &spec).unwrap();
            let builders = json["builders"].as_array().unwrap();
            assert_eq!(builders.len(), plan.builders.len());
            for (b, planned) in builders.iter().zip(&plan.builders) {
                assert_eq!(b["name"], planned.name.as_str());
                assert_eq!(b["source_ami"], planned.source_ami.as_str());
                assert_eq!(
                    b["ami_virtualization_type"],
                    planned.virtualization.as_str()
                );
                let root_device = if b["type"] == "amazon-ebs" {
                    "ebs"
                } else {
                    "instance-store"
                };
                assert_eq!(root_device, planned.root_device, "{}", planned.name);
                let json_bucket = b["s3_bucket"].as_str().and_then(|s| s.split('/').next());
                assert_eq!(json_bucket.map(String::from), bucket(planned));
            }
        }
        let only = ["us-east-1-1404-hvm".to_string()];
        let plan = template::Plan {
            kind: Kind::Official,
            public: true,
            builders: plan(),
            disabled: Vec::new(),
        };
        assert_eq!(builders(&plan, &only), [plan.builders[0].clone()]);
        assert_eq!(builders(&plan, &[]).len(), 2);
    }

    fn image(id: &str, virt: &str, root: &str) -> Image {
        Image {
            id: id.into(),
            state: "available".into(),
            virtualization_type: virt.into(),
            root_device_type: root.into(),
            ..Default::default()
        }
    }

    fn good_facts() -> Facts {
        let mut facts = Facts {
            identity: Some(Ok((
                "123456789012".into(),
                "arn:aws:iam::123456789012:user/me".into(),
            ))),
            expected_account: Some("123456789012".into()),
            ..Default::default()
        };
        facts.base.insert(
            "us-east-1".into(),
            Ok(vec![image("ami-11111111", "hvm", "instance-store")]),
        );
        facts.base.insert(
            "eu-west-1".into(),
            Ok(vec![image("ami-22222222", "paravirtual", "instance-store")]),
        );
        for region in ["us-east-1", "eu-west-1"] {
            facts.named.insert(region.into(), Ok(vec![]));
            facts
                .block_public
                .insert(region.into(), Ok("unblocked".into()));
        }
        facts.buckets.insert("b-us-east-1".into(), Bucket::Free);
        facts.buckets.insert(
            "b-eu-west-1".into(),
            Bucket::Ours {
                region: Some("eu-west-1".into()),
                object_ownership: Some("ObjectWriter".into()),
            },
        );
        facts
    }

    const HINTS: Hints = Hints {
        resume: "cargo xtask publish --resume",
        local: false,
    };

    #[test]
    fn the_report_fits_80_columns() {
        let outcome = evaluate(&plan(), &good_facts(), true, None, &HINTS);
        let mut checks = outcome.checks;
        checks.push(Check::fail(
            "base AMIs",
            "`eu-west-1-1204-pv`: base AMI ami-7beb9d0c (field `instance_store_ami`) does not exist in eu-west-1 (deregistered upstream?): find the current one with `cargo xtask base-images --region eu-west-1`",
        ));
        let report = crate::pure::release::report(&checks);
        let wrapped = wrap_report(&report, 80);
        assert!(
            wrapped.lines().all(|l| l.chars().count() <= 80),
            "{wrapped}"
        );
        let words = |t: &str| t.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(words(&wrapped), words(&report));
        assert!(
            wrapped.contains("\n                      find the current one")
                || wrapped.contains("\n                      "),
            "{wrapped}"
        );
    }

    #[test]
    fn answers_parse_or_say_what_they_lack() {
        let identity = parse_identity(r#"{"Account": "123456789012", "Arn": "arn:me"}"#);
        assert_eq!(identity, Ok(("123456789012".into(), "arn:me".into())));
        let error = parse_identity("{}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`aws sts get-caller-identity` named no account"
        );
        let error = parse_block_state("<html>").unwrap_err();
        assert!(matches!(error, Unexpected::NotJson(_)), "{error}");
        assert!(error
            .to_string()
            .contains("`ec2 get-image-block-public-access-state` is not JSON"));
        let state = parse_block_state(r#"{"ImageBlockPublicAccessState": "unblocked"}"#);
        assert_eq!(state.as_deref(), Ok("unblocked"));
    }

    #[test]
    fn everything_fine_passes() {
        let outcome = evaluate(&plan(), &good_facts(), true, None, &HINTS);
        assert!(
            outcome.checks.iter().all(|c| c.result.is_ok()),
            "{:#?}",
            outcome.checks
        );
        assert_eq!(outcome.checks.len(), 5);
    }

    #[test]
    fn an_unreachable_endpoint_is_named_the_network_not_the_keys() {
        // What `aws sts get-caller-identity` printed with the endpoint unreachable (port closed;
        // an unresolvable host prints the same line).
        let offline = "`aws sts get-caller-identity` failed in us-east-1: \
                       Could not connect to the endpoint URL: \"https://sts.us-east-1.amazonaws.com/\"";
        let refused = "`aws sts get-caller-identity` failed in us-east-1: An error occurred \
                       (InvalidClientTokenId) when calling the GetCallerIdentity operation: \
                       The security token included in the request is invalid.";
        assert!(is_network_error(offline));
        assert!(is_network_error(
            "Connect timeout on endpoint URL: \"https://ec2.eu-west-1.amazonaws.com/\""
        ));
        assert!(!is_network_error(refused));
        let mut facts = good_facts();
        facts.identity = Some(Err(offline.into()));
        let text =
            crate::pure::release::report(&evaluate(&plan(), &facts, true, None, &HINTS).checks);
        assert!(text.contains("the network, not the keys"), "{text}");
        assert!(!text.contains("credentials do not work"), "{text}");
        facts.identity = Some(Err(refused.into()));
        let text =
            crate::pure::release::report(&evaluate(&plan(), &facts, true, None, &HINTS).checks);
        assert!(text.contains("the credentials do not work"), "{text}");
    }

    #[test]
    fn every_failure_is_reported_with_its_fix() {
        let mut facts = good_facts();
        facts.identity = Some(Ok(("999999999999".into(), "arn".into())));
        facts.base.insert(
            "us-east-1".into(),
            Ok(vec![image("ami-11111111", "paravirtual", "ebs")]),
        );
        facts.base.insert("eu-west-1".into(), Ok(vec![]));
        facts
            .block_public
            .insert("eu-west-1".into(), Ok("block-new-sharing".into()));
        facts.buckets.insert(
            "b-eu-west-1".into(),
            Bucket::Ours {
                region: None,
                object_ownership: Some("BucketOwnerEnforced".into()),
            },
        );
        facts.buckets.insert("b-us-east-1".into(), Bucket::Foreign);
        let mut taken = image("ami-33333333", "hvm", "instance-store");
        taken.name = "X 2.6.9-1404-hvm".into();
        taken.tags = [("RunId", "official-1"), ("Version", "2.6.9")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        facts.named.insert("us-east-1".into(), Ok(vec![taken]));
        let outcome = evaluate(&plan(), &facts, true, None, &HINTS);
        let text = crate::pure::release::report(&outcome.checks);
        for needle in [
            "belong to account 999999999999, not to account 123456789012",
            "is `paravirtual`, but the row says `hvm`",
            "has root device `ebs`, this build needs `instance-store`",
            "ami-22222222 (field `instance_store_ami`) does not exist in eu-west-1",
            "cargo xtask base-images --region eu-west-1",
            "`X 2.6.9-1404-hvm` is taken in us-east-1 by ami-33333333 (made by run `official-1`, version 2.6.9)",
            "resume it on the machine that has its folder under `build/runs/` (`cargo xtask publish --resume official-1`)",
            "belongs to another account",
            "ObjectOwnership=ObjectWriter",
            "eu-west-1: block public access for AMIs is on",
        ] {
            assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
        }
        assert_eq!(crate::pure::release::failures(&outcome.checks), 5);
    }

    #[test]
    fn a_resume_adopts_only_images_with_its_own_tags() {
        let owner = Ownership {
            project: "comboami".into(),
            version: "2.6.9".into(),
            commit: Some("abc".into()),
            run_id: Some("official-1".into()),
        };
        let tags = |run: &str| {
            [
                ("Project", "comboami"),
                ("Version", "2.6.9"),
                ("Commit", "abc"),
                ("RunId", run),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let mut facts = good_facts();
        let mut ours = image("ami-33333333", "hvm", "instance-store");
        ours.name = "X 2.6.9-1404-hvm".into();
        ours.tags = tags("official-1");
        let mut foreign = image("ami-44444444", "paravirtual", "instance-store");
        foreign.name = "X 2.6.9-1404-pv".into();
        foreign.tags = tags("official-2");
        facts.named.insert("us-east-1".into(), Ok(vec![ours]));
        facts.named.insert("eu-west-1".into(), Ok(vec![foreign]));
        let outcome = evaluate(&plan(), &facts, true, Some(&owner), &HINTS);
        assert_eq!(
            outcome.adopted,
            vec![Adopted {
                builder: "us-east-1-1404-hvm".into(),
                region: "us-east-1".into(),
                ami: "ami-33333333".into(),
                run: Some("official-1".into()),
                state: "no verdict, private".into(),
            }]
        );
        let text = crate::pure::release::report(&outcome.checks);
        assert!(text.contains("by ami-44444444 (made by run `official-2`, version 2.6.9); its tags are not this run's, so it is not adopted"), "{text}");

        // A new local publish: the private images are removed by the tool, against the
        // stand-in, never by the user's `aws`.
        let local = Hints {
            local: true,
            ..HINTS
        };
        let outcome = evaluate(&plan(), &facts, true, None, &local);
        let text = crate::pure::release::report(&outcome.checks);
        for run in ["official-1", "official-2"] {
            let cleanup = format!("`cargo xtask cleanup --run {run} --local --execute`");
            assert!(text.contains(&cleanup), "{cleanup}: {text}");
        }
        assert!(!text.contains("aws ec2"), "{text}");
    }

    /// An image named `name` with the tags this tool gives: project, version, commit, run.
    fn tagged(id: &str, name: &str, version: &str, commit: &str, run: &str) -> Image {
        let mut found = image(id, "hvm", "instance-store");
        found.name = name.into();
        found.tags = [
            ("Project", "comboami"),
            ("Version", version),
            ("Commit", commit),
            ("RunId", run),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        found
    }

    /// Issue 18: a release finished on another machine owns the images of its version and
    /// prepare commit whichever run made them; before the prepare commit exists it reviews
    /// every image of its version; an image of another commit is never its own.
    #[test]
    fn a_release_owns_its_version_and_commit_from_any_run() {
        let release = |commit: Option<&str>| Ownership {
            project: "comboami".into(),
            version: "2.6.9".into(),
            commit: commit.map(String::from),
            run_id: None,
        };
        let mut facts = good_facts();
        let mut earlier = tagged(
            "ami-33333333",
            "X 2.6.9-1404-hvm",
            "2.6.9",
            "abc",
            "official-elsewhere",
        );
        earlier.tags.insert("Verified".into(), "a".repeat(64));
        let mut other_commit = tagged(
            "ami-44444444",
            "X 2.6.9-1404-pv",
            "2.6.9",
            "def",
            "official-2",
        );
        other_commit
            .tags
            .insert("Rejected".into(), "apt failed".into());
        other_commit.public = true;
        facts.named.insert("us-east-1".into(), Ok(vec![earlier]));
        facts
            .named
            .insert("eu-west-1".into(), Ok(vec![other_commit]));
        let adopted = |outcome: &Outcome| -> Vec<String> {
            outcome.adopted.iter().map(|a| a.ami.clone()).collect()
        };

        // After the prepare commit: only that commit's image is the release's own.
        let outcome = evaluate(&plan(), &facts, true, Some(&release(Some("abc"))), &HINTS);
        assert_eq!(adopted(&outcome), ["ami-33333333"]);
        assert_eq!(
            outcome.adopted[0].run.as_deref(),
            Some("official-elsewhere")
        );
        let text = crate::pure::release::report(&outcome.checks);
        assert!(text.contains("`X 2.6.9-1404-pv` is taken in eu-west-1 by ami-44444444 (made by run `official-2`, version 2.6.9, public); it bakes commit def, not this run's abc, so it is not adopted"), "{text}");
        // A rejected image is adopted at no commit: the fix does not send the user to its commit.
        assert!(
            text.contains("so it is not adopted; it was rejected (apt failed)"),
            "{text}"
        );
        assert!(!text.contains("git switch"), "{text}");
        // A public image is published: the fix never says to remove it.
        assert!(
            text.contains("public images are published: keep them and build a new version"),
            "{text}"
        );
        assert!(
            !text.contains("deregister") && !text.contains("cleanup"),
            "{text}"
        );

        // Before it (the release's preflight): both are reviewed, and the report says how; the
        // plan shows what each one's tags say.
        let outcome = evaluate(&plan(), &facts, true, Some(&release(None)), &HINTS);
        assert_eq!(adopted(&outcome), ["ami-33333333", "ami-44444444"]);
        let states: Vec<&str> = outcome.adopted.iter().map(|a| a.state.as_str()).collect();
        assert_eq!(
            states,
            ["verified, private", "rejected (apt failed), public"]
        );
        let text = crate::pure::release::report(&outcome.checks);
        assert_eq!(crate::pure::release::failures(&outcome.checks), 0, "{text}");
        assert!(text.contains("2 image(s) of this version already exist (made by run `official-2`, run `official-elsewhere`): each is adopted only if its `Verified` verdict"), "{text}");
    }

    /// Another version under a planned name is taken, whoever asks.
    #[test]
    fn an_image_of_another_version_is_never_a_releases_own() {
        let mut facts = good_facts();
        let older = tagged(
            "ami-55555555",
            "X 2.6.9-1404-hvm",
            "2.6.8",
            "abc",
            "official-3",
        );
        facts.named.insert("us-east-1".into(), Ok(vec![older]));
        let release = Ownership {
            project: "comboami".into(),
            version: "2.6.9".into(),
            commit: None,
            run_id: None,
        };
        let outcome = evaluate(&plan(), &facts, true, Some(&release), &HINTS);
        assert!(outcome.adopted.is_empty());
        assert_eq!(crate::pure::release::failures(&outcome.checks), 1);
    }

    /// With every base image of a region named in the matrix, the region is asked once, by name
    /// alone; a region with an unnamed base image is asked twice, as before.
    #[test]
    fn a_region_whose_base_images_are_named_is_asked_once() {
        let mut planned = plan();
        planned[0].source_name = Some("ubuntu/images/ubuntu-trusty-14.04-amd64-server-1".into());
        let named = image_questions(&planned, "us-east-1");
        assert_eq!(named.len(), 1, "{named:?}");
        assert_eq!(named[0].0, ImageAsk::Both);
        assert_eq!(
            named[0].1,
            ImageQuery::default()
                .filter(
                    "name",
                    &[
                        "X 2.6.9-1404-hvm",
                        "ubuntu/images/ubuntu-trusty-14.04-amd64-server-1"
                    ]
                )
                .with_deprecated(),
            "no owners: the base images are Canonical's, the taken names ours"
        );
        let args = named[0].1.args();
        assert!(
            args.contains(&"--include-deprecated".to_string()),
            "{args:?}"
        );
        let unnamed = image_questions(&planned, "eu-west-1");
        assert_eq!(
            unnamed,
            [
                (
                    ImageAsk::Base,
                    ImageQuery::ids(&["ami-22222222"]).with_deprecated()
                ),
                (
                    ImageAsk::Named,
                    ImageQuery::own().filter("name", &["X 2.6.9-1404-pv"])
                ),
            ]
        );
    }

    /// Asked by name alone, an image of another account with a planned name does not take it
    /// (names are unique per account), one of ours does; a base image the name misses is named
    /// with the name that was asked.
    #[test]
    fn asked_by_name_only_the_accounts_own_images_take_a_name() {
        let mut planned = plan();
        planned[0].source_name = Some("ubuntu/base-hvm".into());
        let mut facts = good_facts();
        facts.by_name.insert("us-east-1".into());
        let mut theirs = image("ami-55555555", "hvm", "ebs");
        theirs.name = "X 2.6.9-1404-hvm".into();
        theirs.owner_id = "999999999999".into();
        let mut base = image("ami-11111111", "hvm", "instance-store");
        base.owner_id = crate::pure::base_images::CANONICAL.into();
        let answer = vec![base, theirs.clone()];
        facts.base.insert("us-east-1".into(), Ok(answer.clone()));
        facts.named.insert("us-east-1".into(), Ok(answer));
        let outcome = evaluate(&planned, &facts, true, None, &HINTS);
        let text = crate::pure::release::report(&outcome.checks);
        assert_eq!(crate::pure::release::failures(&outcome.checks), 0, "{text}");

        let mut ours = theirs;
        ours.owner_id = "123456789012".into();
        facts.named.insert("us-east-1".into(), Ok(vec![ours]));
        facts.base.insert("us-east-1".into(), Ok(vec![]));
        let outcome = evaluate(&planned, &facts, true, None, &HINTS);
        let text = crate::pure::release::report(&outcome.checks);
        for needle in [
            "`X 2.6.9-1404-hvm` is taken in us-east-1 by ami-55555555",
            "ami-11111111 (field `instance_store_ami`) does not exist in us-east-1 (deregistered upstream?; asked by its recorded name `ubuntu/base-hvm` (field `instance_store_ami_name`)",
        ] {
            assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
        }
        assert_eq!(crate::pure::release::failures(&outcome.checks), 2, "{text}");
    }

    /// One question per bucket tells free, ours (with its ownership) and someone else's apart;
    /// the bucket list, asked only when one exists, adds the region and catches a readable
    /// bucket of another account.
    #[test]
    fn a_buckets_ownership_controls_and_the_bucket_list_say_whose_it_is() {
        let error = |code: &str| {
            Err(format!("`aws s3api get-bucket-ownership-controls` failed in eu-west-1: An error occurred ({code}) when calling the GetBucketOwnershipControls operation: ..."))
        };
        let rules =
            r#"{"OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}}"#;
        let mut buckets: BTreeMap<String, Bucket> = [
            ("b-free", parse_bucket(error("NoSuchBucket"))),
            ("b-theirs", parse_bucket(error("AccessDenied"))),
            ("b-ours", parse_bucket(Ok(rules.into()))),
            (
                "b-plain",
                parse_bucket(error("OwnershipControlsNotFoundError")),
            ),
            (
                "b-readable",
                parse_bucket(error("OwnershipControlsNotFoundError")),
            ),
            ("b-ours-refused", parse_bucket(error("AccessDenied"))),
            ("b-odd", parse_bucket(error("SlowDown"))),
        ]
        .map(|(n, b)| (n.to_string(), b))
        .into();
        assert_eq!(buckets["b-free"], Bucket::Free);
        assert_eq!(buckets["b-theirs"], Bucket::Foreign);
        assert!(matches!(&buckets["b-odd"], Bucket::Error(e) if e.contains("SlowDown")));
        assert!(any_bucket_exists(&buckets));
        assert!(!any_bucket_exists(
            &[("b".to_string(), Bucket::Free)].into()
        ));
        assert_eq!(common_prefix(buckets.keys().map(String::as_str)), "b-");
        assert_eq!(
            common_prefix(["comboami-2.6.9-us-east-1", "comboami-2.6.9-eu-west-1"]),
            "comboami-2.6.9-"
        );
        assert_eq!(common_prefix(["a", "b"]), "");

        let list = parse_bucket_list(
            r#"{"Buckets": [
            {"Name": "b-ours", "BucketRegion": "eu-west-1"},
            {"Name": "b-plain", "BucketRegion": "us-west-2"},
            {"Name": "b-ours-refused", "BucketRegion": "eu-west-1"}]}"#,
        );
        apply_bucket_list(&mut buckets, list.map_err(|e| e.to_string()));
        let ours = |region: &str, ownership: Option<&str>| Bucket::Ours {
            region: Some(region.into()),
            object_ownership: ownership.map(String::from),
        };
        assert_eq!(
            buckets["b-ours"],
            ours("eu-west-1", Some("BucketOwnerEnforced"))
        );
        assert_eq!(buckets["b-plain"], ours("us-west-2", None));
        assert_eq!(
            buckets["b-readable"],
            Bucket::Foreign,
            "not in the account's list"
        );
        assert!(
            matches!(&buckets["b-ours-refused"], Bucket::Error(e) if e.contains("s3:GetBucketOwnershipControls"))
        );
        assert_eq!(buckets["b-free"], Bucket::Free);
        assert_eq!(buckets["b-theirs"], Bucket::Foreign);
        assert!(matches!(
            parse_bucket_list("<xml/>"),
            Err(Unexpected::NotJson(_))
        ));
    }
}
