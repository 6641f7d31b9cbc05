//! One call, step by step: a management action, or the dev shell's
//! environment, the image, the warm container (or a one-shot one), the
//! command, and pruning after it.

use crate::config::Config;
use crate::container::{Spec, Warm, Warmed};
use crate::error::{Error, Result};
use crate::image::{self, Want};
use crate::store::Podman;
use crate::{cli, container, develop, exec, manage, verbose};

/// Runs one call; returns the exit status to exit with.
pub async fn run(mut cfg: Config) -> Result<i32> {
    cfg.create_dirs()?;
    if let cli::Action::Manage(action) = cfg.action {
        return manage::run(&cfg, action);
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
        let spec = Spec::new(&cfg, &image)?;
        (exec::run_once(&cfg, &podman, &spec).await, String::new())
    };
    // The commits the command made go to its branch (see worktree.rs).
    if let Some(wt) = &cfg.worktree_made {
        let wait = cfg.lock_limit(crate::state::Guard::Worktree("").wait());
        if let Err(e) = wt.sync_locked(&cfg.paths, wait) {
            eprintln!("lectic-nix-sandbox: {e}");
        }
    }
    // The call's locks are released by now: pruning may take them.
    if let Err(e) = container::prune::after_call(&cfg, &podman, &name) {
        verbose!("pruning idle containers failed: {e}");
    }
    code
}

/// The configuration's warm container, running and marked in use. The
/// record is trusted without asking Podman (the warm path); only when the
/// container must be made and the store lost the image is it loaded again.
pub fn warm_container(cfg: &Config, podman: &Podman) -> Result<Warm> {
    for want in [Want::Recorded, Want::Present] {
        let image = image::ensure(cfg, podman, want)?;
        if let Warmed::Ready(warm) = container::ensure_warm(cfg, podman, &Spec::new(cfg, &image)?)?
        {
            return Ok(warm);
        }
    }
    Err(Error::failed(
        "the image was loaded, and was gone from Podman's store again when the container was made (something removes it, e.g. `podman rmi` or a system prune); run the command again",
    ))
}
