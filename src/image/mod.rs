//! The image: flake → `nix build` → record. A root filesystem (our flake's
//! `containerRootfs`) is run in place from the Nix store, kept there by a GC
//! root in the cache: nothing is loaded or copied. An image (a `--flake`'s
//! `containerImage`) goes through `podman load`. Only a call whose record
//! is missing (or `--rebuild`) starts nix; the build and load of one
//! record happen under its lock, so parallel cold calls build once.

pub mod archive;
pub mod flake;
pub mod listing;
pub mod load;
pub mod nix;
pub mod nixpkgs;
pub mod record;

use std::io::IsTerminal;
use std::path::Path;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::Result;
use crate::state::{Bucket, Guard};
use crate::store::Podman;
use crate::{lock, verbose};

use record::Record;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Want {
    /// The record's image, without asking podman (the warm path).
    Recorded,
    /// An image podman really has: reload or rebuild if it lost it.
    Present,
}

/// Returns the image record for `cfg`.
pub fn ensure(cfg: &Config, podman: &Podman, want: Want) -> Result<Record> {
    let key = record::key(&cfg.image);
    let rec_path = record::path(&cfg.paths.cache, &key);
    if !cfg.image.rebuild
        && let Some(r) = record::read(&rec_path)
        && (want == Want::Recorded || image_matches(podman, &r)?)
    {
        record::mark_used(&rec_path);
        return Ok(r);
    }
    // The record as it was before waiting: a rebuild that another call
    // finished meanwhile (a new file) is this call's rebuild too.
    let before = record_id(&rec_path);
    let g = Guard::Image(&key);
    let _guard = lock::acquire(
        &lock_path(cfg, &key),
        lock::Mode::Exclusive,
        g.what(),
        cfg.lock_limit(g.wait()),
    )?;
    if cfg.image.rebuild
        && record_id(&rec_path) != before
        && let Some(r) = record::read(&rec_path)
    {
        verbose!("another call rebuilt {} meanwhile; using it", r.image);
        return Ok(r);
    }
    // Whoever held the lock before us may have done the work.
    if !cfg.image.rebuild
        && let Some(r) = record::read(&rec_path)
    {
        if want == Want::Recorded || image_matches(podman, &r)? {
            return Ok(r);
        }
        if r.rootfs.is_none() && Path::new(&r.store_path).exists() {
            verbose!(
                "image {} is gone from the store (or no longer the one loaded); loading it again",
                r.image
            );
            return finish(cfg, podman, &rec_path, r.store_path);
        }
    }
    if std::io::stderr().is_terminal() {
        eprintln!("lectic-nix-sandbox: building the sandbox image (only when its inputs change)…");
    }
    let installable = flake::installable(&cfg.image, &cfg.paths.cache, &key)?;
    let gc_root = gc_root(cfg, &key);
    crate::fsutil::ensure_dir(&cfg.paths.bucket(Bucket::GcRoots))?;
    let store_path = nix::build(&cfg.image, &installable, &gc_root)?;
    verbose!("built {store_path}");
    if Path::new(&store_path).is_dir() {
        return finish_rootfs(cfg, &rec_path, store_path, gc_root);
    }
    // An image is loaded into Podman: the store path is not needed after.
    let _ = std::fs::remove_file(&gc_root);
    finish(cfg, podman, &rec_path, store_path)
}

/// The GC root of the record `key`.
pub fn gc_root(cfg: &Config, key: &str) -> std::path::PathBuf {
    cfg.paths.bucket(Bucket::GcRoots).join(&key[..16])
}

/// Records a root filesystem: its closure (what containers may see of the
/// store), its variables, and whether it has the idle watcher's tools.
fn finish_rootfs(
    cfg: &Config,
    rec_path: &Path,
    store_path: String,
    gc_root: std::path::PathBuf,
) -> Result<Record> {
    let (closure, bytes) = nix::closure(&cfg.image.nix_exe, &store_path)?;
    let root = Path::new(&store_path);
    let env = match std::fs::read_to_string(root.join("nix-support/container-env")) {
        Ok(text) => text
            .lines()
            .filter(|l| {
                l.split_once('=')
                    .is_some_and(|(n, _)| crate::env::check_name(n).is_ok())
            })
            .map(str::to_owned)
            .collect(),
        Err(_) => vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_owned()],
    };
    let watcher = cfg.image.flake.is_none()
        || ["sleep", "stat", "date", "flock"].iter().all(|c| {
            ["bin", "usr/bin"]
                .iter()
                .any(|d| root.join(d).join(c).exists())
        });
    let record = Record {
        image: store_path.clone(),
        store_path,
        id: String::new(),
        watcher,
        rootfs: Some(record::Rootfs {
            closure,
            bytes,
            env,
            gc_root,
        }),
    };
    record::write(rec_path, &record, &cfg.image)?;
    Ok(record)
}

/// Which file the record is (records are replaced, never rewritten in
/// place; see `fsutil::write_atomic`).
fn record_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| crate::fsutil::file_id(&m))
}

/// The lock of one image record: held for its build and load.
pub fn lock_path(cfg: &Config, key: &str) -> std::path::PathBuf {
    cfg.paths.locks().join(Guard::Image(key).file_name())
}

fn finish(cfg: &Config, podman: &Podman, rec_path: &Path, store_path: String) -> Result<Record> {
    // Loads of different images are one at a time: each moves the name the
    // image was built with until we retag it, and they share a scratch dir.
    let _loading = lock::acquire(
        &cfg.paths.locks().join(Guard::Load.file_name()),
        lock::Mode::Exclusive,
        Guard::Load.what(),
        cfg.lock_limit(Guard::Load.wait()),
    )?;
    if std::io::stderr().is_terminal() {
        eprintln!("lectic-nix-sandbox: loading the image into Podman…");
    }
    let (image, id) = load::load(podman, &store_path, &load::scratch_dir(cfg))?;
    // Ours has what the watcher needs; another flake's image may not.
    let watcher = cfg.image.flake.is_none() || can_run_watcher(podman, &image)?;
    let record = Record {
        store_path,
        image,
        id,
        watcher,
        rootfs: None,
    };
    record::write(rec_path, &record, &cfg.image)?;
    Ok(record)
}

/// Whether `image` has the tools of the idle watcher (one throwaway
/// container, once per loaded image of a `--flake`).
fn can_run_watcher(podman: &Podman, image: &str) -> Result<bool> {
    let check = "for c in sleep stat date flock; do command -v $c >/dev/null || exit 1; done";
    let out = podman.output([
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        check,
    ])?;
    verbose!("{image} can run the idle watcher: {}", out.status.success());
    Ok(out.status.success())
}

/// Whether the record's tag still names the image verified when it was
/// loaded (a tag is only a name: anything with access to the store could
/// have moved it).
pub fn image_matches(engine: &dyn Engine, record: &Record) -> Result<bool> {
    if let Some(r) = &record.rootfs {
        return Ok(rootfs_intact(record, r));
    }
    Ok(engine.image_id(&record.image)?.as_deref() == Some(record.id.as_str()))
}

/// Whether a root filesystem is in the store and its GC root still keeps it.
pub fn rootfs_intact(record: &Record, r: &record::Rootfs) -> bool {
    Path::new(&record.store_path).is_dir()
        && std::fs::read_link(&r.gc_root).is_ok_and(|l| l == Path::new(&record.store_path))
}
