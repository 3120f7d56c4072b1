//! The local AWS stand-in: a moto server (EC2 and S3) and an unprivileged sshd on loopback that
//! plays the launched instance. Used by `--local` and by `cargo xtask local up|down|status`.
//!
//! Invariants: everything listens on 127.0.0.1 only; everything this module starts for one
//! command is stopped when that command ends (the `Drop` of [`Standin`]), also on errors and
//! Ctrl-C; a stand-in started by `local up` lives until `local down`.

use crate::lock;
use crate::pure::base_images;
use crate::pure::matrix::Matrix;
use crate::pure::template;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xshell::{cmd, Shell};

/// What the stand-in's virtualenv holds: the versions it is tested with, pinned so every
/// machine rehearses against the same stand-in.
const REQUIREMENTS: &str = "moto[server]==5.2.5 awscli==1.46.3";
/// Dummy credentials of the stand-in: moto accepts anything.
pub const ACCESS_KEY: &str = "AKIASTANDINLOCAL0000";
pub const SECRET_KEY: &str = "standin/local/secret/0000000000000000000";
pub const ACCOUNT_ID: &str = "123456789012";
const KEY_PAIR: &str = "xtask-standin";
/// Starts moto's server with the AWS calls moto lacks patched in (see `build/README.md`).
const LAUNCHER: &str = "build/local/standin_server.py";
/// Keeps the virtualenv's AWS CLI loaded and forks it per call: a local rehearsal makes
/// hundreds of `aws` calls, each half a second of CPU when started cold.
const AWS_SERVER: &str = "build/local/aws_warm.py";

/// What a local build rehearses in the stand-in's provisioning, by builder name (from the
/// `XTASK_LOCAL_FAIL`, `XTASK_LOCAL_WRONG_VERSION` and `XTASK_LOCAL_SLOW` variables).
#[derive(Debug, Clone, Default)]
pub struct Rehearsed {
    pub fail: Vec<String>,
    pub wrong_version: Vec<String>,
    pub slow: Vec<String>,
}

/// The stand-in's state, kept in `target/standin/state.json` while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Standin {
    pub dir: PathBuf,
    pub venv: PathBuf,
    pub moto_port: u16,
    pub ssh_port: u16,
    pub moto_pid: u32,
    pub sshd_pid: u32,
    /// The warm `aws` server ([`AWS_SERVER`]); 0 in the state of a stand-in started before it.
    #[serde(default)]
    pub aws_pid: u32,
    /// Whether this process started it (and so stops it on drop).
    #[serde(skip)]
    owned: bool,
}

pub fn standin_dir(root: &Path) -> PathBuf {
    root.join("target/standin")
}

fn state_file(root: &Path) -> PathBuf {
    standin_dir(root).join("state.json")
}

/// Where moto and awscli are installed: `target/standin-venv`, or `XTASK_STANDIN_VENV` (the
/// test suite shares one across its temporary repositories).
pub fn venv_dir(root: &Path) -> PathBuf {
    match std::env::var_os("XTASK_STANDIN_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => root.join("target/standin-venv"),
    }
}

