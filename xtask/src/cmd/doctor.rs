//! `cargo xtask doctor`: checks what the commands need on this machine, says how to get what is
//! missing, and with `--install` installs the missing Debian packages.

use crate::standin::{self, is_root};
use crate::{credentials, packer::Packer};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use xshell::{cmd, Shell};

/// Check what the commands need on this machine and say how to install what is missing.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask doctor\n  cargo xtask doctor --install\n  cargo xtask doctor packer sshd"
)]
pub struct Doctor {
    /// Install the missing Debian packages (as root, or through `sudo`).
    #[arg(long)]
    install: bool,
    /// Also require what real builds need: `build/local.json`, the `aws` CLI, a git identity.
    #[arg(long)]
    real: bool,
    /// Only these checks, like `packer` or `sshd` (the report names them all).
    #[arg(value_name = "CHECK")]
    only: Vec<String>,
}

impl crate::cmd::Cmd for Doctor {
    const NAME: &'static str = "doctor";
    fn lock(&self) -> Option<crate::lock::Busy> {
        None
    }
    fn run(self, cx: &crate::cmd::Context) -> Result<ExitCode> {
        examine(cx.sh, cx.root(), &self)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    /// `--local` builds and rehearsals.
    Local,
    /// `cargo test --workspace` (beyond what `Local` needs).
    Tests,
    /// Builds and releases against AWS.
    Real,
}

impl Group {
    fn title(self) -> &'static str {
        match self {
            Group::Local => "local builds and rehearsals (`--local`) and the tests",
            Group::Tests => "the test suite (`cargo test --workspace`)",
            Group::Real => "real builds and releases (required with `--real`)",
        }
    }
}

/// Every check: its name (for `doctor NAME...`), group and the Debian package that provides it.
const CHECKS: [(&str, Group, Option<&str>); 13] = [
    ("packer", Group::Local, Some("packer")),
    ("sshd", Group::Local, Some("openssh-server")),
    ("ssh-keygen", Group::Local, Some("openssh-client")),
    ("python3-venv", Group::Local, Some("python3-venv")),
    ("curl", Group::Local, Some("curl")),
    ("git", Group::Local, Some("git")),
    // The provisioning unpacks the EC2 tool fixtures on the stand-in's instance.
    ("unzip", Group::Local, Some("unzip")),
    ("shellcheck", Group::Tests, Some("shellcheck")),
    ("tmux", Group::Tests, Some("tmux")),
    // `--json` is tested as the README uses it: piped through jq.
    ("jq", Group::Tests, Some("jq")),
    ("aws", Group::Real, Some("awscli")),
    ("git-identity", Group::Real, None),
    ("local.json", Group::Real, None),
];

/// What one check found: `Ok` with what is there, or what is wrong and how to fix it.
struct Finding {
    name: &'static str,
    group: Group,
    package: Option<&'static str>,
    result: Result<String, String>,
}

