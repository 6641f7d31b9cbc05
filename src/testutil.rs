//! What unit tests share: a scratch directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A new, empty directory under the system's temp dir, by its real path
/// (checks here walk real paths), removed with everything in it when
/// dropped. Unique per process and call, so parallel tests never share.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tmp = std::fs::canonicalize(std::env::temp_dir()).unwrap();
        let dir = tmp.join(format!("lns-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// A configuration as a call in `dir` would have it: its cache (with
/// Podman's store directory) in `dir/cache`, its workdir `dir/work`, our
/// options `args` and the command `true`.
pub fn config(dir: &TempDir, args: &[&str]) -> crate::config::Config {
    use clap::Parser;
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let argv = ["lectic-nix-sandbox"].iter().chain(args).chain(&["true"]);
    let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
    let env = [
        ("LECTIC_CACHE", dir.join("cache")),
        ("HOME", dir.join("home")),
    ]
    .map(|(k, v)| (k.to_owned(), v.display().to_string()));
    let cfg = crate::config::Config::build(
        cli,
        &work,
        &env,
        crate::sys::euid(),
        crate::sys::egid(),
        Default::default(),
        vec![],
    )
    .unwrap();
    std::fs::create_dir_all(cfg.paths.graphroot()).unwrap();
    cfg
}
