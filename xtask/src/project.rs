//! The repository on disk: finding its root, reading its inputs, writing files atomically.

use crate::pure::{ds0, matrix::Matrix, registry};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use xshell::Shell;

/// Finds the repo root from the current folder (any folder inside the repo works) and moves the
/// shell there, so every path below is relative to the root.
pub fn enter_root(sh: &Shell) -> Result<PathBuf> {
    let start = sh.current_dir();
    let root = start
        .ancestors()
        .find(|dir| dir.join(ds0::DS0_PATH).is_file() && dir.join("build/images.json").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "`{}` is not inside the image repository (no folder above it holds `{}` and \
                 `build/images.json`): run `cargo xtask` from the repository",
                start.display(),
                ds0::DS0_PATH
            )
        })?;
    sh.change_dir(&root);
    Ok(root)
}

/// A path argument as the user means it: relative to the folder the command was started in
/// (`caller`), not to the root the shell works in. Returned relative to `root` when it lies
/// inside the repository (so messages stay short: `build/t.json`), else absolute.
pub fn from_caller(caller: &Path, root: &Path, arg: &str) -> String {
    // `components` drops inner `.`s; `..` stays, as a symbolic link may stand before it.
    let path: PathBuf = caller.join(arg).components().collect();
    match path.strip_prefix(root) {
        Ok(inside) if !inside.as_os_str().is_empty() => inside.display().to_string(),
        _ => path.display().to_string(),
    }
}

pub fn read(sh: &Shell, path: &str) -> Result<String> {
    sh.read_file(path)
        .with_context(|| format!("cannot read `{path}`"))
}

pub fn matrix(sh: &Shell) -> Result<Matrix> {
    let text = read(sh, crate::pure::matrix::MATRIX_PATH)?;
    Matrix::parse(&text).map_err(anyhow::Error::msg)
}

/// The version and branch `ds0_utils.py` holds.
pub fn version_and_branch(sh: &Shell) -> Result<(String, String)> {
    let text = read(sh, ds0::DS0_PATH)?;
    Ok(ds0::read_checked(&text)?)
}

/// The registry at `path`, checked against the regions of `build/images.json`.
pub fn registry(sh: &Shell, path: &str) -> Result<registry::Registry> {
    let text = read(sh, path)?;
    let parsed = registry::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}", e.replace(registry::REGISTRY_PATH, path)))?;
    registry::check(&parsed, &matrix(sh)?.settings.regions, path)?;
    Ok(parsed)
}

/// Writes through a temporary file in the same folder and a rename, keeping the permissions of
/// the file it replaces: a failure or a kill leaves either the old or the new file, never half.
/// A symbolic link is written through: its target gets the new contents (the temporary file
/// sits beside the target) and the link stays a link.
pub fn write_atomic(sh: &Shell, path: &str, contents: &str) -> Result<()> {
    let target = through_links(&sh.current_dir().join(path), path)?;
    let dir = target.parent().context("a file path has a parent")?;
    let name = target
        .file_name()
        .context("a file path has a name")?
        .to_string_lossy();
    let temporary = dir.join(format!(".{name}.xtask-{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        std::fs::write(&temporary, contents)
            .with_context(|| format!("cannot write `{}`", temporary.display()))?;
        if let Ok(meta) = std::fs::metadata(&target) {
            std::fs::set_permissions(&temporary, meta.permissions())
                .with_context(|| format!("cannot set permissions of `{}`", temporary.display()))?;
        }
        std::fs::rename(&temporary, &target).with_context(|| format!("cannot replace `{path}`"))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// The file a path names, following symbolic links; a path that is not a link stays as it is.
fn through_links(path: &Path, shown: &str) -> Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).with_context(|| {
                let link = std::fs::read_link(path)
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                format!(
                    "`{shown}` is a symbolic link to `{link}`, which cannot be followed: \
                 fix the link or replace it with the file"
                )
            })
        }
        _ => Ok(path.to_path_buf()),
    }
}

