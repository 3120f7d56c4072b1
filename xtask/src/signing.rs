//! Signed release tags: git's signing configuration (`tag.gpgSign`, `user.signingKey`,
//! `gpg.format`, `gpg.program`, `gpg.ssh.program`) read through git2, the signature made by the
//! configured program over the tag's content, and the tag object written through git2's object
//! database — the bytes `git tag -s` would write, so `git tag -v` verifies them.

use anyhow::{bail, Context, Result};
use git2::{ObjectType, Repository};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `-s`/`--sign` and `--no-sign` of `release` and `tag`; without either, `tag.gpgSign` decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Choice {
    #[default]
    Config,
    Sign,
    NoSign,
}

impl Choice {
    pub fn from_flags(sign: bool, no_sign: bool) -> Choice {
        match (sign, no_sign) {
            (true, _) => Choice::Sign,
            (_, true) => Choice::NoSign,
            _ => Choice::Config,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenPgp,
    Ssh,
}

/// How tags are signed, as configured.
#[derive(Debug, Clone)]
pub struct Signer {
    pub format: Format,
    pub program: String,
    /// `user.signingKey`, or for OpenPGP the committer identity (as git does).
    pub key: String,
    /// Where the key came from, for messages.
    pub key_source: &'static str,
    /// The folder relative key paths are resolved from (the repository's).
    workdir: PathBuf,
}

/// The signer to use, or `None` when tags are not signed. Configuration errors (an unknown
/// `gpg.format`, a missing ssh key) are errors with the fix.
pub fn signer(repo: &Repository, choice: Choice) -> Result<Option<Signer>> {
    let config = repo.config().context("cannot read the git configuration")?;
    let wanted = match choice {
        Choice::Sign => true,
        Choice::NoSign => false,
        Choice::Config => config.get_bool("tag.gpgSign").unwrap_or(false),
    };
    if !wanted {
        return Ok(None);
    }
    let format = match config.get_string("gpg.format").ok().as_deref() {
        None | Some("openpgp") => Format::OpenPgp,
        Some("ssh") => Format::Ssh,
        Some(other) => bail!(
            "git's `gpg.format` is `{other}`: tags can be signed with `openpgp` or `ssh`; \
             run `git config gpg.format ssh` (or `openpgp`), or pass `--no-sign`"
        ),
    };
    let program = match format {
        Format::OpenPgp => config
            .get_string("gpg.openpgp.program")
            .or_else(|_| config.get_string("gpg.program"))
            .unwrap_or_else(|_| "gpg".into()),
        Format::Ssh => config
            .get_string("gpg.ssh.program")
            .unwrap_or_else(|_| "ssh-keygen".into()),
    };
    let workdir = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
    let (key, key_source) = match config.get_string("user.signingKey") {
        Ok(key) if !key.trim().is_empty() => (key, "`user.signingKey`"),
        _ => match format {
            Format::Ssh => bail!(
                "tags are to be signed with ssh (`gpg.format=ssh`) but `user.signingKey` is not set: \
                 run `git config user.signingKey ~/.ssh/id_ed25519.pub` (your key), or pass `--no-sign`"
            ),
            Format::OpenPgp => {
                let me = repo.signature().map_err(|e| {
                    anyhow::anyhow!(
                        "tags are to be signed but neither `user.signingKey` nor a git identity is set ({}): \
                         run `git config user.signingKey KEYID`, or pass `--no-sign`",
                        e.message()
                    )
                })?;
                (
                    format!(
                        "{} <{}>",
                        String::from_utf8_lossy(me.name_bytes()),
                        String::from_utf8_lossy(me.email_bytes())
                    ),
                    "the git identity",
                )
            }
        },
    };
    Ok(Some(Signer {
        format,
        program,
        key,
        key_source,
        workdir,
    }))
}

impl Signer {
    /// For the preflight: the program runs and the key is there. Nothing is signed.
    pub fn check(&self) -> Result<String> {
        let runs = Command::new(&self.program)
            .arg(if self.format == Format::Ssh {
                "-?"
            } else {
                "--version"
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !runs {
            bail!(
                "the signing program `{}` cannot be run: install it, or set `{}`, or pass `--no-sign`",
                self.program,
                match self.format {
                    Format::OpenPgp => "git config gpg.program PATH",
                    Format::Ssh => "git config gpg.ssh.program PATH",
                }
            );
        }
        match self.format {
            Format::Ssh => {
                if self.literal_ssh_key().is_none() {
                    let path = self.key_path();
                    if !path.is_file() {
                        bail!(
                            "the ssh signing key `{}` ({}) does not exist: make one with \
                             `ssh-keygen -t ed25519 -f {}` or point `git config user.signingKey` at yours, \
                             or pass `--no-sign`",
                            path.display(),
                            self.key_source,
                            path.display()
                        );
                    }
                }
                Ok(format!("ssh key `{}` ({})", self.key, self.key_source))
            }
            Format::OpenPgp => {
                let found = Command::new(&self.program)
                    .args(["--batch", "--list-secret-keys", &self.key])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !found {
                    bail!(
                        "`{}` has no secret key for `{}` ({}): import or create one \
                         (`gpg --full-generate-key`), set `git config user.signingKey KEYID`, or pass `--no-sign`",
                        self.program,
                        self.key,
                        self.key_source
                    );
                }
                Ok(format!("OpenPGP key `{}` ({})", self.key, self.key_source))
            }
        }
    }

    /// `key::ssh-ed25519 AAAA...` or a bare public key: git's literal key forms.
    fn literal_ssh_key(&self) -> Option<&str> {
        let key = self.key.trim();
        key.strip_prefix("key::")
            .or_else(|| key.starts_with("ssh-").then_some(key))
    }

    fn key_path(&self) -> PathBuf {
        let key = self.key.trim();
        let expanded = match key.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(rest))
                .unwrap_or_else(|| PathBuf::from(key)),
            None => PathBuf::from(key),
        };
        self.workdir.join(expanded)
    }

    /// The detached, armored signature of `payload`, made by the configured program.
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let mut literal_file = None;
        let mut command = Command::new(&self.program);
        match self.format {
            Format::OpenPgp => {
                command.args(["--status-fd=2", "-bsau", &self.key]);
            }
            Format::Ssh => {
                let key_file = match self.literal_ssh_key() {
                    Some(literal) => {
                        // As git does: the public key in a file, the private one from the agent.
                        let file = std::env::temp_dir()
                            .join(format!("xtask-signing-key-{}.pub", std::process::id()));
                        std::fs::write(&file, format!("{literal}\n"))
                            .context("cannot write the ssh signing key to a temporary file")?;
                        literal_file = Some(file.clone());
                        command.arg("-U");
                        file
                    }
                    None => self.key_path(),
                };
                command
                    .args(["-Y", "sign", "-n", "git", "-f"])
                    .arg(key_file);
            }
        }
        let result = run_with_input(&mut command, payload);
        if let Some(file) = literal_file {
            let _ = std::fs::remove_file(file);
        }
        let output = result.with_context(|| format!("cannot run `{}` to sign", self.program))?;
        if !output.status.success() || output.stdout.is_empty() {
            bail!(
                "`{}` could not sign the tag with {} `{}`: {}",
                self.program,
                self.key_source,
                self.key,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output.stdout)
    }
}

fn run_with_input(command: &mut Command, input: &[u8]) -> std::io::Result<std::process::Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let written = stdin.write_all(input);
    drop(stdin);
    let output = child.wait_with_output()?;
    written?;
    Ok(output)
}

/// Creates the annotated tag `name` on `target` with `message`, signed when `signer` is set:
/// the tag object is written through git2's object database and `refs/tags/NAME` created
/// without force, so an existing tag is never moved.
pub fn create_tag(
    repo: &Repository,
    name: &str,
    target: git2::Oid,
    tagger: &git2::Signature,
    message: &str,
    signer: Option<&Signer>,
) -> Result<git2::Oid> {
    let object = repo
        .find_object(target, None)
        .with_context(|| format!("cannot find `{target}`"))?;
    let kind = object.kind().unwrap_or(ObjectType::Commit);
    let mut payload = tag_payload(&target.to_string(), kind.str(), name, tagger, message);
    if let Some(signer) = signer {
        let signature = signer.sign(&payload)?;
        payload.extend_from_slice(&signature);
    }
    let odb = repo.odb().context("cannot open the git object database")?;
    let id = odb
        .write(ObjectType::Tag, &payload)
        .with_context(|| format!("cannot write the tag object of `{name}`"))?;
    repo.reference(
        &format!("refs/tags/{name}"),
        id,
        false,
        &format!("tag: {name}"),
    )
    .with_context(|| {
        format!("cannot create tag `{name}` (it may exist: tags are never moved or overwritten)")
    })?;
    Ok(id)
}

/// The bytes of an annotated tag object before its signature, as git writes them.
fn tag_payload(
    target: &str,
    kind: &str,
    name: &str,
    tagger: &git2::Signature,
    message: &str,
) -> Vec<u8> {
    let when = tagger.when();
    let offset = when.offset_minutes();
    let sign = if offset < 0 { '-' } else { '+' };
    let mut text = format!(
        "object {target}\ntype {kind}\ntag {name}\ntagger {} <{}> {} {sign}{:02}{:02}\n\n{}",
        String::from_utf8_lossy(tagger.name_bytes()),
        String::from_utf8_lossy(tagger.email_bytes()),
        when.seconds(),
        offset.abs() / 60,
        offset.abs() % 60,
        message.trim_end_matches('\n'),
    );
    text.push('\n');
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_what_git_writes() {
        let tagger = git2::Signature::new(
            "A U Thor",
            "a@example.invalid",
            &git2::Time::new(1_700_000_000, -90),
        )
        .unwrap();
        let payload = tag_payload(
            "0123",
            "commit",
            "release/2.6.9",
            &tagger,
            "Release\n\nbody\n",
        );
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            "object 0123\ntype commit\ntag release/2.6.9\ntagger A U Thor <a@example.invalid> 1700000000 -0130\n\nRelease\n\nbody\n"
        );
    }
}
