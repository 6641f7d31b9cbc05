//! Image records: `images/<key>.json` maps the hash of every input that
//! decides the image to the built store path and the loaded image. A warm
//! call reads its record and starts no `nix` process at all.

use crate::state::Bucket;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::ImageSpec;
use crate::digest::Key;
use crate::error::Result;
use crate::fsutil;

use super::flake;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub store_path: String,
    /// What containers are made of: our tag of a loaded image, or the
    /// root filesystem's store path (see `rootfs`).
    pub image: String,
    /// The image's ID (`sha256:` and its config digest), as verified
    /// against the build when it was loaded: the tag must still name it.
    /// Empty for a root filesystem.
    pub id: String,
    /// Whether the image can run the idle watcher (container/watcher.rs).
    pub watcher: bool,
    /// Set when the build is a root filesystem run from the Nix store.
    pub rootfs: Option<Rootfs>,
}

/// A root filesystem in the Nix store (nix/rootfs.nix), run in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// Every store path of its closure, itself included: all a container
    /// of it sees under /nix/store.
    pub closure: Vec<String>,
    /// The closure's size in the store (what it would cost to copy).
    pub bytes: u64,
    /// `NAME=VALUE`s an image's config would set (nix-support/container-env).
    pub env: Vec<String>,
    /// The GC root (a `nix build --out-link`) that keeps it in the store.
    pub gc_root: PathBuf,
}

/// The Nix system string of this machine.
pub fn system() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// The hash of everything that decides the image.
pub fn key(spec: &ImageSpec) -> String {
    let mut key = Key::new("image-v1");
    flake::add_to_key(spec, &mut key);
    key.field("nixpkgs", spec.nixpkgs.as_deref().unwrap_or("").as_bytes());
    for arg in &spec.nix_extra {
        key.field("nix-extra", arg.as_bytes());
    }
    key.field("system", system().as_bytes());
    key.hex()
}

pub fn path(cache: &Path, key: &str) -> PathBuf {
    cache
        .join(Bucket::Images.name())
        .join(format!("{key}.json"))
}

/// Reads a record; a missing or unreadable one is simply absent.
pub fn read(path: &Path) -> Option<Record> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(Record {
        store_path: v.get("store_path")?.as_str()?.to_owned(),
        image: v.get("image")?.as_str()?.to_owned(),
        // A record without one was never verified: it is made again.
        id: v.get("id")?.as_str()?.to_owned(),
        // Records before the field: our flake's images have the tools.
        watcher: v
            .get("watcher")
            .and_then(Value::as_bool)
            .unwrap_or_else(|| v.get("flake").is_none_or(Value::is_null)),
        rootfs: match v.get("rootfs") {
            None | Some(Value::Null) => None,
            Some(r) => Some(Rootfs {
                closure: strings(r.get("closure")?)?,
                bytes: r.get("bytes")?.as_u64()?,
                env: strings(r.get("env")?)?,
                gc_root: PathBuf::from(r.get("gc_root")?.as_str()?),
            }),
        },
    })
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// A record on disk.
#[derive(Debug, Clone)]
pub struct OnDisk {
    pub path: PathBuf,
    /// The first 16 hex digits of its key (as in its lock and flake dir).
    pub short_key: String,
    pub record: Record,
    /// When a call last used it (to a day; see USED_GRANULARITY).
    pub used: std::time::SystemTime,
}

/// Every readable record under `cache`.
pub fn all(cache: &Path) -> Vec<OnDisk> {
    let Ok(entries) = std::fs::read_dir(cache.join(Bucket::Images.name())) else {
        return vec![];
    };
    let mut out: Vec<OnDisk> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let key = path.file_name()?.to_str()?.strip_suffix(".json")?;
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Some(OnDisk {
                short_key: key[..16].to_owned(),
                record: read(&path)?,
                used: e.metadata().ok()?.modified().ok()?,
                path,
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// How stale a record's "last used" (its mtime) may get before a call
/// refreshes it: one write a day at most, for `--gc` to tell old records.
const USED_GRANULARITY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Notes that a call used the record (see USED_GRANULARITY).
pub fn mark_used(path: &Path) {
    let stale = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > USED_GRANULARITY);
    if stale && let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

pub fn write(path: &Path, record: &Record, spec: &ImageSpec) -> Result<()> {
    let v = json!({
        "store_path": record.store_path,
        "image": record.image,
        "id": record.id,
        "watcher": record.watcher,
        "rootfs": record.rootfs.as_ref().map(|r| json!({
            "closure": r.closure,
            "bytes": r.bytes,
            "env": r.env,
            "gc_root": r.gc_root,
        })),
        "flake": spec.flake,
        "packages_file": spec.packages_file.as_ref().map(|(p, _)| p.display().to_string()),
        "nixpkgs": spec.nixpkgs,
        "nix_extra": spec.nix_extra,
        "system": system(),
    });
    fsutil::write_atomic(
        path,
        serde_json::to_string_pretty(&v)
            .unwrap_or_default()
            .as_bytes(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Our flake, no packages file, default nix.
    pub(crate) fn spec() -> ImageSpec {
        ImageSpec {
            flake: None,
            packages_file: None,
            nixpkgs: None,
            nix_extra: vec![],
            nix_exe: "nix".into(),
            rebuild: false,
        }
    }

    #[test]
    fn key_changes_with_every_input_that_decides_the_image() {
        let base = key(&spec());
        let mut s = spec();
        s.packages_file = Some(("/p.nix".into(), b"[ pkgs.hello ]".to_vec()));
        let with_pkgs = key(&s);
        s.packages_file = Some(("/other/p.nix".into(), b"[ pkgs.hello ]".to_vec()));
        assert_eq!(
            key(&s),
            with_pkgs,
            "the file's content counts, not its path"
        );
        s.packages_file = Some(("/p.nix".into(), b"[ pkgs.jq ]".to_vec()));
        assert_ne!(key(&s), with_pkgs);
        let mut s = spec();
        s.nixpkgs = Some("nixpkgs".into());
        assert_ne!(key(&s), base);
        let mut s = spec();
        s.nix_extra = vec!["--option".into(), "cores".into(), "1".into()];
        assert_ne!(key(&s), base);
        let mut s = spec();
        s.flake = Some("github:o/r".into());
        assert_ne!(key(&s), base);
        let mut s = spec();
        s.nix_exe = "/other/nix".into();
        assert_eq!(
            key(&s),
            base,
            "which nix builds it does not change the image"
        );
    }

    #[test]
    fn record_round_trips_and_garbage_reads_as_absent() {
        let dir = crate::testutil::TempDir::new("rec");
        let dir = dir.path();
        let p = path(dir, "k");
        let r = Record {
            store_path: "/nix/store/x".into(),
            image: "localhost/i:t".into(),
            id: "sha256:00".into(),
            watcher: false,
            rootfs: None,
        };
        write(&p, &r, &spec()).unwrap();
        assert_eq!(read(&p), Some(r));
        let r = Record {
            store_path: "/nix/store/r".into(),
            image: "/nix/store/r".into(),
            id: String::new(),
            watcher: true,
            rootfs: Some(Rootfs {
                closure: vec!["/nix/store/r".into(), "/nix/store/b".into()],
                bytes: 5,
                env: vec!["PATH=/bin".into()],
                gc_root: "/c/gcroots/k".into(),
            }),
        };
        write(&p, &r, &spec()).unwrap();
        assert_eq!(read(&p), Some(r));
        std::fs::write(&p, b"{ not json").unwrap();
        assert_eq!(read(&p), None);
    }
}
