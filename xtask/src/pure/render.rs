//! The text a user reads before and after a build: the plan (from the spec and its plan) and the
//! end-of-run summary (from the run record). Pure: the edges print it.

use crate::pure::registry::REGISTRY_PATH;
use crate::pure::run::{BuilderRecord, BuilderState, RunRecord, RUNS_DIR};
use crate::pure::template::{Kind, Plan, Spec};

/// What the plan says besides the plan itself.
#[derive(Debug, Clone, Copy)]
pub struct PlanNotes<'a> {
    /// The instance type the builds launch.
    pub launch_size: &'a str,
    /// Whether the matrix makes official images public (a private official plan is then a
    /// candidate or `--private`).
    pub matrix_public: bool,
    /// The loud line of `--skip-cloud-checks`, when given.
    pub cloud_skipped: Option<&'a str>,
}

/// `text` in lines of at most `width` columns, each starting with `indent`.
fn wrap_words(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `not built: ...` lines for the disabled rows, grouped by their reason.
fn disabled_lines(disabled: &[(String, String)]) -> String {
    let mut by_reason: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (name, why) in disabled {
        by_reason
            .entry(why.as_str())
            .or_default()
            .push(name.clone());
    }
    by_reason
        .into_iter()
        .map(|(why, names)| {
            format!(
                "  not built: {} row(s) disabled in `build/images.json`, because\n{}{}",
                names.len(),
                wrap_words(why, 72, "    "),
                wrap_list(&names, 60, "    ")
            )
        })
        .collect()
}

/// The plan of a build: where, how many, public or not, where the AMIs go. `spec.registry` of
/// `Some("")` stands for the scratch copy of a local publish, named once the run exists.
pub fn plan(plan: &Plan, spec: &Spec, notes: PlanNotes) -> String {
    let kind = plan.kind;
    let regions = plan.regions();
    let target = if spec.local {
        "the LOCAL stand-in (no AWS account, no cost)"
    } else {
        "AWS (this costs money)"
    };
    let regions_text: Vec<String> = regions.iter().map(|(r, n)| format!("{r} ({n})")).collect();
    // Short lines: the plan stays readable in an 80-column terminal, also indented in a release.
    let mut out = format!(
        "plan: {kind} build of ComboAMI {} (branch {})\n  \
         against {target}\n  \
         launches {} {} instance(s) in {} region(s):\n{}  \
         images will be {}\n",
        spec.version,
        spec.branch,
        plan.builders.len(),
        notes.launch_size,
        regions.len(),
        wrap_list(&regions_text, 60, "    "),
        // What the template really sets, not what the kind usually is.
        match (plan.public, kind) {
            (true, _) => "PUBLIC once all are proven (registered private)",
            (false, Kind::Official) if notes.matrix_public => {
                "PRIVATE (ami_groups empty: a candidate, or `--private`)"
            }
            (false, _) => "private",
        },
    );
    out.push_str(&disabled_lines(&plan.disabled));
    if let Some(skipped) = notes.cloud_skipped {
        out.push_str(&format!("  {skipped}\n"));
    }
    out.push_str(&match spec.registry.as_deref() {
        Some("") => format!(
            "  AMIs are merged into a scratch copy of `{REGISTRY_PATH}` in the run folder\n"
        ),
        Some(path) => format!("  AMIs are merged into `{path}`\n"),
        None if kind == Kind::Official => format!(
            "  AMIs are kept in the run record (and a candidate's tag message); `{REGISTRY_PATH}` is left alone\n"
        ),
        None => "  AMIs are listed, not added to the registry\n".to_string(),
    });
    out
}

/// What the plan's launch count becomes once the cloud preflight found `existing` of the
/// `planned` images already made (by this version and commit): they are reviewed, not rebuilt.
pub fn launches_after_review(planned: usize, existing: usize) -> String {
    let rebuilt = "a private one that fails its review is deregistered and rebuilt";
    if existing >= planned {
        format!("so nothing is launched unless a review fails: all {planned} planned image(s) exist and are reviewed first ({rebuilt})")
    } else {
        format!(
            "so {} of the {planned} planned instance(s) will launch: {existing} image(s) exist and are reviewed first ({rebuilt})",
            planned - existing
        )
    }
}

/// `items` joined with ", " into lines of at most `width` characters (an item longer than that
/// gets a line of its own), each line indented and ended.
pub fn wrap_list(items: &[String], width: usize, indent: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item = if index + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        match lines.last_mut() {
            Some(line) if line.len() + 1 + item.len() <= width => {
                line.push(' ');
                line.push_str(&item);
            }
            _ => lines.push(item),
        }
    }
    lines.iter().map(|l| format!("{indent}{l}\n")).collect()
}

