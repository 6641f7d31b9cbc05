//! File helpers: atomic writes and directories that must be private.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Writes `bytes` to `path` through a temp file in the same directory and a
/// rename, so a reader (or a crash) never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_path("cannot create directory", dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = fs::File::create(&tmp).with_path("cannot write", &tmp)?;
    f.write_all(bytes).with_path("cannot write", &tmp)?;
    f.sync_all().with_path("cannot write", &tmp)?;
    fs::rename(&tmp, path).with_path("cannot rename into place", path)
}

/// Creates `path` (and parents) if missing.
pub fn ensure_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_path("cannot create directory", path)
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

/// Creates `path` as a directory only this uid can enter, or checks that the
/// existing one is exactly that: ours, mode 0700, not a symlink. A directory
/// in a shared place such as /tmp may have been made by another user to
/// catch our files.
pub fn ensure_private_dir(path: &Path, uid: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        ensure_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("cannot create directory", path, e)),
    }
    let meta = fs::symlink_metadata(path).with_path("cannot inspect", path)?;
    let untrusted = |why: String| {
        Err(Error::Untrusted {
            path: path.to_owned(),
            why,
        })
    };
    if !meta.is_dir() {
        return untrusted("it is not a directory".into());
    }
    if meta.uid() != uid {
        return untrusted(format!("it belongs to uid {}, not {uid}", meta.uid()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return untrusted(format!(
            "its mode is {:o}, not 700",
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
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

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lns-fsutil-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let d = scratch("atomic");
        let f = d.join("rec.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn a_tree_left_unwritable_is_removed_all_the_same() {
        let d = scratch("locked");
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
    fn private_dir_with_loose_mode_is_refused() {
        let d = scratch("loose");
        let uid = crate::sys::euid();
        ensure_private_dir(&d, uid).unwrap();
        ensure_private_dir(&d, uid).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&d, uid).unwrap_err().to_string();
        assert!(e.contains("not 700"), "{e}");
        assert!(ensure_private_dir(&d, uid + 1).is_err());
    }
}