fn examine(sh: &Shell, root: &Path, options: &Doctor) -> Result<ExitCode> {
    for name in &options.only {
        if !CHECKS.iter().any(|(n, ..)| n == name) {
            let names: Vec<String> = CHECKS.iter().map(|(n, ..)| format!("`{n}`")).collect();
            return Err(crate::error::refused(
                format!("unknown check `{name}`"),
                format!(
                    "name one of {}, or none to run them all (`cargo xtask doctor`)",
                    names.join(", ")
                ),
            ));
        }
    }
    let mut findings = check_all(sh, root, options);
    if options.install {
        let packages: Vec<&str> = missing(&findings, options)
            .filter_map(|f| f.package)
            .collect();
        if packages.is_empty() {
            println!("nothing to install");
        } else {
            install(sh, &packages)?;
            findings = check_all(sh, root, options);
        }
    }
    report(&findings, options);
    let missing: Vec<&Finding> = missing(&findings, options).collect();
    if missing.is_empty() {
        println!(
            "\nready: {}",
            if !options.only.is_empty() {
                "every check named passes"
            } else if options.real {
                "local and real builds, releases and the tests have what they need"
            } else {
                "local builds, rehearsals and the tests have what they need \
                 (add `--real` to require what real builds need)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let names: Vec<&str> = missing.iter().map(|f| f.name).collect();
    println!("\nmissing: {}", names.join(", "));
    let packages: Vec<&str> = missing.iter().filter_map(|f| f.package).collect();
    if !packages.is_empty() && !options.install {
        println!(
            "install the Debian packages with `{}apt-get install {}`, or run `cargo xtask doctor{} --install`",
            sudo_prefix(),
            packages.join(" "),
            if options.real { " --real" } else { "" }
        );
    } else if !packages.is_empty() {
        println!(
            "installed {}, yet the checks above still fail: is the program on PATH?",
            packages.join(" ")
        );
    }
    Ok(ExitCode::from(1))
}

fn check_all(sh: &Shell, root: &Path, options: &Doctor) -> Vec<Finding> {
    CHECKS
        .iter()
        .filter(|(name, ..)| options.only.is_empty() || options.only.iter().any(|n| n == name))
        .map(|&(name, group, package)| Finding {
            name,
            group,
            // Installing the package fixes an absent Packer, not a present one's missing plugin.
            package: package.filter(|_| name != "packer" || on_path("packer").is_none()),
            result: check(sh, root, name, package),
        })
        .collect()
}

/// The findings that make the doctor fail: every failed check that was asked for.
fn missing<'a>(findings: &'a [Finding], options: &'a Doctor) -> impl Iterator<Item = &'a Finding> {
    findings.iter().filter(move |f| {
        f.result.is_err() && (!options.only.is_empty() || options.real || f.group != Group::Real)
    })
}

fn report(findings: &[Finding], options: &Doctor) {
    let mut group = None;
    for finding in findings {
        if group != Some(finding.group) {
            group = Some(finding.group);
            println!("{}:", finding.group.title());
        }
        let (status, text) = match &finding.result {
            Ok(found) => ("ok", found.clone()),
            Err(fix)
                if finding.group == Group::Real && !options.real && options.only.is_empty() =>
            {
                ("not yet", fix.clone())
            }
            Err(fix) => ("MISSING", fix.clone()),
        };
        println!("  {status:<8} {:<13} {text}", finding.name);
    }
}

fn check(sh: &Shell, root: &Path, name: &str, package: Option<&str>) -> Result<String, String> {
    let install = || {
        format!(
            "install it: `{}apt-get install {}`",
            sudo_prefix(),
            package.unwrap_or(name)
        )
    };
    let program = |program: &str| {
        on_path(program)
            .map(|path| format!("`{}`", path.display()))
            .ok_or_else(|| format!("`{program}` not found on PATH; {}", install()))
    };
    match name {
        "packer" => {
            let path = program("packer")?;
            match Packer::detect(sh) {
                Ok(packer) if packer.version < semver::Version::new(1, 6, 6) => Err(format!(
                    "Packer {} ({path}) is older than 1.6.6, the oldest this tool is tested \
                     with; {}",
                    packer.version,
                    install()
                )),
                Ok(packer) => Ok(format!("Packer {} ({path})", packer.version)),
                Err(e) => Err(format!("{e:#}")),
            }
        }
        "sshd" => standin::find_sshd()
            .map(|path| format!("`{}`", path.display()))
            .map_err(|_| {
                format!(
                    "`sshd` not found (the stand-in's instance is an unprivileged sshd); {}",
                    install()
                )
            }),
        "python3-venv" => {
            program("python3")
                .map_err(|_| format!("`python3` not found on PATH; {}", install()))?;
            // Debian's python3 leaves out `ensurepip`, without which `python3 -m venv` fails.
            cmd!(
                sh,
                "python3 -c 'import venv, ensurepip, sys; print(sys.version.split()[0])'"
            )
            .quiet()
            .ignore_stderr()
            .read()
            .map(|version| format!("Python {version} with venv"))
            .map_err(|_| {
                format!(
                    "Python's `venv` (with `ensurepip`) is missing: the stand-in installs \
                         moto into a virtualenv; {}",
                    install()
                )
            })
        }
        "git-identity" => git_identity(root),
        "local.json" => match credentials::load(sh, root, true) {
            Ok(credentials) if credentials.warnings.is_empty() => {
                Ok(format!("`{}` is complete", credentials::LOCAL_JSON))
            }
            Ok(credentials) => Err(credentials.warnings.join("; ")),
            Err(e) => Err(format!("{e:#}").replace('\n', "; ")),
        },
        other => program(other),
    }
}

/// The identity release commits and tags are made with, as git (and git2) read it here.
fn git_identity(root: &Path) -> Result<String, String> {
    let config = git2::Repository::discover(root)
        .and_then(|repo| repo.config())
        .or_else(|_| git2::Config::open_default())
        .map_err(|e| format!("cannot read git's configuration: {}", e.message()))?;
    let value = |key: &str| config.get_string(key).ok().filter(|v| !v.trim().is_empty());
    match (value("user.name"), value("user.email")) {
        (Some(name), Some(email)) => Ok(format!("{name} <{email}>")),
        _ => Err("no git identity for release commits and tags: run \
                  `git config --global user.name \"Your Name\"` and \
                  `git config --global user.email you@example.com`"
            .to_string()),
    }
}

/// Installs Debian packages with apt-get, as root or through sudo.
fn install(sh: &Shell, packages: &[&str]) -> Result<()> {
    if on_path("apt-get").is_none() {
        bail!(
            "`--install` installs Debian packages with `apt-get`, which this machine lacks: \
             install {} with your system's package manager",
            packages.join(", ")
        );
    }
    // `apt-get ARGS` as root, `sudo apt-get ARGS` otherwise.
    let (program, apt): (&str, &[&str]) = if is_root() {
        ("apt-get", &[])
    } else if on_path("sudo").is_some() {
        ("sudo", &["apt-get"])
    } else {
        bail!(
            "installing packages needs root, and `sudo` is not installed: run \
             `apt-get install {}` as root",
            packages.join(" ")
        );
    };
    println!("installing {}", packages.join(", "));
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "{program} {apt...} update -qq")
        .run()
        .context("cannot update the package lists (`apt-get update`)")?;
    cmd!(
        sh,
        "{program} {apt...} install -y -qq --no-install-recommends ca-certificates {packages...}"
    )
        .run()
        .with_context(|| {
            format!(
                "cannot install {} with apt-get; `packer` is not in every release's archive \
                 (Debian 12 and Ubuntu 22.04 have it): elsewhere install it from \
                 https://developer.hashicorp.com/packer/install, then run `cargo xtask doctor` again",
                packages.join(", ")
            )
        })?;
    Ok(())
}

fn sudo_prefix() -> &'static str {
    if is_root() {
        ""
    } else {
        "sudo "
    }
}

/// Where `program` is on PATH, as a shell would find it.
fn on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
