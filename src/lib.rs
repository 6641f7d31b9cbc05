//! lectic-nix-sandbox: runs a command in a Nix-built, rootless Podman
//! container. The modules follow the data path:
//! cli → config (+ env) → image (flake, nix build, load, record) →
//! store (our Podman) → container (warm lifecycle, prune) → exec (through
//! the agent, or podman) → stop, and the management commands (manage) that
//! stand in for a command. `agent` is the other end of exec: this binary
//! inside a warm container.

pub mod agent;
pub mod allow;
pub mod cli;
pub mod config;
pub mod container;
pub mod develop;
pub mod digest;
pub mod env;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod image;
pub mod lock;
pub mod manage;
pub mod policy;
pub mod proxy;
pub mod shellwords;
pub mod stop;
pub mod store;
pub mod sys;

use std::sync::atomic::{AtomicBool, Ordering};

use config::Config;
use error::{Error, Result};
use image::Want;
use store::Podman;

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

/// Runs one call; returns the exit status to exit with.
pub async fn run(mut cfg: Config) -> Result<i32> {
    if cfg.action != cli::Action::Run {
        return manage::run(&cfg);
    }
    if let Some(shell) = cfg.develop.clone() {
        let env = develop::ensure(&cfg, &shell)?;
        develop::apply(&mut cfg, env);
    }
    let podman = Podman::open(&cfg)?;
    let (code, name) = if cfg.keep_warm {
        let mut warm = warm_container(&cfg, &podman)?;
        let code = exec::run_warm(&cfg, &podman, &mut warm).await;
        warm.touch();
        warm.report_refusals();
        (code, warm.name.clone())
    } else {
        let image = image::ensure(&cfg, &podman, Want::Present)?;
        let spec = container::Spec::new(&cfg, &image)?;
        (exec::run_once(&cfg, &podman, &spec).await, String::new())
    };
    // The call's locks are released by now: pruning may take them.
    if let Err(e) = container::prune::after_call(&cfg, &podman, &name) {
        verbose!("pruning idle containers failed: {e}");
    }
    code
}

/// The configuration's warm container, running and marked in use; the
/// image is loaded again if the store lost it.
pub fn warm_container(cfg: &Config, podman: &Podman) -> Result<container::Warm> {
    let image = image::ensure(cfg, podman, Want::Recorded)?;
    match container::ensure_warm(cfg, podman, &container::Spec::new(cfg, &image)?) {
        Err(Error::ImageMissing(_)) => {
            let image = image::ensure(cfg, podman, Want::Present)?;
            container::ensure_warm(cfg, podman, &container::Spec::new(cfg, &image)?)
        }
        other => other,
    }
}
