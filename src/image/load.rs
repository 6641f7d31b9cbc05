//! `podman load` of a built image: a stream script (streamLayeredImage)
//! is piped straight into podman; an archive (buildLayeredImage, tarballs)
//! is loaded from its file. The loaded image is tagged by its store hash,
//! so two images never share a tag.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::archive::Archive;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::store::Podman;
use crate::verbose;

pub const REPOSITORY: &str = "localhost/lectic-nix-sandbox";

/// Podman's TMPDIR while loading (it spools the archive there). Emptied
/// before each load, under the load lock, so a killed load's leftovers go
/// with the next one (or `--gc`).
pub fn scratch_dir(cfg: &Config) -> PathBuf {
    cfg.paths.tmp().join(format!("load-{}", std::process::id()))
}

/// Removes the loads' scratch dirs in the temp dir `tmp` (ones killed
/// loads left; `but` is this load's) and returns those that went. Under the
/// load lock: no other load runs, though a killed one's Podman may still
/// write into its dir (then it stays until the next try).
pub fn remove_scratch(tmp: &Path, but: Option<&Path>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return vec![];
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            (name == "load" || name.starts_with("load-")) && Some(p.as_path()) != but
        })
        .filter(|p| std::fs::remove_dir_all(p).is_ok())
        .collect()
}

/// Loads `store_path` into our store and returns the image's tag and its
/// verified ID.
pub fn load(podman: &Podman, store_path: &str, scratch: &Path) -> Result<(String, String)> {
    let path = Path::new(store_path);
    let policy = podman.policy.display().to_string();
    // A killed load's Podman may still be writing into its own scratch
    // dir; each load has its own, and the others go when they can.
    if let Some(tmp) = scratch.parent() {
        remove_scratch(tmp, Some(scratch));
    }
    clear_scratch(scratch)?;
    let result = load_in(podman, path, &policy, scratch);
    let _ = std::fs::remove_dir_all(scratch);
    result
}

pub fn clear_scratch(scratch: &Path) -> Result<()> {
    match std::fs::remove_dir_all(scratch) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_path("cannot clear", scratch),
    }
    crate::fsutil::ensure_dir(scratch)
}

