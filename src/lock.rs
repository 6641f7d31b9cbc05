//! Every file lock this binary takes goes through here (as in cargo's
//! util/flock.rs); the one other holder is the watcher script inside a
//! container, with flock(1) (container/watcher.rs). Which lock guards
//! what is said where each is named (container/, image/, proxy/daemon.rs).
//!
//! Locks are `flock`-style locks on files under the cache dir: the kernel
//! drops them when the holder dies, so a killed call never leaves a stale
//! lock behind. Waiting is bounded; the error names the lock file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Shared,
    Exclusive,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_path("cannot open lock file", path)
}

fn try_take(file: &File, mode: Mode) -> std::result::Result<bool, std::io::Error> {
    let r = match mode {
        Mode::Shared => file.try_lock_shared(),
        Mode::Exclusive => file.try_lock(),
    };
    match r {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Takes the lock, waiting at most `limit`. `what` names the lock in errors.
pub fn acquire(path: &Path, mode: Mode, what: &str, limit: Duration) -> Result<Lock> {
    let file = open(path)?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    let mut told = false;
    loop {
        if try_take(&file, mode).with_path("cannot lock", path)? {
            return Ok(Lock { _file: file });
        }
        if start.elapsed() >= limit {
            return Err(Error::LockTimeout {
                what: what.to_owned(),
                path: path.to_owned(),
            });
        }
        // A person waiting should know why; the model (stderr off a
        // terminal) needs no running commentary.
        if !told && start.elapsed() >= Duration::from_secs(1) && std::io::stderr().is_terminal() {
            eprintln!("lectic-nix-sandbox: waiting for another call holding {what}…");
            told = true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Takes the lock only if nobody holds it.
pub fn try_acquire(path: &Path, mode: Mode) -> Result<Option<Lock>> {
    try_with(open(path)?, path, mode)
}

/// Like [`try_acquire`] for a lock file that must exist already and may be
/// on a read-only mount (the agent's view of the state directory).
pub fn try_acquire_existing(path: &Path, mode: Mode) -> Result<Option<Lock>> {
    let file = File::open(path).with_path("cannot open lock file", path)?;
    try_with(file, path, mode)
}

fn try_with(file: File, path: &Path, mode: Mode) -> Result<Option<Lock>> {
    Ok(try_take(&file, mode)
        .with_path("cannot lock", path)?
        .then(|| Lock { _file: file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_releases_on_drop() {
        let dir = crate::testutil::TempDir::new("lock");
        let p = dir.join("a");
        let held = acquire(&p, Mode::Exclusive, "test", Duration::from_secs(1)).unwrap();
        assert!(try_acquire(&p, Mode::Shared).unwrap().is_none());
        assert!(try_acquire(&p, Mode::Exclusive).unwrap().is_none());
        drop(held);
        assert!(try_acquire(&p, Mode::Exclusive).unwrap().is_some());
    }

    #[test]
    fn shared_locks_coexist_but_block_exclusive() {
        let dir = crate::testutil::TempDir::new("lock");
        let p = dir.join("b");
        let _a = acquire(&p, Mode::Shared, "test", Duration::from_secs(1)).unwrap();
        let _b = acquire(&p, Mode::Shared, "test", Duration::from_secs(1)).unwrap();
        assert!(try_acquire(&p, Mode::Exclusive).unwrap().is_none());
    }

    #[test]
    fn waiting_is_bounded_and_names_the_lock() {
        let dir = crate::testutil::TempDir::new("lock");
        let p = dir.join("c");
        let _held = acquire(&p, Mode::Exclusive, "test", Duration::from_secs(1)).unwrap();
        let e = acquire(&p, Mode::Exclusive, "the image", Duration::from_millis(50)).unwrap_err();
        assert!(e.to_string().contains("the image"), "{e}");
    }
}
