//! A tmux server of a test's own (its own socket) with one session, killed when the test ends:
//! the terminal a user types in, for tests of the live view and of Ctrl-C.

use super::Repo;
use std::process::Command;

/// A script for a pane: `command` typed in the repository with the test's isolated environment
/// (git, the stand-in's virtualenv, no AWS keys), `xtask` naming the binary under test; then
/// the pane stays open so its screen can be read.
pub fn script(repo: &Repo, command: &str) -> String {
    format!(
        "cd '{root}'\n\
         export HOME='{home}' XDG_CONFIG_HOME='{home}/.config' GIT_CONFIG_NOSYSTEM=1\n\
         export XTASK_STANDIN_VENV='{venv}'\n\
         unset SOURCE_DATE_EPOCH AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY\n\
         xtask() {{ '{bin}' \"$@\"; }}\n\
         {command}\n\
         sleep 600\n",
        root = repo.root.display(),
        home = repo.home().display(),
        venv = super::standin_venv().display(),
        bin = env!("CARGO_BIN_EXE_xtask"),
    )
}

pub struct Tmux {
    pub socket: String,
    /// The session (and target) the commands address.
    pub session: &'static str,
}

impl Tmux {
    pub fn new(session: &'static str) -> Tmux {
        Tmux {
            socket: format!("xtask-test-{session}-{}", std::process::id()),
            session,
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                super::require(&["tmux"]);
                panic!("tmux does not run: {e}")
            });
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen, wrapped lines joined (so a line wider than the pane shows as one).
    pub fn screen(&self) -> Vec<String> {
        self.run(&["capture-pane", "-p", "-J", "-t", self.session])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Everything the pane showed, scrollback included.
    pub fn history(&self) -> Vec<String> {
        self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", self.session])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
