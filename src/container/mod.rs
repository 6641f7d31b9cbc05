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

pub use spec::{NixDaemon, Spec};
pub use warm::{Warm, Warmed, ensure_warm, note_limits, reap_leftovers};
pub(crate) use warm::{end_orphan, verify_mounts};

pub const PREFIX: &str = "lectic-nix-sandbox-";
/// Every container of ours carries this label (and the name prefix).
pub const LABEL: &str = "io.github.lectic.nix-sandbox";
/// Where the sandbox HOME is mounted.
pub const HOME_TARGET: &str = "/home/sandbox";

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum State {
    Running,
    Stopped,
    Missing,
}

/// Whether `name` is a warm container's name (not a one-shot's).
pub fn is_warm_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
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