/// What the summary says besides the record.
#[derive(Debug, Clone, Copy)]
pub struct SummaryNotes<'a> {
    /// A local run's images outlive it (the stand-in of `local up` keeps running).
    pub standin_kept: bool,
    /// The command that builds what did not succeed, when something did not.
    pub retry: Option<&'a str>,
    /// The terminal's width; `None` (not a terminal): lines are not wrapped.
    pub width: Option<usize>,
    /// Where the run's paths start, when not where the user typed the command (a rehearsal's
    /// scratch clone): the summary prints its paths from there, so they can be used.
    pub base: Option<&'a str>,
    /// Seconds since the command started (`None` in golden tests): the view's clock, `[M:SS]`.
    pub elapsed: Option<u64>,
}

/// `BASE/` when the run's paths start elsewhere than where the user is, else nothing.
fn base(notes: &SummaryNotes) -> String {
    notes
        .base
        .map(|b| format!("{}/", b.trim_end_matches('/')))
        .unwrap_or_default()
}

/// The end-of-run summary: one row per builder, failed ones first with their error, then what
/// the run was and what to do next.
pub fn summary(record: &RunRecord, notes: SummaryNotes) -> String {
    let name_width = record
        .builders
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!(
        "\n{:<name_width$}  {:<11}  AMI(s) or error\n",
        "builder", "result"
    );
    // Failures first, where they are read; each group in name order.
    let (failed, succeeded): (Vec<_>, Vec<_>) = record
        .builders
        .iter()
        .partition(|(_, b)| b.state != BuilderState::Succeeded);
    let indent = name_width + 2 + 11 + 2;
    for (name, b) in failed.into_iter().chain(succeeded) {
        let state = match b.state {
            BuilderState::Succeeded => "ok".to_string(),
            other => other.as_str().to_uppercase(),
        };
        let detail = wrap(&detail(b), indent, notes.width);
        out.push_str(&format!("{name:<name_width$}  {state:<11}  {detail}\n"));
    }
    out.push_str(&fit(&footer(record, notes), notes.width));
    out
}

