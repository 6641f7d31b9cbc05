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

pub mod list;
pub mod prune;
pub mod root;
pub mod seccomp;
pub mod warm_dir;
pub mod watcher;

use std::collections::HashSet;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::ExecVia;
use crate::config::{Checked, Config, Hardening, Volume};
use crate::digest::Key;
use crate::error::{Error, IoContext, Result};
use crate::lock::{self, Lock, Mode};
use crate::proxy::rules::Rules;
use crate::store::Podman;
use crate::{agent, develop, fsutil, image, stop, sys, verbose};

use crate::image::record::Record;
use warm_dir::{AGENT_FILE, Main, SOCKET_DIR, WarmDir};

pub const PREFIX: &str = "lectic-nix-sandbox-";
/// Every container of ours carries this label (and the name prefix).
pub const LABEL: &str = "io.github.lectic.nix-sandbox";
/// Where the sandbox HOME is mounted.
pub const HOME_TARGET: &str = "/home/sandbox";

/// How long a call waits for a warm container's use or create lock.
const WARM_LOCK_LIMIT: Duration = Duration::from_secs(600);
/// How long killing a `podman exec` call's leftovers may take, per phase
/// (see `stop::kill_until_none`): each round reads the host's /proc.
const REAP_LIMIT: Duration = Duration::from_secs(10);
/// How long a call on the watcher path waits for `busy.lock`, which only a
/// command holding it exclusively would keep from it.
const BUSY_LIMIT: Duration = Duration::from_secs(2);
/// The size of the tmpfs at /run (which holds only our state mount).
const RUN_SIZE: &str = "64m";
/// How long a new container's agent or watcher may take to show it is alive.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Everything that shapes a container.
#[derive(Debug, Clone)]
pub struct Spec {
    pub image: String,
    /// The ID `image` must name (see `image::image_matches`).
    pub image_id: String,
    pub workdir: PathBuf,
    pub home: PathBuf,
    pub volumes: Vec<Volume>,
    pub allow_net: bool,
    /// The proxy's allowlist (`--allow-host`), empty with `--allow-net`.
    pub allow_hosts: Rules,
    /// With an allowlist: this binary, which forwards the proxy's
    /// connections inside, as the agent or else as the wrapper of the
    /// main process (see proxy/forward.rs).
    pub forwarder: Option<PathBuf>,
    pub rootless: bool,
    pub podman_extra: Vec<String>,
    pub hardening: Hardening,
    /// Whether the image runs the idle watcher (see watcher.rs); it is
    /// decided by the image, so it is not part of the name.
    pub watcher: bool,
    /// The agent binary to mount as the main process (see agent/), if the
    /// call wants the agent and this binary can be it.
    pub agent: Option<PathBuf>,
    /// With --nix-develop: the host's daemon socket and the Nix client
    /// configuration to mount (see develop.rs).
    pub nix_daemon: Option<NixDaemon>,
    /// What sets the command's environment, apart from the values of
    /// passed host variables (see `env::identity`): tools with different
    /// secrets get different containers and HOMEs.
    pub env_identity: Option<String>,
    /// The mount sources as they were checked, verified in the new
    /// container before it runs anything (see `verify_mounts`).
    pub checked: Vec<Checked>,
    /// Workdir paths hidden from the command (`--hide`).
    pub hide: Vec<String>,
    /// The root filesystem run from the Nix store, when the record is one
    /// (then `image` is its store path).
    pub rootfs: Option<crate::image::record::Rootfs>,
}

/// Entries of the workdir's top level the command may read but not change:
/// what Lectic reads its configuration from (a command could rewrite its
/// own `sandbox:` line) and git's directory, whose config, hooks and
/// `commondir` decide what git runs on the host. Only the top level: its
/// entries are mount points of a directory that is itself one, so they can
/// be neither renamed nor replaced.
const READ_ONLY: &[&str] = &["lectic.yaml", "*.lec", ".git"];
/// How deep and how many workdir entries `--hide` patterns are looked
/// for in, when a container is made; past either, no container is made.
const HIDE_DEPTH: usize = 8;
const HIDE_ENTRIES: usize = 500_000;

/// What a dev shell needs of the host's Nix.
#[derive(Debug, Clone)]
pub struct NixDaemon {
    pub socket: PathBuf,
    /// The socket's inode.
    pub socket_id: u64,
    pub conf_dir: PathBuf,
}

impl Spec {
    /// Without `--home`, HOME is a directory per configuration (image
    /// excepted, so a rebuilt image keeps its HOME), created on first use.
    pub fn new(cfg: &Config, image: &Record) -> Result<Spec> {
        let mut spec = Spec {
            image: image.image.clone(),
            image_id: image.id.clone(),
            watcher: image.watcher,
            workdir: cfg.workdir.clone(),
            home: cfg.home.clone().unwrap_or_default(),
            volumes: cfg.volumes.clone(),
            allow_net: cfg.allow_net,
            allow_hosts: if cfg.allow_net {
                if !cfg.allow_hosts.is_empty() {
                    verbose!("--allow-net gives the whole network: --allow-host filters nothing");
                }
                Rules::default()
            } else {
                cfg.allow_hosts.clone()
            },
            forwarder: None,
            rootless: cfg.rootless(),
            podman_extra: cfg.podman_extra.clone(),
            hardening: cfg.hardening.clone(),
            agent: match (cfg.exec_via, agent::binary::usable()) {
                (ExecVia::Agent, Ok(exe)) => Some(exe.to_owned()),
                (ExecVia::Agent, Err(why)) => {
                    verbose!("{why}; warm calls use podman exec");
                    None
                }
                (ExecVia::Podman, _) => None,
            },
            nix_daemon: None,
            env_identity: cfg.env_identity.clone(),
            checked: cfg.checked.clone(),
            hide: cfg.hide.clone(),
            rootfs: image.rootfs.clone(),
        };
        if !spec.allow_hosts.is_empty() {
            let exe = agent::binary::usable().map_err(|why| {
                Error::usage(format!(
                    "--allow-host: {why}, and its proxy needs this binary inside the container; use a static build (see the README), or --allow-net"
                ))
            })?;
            spec.forwarder = Some(exe.to_owned());
        }
        if cfg.develop.is_some() {
            // The host's /nix/store replaces the image's inside: it must
            // still hold the image's closure.
            if !std::path::Path::new(&image.store_path).exists() {
                return Err(Error::usage(format!(
                    "--nix-develop: the image's store path {} is gone from the host's store (garbage-collected?); run once with --rebuild",
                    image.store_path
                )));
            }
            let socket = develop::daemon_socket();
            spec.nix_daemon = Some(NixDaemon {
                socket_id: std::os::unix::fs::MetadataExt::ino(
                    &std::fs::metadata(&socket).with_path("cannot read", &socket)?,
                ),
                socket,
                conf_dir: develop::client_conf_dir(cfg)?,
            });
        }
        if cfg.home.is_none() {
            let key = spec.key(false);
            spec.home = cfg.paths.cache.join("warm-home").join(&key[..16]);
            fsutil::ensure_dir(&spec.home)?;
        }
        Ok(spec)
    }

