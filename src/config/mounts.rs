//! The mount guard: what no option may mount (the user's credentials,
//! the host's sockets and system directories, our own state), the
//! project roots every mount lies in, and mount sources checked without
//! following a symlink.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::lexical;
use crate::{fsutil, sys};

use super::paths::{Paths, path_var};

/// What in HOME holds keys, tokens and the configuration of the user's
/// tools (ours included): never mounted, nor anything inside.
pub(super) const CREDENTIALS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".password-store",
    ".pki",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".local/share/keyrings",
    ".vault-token",
    ".terraform.d",
    ".mozilla",
];

/// Host places never mounted into the sandbox, whatever the options say:
/// the real HOME and every directory that holds it (projects inside it are
/// fine, its credentials are not), the host's socket directories (the runtime dir with the Podman,
/// SSH agent, D-Bus and Wayland sockets; /run; X11's), the system's own
/// directories (the Nix store, whose root filesystem's closure alone is
/// mounted, read-only; /proc, /sys, /dev; /etc; the programs) and the
/// sandbox's own state, with all inside them.
pub(super) struct Guarded(Vec<Place>);

pub(super) struct Place {
    path: PathBuf,
    why: &'static str,
    /// Whether what lies inside may be mounted (HOME's projects).
    inside_ok: bool,
}

impl Guarded {
    pub(super) fn new(lookup: &impl Fn(&str) -> Option<OsString>, paths: &Paths) -> Guarded {
        let var = |name: &str| path_var(lookup, name);
        let place = |path: PathBuf, why, inside_ok| Place {
            // Compared resolved, as the mounts are.
            path: std::fs::canonicalize(&path).unwrap_or(path),
            why,
            inside_ok,
        };
        let state = "the sandbox's own state";
        let system = "a directory of the host system";
        let mut places = vec![
            place(
                "/nix".into(),
                "the Nix store, shared by every user; only the root filesystem's own store paths are mounted, read-only",
                false,
            ),
            place("/proc".into(), "the host's processes", false),
            place("/sys".into(), "the host's kernel interface", false),
            place("/dev".into(), "the host's devices", false),
            place("/etc".into(), "the host's configuration", false),
            place("/boot".into(), system, false),
            place("/usr".into(), system, false),
            place("/bin".into(), system, false),
            place("/sbin".into(), system, false),
            place("/lib".into(), system, false),
            place("/lib64".into(), system, false),
            place("/var/lib".into(), "the host's services' state", false),
            place("/var".into(), system, true),
            place("/run".into(), "where the host's sockets are", false),
            place("/tmp/.X11-unix".into(), "where the X11 sockets are", false),
            place(paths.cache.clone(), state, false),
            place(paths.run.clone(), state, false),
            place(paths.bound_run_dir(), state, false),
        ];
        if let Some(home) = var("HOME") {
            let home = std::fs::canonicalize(&home).unwrap_or(home);
            places.push(place(home.clone(), "your home directory", true));
            for name in CREDENTIALS {
                places.push(place(home.join(name), "where your credentials are", false));
            }
        }
        if let Some(dir) = var("XDG_RUNTIME_DIR") {
            places.push(place(dir, "where your session's sockets are", false));
        }
        if let Some(dir) = var("SSH_AUTH_SOCK").and_then(|s| s.parent().map(Path::to_owned)) {
            places.push(place(dir, "where the SSH agent's socket is", false));
        }
        Guarded(places)
    }

    /// `path` (resolved) must neither be inside a guarded place nor hold one.
    pub(super) fn check(&self, option: &str, path: &Path) -> Result<()> {
        for Place {
            path: place,
            why,
            inside_ok,
        } in &self.0
        {
            let relation = if path == place {
                format!("is {why}")
            } else if place.starts_with(path) {
                format!("holds {} ({why})", place.display())
            } else if path.starts_with(place) && !inside_ok {
                format!("is inside {} ({why})", place.display())
            } else {
                continue;
            };
            return Err(Error::usage(format!(
                "{option} {}: {relation}; the sandbox never mounts it, name a project directory instead",
                path.display()
            )));
        }
        Ok(())
    }
}