impl Standin {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_port)
    }

    /// The stand-in's `aws`: the virtualenv's AWS CLI, served warm (a script in the stand-in's
    /// folder that runs a call through [`AWS_SERVER`]).
    pub fn aws_cli(&self) -> PathBuf {
        self.dir.join("aws")
    }

    pub fn var_file(&self) -> PathBuf {
        self.dir.join("local.json")
    }

    /// What the template needs to aim a build of the run in `run_dir` at the stand-in: the
    /// stand-in's work goes in `run_dir/standin/`, the simulated image roots (kept after the
    /// build) in `run_dir/image-root/`.
    pub fn template_local(
        &self,
        root: &Path,
        run_dir: &Path,
        rehearsed: Rehearsed,
    ) -> template::Local {
        let script = |name: &str| root.join("build/local").join(name).display().to_string();
        let work_dir = run_dir.join("standin");
        let world = crate::simulated::World::new(run_dir);
        template::Local {
            ec2_endpoint: self.endpoint(),
            ssh_port: self.ssh_port,
            key_pair_name: KEY_PAIR.to_string(),
            private_key_file: self.dir.join("id_rsa").display().to_string(),
            work_dir: work_dir.display().to_string(),
            image_roots: world.image_roots.display().to_string(),
            standin_bin: world.bin.display().to_string(),
            comboami_fixture: world.comboami.display().to_string(),
            downloads: world.downloads.display().to_string(),
            bundle_vol_script: script("bundle-vol.sh"),
            bundle_upload_script: script("bundle-upload.sh"),
            record_file: work_dir.join("standin-record.txt").display().to_string(),
            fail_builders: rehearsed.fail,
            wrong_version_builders: rehearsed.wrong_version,
            slow_builders: rehearsed.slow,
        }
    }

    /// Tells the stand-in which cloud failures to rehearse, from this command's variables
    /// (`XTASK_LOCAL_MISSING_AMI`, `XTASK_LOCAL_DEPRECATED_AMI`, `XTASK_LOCAL_BLOCK_PUBLIC`,
    /// `XTASK_LOCAL_ACCOUNT`): the
    /// launcher reads `rehearsal.json` on every call, so a kept stand-in follows each command.
    /// Returns what is rehearsed, for the user.
    pub fn rehearse(&self, sh: &Shell) -> Result<Vec<String>> {
        let list = |name: &str| {
            sh.var(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let missing = list("XTASK_LOCAL_MISSING_AMI");
        let deprecated = list("XTASK_LOCAL_DEPRECATED_AMI");
        let blocked = list("XTASK_LOCAL_BLOCK_PUBLIC");
        let account = sh.var("XTASK_LOCAL_ACCOUNT").unwrap_or_default();
        let mut said = Vec::new();
        if !missing.is_empty() {
            said.push(format!(
                "deregistered base images (`XTASK_LOCAL_MISSING_AMI`): {}",
                missing.join(", ")
            ));
        }
        if !deprecated.is_empty() {
            said.push(format!(
                "deprecated base images (`XTASK_LOCAL_DEPRECATED_AMI`): {}",
                deprecated.join(", ")
            ));
        }
        if !blocked.is_empty() {
            said.push(format!(
                "block public access for AMIs (`XTASK_LOCAL_BLOCK_PUBLIC`) in {}",
                blocked.join(", ")
            ));
        }
        if !account.is_empty() {
            said.push(format!(
                "credentials of account {account} (`XTASK_LOCAL_ACCOUNT`)"
            ));
        }
        let text = serde_json::json!({
            "missing_amis": missing,
            "deprecated_amis": deprecated,
            "block_public": blocked,
            "account": account,
        })
        .to_string();
        let file = self.dir.join("rehearsal.json");
        let temporary = self
            .dir
            .join(format!(".rehearsal.json.{}", std::process::id()));
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &file))
            .with_context(|| format!("cannot write `{}`", file.display()))?;
        Ok(said)
    }

    pub fn is_alive(&self) -> bool {
        pid_alive(self.moto_pid)
            && pid_alive(self.sshd_pid)
            && pid_alive(self.aws_pid)
            && listens(self.moto_pid, self.moto_port)
            && listens(self.sshd_pid, self.ssh_port)
    }

    /// The stand-in that `local up` keeps running, if there is one.
    pub fn running(root: &Path) -> Option<Standin> {
        let text = std::fs::read_to_string(state_file(root)).ok()?;
        let standin: Standin = crate::pure::json::parse(&text).ok()?;
        standin.is_alive().then_some(standin)
    }

    /// The running stand-in, or a new one that stops when the returned value is dropped.
    pub fn attach_or_start(sh: &Shell, root: &Path, matrix: &Matrix) -> Result<Standin> {
        match Standin::running(root) {
            Some(standin) => {
                eprintln!(
                    "local: using the running stand-in\n  EC2/S3 at {}, SSH on port {}",
                    standin.endpoint(),
                    standin.ssh_port
                );
                Ok(standin)
            }
            None => {
                let standin = Standin::start(sh, root, matrix, false)?;
                eprintln!(
                    "local: started a stand-in for this command\n  EC2/S3 at {}, SSH on port {}",
                    standin.endpoint(),
                    standin.ssh_port
                );
                Ok(standin)
            }
        }
    }

    /// Starts moto and sshd. With `keep`, they outlive this process and are recorded for
    /// `local down`.
    pub fn start(sh: &Shell, root: &Path, matrix: &Matrix, keep: bool) -> Result<Standin> {
        let venv = ensure_venv(sh, root)?;
        let sshd = find_sshd()?;
        let dir = standin_dir(root);
        // One recorded but no longer whole (a server died, or it predates the `aws` server)
        // is stopped first: its folder is about to go.
        stop_running(root)?;
        // A fresh folder every start: keys, seeds and logs of an earlier stand-in are stale.
        let _ = std::fs::remove_dir_all(&dir);
        sh.create_dir(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let user = current_user(sh)?;
        make_keys(sh, &dir)?;
        let servers = Servers {
            dir: &dir,
            venv: &venv,
            sshd: &sshd,
            user: &user,
        };
        // Ports are picked free, but another program (another stand-in) may take one before
        // the server binds it: that server fails to start, and new ports are tried.
        let mut tries = 0;
        loop {
            tries += 1;
            match servers.launch(sh, root, matrix, keep) {
                Err(e) if tries < 3 && format!("{e:#}").contains(PORT_TAKEN) => {
                    eprintln!(
                        "local: a port was taken before the stand-in bound it; trying others"
                    );
                }
                result => return result,
            }
        }
    }
    /// Waits for moto (which imports the key pair as it starts), sshd and the `aws` server,
    /// writes the var file (and, kept, the state `local down` reads).
    fn get_ready(&self, root: &Path, user: &str, keep: bool) -> Result<()> {
        let dir = &self.dir;
        wait_for_port(self.moto_port, "moto", self.moto_pid, &dir.join("moto.log"))?;
        wait_for_port(self.ssh_port, "sshd", self.sshd_pid, &dir.join("sshd.log"))?;
        wait_for_file(
            &dir.join("aws.sock"),
            "the `aws` server",
            self.aws_pid,
            &dir.join("aws.log"),
        )?;
        let vars = serde_json::json!({
            "aws_account_id": ACCOUNT_ID,
            "aws_access_key": ACCESS_KEY,
            "aws_secret_key": SECRET_KEY,
            "aws_signing_cert": dir.join("cert.pem"),
            "aws_signing_key": dir.join("signing-key.pem"),
            "ssh_user": user,
            "launch_size": "m3.medium",
        });
        std::fs::write(dir.join("cert.pem"), "stand-in X.509 certificate\n")?;
        std::fs::write(dir.join("signing-key.pem"), "stand-in X.509 key\n")?;
        std::fs::write(self.var_file(), vars.to_string())?;
        if keep {
            std::fs::write(state_file(root), serde_json::to_string_pretty(self)?)?;
            // Handed over to `local down`.
            lock::remove_child(self.moto_pid);
            lock::remove_child(self.sshd_pid);
            lock::remove_child(self.aws_pid);
        }
        Ok(())
    }

    /// The servers' process ids (0: none, in the state of an older stand-in).
    fn pids(&self) -> impl Iterator<Item = u32> {
        [self.moto_pid, self.sshd_pid, self.aws_pid]
            .into_iter()
            .filter(|&pid| pid != 0)
    }

    /// Stops the servers and waits until nothing listens any more.
    pub fn stop(&self) {
        for pid in self.pids() {
            // SIGTERM to the whole process group: moto's server may have workers, and the
            // `aws` server children that still answer a call.
            terminate(pid);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.pids().any(pid_alive) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in self.pids() {
            lock::remove_child(pid);
        }
    }
}

/// The stand-in's SSH key (what Packer logs in with) and its sshd's host key.
fn make_keys(sh: &Shell, dir: &Path) -> Result<()> {
    let key = dir.join("id_rsa");
    let host_key = dir.join("host_key");
    crate::interrupt::run_detached(cmd!(
        sh,
        "ssh-keygen -q -t rsa -b 2048 -N '' -C xtask-standin -f {key}"
    ))
    .context("cannot make the stand-in's SSH key: is `ssh-keygen` (openssh-client) installed?")?;
    crate::interrupt::run_detached(cmd!(sh, "ssh-keygen -q -t ed25519 -N '' -f {host_key}"))
        .context("cannot make the stand-in's SSH host key")?;
    std::fs::copy(dir.join("id_rsa.pub"), dir.join("authorized_keys"))
        .context("cannot write the stand-in's authorized_keys")?;
    Ok(())
}

/// moto's server through the repository's launcher (which patches in what moto lacks), seeded
/// with the matrix's upstream AMIs so templates keep their real source AMIs.
fn start_moto(
    sh: &Shell,
    root: &Path,
    matrix: &Matrix,
    dir: &Path,
    venv: &Path,
    port: u16,
) -> Result<std::process::Child> {
    let seed = dir.join("amis.json");
    std::fs::write(&seed, seed_amis(matrix, extra_seed()?))
        .with_context(|| format!("cannot write `{}`", seed.display()))?;
    let moto_log = std::fs::File::create(dir.join("moto.log"))?;
    let python = venv.join("bin/python");
    let launcher = root.join(LAUNCHER);
    let port = port.to_string();
    let mut moto = std::process::Command::from(
        cmd!(sh, "{python} {launcher} -H 127.0.0.1 -p {port}")
            .env("MOTO_AMIS_PATH", &seed)
            // Key pairs are per region: the stand-in's key, wherever the matrix builds.
            .env(
                "XTASK_STANDIN_KEY_PAIR",
                format!("{KEY_PAIR}:{}", dir.join("id_rsa.pub").display()),
            )
            .env("XTASK_STANDIN_REGIONS", matrix_regions(matrix).join(","))
            .env("XTASK_STANDIN_DIR", dir),
    );
    let moto = moto
        .stdin(std::process::Stdio::null())
        .stdout(moto_log.try_clone()?)
        .stderr(moto_log)
        // Its own process group: a Ctrl-C meant for Packer must not kill the stand-in
        // before Packer has cleaned up through it.
        .process_group(0);
    // Recorded even when kept: until `local up` has written its state, a kill would
    // leave it unknown.
    lock::spawn_recorded(moto, "moto", LAUNCHER).context("cannot start the moto server")
}

/// The matrix's regions, each once.
fn matrix_regions(matrix: &Matrix) -> Vec<&str> {
    let mut regions: Vec<&str> = matrix.images.iter().map(|i| i.region.as_str()).collect();
    regions.sort();
    regions.dedup();
    regions
}

/// The warm `aws` server ([`AWS_SERVER`]) on a socket in the stand-in's folder, and the
/// `aws` script that calls through it. It serves whatever endpoint a call names; it reads the
/// AWS configuration of no user (every call brings its own environment).
fn start_aws_server(
    sh: &Shell,
    root: &Path,
    dir: &Path,
    venv: &Path,
) -> Result<std::process::Child> {
    let python = venv.join("bin/python");
    let server = root.join(AWS_SERVER);
    let socket = dir.join("aws.sock");
    let script = format!(
        "#!/bin/sh\n# The stand-in's `aws`: the AWS CLI of {venv}, kept loaded by {AWS_SERVER}.\n\
         exec {python} -I -S {server} call {socket} \"$@\"\n",
        venv = venv.display(),
        python = template::shell_quote(&python.display().to_string()),
        server = template::shell_quote(&server.display().to_string()),
        socket = template::shell_quote(&socket.display().to_string()),
    );
    // A socket left by an earlier try would pass for this server's before it made its own.
    let _ = std::fs::remove_file(&socket);
    let script_file = dir.join("aws");
    std::fs::write(&script_file, script)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script_file, std::fs::Permissions::from_mode(0o755))
        })
        .with_context(|| format!("cannot write `{}`", script_file.display()))?;
    let log = std::fs::File::create(dir.join("aws.log"))?;
    let mut command = std::process::Command::from(
        cmd!(sh, "{python} {server} serve {socket}")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE"),
    );
    command
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    lock::spawn_recorded(&mut command, "aws server", AWS_SERVER)
        .context("cannot start the stand-in's `aws` server")
}

