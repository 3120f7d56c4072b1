//! One module per command. Each owns its flags (a clap struct that *is* the command) and
//! implements [`Cmd`]: the lock it takes, whether it reports JSON, and `run`. Its I/O goes
//! through `cx.sh`; its decisions are the core's.

pub mod ami_ids;
pub mod audit;
pub mod base_images;
pub mod build;
pub mod checks;
pub mod cleanup;
pub mod config;
pub mod doctor;
pub mod lifecycle;
pub mod local;
pub mod proof;
pub mod release;
pub mod retire;
pub mod set_version;
pub mod tag;

use crate::interrupt::Progress;
use crate::lock::Busy;
use crate::{interrupt, lock, project};
use anyhow::{bail, Context as _, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use xshell::Shell;

/// What every command runs with: one shell, at the repository root, and the folder the user
/// typed the command in (path arguments are relative to it).
pub struct Context<'a> {
    pub sh: &'a Shell,
    pub root: PathBuf,
    caller: PathBuf,
    /// Whether the command changed anything yet and what resumes it: for the interrupt handler
    /// and the error report.
    pub progress: Arc<Progress>,
}

impl Context<'_> {
    /// A path argument as the user meant it: relative to the folder they typed it in.
    pub fn path(&self, arg: &str) -> String {
        project::from_caller(&self.caller, &self.root, arg)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A command: its flags, what `main` must know before running it, and the run itself.
pub trait Cmd {
    /// The command's name as typed.
    const NAME: &'static str;
    /// The repository lock it takes (`None`: it only reads). Everything that builds, merges,
    /// releases, tags, deletes or starts a stand-in takes it.
    fn lock(&self) -> Option<Busy>;
    /// `--json`: its report is one JSON document on stdout, everything else goes to stderr.
    fn json(&self) -> bool {
        false
    }
    fn run(self, cx: &Context) -> Result<ExitCode>;
}

/// Build, publish and release the ComboAMI machine images.
#[derive(clap::Subcommand)]
pub enum Command {
    Config(config::Config),
    SetVersion(set_version::SetVersion),
    AmiIds(ami_ids::AmiIds),
    TestEbs(build::TestEbs),
    TestInstance(build::TestInstance),
    Publish(build::Publish),
    Release(release::Release),
    Tag(tag::Tag),
    BaseImages(base_images::BaseImages),
    Cleanup(cleanup::Cleanup),
    Retire(retire::Retire),
    Audit(audit::Audit),
    Local(local::Local),
    Doctor(doctor::Doctor),
    Help(Help),
}

/// `cmd => expr` for whichever command this is.
macro_rules! each {
    ($command:expr, $c:ident => $body:expr) => {
        match $command {
            Command::Config($c) => $body,
            Command::SetVersion($c) => $body,
            Command::AmiIds($c) => $body,
            Command::TestEbs($c) => $body,
            Command::TestInstance($c) => $body,
            Command::Publish($c) => $body,
            Command::Release($c) => $body,
            Command::Tag($c) => $body,
            Command::BaseImages($c) => $body,
            Command::Cleanup($c) => $body,
            Command::Retire($c) => $body,
            Command::Audit($c) => $body,
            Command::Local($c) => $body,
            Command::Doctor($c) => $body,
            Command::Help($c) => $body,
        }
    };
}

impl Command {
    pub fn name(&self) -> &'static str {
        fn name_of<C: Cmd>(_: &C) -> &'static str {
            C::NAME
        }
        each!(self, c => name_of(c))
    }

    pub fn json(&self) -> bool {
        each!(self, c => c.json())
    }

    /// Runs the command at the repository root, under its lock.
    pub fn run(self, sh: &Shell, progress: &Arc<Progress>) -> Result<ExitCode> {
        if let Command::Help(help) = self {
            return help.print();
        }
        // Path arguments are relative to the caller's folder; below, the shell works at the root.
        let caller = sh.current_dir();
        let root = project::enter_root(sh)?;
        let cx = Context {
            sh,
            root,
            caller,
            progress: progress.clone(),
        };
        let lock = each!(&self, c => c.lock());
        if let Some(busy) = lock {
            interrupt::on_early_exit(lock::stop_children_for_exit);
            interrupt::install(progress.clone());
            lock::acquire(&cx.root, self.name(), busy)?;
        }
        let result = each!(self, c => c.run(&cx));
        // Whatever happened, it is recorded: the next command has nothing of this one to report.
        lock::release(&cx.root);
        result
    }
}

