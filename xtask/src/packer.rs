//! Running Packer: finding it, translating options between its versions, and relaying a build's
//! output through the masker into the run folder and the live view.

use crate::core::mask::Masker;
use crate::core::packer_log::{self, Tracker};
use crate::view::View;
use crate::{interrupt, lock};
use anyhow::{bail, Context, Result};
use semver::Version;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use xshell::{cmd, Shell};

pub struct Packer {
    pub version: Version,
}

/// Packer 1.5 replaced `-parallel=false` with `-parallel-builds=1`.
const PARALLEL_BUILDS_SINCE: Version = Version::new(1, 5, 0);
/// Packer 1.10 no longer bundles the Amazon builders.
const PLUGINS_SINCE: Version = Version::new(1, 10, 0);

impl Packer {
    pub fn detect(sh: &Shell) -> Result<Packer> {
        let out = cmd!(sh, "packer version")
            .quiet()
            .ignore_status()
            .output()
            .map_err(|_| {
                anyhow::anyhow!(
                    "`packer` not found on PATH: install it (Debian: `apt-get install packer`; \
                 elsewhere: https://developer.hashicorp.com/packer/install)"
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&text).with_context(|| {
            format!(
                "cannot read Packer's version from `packer version` (it printed `{}`)",
                text.trim()
            )
        })?;
        let packer = Packer { version };
        if packer.version >= PLUGINS_SINCE {
            let plugins = cmd!(sh, "packer plugins installed")
                .quiet()
                .ignore_status()
                .read()
                .unwrap_or_default();
            if !plugins.contains("amazon") {
                bail!(
                    "Packer {} does not bundle the Amazon builders: run `packer plugins install github.com/hashicorp/amazon`",
                    packer.version
                );
            }
        }
        Ok(packer)
    }

    /// The option that builds one builder at a time on this version.
    pub fn no_parallel_flag(&self) -> &'static str {
        if self.version >= PARALLEL_BUILDS_SINCE {
            "-parallel-builds=1"
        } else {
            "-parallel=false"
        }
    }

    /// Translates pass-through options written for another Packer version.
    pub fn translate(&self, args: &[String]) -> Vec<String> {
        args.iter()
            .map(|a| match a.as_str() {
                "-parallel=false" | "--parallel=false" | "-parallel-builds=1" => {
                    self.no_parallel_flag().to_string()
                }
                _ => a.clone(),
            })
            .collect()
    }

    pub fn validate(
        &self,
        sh: &Shell,
        template: &Path,
        var_file: &Path,
        masker: &Masker,
    ) -> Result<()> {
        // Its own process group: a Ctrl-C must not make it fail and look like a rejection.
        let out = std::process::Command::from(cmd!(
            sh,
            "packer validate -var-file={var_file} {template}"
        ))
        .stdin(Stdio::null())
        .process_group(0)
        .output()
        .context("cannot run `packer validate`")?;
        interrupt::check("launching Packer")?;
        if !out.status.success() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            bail!(
                "`packer validate` rejected `{}`:\n{}",
                template.display(),
                masker.mask(text.trim())
            );
        }
        Ok(())
    }

    /// Runs `packer build -machine-readable`, relaying every line (masked) to the run folder
    /// and the view. Returns when Packer exits; a Ctrl-C is passed on to Packer once, and Packer
    /// cleans up its instances before it exits.
    pub fn build(
        &self,
        sh: &Shell,
        request: &BuildRequest,
        view: &mut View,
    ) -> Result<BuildResult> {
        let mut child = spawn(sh, request)?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let debug_log = create(&request.packer_log)?;
        let stderr_masker = request.masker.clone();
        let stderr_thread =
            std::thread::spawn(move || copy_masked(stderr, debug_log, &stderr_masker));

        let mut tracker = Tracker::default();
        for name in view.builders() {
            tracker.expect(name);
        }
        let output = create(&request.output_log)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let relayed = relay(stdout, output, request.masker, &mut tracker, view);
        let status = child.wait().context("cannot wait for `packer build`")?;
        interrupt::set_packer_group(0);
        lock::remove_child(child.id());
        let _ = stderr_thread.join();
        relayed?;
        view.finish(&tracker);
        Ok(BuildResult {
            tracker,
            interrupted: interrupt::requested(),
            packer_succeeded: status.success(),
        })
    }
}

