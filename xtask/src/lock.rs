//! One lock per repository (`target/xtask.lock`) for commands that build, merge, release or keep
//! a stand-in, and the processes such a command leaves behind if it is killed.
//!
//! The lock is an `flock(2)` on the file, so the kernel releases it when its holder dies, even by
//! kill -9. The file also records the holder (pid, start time, command, run) and the processes
//! it started (Packer's group, the stand-in's moto and sshd). A command that takes the lock and
//! finds such processes listed knows their owner died: it checks that each PID is still the
//! process that was recorded (its start time and command line), stops it, and says so.

use crate::error::FixContext;
use crate::interrupt;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the lock file says about its holder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// The holder's start time (clock ticks since boot, `/proc/PID/stat`): a reused PID differs.
    pub start: u64,
    /// `publish`, `release`, ... as the user typed it.
    pub command: String,
    /// Seconds since the epoch when it took the lock.
    pub since: u64,
    /// The run it works on, once known.
    #[serde(default)]
    pub run: Option<String>,
    /// The run builds against the local stand-in: the commands it suggests need `--local`.
    #[serde(default)]
    pub local: bool,
    /// Processes it started that must not outlive it.
    #[serde(default)]
    pub children: Vec<Child>,
}

/// A process (or process group) a command started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// `packer`, `moto` or `sshd`, for messages.
    pub what: String,
    /// What its command line contains (a PID reused by another program does not).
    pub marker: String,
    pub pid: u32,
    pub start: u64,
    /// The process leads its own group: stop the whole group.
    pub group: bool,
}

impl Child {
    /// The process it was, if it still runs: same start time, and its command line still
    /// holds the marker (a PID reused by another program is left alone).
    pub fn is_alive(&self) -> bool {
        process_start(self.pid) == Some(self.start) && has_marker(self.pid, &self.marker)
    }

    /// Whether it, or (for a group) any process of its group, still runs. A group outlives its
    /// leader: Packer's plugins keep running when Packer itself died with this command. A member
    /// counts only if it started after the leader and carries the marker.
    pub fn is_running(&self) -> bool {
        self.is_alive() || (self.group && !self.members().is_empty())
    }

    fn members(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                let Some((group, start)) = group_and_start(pid) else {
                    return false;
                };
                group == self.pid && start >= self.start && has_marker(pid, &self.marker)
            })
            .collect()
    }

    /// Stops it. Packer, while it lives, gets SIGINT first, so it deletes what it launched;
    /// everything else (and Packer's orphaned plugins, which ignore SIGINT) gets SIGTERM. SIGKILL
    /// follows when it does not stop within `patience`.
    pub fn stop(&self, patience: Duration) {
        if !self.is_running() {
            return;
        }
        let (first, patience) = if self.what == "packer" && self.is_alive() {
            (libc::SIGINT, patience)
        } else {
            (libc::SIGTERM, Duration::from_secs(5))
        };
        self.signal(first);
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.is_running() {
            self.signal(libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: i32) {
        if self.group && !self.members().is_empty() {
            interrupt::signal_group(self.pid as i32, signal);
        }
        if self.is_alive() {
            // SAFETY: kill(2) has no memory effects.
            unsafe {
                libc::kill(self.pid as i32, signal);
            }
        }
    }
}

/// The lock this process holds (at most one: the repository it works in).
struct Held {
    file: File,
    holder: Holder,
}

static HELD: Mutex<Option<Held>> = Mutex::new(None);

pub fn lock_path(root: &Path) -> PathBuf {
    root.join("target/xtask.lock")
}

/// What to do when another command holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Refuse at once (long commands: a build, a release).
    Refuse,
    /// Wait for it (short read-modify-writes, like `ami-ids`).
    Wait,
}

/// Marks an error as "refused before anything started" because another command holds the lock.
#[derive(Debug)]
pub struct Locked;

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the repository is locked by another command")
    }
}

impl std::error::Error for Locked {}

