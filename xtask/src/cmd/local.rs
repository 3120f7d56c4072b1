//! `cargo xtask local up|down|status`: keep one local AWS stand-in running across commands.

use crate::standin::{self, Standin};
use crate::{lock, project};
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use xshell::Shell;

/// Keep a local AWS stand-in running across commands: `up`, `down` or `status`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  cargo xtask local up && cargo xtask test-ebs --local && cargo xtask local down"
)]
pub struct Local {
    /// `up` (start and keep running), `down` (stop) or `status`.
    #[arg(value_name = "ACTION")]
    action: Action,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Action {
    /// Start the stand-in and keep it running.
    Up,
    /// Stop the kept stand-in.
    Down,
    /// Tell whether it runs, and where.
    Status,
}

impl crate::cmd::Cmd for Local {
    const NAME: &'static str = "local";
    fn lock(&self) -> Option<lock::Busy> {
        match self.action {
            Action::Up | Action::Down => Some(lock::Busy::Refuse),
            Action::Status => None,
        }
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<ExitCode> {
        match self.action {
            Action::Up => up(cx.sh, cx.root(), &cx.progress)?,
            Action::Down => down(cx.root())?,
            Action::Status => status(cx.root())?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn up(sh: &Shell, root: &Path, progress: &crate::interrupt::Progress) -> Result<()> {
    if let Some(running) = Standin::running(root) {
        println!("the stand-in is already running:");
        describe(&running);
        return Ok(());
    }
    let matrix = project::matrix(sh)?;
    progress.mark_started();
    let standin = Standin::start(sh, root, &matrix, true)?;
    if crate::interrupt::requested() {
        standin::stop_running(root)?;
        return Err(crate::interrupt::interrupted("keeping the stand-in"));
    }
    println!("the stand-in is running (stop it with `cargo xtask local down`):");
    describe(&standin);
    Ok(())
}

fn down(root: &Path) -> Result<()> {
    if standin::stop_running(root)? {
        println!("stopped the stand-in");
    } else {
        println!("no stand-in was running");
    }
    Ok(())
}

fn status(root: &Path) -> Result<()> {
    match Standin::running(root) {
        Some(standin) => {
            println!("running:");
            describe(&standin);
        }
        None => println!("not running (start it with `cargo xtask local up`)"),
    }
    if let Some(holder) = lock::holder_now(root) {
        println!(
            "in use by `cargo xtask {}` (pid {}){}",
            holder.command,
            holder.pid,
            holder
                .run
                .map(|run| format!(", run `{run}`"))
                .unwrap_or_default()
        );
    }
    let orphans = lock::orphans(root);
    if !orphans.is_empty() {
        let names: Vec<String> = orphans
            .iter()
            .map(|c| format!("{} (pid {})", c.what, c.pid))
            .collect();
        println!(
            "left running by a command that was killed: {}; the next command that builds (or `cargo xtask local down`) stops them",
            names.join(", ")
        );
    }
    Ok(())
}

fn describe(standin: &Standin) {
    println!(
        "  EC2 and S3 (moto)  {}  (pid {})",
        standin.endpoint(),
        standin.moto_pid
    );
    println!(
        "  instance (sshd)    127.0.0.1:{}  (pid {})",
        standin.ssh_port, standin.sshd_pid
    );
    if standin.aws_pid != 0 {
        println!(
            "  aws CLI, warm      {}  (pid {})",
            standin.aws_cli().display(),
            standin.aws_pid
        );
    }
    println!("  files              {}", standin.dir.display());
    println!(
        "  ask it             AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x {} --endpoint-url {} --region us-east-1 ec2 describe-images --owners self",
        standin.aws_cli().display(),
        standin.endpoint()
    );
}
