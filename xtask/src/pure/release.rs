//! Release rules that need no I/O: preflight reports, commit and tag messages, the dry-run diff.
//! Pure.

use crate::pure::packer_log::Ami;
use crate::pure::refusal::Refusal;
use crate::pure::registry;

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

/// The refusal when `checks` failed (`kind`: "preflight check(s)"; `place`: where, or empty):
/// its fix names each failed check, whose own line says how to fix it.
pub fn refusal(checks: &[Check], kind: &str, place: &str) -> Refusal {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.result.is_err())
        .map(|c| format!("`{}`", c.what))
        .collect();
    let (names, lines) = match failed.split_last() {
        Some((last, [])) => (last.clone(), "its line says"),
        Some((last, rest)) => (format!("{} and {last}", rest.join(", ")), "their lines say"),
        None => (String::new(), ""),
    };
    Refusal {
        what: format!(
            "{} {kind} failed{place} (listed on top); nothing was changed",
            failed.len()
        ),
        fix: format!("fix {names} as {lines} above, then run the same command again"),
    }
}

/// One step of a release, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Set the version and branch in `ds0_utils.py`, commit it (the prepare commit) and put it
    /// on the remote's release branch.
    Prepare,
    /// Build every enabled row; the publish merges its AMIs into the registry (a release's)
    /// as its last act.
    Publish,
    Commit,
    Tag,
    Push,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Prepare,
        Step::Publish,
        Step::Commit,
        Step::Tag,
        Step::Push,
    ];

    /// How progress names a step that is done.
    pub fn done_text(self) -> &'static str {
        match self {
            Step::Prepare => "version set and committed",
            Step::Publish => "published",
            Step::Commit => "committed",
            Step::Tag => "tagged",
            Step::Push => "pushed",
        }
    }

    /// How progress names the step that comes next.
    pub fn next_text(self) -> &'static str {
        match self {
            Step::Prepare => "set and commit the version",
            Step::Publish => "publish (resumes its run)",
            Step::Commit => "commit",
            Step::Tag => "tag",
            Step::Push => "push",
        }
    }
}

/// What is done of a release: kept in the run record of its publish (`release` in `run.json`),
/// saved after every step, so running the same command again carries on.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Steps {
    pub tag: String,
    /// The command that carries the release on: the same command, confirmed.
    pub command: String,
    /// The version is set in `ds0_utils.py`.
    pub prepared: bool,
    /// The prepare commit: the version change, committed and on the remote's release branch
    /// before anything launched; every image bakes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare_commit: Option<String>,
    /// The publish finished and its AMIs are merged.
    pub published: bool,
    /// The release commit, once made.
    pub commit: Option<String>,
    pub tagged: bool,
    pub pushed_to: Option<String>,
}

impl Steps {
    /// Whether `step` is done; pushing is done when no push is asked for.
    pub fn is_done(&self, step: Step, push: Option<&str>) -> bool {
        match step {
            Step::Prepare => self.prepared && self.prepare_commit.is_some(),
            // A commit is only made after the publish.
            Step::Publish => self.published || self.commit.is_some(),
            Step::Commit => self.commit.is_some(),
            Step::Tag => self.tagged,
            Step::Push => push.is_none() || self.pushed_to.as_deref() == push,
        }
    }

    /// The first step not done, if any.
    pub fn next(&self, push: Option<&str>) -> Option<Step> {
        Step::ALL.into_iter().find(|s| !self.is_done(*s, push))
    }

