//! `cargo xtask base-images [--region R...] [--update] [--add-region R] [--local]`: look up
//! Canonical's newest official Ubuntu image for every row (its release, virtualization and root
//! device) in its region, print old -> new, and with `--update` write only the changed ids into
//! `build/images.json`; `--add-region R` proposes the rows of a new region.

use crate::aws::Aws;
use crate::credentials;
use crate::project;
use crate::pure::base_images::{self, CANONICAL};
use crate::pure::ec2::{Image, ImageQuery};
use crate::pure::matrix::{Matrix, MATRIX_PATH};
use crate::standin::Standin;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use xshell::Shell;

/// Find Canonical's newest Ubuntu base image for every row; `--update` writes the new ids into `build/images.json`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask base-images\n  cargo xtask base-images --region us-east-1 --update"
)]
pub struct BaseImages {
    /// Only the rows of these regions (comma-separated or repeated).
    #[arg(long = "region", value_name = "REGION", num_args = 1..)]
    regions: Vec<String>,
    /// Write the changed ids (and added rows) into `build/images.json` (with `--local`, into the
    /// copy `target/standin/images.json`: the stand-in's catalogue is made up).
    #[arg(long)]
    update: bool,
    /// Propose the rows of a region the matrix does not have yet.
    #[arg(long, value_name = "REGION")]
    add_region: Option<String>,
    /// Ask the local stand-in instead of AWS.
    #[arg(long)]
    local: bool,
}