    fn key(&self, with_image_and_home: bool) -> String {
        let mut k = Key::new("container-v1");
        if with_image_and_home {
            k.field("image", self.image.as_bytes());
            k.field("home", self.home.as_os_str().as_encoded_bytes());
        }
        k.field("workdir", self.workdir.as_os_str().as_encoded_bytes());
        for v in &self.volumes {
            k.field("volume", v.podman_arg().as_bytes());
        }
        k.field("network", if self.allow_net { b"on" } else { b"off" });
        for p in &self.allow_hosts.0 {
            k.field("allow-host", p.to_string().as_bytes());
        }
        // Only when set, so a plain configuration keeps its HOME.
        if let Some(id) = &self.env_identity {
            k.field("env", id.as_bytes());
        }
        for h in &self.hide {
            k.field("hide", h.as_bytes());
        }
        if let Some(d) = &self.nix_daemon {
            k.field("nix-daemon", d.socket.as_os_str().as_encoded_bytes());
        }
        k.field("userns", if self.rootless { b"keep-id" } else { b"root" });
        for a in self.hardening_args() {
            k.field("hardening", a.as_bytes());
        }
        for a in &self.podman_extra {
            k.field("podman-extra", a.as_bytes());
        }
        if with_image_and_home {
            // A restarted daemon has a new socket, which a bind mount of
            // the old one would not see: a new container then (but the
            // same HOME).
            if let Some(d) = &self.nix_daemon {
                k.field("nix-daemon-socket", &d.socket_id.to_le_bytes());
            }
            // Which main process, which agent protocol it speaks, and
            // which layout of the state mount it expects.
            k.field(
                "main",
                if self.agent.is_some() {
                    agent::wire::MAGIC
                } else {
                    watcher::VERSION
                },
            );
        }
        k.hex()
    }

    /// The words before a main process that is not the agent: the wrapper
    /// that forwards the proxy's connections (`--allow-host`), if any,
    /// followed by `--` when a command follows.
    pub fn forward_prefix(&self, command_follows: bool) -> Vec<String> {
        if self.forwarder.is_none() {
            return vec![];
        }
        let mut v = vec![
            format!("{}/{AGENT_FILE}", watcher::MOUNT),
            crate::proxy::forward::ARG.into(),
        ];
        if command_follows {
            v.push("--".into());
        }
        v
    }

    /// `lectic-nix-sandbox-<hash>`.
    pub fn name(&self) -> String {
        format!("{PREFIX}{}", &self.key(true)[..16])
    }

    /// Capabilities, privileges, the root filesystem, limits: all shut
    /// unless an option opened them.
    fn hardening_args(&self) -> Vec<String> {
        let h = &self.hardening;
        // Podman refuses dropping and adding all at once.
        let mut a: Vec<String> = if h.cap_add.iter().any(|c| c == "ALL") {
            vec![]
        } else {
            vec!["--cap-drop=all".into()]
        };
        a.extend(h.cap_add.iter().map(|c| format!("--cap-add={c}")));
        if h.no_new_privileges {
            a.push("--security-opt=no-new-privileges".into());
        }
        if let Some(p) = &h.seccomp {
            a.push(format!("--security-opt=seccomp={}", p.display()));
        }
        if h.read_only {
            a.push("--read-only".into());
        }
        // Bounded, or a command could fill the host's memory through them.
        for dir in ["/tmp", "/var/tmp"] {
            a.push(format!(
                "--tmpfs={dir}:rw,nosuid,nodev,mode=1777,size={}",
                h.tmp_size
            ));
        }
        a.push(format!(
            "--tmpfs=/run:rw,nosuid,nodev,mode=755,size={RUN_SIZE}"
        ));
        if h.pids_via_ulimit {
            // Rootless on cgroup v1 Podman cannot set the pids limit (and
            // says so on every `podman run`); the process limit of the
            // container's user namespace holds it.
            if let Some(n) = h.pids_limit {
                a.push(format!("--ulimit=nproc={n}:{n}"));
            }
        } else {
            a.push(format!(
                "--pids-limit={}",
                h.pids_limit.map_or(-1, |n| n as i64)
            ));
        }
        // Podman ignores them there, and says so on the command's stderr.
        if !h.pids_via_ulimit {
            if let Some(m) = &h.memory {
                a.push(format!("--memory={m}"));
            }
            if let Some(c) = &h.cpus {
                a.push(format!("--cpus={c}"));
            }
        }
        a
    }

