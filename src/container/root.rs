//! The root of a container of a root filesystem in the Nix store
//! (nix/rootfs.nix, `record::Rootfs`): a skeleton directory made for each
//! container, passed to `podman create --rootfs`, and mounted read-only.
//!
//! Why not the store path itself: every mount needs its mount point in the
//! root, and the workdir is mounted at its own path, which can be anything
//! (`/work/x`, `/srv/y`). Measured rootless (Podman 4.3.1, runc): nothing
//! can be created in a root-owned store path, not even through `--rootfs
//! DIR:O` (its overlay refuses the copy-up: `open .../etc/hosts: permission
//! denied`), and rootful runc would create mount points inside the store.
//! So the skeleton is ours, in the cache: each directory of the root
//! filesystem that some mount lies under is a real directory here, with the
//! mount points in it; everything else is a symlink to the same entry of
//! the root filesystem, which is bind-mounted at its store path with the
//! rest of its closure. Making one is a few hundred mkdirs and symlinks, and
//! every mount point is ours, so the skeleton goes with a plain remove.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::HOME_TARGET;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// A mount point the container needs in its root: a directory, or a file
/// (a bind of a file, `/etc/hosts`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub path: PathBuf,
    pub file: bool,
}

impl Target {
    pub fn dir(path: impl Into<PathBuf>) -> Target {
        Target {
            path: path.into(),
            file: false,
        }
    }

    pub fn file(path: impl Into<PathBuf>) -> Target {
        Target {
            path: path.into(),
            file: true,
        }
    }
}

/// Mount points every container has: the kernel's file systems, Podman's
/// tmpfs and files, and ours (/run holds our state mount).
pub fn fixed_targets() -> Vec<Target> {
    let mut t: Vec<Target> = ["/dev", "/proc", "/sys", "/run", "/tmp", "/var/tmp"]
        .into_iter()
        .map(Target::dir)
        .collect();
    t.extend(
        ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
            .into_iter()
            .map(Target::file),
    );
    t
}

/// Who the container's user is, for its /etc/passwd and /etc/group.
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

/// Makes `dir` (removed first if there) the skeleton of the root
/// filesystem `rootfs` with mount points for `targets`, and /etc/passwd and
/// /etc/group holding `user` (the root filesystem's entries, plus the user
/// unless its uid is there).
pub fn make(dir: &Path, rootfs: &Path, targets: &[Target], user: Option<&User>) -> Result<()> {
    fsutil::remove_any(dir)?;
    let mut all: BTreeSet<Target> = targets.iter().cloned().collect();
    let written = ["/etc/passwd", "/etc/group"];
    all.extend(written.iter().map(Target::file));
    for t in &all {
        if !t.path.is_absolute()
            || t.path
                .components()
                .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
        {
            return Err(Error::usage(format!(
                "mount target {} is not a plain absolute path",
                t.path.display()
            )));
        }
    }
    mkdir(dir)?;
    fill(dir, Some(rootfs), Path::new("/"), &all)?;
    // Podman copies a tmpfs's mount point's mode into it (tmpcopyup): these
    // are sticky and for everyone, as in an image.
    for sticky in ["tmp", "var/tmp"] {
        let at = dir.join(sticky);
        if at.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o1777))
                .with_path("cannot set the mode of", &at)?;
        }
    }
    for name in ["passwd", "group"] {
        let mut text = std::fs::read_to_string(rootfs.join("etc").join(name)).unwrap_or_default();
        if let Some(u) = user {
            let (id, entry) = if name == "passwd" {
                (
                    u.uid,
                    format!("{}:x:{}:{}::{HOME_TARGET}:/bin/sh\n", u.name, u.uid, u.gid),
                )
            } else {
                (u.gid, format!("{}:x:{}:\n", u.name, u.gid))
            };
            let id = id.to_string();
            if !text
                .lines()
                .any(|l| l.split(':').nth(2) == Some(id.as_str()))
            {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text += &entry;
            }
        }
        let at = dir.join("etc").join(name);
        std::fs::write(&at, text).with_path("cannot write", &at)?;
    }
    Ok(())
}