/// Starts `packer build -machine-readable`, its output piped to us.
fn spawn(sh: &Shell, request: &BuildRequest) -> Result<std::process::Child> {
    let BuildRequest {
        template,
        var_file,
        args,
        debug,
        ..
    } = request;
    let mut command = std::process::Command::from(
        cmd!(
            sh,
            "packer build -machine-readable -color=false -var-file={var_file} {args...} {template}"
        )
        .env("PACKER_LOG", "1")
        .env("CHECKPOINT_DISABLE", "1"),
    );
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if *debug {
        // `-debug` waits for Enter at every step: Packer needs the terminal.
        command.stdin(Stdio::inherit());
    } else {
        // Its own process group: a terminal Ctrl-C reaches only us, and we pass it on once.
        command.stdin(Stdio::null()).process_group(0);
    }
    let child = command.spawn().context("cannot start `packer build`")?;
    if !*debug {
        lock::add_child("packer", "packer", child.id(), true);
        interrupt::set_packer_group(child.id() as i32);
    }
    Ok(child)
}

/// Every line of Packer's output, masked, to the output log (line by line) and through the
/// tracker to the view, until Packer closes it. A write error stops the relay at once; a read
/// error once the pipe ends.
fn relay(
    stdout: std::process::ChildStdout,
    mut output: impl Write,
    masker: &Masker,
    tracker: &mut Tracker,
    view: &mut View,
) -> Result<()> {
    let stdout = BufReader::new(stdout);
    // Lines come through a channel, so the view's clock moves on while Packer is quiet
    // (waiting minutes for an AMI, say).
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let failed = line.is_err();
            if send.send(line).is_err() || failed {
                break;
            }
        }
    });
    loop {
        let line = match lines.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(e).context("cannot read Packer's output"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                view.tick(tracker);
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let line = masker.mask(&line);
        // Flushed line by line: a killed command's log still holds everything up to the kill.
        writeln!(output, "{line}")
            .and_then(|()| output.flush())
            .context("cannot write the run's output log")?;
        let Some(record) = packer_log::parse_line(&line) else {
            view.note(&line);
            continue;
        };
        match tracker.feed(&record) {
            Ok(events) => view.update(tracker, &events, &record),
            Err(e) => view.note(&format!("warning: {e}")),
        }
    }
}

pub struct BuildRequest<'a> {
    pub template: &'a Path,
    pub var_file: &'a Path,
    pub args: Vec<String>,
    pub output_log: PathBuf,
    pub packer_log: PathBuf,
    pub masker: &'a Masker,
    pub debug: bool,
}

pub struct BuildResult {
    pub tracker: Tracker,
    pub interrupted: bool,
    pub packer_succeeded: bool,
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

fn copy_masked(from: impl std::io::Read, mut to: impl Write, masker: &Masker) {
    for line in BufReader::new(from).lines() {
        let Ok(line) = line else { break };
        if writeln!(to, "{}", masker.mask(&line)).is_err() {
            break;
        }
    }
    let _ = to.flush();
}

/// `Packer v1.6.6` (and newer forms with more lines) to a version.
fn parse_version(text: &str) -> Option<Version> {
    let word = text
        .split_whitespace()
        .find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))?;
    let number = word[1..].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    Version::parse(number).ok().or_else(|| {
        let base: String = number
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        Version::parse(&base).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_and_translates_parallel() {
        assert_eq!(
            parse_version("Packer v1.6.6\n").unwrap(),
            Version::new(1, 6, 6)
        );
        assert_eq!(
            parse_version("Packer v1.11.2\n\nYour version of Packer is out of date!").unwrap(),
            Version::new(1, 11, 2)
        );
        assert_eq!(parse_version("Packer v1.4.5-dev").unwrap().minor, 4);
        let new = Packer {
            version: Version::new(1, 6, 6),
        };
        let old = Packer {
            version: Version::new(1, 4, 5),
        };
        assert_eq!(
            new.translate(&["-parallel=false".into()]),
            ["-parallel-builds=1"]
        );
        assert_eq!(
            old.translate(&["-parallel-builds=1".into()]),
            ["-parallel=false"]
        );
        assert_eq!(new.translate(&["-only=x".into()]), ["-only=x"]);
    }
}
