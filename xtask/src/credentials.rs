//! `build/local.json`: the user's AWS credentials and signing files, checked before anything is
//! launched. Secret values stay in memory: they reach Packer only through the var-file path
//! (never a command line) and only leave this module inside a [`Masker`].

use crate::pure::json;
use crate::pure::mask::Masker;
use crate::pure::refusal::Refusal;
use crate::pure::template::CREDENTIAL_VARIABLES;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

pub const LOCAL_JSON: &str = "build/local.json";
pub const LOCAL_DEFAULT_JSON: &str = "build/local-default.json";

/// The standard AWS environment variables that may stand in for the keys of `local.json`.
const ENV_KEYS: [(&str, &str); 2] = [
    ("aws_access_key", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_key", "AWS_SECRET_ACCESS_KEY"),
];

pub struct Credentials {
    /// The var-file Packer reads.
    pub var_file: PathBuf,
    /// Masks every secret value: those of the var-file and of the AWS environment.
    pub masker: Masker,
    /// `launch_size` when the var-file overrides it.
    pub launch_size: Option<String>,
    /// `aws_account_id`: the account the credentials must belong to.
    pub account_id: Option<String>,
    pub warnings: Vec<String>,
}

/// The variables of a var-file. It holds secrets, so no message quotes a value from it: only
/// positions, JSON kinds and keys that look like variable names.
fn read_vars(path: &Path, shown: &str) -> Result<BTreeMap<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{shown}`"))?;
    let fix = format!("compare it with `{LOCAL_DEFAULT_JSON}`");
    let value: Value = json::parse(&text).map_err(|e| {
        anyhow::anyhow!(
            "`{shown}` is not a JSON object of variables: {}; {fix}",
            e.without_values(is_variable_name)
        )
    })?;
    let Value::Object(vars) = value else {
        bail!(
            "`{shown}` holds {}, not a JSON object of variables like \
             `{{\"aws_access_key\": \"...\", ...}}`; {fix}",
            kind_of(&value)
        );
    };
    let mut problems = Vec::new();
    for (key, value) in &vars {
        if !value.is_string() {
            let name = match is_variable_name(key) {
                true => format!("field `{key}`"),
                false => "a field whose name is not a variable name".to_string(),
            };
            problems.push(format!(
                "`{shown}` {name} holds {}, not a string: put the value in double quotes",
                kind_of(value)
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(vars.into_iter().collect())
}

/// Names like `aws_secret_key`; a key that is not one may be a misplaced secret, never shown.
fn is_variable_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "`null`",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(vars: &BTreeMap<String, Value>, key: &str) -> String {
    vars.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The AWS environment variables whose values are secret.
const SECRET_VARIABLES: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Every secret the environment holds for AWS (the process's, and what [`resolve_profile`] put
/// into the shell's), to be masked wherever the tool prints or writes.
fn environment_secrets(sh: &Shell) -> Vec<String> {
    SECRET_VARIABLES
        .iter()
        .filter_map(|k| sh.var(k).ok())
        .filter(|v| !v.is_empty())
        .collect()
}

fn shell_var(sh: &Shell, key: &str) -> Option<String> {
    sh.var(key).ok().filter(|v| !v.is_empty())
}

/// Whether `build/local.json` holds real (non-placeholder) keys: then they are what Packer and
/// the `aws` CLI use.
fn has_file_keys(root: &Path) -> bool {
    let Ok(vars) = read_vars(&root.join(LOCAL_JSON), LOCAL_JSON) else {
        return false;
    };
    let defaults =
        read_vars(&root.join(LOCAL_DEFAULT_JSON), LOCAL_DEFAULT_JSON).unwrap_or_default();
    ["aws_access_key", "aws_secret_key"].iter().all(|k| {
        let value = string(&vars, k);
        !value.is_empty() && value != string(&defaults, k)
    })
}

/// The static keys of a profile, through AWS CLI v1's `aws configure get`.
fn profile_static_keys(
    sh: &Shell,
    program: &str,
    profile: &str,
) -> Result<(String, String, String)> {
    let get = |key: &str| -> String {
        cmd!(sh, "{program} configure get {key} --profile {profile}")
            .quiet()
            .ignore_status()
            .ignore_stderr()
            .read()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let (access, secret) = (get("aws_access_key_id"), get("aws_secret_access_key"));
    if access.is_empty() || secret.is_empty() {
        bail!(
            "`AWS_PROFILE={profile}` has no static keys, and this `aws` (version 1) cannot resolve \
             SSO or role profiles (`aws configure export-credentials` needs AWS CLI v2.9 or \
             newer): install AWS CLI v2, or run `aws sso login --profile {profile}` with it"
        );
    }
    Ok((access, secret, get("aws_session_token")))
}

/// Named profiles and SSO: when `AWS_PROFILE` is set and neither `build/local.json` nor the
/// environment holds keys, the profile is resolved once, through
/// `aws configure export-credentials`, into the shell's environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), which Packer and every later `aws` call of
/// this command inherit. `aws` is `program`. Returns how the keys were found, for the
/// preflight.
pub fn resolve_profile(sh: &Shell, root: &Path, program: &str) -> Result<Option<String>> {
    let Some(profile) = shell_var(sh, "AWS_PROFILE") else {
        return Ok(None);
    };
    if has_file_keys(root) {
        return Ok(Some(format!(
            "the keys of `{LOCAL_JSON}` (they take precedence over `AWS_PROFILE={profile}`)"
        )));
    }
    if shell_var(sh, "AWS_ACCESS_KEY_ID").is_some() {
        return Ok(Some(format!(
            "`AWS_ACCESS_KEY_ID` (it takes precedence over `AWS_PROFILE={profile}`)"
        )));
    }
    let output = cmd!(
        sh,
        "{program} configure export-credentials --profile {profile} --format process"
    )
    .quiet()
    .ignore_status()
    .output()
    .with_context(|| format!("cannot run `{program}` to resolve `AWS_PROFILE={profile}`"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let (access, secret, token, how) = if output.status.success() {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Exported {
            access_key_id: String,
            secret_access_key: String,
            #[serde(default)]
            session_token: Option<String>,
        }
        let exported: Exported =
            json::parse(&String::from_utf8_lossy(&output.stdout)).map_err(|_| {
                anyhow::anyhow!(
                "`aws configure export-credentials --profile {profile}` did not print credentials"
            )
            })?;
        (
            exported.access_key_id,
            exported.secret_access_key,
            exported.session_token.unwrap_or_default(),
            "`aws configure export-credentials`",
        )
    } else if stderr.contains("Invalid choice") || stderr.contains("invalid choice") {
        // AWS CLI v1 has no `export-credentials`: static keys of the profile still work.
        let (access, secret, token) = profile_static_keys(sh, program, &profile)?;
        (
            access,
            secret,
            token,
            "the profile's keys (`aws configure get`)",
        )
    } else {
        let message = Masker::new(environment_secrets(sh).iter().map(String::as_str))
            .mask(stderr.trim())
            .into_owned();
        bail!(
            "cannot resolve `AWS_PROFILE={profile}` through `aws configure export-credentials`: \
             {message} (for SSO run `aws sso login --profile {profile}` first)"
        );
    };
    sh.set_var("AWS_ACCESS_KEY_ID", &access);
    sh.set_var("AWS_SECRET_ACCESS_KEY", &secret);
    // Empty stands for unset (xshell cannot remove a variable): the AWS tools read both alike,
    // except the Python `aws`, from whose environment `Aws` removes an empty `AWS_PROFILE`.
    sh.set_var("AWS_SESSION_TOKEN", &token);
    // The keys are resolved: nothing after this resolves the profile again.
    sh.set_var("AWS_PROFILE", "");
    Ok(Some(format!(
        "profile `{profile}`, resolved once through {how}"
    )))
}

/// Loads and checks `build/local.json` for a real build; `instance_store` builds also need the
/// X.509 files. Every problem is reported at once.
pub fn load(sh: &Shell, root: &Path, instance_store: bool) -> Result<Credentials> {
    let path = root.join(LOCAL_JSON);
    if !path.is_file() {
        return Err(missing().into());
    }
    let vars = read_vars(&path, LOCAL_JSON)?;
    let defaults = read_vars(&root.join(LOCAL_DEFAULT_JSON), LOCAL_DEFAULT_JSON)?;
    let mut problems = Vec::new();

    let placeholders = placeholders(&vars, &defaults);
    let unknown = unknown_fields(&vars);
    let misspelled = unknown.len();
    problems.extend(unknown);
    let account = string(&vars, "aws_account_id");
    let digits = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if !account.is_empty() && !placeholders.contains(&"aws_account_id") && !digits {
        problems.push(format!(
            "`{LOCAL_JSON}` field `aws_account_id` is not a 12-digit AWS account id (the value is not shown: it may be a misplaced secret)"
        ));
    }
    problems.extend(key_problems(sh, &vars, &placeholders));
    if instance_store {
        problems.extend(signing_problems(root, &vars, &placeholders));
    }
    if !problems.is_empty() {
        // A misspelled name is fixed by its own correction, which the line above names.
        let rename = format!("correct the field names above in `{LOCAL_JSON}` (to the ones it suggests, or the names `{LOCAL_DEFAULT_JSON}` uses)");
        let fix = match misspelled {
            0 => load_fix(&placeholders),
            n if n == problems.len() => rename,
            _ => format!("{rename}; {}", load_fix(&placeholders)),
        };
        return Err(Refusal {
            what: problems.join("\n"),
            fix,
        }
        .into());
    }

    let mut warnings = Vec::new();
    if let Ok(meta) = std::fs::metadata(&path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "`{LOCAL_JSON}` holds secrets but is readable by group or others (mode {mode:o}): run `chmod 600 {LOCAL_JSON}`"
            ));
        }
    }
    let mut secrets: Vec<String> = ENV_KEYS.iter().map(|(k, _)| string(&vars, k)).collect();
    secrets.extend(environment_secrets(sh));
    let account_id = Some(string(&vars, "aws_account_id"))
        .filter(|a| !a.is_empty() && *a != string(&defaults, "aws_account_id"));
    Ok(Credentials {
        var_file: path,
        account_id,
        masker: Masker::new(secrets.iter().map(String::as_str)),
        launch_size: vars
            .get("launch_size")
            .and_then(|v| v.as_str())
            .map(String::from),
        warnings,
    })
}

/// What instance-store builds need besides the keys: the account id and the signing files.
fn signing_problems(
    root: &Path,
    vars: &BTreeMap<String, Value>,
    placeholders: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    if string(vars, "aws_account_id").is_empty() {
        problems.push(format!(
            "`{LOCAL_JSON}` field `aws_account_id` is empty: instance-store bundles need your 12-digit account id"
        ));
    }
    for key in ["aws_signing_cert", "aws_signing_key"] {
        let file = string(vars, key);
        if file.is_empty() {
            problems.push(format!(
                "`{LOCAL_JSON}` field `{key}` is empty: instance-store builds sign their bundles with it"
            ));
            continue;
        }
        if placeholders.contains(&key) {
            continue;
        }
        if let Err(e) = std::fs::File::open(root.join(&file)) {
            problems.push(format!(
                "`{LOCAL_JSON}` field `{key}`: cannot read `{file}` ({e}); instance-store builds sign their bundles with it"
            ));
        }
    }
    problems
}

fn missing() -> Refusal {
    Refusal {
        what: format!(
            "`{LOCAL_JSON}` not found: copy `{LOCAL_DEFAULT_JSON}` to `{LOCAL_JSON}` and fill \
             in your AWS account id and the paths of your X.509 signing certificate and key; \
             its key fields may go when `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or \
             `AWS_PROFILE` provide the keys"
        ),
        fix: format!(
            "run `cp {LOCAL_DEFAULT_JSON} {LOCAL_JSON} && chmod 600 {LOCAL_JSON}` and edit \
             its values as they say (or rehearse with `--local`, which needs no credentials)"
        ),
    }
}

/// Fields no template declares: a misspelled name would otherwise read as a missing one.
fn unknown_fields(vars: &BTreeMap<String, Value>) -> Vec<String> {
    let known: Vec<&str> = CREDENTIAL_VARIABLES
        .iter()
        .chain(&crate::pure::template::OTHER_VARIABLES)
        .copied()
        .collect();
    vars.keys()
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| {
            // A name that is not a variable name may be a misplaced secret: never shown.
            let shown = match is_variable_name(key) {
                true => format!("field `{key}`"),
                false => "a field whose name is not a variable name".to_string(),
            };
            let closest = known
                .iter()
                .find(|k| is_variable_name(key) && edits(key, k) <= 2)
                .map_or(String::new(), |k| format!(": did you mean `{k}`?"));
            format!(
                "`{LOCAL_JSON}` has {shown}, which no template declares (known: {}){closest}",
                known.join(", ")
            )
        })
        .collect()
}

/// How many single-character edits turn `a` into `b` (Levenshtein).
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The variables that still hold the template's placeholder value.
fn placeholders(
    vars: &BTreeMap<String, Value>,
    defaults: &BTreeMap<String, Value>,
) -> Vec<&'static str> {
    CREDENTIAL_VARIABLES
        .iter()
        .copied()
        .filter(|k| {
            let value = string(vars, k);
            !value.is_empty() && value == string(defaults, k)
        })
        .collect()
}

/// Placeholders left in, and keys neither the file nor the environment holds.
fn key_problems(sh: &Shell, vars: &BTreeMap<String, Value>, placeholders: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    if !placeholders.is_empty() {
        problems.push(format!(
            "`{LOCAL_JSON}` still has the placeholder values of `{LOCAL_DEFAULT_JSON}` in {}: fill them in",
            placeholders.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    for (key, env) in ENV_KEYS {
        if string(vars, key).is_empty() && shell_var(sh, env).is_none() {
            problems.push(format!(
                "`{LOCAL_JSON}` has no `{key}` and `{env}` is not set: set one of them, \
                 or name a profile with `AWS_PROFILE` (temporary credentials are best)"
            ));
        }
    }
    problems
}

/// What fixes a refused `local.json`: placeholder keys are deleted (the environment or a
/// profile provides the keys) or filled in; everything else is filled in.
fn load_fix(placeholders: &[&str]) -> String {
    let placeholder_keys: Vec<&str> = ENV_KEYS
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| placeholders.contains(key))
        .collect();
    let rest = format!("fill in the other fields named above (`{LOCAL_DEFAULT_JSON}` shows them)");
    if placeholder_keys.is_empty() {
        return format!("{rest}; the keys may also come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or `AWS_PROFILE`");
    }
    let keys = placeholder_keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(" and ");
    format!(
        "delete the {keys} lines from `{LOCAL_JSON}` to take the keys from \
         `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or `AWS_PROFILE` (preferred), or put your \
         keys there; {rest}"
    )
}

/// Masks every secret the tool may know of in `root`: the AWS environment's and the keys of
/// `build/local.json` when it can be read. For messages printed after a failure, so it never
/// fails itself.
pub fn masker_for_messages(root: &Path) -> Masker {
    let mut secrets: Vec<String> = SECRET_VARIABLES
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .filter(|v| !v.is_empty())
        .collect();
    if let Ok(text) = std::fs::read_to_string(root.join(LOCAL_JSON)) {
        if let Ok(Value::Object(vars)) = json::parse::<Value>(&text) {
            secrets.extend(
                ENV_KEYS
                    .iter()
                    .filter_map(|(key, _)| vars.get(*key)?.as_str().map(String::from)),
            );
        }
    }
    // Masking a short value would garble messages; no real key is that short.
    Masker::new(secrets.iter().map(String::as_str).filter(|s| s.len() >= 8))
}

/// The stand-in's dummy credentials, masked like real ones so local runs exercise the masking.
pub fn local(sh: &Shell, var_file: PathBuf) -> Result<Credentials> {
    let vars = read_vars(&var_file, &var_file.display().to_string())?;
    let mut secrets: Vec<String> = ENV_KEYS.iter().map(|(k, _)| string(&vars, k)).collect();
    secrets.extend(environment_secrets(sh));
    Ok(Credentials {
        masker: Masker::new(secrets.iter().map(String::as_str)),
        account_id: Some(string(&vars, "aws_account_id")).filter(|a| !a.is_empty()),
        var_file,
        launch_size: None,
        warnings: Vec::new(),
    })
}

/// Environment for the `aws` CLI: the keys of `build/local.json` when it has real ones; otherwise
/// nothing, so the standard AWS environment and configuration apply. Secrets are masked.
pub fn for_aws_cli(sh: &Shell, root: &Path) -> Result<(Vec<(&'static str, String)>, Masker)> {
    let path = root.join(LOCAL_JSON);
    let mut environment = Vec::new();
    let mut secrets = environment_secrets(sh);
    if path.is_file() {
        let vars = read_vars(&path, LOCAL_JSON)?;
        let defaults =
            read_vars(&root.join(LOCAL_DEFAULT_JSON), LOCAL_DEFAULT_JSON).unwrap_or_default();
        let real = |key: &str| {
            let value = string(&vars, key);
            (!value.is_empty() && value != string(&defaults, key)).then_some(value)
        };
        if let (Some(access), Some(secret)) = (real("aws_access_key"), real("aws_secret_key")) {
            secrets.push(access.clone());
            secrets.push(secret.clone());
            environment.push(("AWS_ACCESS_KEY_ID", access));
            environment.push(("AWS_SECRET_ACCESS_KEY", secret));
        }
    }
    Ok((environment, Masker::new(secrets.iter().map(String::as_str))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelled_field_is_named_with_the_one_meant() {
        let vars: BTreeMap<String, Value> = [
            ("aws_acount_id", "123456789012"),
            ("aws_secret_key", "x"),
            ("launch_size", "m3.large"),
            ("wJalrXUtnFEMI/K7MDENG", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
        let problems = unknown_fields(&vars);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with(
                "`build/local.json` has field `aws_acount_id`, which no template declares"
            ) && problems[0].ends_with("did you mean `aws_account_id`?"),
            "{problems:#?}"
        );
        assert!(problems[1].contains("a field whose name is not a variable name"));
        assert!(!problems.concat().contains("wJalr"), "{problems:#?}");
        assert_eq!(edits("aws_acount_id", "aws_account_id"), 1);
        assert_eq!(edits("kitten", "sitting"), 3);
    }
}
