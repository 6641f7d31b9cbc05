//! Containers: one warm container per configuration, named by the hash of
//! everything that shapes it, kept running between calls and removed after
//! its idle TTL; or a one-shot container per call.
//!
//! Locks per warm container (see lock.rs): `<name>.use.lock` is held
//! shared for the whole call; `<name>.create.lock` exclusively while a call
//! creates or starts the container. Pruning takes both exclusively without
//! waiting, so it never removes a container that is being created or used,
//! and never deadlocks with a call (which may wait for create while
//! holding use).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::config::{Config, Volume};
use crate::digest::Key;
use crate::error::{Error, IoContext, Result};
use crate::lock::{self, Lock, Mode};
use crate::store::Podman;
use crate::{fsutil, image, verbose};

pub const PREFIX: &str = "lectic-nix-sandbox-";
/// Every container of ours carries this label (and the name prefix).
pub const LABEL: &str = "io.github.lectic.nix-sandbox";
/// Where the sandbox HOME is mounted.
pub const HOME_TARGET: &str = "/home/sandbox";

/// How long a call waits for a warm container's use or create lock.
const WARM_LOCK_LIMIT: Duration = Duration::from_secs(600);

/// Everything that shapes a container.
#[derive(Debug, Clone)]
pub struct Spec {
    pub image: String,
    pub workdir: PathBuf,
    pub home: PathBuf,
    pub volumes: Vec<Volume>,
    pub allow_net: bool,
    pub rootless: bool,
    pub podman_extra: Vec<String>,
}

impl Spec {
    /// Without `--home`, HOME is a directory per configuration (image
    /// excepted, so a rebuilt image keeps its HOME), created on first use.
    pub fn new(cfg: &Config, image: &str) -> Result<Spec> {
        let mut spec = Spec {
            image: image.to_owned(),
            workdir: cfg.workdir.clone(),
            home: cfg.home.clone().unwrap_or_default(),
            volumes: cfg.volumes.clone(),
            allow_net: cfg.allow_net,
            rootless: cfg.rootless(),
            podman_extra: cfg.podman_extra.clone(),
        };
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
        k.field("userns", if self.rootless { b"keep-id" } else { b"root" });
        for a in &self.podman_extra {
            k.field("podman-extra", a.as_bytes());
        }
        k.hex()
    }

