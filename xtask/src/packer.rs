//! Running Packer: finding it, translating options between its versions, and relaying a build's
//! output through the masker into the run folder, which the live view follows.

use crate::pure::mask::Masker;
use crate::pure::packer_log::{self, Tracker};
use crate::view::View;
use crate::{interrupt, lock};
use anyhow::{bail, Context, Result};
use semver::Version;
use std::io::{BufRead, Read, Write};
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
        // In its own process group, like every short helper: a Ctrl-C meant for this command
        // must not make it print nothing and look like a broken Packer.
        let out = crate::interrupt::output_detached(cmd!(sh, "packer version")).map_err(|_| {
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

    /// Runs `packer build -machine-readable`. Packer writes through two relays (see
    /// [`relay_main`]) into the run folder, and the view follows the output log, so Packer
    /// outlives this command if it is killed and still cleans up what it launched. Returns when
    /// Packer exits; a Ctrl-C is passed on to Packer once, and Packer cleans up its instances
    /// before it exits.
    pub fn build(
        &self,
        sh: &Shell,
        request: &BuildRequest,
        view: &mut View,
    ) -> Result<BuildResult> {
        let crash_log = sh.current_dir().join(CRASH_LOG);
        let earlier_crash = modified(&crash_log);
        let mut running = spawn(sh, request)?;
        let mut tracker = Tracker::default();
        for name in view.builders() {
            tracker.expect(name);
        }
        let followed = follow(&request.output_log, &mut tracker, view, || {
            running.output_closed()
        });
        let status = running
            .packer
            .wait()
            .context("cannot wait for `packer build`")?;
        interrupt::set_packer_group(0);
        lock::remove_child(running.packer.id());
        for relay in &mut running.relays {
            let _ = relay.wait();
        }
        followed?;
        view.finish(&tracker);
        if modified(&crash_log) != earlier_crash {
            keep_crash_log(&crash_log, &request.packer_log);
        }
        Ok(BuildResult {
            tracker,
            interrupted: interrupt::requested(),
            packer_succeeded: status.success(),
        })
    }
}

/// Packer writes `crash.log` into its working folder when it or a plugin panics (Packer 1.6.6's
/// shell provisioner does when a cancel reaches it before it started). Left there it is an
/// untracked file in the repository, which a release refuses as a dirty tree.
const CRASH_LOG: &str = "crash.log";

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Moves a crash log Packer wrote during this attempt beside the attempt's own logs
/// (`packer-N.log` gets `packer-N-crash.log`), and says so.
fn keep_crash_log(crash_log: &Path, packer_log: &Path) {
    let kept = packer_log.with_extension("").display().to_string() + "-crash.log";
    match std::fs::rename(crash_log, &kept) {
        Ok(()) => eprintln!(
            "note: Packer crashed during this attempt (a fault of Packer's own; the builders' results stand as recorded): its crash log is kept as `{kept}`"
        ),
        Err(e) => eprintln!(
            "warning: Packer crashed and left `{}`, which could not be moved to `{kept}` ({e}): remove it before a release",
            crash_log.display()
        ),
    }
}

/// The hidden first argument that makes `xtask` a relay.
pub const RELAY: &str = "__packer-relay";
/// The relay's masker, as a JSON list: in its environment, never on a command line.
const RELAY_MASK: &str = "XTASK_RELAY_MASK";

/// `xtask __packer-relay FILE`: copies its input (Packer's stdout or stderr) line by line,
/// masked, to the end of FILE. It lives in Packer's process group, so it outlives a killed
/// command as Packer does, and it ignores Ctrl-C: it ends when Packer closes its output. It
/// always reads on, even when FILE cannot be written, so Packer never dies of a broken pipe.
pub fn relay_main() -> std::process::ExitCode {
    // SAFETY: setting signal dispositions before any thread starts.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let Some(path) = std::env::args_os().nth(2) else {
        return std::process::ExitCode::from(2);
    };
    let needles: Vec<String> = std::env::var(RELAY_MASK)
        .ok()
        .and_then(|text| crate::pure::json::parse(&text).ok())
        .unwrap_or_default();
    let masker = Masker::new(needles.iter().map(String::as_str));
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path);
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut file = file.ok();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let written = file
            .as_mut()
            .map(|f| writeln!(f, "{}", masker.mask(text)).is_ok());
        if written == Some(false) {
            file = None;
        }
    }
    std::process::ExitCode::SUCCESS
}

/// Packer and the relays that write its output.
struct Running {
    packer: std::process::Child,
    /// The relay of stdout (the machine-readable output), then the one of stderr.
    relays: Vec<std::process::Child>,
}

impl Running {
    /// Whether Packer's machine-readable output is complete: its relay has ended.
    fn output_closed(&mut self) -> Result<bool> {
        Ok(self.relays[0]
            .try_wait()
            .context("cannot wait for Packer's output relay")?
            .is_some())
    }
}