/// The unprivileged sshd on loopback that plays the launched instance.
fn start_sshd(
    sh: &Shell,
    dir: &Path,
    sshd: &Path,
    port: u16,
    user: &str,
) -> Result<std::process::Child> {
    std::fs::write(dir.join("sshd_config"), sshd_config(dir, port, user))?;
    if is_root() {
        // sshd started as root insists on its privilege separation folder, which Debian
        // creates only when its service starts.
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let sshd_config = dir.join("sshd_config");
    let sshd_log = dir.join("sshd.log");
    let mut sshd =
        std::process::Command::from(cmd!(sh, "{sshd} -D -e -f {sshd_config} -E {sshd_log}"));
    sshd.stdin(std::process::Stdio::null())
        // Inherited output would keep the caller's pipes open after `local up` returns.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    lock::spawn_recorded(&mut sshd, "sshd", "sshd").context("cannot start sshd")
}

/// What starting the stand-in's servers needs; [`Servers::launch`] may be tried again.
struct Servers<'a> {
    dir: &'a Path,
    venv: &'a Path,
    sshd: &'a Path,
    user: &'a str,
}

/// How moto (werkzeug) and sshd say that their port is someone else's.
const PORT_TAKEN: &str = "Address already in use";

impl Servers<'_> {
    /// Starts moto, sshd and the `aws` server on free ports and waits until each is ready;
    /// on any failure, what was started is stopped.
    fn launch(&self, sh: &Shell, root: &Path, matrix: &Matrix, keep: bool) -> Result<Standin> {
        let (dir, venv) = (self.dir, self.venv);
        let moto_port = free_port()?;
        let ssh_port = free_port()?;
        let moto = start_moto(sh, root, matrix, dir, venv, moto_port)?;
        // A server that cannot start must not leave the ones started before it running.
        let sshd = start_sshd(sh, dir, self.sshd, ssh_port, self.user)
            .inspect_err(|_| terminate(moto.id()))?;
        let aws = start_aws_server(sh, root, dir, venv).inspect_err(|_| {
            terminate(moto.id());
            terminate(sshd.id());
        })?;
        let mut standin = Standin {
            dir: dir.to_path_buf(),
            venv: venv.to_path_buf(),
            moto_port,
            ssh_port,
            moto_pid: moto.id(),
            sshd_pid: sshd.id(),
            aws_pid: aws.id(),
            owned: !keep,
        };
        // From here on, a failure must stop what was started.
        if let Err(e) = standin.get_ready(root, self.user, keep) {
            standin.owned = true;
            drop(standin);
            return Err(e);
        }
        // The children are reaped by `stop`; forget the handles without killing.
        std::mem::forget(moto);
        std::mem::forget(sshd);
        std::mem::forget(aws);
        Ok(standin)
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if self.owned {
            self.stop();
        }
    }
}

