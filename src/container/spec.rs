//! What shapes a container, and the `podman run` options that follow
//! from it: pure, no Podman, no state (the warm lifecycle is warm.rs).

use std::path::{Path, PathBuf};

use super::warm_dir::AGENT_FILE;
use super::{HOME_TARGET, LABEL, PREFIX, list, root, seccomp, watcher};
use crate::cli::ExecVia;
use crate::config::{Checked, Config, Hardening, Volume};
use crate::digest::Key;
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::image::record::Record;
use crate::proxy::rules::Rules;
use crate::state::Bucket;
use crate::{agent, develop, fsutil, sys, verbose};

/// The size of the tmpfs at /run (which holds only our state mount).
const RUN_SIZE: &str = "64m";

/// Everything that shapes a container.
#[derive(Debug, Clone)]
pub struct Spec {
    pub image: String,
    /// The ID `image` must name (see `image::image_matches`).
    pub image_id: String,
    pub workdir: PathBuf,
    pub home: PathBuf,
    pub volumes: Vec<Volume>,
    /// Variables of the container itself (`--worktree`'s git objects).
    pub container_env: Vec<String>,
    /// `--worktree`: its directory's identity (`dev:ino`), so a worktree
    /// made again (removed by hand) gets a new container, whose mounts
    /// are the new directories, not the removed ones.
    pub worktree: Option<String>,
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
            container_env: cfg
                .worktree_made
                .as_ref()
                .map(crate::worktree::Worktree::env)
                .unwrap_or_default(),
            worktree: cfg
                .worktree_made
                .as_ref()
                .map(crate::worktree::Worktree::identity)
                .transpose()?,
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
                return Err(Error::failed(format!(
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
            spec.home = cfg.paths.bucket(Bucket::WarmHome).join(&key[..16]);
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
        for e in &self.container_env {
            k.field("container-env", e.as_bytes());
        }
        if let Some(w) = &self.worktree {
            k.field("worktree", w.as_bytes());
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

    /// Whether the store has the image this spec names: the ID it was
    /// verified as, or a root filesystem's store path.
    pub fn image_present(&self, engine: &dyn Engine) -> Result<bool> {
        Ok(match &self.rootfs {
            Some(_) => Path::new(&self.image).is_dir(),
            None => engine.image_id(&self.image)?.as_deref() == Some(self.image_id.as_str()),
        })
    }

    /// What a new container needs on the host, before `podman run`: our
    /// seccomp profile, and for a root filesystem its skeleton root at
    /// `dir` (see root.rs).
    pub fn prepare_host(&self, dir: &Path) -> Result<()> {
        if let Some(p) = &self.hardening.seccomp {
            seccomp::ensure(p)?;
        }
        let Some(r) = &self.rootfs else {
            return Ok(());
        };
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
        for e in &self.container_env {
            a.extend(["--env".into(), e.clone()]);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec() -> Spec {
        Spec {
            image: "localhost/lectic-nix-sandbox:abc".into(),
            image_id: "sha256:00".into(),
            workdir: "/w".into(),
            home: "/h".into(),
            volumes: vec![],
            container_env: vec![],
            worktree: None,
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
        let variants: [fn(&mut Spec); 20] = [
            |s| s.worktree = Some("1:2".into()),
            |s| s.container_env = vec!["GIT_OBJECT_DIRECTORY=/o".into()],
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
}
