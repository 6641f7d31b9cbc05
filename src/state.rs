//! The state's layout and its locks, named in one place (as uv's
//! `CacheBucket` and cargo's `cache_lock.rs` do): the directories of the
//! cache, and every lock with its file, what it guards, how long a call
//! waits for it and where it stands in the order. `lock.rs` takes them;
//! the modules that own each piece of state say why.
//!
//! The cache is `$LECTIC_CACHE/nix-sandbox` (see `config::Paths`); a warm
//! container's own directory is `warm/<name>/` (container/warm_dir.rs),
//! whose `inside/` part the container sees.
//!
//! **Order.** A call takes locks only in the order of [`Guard`]'s variants
//! (it may skip any), so no two calls wait for each other in a circle:
//! `Worktree` while a `--worktree` is made (the call's first step),
//! `Store` to set up Podman's store once; `DevEnv` while a dev shell is
//! evaluated (before the image step, holding nothing else); `Image` for one
//! image record's build and load, then `Load` while loading into Podman;
//! then per warm container `WarmUse` (shared by every call; pruning takes
//! it exclusively, without waiting), `WarmBusy` (the watcher path only;
//! shared), `WarmCreate` (while the container is made), and `ProxyStart`
//! while its proxy is started. Three are held by processes rather than
//! calls, and calls only try them: `WarmAlive` (the watcher, for its whole
//! life, inside the container), `Proxy` (the proxy, for its whole life),
//! and `Reconcile` (a call comparing Podman's list with the stamps).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A directory of the cache.
///
/// **Versions.** A bucket's name is its layout: when what it holds changes
/// shape, it gets a new name (`warm` → `warm-v2`). Calls never read the
/// old one, a container recorded only there has no stamp in the new one
/// and is removed as drift (see container/prune.rs), and `--gc` removes
/// every entry of the cache that is no current bucket ([`stale`]): no
/// migration code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Podman's graphroot: containers, and images of a `--flake` image.
    PodmanRoot,
    /// Our `storage.conf`, `registries.conf`, `policy.json`, seccomp profile.
    PodmanConf,
    /// The flake copies we build (one per image key).
    Flakes,
    /// Image records.
    Images,
    /// One link per root filesystem, keeping it in the Nix store.
    GcRoots,
    /// HOMEs, one per configuration.
    WarmHome,
    /// The warm containers' state directories.
    Warm,
    /// The locks of the store, images and loads.
    Locks,
    /// Podman's TMPDIR and our scratch files.
    Tmp,
    /// Cached dev shell environments.
    DevEnv,
    /// The Nix configuration a dev shell's evaluation reads.
    Develop,
    /// What each `--worktree`'s command may write of git's state.
    Worktrees,
}

/// The cache's files besides its buckets: which run dir the store is
/// bound to (see `config::Paths::run_record`).
pub const RUN_RECORD: &str = "run-dir";

impl Bucket {
    pub const fn name(self) -> &'static str {
        match self {
            Bucket::PodmanRoot => "podman-root",
            Bucket::PodmanConf => "podman-conf",
            Bucket::Flakes => "flakes",
            Bucket::Images => "images",
            Bucket::GcRoots => "gcroots",
            Bucket::WarmHome => "warm-home",
            Bucket::Warm => "warm",
            Bucket::Locks => "locks",
            Bucket::Tmp => "tmp",
            Bucket::DevEnv => "dev-env",
            Bucket::Develop => "develop",
            Bucket::Worktrees => "worktrees",
        }
    }

    pub const ALL: [Bucket; 12] = [
        Bucket::PodmanRoot,
        Bucket::PodmanConf,
        Bucket::Flakes,
        Bucket::Images,
        Bucket::GcRoots,
        Bucket::WarmHome,
        Bucket::Warm,
        Bucket::Locks,
        Bucket::Tmp,
        Bucket::DevEnv,
        Bucket::Develop,
        Bucket::Worktrees,
    ];
}

/// The entries of the cache `cache` that are neither a current bucket nor
/// one of its files: an older layout's directories, a killed `--doctor`'s
/// probe. Nothing reads them; `--gc` removes them.
pub fn stale(cache: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return vec![];
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            // A running `--doctor`'s probe is its own.
            let probing = name
                .to_str()
                .and_then(|n| n.strip_prefix(".doctor-"))
                .is_some_and(|pid| Path::new("/proc").join(pid).exists());
            name != RUN_RECORD && !probing && !Bucket::ALL.iter().any(|b| name == b.name())
        })
        .map(|e| e.path())
        .collect()
}

/// How an image lock's file name begins.
const IMAGE_LOCK: &str = "image-";

