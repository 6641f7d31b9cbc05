//! The flake the image comes from. Ours travels inside the binary and is
//! written under the cache dir, so the binary does not depend on where it
//! was installed; `--flake` replaces it.

use crate::state::Bucket;
use std::path::{Path, PathBuf};

use crate::config::ImageSpec;
use crate::digest::Key;
use crate::error::{IoContext, Result};
use crate::fsutil;

/// Our flake's files, as compiled in.
pub const FILES: &[(&str, &str)] = &[
    ("flake.nix", include_str!("../../flake.nix")),
    ("flake.lock", include_str!("../../flake.lock")),
    ("nix/image.nix", include_str!("../../nix/image.nix")),
    ("nix/rootfs.nix", include_str!("../../nix/rootfs.nix")),
    ("nix/contents.nix", include_str!("../../nix/contents.nix")),
    (
        "nix/packages-file.nix",
        include_str!("../../nix/packages-file.nix"),
    ),
    ("nix/package.nix", include_str!("../../nix/package.nix")),
];

/// Where `--nix-packages-file`'s contents go in the materialized flake.
pub const EXTRA_PACKAGES: &str = "nix/extra-packages.nix";
const DEFAULT_EXTRA_PACKAGES: &str = include_str!("../../nix/extra-packages.nix");

/// Feeds every byte that decides the flake's content into `key`.
pub fn add_to_key(spec: &ImageSpec, key: &mut Key) {
    match &spec.flake {
        Some(reference) => {
            key.field("flake-ref", reference.as_bytes());
            // A local flake's own files are seen; files they import are not
            // (use --rebuild after changing those).
            if let Some(dir) = local_flake_dir(reference) {
                for name in ["flake.nix", "flake.lock"] {
                    let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
                    key.field(name, &bytes);
                }
            }
        }
        None => {
            for (name, text) in FILES {
                key.field(name, text.as_bytes());
            }
            key.field(EXTRA_PACKAGES, extra_packages(spec));
        }
    }
}

fn extra_packages(spec: &ImageSpec) -> &[u8] {
    spec.packages_file
        .as_ref()
        .map(|(_, bytes)| bytes.as_slice())
        .unwrap_or(DEFAULT_EXTRA_PACKAGES.as_bytes())
}

/// A `path:` or plain directory reference, if the flake is on this machine.
fn local_flake_dir(reference: &str) -> Option<PathBuf> {
    let path = reference.strip_prefix("path:").unwrap_or(reference);
    let path = path.split(['?', '#']).next()?;
    let dir = Path::new(path);
    (path.starts_with('/') || path.starts_with('.'))
        .then(|| dir.to_owned())
        .filter(|d| d.join("flake.nix").is_file())
}

/// The installable to build: ours is `containerRootfs`; a `--flake`'s is
/// its `containerRootfs` if it has one, else its `containerImage`, unless
/// REF names an output itself.
pub fn installable(spec: &ImageSpec, cache: &Path, key: &str) -> Result<String> {
    match &spec.flake {
        Some(r) if r.contains('#') => Ok(r.clone()),
        Some(r) if super::nix::has_rootfs(spec, r)? => Ok(format!("{r}#containerRootfs")),
        Some(r) => Ok(format!("{r}#containerImage")),
        None => {
            let dir = materialize(spec, &cache.join(Bucket::Flakes.name()).join(&key[..16]))?;
            Ok(format!("path:{}#containerRootfs", dir.display()))
        }
    }
}

/// Writes our flake (with the packages file in place) into `dir`: in a
/// temp dir and renamed, so a half-written flake never exists. One already
/// there is used only if every file is what this binary would write (a
/// build is rare, and what it builds must be ours, whoever edited the
/// cache).
fn materialize(spec: &ImageSpec, dir: &Path) -> Result<PathBuf> {
    let files: Vec<(&str, &[u8])> = FILES
        .iter()
        .map(|(n, t)| (*n, t.as_bytes()))
        .chain([(EXTRA_PACKAGES, extra_packages(spec))])
        .collect();
    let intact = || {
        files
            .iter()
            .all(|(name, bytes)| std::fs::read(dir.join(name)).is_ok_and(|b| b == *bytes))
    };
    if intact() {
        return Ok(dir.to_owned());
    }
    fsutil::remove_any(dir)?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, bytes) in files.iter().copied() {
        fsutil::write_atomic(&tmp.join(name), bytes)?;
    }
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(dir.to_owned()),
        // Another call materialized the same content first.
        Err(_) if intact() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir.to_owned())
        }
        Err(e) => Err(e).with_path("cannot create flake directory", dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_copy_of_our_flake_is_written_again() {
        let dir = crate::testutil::TempDir::new("flake");
        let spec = crate::image::record::tests::spec();
        let flake = materialize(&spec, &dir.join("k")).unwrap();
        let extra = flake.join(EXTRA_PACKAGES);
        std::fs::write(&extra, "builtins.throw \"edited\"").unwrap();
        materialize(&spec, &dir.join("k")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&extra).unwrap(),
            DEFAULT_EXTRA_PACKAGES
        );
    }
}
