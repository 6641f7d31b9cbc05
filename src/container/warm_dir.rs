//! A warm container's state directory, `warm/<name>/`, where the host
//! keeps what only it may touch, with one subdirectory, `inside/`, that is
//! all the container sees of it (mounted read-only at the watcher's
//! `MOUNT`). A command inside can open and lock whatever it sees, so no
//! lock the host relies on lives there.
//!
//! Host only:
//!
//! - `use.lock`: held shared by every call for its whole length, taken
//!   exclusively by whoever removes the container (a pruning call). Lock
//!   files are never deleted: a waiter that opened a deleted one would lock
//!   a file nobody else sees.
//! - `create.lock`: held exclusively while a call (re)creates the container.
//! - `state.json`: what the container was made of, for `--status`;
//! - `main`: the `pid:start` identity of the container's main process (the
//!   agent, or catatonit above the watcher), recorded when it was made: a
//!   process answering on the agent's socket is the agent only if it is
//!   that process, and leftovers of a call are found below it.
//! - `kept`: the ids of calls whose processes may outlive them
//!   (`--keep-processes`), for the `podman exec` path.
//!
//! `inside/`, read-only in the container:
//!
//! - `last-use`: its mtime is the end of the last call (the stamp);
//! - `ttl`: the idle TTL in seconds, that of the last call;
//! - `alive.lock`, `busy.lock`: the shell watcher's (see watcher.rs): it
//!   holds `alive.lock` while it lives, calls hold `busy.lock` shared, and
//!   it exits only with `busy.lock` exclusive. A command that holds them
//!   keeps only its own container alive, and only until a call prunes it:
//!   pruning goes by `use.lock`, which no command can reach.
//! - `sock/agent`: the agent's socket (see agent/), in a directory mounted
//!   read-write, and `agent`, where the agent binary is mounted.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::state::{Bucket, Guard};

use super::Spec;

/// The part of the state directory the container sees.
pub const INSIDE_DIR: &str = "inside";
/// The agent socket's directory, relative to `inside/` (so also to where
/// that is mounted inside the container).
pub const SOCKET_DIR: &str = "sock";
/// Where the agent binary is mounted, relative to the same.
pub const AGENT_FILE: &str = "agent";

/// A container's init (catatonit, PID 1 inside) and agent, each as a
/// `pid:start` identity (see `sys::identity`) in the host's pid namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Main {
    pub init: String,
    pub agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WarmDir {
    pub name: String,
    dir: PathBuf,
    inside: PathBuf,
    /// The Podman store (graphroot) its container is made in.
    store: PathBuf,
}

pub fn root(cfg: &Config) -> PathBuf {
    cfg.paths.bucket(Bucket::Warm)
}

impl WarmDir {
    pub fn new(cfg: &Config, name: &str) -> WarmDir {
        Self::host(name, root(cfg).join(name), cfg.paths.graphroot())
    }

    fn host(name: &str, dir: PathBuf, store: PathBuf) -> WarmDir {
        WarmDir {
            name: name.to_owned(),
            inside: dir.join(INSIDE_DIR),
            dir,
            store,
        }
    }

    /// The directory as the agent sees it inside the container: `inside/`
    /// mounted at `dir`, and nothing of the host's part.
    pub fn at(dir: &Path) -> WarmDir {
        WarmDir {
            name: String::new(),
            dir: PathBuf::new(),
            inside: dir.to_owned(),
            store: PathBuf::new(),
        }
    }

    /// The directory at `dir` as the host sees it, for a process that was
    /// given its path (the proxy, see proxy/daemon.rs).
    pub fn open(dir: &Path) -> WarmDir {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        Self::host(&name, dir.to_owned(), PathBuf::new())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What is mounted into the container.
    pub fn inside(&self) -> &Path {
        &self.inside
    }

    /// The skeleton root of its container, for a root filesystem (root.rs).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn use_lock(&self) -> PathBuf {
        self.dir.join(Guard::WarmUse.file_name())
    }

    pub fn create_lock(&self) -> PathBuf {
        self.dir.join(Guard::WarmCreate.file_name())
    }

    /// Held by the container's proxy for as long as it runs.
    pub fn proxy_lock(&self) -> PathBuf {
        self.dir.join(Guard::Proxy.file_name())
    }

    pub fn proxy_start_lock(&self) -> PathBuf {
        self.dir.join(Guard::ProxyStart.file_name())
    }

    /// The allowlist the proxy serves, one pattern per line.
    pub fn proxy_rules(&self) -> PathBuf {
        self.dir.join("proxy.allow")
    }

    /// Which proxy runs, and for which init.
    fn proxy_pid(&self) -> PathBuf {
        self.dir.join("proxy.pid")
    }

    /// What the proxy said when it could not start.
    pub fn proxy_err(&self) -> PathBuf {
        self.dir.join("proxy.err")
    }

    /// The connections the proxy refused (see proxy/log.rs).
    pub fn refusal_log(&self) -> PathBuf {
        self.dir.join("refused.log")
    }

