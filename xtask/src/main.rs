//! `cargo xtask`: build, publish and release the ComboAMI machine images.
//!
//! This file parses, runs and prints the error; see ARCHITECTURE.md for the codemap.

// These shadow the standard macros in every module below: std's panic when stdout or stderr is a
// closed pipe (`cargo xtask config | head -1`); see `output.rs`.
macro_rules! println {
    () => { $crate::output::stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*), true) };
}
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*), false) };
}
macro_rules! eprintln {
    () => { $crate::output::stderr(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::stderr(format_args!($($arg)*), true) };
}
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!($($arg)*), false) };
}

mod aws;
mod cloud;
mod cmd;
mod credentials;
mod error;
mod git;
mod interrupt;
mod leftovers;
mod lock;
mod output;
mod packer;
mod project;
mod pure;
mod runs;
mod signing;
mod simulated;
mod standin;
mod view;

use clap::{CommandFactory, Parser};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<cmd::Command>,
}

/// The whole command line, for help and usage errors.
fn cli() -> clap::Command {
    Cli::command()
}

fn main() -> ExitCode {
    // Every time a command prints counts from here.
    view::start_clock();
    // Not a command: the helper that masks Packer's output into the run folder.
    if std::env::args().nth(1).as_deref() == Some(packer::RELAY) {
        return packer::relay_main();
    }
    let command = match Cli::try_parse() {
        Ok(Cli {
            command: Some(command),
        }) => command,
        Ok(Cli { command: None }) => {
            cmd::print_commands(&cli());
            return ExitCode::SUCCESS;
        }
        Err(usage) => return error::usage(usage),
    };
    let sh = match xshell::Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("error: cannot start a shell: {e}\nfix: run it from a folder that exists");
            return ExitCode::from(2);
        }
    };
    let (name, json) = (command.name(), command.json());
    output::set_json(json);
    let progress = std::sync::Arc::new(interrupt::Progress::of(name));
    let result = command.run(&sh, &progress);
    // Errors may quote files and answers: mask every secret the tool knows of before printing.
    let masker = credentials::masker_for_messages(&sh.current_dir());
    error::report(name, result, &progress, &masker)
}
