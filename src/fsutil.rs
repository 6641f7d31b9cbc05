//! File helpers: atomic writes and directories that must be private.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Writes `bytes` to `path` through a temp file in the same directory and a
/// rename, so a reader (or a crash) never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    // Made anew, never opened through what is there: in a directory a
    // command can write (a `--worktree`'s), a planted symlink by that
    // name would point the write elsewhere.
    let _ = fs::remove_file(&tmp);
    let mut f = fs::File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_path("cannot write", &tmp)?;
    f.write_all(bytes).with_path("cannot write", &tmp)?;
    f.sync_all().with_path("cannot write", &tmp)?;
    fs::rename(&tmp, path).with_path("cannot rename into place", path)
}

/// Creates `path` (and parents) if missing; what it creates is private
/// (0700), so nothing of ours under it is readable by others.
pub fn ensure_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_path("cannot create directory", path)
}

/// Makes sure that only root and `uid` can change what `path` names, and
/// that `path` is a directory of `uid`'s that no one else can enter:
/// every directory on the way (symlinks followed, each checked) belongs to
/// root or `uid` and is writable by no one else, unless sticky (`/tmp`:
/// others may add entries but not move ours); every symlink belongs to
/// root or `uid`. What is missing is created (0700) through the directory
/// just checked; the last directory is set to 0700 if it was looser.
///
/// Once this holds, the path cannot be swapped by another user, so using
/// it afterwards is as safe as using the descriptors checked here.
/// `path` is absolute and normalized (see `lexical`).
pub fn trusted_dir(path: &Path, uid: u32) -> Result<()> {
    let (leaf, at) = walk_trusted(path, uid, true)?.expect("made when missing");
    let m = leaf.metadata().with_path("cannot inspect", &at)?;
    if m.uid() != uid {
        return Err(untrusted(
            &at,
            format!("it belongs to uid {}, not {uid}", m.uid()),
        ));
    }
    if m.mode() & 0o077 != 0 {
        crate::sys::chmod_dir(&leaf, 0o700).with_path("cannot make private", &at)?;
    }
    own_group(&leaf, &m, uid, &at)
}

/// Makes sure rootless containers can pass through `dir` on the way to
/// what it holds (see `own_group` for why a 0700 directory of a foreign
/// group stops them): one without search for others must be ours and of
/// our group. A directory of ours whose group has no rights anyway is
/// given our group; anything else is refused, saying what to change.
fn passable(dir: &fs::File, m: &fs::Metadata, uid: u32, at: &Path) -> Result<()> {
    let gid = crate::sys::egid();
    if uid == 0 || m.mode() & 0o001 != 0 || (m.uid() == uid && m.gid() == gid) {
        return Ok(());
    }
    if m.uid() == uid && m.mode() & 0o070 == 0 {
        return own_group(dir, m, uid, at);
    }
    Err(Error::failed(format!(
        "{}: rootless containers cannot pass through it (mode {:o}, owner {}, group {}; Podman maps only your own uid and gid into them): let others pass with `chmod o+x {}`, or set LECTIC_CACHE elsewhere",
        at.display(),
        m.mode() & 0o7777,
        m.uid(),
        m.gid(),
        at.display()
    )))
}

/// Gives a private directory of ours our own group. Rootless Podman's
/// keep-id maps only our uid and gid into the container's user namespace,
/// where root can pass through a 0700 directory only if both its owner and
/// its group are mapped: one that took a foreign group from a setgid
/// parent would stop runc from mounting what lies below.
fn own_group(dir: &fs::File, m: &fs::Metadata, uid: u32, at: &Path) -> Result<()> {
    let gid = crate::sys::egid();
    if uid == 0 || m.uid() != uid || m.gid() == gid {
        return Ok(());
    }
    std::os::unix::fs::chown(crate::sys::fd_path(dir), None, Some(gid))
        .with_path("cannot give our group to", at)
}

