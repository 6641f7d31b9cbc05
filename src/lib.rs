//! lectic-nix-sandbox: runs a command in a Nix-built, rootless Podman
//! container. The modules follow the data path:
//! cli → config (+ env) → image (flake, nix build, load, record) →
//! store (our Podman; `engine` the seam the lifecycle decides through) →
//! container (warm lifecycle, prune) → exec (through
//! the agent, or podman) → stop, and the management commands (manage) that
//! stand in for a command. `agent` is the other end of exec: this binary
//! inside a warm container; `proxy` is `--allow-host`. `call` strings the
//! steps together for one call.

pub mod agent;
pub mod allow;
pub mod call;
pub mod cli;
pub mod config;
pub mod container;
pub mod develop;
pub mod digest;
pub mod engine;
pub mod env;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod image;
pub mod lock;
pub mod manage;
pub use config::policy;
pub mod process;
pub mod proxy;
pub mod shellwords;
pub mod state;
pub mod stop;
pub mod store;
pub mod sys;
#[cfg(test)]
pub(crate) mod testutil;
pub mod worktree;

use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn is_verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Says what the sandbox does, on stderr, with --verbose only.
#[macro_export]
macro_rules! verbose {
    ($($arg:tt)*) => {
        if $crate::is_verbose() {
            eprintln!("lectic-nix-sandbox: {}", format_args!($($arg)*));
        }
    };
}