impl crate::cmd::Cmd for BaseImages {
    const NAME: &'static str = "base-images";
    fn lock(&self) -> Option<crate::lock::Busy> {
        // `--update` writes `build/images.json`; `--local` starts a stand-in, which must never
        // replace the one a running build uses.
        (self.update || self.local).then_some(crate::lock::Busy::Refuse)
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<std::process::ExitCode> {
        run(cx.sh, cx.root(), &self)?;
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// Where `--local --update` writes: a copy of the matrix beside the stand-in, with its answers.
pub const LOCAL_MATRIX_PATH: &str = "target/standin/images.json";

fn run(sh: &Shell, root: &Path, options: &BaseImages) -> Result<()> {
    let text = project::read(sh, MATRIX_PATH)?;
    let matrix = project::matrix(sh)?;
    let regions = project::names("--region", &options.regions)?;
    refuse_unknown(&matrix, &regions, options.add_region.as_deref())?;
    let rows = if options.add_region.is_some() && regions.is_empty() {
        Vec::new()
    } else {
        base_images::rows(&matrix, &regions)
    };
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, row) in &rows {
        wanted
            .entry(row.region.clone())
            .or_default()
            .insert(row.os_version.clone());
    }
    if let Some(new) = &options.add_region {
        let releases = matrix.images.iter().map(|r| r.os_version.clone()).collect();
        wanted.insert(new.clone(), releases);
    }
    let standin;
    let aws = if options.local {
        standin = Standin::attach_or_start(sh, root, &matrix)?;
        Aws::local(&standin)
    } else {
        credentials::resolve_profile(sh, root, "aws")?;
        Aws::real(sh, root)?
    };
    let found = look_up(sh, &aws, &wanted)?;
    report(&text, &matrix, &rows, &found, sh, options)
}

/// `--region` must name a region with rows; `--add-region` one without.
fn refuse_unknown(matrix: &Matrix, regions: &[String], add_region: Option<&str>) -> Result<()> {
    let known: BTreeSet<&str> = matrix.images.iter().map(|r| r.region.as_str()).collect();
    if let Some(unknown) = regions.iter().find(|r| !known.contains(r.as_str())) {
        return Err(crate::error::refused(
            format!("no row of `{MATRIX_PATH}` is in region `{unknown}`"),
            format!(
                "name one of {}, or propose rows for it with `--add-region {unknown}`",
                known.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if let Some(new) = add_region.filter(|new| known.contains(new)) {
        return Err(crate::error::refused(
            format!("`{MATRIX_PATH}` already has rows in `{new}`"),
            format!("refresh them with `--region {new}`"),
        ));
    }
    // An AWS region name (`ap-south-2`): anything else only fails later, in AWS's words.
    let shaped = |name: &str| {
        let parts: Vec<&str> = name.split('-').collect();
        parts.len() >= 3
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty()
    };
    if let Some(new) = add_region.filter(|new| !shaped(new)) {
        return Err(crate::error::refused(
            format!("`--add-region {new:?}` is not an AWS region name"),
            "give a region as AWS names it, like `ap-south-1` (`aws ec2 describe-regions` lists them)",
        ));
    }
    Ok(())
}

/// Canonical's Ubuntu images of the wanted releases, per region (all regions at once).
fn look_up(
    sh: &Shell,
    aws: &Aws,
    wanted: &BTreeMap<String, BTreeSet<String>>,
) -> Result<BTreeMap<String, Vec<Image>>> {
    let asks: Vec<(String, ImageQuery)> = wanted
        .iter()
        .map(|(region, releases)| {
            let patterns: Vec<String> = releases
                .iter()
                .filter_map(|r| base_images::name_pattern(r))
                .collect();
            let query = ImageQuery::owned_by(CANONICAL)
                .filter("name", &patterns)
                .filter("architecture", &["x86_64"]);
            (region.clone(), query)
        })
        .collect();
    eprintln!(
        "asking `aws` for Canonical's Ubuntu images (owner {CANONICAL}) in {} region(s)...",
        asks.len()
    );
    let mut found: BTreeMap<String, Vec<Image>> = BTreeMap::new();
    let mut failed = Vec::new();
    for ((region, _), answer) in asks.iter().zip(aws.describe_images_in(sh, &asks)) {
        match answer {
            Ok(images) => {
                found.insert(region.clone(), images);
            }
            Err(e) => failed.push(format!("{region}: {e}")),
        }
    }
    if !failed.is_empty() {
        bail!("cannot look up the images:\n{}", failed.join("\n"));
    }
    Ok(found)
}

/// Prints old -> new (and the proposed rows of `--add-region`), then writes them with
/// `--update`.
fn report(
    text: &str,
    matrix: &Matrix,
    rows: &[(usize, &crate::pure::matrix::Image)],
    found: &BTreeMap<String, Vec<Image>>,
    sh: &Shell,
    options: &BaseImages,
) -> Result<()> {
    let findings = base_images::findings(rows, &|region| {
        found.get(region).cloned().unwrap_or_default()
    });
    let changes = findings.iter().filter(|f| f.newer()).count();
    let names = findings.iter().filter(|f| f.renames()).count();
    let nothing: Vec<&str> = findings
        .iter()
        .filter(|f| f.new.is_none())
        .map(|f| f.builder.as_str())
        .collect();
    if !findings.is_empty() {
        print!("{}", base_images::report(&findings));
        println!(
            "\n{changes} of {} base image(s) have a newer image{}",
            findings.len(),
            if nothing.is_empty() {
                String::new()
            } else {
                format!(
                    "; nothing found for {} (kept as they are)",
                    nothing.join(", ")
                )
            }
        );
    }
    let new_rows = proposed_rows(matrix, found, options.add_region.as_deref());
    let updated = edited(text, &findings, &new_rows, options.add_region.as_deref())?;
    if updated == text {
        println!("`{MATRIX_PATH}` is up to date");
        return Ok(());
    }
    // The stand-in's catalogue is made up: a rehearsal writes a scratch copy, never the matrix.
    let target = if options.local {
        LOCAL_MATRIX_PATH
    } else {
        MATRIX_PATH
    };
    if !options.update {
        println!("run the same command with `--update` to write this into `{target}`");
        return Ok(());
    }
    // What is written must still be a valid matrix.
    Matrix::parse(&updated).map_err(|e| {
        anyhow::anyhow!("the updated matrix would be invalid, so nothing was written: {e}")
    })?;
    if options.local {
        sh.create_dir("target/standin")?;
    }
    project::write_atomic(sh, target, &updated)?;
    println!(
        "updated `{target}`: {changes} id(s) changed, {names} name(s) recorded{}",
        if new_rows.is_empty() {
            String::new()
        } else {
            format!(", {} row(s) added", new_rows.len())
        }
    );
    Ok(())
}

/// The rows `--add-region` proposes, printed with what it could not find.
fn proposed_rows(
    matrix: &Matrix,
    found: &BTreeMap<String, Vec<Image>>,
    region: Option<&str>,
) -> Vec<String> {
    let Some(region) = region else {
        return Vec::new();
    };
    let images = found.get(region).cloned().unwrap_or_default();
    let (new_rows, missing) = base_images::new_region_rows(matrix, region, &images);
    println!("\nproposed rows for {region}:");
    for row in &new_rows {
        println!("{row}");
    }
    for line in &missing {
        println!("  {line}");
    }
    new_rows
}

/// `build/images.json` with the new ids, the proposed rows and their region allowed.
fn edited(
    text: &str,
    findings: &[base_images::Finding],
    new_rows: &[String],
    add_region: Option<&str>,
) -> Result<String> {
    let mut updated = base_images::apply(text, findings).map_err(anyhow::Error::msg)?;
    updated = base_images::append_rows(&updated, new_rows).ok_or_else(|| {
        anyhow::anyhow!("cannot find where to add rows in `{MATRIX_PATH}`: add them by hand")
    })?;
    if let (Some(region), false) = (add_region, new_rows.is_empty()) {
        // A new region must be allowed too (`settings.regions`).
        updated = base_images::allow_region(&updated, region).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot find `settings.regions` in `{MATRIX_PATH}`: add `{region}` by hand"
            )
        })?;
    }
    Ok(updated)
}
