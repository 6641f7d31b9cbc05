//! `--status`: warm containers (configuration, idle time, TTL left, image),
//! one-shot containers, root filesystems run from the Nix store, images
//! loaded into our Podman store, and disk use.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::config::Config;
use crate::container::is_warm_name;
use crate::container::list::Listed;
use crate::container::warm_dir::{self, WarmDir};
use crate::engine::Engine;
use crate::error::Result;
use crate::image::record;
use crate::lock::{self, Mode};
use crate::sys;

use super::{dir_size, human_bytes, human_secs, items, s};

pub fn collect(cfg: &Config, engine: &dyn Engine) -> Result<Value> {
    let listed = engine.containers()?;
    let now = SystemTime::now();
    let mut warm = Vec::new();
    for c in listed.iter().filter(|c| is_warm_name(&c.name)) {
        warm.push(warm_entry(&WarmDir::new(cfg, &c.name), Some(c)));
    }
    // Stamps whose container is gone (cleared by the next call or --prune).
    for dir in warm_dir::all(cfg)? {
        if dir.stamped() && !listed.iter().any(|c| c.name == dir.name) {
            warm.push(warm_entry(&dir, None));
        }
    }
    let one_shot: Vec<Value> = listed
        .iter()
        .filter(|c| !is_warm_name(&c.name))
        .map(|c| {
            json!({
                "name": c.name,
                "state": c.state,
                "image": c.image,
                "call_running": c.owner.as_deref().is_some_and(sys::identity_alive),
            })
        })
        .collect();
    let records = record::all(&cfg.paths.cache);
    let images: Vec<Value> = engine
        .images()?
        .iter()
        .map(|i| {
            let uses = |image: &str| i.tags.iter().any(|t| t == image);
            json!({
                "id": i.id,
                "tags": i.tags,
                "size_bytes": i.size,
                "age_seconds": age(now, i.created),
                "records": records.iter().filter(|r| uses(&r.record.image)).count(),
                "containers": listed.iter().filter(|c| uses(&c.image)).count(),
            })
        })
        .collect();
    let images_bytes: u64 = images.iter().filter_map(|i| i["size_bytes"].as_u64()).sum();
    let roots: Vec<Value> = records
        .iter()
        .filter_map(|r| {
            let root = r.record.rootfs.as_ref()?;
            Some(json!({
                "rootfs": r.record.image,
                "closure_paths": root.closure.len(),
                "closure_bytes": root.bytes,
                "in_store": crate::image::rootfs_intact(&r.record, root),
                "containers": listed.iter().filter(|c| c.image == r.record.image).count(),
            }))
        })
        .collect();
    // The workdir's repository's worktrees (--worktree), with the warm
    // containers working in them.
    let worktrees: Vec<Value> = crate::worktree::list(&cfg.workdir)
        .into_iter()
        .map(|w| {
            let containers: Vec<&Value> = warm
                .iter()
                .filter(|c| {
                    c["workdir"]
                        .as_str()
                        .is_some_and(|d| std::path::Path::new(d).starts_with(&w.path))
                })
                .map(|c| &c["name"])
                .collect();
            json!({
                "name": w.name,
                "path": w.path,
                "branch": w.branch,
                "ahead": w.ahead,
                "containers": containers,
            })
        })
        .collect();
    Ok(json!({
        "cache": cfg.paths.cache,
        "warm": warm,
        "worktrees": worktrees,
        "one_shot": one_shot,
        "images": images,
        "roots": roots,
        "records": records.len(),
        "disk": {
            "images_bytes": images_bytes,
            "homes_bytes": dir_size(&cfg.paths.bucket(crate::state::Bucket::WarmHome)),
        },
    }))
}

fn age(now: SystemTime, epoch_secs: i64) -> u64 {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    (now - epoch_secs).max(0) as u64
}

/// The latest refusals shown per container.
const REFUSALS_SHOWN: usize = 8;

fn warm_entry(dir: &WarmDir, listed: Option<&Listed>) -> Value {
    let state = dir.state().unwrap_or(Value::Null);
    let idle = dir.idle().map(|d| d.as_secs());
    let ttl = dir.ttl().map(|d| d.as_secs());
    let in_use = dir.path().exists()
        && matches!(
            lock::try_acquire(&dir.use_lock(), Mode::Exclusive),
            Ok(None)
        );
    let allow_hosts = state.get("allow_hosts").cloned().unwrap_or(json!([]));
    let proxy = (!items(&state, "allow_hosts").is_empty()).then(|| {
        let pid = crate::proxy::daemon::serving(dir)
            .and_then(|id| id.split_once(':').map(|(p, _)| p.to_owned()));
        json!({
            "running": pid.is_some(),
            "pid": pid,
            "refused": crate::proxy::log::tail(&dir.refusal_log(), REFUSALS_SHOWN),
        })
    });
    json!({
        "name": dir.name,
        "state": listed.map(|c| c.state.as_str()).unwrap_or("gone"),
        "in_use": in_use,
        "idle_seconds": idle,
        "ttl_seconds": ttl,
        "ttl_left_seconds": idle.zip(ttl).map(|(i, t)| t.saturating_sub(i)),
        "image": listed.map(|c| c.image.clone()).or_else(|| state.get("image").and_then(Value::as_str).map(str::to_owned)),
        "workdir": state.get("workdir"),
        "home": state.get("home"),
        "volumes": state.get("volumes"),
        "allow_net": state.get("allow_net"),
        "allow_hosts": allow_hosts,
        "proxy": proxy,
        "podman_extra": state.get("podman_extra"),
    })
}

pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let warm = items(v, "warm");
    out += &format!("Warm containers: {}\n", warm.len());
    for w in warm {
        let secs = |k: &str| w.get(k).and_then(Value::as_u64);
        let timing = match (secs("idle_seconds"), secs("ttl_seconds")) {
            (Some(i), Some(t)) if i > t => {
                format!("idle {}, TTL {} passed", human_secs(i), human_secs(t))
            }
            (Some(i), Some(t)) => format!(
                "idle {}, {} left of TTL {}",
                human_secs(i),
                human_secs(t - i),
                human_secs(t)
            ),
            _ => "no stamp".into(),
        };
        let in_use = if w["in_use"].as_bool() == Some(true) {
            ", in use"
        } else {
            ""
        };
        out += &format!("  {}  {}{in_use}, {timing}\n", s(w, "name"), s(w, "state"));
        let volumes = items(w, "volumes").len();
        let hosts: Vec<&str> = items(w, "allow_hosts")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let network = if w["allow_net"].as_bool() == Some(true) {
            "on".to_owned()
        } else if hosts.is_empty() {
            "off".to_owned()
        } else {
            format!("through the proxy to {}", hosts.join(", "))
        };
        out += &format!(
            "      workdir {}, network {network}, {volumes} extra volume(s), image {}\n",
            w.get("workdir").and_then(Value::as_str).unwrap_or("?"),
            w.get("image").and_then(Value::as_str).unwrap_or("?"),
        );
        if let Some(p) = w.get("proxy").filter(|p| !p.is_null()) {
            out += &match p["pid"].as_str() {
                Some(pid) => format!("      proxy running (pid {pid})\n"),
                None => "      proxy not running; the next call starts it\n".to_owned(),
            };
            for line in items(p, "refused") {
                out += &format!("      {}\n", line.as_str().unwrap_or_default());
            }
        }
    }
    let worktrees = items(v, "worktrees");
    if !worktrees.is_empty() {
        out += &format!("Worktrees of this repository: {}\n", worktrees.len());
        for w in worktrees {
            let ahead = match w["ahead"].as_u64() {
                Some(n) => format!("{n} commit(s) ahead of HEAD"),
                None => "no branch".into(),
            };
            let used = match items(w, "containers").len() {
                0 => String::new(),
                n => format!(", {n} warm container(s)"),
            };
            out += &format!(
                "  {}  {} on {}, {ahead}{used}\n",
                s(w, "name"),
                s(w, "path"),
                w["branch"].as_str().unwrap_or("(detached)"),
            );
        }
    }
    let one_shot = items(v, "one_shot");
    if !one_shot.is_empty() {
        out += &format!("One-shot containers: {}\n", one_shot.len());
        for o in one_shot {
            let call = if o["call_running"].as_bool() == Some(true) {
                "call running"
            } else {
                "call gone; --prune removes it"
            };
            out += &format!("  {}  {}, {call}\n", s(o, "name"), s(o, "state"));
        }
    }
    let roots = items(v, "roots");
    out += &format!(
        "Root filesystems: {} (run from the Nix store: nothing copied)\n",
        roots.len()
    );
    for r in roots {
        let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let kept = if r["in_store"].as_bool() == Some(true) {
            "kept by its GC root"
        } else {
            "gone from the store; the next call builds it again"
        };
        out += &format!(
            "  {}  {} paths, {} in the store, {kept}, {} container(s)\n",
            s(r, "rootfs"),
            n("closure_paths"),
            human_bytes(n("closure_bytes")),
            n("containers"),
        );
    }
    let images = items(v, "images");
    out += &format!(
        "Images loaded into Podman: {} ({} records in all)\n",
        images.len(),
        v["records"]
    );
    for i in images {
        let n = |k: &str| i.get(k).and_then(Value::as_u64).unwrap_or(0);
        out += &format!(
            "  {}  {}, built {} ago, {} record(s), {} container(s)\n",
            items(i, "tags")
                .first()
                .and_then(Value::as_str)
                .unwrap_or("?"),
            human_bytes(n("size_bytes")),
            human_secs(n("age_seconds")),
            n("records"),
            n("containers"),
        );
    }
    let disk = &v["disk"];
    out += &format!(
        "Disk: loaded images {}, homes {} (under {})\n",
        human_bytes(disk["images_bytes"].as_u64().unwrap_or(0)),
        human_bytes(disk["homes_bytes"].as_u64().unwrap_or(0)),
        s(v, "cache"),
    );
    out
}
