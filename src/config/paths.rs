//! Where the sandbox keeps its state: the cache, its run dir, and the
//! directories of Lectic found as Lectic finds them.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::digest::Key;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::lexical;

/// Where the sandbox keeps its state.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `$LECTIC_CACHE/nix-sandbox`: Podman's image store, image records,
    /// warm homes, stamps, locks, Podman's scratch space. Persistent and
    /// private (see `fsutil::trusted_dir`).
    pub cache: PathBuf,
    /// `/tmp/lns-<uid>/<hash of cache>`: the first choice of Podman's run
    /// dir (its runroot and runtime dir; see `store::run_dir`). Keyed by
    /// the cache dir because Lectic gives MCP servers almost no
    /// environment: one store must never get two runroots. Kept short
    /// because Podman refuses a runroot over 50 characters.
    pub run: PathBuf,
    /// `$XDG_RUNTIME_DIR`, the run dir's fallback.
    pub runtime: Option<PathBuf>,
}

impl Paths {
    pub fn from_env(get: impl Fn(&str) -> Option<OsString>, uid: u32) -> Result<Paths> {
        let lectic_cache = lectic_dir(&get, "LECTIC_CACHE", "XDG_CACHE_HOME", ".cache/lectic")
            .ok_or_else(|| {
                Error::usage("cannot place the cache: set LECTIC_CACHE, XDG_CACHE_HOME or HOME")
            })?;
        // Normalized, so the path checked (`fsutil::trusted_dir`) is the
        // path the kernel resolves.
        let cache = lexical(&absolute(&lectic_cache.join("nix-sandbox"))?);
        Ok(Paths {
            run: PathBuf::from(format!("/tmp/lns-{uid}")).join(Self::run_name(&cache)),
            runtime: path_var(&get, "XDG_RUNTIME_DIR")
                .filter(|p| p.is_absolute() && !p.as_os_str().as_encoded_bytes().contains(&b'\n'))
                .map(|p| lexical(&p)),
            cache,
        })
    }

    /// The run dir's name for the cache `cache`.
    fn run_name(cache: &Path) -> String {
        let mut key = Key::new("run-dir-v1");
        key.field("cache", cache.as_os_str().as_encoded_bytes());
        key.hex()[..12].to_owned()
    }

    /// A directory of the cache (see state.rs).
    pub fn bucket(&self, b: crate::state::Bucket) -> PathBuf {
        self.cache.join(b.name())
    }

    pub fn locks(&self) -> PathBuf {
        self.bucket(crate::state::Bucket::Locks)
    }

    /// Podman's image and container storage (its graphroot).
    pub fn graphroot(&self) -> PathBuf {
        self.bucket(crate::state::Bucket::PodmanRoot)
    }

    /// Podman's TMPDIR (it spools images there) and our scratch files:
    /// inside the private cache, where no one else can swap them.
    pub fn tmp(&self) -> PathBuf {
        self.bucket(crate::state::Bucket::Tmp)
    }

    /// Which run dir the store is bound to (see `store::run_dir`).
    pub fn run_record(&self) -> PathBuf {
        self.cache.join(crate::state::RUN_RECORD)
    }

    /// The run dir the store is bound to: the recorded one, else the first
    /// choice.
    pub fn bound_run_dir(&self) -> PathBuf {
        self.run_record_read().0
    }

    /// The recorded run dir (else the first choice) and, when it is not
    /// the first choice, why the ones before it were passed over. The
    /// record is the dir's path on the first line, the reasons after.
    pub fn run_record_read(&self) -> (PathBuf, Vec<String>) {
        let Ok(bytes) = std::fs::read(self.run_record()) else {
            return (self.run.clone(), vec![]);
        };
        let mut lines = bytes.split(|&b| b == b'\n');
        let path = PathBuf::from(OsString::from_vec(
            lines.next().unwrap_or_default().to_vec(),
        ));
        if !path.is_absolute() {
            return (self.run.clone(), vec![]);
        }
        let notes = lines
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        (path, notes)
    }

    /// The run dir candidates after the first: in the runtime dir, then a
    /// fresh one under /tmp (`suffix` tells it apart).
    pub fn run_fallbacks(&self, uid: u32, suffix: &str) -> Vec<PathBuf> {
        let name = Self::run_name(&self.cache);
        self.runtime
            .iter()
            .map(|r| r.join(format!("lns-{name}")))
            .chain([PathBuf::from(format!("/tmp/lns-{uid}-{suffix}"))])
            .collect()
    }
}

pub(super) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_path("cannot make absolute", p)
}

/// A non-empty variable, as a path.
pub fn path_var(get: &impl Fn(&str) -> Option<OsString>, name: &str) -> Option<PathBuf> {
    get(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// One of Lectic's directories, found as Lectic finds it: `$lectic_var`,
/// else `$xdg_var/lectic`, else `$HOME/home_default`.
pub fn lectic_dir(
    get: &impl Fn(&str) -> Option<OsString>,
    lectic_var: &str,
    xdg_var: &str,
    home_default: &str,
) -> Option<PathBuf> {
    path_var(get, lectic_var)
        .or_else(|| path_var(get, xdg_var).map(|d| d.join("lectic")))
        .or_else(|| path_var(get, "HOME").map(|h| h.join(home_default)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    #[test]
    fn paths_follow_lectic_variables_and_keep_the_runroot_short() {
        let p = Paths::from_env(
            env_of(&[("LECTIC_CACHE", "/c/./d/../"), ("LECTIC_TEMP", "/t")]),
            4_294_967_294,
        )
        .unwrap();
        assert_eq!(p.cache, PathBuf::from("/c/nix-sandbox"));
        assert_eq!(p.tmp(), PathBuf::from("/c/nix-sandbox/tmp"));
        assert!(p.run.join("runroot").as_os_str().len() <= 50, "{:?}", p.run);
        for fallback in p.run_fallbacks(4_294_967_294, "abcdefgh") {
            assert!(
                fallback.join("runroot").as_os_str().len() <= 50,
                "{fallback:?}"
            );
        }
    }

    #[test]
    fn run_dir_depends_on_the_cache_only() {
        let a =
            Paths::from_env(env_of(&[("LECTIC_CACHE", "/c"), ("LECTIC_TEMP", "/t1")]), 1).unwrap();
        let b = Paths::from_env(env_of(&[("LECTIC_CACHE", "/c"), ("TMPDIR", "/t2")]), 1).unwrap();
        let c = Paths::from_env(env_of(&[("LECTIC_CACHE", "/other")]), 1).unwrap();
        assert_eq!(a.run, b.run);
        assert_ne!(a.run, c.run);
    }

    #[test]
    fn cache_falls_back_to_xdg_then_home() {
        let p = Paths::from_env(env_of(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]), 1).unwrap();
        assert_eq!(p.cache, PathBuf::from("/x/lectic/nix-sandbox"));
        let p = Paths::from_env(env_of(&[("HOME", "/h")]), 1).unwrap();
        assert_eq!(p.cache, PathBuf::from("/h/.cache/lectic/nix-sandbox"));
        assert!(Paths::from_env(env_of(&[]), 1).is_err());
    }
}
