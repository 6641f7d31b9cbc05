//! Containers: one warm container per configuration, named by the hash of
//! everything that shapes it, kept running between calls and removed after
//! its idle TTL; or a one-shot container per call.
//!
//! Each warm container has a state directory (warm_dir.rs) with its locks and
//! last-use stamp, and as its main process either our exec agent (agent/),
//! when this binary is static, or the shell watcher (watcher.rs); either
//! ends it once idle past its TTL. Pruning (prune.rs) takes both locks
//! exclusively without waiting, so it never removes a container that is
//! being created or used, and never deadlocks with a call (which may wait
//! for create while holding use).
//!
//! `spec.rs` is what shapes a container and the `podman run` options that
//! follow (pure); `warm.rs` the warm lifecycle; `root.rs` the skeleton
//! root of a container run from the Nix store.

pub mod list;
pub mod prune;
pub mod root;
pub mod seccomp;
pub mod spec;
pub mod warm;
pub mod warm_dir;
pub mod watcher;

use crate::error::{Error, Result};
use crate::store::Podman;

pub use spec::{NixDaemon, Spec};
pub use warm::{Warm, ensure_warm, note_limits, reap_leftovers};
pub(crate) use warm::{end_orphan, verify_mounts};

pub const PREFIX: &str = "lectic-nix-sandbox-";
/// Every container of ours carries this label (and the name prefix).
pub const LABEL: &str = "io.github.lectic.nix-sandbox";
/// Where the sandbox HOME is mounted.
pub const HOME_TARGET: &str = "/home/sandbox";

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum State {
    Running,
    Stopped,
    Missing,
}

pub(crate) fn state(podman: &Podman, name: &str) -> Result<State> {
    let out = podman.output([
        "container",
        "inspect",
        "--format",
        "{{.State.Status}}",
        name,
    ])?;
    if out.status.success() {
        let status = String::from_utf8_lossy(&out.stdout);
        return Ok(if status.trim() == "running" {
            State::Running
        } else {
            State::Stopped
        });
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("no such") {
        Ok(State::Missing)
    } else {
        Err(Error::Podman {
            message: format!("cannot inspect container {name}"),
            log: err.into_owned(),
        })
    }
}

/// Whether `name` is a warm container's name (not a one-shot's).
pub fn is_warm_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes a container of ours now; a missing one is no error.
pub(crate) fn remove(podman: &Podman, name: &str) -> Result<()> {
    let out = podman.output(["rm", "--force", "--time", "0", name])?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("no such") {
        Ok(())
    } else {
        Err(Error::Podman {
            message: format!("cannot remove container {name}"),
            log: err.into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_names_are_ours_and_not_one_shot() {
        assert!(is_warm_name(&spec::tests::spec().name()));
        assert!(!is_warm_name(
            "lectic-nix-sandbox-once-0123456789abcdef01234567"
        ));
        assert!(!is_warm_name("other-0123456789abcdef"));
        assert!(!is_warm_name("lectic-nix-sandbox-0123456789abcdeg"));
    }
}
