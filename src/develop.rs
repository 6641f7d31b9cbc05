//! `--nix-develop`: the command runs in the dev shell of the workdir's
//! flake, as `nix develop WORKDIR -c COMMAND` would run it, but without a
//! Nix evaluation per call: the shell's environment is evaluated once by
//! the host's Nix (`nix print-dev-env --json`, through the host's daemon)
//! and cached, keyed by the flake's directory, flake.nix and flake.lock (as
//! nix-direnv does), with a GC root so the shell's store paths stay. The
//! container sees those store paths through the host's /nix/store, mounted
//! read-only, and can use the daemon through its socket (container/).
//!
//! The host's Nix client evaluates, not one in the image: it is the one
//! configured for this machine (substituters, access tokens, nix.conf),
//! it sees the project as the user does, and our image stays without Nix.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::config::{Config, DevShell};
use crate::digest::Key;
use crate::error::{Error, IoContext, Result};
use crate::image::nix;
use crate::lock::{self, Mode};
use crate::state::{Bucket, Guard};
use crate::{fsutil, verbose};

/// Where the daemon's socket appears inside the container.
pub const SOCKET_TARGET: &str = "/nix/var/nix/daemon-socket/socket";
const DEFAULT_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";
/// Variables `nix develop` does not take from the shell (Nix's own list).
const IGNORED: &[&str] = &[
    "BASHOPTS",
    "HOME",
    "NIX_BUILD_TOP",
    "NIX_ENFORCE_PURITY",
    "NIX_LOG_FD",
    "NIX_REMOTE",
    "PPID",
    "SHELL",
    "SHELLOPTS",
    "SSL_CERT_FILE",
    "TEMP",
    "TEMPDIR",
    "TERM",
    "TMP",
    "TMPDIR",
    "TZ",
    "UID",
];

/// A dev shell's environment: its variables, and its PATH, which goes in
/// front of the container's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevEnv {
    pub vars: Vec<(String, String)>,
    pub path: String,
}

/// The host's daemon socket (`NIX_DAEMON_SOCKET_PATH`, else the default).
pub fn daemon_socket() -> PathBuf {
    std::env::var_os("NIX_DAEMON_SOCKET_PATH")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// The minimal client configuration mounted at /etc/nix in the container.
pub fn client_conf_dir(cfg: &Config) -> Result<PathBuf> {
    let dir = cfg
        .paths
        .bucket(crate::state::Bucket::Develop)
        .join("etc-nix");
    let conf = dir.join("nix.conf");
    let text = "# Written by lectic-nix-sandbox for Nix clients in the sandbox.\n\
                experimental-features = nix-command flakes\n\
                ssl-cert-file = /etc/ssl/certs/ca-bundle.crt\n";
    if std::fs::read_to_string(&conf).ok().as_deref() != Some(text) {
        fsutil::ensure_dir(&dir)?;
        fsutil::write_atomic(&conf, text.as_bytes())?;
    }
    Ok(dir)
}

/// The dev shell's environment: from the cache, else evaluated now.
pub fn ensure(cfg: &Config, shell: &DevShell) -> Result<DevEnv> {
    let socket = daemon_socket();
    if !socket.exists() {
        return Err(Error::failed(format!(
            "--nix-develop needs the host's Nix daemon, and there is no socket at {}; start it (e.g. `systemctl start nix-daemon`) or drop --nix-develop",
            socket.display()
        )));
    }
    let dir = cfg.paths.bucket(Bucket::DevEnv);
    fsutil::ensure_dir(&dir)?;
    let key = key(cfg, shell)?;
    let cached = dir.join(format!("{key}.json"));
    if !cfg.image.rebuild
        && let Some(env) = read(&cached)
    {
        return Ok(env);
    }
    let g = Guard::DevEnv(&key);
    let _evaluating = lock::acquire(
        &dir.join(g.file_name()),
        Mode::Exclusive,
        g.what(),
        cfg.lock_limit(g.wait()),
    )?;
    if !cfg.image.rebuild
        && let Some(env) = read(&cached)
    {
        return Ok(env); // another call evaluated it meanwhile
    }
    let env = evaluate(cfg, shell, &dir.join(format!("{key}.profile")))?;
    // Evaluating may have written flake.lock: file it under what the next
    // call will see.
    let cached = dir.join(format!("{}.json", self::key(cfg, shell)?));
    let mut vars = Map::new();
    for (k, v) in &env.vars {
        vars.insert(k.clone(), json!(v));
    }
    let record =
        json!({ "flake": shell.flake, "attr": shell.attr, "path": env.path, "vars": vars });
    fsutil::write_atomic(&cached, record.to_string().as_bytes())?;
    Ok(env)
}

/// Runs the command in the shell: its variables over the call's, and a
/// `sh` that puts its PATH in front of the container's (which only the
/// container knows) before it execs the command.
pub fn apply(cfg: &mut Config, env: DevEnv) {
    cfg.env.extend(env.vars);
    if env.path.is_empty() {
        return;
    }
    let mut command: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        r#"export PATH="$0${PATH:+:$PATH}"; exec "$@""#.into(),
        env.path,
    ];
    command.append(&mut cfg.command);
    cfg.command = command;
}

