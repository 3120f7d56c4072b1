//! `cargo xtask ami-ids`: merge the AMIs of Packer output files into `ami_ids.json`.

use crate::cmd::Cmd;
use crate::error::{BuildsFailed, FixContext};
use crate::lock::Busy;
use crate::project;
use crate::pure::matrix::Matrix;
use crate::pure::packer_log::{self, Ami, OutcomeScanner, Tracker};
use crate::pure::registry::{self, Change};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use xshell::Shell;

/// Merge the AMIs reported by Packer logs or manifests into `ami_ids.json`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  cargo xtask ami-ids build/runs/official-1732000000/output-1.log"
)]
pub struct AmiIds {
    /// Packer machine-readable logs (`packer build -machine-readable`) or manifest files
    /// (the `manifest` post-processor) to read the AMIs from.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// The registry to update (default: the repository's `ami_ids.json`).
    #[arg(long, value_name = "FILE")]
    registry: Option<String>,
}

impl Cmd for AmiIds {
    const NAME: &'static str = "ami-ids";
    fn lock(&self) -> Option<Busy> {
        // A merge is short: wait for the other merge rather than refuse and lose the AMIs.
        Some(Busy::Wait)
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<ExitCode> {
        let files: Vec<String> = self.files.iter().map(|f| cx.path(f)).collect();
        let registry = self
            .registry
            .as_deref()
            .map_or(crate::pure::registry::REGISTRY_PATH.into(), |r| cx.path(r));
        merge_files(cx.sh, &files, &registry, &cx.progress)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn merge_files(
    sh: &Shell,
    files: &[String],
    registry_path: &str,
    progress: &crate::interrupt::Progress,
) -> Result<()> {
    let matrix = project::matrix(sh)?;
    let mut amis = Vec::new();
    let mut failed = Vec::new();
    for file in files {
        let what = || format!("cannot merge `{file}`: nothing was merged");
        let found = match read_amis(sh, file) {
            Ok(found) => found,
            Err(e) if crate::error::has_fix(&e) => return Err(e.context(what())),
            Err(e) => return Err(e).fix(what, || "give what a build wrote: a run's `build/runs/RUN/output-N.log` (Packer's machine-readable output) or Packer's manifest (`packer-manifest.json`)".into()),
        };
        check_regions(&matrix, &found.amis)
            .with_context(|| format!("`{file}` cannot be merged"))?;
        amis.extend(found.amis);
        failed.extend(found.failed);
    }
    for warning in packer_log::region_warnings(&amis) {
        eprintln!("warning: {warning}");
    }
    let failed_list = || {
        failed
            .iter()
            .map(|(name, error)| format!("`{name}` ({error})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let named = files
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if amis.is_empty() {
        let why = if failed.is_empty() {
            "no builder reported an AMI".to_string()
        } else {
            format!("{} builder(s) errored: {}", failed.len(), failed_list())
        };
        return Err(anyhow::Error::new(BuildsFailed)).context(format!(
            "no successful build in {named}: {why}; `{registry_path}` was not changed"
        ));
    }
    if !failed.is_empty() {
        eprintln!(
            "warning: {} builder(s) errored and add nothing: {}",
            failed.len(),
            failed_list()
        );
    }
    crate::interrupt::check("changing the registry")?;
    let changes = merge_into(sh, registry_path, &amis, progress)?;
    if changes.is_empty() {
        println!(
            "`{registry_path}` already lists all {} AMI(s): nothing changed",
            amis.len()
        );
    } else {
        for change in &changes {
            println!("{change}");
        }
        println!(
            "`{registry_path}`: {} change(s) from {} AMI(s)",
            changes.len(),
            amis.len()
        );
    }
    Ok(())
}

/// Merges AMIs into a registry file, atomically; the file is untouched when nothing changes or
/// an AMI is in a region the project does not publish to. The caller holds the repository's
/// lock, so the read, the merge and the write are one step no other merge can interleave with.
pub fn merge_into(
    sh: &Shell,
    registry_path: &str,
    amis: &[Ami],
    progress: &crate::interrupt::Progress,
) -> Result<Vec<Change>> {
    crate::lock::ensure_held()?;
    check_regions(&project::matrix(sh)?, amis)
        .with_context(|| format!("nothing was merged into `{registry_path}`"))?;
    let mut registry = project::registry(sh, registry_path)?;
    let changes = registry::merge(&mut registry, amis).map_err(anyhow::Error::msg)?;
    if !changes.is_empty() {
        progress.mark_started();
        project::write_atomic(sh, registry_path, &registry::render(&registry))?;
    }
    Ok(changes)
}

/// What one file reports: the AMIs of the builders that succeeded, and the builders that
/// errored with the first line of their error (a manifest lists successes only).
#[derive(Default)]
pub struct Found {
    pub amis: Vec<Ami>,
    pub failed: Vec<(String, String)>,
}

/// Every AMI must be in a region of `settings.regions`; each bad region is named once, with its
/// first AMI.
fn check_regions(matrix: &Matrix, amis: &[Ami]) -> Result<()> {
    let mut bad: std::collections::BTreeMap<&str, Vec<&Ami>> = Default::default();
    for ami in amis {
        if matrix.check_region(&ami.region).is_err() {
            bad.entry(&ami.region).or_default().push(ami);
        }
    }
    let problems: Vec<String> = bad
        .iter()
        .map(|(region, amis)| {
            let why = matrix.check_region(region).unwrap_err();
            let more = match amis.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            format!(
                "AMI `{}` of builder `{}`{more}: {why}",
                amis[0].id, amis[0].builder
            )
        })
        .collect();
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// The successful AMIs of a machine-readable log or a `manifest` file, read as a stream.
pub fn read_amis(sh: &Shell, file: &str) -> Result<Found> {
    let path = sh.current_dir().join(file);
    refuse_a_local_runs_output(file, &path)?;
    let handle = std::fs::File::open(&path).with_context(|| format!("cannot open `{file}`"))?;
    let mut reader = BufReader::with_capacity(1 << 16, handle);
    let first = reader
        .fill_buf()
        .with_context(|| format!("cannot read `{file}`"))?
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied();
    match first {
        None => bail!("`{file}` is empty: expected a Packer machine-readable log or manifest"),
        Some(b'{') => read_manifest(file, reader),
        Some(_) => read_log(file, &path, reader),
    }
}

/// Reads the log in large chunks of whole lines and decodes only the records that can change an
/// outcome (see [`OutcomeScanner`]): a log of gigabytes takes about as long as `grep`, in the
/// memory of one chunk.
fn read_log(file: &str, path: &Path, mut reader: impl Read) -> Result<Found> {
    const CHUNK: usize = 1 << 20;
    let scanner = OutcomeScanner::default();
    let mut tracker = Tracker::default();
    let mut buffer = vec![0u8; CHUNK];
    let (mut filled, mut offset, mut checked_first) = (0, 0u64, false);
    let mut test_build = None;
    loop {
        let read = match reader.read(&mut buffer[filled..]) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read `{file}`")),
        };
        filled += read;
        let end = match memchr::memrchr(b'\n', &buffer[..filled]) {
            _ if read == 0 => filled,
            Some(last) => last + 1,
            None => {
                // A line longer than the buffer: make room for it.
                if filled == buffer.len() {
                    buffer.resize(buffer.len() * 2, 0);
                }
                continue;
            }
        };
        let chunk = &buffer[..end];
        if !checked_first {
            checked_first = check_first_record(file, chunk)?;
        }
        test_build = test_build.or_else(|| test_kind_named(chunk));
        for range in scanner.lines(chunk) {
            let at = offset + range.start as u64;
            let line = String::from_utf8_lossy(&chunk[range]);
            let Some(record) = packer_log::parse_line(&line) else {
                bail!("{}", not_a_record(file, line_number(path, at), &line));
            };
            if let Err(e) = tracker.feed(&record) {
                bail!("`{file}` line {}: {e}", line_number(path, at));
            }
        }
        if read == 0 {
            break;
        }
        buffer.copy_within(end..filled, 0);
        filled -= end;
        offset += end as u64;
    }
    if let Some(kind) = test_build {
        return Err(crate::error::refused(
            format!("`{file}` is the output of a `{kind}` build (its AMI names end in `({kind} …)`): test images are private and never listed in `{}`", registry::REGISTRY_PATH),
            "merge the output of an official build (`cargo xtask publish` merges its own); `cargo xtask cleanup --kind test-ebs` lists what test builds left",
        ));
    }
    let amis = tracker.successful_amis();
    for ami in &amis {
        registry::release_and_virt(&ami.builder).map_err(|e| anyhow::anyhow!("`{file}`: {e}"))?;
    }
    Ok(Found {
        amis,
        failed: tracker.failed_builders(),
    })
}

/// A file of a local run's folder (its `run.json` beside it says `local`) lists AMIs of the
/// stand-in, which exist nowhere in AWS.
fn refuse_a_local_runs_output(file: &str, path: &Path) -> Result<()> {
    let record = path.parent().map(|dir| dir.join("run.json"));
    let Some(text) = record.and_then(|record| std::fs::read_to_string(record).ok()) else {
        return Ok(());
    };
    let local = crate::pure::json::parse::<crate::pure::run::RunRecord>(&text)
        .is_ok_and(|run| run.spec.local);
    if local {
        return Err(crate::error::refused(
            format!("`{file}` is the output of a local run (its `run.json` says so): its AMIs exist only in the stand-in, never in AWS"),
            "merge the output of a build on AWS; a local publish merges into the scratch copy in its run folder by itself",
        ));
    }
    Ok(())
}

/// The test kind whose AMI names the chunk shows (`... AMI 2.6.4-1404-hvm (test-ebs 1700000000)`,
/// as the test templates name them), if any.
fn test_kind_named(chunk: &[u8]) -> Option<&'static str> {
    ["test-ebs", "test-instance"]
        .into_iter()
        .find(|kind| memchr::memmem::find(chunk, format!("({kind} ").as_bytes()).is_some())
}

/// Whether the chunk showed the first record; an error when that first line is not one (a log
/// made without `-machine-readable`, or not a Packer log at all).
fn check_first_record(file: &str, chunk: &[u8]) -> Result<bool> {
    for (index, line) in chunk.split(|b| *b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        if line.trim().is_empty() {
            continue;
        }
        if packer_log::parse_line(&line).is_none() {
            bail!("{}", not_a_record(file, index + 1, &line));
        }
        return Ok(true);
    }
    Ok(false)
}

fn not_a_record(file: &str, number: usize, line: &str) -> String {
    format!(
        "`{file}` line {number} is not a Packer machine-readable record \
         (`TIMESTAMP,TARGET,TYPE,DATA...`): `{}`; was the build run with `-machine-readable`?",
        line.chars().take(80).collect::<String>()
    )
}

/// The line number of a byte offset, for an error message: counted only when one is reported.
fn line_number(path: &Path, offset: u64) -> usize {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let (mut prefix, mut buffer, mut lines) = (file.take(offset), vec![0u8; 1 << 16], 1);
    while let Ok(read @ 1..) = prefix.read(&mut buffer) {
        lines += memchr::memchr_iter(b'\n', &buffer[..read]).count();
    }
    lines
}

#[derive(Deserialize)]
struct Manifest {
    builds: Vec<ManifestBuild>,
}

#[derive(Deserialize)]
struct ManifestBuild {
    name: String,
    artifact_id: String,
}

fn read_manifest(file: &str, mut reader: impl Read) -> Result<Found> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read `{file}`"))?;
    let manifest: Manifest = crate::pure::json::parse(&text).map_err(|e| {
        anyhow::anyhow!(
            "`{file}` is not a Packer manifest: {e}; expected {{\"builds\": [{{\"name\", \"artifact_id\", ...}}]}}"
        )
    })?;
    // A manifest accumulates runs: a later build of the same builder supersedes earlier ones.
    let mut latest: std::collections::BTreeMap<&str, Vec<Ami>> = Default::default();
    for build in &manifest.builds {
        registry::release_and_virt(&build.name).map_err(|e| anyhow::anyhow!("`{file}`: {e}"))?;
        let amis = build
            .artifact_id
            .split(',')
            .map(|pair| packer_log::parse_pair(&build.name, pair))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("`{file}`: {e}"))?;
        latest.insert(&build.name, amis);
    }
    Ok(Found {
        amis: latest.into_values().flatten().collect(),
        failed: Vec::new(),
    })
}
