//! Management commands: flags that take the place of a tool command
//! (`--status`, `--prune`, `--gc`, `--prepare`, `--doctor`,
//! `--show-config`, `--install-plugin`, `--completions`, `--man`), so a tool
//! named `status` or `prune` still runs in the sandbox. Each prints for a
//! person, or JSON with `--json`.

mod doctor;
mod gc;
pub mod generate;
mod plugin;
mod status;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::Manage;
use crate::config::Config;
use crate::container::prune;
use crate::error::Result;
use crate::image::{self, Want};
use crate::store::Podman;

/// Runs the management action `action`; returns the exit status.
pub fn run(cfg: &Config, action: Manage) -> Result<i32> {
    let (value, render): (Value, fn(&Value) -> String) = match action {
        Manage::Doctor => return Ok(doctor::run(cfg)),
        Manage::ShowConfig => (show_config(cfg), render_show_config),
        Manage::Status => (status::collect(cfg, &Podman::open(cfg)?)?, status::render),
        Manage::Prune { all } => (
            prune_json(&prune::prune(cfg, &Podman::open(cfg)?, all)?),
            render_prune,
        ),
        Manage::Gc { all } => (gc::run(cfg, &Podman::open(cfg)?, all)?, gc::render),
        Manage::Prepare { start } => (prepare(cfg, &Podman::open(cfg)?, start)?, render_prepare),
        Manage::InstallPlugin => (plugin::install(cfg)?, plugin::render),
        Manage::RemoveWorktree => (remove_worktree(cfg)?, render_remove_worktree),
    };
    emit(cfg, &value, render);
    Ok(0)
}

/// `--worktree --remove`: its containers, then the worktree.
fn remove_worktree(cfg: &Config) -> Result<Value> {
    let plan = cfg
        .worktree
        .as_ref()
        .ok_or_else(|| crate::error::Error::usage("--remove goes with --worktree"))?;
    let containers = prune::remove_under(cfg, &Podman::open(cfg)?, &plan.path())?;
    let wait = cfg.lock_limit(crate::state::Guard::Worktree("").wait());
    let r = plan.remove(&cfg.paths, wait)?;
    Ok(json!({
        "worktree": r.path,
        "branch": r.branch,
        "branch_removed": r.branch_kept.is_none(),
        "branch_kept_because": r.branch_kept,
        "containers": containers,
        "not_carried_over": r.not_carried,
    }))
}

fn render_remove_worktree(v: &Value) -> String {
    let mut lines = Vec::new();
    if let Some(why) = v["not_carried_over"].as_str() {
        lines.push(format!("its last work was not carried over: {why}"));
    }
    lines.push(format!("removed worktree {}", s(v, "worktree")));
    for c in items(v, "containers") {
        lines.push(format!(
            "removed warm container {}",
            c.as_str().unwrap_or_default()
        ));
    }
    lines.push(match v["branch_kept_because"].as_str() {
        None => format!("removed branch {} (merged)", s(v, "branch")),
        Some(why) => format!("kept branch {}: {why}", s(v, "branch")),
    });
    lines.join("\n") + "\n"
}

/// Prints `value` as JSON or through `render`.
fn emit(cfg: &Config, value: &Value, render: fn(&Value) -> String) {
    if cfg.json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print!("{}", render(value));
    }
}

pub(crate) fn prune_json(report: &prune::Report) -> Value {
    json!({
        "removed": report.removed.iter()
            .map(|(name, why)| json!({"name": name, "why": why}))
            .collect::<Vec<_>>(),
        "in_use": report.in_use,
    })
}

fn render_prune(v: &Value) -> String {
    let mut out = String::new();
    for r in items(v, "removed") {
        out += &format!("removed {} ({})\n", s(r, "name"), s(r, "why"));
    }
    for n in items(v, "in_use") {
        out += &format!("kept {} (in use)\n", n.as_str().unwrap_or_default());
    }
    if out.is_empty() {
        out = "nothing to prune\n".into();
    }
    out
}