fn load_in(podman: &Podman, path: &Path, policy: &str, scratch: &Path) -> Result<(String, String)> {
    let store_path = &path.display().to_string();
    // Podman reads the image from our pipe while we read what Nix built,
    // so the config digest is taken from the build output itself.
    let (mut producer, source): (Option<std::process::Child>, Box<dyn Read + Send>) =
        match Source::of(path)? {
            Source::Tar => {
                verbose!("loading {store_path}");
                let f = std::fs::File::open(path).with_path("cannot read the built image", path)?;
                (None, Box::new(f))
            }
            kind => {
                let mut cmd = if matches!(kind, Source::Script) {
                    verbose!("streaming {store_path} into podman load");
                    Command::new(path)
                } else {
                    verbose!("loading {store_path} (gzip)");
                    let mut c = Command::new("gzip");
                    c.arg("-dc").arg(path);
                    c
                };
                let program = cmd.get_program().to_string_lossy().into_owned();
                let mut child = cmd
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|source| Error::Spawn { program, source })?;
                let out = child.stdout.take().expect("piped stdout");
                (Some(child), Box::new(out))
            }
        };
    let mut load = podman
        .command(["load", "--signature-policy", policy])
        .env("TMPDIR", scratch)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| podman.spawn_error(e))?;
    let sink = load.stdin.take().expect("piped stdin");
    let copier = std::thread::spawn(move || tee(source, sink));
    let output = load.wait_with_output().map_err(|e| podman.spawn_error(e))?;
    let archive = copier.join().expect("the copy thread does not panic");
    if let Some(child) = producer.as_mut() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = child.wait().with_path("cannot wait for", path)?;
        if !status.success() && output.status.success() {
            return Err(Error::Podman {
                message: format!("the image stream {store_path} failed ({status})"),
                log: err,
            });
        }
    }
    if !output.status.success() {
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        if log.contains("no space left on device") {
            let seen = archive.as_ref().map_or(0, |a| a.seen);
            let state = scratch.parent().and_then(Path::parent).unwrap_or(scratch);
            return Err(Error::failed(format!(
                "no space left on device while Podman loaded the image (at least {} MB of it): Podman writes it under {} and /var/tmp; free space there, or point LECTIC_CACHE at a disk with room",
                seen.div_ceil(1 << 20),
                state.display()
            )));
        }
        return Err(Error::Podman {
            message: format!("podman load of {store_path} failed ({})", output.status),
            log,
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let loaded = parse_loaded(&stdout).ok_or_else(|| Error::Podman {
        message: format!("podman load of {store_path} named no image"),
        log: stdout.clone().into_owned(),
    })?;
    let want = archive
        .map_err(|e| Error::io("cannot read the built image", path, e))?
        .config_digest()
        .map_err(|why| {
            Error::usage(format!(
                "{store_path} is not a docker archive of one image: {why}; build the image with dockerTools"
            ))
        })?;
    verify(podman, &loaded, &want, store_path)?;
    let image = format!("{REPOSITORY}:{}", store_hash(store_path));
    podman.check("tagging the loaded image", ["tag", &loaded, &image])?;
    if loaded != image {
        // Only our tag stays, so every image in the store is one of ours
        // by name, and --gc can tell which are used.
        podman.check("untagging the loaded image", ["untag", &loaded, &loaded])?;
    }
    Ok((image, format!("sha256:{want}")))
}

/// What a build output is, for loading it.
enum Source {
    /// streamLayeredImage's script: its output is the archive.
    Script,
    /// A gzipped archive (buildLayeredImage).
    Gzip,
    /// A plain tar archive.
    Tar,
}

impl Source {
    fn of(path: &Path) -> Result<Source> {
        if path.is_dir() {
            return Err(Error::usage(format!(
                "{} is a directory, not an image: the flake's containerImage must be a docker archive or a stream script (dockerTools)",
                path.display()
            )));
        }
        let mut head = [0u8; 2];
        let mut f = std::fs::File::open(path).with_path("cannot read the built image", path)?;
        Ok(match f.read_exact(&mut head) {
            Ok(()) if &head == b"#!" => Source::Script,
            Ok(()) if head == [0x1f, 0x8b] => Source::Gzip,
            _ => Source::Tar,
        })
    }
}

/// Copies `from` into `to` and into an [`Archive`]; stops quietly when
/// `to` closes early (Podman failed; its own error says why).
fn tee(mut from: Box<dyn Read + Send>, mut to: impl Write) -> std::io::Result<Archive> {
    let mut archive = Archive::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(archive),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        archive.write_all(&buf[..n])?;
        if to.write_all(&buf[..n]).is_err() {
            return Ok(archive);
        }
    }
}

/// Fails unless the image Podman loaded as `loaded` is the one whose
/// config digest is `want`; a wrong one is removed again.
fn verify(podman: &Podman, loaded: &str, want: &str, store_path: &str) -> Result<()> {
    let id = podman.image_id(loaded)?.unwrap_or_default();
    let id = id.trim_start_matches("sha256:");
    if id == want {
        return Ok(());
    }
    let _ = podman.output(["rmi", "--force", loaded]);
    Err(Error::failed(format!(
        "the image Podman loaded ({}) is not the one Nix built ({store_path}, config sha256:{}): something altered it on the way; nothing was kept, run the command again",
        &id[..id.len().min(12)],
        &want[..12]
    )))
}

/// `Loaded image: X` (one) or `Loaded image(s): X,Y` (Podman's two forms).
fn parse_loaded(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        let rest = l
            .strip_prefix("Loaded image(s): ")
            .or_else(|| l.strip_prefix("Loaded image: "))?;
        rest.split(',').next().map(|s| s.trim().to_owned())
    })
}

/// The hash part of a store path's name.
fn store_hash(store_path: &str) -> String {
    let name = Path::new(store_path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(store_path);
    name.split('-').next().unwrap_or(name).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_image_name_from_both_podman_forms() {
        assert_eq!(
            parse_loaded("Loaded image: localhost/a:latest\n").as_deref(),
            Some("localhost/a:latest")
        );
        assert_eq!(
            parse_loaded("x\nLoaded image(s): localhost/a:1,localhost/a:2\n").as_deref(),
            Some("localhost/a:1")
        );
        assert_eq!(parse_loaded("nothing"), None);
    }

    #[test]
    fn tag_is_the_store_hash() {
        assert_eq!(store_hash("/nix/store/3fm0wapa-stream-img"), "3fm0wapa");
    }
}