/// Starts `packer build -machine-readable` in its own process group, its stdout and stderr
/// through a relay each into the run folder's logs.
fn spawn(sh: &Shell, request: &BuildRequest) -> Result<Running> {
    let BuildRequest {
        template,
        var_file,
        args,
        debug,
        ..
    } = request;
    for log in [&request.output_log, &request.packer_log] {
        // Created empty now, so the view can follow the output log from its first line.
        std::fs::File::create(log).with_context(|| format!("cannot create `{}`", log.display()))?;
    }
    let mut command = std::process::Command::from(
        cmd!(
            sh,
            "packer build -machine-readable -color=false -var-file={var_file} {args...} {template}"
        )
        .env("PACKER_LOG", "1")
        .env("CHECKPOINT_DISABLE", "1"),
    );
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut packer = if *debug {
        // `-debug` waits for Enter at every step: Packer needs the terminal.
        command
            .stdin(Stdio::inherit())
            .spawn()
            .context("cannot start `packer build`")?
    } else {
        // Its own process group: a terminal Ctrl-C reaches only us, and we pass it on once.
        command.stdin(Stdio::null()).process_group(0);
        lock::spawn_recorded(&mut command, "packer", "packer")
            .context("cannot start `packer build`")?
    };
    if !*debug {
        interrupt::set_packer_group(packer.id() as i32);
    }
    let group = if *debug { 0 } else { packer.id() as i32 };
    let stdout = Stdio::from(packer.stdout.take().expect("stdout is piped"));
    let stderr = Stdio::from(packer.stderr.take().expect("stderr is piped"));
    let mut relays = Vec::new();
    for (input, log) in [(stdout, &request.output_log), (stderr, &request.packer_log)] {
        match start_relay(input, log, request.masker, group) {
            Ok(relay) => relays.push(relay),
            Err(e) => {
                // Without its relay Packer would die at its next write: stop it while it can
                // still clean up (it has launched nothing yet).
                interrupt::signal_group(group.max(packer.id() as i32), libc::SIGINT);
                let _ = packer.wait();
                lock::remove_child(packer.id());
                interrupt::set_packer_group(0);
                return Err(e);
            }
        }
    }
    Ok(Running { packer, relays })
}

fn start_relay(
    input: Stdio,
    log: &Path,
    masker: &Masker,
    group: i32,
) -> Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find the running `xtask` program")?;
    let needles = serde_json::to_string(masker.needles())?;
    std::process::Command::new(exe)
        .arg(RELAY)
        .arg(log)
        .env(RELAY_MASK, needles)
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(group)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start the relay of Packer's output to `{}`",
                log.display()
            )
        })
}

/// Follows the output log as the relay writes it: every line through the tracker to the view,
/// until `closed` says the output is complete and the last lines are read. The view's clock
/// moves on while Packer is quiet (waiting minutes for an AMI, say).
fn follow(
    path: &Path,
    tracker: &mut Tracker,
    view: &mut View,
    mut closed: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("cannot read Packer's output `{}`", path.display()))?;
    let mut pending = Vec::new();
    let mut last_tick = std::time::Instant::now();
    loop {
        // Asked before reading: once closed, this read gets everything.
        let done = closed()?;
        let before = pending.len();
        file.read_to_end(&mut pending)
            .with_context(|| format!("cannot read Packer's output `{}`", path.display()))?;
        let read = pending.len() > before;
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            show(&String::from_utf8_lossy(&line[..end]), tracker, view);
        }
        if done {
            if !pending.is_empty() {
                show(&String::from_utf8_lossy(&pending), tracker, view);
            }
            return Ok(());
        }
        view.show_held(tracker);
        if !read {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if last_tick.elapsed() >= std::time::Duration::from_secs(1) {
            view.tick(tracker);
            last_tick = std::time::Instant::now();
        }
    }
}

/// One line of Packer's (masked) output, to the tracker and the view.
fn show(line: &str, tracker: &mut Tracker, view: &mut View) {
    let Some(record) = packer_log::parse_line(line) else {
        view.note(line);
        return;
    };
    match tracker.feed(&record) {
        Ok(events) => view.update(tracker, &events, &record),
        Err(e) => view.note(&format!("warning: {e}")),
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

    /// Packer's `crash.log` (from a panic during a cancel) leaves the working folder for the
    /// run folder, named after the attempt's log, so the tree stays clean for a release.
    #[test]
    fn a_crash_log_is_moved_beside_the_attempts_logs() {
        let dir = std::env::temp_dir().join(format!("xtask-crash-log-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("runs")).unwrap();
        let crash_log = dir.join(CRASH_LOG);
        std::fs::write(&crash_log, "panic: runtime error\n").unwrap();
        keep_crash_log(&crash_log, &dir.join("runs/packer-2.log"));
        assert!(
            !crash_log.exists(),
            "crash.log is left in the working folder"
        );
        let kept = std::fs::read_to_string(dir.join("runs/packer-2-crash.log")).unwrap();
        assert_eq!(kept, "panic: runtime error\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