    /// Mounts over workdir paths, found as the container is made: the
    /// [`READ_ONLY`] entries bound read-only onto themselves, the `--hide`
    /// ones covered (a file by /dev/null, a directory by an empty
    /// read-only tmpfs), and the directories between the workdir and a
    /// match bound onto themselves, so the command cannot rename them to
    /// move the match out of a path pattern's way or deeper than the walk
    /// looks. Symlinks are left alone: a command may have put them there. A directory that
    /// cannot be read fails the call: what it holds cannot be hidden.
    /// Returns the options and the bound sources, to verify in the new
    /// container like the other mounts.
    pub fn workdir_guards(&self) -> Result<(Vec<String>, Vec<Checked>)> {
        let mut args = Vec::new();
        let mut checked = Vec::new();
        let usable = |path: &std::path::Path| {
            let s = path.display().to_string();
            if s.contains([':', ',']) {
                Err(Error::usage(format!(
                    "{s}: cannot be protected or hidden, its path has ':' or ','; rename it"
                )))
            } else {
                Ok(s)
            }
        };
        let mut bind = |path: PathBuf, meta: &std::fs::Metadata, mode: &str| -> Result<()> {
            let s = usable(&path)?;
            args.extend(["--volume".into(), format!("{s}:{s}:{mode}")]);
            checked.push(Checked {
                option: "the workdir's",
                target: path.clone(),
                path,
                id: fsutil::file_id(meta),
            });
            Ok(())
        };
        let depth = if self.hide.is_empty() { 1 } else { HIDE_DEPTH };
        let mut hidden: Vec<PathBuf> = Vec::new();
        let mut pinned: Vec<PathBuf> = Vec::new();
        let mut covers = Vec::new();
        for (rel, meta) in walk(&self.workdir, depth, HIDE_ENTRIES)? {
            // What lies in a hidden directory is hidden with it.
            if hidden.iter().any(|h| rel.starts_with(h)) {
                continue;
            }
            let path = self.workdir.join(&rel);
            let name = rel.file_name().unwrap_or_default().to_string_lossy();
            let rel_str = rel.to_string_lossy();
            let by_path = self
                .hide
                .iter()
                .any(|p| p.contains('/') && crate::env::glob_match(p, &rel_str));
            let by_name = self
                .hide
                .iter()
                .any(|p| !p.contains('/') && crate::env::glob_match(p, &name));
            if by_path || by_name {
                let s = usable(&path)?;
                if meta.is_dir() {
                    hidden.push(rel.clone());
                    covers.push(format!("--tmpfs={s}:ro,size=4k,mode=755"));
                } else {
                    covers.extend(["--volume".into(), format!("/dev/null:{s}:ro")]);
                }
                // Its directories cannot be renamed either: not out of a
                // path pattern's way, nor deeper than the walk looks.
                pin_ancestors(&mut pinned, &rel);
            } else if rel.components().count() == 1
                && READ_ONLY
                    .iter()
                    .any(|p| crate::env::glob_match(p, &rel_str))
            {
                bind(path, &meta, "ro")?;
            }
        }
        for name in ["lectic.yaml", ".git"] {
            if std::fs::symlink_metadata(self.workdir.join(name)).is_ok_and(|m| m.is_symlink()) {
                verbose!("{name} is a symlink: the command can replace it; make it a regular file");
            }
        }
        // What git on the host reads outside `.git`: each submodule's `.git`
        // (its gitdir pointer; the submodule's directory is pinned, so it
        // cannot be swapped for another) and a hooks directory in the
        // worktree (`core.hooksPath`, as husky sets it).
        let git = git_outside_dot_git(&self.workdir);
        for rel in &git {
            pin_ancestors(&mut pinned, rel);
        }
        // Outer directories first: Podman mounts in the order given.
        pinned.sort_by_key(|p| p.components().count());
        for dir in pinned {
            let path = self.workdir.join(&dir);
            // A symlink would mount where it points: never bound.
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => bind(path, &meta, "rw")?,
                _ => verbose!("{}: not a directory, not pinned", path.display()),
            }
        }
        for rel in git {
            let path = self.workdir.join(&rel);
            if let Ok(meta) = std::fs::symlink_metadata(&path)
                && !meta.is_symlink()
            {
                bind(path, &meta, "ro")?;
            }
        }
        args.extend(covers);
        Ok((args, checked))
    }

    /// What the container is made of, as the last options and the first
    /// word of `podman create`/`run`: the image, or `--rootfs` and the
    /// skeleton made for this container (see root.rs).
    pub fn image_args(&self, skeleton: &Path) -> Vec<String> {
        match &self.rootfs {
            Some(_) => vec!["--rootfs".into(), skeleton.display().to_string()],
            None => vec![self.image.clone()],
        }
    }

    /// What a new container needs on the host, before `podman run`: our
    /// seccomp profile, and for a root filesystem its skeleton root at
    /// `dir` (see root.rs), once its store path is still there (else the
    /// record must be rebuilt).
    pub fn prepare_host(&self, dir: &Path) -> Result<()> {
        if let Some(p) = &self.hardening.seccomp {
            seccomp::ensure(p)?;
        }
        let Some(r) = &self.rootfs else {
            return Ok(());
        };
        if !Path::new(&self.image).is_dir() {
            return Err(Error::ImageMissing(self.image.clone()));
        }
        let mut targets = root::fixed_targets();
        targets.push(root::Target::dir(&self.workdir));
        targets.push(root::Target::dir(HOME_TARGET));
        for v in &self.volumes {
            targets.push(if v.host.is_dir() {
                root::Target::dir(&v.target)
            } else {
                root::Target::file(&v.target)
            });
        }
        if self.nix_daemon.is_some() {
            targets.extend([
                root::Target::dir("/nix/store"),
                root::Target::file(develop::SOCKET_TARGET),
                root::Target::dir("/etc/nix"),
            ]);
        } else {
            targets.extend(r.closure.iter().map(|p| {
                if Path::new(p).is_dir() {
                    root::Target::dir(p)
                } else {
                    root::Target::file(p)
                }
            }));
        }
        let user = self.rootless.then(|| root::User {
            uid: sys::euid(),
            gid: sys::egid(),
            name: sys::user_name(sys::euid()),
        });
        root::make(dir, Path::new(&self.image), &targets, user.as_ref())
    }

    /// `podman run` options shared by warm and one-shot containers.
    pub fn run_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--label".into(),
            format!("{LABEL}=1"),
            // catatonit as PID 1 reaps every orphan of every call.
            "--init".into(),
            "--pull".into(),
            "never".into(),
        ];
        if !self.allow_net {
            a.extend(["--network".into(), "none".into()]);
        }
        // The only way out: the proxy, on the container's own loopback.
        if !self.allow_hosts.is_empty() {
            for (name, value) in crate::proxy::env() {
                a.extend(["--env".into(), format!("{name}={value}")]);
            }
        }
        a.extend(self.hardening_args());
        if self.rootless {
            // The command runs as the invoking user, so what it writes into
            // the workdir belongs to them.
            a.push("--userns=keep-id".into());
        }
        let workdir = Volume {
            host: self.workdir.clone(),
            target: self.workdir.clone(),
            read_only: false,
        };
        let home = Volume {
            host: self.home.clone(),
            target: HOME_TARGET.into(),
            read_only: false,
        };
        for v in [&workdir, &home].into_iter().chain(&self.volumes) {
            a.extend(["--volume".into(), v.podman_arg()]);
        }
        if let Some(r) = &self.rootfs {
            a.extend([
                "--label".into(),
                format!("{}={}", list::ROOTFS_LABEL, self.image),
            ]);
            // What an image's config would set; the call's own come later.
            for e in &r.env {
                a.extend(["--env".into(), e.clone()]);
            }
            // Exactly the closure, read-only (a dev shell mounts the
            // host's whole store below instead).
            if self.nix_daemon.is_none() {
                for p in &r.closure {
                    a.extend(["--volume".into(), format!("{p}:{p}:ro")]);
                }
            }
        }
        if let Some(d) = &self.nix_daemon {
            // The dev shell's store paths, the daemon that builds more, and
            // a client configuration; the store stays read-only.
            // The socket itself, not its directory: that is often only
            // for a group (nix-users) the container's user does not keep.
            a.extend([
                "--volume".into(),
                "/nix/store:/nix/store:ro".into(),
                "--volume".into(),
                format!("{}:{}", d.socket.display(), develop::SOCKET_TARGET),
                "--volume".into(),
                format!("{}:/etc/nix:ro", d.conf_dir.display()),
                "--env".into(),
                "NIX_REMOTE=daemon".into(),
                "--env".into(),
                format!("NIX_DAEMON_SOCKET_PATH={}", develop::SOCKET_TARGET),
            ]);
        }
        a.extend([
            "--workdir".into(),
            self.workdir.display().to_string(),
            "--env".into(),
            format!("HOME={HOME_TARGET}"),
        ]);
        a.extend(self.podman_extra.iter().cloned());
        a
    }
}

