//! Test harness: a temporary copy of the repository and the built `xtask` binary run in it, as a
//! user would run `cargo xtask` there.
#![allow(dead_code)]

pub mod tmux;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub struct Repo {
    pub root: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The real repository this test binary was built from.
pub fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A file of `xtask/tests/data/` (Packer output captured from real Packer, and the like).
pub fn data(name: &str) -> String {
    source_root()
        .join("xtask/tests/data")
        .join(name)
        .display()
        .to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        // Never copy a user's credentials or earlier runs into a test.
        if name == "runs" || name == "local.json" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Repo {
    /// A fresh copy of the repository's inputs in a temporary folder.
    pub fn new(name: &str) -> Repo {
        // Process ids wrap around within minutes on a busy machine (pid_max 32768): with the
        // start time in the name, a test never reuses the folder of an earlier test whose
        // left-over processes (a stand-in, Packer) might still write or delete there.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root = std::env::temp_dir().join(format!(
            "xtask-test-{name}-{}-{}-{started}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let source = source_root();
        for file in ["ds0_utils.py", "ami_ids.json", "Cargo.toml"] {
            std::fs::copy(source.join(file), root.join(file)).unwrap();
        }
        copy_dir(&source.join("build"), &root.join("build"));
        Repo { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Runs `cargo xtask ARGS` in `dir` (relative to the root).
    pub fn xtask_in(&self, dir: &str, args: &[&str]) -> Run {
        self.command_in(dir, args).run()
    }

    pub fn xtask(&self, args: &[&str]) -> Run {
        self.xtask_in(".", args)
    }

    pub fn command_in(&self, dir: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .args(args)
            .current_dir(self.root.join(dir))
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("XTASK_STANDIN_VENV", standin_venv());
        isolate_git(&mut command, &self.home());
        command
    }

    /// The test's own home folder: git (and git2) read their configuration from there only.
    pub fn home(&self) -> PathBuf {
        self.root.with_extension("home")
    }

    /// Makes the copy a git repository on `branch` with one commit of everything, with a fixed
    /// identity in the test's own git configuration.
    pub fn git_init(&self, branch: &str) {
        std::fs::create_dir_all(self.home()).unwrap();
        std::fs::write(
            self.home().join(".gitconfig"),
            "[user]\n\tname = Xtask Test\n\temail = xtask-test@example.invalid\n",
        )
        .unwrap();
        std::fs::copy(source_root().join(".gitignore"), self.path(".gitignore")).unwrap();
        self.git(&["init", "--quiet", "--initial-branch", branch]);
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--message", "Start"]);
    }

    /// Runs `git ARGS` in the copy (with the test's configuration) and returns its stdout.
    #[track_caller]
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.root, &self.home(), args)
    }

    /// Every file below the root except `target/` (where rehearsals and stand-ins live).
    pub fn snapshot_without_target(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let target = self.path("target");
        self.snapshot()
            .into_iter()
            .filter(|(path, _)| !path.starts_with(&target))
            .collect()
    }

    /// Every file below the root with its bytes, to assert that nothing changed.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                if kind.is_symlink() {
                    // Simulated image roots hold links (to folders, too): compare the target.
                    let target = std::fs::read_link(entry.path()).unwrap();
                    files.push((entry.path(), target.into_os_string().into_encoded_bytes()));
                } else if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    files.push((entry.path(), std::fs::read(entry.path()).unwrap()));
                } else {
                    // A socket (the stand-in's `aws` server) or a FIFO: there, not readable.
                    files.push((entry.path(), b"<special file>".to_vec()));
                }
            }
        }
        files.sort();
        files
    }
}

/// Roots of the repositories kept for the whole test process; removed (as a `Repo` is dropped)
/// when the process exits.
static SHARED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn drop_shared() {
    let roots = std::mem::take(&mut *SHARED.lock().unwrap_or_else(|e| e.into_inner()));
    for root in roots {
        drop(Repo { root });
    }
}

impl Repo {
    /// This repository as a fixture that several tests of this binary read (one scenario run
    /// once, its outcome checked by several `#[test]`s): it lives until the test process exits,
    /// then it is removed and its stand-in stopped, as when a `Repo` is dropped.
    pub fn shared(self) -> &'static Repo {
        let mut roots = SHARED.lock().unwrap();
        if roots.is_empty() {
            // SAFETY: registers a plain function without arguments to run at exit.
            unsafe { libc::atexit(drop_shared) };
        }
        roots.push(self.root.clone());
        Box::leak(Box::new(self))
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        // A stand-in kept by `local up` outlives the command: stop it even when a test failed.
        if self.path("target/standin/state.json").exists() {
            let _ = self.command_in(".", &["local", "down"]).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
            let _ = std::fs::remove_dir_all(self.home());
        }
    }
}

/// Keeps git and git2 away from the user's configuration: a home of the test's own, no system
/// configuration, no identity from the environment.
pub fn isolate_git(command: &mut Command, home: &Path) {
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_CONFIG_GLOBAL")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    for name in ["AUTHOR", "COMMITTER"] {
        command
            .env_remove(format!("GIT_{name}_NAME"))
            .env_remove(format!("GIT_{name}_EMAIL"))
            .env_remove(format!("GIT_{name}_DATE"));
    }
    command.env_remove("EMAIL");
}

