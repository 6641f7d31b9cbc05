//! Our own Podman store: image and container storage under the cache dir,
//! run state in a short private dir, our own storage.conf, registries.conf
//! and policy.json. The machine's and the user's containers.conf still
//! apply (that is how users and tests layer settings such as the runtime).
//!
//! The store's paths go on every podman command line (`--root`, `--runroot`,
//! `--storage-driver`): rootless Podman 4.3 ignores the graphroot and
//! runroot of CONTAINERS_STORAGE_CONF and would use the user's own store.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::Guard;
use crate::{fsutil, lock, verbose};

/// A handle for running podman against our store.
#[derive(Debug, Clone)]
pub struct Podman {
    exe: String,
    global: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    pub driver: String,
    /// Our policy.json, for `podman load --signature-policy`.
    pub policy: PathBuf,
    /// Rootless Podman's pause process keeps its pid here.
    pause_pid: PathBuf,
}

const POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;
// We never pull: images come from `podman load`.
const REGISTRIES: &str = "unqualified-search-registries = []\n";

struct Layout {
    graphroot: PathBuf,
    conf_dir: PathBuf,
    runroot: PathBuf,
    xdg: PathBuf,
    libpod_tmp: PathBuf,
    tmp: PathBuf,
}

impl Layout {
    fn of(cfg: &Config, run: &Path) -> Layout {
        let p = &cfg.paths;
        Layout {
            graphroot: p.graphroot(),
            conf_dir: p.bucket(crate::state::Bucket::PodmanConf),
            runroot: run.join("runroot"),
            xdg: run.join("xdg"),
            libpod_tmp: run.join("libpod-tmp"),
            tmp: p.tmp(),
        }
    }

    /// Where the store is, for every podman command line.
    fn global_args(&self) -> Vec<OsString> {
        vec![
            "--root".into(),
            self.graphroot.clone().into(),
            "--runroot".into(),
            self.runroot.clone().into(),
            "--tmpdir".into(),
            self.libpod_tmp.clone().into(),
        ]
    }

    /// Podman's HOME and XDG_CONFIG_HOME under a system policy: empty.
    fn no_user_config(&self) -> PathBuf {
        self.conf_dir.join("no-user-config")
    }

    /// Run state of the driver probe, beside the real one.
    fn run_probe(&self) -> PathBuf {
        self.runroot.with_file_name("probe")
    }

    fn storage_conf(&self, driver: &str, graphroot: &Path) -> String {
        format!(
            "# Written by lectic-nix-sandbox.\n[storage]\ndriver = \"{driver}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            graphroot.display(),
            self.runroot.display()
        )
    }
}

impl Podman {
    /// Prepares the store (once; later calls only check directories) and
    /// returns a handle to run podman with it.
    pub fn open(cfg: &Config) -> Result<Podman> {
        open_cache(cfg)?;
        let run = run_dir(cfg)?;
        for note in &run.skipped {
            verbose!("{note}");
        }
        let l = Layout::of(cfg, &run.path);
        for dir in [
            &l.xdg,
            &l.runroot,
            &l.libpod_tmp,
            &l.tmp,
            &l.conf_dir,
            &cfg.paths.locks(),
        ] {
            fsutil::ensure_dir(dir)?;
        }
        let mut podman = Podman {
            exe: cfg.podman_exe.clone(),
            global: l.global_args(),
            env: base_env(&l, cfg.system_policy.is_some())?,
            driver: String::new(),
            policy: l.conf_dir.join("policy.json"),
            pause_pid: l.libpod_tmp.join("pause.pid"),
        };
        if !cfg.verbose {
            // Podman's warnings (e.g. about cgroup managers) would land in
            // the model's view of the tool result.
            podman.global.push("--log-level=error".into());
        }
        let conf = l.conf_dir.join("storage.conf");
        podman.driver = match read_driver(&conf) {
            Some(d) => d,
            None => {
                let _guard = lock::acquire(
                    &cfg.paths.locks().join(Guard::Store.file_name()),
                    lock::Mode::Exclusive,
                    Guard::Store.what(),
                    cfg.lock_limit(Guard::Store.wait()),
                )?;
                match read_driver(&conf) {
                    Some(d) => d,
                    None => podman.set_up(&l, &conf)?,
                }
            }
        };
        if cfg.system_policy.is_some() {
            confine_config(&l, &podman.driver)?;
        }
        podman
            .global
            .extend(["--storage-driver".into(), podman.driver.clone().into()]);
        verbose!(
            "podman store {} (storage driver {})",
            l.graphroot.display(),
            podman.driver
        );
        Ok(podman)
    }