/// List every command, or show one command's help: `cargo xtask help publish`.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  cargo xtask help publish")]
pub struct Help {
    /// The command to explain (without it, every command is listed).
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
}

impl Cmd for Help {
    const NAME: &'static str = "help";
    fn lock(&self) -> Option<Busy> {
        None
    }
    fn run(self, _cx: &Context) -> Result<ExitCode> {
        self.print()
    }
}

impl Help {
    fn print(self) -> Result<ExitCode> {
        let mut all = crate::cli();
        let Some(name) = self.command else {
            print_commands(&all);
            return Ok(ExitCode::SUCCESS);
        };
        let Some(sub) = all.find_subcommand_mut(&name) else {
            let names: Vec<&str> = all.get_subcommands().map(|s| s.get_name()).collect();
            return Err(crate::error::refused(
                format!("there is no command `{name}`"),
                format!("name one of: {}", names.join(", ")),
            ));
        };
        let mut sub = sub.clone().bin_name(format!("cargo xtask {name}"));
        println!("{}", sub.render_long_help());
        Ok(ExitCode::SUCCESS)
    }
}

pub fn print_commands(all: &clap::Command) {
    println!("cargo xtask: build, publish and release the ComboAMI machine images\n");
    println!("Commands:");
    for sub in all.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        println!("  {:<14} {about}", sub.get_name());
    }
    println!("\nRun `cargo xtask help COMMAND` (or `cargo xtask COMMAND --help`) for a command's options and an example.");
}

/// Asks for a typed `answer` before a costly or destructive `action` (shown after its plan);
/// `--yes` answers for the user. Without a terminal and without `--yes` it refuses.
pub fn confirm(yes: bool, action: &str, answer: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{action} needs confirmation: run it from a terminal to answer, or add `--yes` after reading the plan above");
    }
    eprint!("type `{answer}` to go ahead, anything else to stop: ");
    let mut typed = String::new();
    std::io::stdin()
        .read_line(&mut typed)
        .context("cannot read the answer")?;
    if typed.trim() != answer {
        bail!("stopped: nothing was changed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::ArgAction;

    /// Every command, argument and flag says what it is for in `--help`, and every command
    /// shows an example.
    #[test]
    fn every_argument_has_help_and_every_command_an_example() {
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("cargo xtask"), crate::cli())];
        while let Some((path, command)) = stack.pop() {
            if path != "cargo xtask" {
                if command.get_about().is_none() {
                    missing.push(format!("`{path}` (the command itself)"));
                }
                let after = command.get_after_help().map(|h| h.to_string());
                if !after.is_some_and(|h| h.contains("cargo xtask ")) {
                    missing.push(format!("`{path}`: an example"));
                }
            }
            for arg in command.get_arguments() {
                // clap's own `--help` (a positional may well be called `version`).
                let builtin = matches!(arg.get_action(), ArgAction::Help | ArgAction::Version);
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("`{path}` argument `{}`", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    /// `publish --partial` exists; `release` has no such flag, and its help says why and what
    /// to do instead.
    #[test]
    fn release_help_says_why_it_has_no_partial() {
        let cli = crate::cli();
        let flags = |name: &str| -> Vec<String> {
            let command = cli.find_subcommand(name).unwrap();
            command
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect()
        };
        assert!(flags("publish").contains(&"partial".to_string()));
        assert!(!flags("release").contains(&"partial".to_string()));
        let help = cli
            .find_subcommand("release")
            .and_then(|c| c.get_after_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for said in [
            "No `--partial` (unlike `publish`)",
            "disable it in `build/images.json`",
            "`cargo xtask publish --partial`",
        ] {
            assert!(help.contains(said), "`{said}` not in:\n{help}");
        }
    }
}
