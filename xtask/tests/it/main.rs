//! The integration tests, one binary: compiled and linked once, and one pool of test threads
//! for all of them, so a scenario that waits (on Packer, a timeout, a terminal) leaves the CPU
//! to another instead of holding up its own binary. Run one module with
//! `cargo test -p xtask --test it builds::`.

mod common;

mod aws_calls;
mod builds;
mod cleanup;
mod ctrl_c;
mod edges;
mod input;
mod interrupts;
mod kill9;
mod lifecycle;
mod lifecycle_input;
mod pipeline;
mod preflight;
mod protection;
mod readme;
mod release;
mod scripts;
mod standin_protection;
mod terminal;
mod workspace;