    fn set_up(&self, l: &Layout, conf: &Path) -> Result<String> {
        fsutil::ensure_dir(&l.graphroot)?;
        fsutil::write_atomic(&l.conf_dir.join("policy.json"), POLICY.as_bytes())?;
        fsutil::write_atomic(&l.conf_dir.join("registries.conf"), REGISTRIES.as_bytes())?;
        // Probe overlay in a scratch store: a failed attempt must not leave
        // the real store's database bound to a driver it cannot use.
        let probe_root = l.conf_dir.join("probe-root");
        let probe_conf = l.conf_dir.join("storage.conf.probe");
        fsutil::write_atomic(
            &probe_conf,
            l.storage_conf("overlay", &probe_root).as_bytes(),
        )?;
        let mut probe = self.bare_command();
        probe
            .env("CONTAINERS_STORAGE_CONF", &probe_conf)
            .args(["--log-level=error", "--root"])
            .arg(&probe_root)
            .arg("--runroot")
            .arg(l.run_probe().join("runroot"))
            .arg("--tmpdir")
            .arg(l.run_probe().join("tmp"))
            .args([
                "--storage-driver",
                "overlay",
                "info",
                "--format",
                "{{.Store.GraphDriverName}}",
            ])
            .stdin(Stdio::null());
        let probe = probe.output();
        let probe = probe.map_err(|e| self.spawn_error(e))?;
        let driver = if probe.status.success() {
            "overlay"
        } else {
            verbose!(
                "overlay storage unavailable, using vfs: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            "vfs"
        };
        let _ = std::fs::remove_dir_all(&probe_root);
        let _ = std::fs::remove_dir_all(l.run_probe());
        let _ = std::fs::remove_file(&probe_conf);
        fsutil::write_atomic(conf, l.storage_conf(driver, &l.graphroot).as_bytes())?;
        Ok(driver.to_owned())
    }

    /// A podman command with our store, environment and global options.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.bare_command();
        cmd.args(&self.global).args(args);
        cmd
    }