/// Fills the skeleton directory `here` (the root's `rel`) from the root
/// filesystem's directory `from` (None where the root filesystem has none).
fn fill(here: &Path, from: Option<&Path>, rel: &Path, targets: &BTreeSet<Target>) -> Result<()> {
    // The next component of every target under `rel`, and whether a target
    // is that very entry.
    let mut below: std::collections::BTreeMap<std::ffi::OsString, Option<bool>> =
        Default::default();
    for t in targets {
        let Ok(rest) = t.path.strip_prefix(rel) else {
            continue;
        };
        let mut parts = rest.components();
        let Some(Component::Normal(first)) = parts.next() else {
            continue;
        };
        let exact = parts.next().is_none();
        let slot = below.entry(first.to_owned()).or_insert(None);
        if exact {
            *slot = Some(t.file);
        }
    }
    if let Some(from) = from
        && let Ok(entries) = std::fs::read_dir(from)
    {
        for e in entries.flatten() {
            let name = e.file_name();
            if !below.contains_key(&name) {
                let link = here.join(&name);
                std::os::unix::fs::symlink(from.join(&name), &link)
                    .with_path("cannot create", &link)?;
            }
        }
    }
    for (name, exact) in below {
        let at = here.join(&name);
        match exact {
            // A mount point: what the root filesystem has there is covered.
            Some(true) => {
                std::fs::File::create(&at).with_path("cannot create", &at)?;
            }
            Some(false) => mkdir(&at)?,
            None => {
                mkdir(&at)?;
                // Follow the root filesystem's own symlinks (into the store).
                let inner = from
                    .map(|f| f.join(&name))
                    .and_then(|p| std::fs::canonicalize(p).ok())
                    .filter(|p| p.is_dir());
                if from.is_some_and(|f| f.join(&name).exists()) && inner.is_none() {
                    return Err(Error::usage(format!(
                        "a mount under {} needs a directory there, and the root filesystem has a file",
                        rel.join(&name).display()
                    )));
                }
                fill(&at, inner.as_deref(), &rel.join(&name), targets)?;
            }
        }
    }
    Ok(())
}

fn mkdir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // Readable by the container's user, whoever it is; the cache above is
    // private to us.
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .with_path("cannot create directory", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skeleton_links_what_no_mount_needs_and_makes_every_mount_point() {
        let base = crate::testutil::TempDir::new("root");
        let rootfs = base.join("rootfs");
        for d in ["bin", "etc/ssl", "home/sandbox", "usr/bin"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/hosts"), "from the image\n").unwrap();
        let skel = base.join("skel");
        let mut targets = fixed_targets();
        targets.extend([
            Target::dir("/work/project"),
            Target::dir("/home/sandbox"),
            Target::dir("/nix/store/abc-x"),
            Target::file("/nix/store/def-y"),
        ]);
        let user = User {
            uid: 1001,
            gid: 1002,
            name: "u".into(),
        };
        make(&skel, &rootfs, &targets, Some(&user)).unwrap();
        let link = |p: &str| std::fs::read_link(skel.join(p)).ok();
        assert_eq!(link("bin"), Some(rootfs.join("bin")));
        assert_eq!(link("usr"), Some(rootfs.join("usr")));
        assert_eq!(link("etc/ssl"), Some(rootfs.join("etc/ssl")));
        assert!(skel.join("work/project").is_dir());
        assert!(skel.join("nix/store/abc-x").is_dir());
        assert!(skel.join("nix/store/def-y").is_file());
        assert!(skel.join("dev").is_dir() && skel.join("var/tmp").is_dir());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(skel.join("tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777, "sticky /tmp");
        assert_eq!(
            std::fs::read_to_string(skel.join("etc/hosts")).unwrap(),
            "",
            "a mount point, not the image's file"
        );
        assert_eq!(
            std::fs::read_to_string(skel.join("etc/passwd")).unwrap(),
            "root:x:0:0::/root:/bin/sh\nu:x:1001:1002::/home/sandbox:/bin/sh\n"
        );
        assert_eq!(
            std::fs::read_to_string(skel.join("etc/group")).unwrap(),
            "u:x:1002:\n"
        );
        // Made again from scratch; a target under a file is refused.
        std::fs::write(rootfs.join("opt"), "a file").unwrap();
        assert!(make(&skel, &rootfs, &[Target::dir("/opt/x")], None).is_err());
        make(&skel, &rootfs, &targets, None).unwrap();
        assert!(
            !std::fs::read_to_string(skel.join("etc/passwd"))
                .unwrap()
                .contains("1001")
        );
        assert!(make(&skel, &rootfs, &[Target::dir("/a/../b")], None).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