    /// `lectic-nix-sandbox-<hash>`.
    pub fn name(&self) -> String {
        format!("{PREFIX}{}", &self.key(true)[..16])
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
    stamp: PathBuf,
    _in_use: Lock,
}

impl Warm {
    /// Records the end of a use: the idle TTL counts from here.
    pub fn touch(&self) {
        if let Ok(f) = std::fs::File::options().write(true).open(&self.stamp) {
            let _ = f.set_modified(SystemTime::now());
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Running,
    Stopped,
    Missing,
}

fn state(podman: &Podman, name: &str) -> Result<State> {
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

fn lock_path(cfg: &Config, name: &str, what: &str) -> PathBuf {
    cfg.paths.locks().join(format!("{name}.{what}.lock"))
}

fn stamp_dir(cfg: &Config) -> PathBuf {
    cfg.paths.cache.join("warm-state")
}

/// Makes sure the warm container for `spec` runs and marks it in use.
///
/// The use lock (shared) comes first and is all a call needs when the
/// container runs, so parallel calls do not queue; only a missing or
/// stopped container is created or started under the create lock.
pub fn ensure_warm(cfg: &Config, podman: &Podman, spec: &Spec) -> Result<Warm> {
    let name = spec.name();
    let in_use = lock::acquire(
        &lock_path(cfg, &name, "use"),
        Mode::Shared,
        "the warm container",
        WARM_LOCK_LIMIT,
    )?;
    if state(podman, &name)? != State::Running {
        let _creating = lock::acquire(
            &lock_path(cfg, &name, "create"),
            Mode::Exclusive,
            "the warm container",
            WARM_LOCK_LIMIT,
        )?;
        // Another call may have made it while we waited.
        match state(podman, &name)? {
            State::Running => {}
            State::Stopped => {
                verbose!("starting stopped container {name}");
                if podman
                    .check("starting the container", ["start", &name])
                    .is_err()
                {
                    remove(podman, &name)?;
                    create(podman, spec, &name)?;
                }
            }
            State::Missing => create(podman, spec, &name)?,
        }
    }
    let stamp = stamp_dir(cfg).join(format!("{name}.json"));
    // The last call's TTL is the one that counts.
    if stamp_ttl(&stamp) != Some(cfg.ttl.as_secs()) {
        let info = json!({
            "name": name,
            "image": spec.image,
            "workdir": spec.workdir,
            "home": spec.home,
            "allow_net": spec.allow_net,
            "ttl_seconds": cfg.ttl.as_secs(),
        });
        fsutil::write_atomic(&stamp, info.to_string().as_bytes())?;
    }
    let warm = Warm {
        name,
        stamp,
        _in_use: in_use,
    };
    warm.touch();
    Ok(warm)
}

fn create(podman: &Podman, spec: &Spec, name: &str) -> Result<()> {
    if !image::image_exists(podman, &spec.image)? {
        return Err(Error::ImageMissing(spec.image.clone()));
    }
    verbose!("creating warm container {name}");
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    args.extend(spec.run_args());
    args.extend([spec.image.clone(), "sleep".into(), "infinity".into()]);
    podman.check("creating the warm container", &args)?;
    Ok(())
}

fn remove(podman: &Podman, name: &str) -> Result<()> {
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

/// Removes warm containers idle past their TTL, skipping `keep` and any in
/// use. Costs one directory read when nothing has expired.
pub fn prune_expired(cfg: &Config, podman: &Podman, keep: &str) -> Result<()> {
    let dir = stamp_dir(cfg);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_path("cannot read", &dir),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = stamp_name(&path) else {
            continue;
        };
        if name == keep || !expired(&path) {
            continue;
        }
        let Some(_use) = lock::try_acquire(&lock_path(cfg, &name, "use"), Mode::Exclusive)? else {
            continue;
        };
        let Some(_create) = lock::try_acquire(&lock_path(cfg, &name, "create"), Mode::Exclusive)?
        else {
            continue;
        };
        if !expired(&path) {
            continue; // used again while we took the locks
        }
        verbose!("removing idle container {name}");
        remove(podman, &name)?;
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}

fn stamp_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let name = file.strip_suffix(".json")?;
    name.starts_with(PREFIX).then(|| name.to_owned())
}

fn stamp_ttl(stamp: &Path) -> Option<u64> {
    let bytes = std::fs::read(stamp).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("ttl_seconds")?
        .as_u64()
}

fn expired(stamp: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(stamp) else {
        return false;
    };
    let ttl = stamp_ttl(stamp)
        .map(Duration::from_secs)
        .unwrap_or(crate::cli::DEFAULT_TTL);
    let idle = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    idle > ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            image: "localhost/lectic-nix-sandbox:abc".into(),
            workdir: "/w".into(),
            home: "/h".into(),
            volumes: vec![],
            allow_net: false,
            rootless: true,
            podman_extra: vec![],
        }
    }

    #[test]
    fn name_changes_with_everything_that_shapes_the_container() {
        let base = spec().name();
        assert!(base.starts_with(PREFIX) && base.len() == PREFIX.len() + 16);
        let variants: [fn(&mut Spec); 7] = [
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
    fn run_args_isolate_network_and_map_the_user_when_rootless() {
        let a = spec().run_args().join(" ");
        assert!(a.contains("--network none"), "{a}");
        assert!(a.contains("--userns=keep-id"), "{a}");
        assert!(
            a.contains("--volume /w:/w") && a.contains("--volume /h:/home/sandbox"),
            "{a}"
        );
        let mut s = spec();
        s.allow_net = true;
        s.rootless = false;
        let a = s.run_args().join(" ");
        assert!(!a.contains("--network") && !a.contains("keep-id"), "{a}");
    }

    #[test]
    fn stamp_names_are_only_ours() {
        assert_eq!(
            stamp_name(Path::new("/s/lectic-nix-sandbox-0123.json")).as_deref(),
            Some("lectic-nix-sandbox-0123")
        );
        assert_eq!(stamp_name(Path::new("/s/other.json")), None);
        assert_eq!(
            stamp_name(Path::new("/s/.lectic-nix-sandbox-1.json.tmp-3")),
            None
        );
    }
}
