//! What a run's images have proven, kept in the cloud where any machine finds it: each image
//! (and its snapshots) carries its verdict (`Verified=<sha256 of its report>` or
//! `Rejected=<reason>`), its report is stored in S3 keyed by its AMI id, adoption re-reads and
//! re-checks that report, and only a run whose every builder is proven is made public (launch
//! permission `all` and deregistration protection), all at once.

use crate::aws::Aws;
use crate::pure::ec2::{Image, ImageQuery};
use crate::pure::matrix::Matrix;
use crate::pure::preflight::Adopted;
use crate::pure::template;
use crate::pure::verdict::{self, Adoption, Verdict};
use crate::pure::{report, sha256};
use crate::runs::{BuilderState, RunRecord};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use xshell::Shell;

/// The run's expectation of `build/expect.json`, or why it cannot be read.
pub fn expectation(sh: &Shell) -> Result<report::Expectation, String> {
    sh.read_file(report::EXPECT_PATH)
        .map_err(|e| format!("cannot read `{}`: {e}", report::EXPECT_PATH))
        .and_then(|text| report::Expectation::parse(&text))
}

/// What the report of builder `name` of `record` must say.
pub fn expected<'a>(
    matrix: &'a Matrix,
    record: &'a RunRecord,
    name: &'a str,
) -> report::Expected<'a> {
    let spec = &record.spec;
    let row = matrix.images.iter().find(|i| i.builder_name() == name);
    report::Expected {
        builder: name,
        version: &spec.version,
        branch: &spec.branch,
        ds0_branch: (spec.kind == template::Kind::Official).then_some(spec.branch.as_str()),
        commit: &spec.commit,
        os_version: row.map_or("?", |i| i.os_version.as_str()),
        virtualization: row.map_or("?", |i| i.virtualization.as_str()),
        archive: row
            .and_then(|i| matrix.settings.archives.get(&i.os_version))
            .map(String::as_str),
        local: spec.local,
    }
}

/// `(bucket, key)` of the stored report of `ami`, built by builder `name`.
fn location(
    matrix: &Matrix,
    record: &RunRecord,
    name: &str,
    ami: &str,
) -> Option<(String, String)> {
    let row = matrix.images.iter().find(|i| i.builder_name() == name)?;
    Some(template::report_location(matrix, &record.spec, row, ami))
}

fn report_path(record: &RunRecord, name: &str) -> String {
    format!("{}/{name}.json", record.report_dir())
}

/// After a builder's checks: tags its images (and their snapshots) with the verdict and stores
/// a passing report beside them. A builder whose verdict cannot be recorded is failed: what is
/// not proven in the cloud is never adopted, published or merged.
pub fn record_verdicts(
    sh: &Shell,
    aws: &Aws,
    matrix: &Matrix,
    record: &mut RunRecord,
    attempted: &[String],
) {
    for name in attempted {
        let Some(builder) = record.builders.get(name) else {
            continue;
        };
        if builder.amis.is_empty() {
            continue;
        }
        let (state, error) = (builder.state, builder.error.clone());
        let amis = builder.amis.clone();
        let result = match state {
            BuilderState::Succeeded => verify(sh, aws, matrix, record, name, &amis),
            _ => {
                let reason = error.unwrap_or_else(|| "its build did not finish".into());
                let verdict = Verdict::rejected(&reason);
                amis.iter()
                    .try_for_each(|ami| tag(sh, aws, ami, &verdict, builder.bundle.is_none()))
            }
        };
        if let Err(e) = result {
            let builder = record.builders.get_mut(name).expect("found above");
            let ids: Vec<&str> = amis.iter().map(|a| a.id.as_str()).collect();
            let why = format!(
                "its verdict could not be recorded on {}: {e:#}",
                ids.join(", ")
            );
            if builder.state == BuilderState::Succeeded {
                builder.state = BuilderState::Failed;
                builder.error = Some(format!(
                    "{why}; so it is not accepted (an image is adopted, published and merged only with its verdict)"
                ));
            } else {
                eprintln!("warning: builder `{name}`: {why}");
            }
        }
    }
}

/// Stores the report of a builder that passed its checks and tags its images `Verified`.
fn verify(
    sh: &Shell,
    aws: &Aws,
    matrix: &Matrix,
    record: &RunRecord,
    name: &str,
    amis: &[crate::pure::packer_log::Ami],
) -> Result<()> {
    let path = report_path(record, name);
    let text = sh
        .read_file(&path)
        .with_context(|| format!("cannot read `{path}`"))?;
    let verdict = Verdict::verified(&text);
    let ebs = record
        .builders
        .get(name)
        .is_some_and(|b| b.bundle.is_none());
    for ami in amis {
        // Only an official run is finished from another machine (`release`, `publish
        // --resume`): a test image's report stays in its run folder, and its bucket empties
        // when `cleanup` removes its bundles.
        if !record.spec.kind.is_test() {
            let (bucket, key) = location(matrix, record, name, &ami.id)
                .with_context(|| format!("builder `{name}` is not a row of the matrix"))?;
            let body = sh.current_dir().join(&path);
            aws.put_object(sh, &ami.region, (&bucket, &key), &body)
                .with_context(|| {
                    format!("cannot store its image report as `s3://{bucket}/{key}`")
                })?;
        }
        tag(sh, aws, ami, &verdict, ebs)?;
    }
    Ok(())
}

