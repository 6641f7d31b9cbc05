//! One call, step by step: a management action, or the dev shell's
//! environment, the image, the warm container (or a one-shot one), the
//! command, and pruning after it.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::image::{self, Want};
use crate::store::Podman;
use crate::{cli, container, develop, exec, manage, verbose};

/// Runs one call; returns the exit status to exit with.
pub async fn run(mut cfg: Config) -> Result<i32> {
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