/// Runs `git ARGS` in `dir` with the configuration of `home`; panics with its output on failure.
#[track_caller]
pub fn git_in(dir: &Path, home: &Path, args: &[&str]) -> String {
    let mut command = Command::new("git");
    command.args(args).current_dir(dir);
    isolate_git(&mut command, home);
    let Ok(output) = command.output() else {
        require(&["git"]);
        panic!("git does not run");
    };
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Where the local stand-in keeps its virtualenv: shared by all tests (and the developer's own
/// runs) so moto is installed once, under the real repo's `target/`.
pub fn standin_venv() -> PathBuf {
    source_root().join("target/standin-venv")
}

/// What the commands under test need on this machine, as `cargo xtask doctor` names it.
pub const PREREQUISITES: [&str; 6] = [
    "packer",
    "sshd",
    "ssh-keygen",
    "python3-venv",
    "curl",
    "git",
];

/// Fails the test with the doctor's report, not a stack of errors, when one of `checks` (names
/// of `cargo xtask doctor` checks, like `tmux`) is missing here.
#[track_caller]
pub fn require(checks: &[&str]) {
    if let Some(report) = doctor(checks) {
        panic!("{report}");
    }
}

/// The doctor's report when one of `checks` is missing, `None` when all pass.
fn doctor(checks: &[&str]) -> Option<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("doctor")
        .args(checks)
        .current_dir(source_root())
        .output()
        .expect("the xtask binary runs");
    (!output.status.success()).then(|| {
        format!(
            "this test needs what this machine lacks; `cargo xtask doctor {}` says:\n{}{}",
            checks.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Called when a command did not do what a test expected: a missing prerequisite explains that
/// better than the command's own error, so the test fails with the doctor's report instead.
#[track_caller]
fn explain_by_missing_prerequisites() {
    static REPORT: OnceLock<Option<String>> = OnceLock::new();
    if let Some(report) = REPORT.get_or_init(|| doctor(&PREREQUISITES)) {
        panic!("{report}");
    }
}

pub trait RunExt {
    fn run(&mut self) -> Run;
}

impl RunExt for Command {
    fn run(&mut self) -> Run {
        let output: Output = self.output().expect("the xtask binary runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Plain lines, not an escaped string: a failure in CI must show the command's own words.
impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit code: {}", self.code)?;
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let lines: Vec<&str> = text.lines().collect();
            let shown = &lines[lines.len().saturating_sub(80)..];
            writeln!(
                f,
                "--- {name} ({} lines, the last {} shown) ---",
                lines.len(),
                shown.len()
            )?;
            for line in shown {
                writeln!(f, "| {line}")?;
            }
        }
        Ok(())
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        if self.code != 0 {
            explain_by_missing_prerequisites();
        }
        assert_eq!(self.code, 0, "expected success:\n{self:#?}");
        self
    }

    /// Asserts a failure with this exit code whose stderr contains every `needle`.
    #[track_caller]
    pub fn fails(self, code: i32, needles: &[&str]) -> Run {
        if self.code != code || !needles.iter().all(|n| self.stderr.contains(n)) {
            explain_by_missing_prerequisites();
        }
        assert_eq!(self.code, code, "unexpected exit code:\n{self:#?}");
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr lacks {needle:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// stderr with every run of whitespace made one space: the preflight report wraps its long
    /// lines at any word.
    pub fn flat_stderr(&self) -> String {
        self.stderr.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Compares `actual` byte for byte with the checked-in file `xtask/tests/data/NAME`, or writes
/// it there when `UPDATE_GOLDEN=1` (then review the change with `git diff`).
#[track_caller]
pub fn golden(name: &str, actual: &str) {
    let path = source_root().join("xtask/tests/data").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "`{}` differs from the generated output, first at line {}:\n  golden:    {:?}\n  generated: {:?}\n\
             if the change is intended, regenerate with `UPDATE_GOLDEN=1 cargo test -p xtask` and review `git diff`",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

/// Runs `aws --output OUTPUT ARGS` against the stand-in kept by `local up` in `repo`, in
/// `region`, with the stand-in's own `aws` (its virtualenv's AWS CLI, kept warm), as `local
/// status` shows it; succeeding or not.
pub fn standin_aws_output(
    repo: &Repo,
    region: &str,
    output: &str,
    args: &[&str],
) -> std::process::Output {
    let state: serde_json::Value =
        serde_json::from_str(&repo.read("target/standin/state.json")).unwrap();
    let endpoint = format!("http://127.0.0.1:{}", state["moto_port"]);
    Command::new(repo.path("target/standin/aws"))
        .args(["--endpoint-url", &endpoint, "--region", region])
        .args(["--output", output])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap()
}

/// Asks the stand-in kept by `local up` in `repo` directly (see [`standin_aws_output`]), in
/// `region`; returns the JSON answer (`Null` when there is none).
#[track_caller]
pub fn standin_aws(repo: &Repo, region: &str, args: &[&str]) -> serde_json::Value {
    let output = standin_aws_output(repo, region, "json", args);
    assert!(output.status.success(), "aws {args:?}: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// The images of the account in `region` of the stand-in kept by `local up` whose tag `key`
/// is `value` (`describe-images --owners self`), as the stand-in describes them.
#[track_caller]
pub fn own_images_tagged(
    repo: &Repo,
    region: &str,
    (key, value): (&str, &str),
) -> Vec<serde_json::Value> {
    let filter = format!("Name=tag:{key},Values={value}");
    let args = [
        "ec2",
        "describe-images",
        "--owners",
        "self",
        "--filters",
        &filter,
    ];
    let answer = standin_aws(repo, region, &args);
    answer["Images"].as_array().cloned().unwrap_or_default()
}

/// Only the test region's rows stay enabled: a release rehearsal of 4 builders.
pub fn small_matrix(repo: &Repo) {
    matrix_of(repo, &["us-east-1"]);
}

/// Only the rows of `regions` stay enabled in `build/images.json` (4 builders per region): a
/// release as a user runs it, with fewer builders to wait for.
pub fn matrix_of(repo: &Repo, regions: &[&str]) {
    let mut matrix: serde_json::Value =
        serde_json::from_str(&repo.read("build/images.json")).unwrap();
    for row in matrix["images"].as_array_mut().unwrap() {
        if !regions.iter().any(|region| row["region"] == *region) {
            row["enabled"] = false.into();
            row["disabled_because"] = "a small matrix for the test".into();
        }
    }
    repo.write(
        "build/images.json",
        &(serde_json::to_string_pretty(&matrix).unwrap() + "\n"),
    );
}

/// The `--json` document of a build (`publish`, `test-ebs`, `test-instance`): the fields the
/// tests read, typed, so a renamed or missing field fails with its name.
#[derive(Debug, Deserialize)]
pub struct BuildDoc {
    pub ok: bool,
    pub run_id: String,
    /// How many builders succeeded.
    pub succeeded: usize,
    /// The builders that did not succeed.
    pub failed: Vec<String>,
    pub retry: Option<String>,
    pub run: RunRecord,
}

/// The `--json` document of a `release` that ran (not a `--dry-run`).
#[derive(Debug, Deserialize)]
pub struct ReleaseDoc {
    pub ok: bool,
    pub branch: String,
    pub commit: String,
    pub tag: String,
    pub pushed_to: Option<String>,
    pub amis: Vec<Ami>,
    pub publish_run: RunRecord,
}

/// The `--json` document of `cleanup`: what the tests read of it, typed.
#[derive(Debug, Deserialize)]
pub struct CleanupDoc {
    pub ok: bool,
    pub execute: bool,
    /// With `--run`: by region, what the run's Packer launched and did not delete.
    pub launched: Vec<LaunchedDoc>,
}

/// One region's leftovers of a run in a `cleanup` document.
#[derive(Debug, Deserialize)]
pub struct LaunchedDoc {
    pub region: String,
    pub instances: Vec<InstanceDoc>,
    /// Security group ids, with their `packer_…` names.
    pub security_groups: BTreeMap<String, String>,
    pub key_pairs: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct InstanceDoc {
    pub id: String,
    pub state: String,
    pub builder: String,
}

/// A run's record, `build/runs/ID/run.json` (and the `run` of a build's `--json` document).
#[derive(Debug, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub branch: String,
    /// The commit the images bake.
    pub commit: String,
    /// The cloud preflight's verdict: `passed`, or that it was skipped.
    pub cloud_checks: Option<String>,
    pub epoch: u64,
    pub builders: BTreeMap<String, Builder>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Builder {
    pub state: String,
    pub region: String,
    pub ami_name: String,
    /// Why a builder's state is what it is, beyond Packer's outcome (an adopted image).
    pub note: Option<String>,
    #[serde(default)]
    pub amis: Vec<Ami>,
    pub bundle: Option<String>,
    pub comboami_commit: Option<String>,
    /// Why it failed, as the summary says.
    pub error: Option<String>,
}

impl Builder {
    /// The id of its (first) AMI; panics, naming the state, when it made none.
    #[track_caller]
    pub fn ami(&self) -> &str {
        match self.amis.first() {
            Some(ami) => &ami.id,
            None => panic!("no AMI: {self:?}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ami {
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct Attempt {
    pub builders: Vec<String>,
    #[serde(default)]
    pub interrupted: bool,
}

/// The run ids in `build/runs` of the repository at `root`, oldest first (ids sort by time).
pub fn run_ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root.join("build/runs"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("run.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

impl RunRecord {
    /// The record of run `id` in the repository at `root`.
    #[track_caller]
    pub fn read(root: &Path, id: &str) -> RunRecord {
        let path = root.join(format!("build/runs/{id}/run.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
    }
}

impl Run {
    /// Its stdout as the `--json` document `T`.
    #[track_caller]
    pub fn doc<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the expected document ({e}):\n{self:#?}"))
    }
}
