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
use crate::engine::Engine;
use crate::error::Result;
use crate::lock::{self, Mode};
use crate::{sys, verbose};

use super::warm_dir::{self, WarmDir};
use super::{State, is_warm_name};
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
    engine: &dyn Engine,
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
    engine.remove(&dir.name)?;
    dir.remove_root();
    Ok(Outcome::Removed)
}

/// Removes the warm containers whose workdir lies under `dir` (the
/// worktree being removed); an error names one a call is using.
pub fn remove_under(
    cfg: &Config,
    engine: &dyn Engine,
    dir: &std::path::Path,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for d in warm_dir::all(cfg)? {
        let workdir = d
            .state()
            .and_then(|s| s.get("workdir")?.as_str().map(std::path::PathBuf::from));
        if !workdir.is_some_and(|w| w.starts_with(dir)) {
            continue;
        }
        match retire(engine, &d, |_| Ok(true))? {
            Outcome::InUse => {
                return Err(crate::error::Error::failed(format!(
                    "warm container {} of {} is in use by a call; try again when it ends",
                    d.name,
                    dir.display()
                )));
            }
            _ => removed.push(d.name),
        }
    }
    Ok(removed)
}

/// After a call: clear expired stamps (removing their containers) and now
/// and then reconcile with Podman's list. `keep` is the caller's container.
pub fn after_call(cfg: &Config, engine: &dyn Engine, keep: &str) -> Result<()> {
    for dir in warm_dir::all(cfg)? {
        if dir.name != keep && dir.stamped() && dir.expired() {
            retire(engine, &dir, |d| Ok(d.expired()))?;
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
        reconcile(cfg, engine, keep, false, &mut Report::default())?;
    }
    Ok(())
}

/// `--prune`: every expired warm container (every one not in use with
/// `all`), and every container or stamp that drifted.
pub fn prune(cfg: &Config, engine: &dyn Engine, all: bool) -> Result<Report> {
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
            retire(engine, &dir, |_| Ok(true))?
        } else {
            retire(engine, &dir, |d| Ok(d.expired()))?
        };
        match outcome {
            Outcome::Removed => report.removed.push((dir.name.clone(), why.into())),
            Outcome::InUse => report.in_use.push(dir.name.clone()),
            Outcome::Fresh => {}
        }
    }
    reconcile(cfg, engine, "", all, &mut report)?;
    // Only here, asked for: a call's own pruning could race another call
    // that is about to join the user namespace the process holds.
    engine.end_pause_process()?;
    Ok(report)
}

/// Compares Podman's list of our containers with the stamps.
fn reconcile(
    cfg: &Config,
    engine: &dyn Engine,
    keep: &str,
    all: bool,
    report: &mut Report,
) -> Result<()> {
    for c in engine.containers()? {
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
                Ok(all || !d.stamped() || engine.state(&d.name)? != State::Running)
            };
            match retire(engine, &dir, drifted)? {
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
                engine.remove(&c.name)?;
                report
                    .removed
                    .push((c.name, "one-shot call no longer running".into()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::PREFIX;
    use crate::container::spec::tests::spec;
    use crate::engine::fake::Recording;
    use crate::testutil::{TempDir, config};

    const HOUR: Duration = Duration::from_secs(3600);

    fn name(n: u8) -> String {
        format!("{PREFIX}{n:016x}")
    }

    /// A warm dir with a stamp of a call that ended `ago`, TTL one hour.
    fn stamped(cfg: &Config, n: u8, ago: Duration) -> WarmDir {
        let d = WarmDir::new(cfg, &name(n));
        d.prepare().unwrap();
        d.record(&spec(), HOUR).unwrap();
        d.age(ago);
        d
    }

    fn removed(r: &Report) -> Vec<(String, &str)> {
        let mut v: Vec<_> = r
            .removed
            .iter()
            .map(|(n, w)| (n.clone(), w.as_str()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn prune_removes_what_expired_or_drifted_and_spares_what_runs_or_is_in_use() {
        let t = TempDir::new("prune");
        let cfg = config(&t, &[]);
        let engine = Recording::with(&[
            (&name(1), "running"),
            (&name(2), "running"),
            (&name(3), "running"),
            (&name(4), "exited"),
            (&name(5), "running"),
        ]);
        stamped(&cfg, 1, Duration::ZERO); // fresh and running: kept
        stamped(&cfg, 2, 2 * HOUR); // idle past its TTL
        // 3 has no stamp: a killed creation's container
        stamped(&cfg, 4, Duration::ZERO); // stamped, but stopped
        let used = stamped(&cfg, 5, 2 * HOUR); // expired, but a call holds it
        let _call = lock::acquire(&used.use_lock(), Mode::Shared, "test", HOUR).unwrap();
        let dead_call = format!("{PREFIX}once-dead");
        let live_call = format!("{PREFIX}once-live");
        engine.add(&dead_call, "running", Some("999999999:1"));
        engine.add(&live_call, "running", Some(&sys::self_identity()));

        let report = prune(&cfg, &engine, false).unwrap();

        assert_eq!(
            removed(&report),
            [
                (name(2), "idle past its TTL"),
                (name(3), "no stamp"),
                (name(4), "not running"),
                (dead_call.clone(), "one-shot call no longer running"),
            ]
        );
        assert_eq!(report.in_use, [name(5)]);
        let mut gone = engine.called("remove");
        gone.sort();
        assert_eq!(gone, [name(2), name(3), name(4), dead_call]);
        assert!(
            !WarmDir::new(&cfg, &name(2)).stamped(),
            "its stamp is cleared"
        );
        assert!(used.stamped() && WarmDir::new(&cfg, &name(1)).stamped());
        let left: Vec<String> = engine
            .containers
            .borrow()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(left, [name(1), name(5), live_call]);
    }

    #[test]
    fn prune_all_removes_every_container_no_call_holds() {
        let t = TempDir::new("prune-all");
        let cfg = config(&t, &[]);
        let engine = Recording::with(&[(&name(1), "running"), (&name(2), "running")]);
        stamped(&cfg, 1, Duration::ZERO);
        let used = stamped(&cfg, 2, Duration::ZERO);
        let _call = lock::acquire(&used.use_lock(), Mode::Shared, "test", HOUR).unwrap();

        let report = prune(&cfg, &engine, true).unwrap();

        assert_eq!(removed(&report), [(name(1), "--all")]);
        assert_eq!(report.in_use, [name(2)]);
        assert_eq!(engine.called("remove"), [name(1)]);
    }

    #[test]
    fn after_a_call_its_own_container_stays_and_podman_is_asked_at_most_every_interval() {
        let t = TempDir::new("after-call");
        let cfg = config(&t, &[]);
        // The caller's container has no stamp yet, as while it is made.
        let engine = Recording::with(&[(&name(1), "running"), (&name(2), "running")]);
        stamped(&cfg, 3, 2 * HOUR); // expired, its container already gone

        after_call(&cfg, &engine, &name(1)).unwrap();

        assert_eq!(engine.called("remove"), [name(3), name(2)]);
        assert!(!WarmDir::new(&cfg, &name(3)).stamped());
        // Within RECONCILE_EVERY the next call reads only the stamps.
        engine.calls.borrow_mut().clear();
        after_call(&cfg, &engine, "").unwrap();
        assert_eq!(engine.calls(), Vec::<String>::new());
    }
}