/// Takes the repository's lock for `command`, or refuses (or waits, with [`Busy::Wait`]). Stops
/// what a dead holder left running, and reports it.
pub fn acquire(root: &Path, command: &str, busy: Busy) -> Result<()> {
    let path = lock_path(root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let open = || {
        // Opened without truncating: the previous holder's record is read once the lock is ours.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file `{}`", path.display()))
    };
    let mut file = open()?;
    let mut waiting_said = false;
    loop {
        // SAFETY: flock(2) on a file descriptor this function owns.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if taken {
            // The holder before may have removed the file as it finished: a lock on a file no
            // longer at `path` locks nothing.
            if same_file(&file, &path) {
                break;
            }
            file = open()?;
            continue;
        }
        held_elsewhere(&path, busy, &mut waiting_said)?;
    }
    let previous = {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        crate::pure::json::parse::<Holder>(&text).ok()
    };
    let me = std::process::id();
    let holder = Holder {
        pid: me,
        start: process_start(me).unwrap_or(0),
        command: command.to_string(),
        since: now(),
        run: None,
        local: false,
        children: Vec::new(),
    };
    write_holder(&mut file, &holder)?;
    *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some(Held { file, holder });
    if let Some(previous) = previous {
        stop_orphans(&previous);
    }
    Ok(())
}

/// Another command holds the lock: refuse, or (with [`Busy::Wait`]) say so once and wait a
/// moment before the caller tries again.
fn held_elsewhere(path: &Path, busy: Busy, waiting_said: &mut bool) -> Result<()> {
    // The holder writes its record just after taking the lock: give it a moment.
    let mut other = read_holder(path);
    for _ in 0..20 {
        if other.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        other = read_holder(path);
    }
    let who = describe(other.as_ref());
    match busy {
        Busy::Refuse => {
            let since = other
                .as_ref()
                .map(|h| format!(" since {} UTC", clock(h.since)))
                .unwrap_or_default();
            Err(anyhow::Error::new(Locked)).fix(
                || format!("{who} is running in this repository{since}"),
                || "wait for it to finish (or stop it), then run this command again".to_string(),
            )
        }
        Busy::Wait => {
            if !*waiting_said {
                eprintln!("waiting for {who} to finish (it holds this repository's lock)...");
                *waiting_said = true;
            }
            interrupt::check("taking the repository's lock")?;
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        }
    }
}

/// Stops what a dead command left running, and says what it was.
fn stop_orphans(previous: &Holder) {
    let mut alive: Vec<&Child> = previous
        .children
        .iter()
        .filter(|c| c.is_running())
        .collect();
    // Packer first, while the stand-in it cleans up through still runs: stopped after it, a
    // Packer would retry its deletions against a server that is gone.
    alive.sort_by_key(|c| c.what != "packer");
    if alive.is_empty() && previous.run.is_none() {
        return;
    }
    if !alive.is_empty() {
        let names: Vec<String> = alive
            .iter()
            .map(|c| format!("{} (pid {})", c.what, c.pid))
            .collect();
        eprintln!(
            "found what `cargo xtask {}` (pid {}, started {} UTC) left running when it was killed: {}; stopping it...",
            previous.command,
            previous.pid,
            clock(previous.since),
            names.join(", ")
        );
        for child in &alive {
            let patience = if child.what == "packer" { 30 } else { 5 };
            child.stop(Duration::from_secs(patience));
        }
        let left: Vec<String> = alive
            .iter()
            .filter(|c| c.is_running())
            .map(|c| format!("{} (pid {})", c.what, c.pid))
            .collect();
        if left.is_empty() {
            eprintln!("stopped the orphans of the killed command");
        } else {
            eprintln!("warning: could not stop {}", left.join(", "));
        }
    }
    if let Some(run) = &previous.run {
        let local = if previous.local { " --local" } else { "" };
        eprintln!(
            "note: `cargo xtask {}` (pid {}) did not finish run `{run}`: resume it; anything its Packer launched and could not delete is listed by `cargo xtask cleanup --run {run}{local}`",
            previous.command, previous.pid
        );
    }
}