/// Stops the stand-in that `local up` started; returns whether there was one.
pub fn stop_running(root: &Path) -> Result<bool> {
    let file = state_file(root);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(false);
    };
    let standin: Standin = crate::pure::json::parse(&text)
        .map_err(|e| anyhow::anyhow!("`{}` is damaged ({e}): delete it", file.display()))?;
    let was_running = standin.pids().any(pid_alive);
    standin.stop();
    std::fs::remove_file(&file).with_context(|| format!("cannot remove `{}`", file.display()))?;
    Ok(was_running)
}

fn ensure_venv(sh: &Shell, root: &Path) -> Result<PathBuf> {
    let venv = venv_dir(root);
    let ready = venv.join(".xtask-ready");
    // The marker holds the requirements it was installed with: other ones mean a reinstall.
    let is_ready = || std::fs::read_to_string(&ready).is_ok_and(|r| r.trim() == REQUIREMENTS);
    if is_ready() {
        return Ok(venv);
    }
    // Several commands (or tests) may want it at once: one installs, the others wait.
    let lock = venv.with_extension("lock");
    if let Some(parent) = lock.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        if is_ready() {
            return Ok(venv);
        }
        if Instant::now() > deadline {
            bail!(
                "waited 10 minutes for another install of the stand-in into `{}`; if none is \
                 running, remove `{}`",
                venv.display(),
                lock.display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let result = (|| -> Result<()> {
        if is_ready() {
            return Ok(());
        }
        eprintln!(
            "local: installing the AWS stand-in (moto, awscli) into `{}` (first use only, about a minute)...",
            venv.display()
        );
        cmd!(sh, "python3 -m venv {venv}").quiet().run().context(
            "cannot create a Python virtualenv: install Python 3 with venv (Debian: `apt-get install python3-venv`)",
        )?;
        let pip = venv.join("bin/pip");
        let requirements: Vec<&str> = REQUIREMENTS.split(' ').collect();
        cmd!(
            sh,
            "{pip} install --quiet --disable-pip-version-check {requirements...}"
        )
        .quiet()
        .run()
        .context("cannot install moto and awscli from PyPI into the stand-in's virtualenv")?;
        std::fs::write(&ready, REQUIREMENTS)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir(&lock);
    result.map(|()| venv)
}

pub fn find_sshd() -> Result<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context(
            "`sshd` not found: the local stand-in needs an SSH server (Debian: `apt-get install openssh-server`)",
        )
}

fn current_user(sh: &Shell) -> Result<String> {
    let user = cmd!(sh, "id -un")
        .quiet()
        .read()
        .context("cannot tell the current user (`id -un`)")?;
    Ok(user.trim().to_string())
}

pub fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
}

/// Paths are double-quoted: sshd splits an unquoted argument at spaces, so a repository in a
/// folder with a space would name a host key that does not exist.
/// `SetEnv SHLVL=1`: bash sources the user's `~/.bashrc` for commands run over SSH only when it
/// is the first shell level; a fresh instance has no such file, and a developer's (pyenv, ...)
/// can make every one of Packer's commands take seconds.
fn sshd_config(dir: &Path, port: u16, user: &str) -> String {
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey \"{host_key}\"\n\
         AuthorizedKeysFile \"{authorized}\"\n\
         AllowUsers {user}\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PermitRootLogin prohibit-password\n\
         PidFile \"{pid}\"\n\
         SetEnv SHLVL=1\n\
         Subsystem sftp internal-sftp\n",
        host_key = dir.join("host_key").display(),
        authorized = dir.join("authorized_keys").display(),
        pid = dir.join("sshd.pid").display(),
    )
}

/// Extra images for the stand-in's seed, from `XTASK_LOCAL_SEED_AMIS` (a JSON array in moto's
/// `MOTO_AMIS_PATH` format), read when a stand-in starts: to rehearse `base-images` with a newer
/// upstream image.
fn extra_seed() -> Result<Vec<serde_json::Value>> {
    let Some(path) = std::env::var_os("XTASK_LOCAL_SEED_AMIS") else {
        return Ok(Vec::new());
    };
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}` (`XTASK_LOCAL_SEED_AMIS`)", path.display()))?;
    crate::pure::json::parse(&text).map_err(anyhow::Error::msg).with_context(|| {
        format!(
            "`{}` (`XTASK_LOCAL_SEED_AMIS`) is not a JSON array of images in moto's `MOTO_AMIS_PATH` format",
            path.display()
        )
    })
}

/// moto's `MOTO_AMIS_PATH` format, for every upstream AMI of the matrix: its recorded name (or
/// one in Canonical's style) and Canonical's owner, each in its own region only (`region_name`, see `standin_server.py`).
fn seed_amis(matrix: &Matrix, extra: Vec<serde_json::Value>) -> String {
    let mut amis = Vec::new();
    for image in &matrix.images {
        let sources = [
            (Some(&image.instance_store_ami), "instance-store"),
            (image.ebs_ami.as_ref(), "ebs"),
        ];
        for (id, root_device_type) in sources {
            let Some(id) = id else { continue };
            // The name the matrix records, as AWS would answer it; else one in Canonical's style.
            let name = image
                .base_name(root_device_type)
                .map(String::from)
                .unwrap_or_else(|| {
                    base_images::canonical_name(
                        &image.os_version,
                        &image.virtualization,
                        root_device_type,
                        "20150701",
                    )
                });
            amis.push(serde_json::json!({
                "ami_id": id,
                "name": name,
                "description": "upstream Ubuntu image (stand-in)",
                "owner_id": base_images::CANONICAL,
                "public": true,
                "virtualization_type": image.virtualization,
                "architecture": "x86_64",
                "state": "available",
                "platform": null,
                "image_type": "machine",
                "hypervisor": "xen",
                "root_device_name": "/dev/sda1",
                "root_device_type": root_device_type,
                "sriov": "simple",
                "creation_date": "2015-07-01T00:00:00.000Z",
                "region_name": image.region,
            }));
        }
    }
    amis.extend(extra);
    serde_json::Value::Array(amis).to_string()
}

fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `what` (process `pid`) listens on `port`; a process that exits first is
/// reported at once, with the end of its log, rather than after the whole wait.
fn wait_for_port(port: u16, what: &str, pid: u32, log: &Path) -> Result<()> {
    let at = format!("127.0.0.1:{port}");
    wait_until(
        || listens(pid, port),
        pid,
        log,
        [
            format!("{what} exited before it listened on {at}"),
            format!("{what} did not listen on {at} within 60 s"),
        ],
    )
}

/// Whether process `pid` itself holds a socket listening on 127.0.0.1:`port` (a connection
/// alone could reach another program that took the port first): the port's listening sockets in
/// `/proc/net/tcp`, by inode, among the process's open files.
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A");
            let inode = fields.get(9).filter(|_| listening)?;
            Some(format!("socket:[{inode}]"))
        })
        .collect();
    if sockets.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|link| sockets.iter().any(|s| link.as_os_str() == s.as_str()))
}

/// As [`wait_for_port`], for a server whose sign of life is a file it makes (a socket).
fn wait_for_file(file: &Path, what: &str, pid: u32, log: &Path) -> Result<()> {
    let name = file.display();
    wait_until(
        || file.exists(),
        pid,
        log,
        [
            format!("{what} exited before it made `{name}`"),
            format!("{what} did not make `{name}` within 60 s"),
        ],
    )
}

/// Waits (60 s at most) until `ready`, or process `pid` exits; the error is `exited` or `late`,
/// with the end of the process's log.
fn wait_until(
    ready: impl Fn() -> bool,
    pid: u32,
    log: &Path,
    [exited, late]: [String; 2],
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut message = late;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        if !pid_alive(pid) {
            message = exited;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    bail!(
        "{message}; its log `{}` ends with:\n  {}",
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
    )
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry: read its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn terminate(pid: u32) {
    // `kill` is the portable way without a libc binding; the group first, then the process.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{pid}")])
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
    // Reap it if it is our child, so it does not linger as a zombie.
    reap(pid);
}

fn reap(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && pid_alive(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a server that dies at start: `script` (`$1` its log, `$2` the port) in a
    /// folder of its own. Returns the folder, the log and the process.
    fn dying_server(
        name: &str,
        script: &str,
        port: Option<u16>,
    ) -> (PathBuf, PathBuf, std::process::Child) {
        let dir = std::env::temp_dir().join(format!("xtask-standin-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("sshd.log");
        let child = std::process::Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&log)
            .args(port.map(|p| p.to_string()))
            .spawn()
            .unwrap();
        (dir, log, child)
    }

    /// A server that dies at start (sshd with a bad config does) is reported at once, with
    /// the end of its log, not after the whole minute's wait.
    #[test]
    fn a_server_that_exits_is_reported_at_once_with_its_log() {
        let (dir, log, mut child) = dying_server(
            "exits",
            "echo \"$1 line 3: keyword HostKey extra arguments at end of line\" >> \"$1\"; exit 255",
            None,
        );
        let started = Instant::now();
        let error = wait_for_port(free_port().unwrap(), "sshd", child.id(), &log)
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(error.contains("sshd exited before it listened"), "{error}");
        assert!(error.contains("extra arguments at end of line"), "{error}");
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A port another program took before the server bound it is not the server's: the wait
    /// reports the server's exit with its log's "in use" line (on which the start tries other
    /// ports) instead of taking the other program for the server.
    #[test]
    fn a_port_someone_else_listens_on_is_not_the_servers() {
        let other = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = other.local_addr().unwrap().port();
        assert!(
            listens(std::process::id(), port),
            "this process listens there"
        );
        let (dir, log, mut child) = dying_server(
            "taken",
            "sleep 0.3; echo \"Bind to port $2 on 127.0.0.1 failed: Address already in use.\" >> \"$1\"; exit 255",
            Some(port),
        );
        assert!(!listens(child.id(), port), "the child does not listen");
        let error = wait_for_port(port, "sshd", child.id(), &log)
            .unwrap_err()
            .to_string();
        assert!(error.contains("sshd exited before it listened"), "{error}");
        assert!(error.contains(PORT_TAKEN), "{error}");
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sshd_config_quotes_paths_with_spaces() {
        let config = sshd_config(Path::new("/tmp/a folder"), 2222, "me");
        assert!(
            config.contains("HostKey \"/tmp/a folder/host_key\"\n"),
            "{config}"
        );
        assert!(
            config.contains("PidFile \"/tmp/a folder/sshd.pid\"\n"),
            "{config}"
        );
        assert!(config.contains("AuthorizedKeysFile \"/tmp/a folder/authorized_keys\"\n"));
    }
}