    /// podman with our environment but no store options (for the probe,
    /// which names a scratch store of its own).
    fn bare_command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        // Podman wants to enter the cwd, which may be gone or not ours to
        // enter (a management flag run anywhere); it uses no relative path.
        cmd.current_dir("/");
        cmd
    }

    /// Names podman needs in its own environment; the command's variables
    /// of the same name go through argv instead (see exec).
    pub fn reserved_env(name: &str) -> bool {
        matches!(
            name,
            "PATH" | "HOME" | "XDG_RUNTIME_DIR" | "TMPDIR" | "USER" | "LOGNAME"
        ) || name.starts_with("CONTAINERS_")
            || name.starts_with("XDG_CONFIG")
    }

    /// Ends rootless Podman's pause process (`catatonit -P`, which holds
    /// the user namespace between calls) when the store has no container
    /// left: nothing else ever ends it, and each store has one. The next
    /// podman command starts another. Returns whether one was ended.
    pub fn end_pause_process(&self) -> Result<bool> {
        let Some(pid) = self.pause_process() else {
            return Ok(false);
        };
        if !self
            .check("listing containers", ["ps", "--all", "--quiet"])?
            .trim()
            .is_empty()
        {
            return Ok(false);
        }
        verbose!("ending the store's idle pause process {pid}");
        Ok(crate::sys::send_signal(pid as i32, crate::sys::SIGKILL))
    }

    /// Starts rootless Podman's pause process if the store has none, before
    /// a `podman run` whose client must be the only process holding our
    /// stdio: the podman that starts it re-executes itself, and that second
    /// podman outlives a SIGKILL of the sandbox (and keeps the caller's
    /// pipes open) where the first would have died with it.
    pub fn ensure_pause_process(&self) -> Result<()> {
        if crate::sys::euid() != 0 && self.pause_process().is_none() {
            self.check("starting the user namespace", ["unshare", "true"])?;
        }
        Ok(())
    }

    /// The store's live pause process (ours: a pid file can be stale).
    fn pause_process(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pause_pid)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let is_pause = std::fs::read(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c == b"catatonit\n")
            && std::fs::metadata(format!("/proc/{pid}"))
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == crate::sys::euid());
        is_pause.then_some(pid)
    }

    pub fn spawn_error(&self, source: std::io::Error) -> Error {
        Error::Spawn {
            program: self.exe.clone(),
            source,
        }
    }

    /// Runs podman with output captured.
    pub fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))
    }

    /// Runs podman; on failure the error says `what` failed and what podman said.
    pub fn check<I, S>(&self, what: &str, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.output(args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Podman {
                message: format!("{what} failed ({})", out.status),
                log: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }
}

/// Under a system policy, the configuration Podman reads from the cache is
/// exactly ours on every call: our config files as this binary writes
/// them, and an empty directory as its HOME and XDG_CONFIG_HOME. (The
/// user owns the cache and could plant a containers.conf there; the
/// policy binds what the sandbox is asked to do, and this keeps the
/// sandbox from reading such a file.)
fn confine_config(l: &Layout, driver: &str) -> Result<()> {
    let ours = [
        ("storage.conf", l.storage_conf(driver, &l.graphroot)),
        ("registries.conf", REGISTRIES.to_owned()),
        ("policy.json", POLICY.to_owned()),
    ];
    for (name, text) in ours {
        let path = l.conf_dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            fsutil::write_atomic(&path, text.as_bytes())?;
        }
    }
    let none = l.no_user_config();
    let planted = std::fs::read_dir(&none).is_ok_and(|mut d| d.next().is_some());
    if planted {
        fsutil::remove_any(&none)?;
        fsutil::ensure_dir(&none)?;
    }
    Ok(())
}

/// Checks (and makes) the cache: a directory only we can enter, on a path
/// only we and root can change (`fsutil::trusted_dir`).
pub fn open_cache(cfg: &Config) -> Result<()> {
    fsutil::trusted_dir(&cfg.paths.cache, cfg.uid).map_err(|e| match e {
        Error::Untrusted { path, why, .. } => Error::Untrusted {
            path,
            why,
            fix: "set LECTIC_CACHE to a directory that only you (and root) can change".into(),
        },
        other => other,
    })
}

/// Podman's run dir for this store and the candidates passed over.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    /// One line per candidate skipped: which and why.
    pub skipped: Vec<String>,
}

