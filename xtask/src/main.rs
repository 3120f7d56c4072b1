//! `cargo xtask`: build, publish and release the ComboAMI machine images.
//!
//! This file only parses flags and dispatches; see ARCHITECTURE.md for the codemap.

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
mod core;
mod credentials;
mod git;
mod interrupt;
mod lock;
mod output;
mod packer;
mod project;
mod runs;
mod signing;
mod simulated;
mod standin;
mod view;

use clap::{Parser, Subcommand, ValueEnum};
use core::template::Kind;
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
        /// The template kind: `official`, `test-ebs` or `test-instance`.
        #[arg(value_name = "KIND")]
        kind: Kind,
        /// Only these builders (names like `us-east-1-1404-hvm`, comma-separated or repeated).
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// Write the template to FILE instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
    },
    /// Set the version (and default branch) baked into the images, in `ds0_utils.py`.
    SetVersion {
        /// The new version, like `2.6.4` (semver; `2.6.4-beta1` for a candidate).
        version: String,
        /// Also set the default branch baked into the images (the repository branch the images
        /// check out on first boot, like `2.6`); without it the branch is left as it is.
        #[arg(long, value_name = "BRANCH")]
        branch: Option<String>,
    },
    /// Merge the AMIs reported by Packer logs or manifests into `ami_ids.json`.
    AmiIds {
        /// Packer machine-readable logs (`packer build -machine-readable`) or manifest files
        /// (the `manifest` post-processor) to read the AMIs from.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// The registry to update (default: the repository's `ami_ids.json`).
        #[arg(long, value_name = "FILE")]
        registry: Option<String>,
    },
    /// Build private EBS-backed test images in the test region.
    TestEbs(TestBuildArgs),
    /// Build private instance-store test images in the test region.
    TestInstance(TestBuildArgs),
    /// Build every enabled row of the matrix as public images and merge them into `ami_ids.json`.
    Publish {
        #[command(flatten)]
        common: TestArgs,
        /// Build one builder at a time (troubleshooting).
        #[arg(long)]
        no_parallel: bool,
        /// Pause after every Packer step (needs a terminal).
        #[arg(long)]
        debug: bool,
        /// Launch without asking, after the plan is shown.
        #[arg(long)]
        yes: bool,
        /// Build private images (`ami_groups` empty) and leave `ami_ids.json` alone.
        #[arg(long)]
        private: bool,
        /// Rebuild only what did not succeed in the latest run, or in RUN.
        #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
        resume: Option<String>,
    },
    /// The whole official release: check, set the version, publish, merge, commit, tag, push.
    Release {
        /// The version to release, like `2.6.4` (or `2.6.4-beta1` for a candidate).
        version: String,
        /// The release branch (default: MAJOR.MINOR of VERSION).
        #[arg(long)]
        branch: Option<String>,
        /// Release from the current branch even if it is not the release branch.
        #[arg(long)]
        allow_branch: bool,
        /// Print the checks and the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Push the commit and the tag to REMOTE (default `origin`).
        #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "origin")]
        push: Option<String>,
        /// Rehearse against the local stand-in, in a scratch clone: no account, no cost.
        #[arg(long)]
        local: bool,
        /// Go ahead without asking, after the plan is shown.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        sign: SignArgs,
        /// Build one builder at a time (troubleshooting).
        #[arg(long)]
        no_parallel: bool,
        /// Pause after every Packer step (needs a terminal).
        #[arg(long)]
        debug: bool,
        /// Options passed on to `packer build` (after `--`).
        #[arg(last = true, value_name = "PACKER_ARGS")]
        packer_args: Vec<String>,
        /// Print the end-of-run summary as one JSON document on stdout (everything else goes
        /// to stderr).
        #[arg(long)]
        json: bool,
        /// Publish without asking AWS first (emergencies only: said loudly in the plan and the run record).
        #[arg(long)]
        skip_cloud_checks: bool,
    },
    /// Tag the current commit `release/VERSION` (or `candidate/VERSION`) for images built another way.
    Tag {
        /// The released version, like `2.6.4` (a pre-release like `2.6.4-beta1` is tagged
        /// `candidate/2.6.4-beta1`).
        version: String,
        /// Push the branch and the tag to REMOTE (default `origin`).
        #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "origin")]
        push: Option<String>,
        /// Print the checks and the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Push without asking, after the plan is shown.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        sign: SignArgs,
        /// Print what was tagged (and pushed) as one JSON document on stdout (everything else
        /// goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// List (and with `--execute` delete) what matching builds left in AWS: AMIs, snapshots, volumes, S3 bundles.
    Cleanup {
        /// Only what this run made (a folder name of `build/runs/`).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// Only images of this version.
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Only test images of this kind: test-ebs or test-instance.
        #[arg(long, value_name = "KIND")]
        kind: Option<Kind>,
        /// Only these regions (comma-separated or repeated).
        #[arg(long, value_name = "REGION", num_args = 1..)]
        region: Vec<String>,
        /// Keep the newest N runs per kind and region.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Only what is older than DURATION (`7d`, `12h`).
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Delete images even if instances or launch templates use them.
        #[arg(long)]
        even_if_used: bool,
        /// Delete what is listed (without it, nothing is deleted).
        #[arg(long)]
        execute: bool,
        /// Clean up the local stand-in kept by `cargo xtask local up`.
        #[arg(long)]
        local: bool,
        /// Print what was found (and deleted) as one JSON document on stdout (everything else
        /// goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Retire a release's images in stages: deprecate, make private, deregister (with `--execute`).
    Retire {
        /// The release (or candidate) to retire, like `2.6.3`.
        version: String,
        /// Deprecate the images (hidden from searches, still launchable by id).
        #[arg(long)]
        deprecate: bool,
        /// When they become deprecated (default: now): `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]Z`.
        #[arg(long, value_name = "DATE", requires = "deprecate")]
        at: Option<String>,
        /// Remove the public launch permission.
        #[arg(long)]
        make_private: bool,
        /// Deregister the images, then delete their snapshots and bundles.
        #[arg(long)]
        deregister: bool,
        /// Days an image must have been deprecated before `--deregister` (0: only deprecated).
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        grace: u64,
        /// Act even on images that instances or launch templates use.
        #[arg(long)]
        even_if_used: bool,
        /// Do what the plan shows (without it, nothing is changed).
        #[arg(long)]
        execute: bool,
        /// Work on the local stand-in kept by `cargo xtask local up`.
        #[arg(long)]
        local: bool,
    },
    /// Check every release and candidate tag and `ami_ids.json` against the images in AWS.
    Audit {
        /// Only these regions (comma-separated or repeated).
        #[arg(long, value_name = "REGION", num_args = 1..)]
        region: Vec<String>,
        /// Audit the local stand-in kept by `cargo xtask local up`.
        #[arg(long)]
        local: bool,
    },
    /// Find Canonical's newest Ubuntu base image for every row; `--update` writes the new ids into `build/images.json`.
    BaseImages {
        /// Only the rows of these regions (comma-separated or repeated).
        #[arg(long, value_name = "REGION", num_args = 1..)]
        region: Vec<String>,
        /// Write the changed ids (and added rows) into `build/images.json`.
        #[arg(long)]
        update: bool,
        /// Propose the rows of a region the matrix does not have yet.
        #[arg(long, value_name = "REGION")]
        add_region: Option<String>,
        /// Ask the local stand-in instead of AWS.
        #[arg(long)]
        local: bool,
    },
    /// Keep a local AWS stand-in running across commands: `up`, `down` or `status`.
    Local {
        /// `up` (start and keep running), `down` (stop) or `status`.
        #[arg(value_name = "ACTION")]
        action: LocalAction,
    },
    /// Check what the commands need on this machine and say how to install what is missing.
    Doctor {
        /// Install the missing Debian packages (as root, or through `sudo`).
        #[arg(long)]
        install: bool,
        /// Also require what real builds need: `build/local.json`, the `aws` CLI, a git identity.
        #[arg(long)]
        real: bool,
        /// Only these checks, like `packer` or `sshd` (the report names them all).
        #[arg(value_name = "CHECK")]
        only: Vec<String>,
    },
    /// List every command.
    Help,
}

/// Whether the release tag is signed; without either flag git's `tag.gpgSign` decides.
#[derive(clap::Args)]
struct SignArgs {
    /// Sign the tag (with `user.signingKey`, `gpg.format` and `gpg.program` of git's configuration).
    #[arg(short = 's', long, conflicts_with = "no_sign")]
    sign: bool,
    /// Do not sign the tag, whatever `tag.gpgSign` says.
    #[arg(long)]
    no_sign: bool,
}

impl SignArgs {
    fn choice(&self) -> signing::Choice {
        signing::Choice::from_flags(self.sign, self.no_sign)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LocalAction {
    /// Start the stand-in and keep it running.
    Up,
    /// Stop the kept stand-in.
    Down,
    /// Tell whether it runs, and where.
    Status,
}

#[derive(clap::Args)]
struct TestArgs {
    /// Only these builders (names like `us-east-1-1404-hvm`, comma-separated or repeated).
    #[arg(long, num_args = 1..)]
    only: Vec<String>,
    /// Run against the local AWS stand-in: no account, no cost.
    #[arg(long)]
    local: bool,
    /// Print the end-of-run summary as one JSON document on stdout (the live view and
    /// everything else go to stderr).
    #[arg(long)]
    json: bool,
    /// Launch without asking AWS first (emergencies only: said loudly in the plan and the run record).
    #[arg(long)]
    skip_cloud_checks: bool,
    /// Options passed on to `packer build` (after `--`).
    #[arg(last = true, value_name = "PACKER_ARGS")]
    packer_args: Vec<String>,
}

#[derive(clap::Args)]
struct TestBuildArgs {
    #[command(flatten)]
    common: TestArgs,
    /// Bake this ComboAMI branch instead of the one in `ds0_utils.py`.
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
    /// Launch without asking, after the plan is shown (test builds on AWS cost money too).
    #[arg(long)]
    yes: bool,
}

impl TestBuildArgs {
    fn options(self) -> cmd::build::Options {
        cmd::build::Options {
            flags: cmd::build::Flags {
                branch: self.branch,
                yes: self.yes,
                ..self.common.flags()
            },
            release: None,
        }
    }
}

impl TestArgs {
    fn flags(self) -> cmd::build::Flags {
        cmd::build::Flags {
            only: self.only,
            local: self.local,
            packer_args: self.packer_args,
            json: self.json,
            skip_cloud_checks: self.skip_cloud_checks,
            ..Default::default()
        }
    }
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
    let name = command.name();
    output::set_json(command.json());
    let result = dispatch(&sh, command);
    // Errors may quote files and answers: mask every secret the tool knows of before printing.
    let masker = credentials::masker_for_messages(&sh.current_dir());
    match result {
        Ok(code) => {
            output::document(serde_json::json!({"command": name, "ok": true}));
            match output::stdout_failure() {
                None => code,
                Some(failure) => {
                    eprintln!("error: cannot write the output: {}", masker.mask(&failure));
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            let code = cmd::exit_code(&e);
            eprint!("{}", masker.mask(&cmd::render_error(&e)));
            output::document(cmd::error_document(name, &e, code, &masker));
            ExitCode::from(code)
        }
    }
}

impl Command {
    /// The command's name as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Config { .. } => "config",
            Command::SetVersion { .. } => "set-version",
            Command::AmiIds { .. } => "ami-ids",
            Command::TestEbs(_) => "test-ebs",
            Command::TestInstance(_) => "test-instance",
            Command::Publish { .. } => "publish",
            Command::Release { .. } => "release",
            Command::Tag { .. } => "tag",
            Command::Cleanup { .. } => "cleanup",
            Command::Retire { .. } => "retire",
            Command::Audit { .. } => "audit",
            Command::BaseImages { .. } => "base-images",
            Command::Local { .. } => "local",
            Command::Doctor { .. } => "doctor",
            Command::Help => "help",
        }
    }

    /// `--json`: the command's report is one JSON document on stdout.
    fn json(&self) -> bool {
        match self {
            Command::TestEbs(args) | Command::TestInstance(args) => args.common.json,
            Command::Publish { common, .. } => common.json,
            Command::Release { json, .. }
            | Command::Cleanup { json, .. }
            | Command::Tag { json, .. } => *json,
            _ => false,
        }
    }
}

fn dispatch(sh: &xshell::Shell, command: Command) -> anyhow::Result<ExitCode> {
    // Path arguments are relative to the caller's folder; below, the shell works at the root.
    let caller = sh.current_dir();
    let root = project::enter_root(sh)?;
    let path = |arg: &str| project::from_caller(&caller, &root, arg);
    if let Some((name, busy)) = lock_for(&command) {
        interrupt::install();
        lock::acquire(&root, name, busy)?;
    }
    let result = run(sh, &root, command, path);
    // Whatever happened, it is recorded: the next command has nothing of this one to report.
    lock::release(&root);
    result
}

/// The repository lock a command takes: everything that builds, merges, releases, tags,
/// deletes or keeps a stand-in. Reading commands (`config`, dry runs, listings, `local status`)
/// take none.
fn lock_for(command: &Command) -> Option<(&'static str, lock::Busy)> {
    use lock::Busy::{Refuse, Wait};
    match command {
        Command::TestEbs(_) => Some(("test-ebs", Refuse)),
        Command::TestInstance(_) => Some(("test-instance", Refuse)),
        Command::Publish { .. } => Some(("publish", Refuse)),
        Command::Release { dry_run: false, .. } => Some(("release", Refuse)),
        Command::Tag { dry_run: false, .. } => Some(("tag", Refuse)),
        Command::Cleanup { execute: true, .. } => Some(("cleanup", Refuse)),
        // It commits `build/retired.json`.
        Command::Retire { execute: true, .. } => Some(("retire", Refuse)),
        Command::Local {
            action: LocalAction::Up | LocalAction::Down,
        } => Some(("local", Refuse)),
        Command::SetVersion { .. } => Some(("set-version", Refuse)),
        // It writes `build/images.json`.
        Command::BaseImages { update: true, .. } => Some(("base-images", Refuse)),
        // A merge is short: wait for the other merge rather than refuse and lose the AMIs.
        Command::AmiIds { .. } => Some(("ami-ids", Wait)),
        Command::Release { .. }
        | Command::Tag { .. }
        | Command::Cleanup { .. }
        | Command::Retire { .. }
        | Command::Audit { .. }
        | Command::BaseImages { .. }
        | Command::Local { .. }
        | Command::Config { .. }
        | Command::Doctor { .. }
        | Command::Help => None,
    }
}

fn run(
    sh: &xshell::Shell,
    root: &std::path::Path,
    command: Command,
    path: impl Fn(&str) -> String,
) -> anyhow::Result<ExitCode> {
    let root = root.to_path_buf();
    match command {
        Command::TestEbs(args) => {
            cmd::build::run(sh, &root, Kind::TestEbs, &args.options())?;
        }
        Command::TestInstance(args) => {
            cmd::build::run(sh, &root, Kind::TestInstance, &args.options())?;
        }
        Command::Publish {
            common,
            no_parallel,
            debug,
            yes,
            private,
            resume,
        } => {
            let options = cmd::build::Options {
                flags: cmd::build::Flags {
                    no_parallel,
                    debug,
                    yes,
                    private,
                    resume: resume.map(|r| Some(r).filter(|r| !r.is_empty())),
                    ..common.flags()
                },
                release: None,
            };
            cmd::build::run(sh, &root, Kind::Official, &options)?;
        }
        Command::Release {
            version,
            branch,
            allow_branch,
            dry_run,
            push,
            local,
            yes,
            sign,
            no_parallel,
            debug,
            packer_args,
            json: _,
            skip_cloud_checks,
        } => cmd::release::run(
            sh,
            &root,
            &cmd::release::Options {
                version,
                branch,
                allow_branch,
                dry_run,
                push,
                local,
                yes,
                sign: sign.choice(),
                no_parallel,
                debug,
                packer_args,
                skip_cloud_checks,
            },
        )?,
        Command::Tag {
            version,
            push,
            dry_run,
            yes,
            sign,
            json: _,
        } => cmd::tag::run(
            sh,
            &root,
            &cmd::tag::Options {
                version,
                push,
                dry_run,
                yes,
                sign: sign.choice(),
            },
        )?,
        Command::Cleanup {
            run,
            version,
            kind,
            region,
            keep,
            older_than,
            even_if_used,
            execute,
            local,
            json: _,
        } => cmd::cleanup::run(
            sh,
            &root,
            &cmd::cleanup::Options {
                filter: core::cleanup::Filter { run, version, kind },
                regions: region,
                execute,
                local,
                keep,
                older_than,
                even_if_used,
            },
        )?,
        Command::Retire {
            version,
            deprecate,
            at,
            make_private,
            deregister,
            grace,
            even_if_used,
            execute,
            local,
        } => cmd::retire::run(
            sh,
            &root,
            &cmd::retire::Options {
                version,
                deprecate,
                at,
                make_private,
                deregister,
                grace,
                even_if_used,
                execute,
                local,
            },
        )?,
        Command::Audit { region, local } => cmd::audit::run(
            sh,
            &root,
            &cmd::audit::Options {
                regions: region,
                local,
            },
        )?,
        Command::BaseImages {
            region,
            update,
            add_region,
            local,
        } => cmd::base_images::run(
            sh,
            &root,
            &cmd::base_images::Options {
                regions: region,
                update,
                add_region,
                local,
            },
        )?,
        Command::Local { action } => match action {
            LocalAction::Up => cmd::local::up(sh, &root)?,
            LocalAction::Down => cmd::local::down(&root)?,
            LocalAction::Status => cmd::local::status(&root)?,
        },
        Command::Config { kind, only, out } => {
            let out = out.as_deref().map(path);
            cmd::config::run(sh, kind, &only, out.as_deref())?
        }
        Command::SetVersion { version, branch } => {
            cmd::set_version::run(sh, &version, branch.as_deref())?
        }
        Command::AmiIds { files, registry } => {
            let files: Vec<String> = files.iter().map(|f| path(f)).collect();
            let registry = registry
                .as_deref()
                .map_or(core::registry::REGISTRY_PATH.into(), path);
            cmd::ami_ids::run(sh, &files, &registry)?
        }
        Command::Doctor {
            install,
            real,
            only,
        } => {
            let options = cmd::doctor::Options {
                install,
                real,
                only,
            };
            return cmd::doctor::run(sh, &root, &options);
        }
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{ArgAction, CommandFactory};

    /// Every argument and flag of every command says what it is for in `--help`.
    #[test]
    fn every_argument_has_help() {
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("cargo xtask"), Cli::command())];
        while let Some((path, command)) = stack.pop() {
            if command.get_about().is_none() && path != "cargo xtask" {
                missing.push(format!("`{path}` (the command itself)"));
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
}
