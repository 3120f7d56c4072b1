//! `cargo xtask config`: print or write the Packer template a build would use.

use crate::core::template::{self, Inputs, Kind};
use crate::project;
use anyhow::{Context, Result};
use xshell::Shell;

pub fn run(sh: &Shell, kind: Kind, only: &[String], out: Option<&str>) -> Result<()> {
    let matrix = project::matrix(sh)?;
    let (version, branch) = project::version_and_branch(sh)?;
    let epoch = project::epoch()?;
    let commit = project::git_commit(sh);
    let run_id = format!("{kind}-{epoch}");
    let only = project::split_names(only);
    let report_dir = format!("{}/{run_id}/reports", crate::runs::RUNS_DIR);
    let inputs = Inputs {
        kind,
        version: &version,
        branch: &branch,
        epoch,
        git_commit: &commit,
        run_id: &run_id,
        only: &only,
        private: false,
        report_dir: &report_dir,
        local: None,
    };
    let generated = template::generate(&matrix, &inputs).map_err(anyhow::Error::msg)?;
    let text = template::render(&generated);
    match out {
        Some(path) => {
            project::write_atomic(sh, path, &text)
                .with_context(|| format!("cannot write the template to `{path}`"))?;
            let builders = generated["builders"].as_array().map_or(0, Vec::len);
            eprintln!("wrote the {kind} template ({builders} builders) to `{path}`");
        }
        None => print!("{text}"),
    }
    Ok(())
}
