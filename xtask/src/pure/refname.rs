//! git's rules for branch names, as `git check-ref-format --branch` applies them. Pure: the
//! rules of git's `refs.c` (`check_refname_component`) and `strbuf_check_branch_ref`, without
//! running git.

/// The rule of git's a branch name breaks; it reads after "the branch name is refused: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBranch {
    #[error("it is empty")]
    Empty,
    #[error("it starts with `-`, which git would read as an option")]
    LeadingDash,
    #[error("`HEAD` is the name git gives the current commit")]
    Head,
    #[error(
        "it contains {}; git allows no spaces, control characters or any of \
         `~ ^ : ? * [ \\` in a ref name",
        shown(*.0)
    )]
    Forbidden(char),
    #[error("it contains `..`, which git reads as a range of commits")]
    DotDot,
    #[error("it contains `@{{`, which git reads as a reflog reference")]
    AtBrace,
    #[error("it starts with `/`")]
    LeadingSlash,
    #[error("it ends with `/`")]
    TrailingSlash,
    #[error("it contains `//` (an empty part between slashes)")]
    EmptyPart,
    #[error("its part `{0}` starts with `.`, which git does not allow (hidden names)")]
    HiddenPart(String),
    #[error("its part `{0}` ends with `.lock`, which git reserves for its lock files")]
    LockPart(String),
    #[error("it ends with `.`")]
    TrailingDot,
}

fn shown(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        c if c.is_control() => format!("the control character `{}`", c.escape_default()),
        c => format!("`{c}`"),
    }
}

/// Checks `name` as a branch name; the error names the rule it breaks.
pub fn check_branch(name: &str) -> Result<(), BadBranch> {
    let bad = match name {
        "" => Some(BadBranch::Empty),
        "HEAD" => Some(BadBranch::Head),
        _ if name.starts_with('-') => Some(BadBranch::LeadingDash),
        _ => name
            .chars()
            .find(|&c| is_forbidden(c))
            .map(BadBranch::Forbidden),
    };
    let bad = bad.or_else(|| {
        [
            (name.contains(".."), BadBranch::DotDot),
            (name.contains("@{"), BadBranch::AtBrace),
            (name.starts_with('/'), BadBranch::LeadingSlash),
            (name.ends_with('/'), BadBranch::TrailingSlash),
            (name.contains("//"), BadBranch::EmptyPart),
        ]
        .into_iter()
        .find_map(|(broken, rule)| broken.then_some(rule))
    });
    let bad = bad.or_else(|| {
        name.split('/').find_map(|part| {
            if part.starts_with('.') {
                Some(BadBranch::HiddenPart(part.to_string()))
            } else if part.ends_with(".lock") {
                Some(BadBranch::LockPart(part.to_string()))
            } else {
                None
            }
        })
    });
    match bad.or_else(|| name.ends_with('.').then_some(BadBranch::TrailingDot)) {
        Some(rule) => Err(rule),
        None => Ok(()),
    }
}

/// Characters git never allows in a ref name (`*` only in refspec patterns, not in names).
fn is_forbidden(c: char) -> bool {
    c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names and `git check-ref-format --branch`'s verdict (git 2.x), rule by rule.
    pub const CASES: &[(&str, bool)] = &[
        ("2.6", true),
        ("dev/2.6", true),
        ("a/b/c", true),
        ("a@b", true),
        ("@", true),
        ("head", true),
        ("a/HEAD", true),
        ("a.lock.b", true),
        ("a{b", true),
        ("é", true),
        ("a+b", true),
        ("", false),
        ("-a", false),
        ("HEAD", false),
        ("a b", false),
        ("a\tb", false),
        ("a\u{7f}b", false),
        ("a~b", false),
        ("a^b", false),
        ("a:b", false),
        ("a?b", false),
        ("a*b", false),
        ("a[b", false),
        ("a\\b", false),
        ("..", false),
        ("a..b", false),
        ("@{x", false),
        ("a@{", false),
        ("@{-1}", false),
        ("/a", false),
        ("a/", false),
        ("a//b", false),
        (".a", false),
        ("a/.b", false),
        ("a/.", false),
        ("a/..", false),
        ("2.6.lock", false),
        ("a.lock/b", false),
        ("a/b.lock", false),
        ("a.", false),
    ];

    #[test]
    fn agrees_with_git_check_ref_format() {
        for (name, valid) in CASES {
            assert_eq!(
                check_branch(name).is_ok(),
                *valid,
                "{name:?}: {:?}",
                check_branch(name)
            );
        }
    }

    #[test]
    fn messages_name_the_rule() {
        let rule = |name: &str| check_branch(name).unwrap_err().to_string();
        assert!(rule("2.6.lock").contains("`2.6.lock` ends with `.lock`"));
        assert!(rule("a//b").contains("`//`"));
        assert!(rule("a/.b").contains("`.b` starts with `.`"));
        assert!(rule("a..b").contains("`..`"));
        assert!(rule("x@{1}").contains("`@{`"));
        assert!(
            rule("a\u{1b}b").contains("`\\u{1b}`"),
            "{}",
            rule("a\u{1b}b")
        );
        assert!(rule("a b").contains("a space"));
        assert!(rule("a/").contains("ends with `/`"));
        assert!(rule("a.").contains("ends with `.`"));
    }
}
