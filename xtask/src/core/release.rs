//! Release rules that need no I/O: preflight reports, commit and tag messages, the dry-run diff.
//! Pure.

use crate::core::packer_log::Ami;
use crate::core::registry;

/// One preflight check: what was checked and either what was found or what is wrong (with the
/// fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: &'static str,
    pub result: Result<String, String>,
}

impl Check {
    pub fn ok(what: &'static str, detail: impl Into<String>) -> Check {
        Check {
            what,
            result: Ok(detail.into()),
        }
    }

    pub fn fail(what: &'static str, problem: impl Into<String>) -> Check {
        Check {
            what,
            result: Err(problem.into()),
        }
    }
}

/// Every check, one line each, failures marked so they stand out.
pub fn report(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.what.len()).max().unwrap_or(0);
    let mut out = String::from("preflight:\n");
    for check in checks {
        let (mark, text) = match &check.result {
            Ok(detail) => ("ok  ", detail),
            Err(problem) => ("FAIL", problem),
        };
        // Continuation lines line up under the first.
        let text = text.replace('\n', &format!("\n{:width$}", "", width = width + 10));
        out.push_str(&format!("  {mark}  {:<width$}  {text}\n", check.what));
    }
    out
}

pub fn failures(checks: &[Check]) -> usize {
    checks.iter().filter(|c| c.result.is_err()).count()
}

/// The AMIs of a release, one line each, sorted by builder (region, release, virtualization).
pub fn ami_lines(amis: &[Ami]) -> Vec<String> {
    let mut lines: Vec<String> = amis
        .iter()
        .map(|ami| {
            let (release, virt) = registry::release_and_virt(&ami.builder)
                .unwrap_or_else(|_| ("?".into(), "?".into()));
            format!("{:<15} {release} {virt:<3}  {}", ami.region, ami.id)
        })
        .collect();
    lines.sort();
    lines
}

pub fn commit_message(version: &str, branch: &str, amis: &[Ami], candidate: bool) -> String {
    if candidate {
        return format!(
            "Release ComboAMI {version}\n\n\
             Set the version to {version} (branch {branch}) in `ds0_utils.py`. The {} AMIs of \
             this candidate are private and listed in its tag, not in `ami_ids.json`.\n",
            amis.len()
        );
    }
    format!(
        "Release ComboAMI {version}\n\n\
         Set the version to {version} (branch {branch}) in `ds0_utils.py` and add the {} \
         published AMIs to `ami_ids.json`.\n",
        amis.len()
    )
}

/// The annotated tag's message: every AMI with the ComboAMI commit its image was built from
/// (from its image report; `commits` maps builder names to commits).
pub fn tag_message(
    version: &str,
    branch: &str,
    amis: &[Ami],
    commits: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut out = format!(
        "ComboAMI {version} (branch {branch})\n\n{} AMIs:\n",
        amis.len()
    );
    let mut lines: Vec<String> = amis
        .iter()
        .map(|ami| {
            let line = ami_lines(std::slice::from_ref(ami)).remove(0);
            match commits.get(&ami.builder) {
                Some(commit) => format!("{line}  ComboAMI {commit}"),
                None => line,
            }
        })
        .collect();
    lines.sort();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A unified-style diff of one file, with `context` lines around each change. Small files only
/// (quadratic), which is what releases edit.
pub fn diff(path: &str, old: &str, new: &str, context: usize) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // The edit script: (' ' | '-' | '+', old line number, text).
    let mut script = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            script.push((' ', i, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as `diff -u` shows them.
            script.push(('-', i, a[i]));
            i += 1;
        } else {
            script.push(('+', i, b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..script.len()).filter(|&k| script[k].0 != ' ').collect();
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(context);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * context + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + context + 1).min(script.len());
        out.push_str(&format!("@@ line {} @@\n", script[start].1 + 1));
        for (mark, _, text) in &script[start..end] {
            out.push_str(&format!("{mark}{text}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ami(builder: &str, region: &str, id: &str) -> Ami {
        Ami {
            builder: builder.into(),
            region: region.into(),
            id: id.into(),
        }
    }

    #[test]
    fn report_marks_failures_and_counts_them() {
        let checks = [
            Check::ok("version", "2.6.4"),
            Check::fail("branch", "on `main`: run `git checkout 2.6`"),
        ];
        let text = report(&checks);
        assert!(text.contains("  ok    version  2.6.4\n"), "{text}");
        assert!(
            text.contains("  FAIL  branch   on `main`: run `git checkout 2.6`\n"),
            "{text}"
        );
        assert_eq!(failures(&checks), 1);
    }

    #[test]
    fn tag_message_lists_every_ami_sorted() {
        let amis = [
            ami("us-east-1-1404-pv", "us-east-1", "ami-00000002"),
            ami("eu-west-1-1204-hvm", "eu-west-1", "ami-00000001"),
        ];
        let commits = [("eu-west-1-1204-hvm".to_string(), "0123abcd".to_string())].into();
        assert_eq!(
            tag_message("2.6.4", "2.6", &amis, &commits),
            "ComboAMI 2.6.4 (branch 2.6)\n\n2 AMIs:\n\
             eu-west-1       1204 hvm  ami-00000001  ComboAMI 0123abcd\n\
             us-east-1       1404 pv   ami-00000002\n"
        );
        assert!(
            commit_message("2.6.4", "2.6", &amis, false).starts_with("Release ComboAMI 2.6.4\n\n")
        );
        assert!(commit_message("2.6.4-beta1", "2.6", &amis, true).contains("not in `ami_ids.json`"));
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let old = "a\nb\nversion = \"2.6.3\"\nc\nd\ne\nf\ng\nbranch = \"2.6\"\nh\n";
        let new = old.replace("2.6.3", "2.7.0").replace("\"2.6\"", "\"2.7\"");
        assert_eq!(
            diff("ds0_utils.py", old, &new, 1),
            "--- a/ds0_utils.py\n+++ b/ds0_utils.py\n\
             @@ line 2 @@\n b\n-version = \"2.6.3\"\n+version = \"2.7.0\"\n c\n\
             @@ line 8 @@\n g\n-branch = \"2.6\"\n+branch = \"2.7\"\n h\n"
        );
        assert_eq!(diff("x", "same\n", "same\n", 3), "");
    }
}
