//! `cargo xtask ami-ids`: merge the AMIs of Packer output files into `ami_ids.json`.

use crate::core::packer_log::{self, Ami, Tracker};
use crate::core::registry::{self, Change};
use crate::project;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use xshell::Shell;

pub fn run(sh: &Shell, files: &[String], registry_path: &str) -> Result<()> {
    let mut amis = Vec::new();
    for file in files {
        amis.extend(read_amis(sh, file)?);
    }
    let changes = merge_into(sh, registry_path, &amis)?;
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

/// Merges AMIs into a registry file, atomically; the file is untouched when nothing changes.
pub fn merge_into(sh: &Shell, registry_path: &str, amis: &[Ami]) -> Result<Vec<Change>> {
    let mut registry = project::registry(sh, registry_path)?;
    let changes = registry::merge(&mut registry, amis).map_err(anyhow::Error::msg)?;
    if !changes.is_empty() {
        project::write_atomic(sh, registry_path, &registry::render(&registry))?;
    }
    Ok(changes)
}

/// The successful AMIs of a machine-readable log or a `manifest` file, read as a stream.
pub fn read_amis(sh: &Shell, file: &str) -> Result<Vec<Ami>> {
    let path = sh.current_dir().join(file);
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
        Some(_) => read_log(file, reader),
    }
}

fn read_log(file: &str, reader: impl BufRead) -> Result<Vec<Ami>> {
    let mut tracker = Tracker::default();
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("cannot read `{file}` line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = packer_log::parse_line(&line).with_context(|| {
            format!(
                "`{file}` line {number} is not a Packer machine-readable record \
                 (`TIMESTAMP,TARGET,TYPE,DATA...`): `{}`; was the build run with `-machine-readable`?",
                line.chars().take(80).collect::<String>()
            )
        })?;
        tracker
            .feed(&record)
            .map_err(|e| anyhow::anyhow!("`{file}` line {number}: {e}"))?;
    }
    let amis = tracker.successful_amis();
    for ami in &amis {
        registry::release_and_virt(&ami.builder).map_err(|e| anyhow::anyhow!("`{file}`: {e}"))?;
    }
    Ok(amis)
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

fn read_manifest(file: &str, reader: impl Read) -> Result<Vec<Ami>> {
    let manifest: Manifest = serde_json::from_reader(reader).map_err(|e| {
        anyhow::anyhow!(
            "`{file}` line {}: not a Packer manifest ({e}); expected {{\"builds\": [{{\"name\", \"artifact_id\", ...}}]}}",
            e.line()
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
    Ok(latest.into_values().flatten().collect())
}
