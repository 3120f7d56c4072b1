//! git's rules for branch names, as `git check-ref-format --branch` applies them. Pure: the
//! rules of git's `refs.c` (`check_refname_component`) and `strbuf_check_branch_ref`, without
//! running git.

/// Checks `name` as a branch name; the error names the rule it breaks.
pub fn check_branch(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_string());
    }
    if name.starts_with('-') {
        return Err("it starts with `-`, which git would read as an option".to_string());
    }
    if name == "HEAD" {
        return Err("`HEAD` is the name git gives the current commit".to_string());
    }
    if let Some(bad) = name.chars().find(|&c| is_forbidden(c)) {
        let shown = match bad {
            ' ' => "a space".to_string(),
            c if c.is_control() => format!("the control character `{}`", c.escape_default()),
            c => format!("`{c}`"),
        };
        return Err(format!(
            "it contains {shown}; git allows no spaces, control characters or any of \
             `~ ^ : ? * [ \\` in a ref name"
        ));
    }
    if name.contains("..") {
        return Err("it contains `..`, which git reads as a range of commits".to_string());
    }
    if name.contains("@{") {
        return Err("it contains `@{`, which git reads as a reflog reference".to_string());
    }
    if name.starts_with('/') {
        return Err("it starts with `/`".to_string());
    }
    if name.ends_with('/') {
        return Err("it ends with `/`".to_string());
    }
    if name.contains("//") {
        return Err("it contains `//` (an empty part between slashes)".to_string());
    }
    for part in name.split('/') {
        if part.starts_with('.') {
            return Err(format!(
                "its part `{part}` starts with `.`, which git does not allow (hidden names)"
            ));
        }
        if part.ends_with(".lock") {
            return Err(format!(
                "its part `{part}` ends with `.lock`, which git reserves for its lock files"
            ));
        }
    }
    if name.ends_with('.') {
        return Err("it ends with `.`".to_string());
    }
    Ok(())
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
        let rule = |name: &str| check_branch(name).unwrap_err();
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