/// flake.nix and flake.lock decide the shell (other files the flake
/// imports do not: `--rebuild` evaluates again).
fn key(cfg: &Config, shell: &DevShell) -> Result<String> {
    let mut k = Key::new("dev-env-v1");
    k.field("flake", shell.flake.as_os_str().as_encoded_bytes())
        .field("attr", shell.attr.as_deref().unwrap_or("").as_bytes())
        .field("nix", cfg.image.nix_exe.as_bytes());
    for file in ["flake.nix", "flake.lock"] {
        let path = shell.flake.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => k.field(file, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => k.field(file, b"-"),
            Err(e) => return Err(e).with_path("cannot read", path),
        };
    }
    Ok(k.hex()[..24].to_owned())
}

fn read(path: &Path) -> Option<DevEnv> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let vars = v
        .get("vars")?
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect::<Option<Vec<_>>>()?;
    Some(DevEnv {
        vars,
        path: v.get("path")?.as_str()?.to_owned(),
    })
}

fn evaluate(cfg: &Config, shell: &DevShell, profile: &Path) -> Result<DevEnv> {
    let installable = match &shell.attr {
        Some(attr) => format!("{}#{attr}", shell.flake.display()),
        None => shell.flake.display().to_string(),
    };
    verbose!("evaluating the dev shell of {installable}");
    let mut cmd = Command::new(&cfg.image.nix_exe);
    cmd.args(["--extra-experimental-features", "nix-command flakes"])
        .args(["print-dev-env", "--json", "--profile"])
        .arg(profile)
        .arg(&installable)
        .current_dir(&shell.flake);
    let (ok, stdout, log) = nix::run(&cfg.image.nix_exe, cmd)?;
    if !ok {
        return Err(eval_error(&installable, &log));
    }
    parse(&stdout).ok_or_else(|| Error::Nix {
        message: format!("`nix print-dev-env --json {installable}` printed no environment"),
        log: nix::tail_lines(&String::from_utf8_lossy(&stdout), 5),
    })
}

/// Each way evaluation fails, said with what to do.
fn eval_error(installable: &str, log: &str) -> Error {
    let why = if log.contains("cannot connect to socket") || log.contains("Connection refused") {
        "the host's Nix daemon does not answer; start it (e.g. `systemctl start nix-daemon`)"
    } else if log.contains("is not allowed") || log.contains("Permission denied") {
        "the host's Nix daemon refuses this user; add it to `allowed-users` in nix.conf"
    } else if log.contains("does not provide attribute") {
        "the flake has no such dev shell; check --dev-shell against `nix flake show`"
    } else {
        "the dev shell does not evaluate or build (see below)"
    };
    Error::Nix {
        message: format!("--nix-develop: `nix print-dev-env {installable}` failed: {why}"),
        log: nix::tail_lines(log, 20),
    }
}

/// The exported variables of `nix print-dev-env --json`, less those
/// `nix develop` ignores; PATH apart.
fn parse(json: &[u8]) -> Option<DevEnv> {
    let v: Value = serde_json::from_slice(json).ok()?;
    let mut env = DevEnv {
        vars: vec![],
        path: String::new(),
    };
    for (name, var) in v.get("variables")?.as_object()? {
        if var.get("type").and_then(Value::as_str) != Some("exported")
            || IGNORED.contains(&name.as_str())
        {
            continue;
        }
        let Some(value) = var.get("value").and_then(Value::as_str) else {
            continue;
        };
        if name == "PATH" {
            env.path = value.to_owned();
        } else {
            env.vars.push((name.clone(), value.to_owned()));
        }
    }
    Some(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exported_variables_nix_develop_keeps_are_taken() {
        let json = br#"{"bashFunctions":{},"variables":{
            "PATH":{"type":"exported","value":"/nix/store/a/bin"},
            "MY":{"type":"exported","value":"x"},
            "HOME":{"type":"exported","value":"/homeless-shelter"},
            "TMPDIR":{"type":"exported","value":"/tmp/nix"},
            "BASH":{"type":"var","value":"/bin/bash"},
            "arr":{"type":"array","value":["a"]}}}"#;
        let env = parse(json).unwrap();
        assert_eq!(env.path, "/nix/store/a/bin");
        assert_eq!(env.vars, vec![("MY".to_owned(), "x".to_owned())]);
        assert!(parse(b"not json").is_none());
    }
}
