//! Removing containers: warm ones idle past their TTL (their watchers do it
//! too; this covers containers whose watcher could not run), and repairing
//! drift between stamps and containers:
//!
//! - a stamp with no container: cleared once expired;
//! - a container with no stamp, or a stopped one: removed;
//! - a one-shot container whose call was killed: removed.
//!
//! After each call, `after_call` checks the stamps (a directory read and a
//! stat each) and, at most every RECONCILE_EVERY, asks Podman for the full
//! list. `--prune` does both at once.

use std::time::Duration;

use crate::config::Config;
use crate::error::Result;
use crate::lock::{self, Mode};
use crate::store::Podman;
use crate::{sys, verbose};

use super::warm_dir::{self, WarmDir};
use super::{State, is_warm_name, list, remove, state};
use crate::state::Guard;

/// How often a call compares Podman's container list with the stamps.
const RECONCILE_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
pub struct Report {
    /// Removed containers, with why.
    pub removed: Vec<(String, String)>,
    /// Warm containers left alone because a call is using them.
    pub in_use: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Removed,
    InUse,
    Fresh,
}

/// Removes the warm container of `dir` if no call holds it and `still`,
/// asked under the locks (what was seen before may have changed), says so.
/// Clears its stamp.
fn retire(
    podman: &Podman,
    dir: &WarmDir,
    still: impl FnOnce(&WarmDir) -> Result<bool>,
) -> Result<Outcome> {
    let Some(_use) = lock::try_acquire(&dir.use_lock(), Mode::Exclusive)? else {
        return Ok(Outcome::InUse);
    };
    let Some(_create) = lock::try_acquire(&dir.create_lock(), Mode::Exclusive)? else {
        return Ok(Outcome::InUse);
    };
    if !still(dir)? {
        return Ok(Outcome::Fresh);
    }
    verbose!("removing warm container {}", dir.name);
    // The stamp first: from here on the container counts as gone.
    dir.clear();
    remove(podman, &dir.name)?;
    dir.remove_root();
    Ok(Outcome::Removed)
}

/// After a call: clear expired stamps (removing their containers) and now
/// and then reconcile with Podman's list. `keep` is the caller's container.
pub fn after_call(cfg: &Config, podman: &Podman, keep: &str) -> Result<()> {
    for dir in warm_dir::all(cfg)? {
        if dir.name != keep && dir.stamped() && dir.expired() {
            retire(podman, &dir, |d| Ok(d.expired()))?;
        }
    }
    let marker = warm_dir::root(cfg).join(".reconciled");
    let due = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age >= RECONCILE_EVERY);
    if due
        && let Some(_one) = lock::try_acquire(
            &warm_dir::root(cfg).join(Guard::Reconcile.file_name()),
            Mode::Exclusive,
        )?
    {
        crate::fsutil::write_atomic(&marker, b"")?;
        reconcile(cfg, podman, keep, false, &mut Report::default())?;
    }
    Ok(())
}

/// `--prune`: every expired warm container (every one not in use with
/// `all`), and every container or stamp that drifted.
pub fn prune(cfg: &Config, podman: &Podman, all: bool) -> Result<Report> {
    let mut report = Report::default();
    for dir in warm_dir::all(cfg)? {
        if dir.stamped() && dir.store_replaced() {
            super::end_orphan(&dir);
            report
                .removed
                .push((dir.name.clone(), "its Podman store was replaced".into()));
            continue;
        }
        if !dir.stamped() || !(all || dir.expired()) {
            continue;
        }
        let why = if all { "--all" } else { "idle past its TTL" };
        let outcome = if all {
            retire(podman, &dir, |_| Ok(true))?
        } else {
            retire(podman, &dir, |d| Ok(d.expired()))?
        };
        match outcome {
            Outcome::Removed => report.removed.push((dir.name.clone(), why.into())),
            Outcome::InUse => report.in_use.push(dir.name.clone()),
            Outcome::Fresh => {}
        }
    }
    reconcile(cfg, podman, "", all, &mut report)?;
    // Only here, asked for: a call's own pruning could race another call
    // that is about to join the user namespace the process holds.
    podman.end_pause_process()?;
    Ok(report)
}

/// Compares Podman's list of our containers with the stamps.
fn reconcile(
    cfg: &Config,
    podman: &Podman,
    keep: &str,
    all: bool,
    report: &mut Report,
) -> Result<()> {
    // The state layout of version 0.1: its containers have no stamp here,
    // so they are removed below.
    let _ = std::fs::remove_dir_all(cfg.paths.cache.join("warm-state"));
    for c in list::ours(podman)? {
        let seen =
            report.removed.iter().any(|(n, _)| *n == c.name) || report.in_use.contains(&c.name);
        if c.name == keep || seen {
            continue;
        }
        if is_warm_name(&c.name) {
            let dir = WarmDir::new(cfg, &c.name);
            let why = if !dir.stamped() {
                "no stamp"
            } else if !c.running() {
                "not running"
            } else if all {
                "--all"
            } else {
                continue;
            };
            dir.ensure_locks()?;
            let drifted = |d: &WarmDir| -> Result<bool> {
                Ok(all || !d.stamped() || state(podman, &d.name)? != State::Running)
            };
            match retire(podman, &dir, drifted)? {
                Outcome::Removed => report.removed.push((c.name, why.into())),
                Outcome::InUse if all => report.in_use.push(c.name),
                _ => {}
            }
        } else {
            // A one-shot container lives as long as its call.
            let orphan = match &c.owner {
                Some(owner) => !sys::identity_alive(owner),
                None => !c.running(),
            };
            if orphan {
                verbose!("removing one-shot container {} of a finished call", c.name);
                remove(podman, &c.name)?;
                report
                    .removed
                    .push((c.name, "one-shot call no longer running".into()));
            }
        }
    }
    Ok(())
}