/// The files a release edits and commits (`ds0_utils.py`, `ami_ids.json`), as paths inside the
/// repository at `root`: a symbolic link is edited through, so the commit must hold its target;
/// a target outside the repository cannot be committed and is refused.
pub fn release_files(root: &Path) -> Result<Vec<String>> {
    let real_root = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve `{}`", root.display()))?;
    let mut files = Vec::new();
    for file in [ds0::DS0_PATH, registry::REGISTRY_PATH] {
        let target = through_links(&root.join(file), file)?;
        if target == root.join(file) {
            files.push(file.to_string());
            continue;
        }
        let inside = target.strip_prefix(&real_root).map_err(|_| {
            anyhow::anyhow!(
                "`{file}` is a symbolic link to `{}`, outside the repository, so a release commit \
                 cannot hold the new version: move the file into the repository (or link to a \
                 file inside it)",
                target.display()
            )
        })?;
        files.push(inside.to_string_lossy().into_owned());
    }
    Ok(files)
}

/// Seconds since the epoch: `SOURCE_DATE_EPOCH` when set (reproducible output), else now.
pub fn epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text.trim().parse().with_context(|| {
            format!("`SOURCE_DATE_EPOCH` is `{text}`, not a number of seconds: unset it or fix it")
        }),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_secs()),
    }
}

/// The commit the images are built from, for tags; `unknown` outside a git checkout.
pub fn git_commit(sh: &Shell) -> String {
    git2::Repository::discover(sh.current_dir())
        .ok()
        .and_then(|repo| {
            repo.head()
                .ok()?
                .peel_to_commit()
                .ok()
                .map(|c| c.id().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Splits `--only a,b c` style values into builder names.
pub fn split_names(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The names a flag gives (`--only a,b c`), refused when it was given but names nothing or has
/// an empty name (`--only ''`, `--only a,,b`): a script's empty variable must not widen a
/// command to everything.
pub fn names(flag: &str, values: &[String]) -> Result<Vec<String>> {
    let empty = !values.is_empty()
        && values
            .iter()
            .any(|v| v.split(',').any(|n| n.trim().is_empty()));
    if empty {
        let given: Vec<String> = values.iter().map(|v| format!("`{flag} {v:?}`")).collect();
        return Err(crate::error::refused(
            format!("{} names an empty name", given.join(" ")),
            format!("give each name (comma-separated or `{flag}` repeated), or leave `{flag}` out for all of them"),
        ));
    }
    Ok(split_names(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_given_empty_names_nothing_rather_than_everything() {
        let given =
            |values: &[&str]| -> Vec<String> { values.iter().map(|v| v.to_string()).collect() };
        assert_eq!(names("--only", &[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            names("--only", &given(&["a,b", " c "])).unwrap(),
            ["a", "b", "c"]
        );
        for bad in [&[""][..], &[","], &["a,,b"], &["a", ""]] {
            let error = names("--only", &given(bad)).unwrap_err();
            let text = crate::error::render_error(&error, &Default::default());
            assert!(text.contains("names an empty name"), "{bad:?}: {text}");
            assert!(text.contains("fix: give each name"), "{text}");
        }
    }

    #[test]
    fn paths_are_relative_to_the_callers_folder() {
        let root = Path::new("/r");
        let at = |caller: &str, arg: &str| from_caller(Path::new(caller), root, arg);
        assert_eq!(at("/r/build", "t.json"), "build/t.json");
        assert_eq!(at("/r/build", "./t.json"), "build/t.json");
        assert_eq!(at("/r", "t.json"), "t.json");
        assert_eq!(at("/r/build", "../t.json"), "build/../t.json");
        assert_eq!(at("/r/build", "/tmp/x.log"), "/tmp/x.log");
        assert_eq!(at("/elsewhere", "x.log"), "/elsewhere/x.log");
        assert_eq!(at("/r", "."), "/r");
    }

    /// Every JSON reader goes through `pure::json::parse`, which refuses duplicate keys that
    /// serde_json alone would silently drop.
    #[test]
    fn json_is_read_only_through_the_strict_parser() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![src.clone()];
        let mut offenders = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("pure/json.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (index, line) in text.lines().enumerate() {
                        // Split so that this test does not find itself.
                        let direct = [
                            ("serde_json::", "from_str"),
                            ("serde_json::", "from_slice"),
                            ("serde_json::", "from_reader"),
                            ("Deserializer::", "from_"),
                            (".parse::<Value>", "()"),
                            (".parse::<serde_json::Value>", "()"),
                        ];
                        if direct
                            .iter()
                            .any(|(a, b)| line.contains(&format!("{a}{b}")))
                        {
                            offenders.push(format!("{}:{}", path.display(), index + 1));
                        }
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "read JSON with `crate::pure::json::parse` (it refuses duplicate keys), not serde_json \
             directly: {offenders:?}"
        );
    }
}