/// The contents of `path` if it is a regular file of root's that no one
/// else can write, on a path only root can change (as `trusted_dir`
/// checks, for root alone); None if it does not exist. Read through the
/// descriptor that was checked.
pub fn read_root_file(path: &Path) -> Result<Option<Vec<u8>>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let Some((dir, _)) = walk_trusted(dir, 0, false)? else {
        return Ok(None);
    };
    let file = match crate::sys::open_at_nofollow(&dir, name) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other.with_path("cannot open", path)?,
    };
    let m = file.metadata().with_path("cannot inspect", path)?;
    if !m.is_file() {
        return Err(untrusted(path, "it is not a regular file".into()));
    }
    if m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(untrusted(
            path,
            format!(
                "it must be root's and writable by no one else (it is uid {}'s, mode {:o})",
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    read_opened(&file).with_path("cannot read", path).map(Some)
}

/// The contents of the file `f` names, an O_PATH descriptor already
/// checked: opened again for reading through it, not through a path.
fn read_opened(f: &fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(crate::sys::fd_path(f))?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn untrusted(at: &Path, why: String) -> Error {
    Error::Untrusted {
        path: at.to_owned(),
        why,
        fix: "make it yours or root's and writable by no one else".into(),
    }
}

/// Walks `path` from `/` as `trusted_dir` describes, for the owner `uid`
/// (root always counts), creating what is missing if `create`, and
/// returns the last directory opened (O_PATH) and its path; None when
/// something is missing and not to be created.
fn walk_trusted(path: &Path, uid: u32, create: bool) -> Result<Option<(fs::File, PathBuf)>> {
    use std::path::Component;
    // Group write is harmless in a user private group (no other member).
    let our_group = (uid != 0).then(|| (crate::sys::egid(), crate::sys::user_name(uid)));
    let check = |at: &Path, f: &fs::File, m: &fs::Metadata, what: &str| -> Result<()> {
        if m.uid() != 0 && m.uid() != uid {
            return Err(untrusted(
                at,
                format!(
                    "the {what} belongs to uid {}, not to root or {uid}",
                    m.uid()
                ),
            ));
        }
        let mode = m.mode();
        if m.is_symlink() || mode & 0o1000 != 0 {
            return Ok(());
        }
        if mode & 0o002 != 0 {
            return Err(untrusted(
                at,
                format!("the {what} is writable by every user"),
            ));
        }
        if mode & 0o020 != 0 && crate::sys::has_acl(f) {
            return Err(untrusted(
                at,
                format!("the {what} has an ACL that may let others write"),
            ));
        }
        let private_group = our_group
            .as_ref()
            .is_some_and(|(gid, user)| m.gid() == *gid && crate::sys::group_has_only(*gid, user));
        if mode & 0o020 != 0 && !private_group {
            return Err(untrusted(
                at,
                format!("the {what} is writable by group {}", m.gid()),
            ));
        }
        Ok(())
    };
    let slash = Path::new("/");
    let root = fs::File::open(slash).with_path("cannot open", slash)?;
    let root_meta = root.metadata().with_path("cannot inspect", slash)?;
    check(slash, &root, &root_meta, "directory")?;
    // The directories opened so far, each checked, with their paths.
    let mut stack = vec![(root, PathBuf::from("/"))];
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    let mut created = false;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let (dir, dir_path) = stack.last().expect("the root stays");
        let here = dir_path.join(&name);
        let opened = match crate::sys::open_at_nofollow(dir, &name) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match crate::sys::mkdir_at(dir, &name, 0o700) {
                    Ok(()) => created = true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("cannot create directory", &here, e)),
                }
                crate::sys::open_at_nofollow(dir, &name)
            }
            other => other,
        }
        .with_path("cannot open", &here)?;
        let m = opened.metadata().with_path("cannot inspect", &here)?;
        if m.is_symlink() {
            check(&here, &opened, &m, "symlink")?;
            hops += 1;
            if hops > 40 {
                return Err(untrusted(&here, "too many symlinks".into()));
            }
            let target = crate::sys::readlink_at(dir, &name).with_path("cannot read", &here)?;
            if target.is_absolute() {
                stack.truncate(1);
            }
            for part in target.components().rev() {
                match part {
                    Component::Normal(n) => todo.push_front(n.to_owned()),
                    Component::ParentDir => todo.push_front("..".into()),
                    _ => {}
                }
            }
            continue;
        }
        if !m.is_dir() {
            return Err(untrusted(&here, "it is not a directory".into()));
        }
        check(&here, &opened, &m, "directory")?;
        if std::mem::take(&mut created) {
            own_group(&opened, &m, uid, &here)?;
        } else if create {
            passable(&opened, &m, uid, &here)?;
        }
        stack.push((opened, here));
    }
    Ok(stack.pop())
}

/// `path` (absolute) with `.` and `..` taken away by name, not by
/// following symlinks.
pub fn lexical(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// What names a file across renames: its device and inode numbers.
pub fn file_id(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Removes whatever is at `path` (a file, a socket, a symlink, which is not
/// followed, or a whole directory tree); nothing there is no error.
pub fn remove_any(path: &Path) -> Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => open_up(path).and_then(|()| fs::remove_dir_all(path)),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("cannot remove", path, e))
        }
        _ => Ok(()),
    }
}

/// Makes every directory of the tree at `path` ours to list and empty
/// (mode 0700), so a tree someone left unwritable (`chmod 500`) can go;
/// symlinks are not followed.
fn open_up(path: &Path) -> std::io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    for e in fs::read_dir(path)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            open_up(&e.path())?;
        }
    }
    Ok(())
}