/// The run dir (Podman's runroot, runtime dir and libpod tmpdir): the one
/// the store is bound to while it is usable, else the first usable of
/// `/tmp/lns-<uid>/<hash>`, `$XDG_RUNTIME_DIR/lns-<hash>` and a fresh
/// `/tmp/lns-<uid>-<random>`. Usable: a private directory on a path only
/// we and root can change, so another user who took our name in the
/// shared /tmp cannot stop us or catch our state. The choice is recorded
/// in the cache, so every call of this store finds it whatever its
/// environment; Podman's database remembers the runroot it was made
/// with, so a new choice (the old one is gone: a reboot) starts it afresh
/// (images stay; containers were gone with the old run dir).
pub fn run_dir(cfg: &Config) -> Result<RunDir> {
    let paths = &cfg.paths;
    let usable = |dir: &Path| -> std::result::Result<(), String> {
        if dir.join("runroot").as_os_str().len() > 50 {
            return Err("too long for Podman's runroot (50 characters)".into());
        }
        fsutil::trusted_dir(dir, cfg.uid).map_err(|e| match e {
            Error::Untrusted { path, why, .. } if path == dir => why,
            Error::Untrusted { path, why, .. } => format!("{}: {why}", path.display()),
            other => other.to_string(),
        })
    };
    let (bound, recorded) = paths.run_record_read();
    let mut skipped = Vec::new();
    match usable(&bound) {
        Ok(()) => {
            return Ok(RunDir {
                path: bound,
                skipped: recorded,
            });
        }
        Err(why) => skipped.push(format!("run dir {} skipped: {why}", bound.display())),
    }
    // A new choice, made once: parallel calls must agree on it.
    fsutil::ensure_dir(&paths.locks())?;
    let _guard = lock::acquire(
        &paths.locks().join(Guard::Store.file_name()),
        lock::Mode::Exclusive,
        Guard::Store.what(),
        cfg.lock_limit(Guard::Store.wait()),
    )?;
    let (again, recorded) = paths.run_record_read();
    if again != bound && usable(&again).is_ok() {
        return Ok(RunDir {
            path: again,
            skipped: recorded,
        });
    }
    let suffix = &crate::stop::new_call_id()[..8];
    let candidates = std::iter::once(paths.run.clone()).chain(paths.run_fallbacks(cfg.uid, suffix));
    for dir in candidates.filter(|d| *d != bound) {
        match usable(&dir) {
            Ok(()) => {
                // Podman's database names the old run dir; it is forgotten
                // with the containers it listed (none survived the old
                // run dir), and the images stay.
                let db = paths.graphroot().join("libpod");
                for file in ["bolt_state.db", "db.sql"] {
                    fsutil::remove_any(&db.join(file))?;
                }
                let mut record = dir.as_os_str().as_encoded_bytes().to_vec();
                for note in &skipped {
                    record.push(b'\n');
                    record.extend(note.as_bytes());
                }
                fsutil::write_atomic(&paths.run_record(), &record)?;
                return Ok(RunDir { path: dir, skipped });
            }
            Err(why) => skipped.push(format!("run dir {} skipped: {why}", dir.display())),
        }
    }
    Err(Error::failed(format!(
        "no private directory for Podman's run state: {}; set XDG_RUNTIME_DIR to a directory of yours",
        skipped.join("; ")
    )))
}

/// Podman's environment. Under a system policy, Podman reads only the
/// machine's configuration: the user's containers.conf (and mounts.conf)
/// could add volumes, devices or capabilities past every rule, so HOME and
/// XDG_CONFIG_HOME point at an empty directory of ours, CONTAINERS_CONF is
/// not passed, and helpers (runc, conmon) are looked for where only root
/// installs programs.
fn base_env(l: &Layout, confined: bool) -> Result<Vec<(OsString, OsString)>> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("XDG_RUNTIME_DIR".into(), l.xdg.clone().into()),
        ("TMPDIR".into(), l.tmp.clone().into()),
        (
            "CONTAINERS_STORAGE_CONF".into(),
            l.conf_dir.join("storage.conf").into(),
        ),
        (
            "CONTAINERS_REGISTRIES_CONF".into(),
            l.conf_dir.join("registries.conf").into(),
        ),
    ];
    // Podman finds runc, conmon, newuidmap on PATH and the user's
    // containers.conf under HOME/XDG_CONFIG_HOME.
    let system_path = crate::allow::SYSTEM_PATH.join(":");
    let path = match std::env::var_os("PATH") {
        Some(p) if !confined => p,
        _ => system_path.into(),
    };
    env.push(("PATH".into(), path));
    let mut names = vec!["USER", "LOGNAME"];
    if confined {
        // Podman finds some files through HOME itself (a rootless
        // mounts.conf), others through XDG_CONFIG_HOME.
        let none = l.no_user_config();
        fsutil::ensure_dir(&none)?;
        env.push(("HOME".into(), none.clone().into()));
        env.push(("XDG_CONFIG_HOME".into(), none.into()));
    } else {
        names.extend(["HOME", "XDG_CONFIG_HOME", "CONTAINERS_CONF"]);
    }
    for name in names {
        if let Some(v) = std::env::var_os(name) {
            env.push((name.into(), v));
        }
    }
    Ok(env)
}

fn read_driver(conf: &Path) -> Option<String> {
    let text = std::fs::read_to_string(conf).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("driver = "))
        .map(|d| d.trim_matches('"').to_owned())
}