/// `path` with its existing part resolved (symlinks, `..`) and the rest,
/// still to be created, appended: what it will be once created.
pub(super) fn resolve_lenient(option: &str, path: &Path) -> Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            return Ok(rest.iter().rev().fold(real, |acc, part| acc.join(part)));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => {
                return Err(Error::usage(format!(
                    "{option} {}: `..` through a directory that does not exist; give a plain path",
                    path.display()
                )));
            }
        }
    }
}

/// A mount source as it was checked: the inode its path named, which the
/// new container's mount must be (see `container::verify_mounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The option that named it, for errors.
    pub option: &'static str,
    pub path: PathBuf,
    /// Where it is mounted in the container.
    pub target: PathBuf,
    /// Its device and inode numbers.
    pub id: (u64, u64),
}

/// The error for a mount source that goes through a symlink.
pub(super) fn through_symlink(option: &str, given: &Path, real: &Path) -> Error {
    Error::usage(format!(
        "{option} {}: goes through a symlink (to {}), which a command could have planted; the sandbox mounts only real paths: name {} if you mean it",
        given.display(),
        real.display(),
        real.display()
    ))
}

/// Refuses a mount source whose path goes through a symlink, one a command
/// could have put in a directory it can write, and returns what it names
/// (opened without following any symlink, so what was checked is what
/// the container must get). `real` is `given` resolved.
pub(super) fn check_source(
    option: &'static str,
    given: &Path,
    real: &Path,
    target: &Path,
) -> Result<Checked> {
    if lexical(given) != real {
        return Err(through_symlink(option, given, real));
    }
    let f = sys::open_no_symlinks(real).map_err(|e| {
        if sys::is_symlink_refusal(&e) {
            through_symlink(option, given, real)
        } else {
            Error::io("cannot open", real, e)
        }
    })?;
    let m = f.metadata().with_path("cannot inspect", real)?;
    Ok(Checked {
        option,
        path: real.to_owned(),
        target: target.to_owned(),
        id: fsutil::file_id(&m),
    })
}

/// The invoking user's project roots: every mounted host path must lie
/// inside one (paths resolved, so `..` and symlinks cannot leave them).
pub(super) struct Roots {
    roots: Vec<PathBuf>,
    source: String,
}

impl Roots {
    pub(super) fn new(roots: &[PathBuf], source: &str) -> Roots {
        Roots {
            roots: roots
                .iter()
                .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
                .collect(),
            source: source.to_owned(),
        }
    }

    pub(super) fn check(&self, option: &str, path: &Path) -> Result<()> {
        if self.roots.iter().any(|r| path.starts_with(r)) {
            return Ok(());
        }
        let list: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        let roots = if list.is_empty() {
            "none for you".to_owned()
        } else {
            list.join(", ")
        };
        Err(Error::usage(format!(
            "{option} {}: outside your project roots ({roots}; {}); work inside one, or add the directory to project_roots there",
            path.display(),
            self.source
        )))
    }
}

/// Where `--persist` is mounted.
pub(super) const PERSIST: &str = "/persist";

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

