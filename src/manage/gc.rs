//! `--gc`: prunes like `--prune`, then removes stale image records, images
//! that no record and no container uses, flake copies of removed records,
//! and files a killed call left half-written. `--gc --all` counts every
//! record no container uses as stale, however recent. Each image it keeps
//! is reported with what keeps it.
//!
//! It works only while no build or load runs (it try-locks every image lock
//! and the load lock, and skips the image part if one is held), so it never
//! removes an image a call is about to record.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Config;
use crate::container::{prune, warm_dir};
use crate::engine::Engine;
use crate::error::Result;
use crate::image::{load, record};
use crate::lock::{self, Lock, Mode};
use crate::state::{Bucket, Guard};

use super::{human_bytes, items, prune_json, s};

/// A record no call used for this long is stale (unless a container uses
/// its image).
const RECORD_MAX_UNUSED: Duration = Duration::from_secs(30 * 86_400);

pub fn run(cfg: &Config, engine: &dyn Engine, all: bool) -> Result<Value> {
    let pruned = prune::prune(cfg, engine, false)?;
    let mut out = json!({ "pruned": prune_json(&pruned) });
    let Some(_locks) = quiet_image_locks(cfg)? else {
        out["skipped"] = json!("a build or load is running; images and records were left alone");
        return Ok(out);
    };
    let containers = engine.containers()?;
    let in_container = |image: &str| containers.iter().find(|c| c.image == image);

    let mut records = Vec::new();
    let mut kept = Vec::new();
    for r in record::all(&cfg.paths.cache) {
        let unused = r.used.elapsed().is_ok_and(|age| age > RECORD_MAX_UNUSED);
        let useless = !Path::new(&r.record.store_path).exists()
            && (r.record.rootfs.is_some() || engine.image_id(&r.record.image)?.is_none());
        if useless || ((unused || all) && in_container(&r.record.image).is_none()) {
            std::fs::remove_file(&r.path)
                .map_err(|e| crate::error::Error::io("cannot remove", &r.path, e))?;
            // Then Nix may collect the root filesystem.
            if let Some(root) = &r.record.rootfs {
                let _ = std::fs::remove_file(&root.gc_root);
            }
            records.push(json!({
                "image": r.record.image,
                "why": if useless {
                    "its image and store path are gone"
                } else if unused {
                    "unused for 30 days"
                } else {
                    "no container uses it (--all)"
                },
            }));
        } else {
            kept.push(r);
        }
    }

    let mut images = Vec::new();
    let mut kept_images = Vec::new();
    for i in engine.images()? {
        let container = i.tags.iter().find_map(|t| in_container(t));
        let record = kept.iter().find(|r| i.tags.contains(&r.record.image));
        let why = match (container, record) {
            (Some(c), _) => Some(format!("warm container {} uses it", c.name)),
            (None, Some(r)) => Some(format!(
                "last used {}; --gc removes it after 30 days unused, --gc --all now",
                last_used(r.used)
            )),
            (None, None) => None,
        };
        if let Some(why) = why {
            kept_images.push(json!({"tags": i.tags, "size_bytes": i.size, "why": why}));
            continue;
        }
        // Podman refuses while a container uses it; that is fine.
        if engine.remove_image(&i.id) {
            images.push(json!({"tags": i.tags, "size_bytes": i.size}));
        }
    }

    // Root filesystems stay in the Nix store, kept by their GC roots.
    let mut kept_roots = Vec::new();
    for r in &kept {
        let Some(root) = &r.record.rootfs else {
            continue;
        };
        let why = match in_container(&r.record.image) {
            Some(c) => format!("warm container {} uses it", c.name),
            None => format!(
                "last used {}; --gc removes it after 30 days unused, --gc --all now",
                last_used(r.used)
            ),
        };
        kept_roots.push(json!({"rootfs": r.record.image, "closure_bytes": root.bytes, "why": why}));
    }
    let mut files = Vec::new();
    // GC roots no record names (a killed build, a removed record).
    for link in children(&cfg.paths.bucket(Bucket::GcRoots)) {
        let named = kept.iter().any(|r| {
            r.record
                .rootfs
                .as_ref()
                .is_some_and(|root| root.gc_root == link)
        });
        if !named && std::fs::remove_file(&link).is_ok() {
            files.push(link);
        }
    }
    // Skeleton roots and proxy dirs of one-shot calls that were killed:
    // each is named by its call's process (see exec::CallDir).
    for dir in children(&cfg.paths.tmp()) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let dead = name
            .strip_prefix("root-")
            .or_else(|| name.strip_prefix("proxy-"))
            .is_some_and(|owner| !crate::sys::identity_alive(&owner.replacen('-', ":", 1)));
        if dead && crate::fsutil::remove_any(&dir).is_ok() {
            files.push(dir);
        }
    }
    let flakes = cfg.paths.bucket(Bucket::Flakes);
    for dir in children(&flakes) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !kept.iter().any(|r| r.short_key == name) && std::fs::remove_dir_all(&dir).is_ok() {
            files.push(dir);
        }
    }
    // Older layouts' directories (see state::Bucket).
    for entry in crate::state::stale(&cfg.paths.cache) {
        if crate::fsutil::remove_any(&entry).is_ok() {
            files.push(entry);
        }
    }
    // Loads' scratch dirs (we hold the load lock: no load runs).
    files.extend(load::remove_scratch(&cfg.paths.tmp(), None));
    // Temp files of atomic writes whose writer died.
    let mut dirs = vec![
        cfg.paths.bucket(Bucket::Images),
        cfg.paths.bucket(Bucket::PodmanConf),
    ];
    dirs.extend(children(&warm_dir::root(cfg)));
    for dir in dirs {
        for f in children(&dir) {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with('.') && name.contains(".tmp-") && std::fs::remove_file(&f).is_ok() {
                files.push(f);
            }
        }
    }
    out["records"] = json!(records);
    out["images"] = json!(images);
    out["kept_images"] = json!(kept_images);
    out["kept_roots"] = json!(kept_roots);
    out["files"] = json!(files);
    Ok(out)
}