/// Opens the absolute, normalized `path` for reading, following no
/// symlink (see `sys::open_no_symlinks`): the file opened is the one the
/// path named when it was walked, and a regular file, or the open fails
/// (a fifo is never opened, so it cannot block).
pub fn open_no_symlinks(path: &Path) -> std::io::Result<(fs::Metadata, fs::File)> {
    let f = crate::sys::open_no_symlinks(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((meta, fs::File::open(crate::sys::fd_path(&f))?))
}

/// Reads the file `open_no_symlinks` opens.
pub fn read_no_symlinks(path: &Path) -> std::io::Result<(fs::Metadata, Vec<u8>)> {
    use std::io::Read;
    let (meta, mut f) = open_no_symlinks(path)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok((meta, bytes))
}

/// Where `program` is found on PATH.
pub fn on_path(program: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_never_writes_through_a_planted_temp_file() {
        let t = crate::testutil::TempDir::new("atomic");
        let victim = t.join("victim");
        fs::write(&victim, "mine").unwrap();
        // The temp file's name is predictable: a symlink waits there.
        let tmp = t.join(format!(".state.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_atomic(&t.join("state"), b"new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "mine");
        assert_eq!(fs::read_to_string(t.join("state")).unwrap(), "new");
        assert!(fs::symlink_metadata(&tmp).is_err());
    }

    /// A path for one test that does not exist yet, in a directory
    /// removed after it.
    fn scratch(name: &str) -> (crate::testutil::TempDir, std::path::PathBuf) {
        let t = crate::testutil::TempDir::new("fsutil");
        let d = t.join(name);
        (t, d)
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let (_scratch, d) = scratch("atomic");
        let f = d.join("rec.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn a_tree_left_unwritable_is_removed_all_the_same() {
        let (_scratch, d) = scratch("locked");
        fs::create_dir_all(d.join("sock/d")).unwrap();
        fs::write(d.join("sock/d/f"), "x").unwrap();
        fs::set_permissions(d.join("sock/d"), fs::Permissions::from_mode(0o500)).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("sock/link")).unwrap();
        remove_any(&d.join("sock")).unwrap();
        assert!(!d.join("sock").exists());
        assert!(
            Path::new("/etc/passwd").exists(),
            "the symlink was not followed"
        );
        remove_any(&d.join("nothing-there")).unwrap();
    }

    #[test]
    fn a_trusted_dir_is_made_private_through_what_only_its_owner_can_change() {
        let (_scratch, d) = scratch("trust");
        let uid = crate::sys::euid();
        // Made from nothing, each new dir 0700; /tmp is sticky and fine.
        trusted_dir(&d.join("a/b"), uid).unwrap();
        for made in [d.join("a"), d.join("a/b")] {
            assert_eq!(
                fs::metadata(&made).unwrap().mode() & 0o777,
                0o700,
                "{made:?}"
            );
        }
        // A loose leaf of ours is tightened; a loose parent is refused.
        fs::set_permissions(d.join("a/b"), fs::Permissions::from_mode(0o755)).unwrap();
        trusted_dir(&d.join("a/b"), uid).unwrap();
        assert_eq!(fs::metadata(d.join("a/b")).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o777)).unwrap();
        let e = trusted_dir(&d.join("a/b"), uid).unwrap_err().to_string();
        assert!(e.contains("writable by every user"), "{e}");
        fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o700)).unwrap();
        // Symlinks of ours are followed and their targets checked.
        std::os::unix::fs::symlink("a", d.join("link")).unwrap();
        trusted_dir(&d.join("link/b"), uid).unwrap();
        fs::create_dir(d.join("open")).unwrap();
        fs::set_permissions(d.join("open"), fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink(d.join("open"), d.join("to-open")).unwrap();
        assert!(trusted_dir(&d.join("to-open/x"), uid).is_err());
        if uid == 0 {
            // Root runs the tests in CI: another owner can be given.
            std::os::unix::fs::lchown(d.join("link"), Some(4242), None).unwrap();
            let e = trusted_dir(&d.join("link/b"), uid).unwrap_err().to_string();
            assert!(e.contains("symlink belongs to uid 4242"), "{e}");
            std::os::unix::fs::lchown(d.join("a/b"), Some(4242), None).unwrap();
            let e = trusted_dir(&d.join("a/b"), uid).unwrap_err().to_string();
            assert!(e.contains("belongs to uid 4242"), "{e}");
        }
        assert!(
            trusted_dir(&d.join("a/b"), uid + 1).is_err(),
            "not that uid's"
        );
    }

    #[test]
    fn a_checked_file_is_read_only_through_the_path_that_was_checked() {
        let (_scratch, d) = scratch("read");
        fs::create_dir_all(d.join("allowed")).unwrap();
        fs::write(d.join("allowed/ok.nix"), "[ ]").unwrap();
        fs::write(d.join("evil.nix"), "throw").unwrap();
        assert_eq!(
            read_no_symlinks(&d.join("allowed/ok.nix")).unwrap().1,
            b"[ ]"
        );
        // Swapped for a link after the check: the read fails.
        fs::remove_file(d.join("allowed/ok.nix")).unwrap();
        std::os::unix::fs::symlink(d.join("evil.nix"), d.join("allowed/ok.nix")).unwrap();
        assert!(read_no_symlinks(&d.join("allowed/ok.nix")).is_err());
        assert!(read_no_symlinks(&d.join("allowed")).is_err(), "not a file");
    }
}