    pub fn alive_lock(&self) -> PathBuf {
        self.inside.join(Guard::WarmAlive.file_name())
    }

    pub fn busy_lock(&self) -> PathBuf {
        self.inside.join(Guard::WarmBusy.file_name())
    }

    /// The agent's socket, in a directory of its own (mode 0700) that is
    /// mounted read-write into the container.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir().join("agent")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.inside.join(SOCKET_DIR)
    }

    /// Where the agent binary is mounted (an empty file on the host).
    pub fn agent_mountpoint(&self) -> PathBuf {
        self.inside.join(AGENT_FILE)
    }

    fn last_use(&self) -> PathBuf {
        self.inside.join("last-use")
    }

    fn ttl_file(&self) -> PathBuf {
        self.inside.join("ttl")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn main_file(&self) -> PathBuf {
        self.dir.join("main")
    }

    fn kept_file(&self) -> PathBuf {
        self.dir.join("kept")
    }

    /// Creates the directories and the lock files (the watcher opens its
    /// locks read-only, so they must exist before the container starts),
    /// and a fresh, empty socket directory: whatever an earlier container
    /// left there (a socket, a directory, a symlink) goes.
    pub fn prepare(&self) -> Result<()> {
        self.ensure_locks()?;
        let sock_dir = self.socket_dir();
        fsutil::remove_any(&sock_dir)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&sock_dir)
            .with_path("cannot create directory", &sock_dir)?;
        std::fs::File::create(self.agent_mountpoint())
            .with_path("cannot create", self.agent_mountpoint())?;
        let _ = std::fs::remove_file(self.kept_file());
        Ok(())
    }

    /// Creates the directories and the lock files, if missing.
    pub fn ensure_locks(&self) -> Result<()> {
        fsutil::ensure_dir(&self.inside)?;
        for lock in [
            self.use_lock(),
            self.create_lock(),
            self.alive_lock(),
            self.busy_lock(),
        ] {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&lock)
                .with_path("cannot create lock file", &lock)?;
        }
        Ok(())
    }

    /// Records who the container's init and agent are.
    pub fn set_main(&self, main: &Main) -> Result<()> {
        let mut fields = vec![("init", main.init.as_str())];
        if let Some(agent) = &main.agent {
            fields.push(("agent", agent));
        }
        write_fields(&self.main_file(), &fields)
    }

    /// Who the container's init and agent are, as recorded at creation.
    /// The pid of its container's init, while it runs.
    pub fn live_init(&self) -> Option<u32> {
        crate::sys::live_pid(&self.main()?.init)
    }

    pub fn main(&self) -> Option<Main> {
        let mut f = read_fields(&self.main_file())?;
        Some(Main {
            init: f.remove("init")?,
            agent: f.remove("agent"),
        })
    }

    /// Records which proxy runs (`pid:start`) and for which init.
    pub fn set_proxy(&self, proxy: &str, init: &str) -> Result<()> {
        write_fields(&self.proxy_pid(), &[("proxy", proxy), ("init", init)])
    }

    /// The proxy recorded and the init it serves.
    pub fn proxy(&self) -> Option<(String, String)> {
        let mut f = read_fields(&self.proxy_pid())?;
        Some((f.remove("proxy")?, f.remove("init")?))
    }

    /// Remembers that the processes of call `id` may outlive it.
    pub fn keep_call(&self, id: &str) -> Result<()> {
        let path = self.kept_file();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_path("cannot write", &path)?;
        writeln!(f, "{id}").with_path("cannot write", &path)
    }

    /// The ids of calls whose processes may outlive them.
    pub fn kept_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.kept_file())
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The TTL of the last call, if a stamp is there.
    pub fn ttl(&self) -> Option<Duration> {
        let text = std::fs::read_to_string(self.ttl_file()).ok()?;
        text.trim().parse().ok().map(Duration::from_secs)
    }

    /// Time since the last call ended (or the current one started).
    pub fn idle(&self) -> Option<Duration> {
        let modified = std::fs::metadata(self.last_use()).ok()?.modified().ok()?;
        Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )
    }

    /// Whether a stamp exists at all.
    pub fn stamped(&self) -> bool {
        self.last_use().exists()
    }

    /// Idle past the TTL; a missing stamp counts as expired (the container
    /// is unknown or on its way out).
    pub fn expired(&self) -> bool {
        self.left().is_none()
    }

    /// How much of the idle TTL is left; None once expired.
    pub fn left(&self) -> Option<Duration> {
        let (idle, ttl) = (self.idle()?, self.ttl()?);
        ttl.checked_sub(idle)
    }

    /// Records a new container: what it is made of, its TTL, a fresh stamp.
    pub fn record(&self, spec: &Spec, ttl: Duration) -> Result<()> {
        let state = json!({
            "name": self.name,
            "image": spec.image,
            "workdir": spec.workdir,
            "home": spec.home,
            "volumes": spec.volumes.iter().map(|v| v.podman_arg()).collect::<Vec<_>>(),
            "allow_net": spec.allow_net,
            "allow_hosts": spec.allow_hosts.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "podman_extra": spec.podman_extra,
            "store": self.store_id(),
        });
        fsutil::write_atomic(&self.state_file(), state.to_string().as_bytes())?;
        self.set_ttl(ttl)?;
        self.touch()
    }

    /// The last call's TTL is the one that counts.
    pub fn set_ttl(&self, ttl: Duration) -> Result<()> {
        if self.ttl() != Some(Duration::from_secs(ttl.as_secs())) {
            fsutil::write_atomic(&self.ttl_file(), format!("{}\n", ttl.as_secs()).as_bytes())?;
        }
        Ok(())
    }

    /// Moves the stamp to now (creating it if missing).
    pub fn touch(&self) -> Result<()> {
        let path = self.last_use();
        let open = || {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::File::options()
                .create(true)
                .append(true)
                .custom_flags(crate::sys::O_NOFOLLOW)
                .open(&path)
        };
        let f = match open() {
            Ok(f) => f,
            // Something else in its place (a directory, say): the stamp
            // is ours to make again.
            Err(_) if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) => {
                fsutil::remove_any(&path)?;
                open().with_path("cannot write", &path)?
            }
            Err(e) => return Err(crate::error::Error::io("cannot write", &path, e)),
        };
        f.set_modified(SystemTime::now())
            .with_path("cannot touch", &path)
    }

    /// Moves the stamp `by` into the past, as if the last call ended then.
    #[cfg(test)]
    pub(crate) fn age(&self, by: Duration) {
        std::fs::File::options()
            .write(true)
            .open(self.last_use())
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }

    /// Removes the stamp, the stamp first: a half-cleared directory reads
    /// as "no container". The lock files stay (see the module comment).
    pub fn clear(&self) {
        for f in [
            self.last_use(),
            self.ttl_file(),
            self.state_file(),
            self.main_file(),
        ] {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Removes the skeleton root, once its container is gone (with
    /// `--writable-root` it holds what the command wrote).
    pub fn remove_root(&self) {
        let _ = fsutil::remove_any(&self.root());
    }

    /// Which Podman store (its graphroot's device and inode) holds the
    /// container's layers; None if there is none.
    fn store_id(&self) -> Option<String> {
        let (dev, ino) = fsutil::file_id(&std::fs::metadata(&self.store).ok()?);
        Some(format!("{dev}:{ino}"))
    }

    /// Whether the store the container was made in has been replaced
    /// (removed, made again): the container may still run, but on layers
    /// that are gone, and Podman no longer knows it.
    pub fn store_replaced(&self) -> bool {
        let recorded = self
            .state()
            .and_then(|s| s.get("store").and_then(Value::as_str).map(str::to_owned));
        recorded.is_some_and(|r| Some(r) != self.store_id())
    }

    /// Whether `state.json` is there (cheaper than reading it).
    pub fn recorded(&self) -> bool {
        self.state_file().exists()
    }

    /// What the container was made of, as recorded.
    pub fn state(&self) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(self.state_file()).ok()?).ok()
    }
}