impl Volume {
    /// Parses `HOST[:TARGET][:ro|:rw]`; HOST must exist (relative to the
    /// cwd). HOST is made absolute, not resolved: `Config::build` checks it.
    pub fn parse(spec: &str, cwd: &Path) -> Result<Volume> {
        let bad = |why: &str| Error::usage(format!("--volume {spec}: {why}"));
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, target, mode) = match parts.as_slice() {
            [h] => (*h, None, None),
            [h, m @ ("ro" | "rw")] => (*h, None, Some(*m)),
            [h, t] => (*h, Some(*t), None),
            [h, t, m @ ("ro" | "rw")] => (*h, Some(*t), Some(*m)),
            [_, _, m] => return Err(bad(&format!("unknown mode `{m}`; use ro or rw"))),
            _ => {
                return Err(bad(
                    "expected HOST[:TARGET][:ro]; paths containing ':' cannot be mounted",
                ));
            }
        };
        if host.is_empty() {
            return Err(bad("the host path is empty"));
        }
        let given = host;
        let host = lexical(&cwd.join(host));
        std::fs::metadata(&host).map_err(|e| {
            bad(&format!(
                "host path {given} cannot be used ({e}); create it or fix the path"
            ))
        })?;
        let target = match target {
            Some(t) if t.starts_with('/') && !t.contains(',') => PathBuf::from(t),
            Some(t) => {
                return Err(bad(&format!(
                    "target `{t}` must be an absolute path without ','"
                )));
            }
            None => host.clone(),
        };
        Ok(Volume {
            host,
            target,
            read_only: mode == Some("ro"),
        })
    }

    /// Podman's `-v` value.
    pub fn podman_arg(&self) -> String {
        let mut s = format!("{}:{}", self.host.display(), self.target.display());
        if self.read_only {
            s.push_str(":ro");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    #[test]
    fn a_path_still_to_be_created_resolves_through_what_exists() {
        let tmp = std::fs::canonicalize(std::env::temp_dir()).unwrap();
        let p = resolve_lenient("--persist", &tmp.join("no-such-lns/a/b")).unwrap();
        assert_eq!(p, tmp.join("no-such-lns/a/b"));
        let up = resolve_lenient("--persist", &tmp.join("no-such-lns/../x"));
        assert!(up.is_err(), "`..` through a missing dir");
    }

    #[test]
    fn a_mount_source_through_a_symlink_is_refused_and_a_real_one_names_its_inode() {
        let dir = crate::testutil::TempDir::new("config-src");
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        let real = dir.join("real");
        let c = check_source("--volume", &real, &real, Path::new("/data")).unwrap();
        let m = std::fs::metadata(&real).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(c.id, (m.dev(), m.ino()));
        let e = check_source("--volume", &dir.join("link"), &real, Path::new("/d")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // `..` after a symlink leaves the symlink's target, not its parent.
        std::fs::create_dir_all(dir.join("real/sub")).unwrap();
        std::fs::create_dir_all(dir.join("real/x")).unwrap();
        std::fs::create_dir_all(dir.join("x")).unwrap();
        std::os::unix::fs::symlink(dir.join("real/sub"), dir.join("deep")).unwrap();
        let up = dir.join("deep/../x");
        let resolved = std::fs::canonicalize(&up).unwrap();
        assert_eq!(resolved, dir.join("real/x"));
        let e = check_source("--volume", &up, &resolved, Path::new("/d")).unwrap_err();
        assert!(
            e.to_string().contains("symlink"),
            "`..` after a symlink: {e}"
        );
    }

    #[test]
    fn credential_directories_in_home_are_never_mounted() {
        let scratch = crate::testutil::TempDir::new("config-home");
        std::fs::create_dir_all(scratch.join("project")).unwrap();
        let home = scratch.path().to_owned();
        let paths = Paths::from_env(env_of(&[("LECTIC_CACHE", "/nonexistent/c")]), 1).unwrap();
        let h = home.display().to_string();
        let g = Guarded::new(&env_of(&[("HOME", &h)]), &paths);
        g.check("--volume", &home.join("project")).unwrap();
        for cred in [
            ".ssh",
            ".gnupg/x",
            ".aws",
            ".config/lectic",
            ".netrc",
            ".kube",
        ] {
            let e = g
                .check("--volume", &home.join(cred))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("credentials") && e.contains("never mounts"),
                "{e}"
            );
        }
        let e = g.check("--volume", &home).unwrap_err().to_string();
        assert!(e.contains("is your home directory"), "{e}");
    }

    #[test]
    fn volume_forms() {
        let cwd = std::env::temp_dir();
        let t = std::fs::canonicalize(&cwd).unwrap();
        let v = Volume::parse(cwd.to_str().unwrap(), &cwd).unwrap();
        assert_eq!(
            (v.host.clone(), v.target.clone(), v.read_only),
            (t.clone(), t.clone(), false)
        );
        let v = Volume::parse(&format!("{}:ro", cwd.display()), &cwd).unwrap();
        assert!(v.read_only && v.target == t);
        let v = Volume::parse(&format!("{}:/data:ro", cwd.display()), &cwd).unwrap();
        assert_eq!(v.podman_arg(), format!("{}:/data:ro", t.display()));
        assert!(Volume::parse(&format!("{}:relative", cwd.display()), &cwd).is_err());
        assert!(Volume::parse(&format!("{}:/d:rx", cwd.display()), &cwd).is_err());
        assert!(Volume::parse("/no/such/dir/anywhere", &cwd).is_err());
        assert!(Volume::parse("a:b:c:d", &cwd).is_err());
    }
}
