//! Run folders (`build/runs/<run-id>/`) and their records (`run.json`): what was built, from
//! which inputs, and every builder's outcome, so a run can be resumed and cleaned up.

use crate::project;
pub use crate::pure::run::{Attempt, BuilderState, RunRecord, RUNS_DIR};
use crate::pure::template::Kind;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use xshell::Shell;
/// The inputs a resume must find unchanged; copies are kept in the run folder.
pub const INPUTS: [&str; 2] = ["ds0_utils.py", "build/images.json"];

impl RunRecord {
    pub fn save(&self, sh: &Shell) -> Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        project::write_atomic(sh, &format!("{}/run.json", self.dir()), &text)
    }
    pub fn load(sh: &Shell, run_id: &str) -> Result<RunRecord> {
        check_id(run_id)?;
        let path = format!("{RUNS_DIR}/{run_id}/run.json");
        let text = sh.read_file(&path).with_context(|| {
            format!("no run `{run_id}`: `{path}` cannot be read (runs are the folders of `{RUNS_DIR}/`)")
        })?;
        crate::pure::json::parse(&text).map_err(|e| anyhow::anyhow!("`{path}` is damaged: {e}"))
    }
}

/// A run is a folder of `build/runs/`, named by its id: never a path out of it.
pub fn check_id(run_id: &str) -> Result<()> {
    if run_id.is_empty() || run_id.starts_with('.') || run_id.contains('/') {
        return Err(crate::error::refused(
            format!("`{run_id}` is not a run id: runs are the folders of `{RUNS_DIR}/`"),
            format!("give a run id as `ls {RUNS_DIR}` lists it, e.g. `official-20261130-011749`"),
        ));
    }
    Ok(())
}

/// Keeps a copy of the run's inputs in its folder the first time (a release's record exists
/// before its publish starts, and its version is set in between), and refuses when they changed
/// since (a resume would build different images).
pub fn keep_inputs(sh: &Shell, record: &RunRecord) -> Result<()> {
    let kept = Path::new(&record.dir()).join("inputs");
    if !sh.path_exists(&kept) {
        sh.create_dir(&kept)
            .with_context(|| format!("cannot create `{}`", kept.display()))?;
        for input in INPUTS {
            let name = Path::new(input).file_name().expect("inputs are files");
            sh.copy_file(input, kept.join(name))
                .with_context(|| format!("cannot keep a copy of `{input}` in the run folder"))?;
        }
        return Ok(());
    }
    for input in INPUTS {
        let name = Path::new(input).file_name().expect("inputs are files");
        let copy = sh.read_binary_file(kept.join(name))?;
        let now = sh
            .read_binary_file(input)
            .with_context(|| format!("cannot read `{input}`"))?;
        if copy != now {
            anyhow::bail!(
                "`{input}` changed since run `{}` started, so a resume would build different images: \
                 restore it (the run's copy is `{}/inputs/{}`) or start a new run",
                record.run_id,
                record.dir(),
                name.to_string_lossy()
            );
        }
    }
    Ok(())
}

/// All run records, oldest first.
pub fn list(root: &Path) -> Vec<RunRecord> {
    let Ok(entries) = std::fs::read_dir(root.join(RUNS_DIR)) else {
        return Vec::new();
    };
    let mut records: Vec<RunRecord> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("run.json")).ok())
        .filter_map(|text| crate::pure::json::parse(&text).ok())
        .collect();
    records.sort_by(|a, b| (a.spec.epoch, &a.run_id).cmp(&(b.spec.epoch, &b.run_id)));
    records
}

/// A new run's id, `KIND[-local]-YYYYMMDD-HHMMSS[-N]`, with its folder: creating the folder
/// reserves the id, so two commands can never get the same one.
pub fn new_run_id(root: &Path, kind: Kind, local: bool, epoch: u64) -> Result<String> {
    let base = format!(
        "{kind}{}-{}",
        if local { "-local" } else { "" },
        crate::pure::time::stamp(epoch)
    );
    let runs = root.join(RUNS_DIR);
    std::fs::create_dir_all(&runs)
        .with_context(|| format!("cannot create `{}`", runs.display()))?;
    let mut id = base.clone();
    let mut n = 2;
    loop {
        match std::fs::create_dir(runs.join(&id)) {
            Ok(()) => return Ok(id),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                id = format!("{base}-{n}");
                n += 1;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create `{RUNS_DIR}/{id}`"));
            }
        }
    }
}

/// The number of a run's next attempt: after every recorded one and every log in its folder,
/// so no attempt's logs are ever overwritten (not even those of a killed command).
pub fn next_attempt(record: &RunRecord, dir: &Path) -> usize {
    let recorded = record.attempts.iter().map(|a| a.number).max().unwrap_or(0);
    let logged = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("output-")?
                .strip_suffix(".log")?
                .parse::<usize>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    recorded.max(logged) + 1
}

pub fn run_dir(root: &Path, run_id: &str) -> PathBuf {
    root.join(RUNS_DIR).join(run_id)
}