    /// `done: ...; next: ...`, for a release that resumes.
    pub fn progress(&self, push: Option<&str>) -> String {
        // Without a push asked for, "pushed" would claim what never happened.
        let done: Vec<&str> = Step::ALL
            .into_iter()
            .filter(|s| self.is_done(*s, push) && (*s != Step::Push || push.is_some()))
            .map(Step::done_text)
            .collect();
        format!(
            "done: {}; next: {}",
            if done.is_empty() {
                "nothing".to_string()
            } else {
                done.join(", ")
            },
            self.next(push).map_or("nothing", Step::next_text)
        )
    }
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

/// How to get onto the release branch: `git switch BRANCH` when it exists here or as a
/// remote-tracking branch (git then creates the local one), else `git switch -c BRANCH`.
pub fn switch_command(branch: &str, exists: bool) -> String {
    if exists {
        format!("git switch {branch}")
    } else {
        format!("git switch -c {branch}")
    }
}

/// The message of the prepare commit: the version change every image of the release bakes.
pub fn prepare_message(version: &str, branch: &str) -> String {
    format!(
        "Prepare ComboAMI {version}\n\n\
         Set the version to {version} (branch {branch}) in `ds0_utils.py`: every image of the \
         release bakes this commit.\n"
    )
}

/// The release commit, on top of the prepare commit `baked`: the merge of the AMIs.
pub fn commit_message(version: &str, baked: &str, amis: &[Ami]) -> String {
    format!(
        "Release ComboAMI {version}\n\n\
         Add the {} published AMIs, baked from commit {baked}, to `ami_ids.json`.\n",
        amis.len()
    )
}

/// The lines a release adds to its tag message: the commit every image baked, and a partial
/// set said loudly.
pub fn provenance(baked: &str, left_out: &[String]) -> String {
    let mut out = format!("\nEvery image baked commit {baked}.\n");
    if !left_out.is_empty() {
        out.push_str(&format!(
            "\nPARTIAL RELEASE (`--partial`): {} builder(s) were not proven and are not \
             released: {}\n",
            left_out.len(),
            left_out.join(", ")
        ));
    }
    out
}

/// The annotated tag's message: every AMI with the ComboAMI commit its image was built from
/// (from its image report; `commits` maps builder names to commits).
/// The line that marks a tag adopting a release made before the tool (`tag --commit`): its
/// images carry no `Version` or `Commit` tags, and the stand-in never held them.
pub const ADOPTED: &str = "Adopted: a release made before the tool";

/// That line for the release made at `commit`.
pub fn adopted_line(commit: &str) -> String {
    format!(
        "\n{ADOPTED} (at commit {}); its images carry no `Version` or `Commit` tags\n",
        crate::pure::legacy::short(commit)
    )
}

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
    fn a_refusal_names_each_failed_check_in_its_fix() {
        let checks = [
            Check::fail("version", "`2.6` is not a semantic version"),
            Check::ok("working tree", "clean"),
            Check::fail("credentials", "`build/local.json` not found"),
            Check::fail("packer", "not found"),
        ];
        let refused = refusal(&checks, "preflight check(s)", " in the real repository");
        assert_eq!(
            refused.what,
            "3 preflight check(s) failed in the real repository (listed on top); nothing was changed"
        );
        assert_eq!(
            refused.fix,
            "fix `version`, `credentials` and `packer` as their lines say above, then run the same \
             command again"
        );
        let one = refusal(&checks[..2], "check(s)", "");
        assert_eq!(
            (one.what.as_str(), one.fix.as_str()),
            (
                "1 check(s) failed (listed on top); nothing was changed",
                "fix `version` as its line says above, then run the same command again"
            )
        );
    }

    #[test]
    fn report_marks_failures_and_counts_them() {
        let checks = [
            Check::ok("version", "2.6.4"),
            Check::fail("branch", "on `main`: run `git switch 2.6`"),
        ];
        let text = report(&checks);
        assert!(text.contains("  ok    version  2.6.4\n"), "{text}");
        assert!(
            text.contains("  FAIL  branch   on `main`: run `git switch 2.6`\n"),
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
        assert!(commit_message("2.6.4", "abc123", &amis).starts_with("Release ComboAMI 2.6.4\n\n"));
        assert!(commit_message("2.6.4", "abc123", &amis).contains("baked from commit abc123"));
        assert!(prepare_message("2.6.4", "2.6").starts_with("Prepare ComboAMI 2.6.4\n\n"));
    }

    #[test]
    fn the_branch_fix_works_on_a_fresh_clone() {
        // A clone with only `main` has `origin/2.6`: `git switch 2.6` makes the local branch.
        assert_eq!(switch_command("2.6", true), "git switch 2.6");
        // No such branch anywhere: it is created from here.
        assert_eq!(switch_command("2.7", false), "git switch -c 2.7");
    }

    #[test]
    fn the_tag_names_the_baked_commit_and_a_partial_set_loudly() {
        let whole = provenance("0123abcd", &[]);
        assert_eq!(whole, "\nEvery image baked commit 0123abcd.\n");
        let partial = provenance("0123abcd", &["eu-west-1-1204-pv".to_string()]);
        assert!(
            partial.contains("Every image baked commit 0123abcd."),
            "{partial}"
        );
        assert!(
            partial.contains("PARTIAL RELEASE (`--partial`): 1 builder(s) were not proven and are not released: eu-west-1-1204-pv"),
            "{partial}"
        );
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

    #[test]
    fn steps_say_what_is_done_and_what_comes_next() {
        let mut steps = Steps::default();
        assert_eq!(
            steps.progress(None),
            "done: nothing; next: set and commit the version"
        );
        steps.prepared = true;
        // Set but not yet committed (and pushed): nothing may launch yet.
        assert_eq!(steps.next(None), Some(Step::Prepare));
        steps.prepare_commit = Some("0123".into());
        assert_eq!(steps.next(None), Some(Step::Publish));
        assert_eq!(
            steps.progress(None),
            "done: version set and committed; next: publish (resumes its run)"
        );
        // A found commit implies the publish it was made after.
        steps.commit = Some("abc".into());
        assert!(steps.is_done(Step::Publish, None));
        steps.tagged = true;
        // Without `--push` a tagged release is done; with it, only once pushed there.
        assert_eq!(steps.next(None), None);
        assert_eq!(steps.next(Some("origin")), Some(Step::Push));
        steps.pushed_to = Some("upstream".into());
        assert_eq!(steps.next(Some("origin")), Some(Step::Push));
        steps.pushed_to = Some("origin".into());
        assert_eq!(
            steps.progress(Some("origin")),
            "done: version set and committed, published, committed, tagged, pushed; next: nothing"
        );
    }
}
