//! Reading and editing the two string literals of `ds0_utils.py` that a release changes.
//!
//! Only the literal's contents change; every other byte of the file stays as it was. Pure.

use crate::pure::refname;

pub const DS0_PATH: &str = "ds0_utils.py";
pub const VERSION_FN: &str = "comboami_version";
pub const BRANCH_FN: &str = "comboami_defaultbranch";

/// Where a function's returned string literal sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Literal {
    /// Byte range of the contents, without the quotes.
    start: usize,
    end: usize,
}

/// Why `ds0_utils.py` cannot be read or edited, or a branch cannot be written into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ds0Error {
    #[error("`{DS0_PATH}` has no function `{name}()`: add `def {name}():\\n    return \"...\"`")]
    NoFunction { name: &'static str },
    #[error(
        "`{DS0_PATH}` defines `{name}()` more than once (lines {first} and {second}): keep one"
    )]
    Twice {
        name: &'static str,
        first: usize,
        second: usize,
    },
    #[error("`{DS0_PATH}` line {line}: cannot read the definition of `{name}()`")]
    Unreadable { name: &'static str, line: usize },
    #[error(
        "`{DS0_PATH}` line {line}: `{name}()` must be a single `return \"...\"` of a plain string \
         literal, so the tool can edit it; found something else"
    )]
    NotALiteral { name: &'static str, line: usize },
    #[error(
        "`{shown}` is not a valid git branch name: {rule} (see `git help check-ref-format`); \
         choose a name like `2.6` or `dev/2.6`"
    )]
    BadBranch {
        shown: String,
        rule: refname::BadBranch,
    },
    #[error(
        "`{shown}` contains `{bad}`: git allows it, but this project's branch names use only \
         letters, digits, `.`, `_`, `-` and `/`, because the name is written into `{DS0_PATH}` \
         and image tags; choose a name like `2.6` or `dev/2.6`"
    )]
    UnsafeBranch { shown: String, bad: char },
    #[error(
        "`{DS0_PATH}` line {line}: `{name}()` returns `{value}`, which no build can use: {problem}; \
         set it with `cargo xtask set-version MAJOR.MINOR.PATCH --branch BRANCH` (like `2.6.4 \
         --branch 2.6`)"
    )]
    BadValue {
        name: &'static str,
        line: usize,
        value: String,
        problem: String,
    },
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Finds the string literal that `def NAME(...)` returns.
fn find_literal(text: &str, name: &'static str) -> Result<Literal, Ds0Error> {
    let needle = format!("def {name}(");
    let defs: Vec<usize> = text
        .match_indices(&needle)
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || text[..i].ends_with('\n') || text[..i].ends_with(' '))
        .collect();
    let def = match defs.as_slice() {
        [] => return Err(Ds0Error::NoFunction { name }),
        [one] => *one,
        [first, second, ..] => {
            return Err(Ds0Error::Twice {
                name,
                first: line_of(text, *first),
                second: line_of(text, *second),
            })
        }
    };
    // The body ends where the next top-level statement starts.
    let line = line_of(text, def);
    let body_start = text[def..]
        .find("):")
        .map(|i| def + i + 2)
        .ok_or(Ds0Error::Unreadable { name, line })?;
    let body_end = text[body_start..]
        .match_indices('\n')
        .map(|(i, _)| body_start + i + 1)
        .find(|&i| {
            text[i..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && c != '#')
        })
        .unwrap_or(text.len());
    let body = &text[body_start..body_end];
    let non_literal = || Ds0Error::NotALiteral { name, line };
    let returns: Vec<usize> = body
        .match_indices("return")
        .map(|(i, _)| i)
        .filter(|&i| {
            let before = body[..i].chars().last();
            before.is_none_or(|c| c.is_whitespace() || c == ':')
        })
        .collect();
    let [ret] = returns.as_slice() else {
        return Err(non_literal());
    };
    let after = &body[ret + "return".len()..];
    let trimmed = after.trim_start_matches([' ', '\t']);
    let quote = trimmed.chars().next().ok_or_else(non_literal)?;
    if quote != '"' && quote != '\'' {
        return Err(non_literal());
    }
    let open = body_start + ret + "return".len() + (after.len() - trimmed.len());
    let contents = &text[open + 1..];
    let close = contents.find(quote).ok_or_else(non_literal)?;
    let value = &contents[..close];
    // Escapes, newlines or a triple quote would make the literal something other than its text.
    if value.contains('\\')
        || value.contains('\n')
        || close == 0 && contents[1..].starts_with(quote)
    {
        return Err(non_literal());
    }
    // Only a comment or nothing may follow on that line.
    let rest = contents[close + 1..].lines().next().unwrap_or("").trim();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err(non_literal());
    }
    Ok(Literal {
        start: open + 1,
        end: open + 1 + close,
    })
}

/// The version and branch the file currently holds.
pub fn read(text: &str) -> Result<(String, String), Ds0Error> {
    let version = find_literal(text, VERSION_FN)?;
    let branch = find_literal(text, BRANCH_FN)?;
    Ok((
        text[version.start..version.end].to_string(),
        text[branch.start..branch.end].to_string(),
    ))
}

