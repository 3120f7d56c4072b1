//! Ctrl-C during long work: remember it, pass it on to Packer exactly once, and let the
//! command stop at its next checkpoint so stand-ins are stopped and records written.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static CHILD: AtomicU32 = AtomicU32::new(0);

/// Installs the handler; commands that start long-running work call it first.
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        let first = !REQUESTED.swap(true, Ordering::SeqCst);
        let child = CHILD.load(Ordering::SeqCst);
        if first {
            eprintln!("\ninterrupted: stopping (Packer cleans up its instances first; this can take a minute)...");
            if child != 0 {
                // Packer runs in its own process group, so it has not seen this Ctrl-C yet.
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &child.to_string()])
                    .status();
            }
        }
    });
}

pub fn set_child(pid: u32) {
    CHILD.store(pid, Ordering::SeqCst);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails with "interrupted" when Ctrl-C was pressed, so the caller unwinds and cleans up.
pub fn check() -> anyhow::Result<()> {
    if requested() {
        anyhow::bail!("interrupted by Ctrl-C before the build started; nothing was launched");
    }
    Ok(())
}