/// A builder's AMIs, or why it has none.
fn detail(b: &BuilderRecord) -> String {
    match b.state {
        BuilderState::Succeeded => {
            let amis: Vec<String> = b
                .amis
                .iter()
                .map(|a| format!("{}:{}", a.region, a.id))
                .collect();
            match &b.note {
                Some(note) => format!("{} ({note})", amis.join(" ")),
                None => amis.join(" "),
            }
        }
        BuilderState::Exists => format!(
            "an image named `{}` already exists: {} (an earlier attempt made it; deregister it with `cargo xtask cleanup` to rebuild)",
            b.ami_name,
            b.existing_ami.as_deref().unwrap_or("?")
        ),
        _ => b
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

/// `text` in lines that end before `width`, continuation lines indented by `indent`; a word (or a
/// `quoted span`) longer than a line keeps a line of its own, whole: paths, ids and commands are
/// copied, not read.
fn wrap(text: &str, indent: usize, width: Option<usize>) -> String {
    let Some(width) = width else {
        return text.to_string();
    };
    // A terminal too narrow for the table still gets some words per line.
    let room = width.saturating_sub(indent + 1).max(20);
    let mut lines: Vec<String> = Vec::new();
    for word in words(text) {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= room => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines.join(&format!("\n{:indent$}", ""))
}

/// The words of `text`: split at spaces outside backticks.
fn words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (at, c) in text.char_indices() {
        match c {
            '`' => quoted = !quoted,
            ' ' if !quoted => {
                words.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    words.push(&text[start..]);
    words
}

/// Each prose line of `text` wrapped to `width` (continuations indented by two); indented lines
/// are commands and paths, kept whole.
fn fit(text: &str, width: Option<usize>) -> String {
    text.lines()
        .map(|line| match line.starts_with(' ') {
            true => format!("{line}\n"),
            false => format!("{}\n", wrap(line, 2, width)),
        })
        .collect()
}

/// What the run was, where its output is, and what to do next.
fn footer(record: &RunRecord, notes: SummaryNotes) -> String {
    let spec = &record.spec;
    let failed = record.unfinished();
    // Short lines: the summary stays readable in an 80-column terminal.
    let mut out = format!(
        "\n{} run `{}`: {} of {} builders succeeded\n  version {}, branch {}{}{}\n",
        spec.kind,
        record.run_id,
        record.builders.len() - failed.len(),
        record.builders.len(),
        spec.version,
        spec.branch,
        if spec.local { ", local stand-in" } else { "" },
        notes.elapsed.map_or(String::new(), |s| format!(
            "  [{}]",
            crate::pure::time::clock(s)
        )),
    );
    if let Some(skipped) = record
        .cloud_checks
        .as_ref()
        .filter(|c| c.starts_with("SKIPPED"))
    {
        out.push_str(&format!("cloud checks: {skipped}\n"));
    }
    if let Some(attempt) = record.attempts.last() {
        out.push_str(&format!(
            "full output (secrets masked):\n  {}{}\n",
            base(&notes),
            attempt.output_log
        ));
    }
    if let Some(path) = spec.registry.as_ref().filter(|p| p.starts_with(RUNS_DIR)) {
        // A run's AMIs are merged only once all are public (the summary says when not).
        let merged = if record.made_public {
            "AMIs merged into"
        } else {
            "its AMIs go, once public, into"
        };
        out.push_str(&format!(
            "local run: the real `{REGISTRY_PATH}` was not touched; {merged}\n  {}{path}\n",
            base(&notes)
        ));
    }
    if spec.kind.is_test() && failed.len() < record.builders.len() {
        out.push_str(&test_amis(record, notes.standin_kept));
    }
    if let Some(retry) = notes.retry {
        out.push_str(&format!(
            "retry only the builders that did not succeed:\n  {retry}\n"
        ));
    }
    out
}

/// Where a test run's images are and how to remove them.
fn test_amis(record: &RunRecord, standin_kept: bool) -> String {
    let local = record.spec.local;
    let cleanup = format!(
        "cargo xtask cleanup --run {}{} --execute",
        record.run_id,
        if local { " --local" } else { "" }
    );
    match (local, standin_kept) {
        (false, _) => format!(
            "test AMIs are private and not added to the registry; remove them with `{cleanup}`\n"
        ),
        (true, true) => format!(
            "test AMIs are in the stand-in kept by `cargo xtask local up`; remove them with `{cleanup}`\n"
        ),
        (true, false) => "test AMIs lived in this command's own stand-in and are gone with it; \
             to keep them for `cargo xtask cleanup --local`, start one first with `cargo xtask local up`\n"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::matrix::Matrix;
    use crate::pure::packer_log::Ami;
    use crate::pure::run::Attempt;
    use crate::pure::template;

    /// Compares with `xtask/tests/data/NAME`; `UPDATE_GOLDEN=1` rewrites it.
    fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            expected == actual,
            "`{}` differs; if intended, regenerate with `UPDATE_GOLDEN=1 cargo test -p xtask --bin xtask render` and review `git diff`\n--- golden\n{expected}\n--- generated\n{actual}",
            path.display()
        );
    }

    fn matrix() -> Matrix {
        Matrix::parse(include_str!("../../../build/images.json")).unwrap()
    }

    fn spec(kind: Kind, local: bool, registry: Option<&str>) -> Spec {
        Spec {
            kind,
            local,
            version: "2.6.3".into(),
            branch: "2.6".into(),
            commit: "0123abc".into(),
            epoch: 1_700_000_000,
            private: false,
            registry: registry.map(String::from),
            only: Vec::new(),
        }
    }

    /// A summary's notes when nothing is added: no terminal, no retry, no clock.
    const PLAIN: SummaryNotes = SummaryNotes {
        standin_kept: false,
        retry: None,
        width: None,
        base: None,
        elapsed: None,
    };

    const NOTES: PlanNotes = PlanNotes {
        launch_size: "m3.medium",
        matrix_public: true,
        cloud_skipped: None,
    };

    #[test]
    fn plans_match_the_golden_files() {
        let official = spec(Kind::Official, false, Some(REGISTRY_PATH));
        let p = template::plan(&matrix(), &official).unwrap();
        golden("plan-official.txt", &plan(&p, &official, NOTES));

        let mut local = spec(Kind::TestEbs, true, None);
        local.only = vec!["us-east-1-1404-hvm".into()];
        let p = template::plan(&matrix(), &local).unwrap();
        let notes = PlanNotes {
            cloud_skipped: Some("!!! CLOUD CHECKS SKIPPED"),
            ..NOTES
        };
        golden("plan-test-ebs-local.txt", &plan(&p, &local, notes));
    }

    #[test]
    fn a_candidate_plan_says_private_and_leaves_the_registry_alone() {
        let mut candidate = spec(Kind::Official, false, None);
        candidate.private = true;
        let p = template::plan(&matrix(), &candidate).unwrap();
        let text = plan(&p, &candidate, NOTES);
        assert!(text.contains("images will be PRIVATE"), "{text}");
        assert!(text.contains("`ami_ids.json` is left alone"), "{text}");
    }

    /// Three builders: one succeeded, one failed with a long error, one refused by name.
    fn record() -> RunRecord {
        let s = spec(Kind::TestEbs, true, None);
        let mut p = template::plan(&matrix(), &s).unwrap();
        p.builders.truncate(3);
        let mut record = RunRecord::new("test-ebs-local-20231114-221320".into(), s, &p, None);
        let names: Vec<String> = record.builders.keys().cloned().collect();
        let ok = record.builders.get_mut(&names[0]).unwrap();
        ok.state = BuilderState::Succeeded;
        ok.amis = vec![Ami {
            builder: names[0].clone(),
            region: "us-east-1".into(),
            id: "ami-11111111".into(),
        }];
        let failed = record.builders.get_mut(&names[1]).unwrap();
        failed.state = BuilderState::Failed;
        failed.error = Some(
            "E: Unable to locate package oracle-java7-installer, so the provisioning of this \
             image stopped at `apt-get install`\nsecond line is not shown"
                .into(),
        );
        let exists = record.builders.get_mut(&names[2]).unwrap();
        exists.state = BuilderState::Exists;
        exists.existing_ami = Some("ami-22222222".into());
        record.attempts.push(Attempt {
            number: 1,
            started: 1_700_000_000,
            builders: names,
            output_log: "build/runs/test-ebs-local-20231114-221320/output-1.log".into(),
            packer_log: "build/runs/test-ebs-local-20231114-221320/packer-1.log".into(),
            interrupted: false,
            finished: true,
            ended: None,
        });
        record
    }

    #[test]
    fn summaries_match_the_golden_files() {
        let notes = SummaryNotes {
            standin_kept: true,
            retry: Some("cargo xtask test-ebs --only a,b --local"),
            width: None,
            base: None,
            elapsed: None,
        };
        golden("summary-unwrapped.txt", &summary(&record(), notes));
        let narrow = SummaryNotes {
            width: Some(80),
            ..notes
        };
        golden("summary-80-columns.txt", &summary(&record(), narrow));
    }

    #[test]
    fn the_launch_count_after_the_cloud_found_images() {
        assert_eq!(
            launches_after_review(4, 1),
            "so 3 of the 4 planned instance(s) will launch: 1 image(s) exist and are reviewed first (a private one that fails its review is deregistered and rebuilt)"
        );
        assert!(launches_after_review(4, 4)
            .starts_with("so nothing is launched unless a review fails: all 4"));
    }

    /// An adopted builder's row names its image once, then why it counts.
    #[test]
    fn an_adopted_builders_row_names_its_image_once() {
        let mut record = record();
        let name = record.builders.keys().nth(1).unwrap().clone();
        record.adopt(&name, "us-east-1", "ami-33333333", Some("official-1"));
        let text = summary(&record, PLAIN);
        let row = text.lines().find(|l| l.starts_with(&name)).unwrap();
        assert_eq!(row.matches("ami-33333333").count(), 1, "{text}");
        assert!(row.contains("(adopted: it already existed"), "{row}");
        assert!(row.contains("made by run `official-1`"), "{row}");
    }

    #[test]
    fn failed_builders_come_first() {
        let text = summary(&record(), PLAIN);
        let row = |state: &str| text.find(&format!("  {state} ")).unwrap();
        assert!(row("FAILED") < row("ok"), "{text}");
        assert!(row("EXISTS") < row("ok"), "{text}");
        assert!(!text.contains("second line"), "{text}");
    }

    #[test]
    fn a_summary_fits_the_terminal_width() {
        for width in [60, 80, 120] {
            let text = summary(
                &record(),
                SummaryNotes {
                    standin_kept: true,
                    width: Some(width),
                    ..PLAIN
                },
            );
            // Every line fits, but for a command line or one word longer than a line.
            for line in text.lines().filter(|l| l.len() > width) {
                let whole = line.starts_with("  ") || words(line.trim()).len() == 1;
                assert!(whole, "{width}: {line:?}\n{text}");
            }
            assert!(text.contains("oracle-java7-installer,"), "{text}");
        }
    }

    /// The summary shows the command's clock as the live view's header does.
    #[test]
    fn the_summary_shows_the_views_clock() {
        let notes = SummaryNotes {
            elapsed: Some(75),
            ..PLAIN
        };
        let text = summary(&record(), notes);
        let line = text.lines().find(|l| l.starts_with("  version ")).unwrap();
        assert!(line.ends_with("  [1:15]"), "{text}");
    }

    #[test]
    fn a_rehearsals_summary_prints_paths_from_where_the_user_is() {
        let notes = SummaryNotes {
            standin_kept: true,
            base: Some("/home/me/repo/target/rehearsal/release-2.6.4/repo/"),
            ..PLAIN
        };
        let text = summary(&record(), notes);
        assert!(
            text.contains("\n  /home/me/repo/target/rehearsal/release-2.6.4/repo/build/runs/test-ebs-local-20231114-221320/output-1.log\n"),
            "{text}"
        );
    }
}