/// A warm container in use by this call.
#[derive(Debug)]
pub struct Warm {
    pub name: String,
    /// A connection to its agent, if it has one.
    pub agent: Option<UnixStream>,
    /// Whether its image has a shell (and the watcher's tools).
    pub has_shell: bool,
    /// Its proxy's refusal log and how long it was when the call began.
    refusals: Option<(PathBuf, u64)>,
    dir: WarmDir,
    _busy: Option<Lock>,
    _in_use: Lock,
}

impl Warm {
    /// Whether the container's init still runs (a command may kill it).
    pub fn alive(&self) -> bool {
        self.dir.live_init().is_some()
    }

    /// Whether the container's init is gone, or goes within `limit` (it
    /// outlives its agent by a moment when a command kills it).
    pub fn ended_within(&self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while self.alive() {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Lets the processes of call `id` outlive it (see `reap_leftovers`).
    pub fn keep_call(&self, id: &str) {
        if let Err(e) = self.dir.keep_call(id) {
            verbose!("cannot record that call {id} keeps its processes: {e}");
        }
    }

    /// Says (with --verbose) what the proxy refused during the call (in
    /// this container: a parallel call's refusals show too).
    pub fn report_refusals(&self) {
        if let Some((log, from)) = &self.refusals {
            for line in crate::proxy::log::since(log, *from) {
                verbose!(
                    "the proxy {}",
                    line.split_once(' ').map_or(line.as_str(), |(_, l)| l)
                );
            }
        }
    }

    /// Records the end of a use: the idle TTL counts from here.
    pub fn touch(&self) {
        if let Err(e) = self.dir.touch() {
            verbose!("cannot record the end of the call: {e}");
        }
    }
}

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

/// Makes sure the warm container for `spec` runs and marks it in use.
///
/// The use lock (shared) comes first and is all a call needs when the
/// container runs, so parallel calls do not queue; pruning takes it
/// exclusively, and the container cannot reach it. A container is alive
/// exactly when its agent, the process recorded at creation (SO_PEERCRED),
/// answers on its socket and says ready (from then on it counts the
/// connection as a call and will not end itself), or when its watcher
/// holds `alive.lock` while the call holds `busy.lock` (the watcher lets
/// go of `alive.lock` only as it exits, and exits only with `busy.lock`
/// exclusive). So no Podman process is needed to know the container runs,
/// and a call never execs into a dying container. A container with
/// neither is asked about with `podman inspect`. Only a dead, missing,
/// stopped or impersonated container is made anew, under the create lock.
pub fn ensure_warm(cfg: &Config, podman: &Podman, spec: &Spec) -> Result<Warm> {
    let name = spec.name();
    let dir = WarmDir::new(cfg, &name);
    // Locks are created as they are taken; `prepare` before a creation.
    fsutil::ensure_dir(dir.inside())?;
    let in_use = lock::acquire(
        &dir.use_lock(),
        Mode::Shared,
        "the warm container",
        cfg.lock_limit(WARM_LOCK_LIMIT),
    )?;
    // Only a watcher looks at `busy.lock`. A command inside can hold it
    // exclusively; then the call waits only briefly and makes a new
    // container.
    let watcher = spec.agent.is_none() && spec.watcher;
    let take_busy = || {
        lock::acquire(
            &dir.busy_lock(),
            Mode::Shared,
            "the warm container",
            BUSY_LIMIT,
        )
    };
    let mut busy = if watcher { take_busy().ok() } else { None };
    if dir.store_replaced() {
        end_orphan(&dir);
    }
    let blocked = watcher && busy.is_none();
    let mut alive = if blocked {
        Err(State::Stopped)
    } else {
        probe(podman, spec, &dir)?
    };
    if alive.is_err() {
        let _creating = lock::acquire(
            &dir.create_lock(),
            Mode::Exclusive,
            "the warm container",
            cfg.lock_limit(WARM_LOCK_LIMIT),
        )?;
        // Another call may have made it while we waited.
        if !blocked {
            alive = probe(podman, spec, &dir)?;
        }
        if let Err(s) = alive {
            if s != State::Missing {
                remove(podman, &name)?;
            }
            // The locks and the stamp first: the new container's main
            // process opens and reads them.
            drop(busy.take());
            dir.prepare()?;
            dir.record(spec, cfg.ttl)?;
            if watcher {
                busy = Some(take_busy()?);
            }
            alive = Ok(create(podman, spec, &dir)?);
        }
    }
    if !dir.recorded() {
        dir.record(spec, cfg.ttl)?; // repairs a stamp someone removed
    }
    dir.set_ttl(cfg.ttl)?;
    dir.touch()?;
    let refusals = if spec.allow_hosts.is_empty() {
        None
    } else {
        // Started with the container, or again if it died.
        crate::proxy::daemon::ensure(&dir, &spec.allow_hosts)?;
        let log = dir.refusal_log();
        let from = crate::proxy::log::len(&log);
        Some((log, from))
    };
    Ok(Warm {
        name,
        refusals,
        agent: alive.unwrap_or(None),
        has_shell: spec.watcher,
        dir,
        _busy: busy,
        _in_use: in_use,
    })
}

/// Whether the container runs (with a connection to its agent, if it has
/// one), or in what state it is.
fn probe(podman: &Podman, spec: &Spec, dir: &WarmDir) -> Result<Result<Option<UnixStream>, State>> {
    if spec.agent.is_some() {
        return Ok(match agent_connection(dir) {
            Ok(conn) => Ok(Some(conn)),
            Err(Some(why)) => {
                verbose!("{}: {why}; making a new container", dir.name);
                Err(State::Stopped)
            }
            Err(None) => Err(State::Stopped),
        });
    }
    if spec.watcher {
        return Ok(if watcher_alive(dir)? {
            Ok(None)
        } else {
            Err(State::Stopped)
        });
    }
    Ok(match state(podman, &dir.name)? {
        State::Running => Ok(None),
        s => Err(s),
    })
}

/// A connection to the container's own agent, ready for a call. Err(None)
/// when no agent listens; Err(Some(why)) when something else answers on
/// its socket (a command may put its own listener there) or it does not
/// say ready in time.
fn agent_connection(dir: &WarmDir) -> std::result::Result<UnixStream, Option<String>> {
    let (conn, pid) = agent::client::connect(&dir.socket()).map_err(|_| None)?;
    let recorded = dir.main().and_then(|m| m.agent);
    if recorded.is_none() || recorded != sys::identity(pid as u32) {
        return Err(Some(format!(
            "its agent's socket is served by another process (pid {pid})"
        )));
    }
    agent::client::await_ready(&conn)
        .map_err(|e| Some(format!("its agent did not say ready ({e})")))?;
    Ok(conn)
}

/// One `podman run -d` (a `create` and a `start` cost a second Podman
/// process, about 60 ms): a call killed while it runs leaves a created or
/// running container without a stamp, which the next call removes and
/// makes again. Before
/// the container serves a call, its mounts are checked to be what was
/// checked on the host (see `verify_mounts`). Returns a connection to the
/// new container's agent, if it has one.
fn create(podman: &Podman, spec: &Spec, dir: &WarmDir) -> Result<Option<UnixStream>> {
    if spec.rootfs.is_none()
        && image::image_id(podman, &spec.image)?.as_deref() != Some(spec.image_id.as_str())
    {
        return Err(Error::ImageMissing(spec.image.clone()));
    }
    spec.prepare_host(&dir.root())?;
    let name = &dir.name;
    verbose!("creating warm container {name}");
    note_limits(&spec.hardening);
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--rm".into(),
        "--name".into(),
        name.clone(),
    ];
    args.extend(spec.run_args());
    let (guards, guarded) = spec.workdir_guards()?;
    args.extend(guards);
    args.extend([
        "--volume".into(),
        format!("{}:{}:ro", dir.inside().display(), watcher::MOUNT),
    ]);
    if let Some(exe) = spec.agent.as_ref().or(spec.forwarder.as_ref()) {
        // The same binary either way.
        args.extend([
            "--volume".into(),
            format!("{}:{}/{AGENT_FILE}:ro", exe.display(), watcher::MOUNT),
        ]);
    }
    if spec.agent.is_some() {
        args.extend([
            "--volume".into(),
            format!(
                "{}:{}/{SOCKET_DIR}",
                dir.socket_dir().display(),
                watcher::MOUNT
            ),
        ]);
        args.extend(spec.image_args(&dir.root()));
        args.extend(agent::command(!spec.allow_hosts.is_empty()));
    } else if spec.watcher {
        args.extend(spec.image_args(&dir.root()));
        args.extend(spec.forward_prefix(true));
        args.extend(watcher::command());
    } else if spec.forwarder.is_some() {
        // Forwards until calls prune it.
        args.extend(spec.image_args(&dir.root()));
        args.extend(spec.forward_prefix(false));
    } else {
        // Without the watcher's tools it only sleeps; calls prune it.
        args.extend(spec.image_args(&dir.root()));
        args.extend(["sleep".into(), "infinity".into()]);
    }
    match podman.check("starting the warm container", &args) {
        // We hold the create lock, so a container of our name is what a
        // killed call's podman made (it went on after the call died).
        Err(Error::Podman { log, .. }) if log.contains("is already in use") => {
            verbose!("a killed call left {name}; making it again");
            remove(podman, name)?;
            podman.check("starting the warm container", &args)?;
        }
        r => {
            r?;
        }
    }
    let (main, conn) = match started(podman, spec, dir) {
        Ok(found) => found,
        Err(e) => {
            let _ = remove(podman, name);
            return Err(e);
        }
    };
    let verified = match sys::live_pid(&main.init) {
        Some(pid) => verify_mounts(spec.checked.iter().chain(&guarded), pid),
        None => Err(Error::usage(format!(
            "warm container {name} ended at once; run with --verbose"
        ))),
    };
    if let Err(e) = verified {
        let _ = remove(podman, name);
        return Err(e);
    }
    dir.set_main(&main)?;
    if conn.is_none() && spec.agent.is_none() && spec.watcher {
        // Calls waiting on the create lock will ask whether it is alive.
        let start = std::time::Instant::now();
        while !watcher_alive(dir)? {
            if start.elapsed() > START_LIMIT {
                verbose!("the watcher of {name} did not start; later calls will replace it");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(conn)
}

/// Who the new container's init and agent are, and a connection to the
/// agent. The first process to answer on the fresh socket directory of a
/// container that runs nothing else is its agent.
fn started(podman: &Podman, spec: &Spec, dir: &WarmDir) -> Result<(Main, Option<UnixStream>)> {
    let name = &dir.name;
    if spec.agent.is_none() {
        let out = podman.output(["container", "inspect", "--format", "{{.State.Pid}}", name])?;
        let pid: Option<u32> = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
        let init = pid.and_then(sys::identity).ok_or_else(|| Error::Podman {
            message: format!("warm container {name} did not start"),
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        })?;
        return Ok((Main { init, agent: None }, None));
    }
    let start = std::time::Instant::now();
    loop {
        if let Ok((conn, pid)) = agent::client::connect(&dir.socket())
            && agent::client::await_ready(&conn).is_ok()
        {
            let pid = pid as u32;
            let init = sys::parent_pid(pid).and_then(sys::identity);
            if let (Some(init), Some(agent)) = (init, sys::identity(pid)) {
                return Ok((
                    Main {
                        init,
                        agent: Some(agent),
                    },
                    Some(conn),
                ));
            }
        }
        if start.elapsed() > START_LIMIT {
            return Err(Error::Podman {
                message: format!(
                    "the agent of warm container {name} did not answer within {START_LIMIT:?}; `--exec-via podman` does without it"
                ),
                log: podman
                    .output(["logs", name.as_str()])
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checks, through the new container's root as its process `pid` sees it,
/// that every mount source is the inode that was checked on the host: a
/// command of another container that swapped a directory for a symlink
/// between the check and Podman's mount is caught here, before this
/// container runs anything.
pub(crate) fn verify_mounts<'a>(
    checked: impl Iterator<Item = &'a Checked>,
    pid: u32,
) -> Result<()> {
    for c in checked {
        let inside = PathBuf::from(format!("/proc/{pid}/root"))
            .join(c.target.strip_prefix("/").unwrap_or(&c.target));
        let seen = std::fs::metadata(&inside).map(|m| fsutil::file_id(&m));
        if seen.ok() != Some(c.id) {
            return Err(Error::usage(format!(
                "{} {}: it changed while the container was made (something swapped it, e.g. for a symlink); nothing ran, call again",
                c.option,
                c.path.display()
            )));
        }
    }
    Ok(())
}

/// Ends a container whose store was replaced under it (it runs on layers
/// that are gone, and Podman no longer lists it, so neither `podman rm`
/// nor its TTL would end it in time): its init is killed, which ends every
/// process in it, and its stamp cleared, so it is made again.
pub(crate) fn end_orphan(dir: &WarmDir) {
    verbose!(
        "the Podman store was replaced under {}; making it again",
        dir.name
    );
    if let Some(init) = dir.live_init() {
        sys::send_signal(init as i32, sys::SIGKILL);
    }
    dir.clear();
    dir.remove_root();
}

/// Says (with --verbose) how the limits hold where cgroups cannot hold
/// them: rootless on cgroup v1.
pub fn note_limits(h: &crate::config::Hardening) {
    if !h.pids_via_ulimit {
        return;
    }
    if h.pids_limit.is_some() {
        verbose!("rootless on cgroup v1: the pids limit holds through ulimit nproc");
    }
    if h.memory.is_some() || h.cpus.is_some() {
        verbose!("rootless on cgroup v1: --memory and --cpus cannot be applied (see --doctor)");
    }
}

/// Kills what call `call_id`, made through `podman exec`, left in the
/// container (the agent does this itself for its calls): every process of
/// the container but init, its main process and what that started, unless
/// it carries the mark of a call that may keep its processes or of a call
/// still running. Orphans of an exec session hang under its conmon (a
/// subreaper outside the container) or init, so a call still running is
/// known by its exec session's root: the process whose parent is outside.
/// A session still starting (runc's init, parent runc) is left alone.
pub fn reap_leftovers(warm: &Warm, call_id: &str) {
    let Some(main) = warm.dir.main() else { return };
    let Some(init) = sys::live_pid(&main.init) else {
        return;
    };
    let init = init as i32;
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(container_ns) = ns(init) else { return };
    let kept: HashSet<String> = warm.dir.kept_calls().into_iter().collect();
    stop::kill_until_none(REAP_LIMIT, || {
        let inside =
            stop::process_table_where(|pid| pid != init && ns(pid).as_ref() == Some(&container_ns));
        // The main process: the agent, or else init's oldest child.
        let main_pid = main
            .agent
            .as_deref()
            .and_then(sys::live_pid)
            .map(|p| p as i32)
            .or_else(|| {
                inside
                    .iter()
                    .filter(|&(_, &pp)| pp == init)
                    .min_by_key(|&(&pid, _)| sys::process_start(pid as u32))
                    .map(|(&pid, _)| pid)
            });
        let under_main = |pid: i32| {
            let mut p = pid;
            for _ in 0..=inside.len() {
                if Some(p) == main_pid {
                    return true;
                }
                match inside.get(&p) {
                    Some(&pp) if inside.contains_key(&pp) => p = pp,
                    _ => return false,
                }
            }
            false
        };
        let mut spared = kept.clone();
        spared.extend(
            inside
                .iter()
                .filter(|&(_, pp)| !inside.contains_key(pp) && *pp != init)
                .filter_map(|(&pid, _)| stop::mark_of(pid))
                .filter(|id| id != call_id),
        );
        // An exec session being set up: its process is still runc's init,
        // child of the runtime outside (not yet of the session's conmon)
        // and without the call's mark until it execs the command. A
        // command cannot fake that parent, which is outside the container.
        let starting = |pid: i32| {
            inside.get(&pid).is_some_and(|&pp| {
                !inside.contains_key(&pp)
                    && pp != init
                    && std::fs::read(format!("/proc/{pp}/comm")).is_ok_and(|c| c != b"conmon\n")
            })
        };
        inside
            .keys()
            .copied()
            .filter(|&pid| !under_main(pid))
            .filter(|&pid| !starting(pid))
            .filter(|&pid| !stop::marked_with_any(pid, &spared))
            .collect()
    });
}

/// Whether the container's watcher runs: it holds `alive.lock` for as long
/// as it lives (see watcher.rs).
fn watcher_alive(dir: &WarmDir) -> Result<bool> {
    Ok(lock::try_acquire(&dir.alive_lock(), Mode::Shared)?.is_none())
}

/// Adds the directories between the workdir and `rel` (relative to it) to
/// `pinned`, once each.
fn pin_ancestors(pinned: &mut Vec<PathBuf>, rel: &std::path::Path) {
    for dir in rel.ancestors().skip(1) {
        if !dir.as_os_str().is_empty() && !pinned.iter().any(|p| p == dir) {
            pinned.push(dir.to_owned());
        }
    }
}

/// Paths (relative to `workdir`) outside `.git` that git on the host reads
/// as configuration of this repository: every submodule's `.git`, found
/// through the `core.worktree` of each `.git/modules/**/config`, and the
/// hooks directory `core.hooksPath` names, if it lies in the workdir.
fn git_outside_dot_git(workdir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let value = |config: &std::path::Path, key: &str| -> Option<String> {
        let text = std::fs::read_to_string(config).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(key)
                .then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    let inside = |base: &std::path::Path, rel: &str| -> Option<PathBuf> {
        let full = fsutil::lexical(&base.join(rel));
        full.strip_prefix(workdir)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
            .map(std::path::Path::to_owned)
    };
    let dot_git = workdir.join(".git");
    if let Some(hooks) = value(&dot_git.join("config"), "hookspath")
        && let Some(rel) = inside(workdir, &hooks)
    {
        found.push(rel);
    }
    let mut queue = vec![dot_git.join("modules")];
    while let Some(dir) = queue.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let module = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if let Some(tree) = value(&module.join("config"), "worktree")
                && let Some(rel) = inside(&module, &tree)
            {
                found.push(rel.join(".git"));
            }
            queue.push(module.join("modules"));
        }
    }
    found
}

/// The entries under `dir`, parents before children (not following
/// symlinks), as paths relative to it with their metadata, at most `depth`
/// deep. A directory that cannot be read, or more than `most` entries,
/// is an error: a command could make either happen to hide a file from
/// the walk.
fn walk(
    dir: &std::path::Path,
    depth: usize,
    most: usize,
) -> Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([(PathBuf::new(), 0)]);
    while let Some((rel, level)) = queue.pop_front() {
        let at = dir.join(&rel);
        let unreadable = |e| {
            Error::usage(format!(
                "cannot read {} to protect and hide what it holds ({e}); make it readable (chmod u+rx) or remove it",
                at.display()
            ))
        };
        for e in std::fs::read_dir(&at).map_err(unreadable)? {
            let e = e.map_err(unreadable)?;
            let meta = e.metadata().map_err(unreadable)?;
            if out.len() >= most {
                return Err(Error::usage(format!(
                    "more than {most} entries under {}: --hide cannot look at them all; hide a directory above them, or make the tree smaller",
                    dir.display()
                )));
            }
            let child = rel.join(e.file_name());
            if meta.is_dir() && !meta.is_symlink() && level + 1 < depth {
                queue.push_back((child.clone(), level + 1));
            }
            if !meta.is_symlink() {
                out.push((child, meta));
            }
        }
    }
    Ok(out)
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

    fn spec() -> Spec {
        Spec {
            image: "localhost/lectic-nix-sandbox:abc".into(),
            image_id: "sha256:00".into(),
            workdir: "/w".into(),
            home: "/h".into(),
            volumes: vec![],
            allow_net: false,
            allow_hosts: Rules::default(),
            forwarder: None,
            rootless: true,
            podman_extra: vec![],
            hardening: Hardening {
                read_only: true,
                no_new_privileges: true,
                cap_add: vec![],
                pids_limit: Some(1024),
                memory: None,
                cpus: None,
                tmp_size: "1g".into(),
                pids_via_ulimit: false,
                seccomp: None,
            },
            watcher: true,
            agent: Some("/bin/agent".into()),
            nix_daemon: None,
            env_identity: None,
            checked: vec![],
            hide: vec![],
            rootfs: None,
        }
    }

    #[test]
    fn name_changes_with_everything_that_shapes_the_container() {
        let base = spec().name();
        assert!(base.starts_with(PREFIX) && base.len() == PREFIX.len() + 16);
        let variants: [fn(&mut Spec); 18] = [
            |s| s.allow_hosts = Rules::parse(&["pypi.org".to_owned()]).unwrap(),
            |s| s.allow_hosts = Rules::parse(&["pypi.org:22".to_owned()]).unwrap(),
            |s| s.hide = vec![".env".into()],
            |s| s.env_identity = Some("secrets".into()),
            |s| s.hardening.pids_via_ulimit = true,
            |s| {
                s.nix_daemon = Some(NixDaemon {
                    socket: "/s".into(),
                    socket_id: 1,
                    conf_dir: "/c".into(),
                })
            },
            |s| s.agent = None,
            |s| s.hardening.read_only = false,
            |s| s.hardening.cap_add = vec!["CAP_NET_RAW".into()],
            |s| s.hardening.pids_limit = None,
            |s| s.hardening.memory = Some("1g".into()),
            |s| s.image = "other".into(),
            |s| s.workdir = "/w2".into(),
            |s| s.home = "/h2".into(),
            |s| {
                s.volumes.push(Volume {
                    host: "/a".into(),
                    target: "/b".into(),
                    read_only: true,
                })
            },
            |s| s.allow_net = true,
            |s| s.rootless = false,
            |s| s.podman_extra = vec!["--memory=1g".into()],
        ];
        for change in variants {
            let mut s = spec();
            change(&mut s);
            assert_ne!(s.name(), base, "{s:?}");
        }
        assert_eq!(spec().name(), base);
    }

    #[test]
    fn a_restarted_nix_daemon_gets_a_new_container_but_keeps_its_home() {
        let with_socket = |id| {
            let mut s = spec();
            s.nix_daemon = Some(NixDaemon {
                socket: "/s".into(),
                socket_id: id,
                conf_dir: "/c".into(),
            });
            s
        };
        let (before, after) = (with_socket(1), with_socket(2));
        assert_ne!(before.name(), after.name());
        assert_eq!(before.key(false), after.key(false), "HOME's key");
        assert_ne!(
            before.key(false),
            spec().key(false),
            "a dev shell is its own configuration"
        );
    }

    #[test]
    fn run_args_isolate_network_and_map_the_user_when_rootless() {
        let a = spec().run_args().join(" ");
        for hardened in [
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "--read-only",
            "--pids-limit=1024",
            "size=1g",
        ] {
            assert!(a.contains(hardened), "{hardened} in {a}");
        }
        assert!(a.contains("--network none"), "{a}");
        assert!(a.contains("--userns=keep-id"), "{a}");
        assert!(
            a.contains("--volume /w:/w") && a.contains("--volume /h:/home/sandbox"),
            "{a}"
        );
        let mut s = spec();
        s.allow_hosts = Rules::parse(&["pypi.org".to_owned()]).unwrap();
        let a = s.run_args().join(" ");
        for proxied in [
            "--network none",
            "--env HTTPS_PROXY=http://127.0.0.1:3128",
            "--env http_proxy=http://127.0.0.1:3128",
            "--env ALL_PROXY=socks5h://127.0.0.1:3128",
            "--env NO_PROXY=localhost,127.0.0.1",
        ] {
            assert!(a.contains(proxied), "{proxied} in {a}");
        }
        let mut s = spec();
        s.allow_net = true;
        s.rootless = false;
        let a = s.run_args().join(" ");
        assert!(!a.contains("--network") && !a.contains("keep-id"), "{a}");
        assert!(!a.contains("PROXY"), "{a}");
    }

    #[test]
    fn tools_with_other_secrets_get_other_containers_and_homes() {
        let mut secret = spec();
        secret.env_identity = Some("env file".into());
        assert_ne!(secret.name(), spec().name());
        assert_ne!(secret.key(false), spec().key(false), "HOME's key");
    }

    #[test]
    fn every_tmpfs_is_bounded_and_cgroup_v1_rootless_limits_processes_by_ulimit() {
        let a = spec().run_args().join(" ");
        for dir in ["/tmp", "/var/tmp"] {
            assert!(
                a.contains(&format!("--tmpfs={dir}:rw,nosuid,nodev,mode=1777,size=1g")),
                "{a}"
            );
        }
        assert!(a.contains(&format!(
            "--tmpfs=/run:rw,nosuid,nodev,mode=755,size={RUN_SIZE}"
        )));
        assert!(!a.contains("--ulimit"), "{a}");
        let mut s = spec();
        s.hardening.pids_via_ulimit = true;
        let a = s.run_args().join(" ");
        assert!(a.contains("--ulimit=nproc=1024:1024"), "{a}");
        assert!(
            !a.contains("--pids-limit"),
            "ignored there, with a warning: {a}"
        );
    }

    #[test]
    fn lectic_files_and_git_are_read_only_and_hidden_paths_covered() {
        let w = crate::testutil::TempDir::new("guards");
        for d in [".git/hooks", "sub/keys", "src"] {
            std::fs::create_dir_all(w.join(d)).unwrap();
        }
        for f in [
            "lectic.yaml",
            "chat.lec",
            "sub/old.lec",
            ".git/config",
            ".env",
            "sub/keys/a.pem",
            "src/main.rs",
            "sub/x.pem",
        ] {
            std::fs::write(w.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", w.join("link.lec")).unwrap();
        let mut s = spec();
        s.workdir = w.to_path_buf();
        let (args, checked) = s.workdir_guards().unwrap();
        let a = args.join(" ");
        let d = w.display();
        for ro in ["lectic.yaml", "chat.lec", ".git"] {
            assert!(a.contains(&format!("{d}/{ro}:{d}/{ro}:ro")), "{ro} in {a}");
        }
        assert_eq!(checked.len(), 3, "{a}");
        assert!(!a.contains("old.lec") && !a.contains("link.lec"), "{a}");

        s.hide = vec![".env".into(), "*.pem".into(), "sub/keys".into()];
        let (args, checked) = s.workdir_guards().unwrap();
        let a = args.join(" ");
        assert!(a.contains(&format!("/dev/null:{d}/.env:ro")), "{a}");
        assert!(a.contains(&format!("/dev/null:{d}/sub/x.pem:ro")), "{a}");
        assert!(a.contains(&format!("--tmpfs={d}/sub/keys:ro")), "{a}");
        assert!(!a.contains("a.pem"), "inside a hidden directory: {a}");
        assert!(
            a.contains(&format!("{d}/sub:{d}/sub:rw")),
            "a match's directories cannot be renamed away: {a}"
        );
        assert_eq!(checked.len(), 4, "{a}");
        assert!(!a.contains("main.rs"), "{a}");
    }

    #[test]
    fn submodules_gitdir_pointers_and_a_worktree_hooks_path_are_read_only() {
        let w = crate::testutil::TempDir::new("git-guards");
        for d in [".git/modules/sub/modules/inner", "lib/sub/inner", ".husky"] {
            std::fs::create_dir_all(w.join(d)).unwrap();
        }
        let files = [
            (".git/config", "[core]\n\thooksPath = .husky\n"),
            (
                ".git/modules/sub/config",
                "[core]\n\tworktree = ../../../lib/sub\n",
            ),
            (
                ".git/modules/sub/modules/inner/config",
                "[core]\n\tworktree = ../../../../../lib/sub/inner\n",
            ),
            ("lib/sub/.git", "gitdir: ../../.git/modules/sub\n"),
            ("lib/sub/inner/.git", "gitdir: x\n"),
        ];
        for (f, text) in files {
            std::fs::write(w.join(f), text).unwrap();
        }
        let mut s = spec();
        s.workdir = w.to_path_buf();
        let a = s.workdir_guards().unwrap().0.join(" ");
        let d = w.display();
        for ro in ["lib/sub/.git", "lib/sub/inner/.git", ".husky"] {
            assert!(a.contains(&format!("{d}/{ro}:{d}/{ro}:ro")), "{ro} in {a}");
        }
        for pinned in ["lib", "lib/sub", "lib/sub/inner"] {
            assert!(
                a.contains(&format!("{d}/{pinned}:{d}/{pinned}:rw")),
                "{pinned} in {a}"
            );
        }
    }

    #[test]
    fn warm_names_are_ours_and_not_one_shot() {
        assert!(is_warm_name(&spec().name()));
        assert!(!is_warm_name(
            "lectic-nix-sandbox-once-0123456789abcdef01234567"
        ));
        assert!(!is_warm_name("other-0123456789abcdef"));
        assert!(!is_warm_name("lectic-nix-sandbox-0123456789abcdeg"));
    }
}