/// The version and branch the file holds, refused (naming the line) unless the version is a
/// semantic version and the branch a safe branch name: what a build bakes and names its images
/// after, so what `set-version` would have accepted.
pub fn read_checked(text: &str) -> Result<(String, String), Ds0Error> {
    let (version, branch) = read(text)?;
    let bad = |name: &'static str, value: &str, problem: String| {
        let literal = find_literal(text, name).expect("read found it");
        Ds0Error::BadValue {
            name,
            line: line_of(text, literal.start),
            value: value.chars().flat_map(char::escape_debug).collect(),
            problem,
        }
    };
    if let Err(e) = crate::pure::version::parse(&version) {
        return Err(bad(
            VERSION_FN,
            &version,
            format!("not a semantic version ({})", e.reason),
        ));
    }
    if let Err(e) = check_branch(&branch) {
        let problem = match e {
            Ds0Error::BadBranch { rule, .. } => format!("not a valid git branch name: {rule}"),
            Ds0Error::UnsafeBranch { bad, .. } => format!("`{bad}` is not allowed in a branch name here (only letters, digits, `.`, `_`, `-` and `/`)"),
            other => other.to_string(),
        };
        return Err(bad(BRANCH_FN, &branch, problem));
    }
    Ok((version, branch))
}

/// A branch name git accepts (`git check-ref-format --branch`) and that is safe to put in a
/// Python literal, a shell variable and an image tag: letters, digits, `.`, `_`, `-`, `/`.
pub fn check_branch(branch: &str) -> Result<(), Ds0Error> {
    let shown: String = branch.chars().flat_map(char::escape_debug).collect();
    if let Err(rule) = refname::check_branch(branch) {
        return Err(Ds0Error::BadBranch { shown, rule });
    }
    if let Some(bad) = branch
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "._-/".contains(c)))
    {
        return Err(Ds0Error::UnsafeBranch { shown, bad });
    }
    Ok(())
}

/// Returns the new file text with the version (and, when given, the branch) replaced.
pub fn edit(text: &str, version: &str, branch: Option<&str>) -> Result<String, Ds0Error> {
    let mut edits = vec![(find_literal(text, VERSION_FN)?, version)];
    let branch_literal = find_literal(text, BRANCH_FN)?;
    if let Some(branch) = branch {
        check_branch(branch)?;
        edits.push((branch_literal, branch));
    }
    // Apply back to front so earlier offsets stay valid.
    edits.sort_by_key(|(literal, _)| std::cmp::Reverse(literal.start));
    let mut out = text.to_string();
    for (literal, value) in edits {
        out.replace_range(literal.start..literal.end, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../ds0_utils.py");

    #[test]
    fn reads_the_shipped_file() {
        let (version, branch) = read(SHIPPED).unwrap();
        assert!(semver::Version::parse(&version).is_ok());
        assert!(!branch.is_empty());
    }

    #[test]
    fn edits_only_the_literals() {
        let text = "import os\n\ndef comboami_version():\n    return '2.6.3'  # baked\n\n\
                    def comboami_defaultbranch():\n    return \"2.6\"\n\nX = 1\n";
        let out = edit(text, "2.6.4-beta1", Some("dev/2.6")).unwrap();
        assert_eq!(
            out,
            text.replace("2.6.3", "2.6.4-beta1")
                .replace("\"2.6\"", "\"dev/2.6\"")
        );
        let same = edit(text, "2.6.3", None).unwrap();
        assert_eq!(same, text);
    }

    #[test]
    fn one_line_definitions() {
        let text = "def comboami_version(): return \"1.0.0\"\ndef comboami_defaultbranch(): return \"1.0\"\n";
        assert_eq!(read(text).unwrap(), ("1.0.0".into(), "1.0".into()));
    }

    #[test]
    fn refusals_name_the_problem() {
        let missing = "def comboami_defaultbranch():\n    return '2.6'\n";
        assert!(edit(missing, "1.0.0", None)
            .unwrap_err()
            .to_string()
            .contains("no function `comboami_version()`"));
        let twice = format!("{SHIPPED}\ndef comboami_version():\n    return '9.9.9'\n");
        assert!(edit(&twice, "1.0.0", None)
            .unwrap_err()
            .to_string()
            .contains("more than once"));
        let computed =
            "def comboami_version():\n    return VERSION\ndef comboami_defaultbranch():\n    return '2.6'\n";
        assert!(edit(computed, "1.0.0", None)
            .unwrap_err()
            .to_string()
            .contains("plain string literal"));
        let concatenated = "def comboami_version():\n    return '2.' + '6'\ndef comboami_defaultbranch():\n    return '2.6'\n";
        assert!(edit(concatenated, "1.0.0", None).is_err());
        assert!(check_branch("bad branch").is_err() && check_branch("a\"b").is_err());
    }

    #[test]
    fn a_build_refuses_a_version_or_branch_set_version_would_refuse() {
        assert!(read_checked(SHIPPED).is_ok());
        let file = |version: &str, branch: &str| {
            format!("def comboami_version():\n    return \"{version}\"\n\ndef comboami_defaultbranch():\n    return \"{branch}\"\n")
        };
        let error = read_checked(&file("v2.6.4", "2.6"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("`ds0_utils.py` line 2: `comboami_version()` returns `v2.6.4`, which no build can use: not a semantic version"),
            "{error}"
        );
        assert!(
            error.contains("`cargo xtask set-version MAJOR.MINOR.PATCH --branch BRANCH`"),
            "{error}"
        );
        let error = read_checked(&file("2.6.4", "a..b"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("`ds0_utils.py` line 5: `comboami_defaultbranch()` returns `a..b`, which no build can use: not a valid git branch name"),
            "{error}"
        );
        let error = read_checked(&file("2.6.4", "2.6+x"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`+` is not allowed in a branch name here"),
            "{error}"
        );
        assert_eq!(
            read_checked(&file("2.6.4-beta1", "dev/2.6")).unwrap(),
            ("2.6.4-beta1".to_string(), "dev/2.6".to_string())
        );
    }
}