/// Every image lock and the load lock, if none is held.
fn quiet_image_locks(cfg: &Config) -> Result<Option<Vec<Lock>>> {
    let mut held = Vec::new();
    let mut paths = vec![cfg.paths.locks().join(Guard::Load.file_name())];
    paths.extend(children(&cfg.paths.locks()).into_iter().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(Guard::is_image_lock)
    }));
    for p in paths {
        match lock::try_acquire(&p, Mode::Exclusive)? {
            Some(l) => held.push(l),
            None => return Ok(None),
        }
    }
    Ok(Some(held))
}

/// When `used` was, to the day (records are touched once a day).
fn last_used(used: std::time::SystemTime) -> String {
    let days = used.elapsed().map_or(0, |d| d.as_secs() / 86_400);
    match days {
        0 => "today".into(),
        1 => "1 day ago".into(),
        n => format!("{n} days ago"),
    }
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub fn render(v: &Value) -> String {
    let mut out = super::render_prune(&v["pruned"]);
    if out == "nothing to prune\n" {
        out.clear();
    }
    if let Some(why) = v.get("skipped").and_then(Value::as_str) {
        out += &format!("{why}\n");
        return out;
    }
    for r in items(v, "records") {
        out += &format!("removed record of {} ({})\n", s(r, "image"), s(r, "why"));
    }
    let mut freed = 0;
    for i in items(v, "images") {
        let size = i["size_bytes"].as_u64().unwrap_or(0);
        freed += size;
        out += &format!("removed image {} ({})\n", first_tag(i), human_bytes(size));
    }
    for f in items(v, "files") {
        out += &format!("removed {}\n", f.as_str().unwrap_or_default());
    }
    if out.is_empty() {
        out = "nothing to collect\n".into();
    } else if freed > 0 {
        out += &format!("freed {} of images\n", human_bytes(freed));
    }
    for r in items(v, "kept_roots") {
        out += &format!(
            "kept root filesystem {} ({} in the Nix store): {}\n",
            s(r, "rootfs"),
            human_bytes(r["closure_bytes"].as_u64().unwrap_or(0)),
            s(r, "why")
        );
    }
    for i in items(v, "kept_images") {
        out += &format!(
            "kept image {} ({}): {}\n",
            first_tag(i),
            human_bytes(i["size_bytes"].as_u64().unwrap_or(0)),
            s(i, "why")
        );
    }
    out
}

fn first_tag(image: &Value) -> &str {
    items(image, "tags")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::tests::spec;
    use crate::engine::fake::Recording;
    use crate::image::listing::StoredImage;
    use crate::testutil::{TempDir, config};

    fn image(id: &str, tag: &str) -> StoredImage {
        StoredImage {
            id: id.into(),
            tags: vec![format!("{}:{tag}", load::REPOSITORY)],
            size: 1 << 20,
            created: 0,
        }
    }

    #[test]
    fn gc_removes_images_and_layouts_nothing_uses_and_says_what_keeps_the_rest() {
        let t = TempDir::new("gc");
        let cfg = config(&t, &[]);
        std::fs::create_dir_all(cfg.paths.locks()).unwrap();
        let warm = spec().name();
        let engine = Recording::with(&[(&warm, "running")]);
        // The fake's containers run `abc`.
        engine
            .images
            .borrow_mut()
            .extend([image("sha256:1", "abc"), image("sha256:2", "def")]);
        crate::container::warm_dir::WarmDir::new(&cfg, &warm)
            .record(&spec(), Duration::from_secs(60))
            .unwrap();
        let old_layout = cfg.paths.cache.join("warm-state");
        std::fs::create_dir_all(old_layout.join("x")).unwrap();

        let out = run(&cfg, &engine, false).unwrap();

        assert_eq!(engine.called("remove_image"), ["sha256:2"]);
        assert_eq!(
            out["images"][0]["tags"][0],
            format!("{}:def", load::REPOSITORY)
        );
        assert_eq!(
            out["kept_images"][0]["why"],
            format!("warm container {warm} uses it")
        );
        assert!(!old_layout.exists());
        assert!(
            out["files"]
                .as_array()
                .unwrap()
                .contains(&json!(old_layout))
        );
        assert!(cfg.paths.bucket(Bucket::Warm).exists());
    }

    #[test]
    fn gc_leaves_images_alone_while_a_load_runs() {
        let t = TempDir::new("gc-load");
        let cfg = config(&t, &[]);
        std::fs::create_dir_all(cfg.paths.locks()).unwrap();
        let engine = Recording::default();
        engine.images.borrow_mut().push(image("sha256:2", "def"));
        let load_lock = cfg.paths.locks().join(Guard::Load.file_name());
        let _load = lock::acquire(&load_lock, Mode::Exclusive, "test", Duration::ZERO).unwrap();

        let out = run(&cfg, &engine, true).unwrap();

        assert!(out["skipped"].is_string());
        assert!(engine.called("remove_image").is_empty());
    }
}