/// Tags an image, and for an EBS image its snapshots, with `verdict`.
fn tag(
    sh: &Shell,
    aws: &Aws,
    ami: &crate::pure::packer_log::Ami,
    verdict: &Verdict,
    ebs: bool,
) -> Result<()> {
    let mut ids = vec![ami.id.clone()];
    if ebs {
        let found = aws.describe_images(sh, &ami.region, &ImageQuery::ids(&[&ami.id]))?;
        ids.extend(found.into_iter().flat_map(|i| i.snapshots));
    }
    let (key, value) = verdict.tag();
    aws.tag_resources(sh, &ami.region, &ids, key, value)
}

/// The report kept for `ami`: the run folder's, else the copy stored in S3 beside the image.
fn kept_report(
    sh: &Shell,
    aws: &Aws,
    matrix: &Matrix,
    record: &RunRecord,
    name: &str,
    ami: &Image,
    region: &str,
) -> Option<String> {
    let here = sh.read_file(report_path(record, name)).ok();
    // The run folder's copy counts only when it is the one the image was verified with.
    let digest = ami.tag(verdict::VERIFIED);
    if let Some(text) = here.filter(|t| Some(sha256::hex(t.as_bytes()).as_str()) == digest) {
        return Some(text);
    }
    let (bucket, key) = location(matrix, record, name, &ami.id)?;
    match aws.get_object(sh, region, (&bucket, &key)) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("warning: cannot read `s3://{bucket}/{key}`: {e:#}");
            None
        }
    }
}

/// The decision on one image the run finds under its name or by its tags.
fn decide(
    sh: &Shell,
    aws: &Aws,
    matrix: &Matrix,
    record: &RunRecord,
    name: &str,
    image: &Image,
    region: &str,
) -> (Adoption, Option<String>) {
    let expectation = expectation(sh);
    let expected = expected(matrix, record, name);
    let check = |text: &str| -> Result<(), String> {
        let expectation = expectation.as_ref().map_err(Clone::clone)?;
        report::check(Some(text), expectation, &expected).map(|_| ())
    };
    let report = kept_report(sh, aws, matrix, record, name, image, region);
    let found = verdict::Found {
        id: &image.id,
        state: &image.state,
        public: image.public,
        tags: &image.tags,
    };
    let want = verdict::Expected {
        project: &matrix.settings.project,
        version: &record.spec.version,
        commit: &record.spec.commit,
        builder: name,
        kind: record.spec.kind.as_str(),
    };
    let decision = verdict::adoption(&found, report.as_deref(), &want, &check);
    let commit = match (&decision, &expectation) {
        (Adoption::Adopt, Ok(expectation)) => report
            .as_deref()
            .and_then(|t| report::check(Some(t), expectation, &expected).ok())
            .map(|r| r.comboami.commit),
        _ => None,
    };
    (decision, commit)
}

/// The images of each region, by id, as `describe-images` shows them now.
fn describe(sh: &Shell, aws: &Aws, ids: &[(String, String)]) -> Result<BTreeMap<String, Image>> {
    let mut by_region: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (region, id) in ids {
        by_region.entry(region).or_default().push(id);
    }
    let asks: Vec<(String, ImageQuery)> = by_region
        .iter()
        .map(|(region, ids)| (region.to_string(), ImageQuery::ids(ids)))
        .collect();
    let mut images = BTreeMap::new();
    for ((region, _), answer) in asks.iter().zip(aws.describe_images_in(sh, &asks)) {
        let answer = answer
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("cannot describe the run's images in {region}"))?;
        images.extend(answer.into_iter().map(|i| (i.id.clone(), i)));
    }
    Ok(images)
}

