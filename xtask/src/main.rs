//! `cargo xtask`: build, publish and release the ComboAMI machine images.
//!
//! This file only parses flags and dispatches; see ARCHITECTURE.md for the codemap.

mod cmd;
mod core;
mod project;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Build, publish and release the ComboAMI machine images.
#[derive(Parser)]
#[command(name = "cargo xtask", disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print (or write) the Packer template for official, test-ebs or test-instance builds.
    Config {
        /// official, test-ebs or test-instance
        kind: String,
        /// Only these builders (names like `us-east-1-1404-hvm`, comma-separated or repeated).
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// Write the template to FILE instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
    },
    /// Set the version (and default branch) baked into the images, in `ds0_utils.py`.
    SetVersion {
        version: String,
        #[arg(long)]
        branch: Option<String>,
    },
    /// Merge the AMIs reported by Packer logs or manifests into `ami_ids.json`.
    AmiIds {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// The registry to update.
        #[arg(long, default_value = core::registry::REGISTRY_PATH, value_name = "FILE")]
        registry: String,
    },
    /// List every command.
    Help,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let Some(command) = cli.command.filter(|c| !matches!(c, Command::Help)) else {
        print_commands();
        return ExitCode::SUCCESS;
    };
    let sh = match xshell::Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("error: cannot start a shell: {e}");
            return ExitCode::from(2);
        }
    };
    match dispatch(&sh, command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cmd::exit_code(&e))
        }
    }
}

fn dispatch(sh: &xshell::Shell, command: Command) -> anyhow::Result<ExitCode> {
    project::enter_root(sh)?;
    match command {
        Command::Config { kind, only, out } => {
            cmd::config::run(sh, cmd::parse_kind(&kind)?, &only, out.as_deref())?
        }
        Command::SetVersion { version, branch } => {
            cmd::set_version::run(sh, &version, branch.as_deref())?
        }
        Command::AmiIds { files, registry } => cmd::ami_ids::run(sh, &files, &registry)?,
        Command::Help => unreachable!("handled before dispatch"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_commands() {
    use clap::CommandFactory;
    let command = Cli::command();
    println!("cargo xtask: build, publish and release the ComboAMI machine images\n");
    println!("Commands:");
    for sub in command.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        println!("  {:<14} {about}", sub.get_name());
    }
    println!("\nRun `cargo xtask COMMAND --help` for a command's options.");
}