/// `--prepare`: the image (and with `start` the warm container) now.
fn prepare(cfg: &Config, podman: &Podman, start: bool) -> Result<Value> {
    let progress = std::io::stderr().is_terminal();
    let record = image::ensure(cfg, podman, Want::Present)?;
    let image = record.image;
    if progress {
        eprintln!("lectic-nix-sandbox: {image} is ready");
    }
    let mut v = json!({ "image": image, "rootfs": record.rootfs.is_some() });
    if start {
        let warm = crate::call::warm_container(cfg, podman)?;
        v["container"] = json!(warm.name);
        v["workdir"] = json!(cfg.workdir);
        v["ttl_seconds"] = json!(cfg.ttl.as_secs());
    }
    Ok(v)
}

fn render_prepare(v: &Value) -> String {
    let what = if v["rootfs"] == true {
        "root filesystem"
    } else {
        "image"
    };
    let mut out = format!("{what} {} ready\n", s(v, "image"));
    if let Some(c) = v.get("container").and_then(Value::as_str) {
        out += &format!(
            "warm container {c} running for {} (idle TTL {})\n",
            s(v, "workdir"),
            human_secs(v.get("ttl_seconds").and_then(Value::as_u64).unwrap_or(0))
        );
    }
    out
}

/// `--show-config`: every option with its value and source, the policy's
/// project roots, and the environment's names with their level (values
/// are left out: they may be secrets).
fn show_config(cfg: &Config) -> Value {
    let roots: Vec<Value> = [&cfg.system_policy, &cfg.policy]
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p.project_roots.as_ref().map(|r| {
                json!({
                    "roots": r.value,
                    "source": format!("{}:{}", p.path.display(), r.line),
                })
            })
        })
        .collect();
    json!({
        "system_policy": cfg.system_policy.as_ref().map(|p| p.path.clone()),
        "config_file": cfg.policy.as_ref().map(|p| p.path.clone()),
        "options": cfg.settings.iter().map(|s| json!({
            "option": s.option, "value": s.value, "source": s.source,
        })).collect::<Vec<_>>(),
        "project_roots": roots,
        "env": cfg.env_sources.iter().map(|(name, source)| json!({
            "name": name, "source": source,
        })).collect::<Vec<_>>(),
    })
}

fn render_show_config(v: &Value) -> String {
    let mut out = match v["system_policy"].as_str() {
        Some(f) => format!("System policy: {f}\n"),
        None => format!(
            "System policy: none ({} does not exist)\n",
            crate::policy::SYSTEM_PATH
        ),
    };
    out += &match v["config_file"].as_str() {
        Some(f) => format!("Config file: {f}\n"),
        None => "Config file: none\n".into(),
    };
    out += "Options:\n";
    for o in items(v, "options") {
        let value = match &o["value"] {
            Value::Null => "none".to_owned(),
            Value::String(s) => s.clone(),
            Value::Array(a) if a.is_empty() => "none".to_owned(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        out += &format!(
            "  {:<22} {:<24} ({})\n",
            s(o, "option"),
            value,
            s(o, "source")
        );
    }
    let all_roots = items(v, "project_roots");
    if all_roots.is_empty() {
        out += "Project roots: any directory (no policy sets any)\n";
    }
    // Each list bounds the paths; the system's and the user's both hold.
    for r in all_roots {
        let roots: Vec<&str> = items(r, "roots").iter().filter_map(Value::as_str).collect();
        out += &format!(
            "Project roots: {} ({})\n",
            if roots.is_empty() {
                "none".into()
            } else {
                roots.join(", ")
            },
            s(r, "source")
        );
    }
    out += "Environment (names only; later levels win: host, policy env, policy env files, --env, --env-file, system policy env and env files):\n";
    for e in items(v, "env") {
        out += &format!("  {:<22} {}\n", s(e, "name"), s(e, "source"));
    }
    out
}

/// `v[key]` as a string ("" if absent).
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `v[key]` as a slice of items (empty if absent).
fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn human_secs(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Bytes of the regular files under `dir` (symlinks not followed; what
/// cannot be read is skipped).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(2_166_290), "2.2 MB");
        assert_eq!(human_secs(930), "15m 30s");
    }

    #[test]
    fn prune_report_says_what_went_and_what_stayed() {
        let r = prune::Report {
            removed: vec![("a".into(), "idle past its TTL".into())],
            in_use: vec!["b".into()],
        };
        assert_eq!(
            render_prune(&prune_json(&r)),
            "removed a (idle past its TTL)\nkept b (in use)\n"
        );
        assert_eq!(
            render_prune(&prune_json(&prune::Report::default())),
            "nothing to prune\n"
        );
    }
}