/// Images the cloud shows this run made but did not record: each is adopted only with a
/// passing verdict whose report is found and passes again; a rejected or unproven private one
/// is deregistered (with its snapshots) so its builder is built again under its name; a public
/// one that is not proven stops the run, with the reason.
pub fn review_found(
    sh: &Shell,
    aws: &Aws,
    matrix: &Matrix,
    record: &mut RunRecord,
    found: &[Adopted],
) -> Result<()> {
    let ids: Vec<(String, String)> = found
        .iter()
        .map(|a| (a.region.clone(), a.ami.clone()))
        .collect();
    let images = describe(sh, aws, &ids)?;
    for adopted in found {
        let Some(image) = images.get(&adopted.ami) else {
            continue;
        };
        let (decision, commit) = decide(
            sh,
            aws,
            matrix,
            record,
            &adopted.builder,
            image,
            &adopted.region,
        );
        match decision {
            Adoption::Adopt => {
                let whose = match adopted.run.as_deref().filter(|r| *r != record.run_id) {
                    Some(run) => {
                        format!("this version and the commit this run bakes (made by run `{run}`)")
                    }
                    None => "this run's tags".to_string(),
                };
                eprintln!(
                    "adopted {}: its image {} in {} carries {whose} and a `Verified` verdict whose report passes again",
                    adopted.builder, adopted.ami, adopted.region
                );
                let made_by = adopted.run.as_deref();
                record.adopt(&adopted.builder, &adopted.region, &adopted.ami, made_by);
                if let Some(b) = record.builders.get_mut(&adopted.builder) {
                    b.comboami_commit = commit;
                }
            }
            Adoption::RemoveRejected { reason } | Adoption::Rebuild { reason } if !image.public => {
                eprintln!("{reason}; it is private and this run's own, so it is deregistered (with its snapshots) and `{}` is built again", adopted.builder);
                aws.deregister_image(sh, &adopted.region, &image.id)?;
                for snapshot in &image.snapshots {
                    aws.delete_snapshot(sh, &adopted.region, snapshot)?;
                }
            }
            Adoption::RemoveRejected { reason } | Adoption::Rebuild { reason } => {
                anyhow::bail!(
                    "{reason}; it is PUBLIC, so the run stops here: make it private (`aws ec2 modify-image-attribute --region {} --image-id {} --launch-permission 'Remove=[{{Group=all}}]'`), then run the same command again",
                    adopted.region, image.id
                );
            }
        }
    }
    record.save(sh)
}

const PUBLIC: [&str; 4] = [
    "ec2",
    "modify-image-attribute",
    "--launch-permission",
    "Add=[{Group=all}]",
];
const PROTECTED: [&str; 3] = [
    "ec2",
    "enable-image-deregistration-protection",
    "--with-cooldown",
];

/// Makes the run's images public at once, when every builder is proven (or `partial` says to
/// publish the proven ones): each image's verdict is read back from the cloud and its report
/// checked again first; any that does not pass fails its builder and nothing is made public.
/// Returns whether the images are public now.
pub fn make_public(
    sh: &Shell,
    aws: &Aws,
    matrix: &Matrix,
    record: &mut RunRecord,
    partial: bool,
) -> Result<bool> {
    if record.made_public {
        return Ok(true);
    }
    if !record.unfinished().is_empty() && !partial {
        return Ok(false);
    }
    let amis = record.amis();
    let ids: Vec<(String, String)> = amis
        .iter()
        .map(|a| (a.region.clone(), a.id.clone()))
        .collect();
    let images = describe(sh, aws, &ids)?;
    let mut unproven = 0;
    for ami in &amis {
        let decision = match images.get(&ami.id) {
            Some(image) => decide(sh, aws, matrix, record, &ami.builder, image, &ami.region).0,
            None => Adoption::Rebuild {
                reason: format!("{} is gone from {}", ami.id, ami.region),
            },
        };
        if let Adoption::Rebuild { reason } | Adoption::RemoveRejected { reason } = decision {
            unproven += 1;
            if let Some(b) = record.builders.get_mut(&ami.builder) {
                b.state = BuilderState::Failed;
                b.error = Some(format!("not made public: {reason}"));
            }
        }
    }
    if unproven > 0 && !partial {
        record.save(sh)?;
        return Ok(false);
    }
    let proven: Vec<_> = record.amis();
    publish_all(sh, aws, &proven)?;
    record.made_public = true;
    record.save(sh)?;
    // Adopted images of an earlier publish may be public already: said, not counted as made.
    let already = proven
        .iter()
        .filter(|a| images.get(&a.id).is_some_and(|i| i.public))
        .count();
    let made = match (proven.len() - already, already) {
        (0, n) => format!("all {n} image(s) were public already; each is protected from deregistration"),
        (m, 0) => format!("made {m} image(s) public and protected from deregistration"),
        (m, n) => format!("made {m} image(s) public ({n} more were already) and protected all {} from deregistration", m + n),
    };
    eprintln!(
        "{made}{}",
        if partial && !record.unfinished().is_empty() {
            format!(
                " — A PARTIAL SET (`--partial`): {} builder(s) were not proven and are left out",
                record.unfinished().len()
            )
        } else {
            String::new()
        }
    );
    Ok(true)
}

/// Every image at once (a pool of `aws` calls): public, then protected. Both are idempotent,
/// so a resume after a failure here simply asks again.
fn publish_all(sh: &Shell, aws: &Aws, amis: &[crate::pure::packer_log::Ami]) -> Result<()> {
    for args in [&PUBLIC[..], &PROTECTED[..]] {
        let asks: Vec<(String, Vec<String>)> = amis
            .iter()
            .map(|ami| {
                let mut ask: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                ask.extend(["--image-id".to_string(), ami.id.clone()]);
                (ami.region.clone(), ask)
            })
            .collect();
        let failed: Vec<String> = aws
            .run_all(sh, &asks)
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if !failed.is_empty() {
            anyhow::bail!(
                "{} of {} image(s) could not be made public and protected: {}",
                failed.len(),
                amis.len(),
                failed.join("; ")
            );
        }
    }
    Ok(())
}
