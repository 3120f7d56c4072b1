//! `cargo xtask config`: print or write the Packer template a build would use.

use crate::cmd::{Cmd, Context};
use crate::lock::Busy;
use crate::project;
use crate::pure::template::{self, Kind, Spec, Target};
use anyhow::{Context as _, Result};
use std::process::ExitCode;

/// Print (or write) the Packer template for official, test-ebs or test-instance builds.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  cargo xtask config test-ebs --only us-east-1-1404-hvm --out /tmp/t.json"
)]
pub struct Config {
    /// The template kind: `official`, `test-ebs` or `test-instance`.
    #[arg(value_name = "KIND")]
    kind: Kind,
    /// Only these builders (names like `us-east-1-1404-hvm`, comma-separated or repeated).
    #[arg(long, num_args = 1..)]
    only: Vec<String>,
    /// Write the template to FILE instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
}

impl Cmd for Config {
    const NAME: &'static str = "config";
    fn lock(&self) -> Option<Busy> {
        None
    }
    fn run(self, cx: &Context) -> Result<ExitCode> {
        let out = self.out.as_deref().map(|p| cx.path(p));
        print_template(cx.sh, self.kind, &self.only, out.as_deref())?;
        Ok(ExitCode::SUCCESS)
    }
}

fn print_template(
    sh: &xshell::Shell,
    kind: Kind,
    only: &[String],
    out: Option<&str>,
) -> Result<()> {
    let matrix = project::matrix(sh)?;
    let (version, branch) = project::version_and_branch(sh)?;
    let epoch = project::epoch()?;
    let commit = project::git_commit(sh);
    let run_id = format!("{kind}-{epoch}");
    let only = project::names("--only", only)?;
    let report_dir = format!("{}/{run_id}/reports", crate::runs::RUNS_DIR);
    let spec = Spec {
        kind,
        local: false,
        version,
        branch,
        commit,
        epoch,
        private: false,
        registry: None,
        only,
    };
    let target = Target {
        run_id: &run_id,
        report_dir: &report_dir,
        local: None,
    };
    let generated = template::generate(&matrix, &spec, target)?;
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
