//! `podman load` of a built image: a stream script (streamLayeredImage)
//! is piped straight into podman; an archive (buildLayeredImage, tarballs)
//! is loaded from its file. The loaded image is tagged by its store hash,
//! so two images never share a tag.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::store::Podman;
use crate::verbose;

pub const REPOSITORY: &str = "localhost/lectic-nix-sandbox";

/// Podman's TMPDIR while loading (it spools the archive there). Emptied
/// before each load, under the load lock, so a killed load's leftovers go
/// with the next one (or `--gc`).
pub fn scratch_dir(cfg: &Config) -> PathBuf {
    cfg.paths.temp.join("load")
}

/// Loads `store_path` into our store and returns the image reference.
pub fn load(podman: &Podman, store_path: &str, scratch: &Path) -> Result<String> {
    let path = Path::new(store_path);
    let policy = podman.policy.display().to_string();
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

fn load_in(podman: &Podman, path: &Path, policy: &str, scratch: &Path) -> Result<String> {
    let store_path = &path.display().to_string();
    let output = if is_stream_script(path)? {
        verbose!("streaming {store_path} into podman load");
        let mut producer = Command::new(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: store_path.to_owned(),
                source,
            })?;
        let stream = producer.stdout.take().expect("piped stdout");
        let out = podman
            .command(["load", "--signature-policy", policy])
            .env("TMPDIR", scratch)
            .stdin(stream)
            .output()
            .map_err(|e| podman.spawn_error(e))?;
        let mut err = String::new();
        if let Some(mut e) = producer.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = producer.wait().with_path("cannot wait for", path)?;
        if !status.success() {
            return Err(Error::Podman {
                message: format!("the image stream {store_path} failed ({status})"),
                log: err,
            });
        }
        out
    } else {
        verbose!("loading {store_path}");
        podman
            .command(["load", "--signature-policy", policy, "-i", store_path])
            .env("TMPDIR", scratch)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| podman.spawn_error(e))?
    };
    if !output.status.success() {
        return Err(Error::Podman {
            message: format!("podman load of {store_path} failed"),
            log: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let loaded = parse_loaded(&stdout).ok_or_else(|| Error::Podman {
        message: format!("podman load of {store_path} named no image"),
        log: stdout.clone().into_owned(),
    })?;
    let image = format!("{REPOSITORY}:{}", store_hash(store_path));
    podman.check("tagging the loaded image", ["tag", &loaded, &image])?;
    if loaded != image {
        // Only our tag stays, so every image in the store is one of ours
        // by name, and --gc can tell which are used.
        podman.check("untagging the loaded image", ["untag", &loaded, &loaded])?;
    }
    Ok(image)
}

fn is_stream_script(path: &Path) -> Result<bool> {
    if path.is_dir() {
        return Ok(false);
    }
    let mut head = [0u8; 2];
    let mut f = std::fs::File::open(path).with_path("cannot read the built image", path)?;
    Ok(f.read_exact(&mut head).is_ok() && &head == b"#!")
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