/// Every lock the binary takes or tries, in the order they may be taken
/// (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard<'a> {
    /// `locks/worktree-<key16>.lock`: making or removing a worktree of one repository.
    Worktree(&'a str),
    /// `locks/store.lock`: choosing the run dir and setting up the store.
    Store,
    /// `dev-env/<key>.lock`: one dev shell's evaluation.
    DevEnv(&'a str),
    /// `locks/image-<key16>.lock`: one image record's build and load.
    Image(&'a str),
    /// `locks/load.lock`: loading any image into Podman, one at a time.
    Load,
    /// `warm/<name>/use.lock`: a call uses the container.
    WarmUse,
    /// `warm/<name>/inside/busy.lock`: a call is in a watcher's container.
    WarmBusy,
    /// `warm/<name>/create.lock`: the container is being made.
    WarmCreate,
    /// `warm/<name>/proxy-start.lock`: its proxy is being started.
    ProxyStart,
    /// `warm/<name>/inside/alive.lock`: held by the watcher while it runs.
    WarmAlive,
    /// `warm/<name>/proxy.lock`: held by the proxy while it runs.
    Proxy,
    /// `warm/.reconcile.lock`: comparing Podman's list with the stamps.
    Reconcile,
}

impl Guard<'_> {
    /// The lock file's name, in its directory.
    pub fn file_name(self) -> String {
        match self {
            Guard::Worktree(key) => format!("worktree-{}.lock", &key[..key.len().min(16)]),
            Guard::Store => "store.lock".into(),
            Guard::DevEnv(key) => format!("{key}.lock"),
            Guard::Image(key) => format!("{IMAGE_LOCK}{}.lock", &key[..key.len().min(16)]),
            Guard::Load => "load.lock".into(),
            Guard::WarmUse => "use.lock".into(),
            Guard::WarmBusy => "busy.lock".into(),
            Guard::WarmCreate => "create.lock".into(),
            Guard::ProxyStart => "proxy-start.lock".into(),
            Guard::WarmAlive => "alive.lock".into(),
            Guard::Proxy => "proxy.lock".into(),
            Guard::Reconcile => ".reconcile.lock".into(),
        }
    }

    /// Whether `file_name` is an image's lock (see [`Guard::Image`]).
    pub fn is_image_lock(file_name: &str) -> bool {
        file_name.starts_with(IMAGE_LOCK) && file_name.ends_with(".lock")
    }

    /// What a call waiting for it is waiting for (in errors and notes).
    pub fn what(self) -> &'static str {
        match self {
            Guard::Worktree(_) => "the worktree being made",
            Guard::Store => "the Podman store setup",
            Guard::DevEnv(_) => "the dev shell being evaluated",
            Guard::Image(_) => "the image build",
            Guard::Load => "loading an image",
            Guard::WarmUse | Guard::WarmBusy | Guard::WarmCreate => "the warm container",
            Guard::ProxyStart => "starting the proxy",
            Guard::WarmAlive => "the watcher",
            Guard::Proxy => "the proxy",
            Guard::Reconcile => "reconciling with Podman",
        }
    }

    /// How long a call waits for it (`--lock-timeout` overrides the
    /// long ones); zero for the locks that are only tried.
    pub fn wait(self) -> Duration {
        match self {
            // A build or an evaluation may take that long.
            Guard::DevEnv(_) | Guard::Image(_) | Guard::Load => Duration::from_secs(3600),
            // A checkout of a large repository.
            Guard::Worktree(_) => Duration::from_secs(600),
            Guard::Store => Duration::from_secs(120),
            // Another call making the container.
            Guard::WarmUse | Guard::WarmCreate => Duration::from_secs(600),
            // Only a command holding it exclusively would keep it: the
            // call makes a new container instead.
            Guard::WarmBusy => Duration::from_secs(2),
            // A proxy of an ended container goes within moments.
            Guard::ProxyStart | Guard::Proxy => Duration::from_secs(10),
            Guard::WarmAlive | Guard::Reconcile => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_and_lock_has_a_name_of_its_own() {
        let names: std::collections::HashSet<_> = Bucket::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names.len(), Bucket::ALL.len());
        assert!(!names.contains(RUN_RECORD));
        let guards = [
            Guard::Worktree("0123456789abcdef0123"),
            Guard::Store,
            Guard::Image("0123456789abcdef0123"),
            Guard::Load,
            Guard::WarmUse,
            Guard::WarmBusy,
            Guard::WarmCreate,
            Guard::ProxyStart,
            Guard::WarmAlive,
            Guard::Proxy,
            Guard::Reconcile,
        ];
        let files: std::collections::HashSet<_> = guards.iter().map(|g| g.file_name()).collect();
        assert_eq!(files.len(), guards.len());
        assert_eq!(
            Guard::Image("0123456789abcdef0123").file_name(),
            "image-0123456789abcdef.lock"
        );
        assert!(Guard::is_image_lock("image-0123456789abcdef.lock"));
        assert!(!Guard::is_image_lock(&Guard::Load.file_name()));
        // The watcher script opens these two by name.
        let script = crate::container::watcher::command().join(" ");
        for g in [Guard::WarmBusy, Guard::WarmAlive] {
            assert!(script.contains(&format!("$d/{}", g.file_name())), "{g:?}");
        }
    }

    #[test]
    fn only_what_is_no_current_bucket_is_stale() {
        let cache = crate::testutil::TempDir::new("stale");
        for b in [Bucket::Warm, Bucket::Images, Bucket::PodmanRoot] {
            std::fs::create_dir(cache.join(b.name())).unwrap();
        }
        std::fs::write(cache.join(RUN_RECORD), "/tmp/x\n").unwrap();
        // An older layout's directory and a killed probe's file.
        std::fs::create_dir(cache.join("warm-state")).unwrap();
        std::fs::write(cache.join(".doctor-0"), "").unwrap();
        let running = format!(".doctor-{}", std::process::id());
        std::fs::write(cache.join(&running), "").unwrap();
        let mut stale = stale(&cache);
        stale.sort();
        assert_eq!(stale, [cache.join(".doctor-0"), cache.join("warm-state")]);
        assert!(super::stale(&cache.join("missing")).is_empty());
    }
}