/// Ends this command's hold on the lock: the file is removed, unless processes it started are
/// still listed (then the next command finds and stops them).
pub fn release(root: &Path) {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(mut held) = held.take() {
        held.holder.run = None;
        if held.holder.children.is_empty() {
            // Removed while still locked, so no one can take a lock on the removed file.
            let _ = std::fs::remove_file(lock_path(root));
        } else {
            let _ = write_holder(&mut held.file, &held.holder);
        }
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Held while a child is started and recorded, and by an interrupt that stops the recorded
/// children: a child is never started and left unrecorded when Ctrl-C comes in between.
static SPAWNING: Mutex<()> = Mutex::new(());

/// Starts `command` and records it at once (see [`add_child`]).
pub fn spawn_recorded(
    command: &mut std::process::Command,
    what: &str,
    marker: &str,
) -> std::io::Result<std::process::Child> {
    let _spawning = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
    let child = command.spawn()?;
    add_child(what, marker, child.id(), true);
    Ok(child)
}

/// Stops every process this command started, for an exit that skips their owners' `Drop` (a
/// Ctrl-C before anything started). No process is started after it: the caller exits.
pub fn stop_children_for_exit() {
    let spawning = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
    // The command never holds `HELD` for long; a handler must not wait forever on it.
    let mut held = None;
    for _ in 0..100 {
        if let Ok(guard) = HELD.try_lock() {
            held = Some(guard);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(mut held) = held else { return };
    if let Some(held) = held.as_mut() {
        for child in &held.holder.children {
            child.stop(Duration::from_secs(5));
        }
        held.holder.children.clear();
        let _ = write_holder(&mut held.file, &held.holder);
    }
    std::mem::forget(spawning);
}

/// Records a process this command started, so a later command can stop it if this one dies.
pub fn add_child(what: &str, marker: &str, pid: u32, group: bool) {
    update(|holder| {
        holder.children.push(Child {
            what: what.to_string(),
            marker: marker.to_string(),
            pid,
            start: process_start(pid).unwrap_or(0),
            group,
        })
    });
}

/// Forgets a process this command stopped (or handed over, as `local up` does).
pub fn remove_child(pid: u32) {
    update(|holder| holder.children.retain(|c| c.pid != pid));
}

/// Records the run this command works on, and whether it builds against the local stand-in.
pub fn set_run(run: &str, local: bool) {
    update(|holder| {
        holder.run = Some(run.to_string());
        holder.local = local;
    });
}

fn update(change: impl FnOnce(&mut Holder)) {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(held) = held.as_mut() {
        change(&mut held.holder);
        let _ = write_holder(&mut held.file, &held.holder);
    }
}

fn write_holder(file: &mut File, holder: &Holder) -> Result<()> {
    let text = serde_json::to_string_pretty(holder)? + "\n";
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(())
}

/// The holder a lock file names, if it can be read.
pub fn read_holder(path: &Path) -> Option<Holder> {
    crate::pure::json::parse(&std::fs::read_to_string(path).ok()?).ok()
}

/// Whether a command holds the lock now (checked without taking it), and who.
pub fn holder_now(root: &Path) -> Option<Holder> {
    let path = lock_path(root);
    let file = File::open(&path).ok()?;
    // SAFETY: flock(2) on a file descriptor this function owns.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        // SAFETY: as above; releases the shared lock just taken.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    Some(read_holder(&path).unwrap_or_default())
}

/// Processes a dead command left running in this repository (checked without the lock).
pub fn orphans(root: &Path) -> Vec<Child> {
    if holder_now(root).is_some() {
        return Vec::new();
    }
    read_holder(&lock_path(root))
        .map(|h| h.children.into_iter().filter(|c| c.is_running()).collect())
        .unwrap_or_default()
}

fn describe(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) if h.pid != 0 => format!("another `cargo xtask {}` (pid {})", h.command, h.pid),
        _ => "another `cargo xtask` command".to_string(),
    }
}

/// Fails unless this process holds the repository's lock: a guard for read-modify-writes.
pub fn ensure_held() -> Result<()> {
    if HELD.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
        bail!("internal error: the repository's lock is not held");
    }
    Ok(())
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn process_start(pid: u32) -> Option<u64> {
    group_and_start(pid).map(|(_, start)| start)
}

/// A running process's group and start time (fields 5 and 22 of `/proc/PID/stat`); `None` for
/// a zombie or a process that is gone.
fn group_and_start(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some((fields.get(2)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

fn has_marker(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `HH:MM:SS` of an epoch time, UTC.
fn clock(epoch: u64) -> String {
    let stamp = crate::pure::time::stamp(epoch);
    let time = &stamp[9..];
    format!("{}:{}:{}", &time[0..2], &time[2..4], &time[4..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_recognised_and_a_wrong_start_is_not() {
        let me = std::process::id();
        let start = process_start(me).unwrap();
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().to_string();
        let child = Child {
            what: "test".into(),
            marker: name.clone(),
            pid: me,
            start,
            group: false,
        };
        assert!(child.is_alive());
        assert!(!Child {
            start: start + 1,
            ..child.clone()
        }
        .is_alive());
        assert!(!Child {
            marker: "no-such-program".into(),
            ..child
        }
        .is_alive());
        assert_eq!(clock(1_795_573_423), "02:23:43");
    }
}
