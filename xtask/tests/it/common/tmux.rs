//! A tmux server of a test's own (its own socket) with one session, killed when the test ends:
//! the terminal a user types in, for tests of the live view and of Ctrl-C.

use std::process::Command;

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