/// Every warm directory under the cache.
/// Writes `key=value` lines, the form of `main` and `proxy.pid`.
fn write_fields(path: &Path, fields: &[(&str, &str)]) -> Result<()> {
    let text: String = fields.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    fsutil::write_atomic(path, text.as_bytes())
}

/// The `key=value` lines of `path` (the first of each key).
fn read_fields(path: &Path) -> Option<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = std::collections::HashMap::new();
    for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
        fields.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    }
    Some(fields)
}

pub fn all(cfg: &Config) -> Result<Vec<WarmDir>> {
    let dir = root(cfg);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_path("cannot read", &dir),
    };
    let mut dirs: Vec<WarmDir> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            super::is_warm_name(&name)
                .then(|| WarmDir::host(&name, e.path(), cfg.paths.graphroot()))
        })
        .collect();
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (crate::testutil::TempDir, WarmDir) {
        let t = crate::testutil::TempDir::new("warm-dir");
        let dir = t.join("n");
        let d = WarmDir::host("n", dir.clone(), dir.join("podman-root"));
        (t, d)
    }

    #[test]
    fn a_missing_stamp_is_expired_and_a_fresh_one_is_not() {
        let (_scratch, d) = scratch();
        d.prepare().unwrap();
        assert!(d.expired());
        d.set_ttl(Duration::from_secs(60)).unwrap();
        d.touch().unwrap();
        assert!(!d.expired());
        d.clear();
        assert!(!d.stamped() && d.expired());
        assert!(d.use_lock().exists(), "locks survive clearing");
    }

    #[test]
    fn an_old_stamp_is_expired() {
        let (_scratch, d) = scratch();
        d.prepare().unwrap();
        d.set_ttl(Duration::from_secs(5)).unwrap();
        d.touch().unwrap();
        d.age(Duration::from_secs(10));
        assert!(d.expired());
        assert_eq!(d.ttl(), Some(Duration::from_secs(5)));
    }
}
