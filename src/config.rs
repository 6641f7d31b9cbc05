//! Turns the command line and the process environment into a checked
//! configuration: absolute paths, parsed volumes, the command's environment
//! and where our state lives.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Action, Cli, Manage};
use crate::digest::Key;
use crate::env::{self, Env};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::lexical;
use crate::policy::Policy;
use crate::{allow, fsutil, policy, shellwords, sys};
use clap::{CommandFactory, Parser, parser::ValueSource};

/// Where the sandbox keeps its state.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `$LECTIC_CACHE/nix-sandbox`: Podman's image store, image records,
    /// warm homes, stamps, locks, Podman's scratch space. Persistent and
    /// private (see `fsutil::trusted_dir`).
    pub cache: PathBuf,
    /// `/tmp/lns-<uid>/<hash of cache>`: the first choice of Podman's run
    /// dir (its runroot and runtime dir; see `store::run_dir`). Keyed by
    /// the cache dir because Lectic gives MCP servers almost no
    /// environment: one store must never get two runroots. Kept short
    /// because Podman refuses a runroot over 50 characters.
    pub run: PathBuf,
    /// `$XDG_RUNTIME_DIR`, the run dir's fallback.
    pub runtime: Option<PathBuf>,
}

impl Paths {
    pub fn from_env(get: impl Fn(&str) -> Option<OsString>, uid: u32) -> Result<Paths> {
        let lectic_cache = lectic_dir(&get, "LECTIC_CACHE", "XDG_CACHE_HOME", ".cache/lectic")
            .ok_or_else(|| {
                Error::usage("cannot place the cache: set LECTIC_CACHE, XDG_CACHE_HOME or HOME")
            })?;
        // Normalized, so the path checked (`fsutil::trusted_dir`) is the
        // path the kernel resolves.
        let cache = lexical(&absolute(&lectic_cache.join("nix-sandbox"))?);
        Ok(Paths {
            run: PathBuf::from(format!("/tmp/lns-{uid}")).join(Self::run_name(&cache)),
            runtime: path_var(&get, "XDG_RUNTIME_DIR")
                .filter(|p| p.is_absolute() && !p.as_os_str().as_encoded_bytes().contains(&b'\n'))
                .map(|p| lexical(&p)),
            cache,
        })
    }

    /// The run dir's name for the cache `cache`.
    fn run_name(cache: &Path) -> String {
        let mut key = Key::new("run-dir-v1");
        key.field("cache", cache.as_os_str().as_encoded_bytes());
        key.hex()[..12].to_owned()
    }

    /// A directory of the cache (see state.rs).
    pub fn bucket(&self, b: crate::state::Bucket) -> PathBuf {
        self.cache.join(b.name())
    }

    pub fn locks(&self) -> PathBuf {
        self.bucket(crate::state::Bucket::Locks)
    }

    /// Podman's image and container storage (its graphroot).
    pub fn graphroot(&self) -> PathBuf {
        self.bucket(crate::state::Bucket::PodmanRoot)
    }

    /// Podman's TMPDIR (it spools images there) and our scratch files:
    /// inside the private cache, where no one else can swap them.
    pub fn tmp(&self) -> PathBuf {
        self.bucket(crate::state::Bucket::Tmp)
    }

    /// Which run dir the store is bound to (see `store::run_dir`).
    pub fn run_record(&self) -> PathBuf {
        self.cache.join("run-dir")
    }

    /// The run dir the store is bound to: the recorded one, else the first
    /// choice.
    pub fn bound_run_dir(&self) -> PathBuf {
        self.run_record_read().0
    }

    /// The recorded run dir (else the first choice) and, when it is not
    /// the first choice, why the ones before it were passed over. The
    /// record is the dir's path on the first line, the reasons after.
    pub fn run_record_read(&self) -> (PathBuf, Vec<String>) {
        let Ok(bytes) = std::fs::read(self.run_record()) else {
            return (self.run.clone(), vec![]);
        };
        let mut lines = bytes.split(|&b| b == b'\n');
        let path = PathBuf::from(OsString::from_vec(
            lines.next().unwrap_or_default().to_vec(),
        ));
        if !path.is_absolute() {
            return (self.run.clone(), vec![]);
        }
        let notes = lines
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        (path, notes)
    }

    /// The run dir candidates after the first: in the runtime dir, then a
    /// fresh one under /tmp (`suffix` tells it apart).
    pub fn run_fallbacks(&self, uid: u32, suffix: &str) -> Vec<PathBuf> {
        let name = Self::run_name(&self.cache);
        self.runtime
            .iter()
            .map(|r| r.join(format!("lns-{name}")))
            .chain([PathBuf::from(format!("/tmp/lns-{uid}-{suffix}"))])
            .collect()
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_path("cannot make absolute", p)
}

/// What in HOME holds keys, tokens and the configuration of the user's
/// tools (ours included): never mounted, nor anything inside.
const CREDENTIALS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".password-store",
    ".pki",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".local/share/keyrings",
    ".vault-token",
    ".terraform.d",
    ".mozilla",
];

/// Host places never mounted into the sandbox, whatever the options say:
/// the real HOME and every directory that holds it (projects inside it are
/// fine, its credentials are not), the host's socket directories (the runtime dir with the Podman,
/// SSH agent, D-Bus and Wayland sockets; /run; X11's), the system's own
/// directories (the Nix store, whose root filesystem's closure alone is
/// mounted, read-only; /proc, /sys, /dev; /etc; the programs) and the
/// sandbox's own state, with all inside them.
struct Guarded(Vec<Place>);

struct Place {
    path: PathBuf,
    why: &'static str,
    /// Whether what lies inside may be mounted (HOME's projects).
    inside_ok: bool,
}

impl Guarded {
    fn new(lookup: &impl Fn(&str) -> Option<OsString>, paths: &Paths) -> Guarded {
        let var = |name: &str| path_var(lookup, name);
        let place = |path: PathBuf, why, inside_ok| Place {
            // Compared resolved, as the mounts are.
            path: std::fs::canonicalize(&path).unwrap_or(path),
            why,
            inside_ok,
        };
        let state = "the sandbox's own state";
        let system = "a directory of the host system";
        let mut places = vec![
            place(
                "/nix".into(),
                "the Nix store, shared by every user; only the root filesystem's own store paths are mounted, read-only",
                false,
            ),
            place("/proc".into(), "the host's processes", false),
            place("/sys".into(), "the host's kernel interface", false),
            place("/dev".into(), "the host's devices", false),
            place("/etc".into(), "the host's configuration", false),
            place("/boot".into(), system, false),
            place("/usr".into(), system, false),
            place("/bin".into(), system, false),
            place("/sbin".into(), system, false),
            place("/lib".into(), system, false),
            place("/lib64".into(), system, false),
            place("/var/lib".into(), "the host's services' state", false),
            place("/var".into(), system, true),
            place("/run".into(), "where the host's sockets are", false),
            place("/tmp/.X11-unix".into(), "where the X11 sockets are", false),
            place(paths.cache.clone(), state, false),
            place(paths.run.clone(), state, false),
            place(paths.bound_run_dir(), state, false),
        ];
        if let Some(home) = var("HOME") {
            let home = std::fs::canonicalize(&home).unwrap_or(home);
            places.push(place(home.clone(), "your home directory", true));
            for name in CREDENTIALS {
                places.push(place(home.join(name), "where your credentials are", false));
            }
        }
        if let Some(dir) = var("XDG_RUNTIME_DIR") {
            places.push(place(dir, "where your session's sockets are", false));
        }
        if let Some(dir) = var("SSH_AUTH_SOCK").and_then(|s| s.parent().map(Path::to_owned)) {
            places.push(place(dir, "where the SSH agent's socket is", false));
        }
        Guarded(places)
    }

    /// `path` (resolved) must neither be inside a guarded place nor hold one.
    fn check(&self, option: &str, path: &Path) -> Result<()> {
        for Place {
            path: place,
            why,
            inside_ok,
        } in &self.0
        {
            let relation = if path == place {
                format!("is {why}")
            } else if place.starts_with(path) {
                format!("holds {} ({why})", place.display())
            } else if path.starts_with(place) && !inside_ok {
                format!("is inside {} ({why})", place.display())
            } else {
                continue;
            };
            return Err(Error::usage(format!(
                "{option} {}: {relation}; the sandbox never mounts it, name a project directory instead",
                path.display()
            )));
        }
        Ok(())
    }
}

/// A non-empty variable, as a path.
pub fn path_var(get: &impl Fn(&str) -> Option<OsString>, name: &str) -> Option<PathBuf> {
    get(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// One of Lectic's directories, found as Lectic finds it: `$lectic_var`,
/// else `$xdg_var/lectic`, else `$HOME/home_default`.
pub fn lectic_dir(
    get: &impl Fn(&str) -> Option<OsString>,
    lectic_var: &str,
    xdg_var: &str,
    home_default: &str,
) -> Option<PathBuf> {
    path_var(get, lectic_var)
        .or_else(|| path_var(get, xdg_var).map(|d| d.join("lectic")))
        .or_else(|| path_var(get, "HOME").map(|h| h.join(home_default)))
}

/// A variable of `host_env` by name.
fn lookup_in(host_env: &[(String, String)]) -> impl Fn(&str) -> Option<OsString> + '_ {
    move |name| {
        host_env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| OsString::from(v))
    }
}

/// The variables Lectic starts an MCP server with (its SDK's default
/// environment): no LECTIC_*, no XDG_*.
pub const MCP_ENV: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// Where the same sandbox line finds the user's policy file and the cache
/// when Lectic runs it for an MCP server, if that is not where this call
/// finds them (an explicit --config or --cache is the same in both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpSight {
    /// The policy file this call reads and the one an MCP server's would.
    pub config: Option<(Option<PathBuf>, Option<PathBuf>)>,
    /// LECTIC_CACHE as this call and as an MCP server's call has it.
    pub cache: Option<(PathBuf, PathBuf)>,
}

fn mcp_sight(
    host_env: &[(String, String)],
    config_given: bool,
    cache_given: bool,
    uid: u32,
) -> McpSight {
    let here = lookup_in(host_env);
    let mcp_env: Vec<(String, String)> = host_env
        .iter()
        .filter(|(k, _)| MCP_ENV.contains(&k.as_str()))
        .cloned()
        .collect();
    let there = lookup_in(&mcp_env);
    let config = (!config_given)
        .then(|| (policy::locate(None, &here), policy::locate(None, &there)))
        .filter(|(a, b)| a != b);
    let cache_of = |get: &dyn Fn(&str) -> Option<OsString>| {
        Paths::from_env(get, uid)
            .ok()
            .and_then(|p| p.cache.parent().map(Path::to_path_buf))
    };
    let cache = match (cache_given, cache_of(&here), cache_of(&there)) {
        (false, Some(a), Some(b)) if a != b => Some((a, b)),
        _ => None,
    };
    McpSight { config, cache }
}

/// The options typed in `args`, as words of a `sandbox:` line that says
/// the same from any directory: relative paths made absolute; the
/// management flags, --verbose and --json left out.
pub fn plugin_words(args: &[OsString], cwd: &Path) -> Result<Vec<String>> {
    use clap::ArgAction;
    let Ok(m) = Cli::command().try_get_matches_from(args) else {
        return Ok(vec![]);
    };
    let absolute = |p: &str| cwd.join(p).display().to_string();
    let mut words = Vec::new();
    for a in Cli::command().get_arguments() {
        let id = a.get_id().as_str();
        let Some(long) = a.get_long() else { continue };
        let management = a
            .get_help_heading()
            .is_some_and(|h| h.starts_with("Management"));
        if management
            || ["verbose", "keep_warm"].contains(&id)
            || m.value_source(id) != Some(ValueSource::CommandLine)
        {
            continue;
        }
        if id == "rebuild" {
            return Err(Error::usage(
                "--install-plugin: --rebuild would rebuild the image on every call; run `lectic-nix-sandbox --rebuild --prepare` once instead",
            ));
        }
        if matches!(a.get_action(), ArgAction::SetTrue) {
            if m.get_flag(id) {
                words.push(format!("--{long}"));
            }
            continue;
        }
        let kind = a
            .get_value_names()
            .and_then(|n| n.first())
            .map(|n| n.as_str());
        for v in m.get_raw(id).into_iter().flatten() {
            let v = v.to_string_lossy();
            let v = match kind {
                Some("DIR" | "FILE") => absolute(&v),
                Some("PATH") if v.contains('/') => absolute(&v),
                Some("REF") => local_ref(&v, cwd),
                Some(k) if k.starts_with("HOST") => match v.split_once(':') {
                    Some((host, rest)) => format!("{}:{rest}", absolute(host)),
                    None => absolute(&v),
                },
                _ => v.into_owned(),
            };
            words.extend([format!("--{long}"), v]);
        }
    }
    Ok(words)
}

/// A flake reference with a relative path (`.`, `./x`, `path:../x`) made
/// absolute; other references as they are.
fn local_ref(reference: &str, cwd: &Path) -> String {
    let (scheme, path) = match reference.strip_prefix("path:") {
        Some(p) => ("path:", p),
        None => ("", reference),
    };
    if path.starts_with('.') {
        format!("{scheme}{}", cwd.join(path).display())
    } else {
        reference.to_owned()
    }
}

/// One option's effective value and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub option: String,
    /// A boolean for flags, a list for repeatable options, null if unset.
    pub value: serde_json::Value,
    /// "command line", "FILE:LINE" or "default".
    pub source: String,
}

/// The long options the user typed (`--name`).
fn given_options(args: &[OsString]) -> std::collections::BTreeSet<String> {
    let Ok(m) = Cli::command().try_get_matches_from(args) else {
        return Default::default();
    };
    Cli::command()
        .get_arguments()
        .filter(|a| m.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// Options shown on the line of another: (hidden, shown on).
const SHOWN_WITH: &[(&str, &str)] = &[
    ("no_keep_warm", "keep_warm"),
    ("warm_ttl_seconds", "warm_ttl"),
];

/// Every option's value in `args` (the files' options first, then the
/// user's) and its source: each file and line that gave it, the command
/// line, or the default; and the system policy's rule where it set or
/// capped the value (`capped`). Flags are booleans, repeatable options
/// lists, unset options null (see `Config::build` for the defaults that
/// depend on the call).
fn settings(
    args: &[OsString],
    from_files: &[(Vec<String>, String)],
    capped: &[allow::Capped],
) -> Vec<Setting> {
    use clap::ArgAction;
    use serde_json::Value as J;
    let Ok(m) = Cli::command().try_get_matches_from(args) else {
        return vec![];
    };
    let skip: usize = from_files.iter().map(|(a, _)| a.len()).sum();
    let typed: Vec<OsString> = args[..1]
        .iter()
        .chain(args.iter().skip(1 + skip))
        .cloned()
        .collect();
    let user = given_options(&typed);
    let cmd = Cli::command();
    let long_of = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_long())
            .map(|l| format!("--{l}"))
    };
    cmd.get_arguments()
        // What shapes a call, not the management flags.
        .filter(|a| {
            a.get_help_heading()
                .is_none_or(|h| !h.starts_with("Management"))
        })
        .filter(|a| !SHOWN_WITH.iter().any(|(hidden, _)| a.get_id() == *hidden))
        .filter_map(|a| {
            let long = format!("--{}", a.get_long()?);
            let id = a.get_id().as_str();
            let raw: Vec<String> = m
                .get_raw(id)
                .map(|v| v.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let mut value = match a.get_action() {
                ArgAction::SetTrue if id == "keep_warm" => J::Bool(!m.get_flag("no_keep_warm")),
                ArgAction::SetTrue => J::Bool(m.get_flag(id)),
                // Values may be secrets: names only, as for the environment.
                ArgAction::Append if id == "env" => J::from(
                    raw.iter()
                        .map(|e| format!("{}=…", e.split('=').next().unwrap_or_default()))
                        .collect::<Vec<_>>(),
                ),
                ArgAction::Append => J::from(raw),
                _ => raw.into_iter().next().map_or(J::Null, J::from),
            };
            // The option and the ones shown on its line.
            let mut longs = vec![long.clone()];
            longs.extend(
                SHOWN_WITH
                    .iter()
                    .filter(|(_, on)| *on == id)
                    .filter_map(|(hidden, _)| long_of(hidden)),
            );
            let mut sources: Vec<String> = from_files
                .iter()
                .filter(|(fa, _)| fa.first().is_some_and(|f| longs.contains(f)))
                .map(|(_, at)| at.clone())
                .collect();
            let on_command_line = longs.iter().any(|l| user.contains(l))
                || (sources.is_empty() && m.value_source(id) == Some(ValueSource::CommandLine));
            if on_command_line {
                sources.push("command line".into());
            }
            if let Some(c) = capped.iter().find(|c| longs.contains(&c.option)) {
                if let Some(v) = &c.value {
                    value = if value.is_boolean() {
                        J::Bool(v == "true")
                    } else {
                        J::from(v.clone())
                    };
                }
                sources.push(c.source.clone());
            }
            if sources.is_empty() {
                sources.push("default".into());
            }
            Some(Setting {
                option: long,
                value,
                source: sources.join(" and "),
            })
        })
        .collect()
}

/// The defaults `settings` leaves null that depend on the call.
fn fill_defaults(settings: &mut [Setting], workdir: &Path, ttl: Duration) {
    for s in settings {
        let value = match s.option.as_str() {
            // Whichever of --warm-ttl/--warm-ttl-seconds set it.
            "--warm-ttl" => humantime::format_duration(ttl).to_string(),
            "--workdir" if s.value.is_null() => workdir.display().to_string(),
            "--home" if s.value.is_null() => "one per configuration, in the cache".into(),
            "--lock-timeout" if s.value.is_null() => "1h for builds, 10m otherwise".into(),
            "--flake" if s.value.is_null() => "the built-in flake".into(),
            "--dev-shell" if s.value.is_null() => "default".into(),
            "--nixpkgs" if s.value.is_null() => "the built-in flake's locked nixpkgs".into(),
            _ => continue,
        };
        s.value = value.into();
    }
}

/// `path` with its existing part resolved (symlinks, `..`) and the rest,
/// still to be created, appended: what it will be once created.
fn resolve_lenient(option: &str, path: &Path) -> Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            return Ok(rest.iter().rev().fold(real, |acc, part| acc.join(part)));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => {
                return Err(Error::usage(format!(
                    "{option} {}: `..` through a directory that does not exist; give a plain path",
                    path.display()
                )));
            }
        }
    }
}

/// A mount source as it was checked: the inode its path named, which the
/// new container's mount must be (see `container::verify_mounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The option that named it, for errors.
    pub option: &'static str,
    pub path: PathBuf,
    /// Where it is mounted in the container.
    pub target: PathBuf,
    /// Its device and inode numbers.
    pub id: (u64, u64),
}

/// The error for a mount source that goes through a symlink.
fn through_symlink(option: &str, given: &Path, real: &Path) -> Error {
    Error::usage(format!(
        "{option} {}: goes through a symlink (to {}), which a command could have planted; the sandbox mounts only real paths: name {} if you mean it",
        given.display(),
        real.display(),
        real.display()
    ))
}

/// Refuses a mount source whose path goes through a symlink, one a command
/// could have put in a directory it can write, and returns what it names
/// (opened without following any symlink, so what was checked is what
/// the container must get). `real` is `given` resolved.
fn check_source(option: &'static str, given: &Path, real: &Path, target: &Path) -> Result<Checked> {
    if lexical(given) != real {
        return Err(through_symlink(option, given, real));
    }
    let f = sys::open_no_symlinks(real).map_err(|e| {
        if sys::is_symlink_refusal(&e) {
            through_symlink(option, given, real)
        } else {
            Error::io("cannot open", real, e)
        }
    })?;
    let m = f.metadata().with_path("cannot inspect", real)?;
    Ok(Checked {
        option,
        path: real.to_owned(),
        target: target.to_owned(),
        id: fsutil::file_id(&m),
    })
}

/// The invoking user's project roots: every mounted host path must lie
/// inside one (paths resolved, so `..` and symlinks cannot leave them).
struct Roots {
    roots: Vec<PathBuf>,
    source: String,
}

impl Roots {
    fn new(roots: &[PathBuf], source: &str) -> Roots {
        Roots {
            roots: roots
                .iter()
                .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
                .collect(),
            source: source.to_owned(),
        }
    }

    fn check(&self, option: &str, path: &Path) -> Result<()> {
        if self.roots.iter().any(|r| path.starts_with(r)) {
            return Ok(());
        }
        let list: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        let roots = if list.is_empty() {
            "none for you".to_owned()
        } else {
            list.join(", ")
        };
        Err(Error::usage(format!(
            "{option} {}: outside your project roots ({roots}; {}); work inside one, or add the directory to project_roots there",
            path.display(),
            self.source
        )))
    }
}

/// Where `--persist` is mounted.
const PERSIST: &str = "/persist";

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

impl Volume {
    /// Parses `HOST[:TARGET][:ro|:rw]`; HOST must exist (relative to the
    /// cwd). HOST is made absolute, not resolved: `Config::build` checks it.
    pub fn parse(spec: &str, cwd: &Path) -> Result<Volume> {
        let bad = |why: &str| Error::usage(format!("--volume {spec}: {why}"));
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, target, mode) = match parts.as_slice() {
            [h] => (*h, None, None),
            [h, m @ ("ro" | "rw")] => (*h, None, Some(*m)),
            [h, t] => (*h, Some(*t), None),
            [h, t, m @ ("ro" | "rw")] => (*h, Some(*t), Some(*m)),
            [_, _, m] => return Err(bad(&format!("unknown mode `{m}`; use ro or rw"))),
            _ => {
                return Err(bad(
                    "expected HOST[:TARGET][:ro]; paths containing ':' cannot be mounted",
                ));
            }
        };
        if host.is_empty() {
            return Err(bad("the host path is empty"));
        }
        let given = host;
        let host = lexical(&cwd.join(host));
        std::fs::metadata(&host).map_err(|e| {
            bad(&format!(
                "host path {given} cannot be used ({e}); create it or fix the path"
            ))
        })?;
        let target = match target {
            Some(t) if t.starts_with('/') && !t.contains(',') => PathBuf::from(t),
            Some(t) => {
                return Err(bad(&format!(
                    "target `{t}` must be an absolute path without ','"
                )));
            }
            None => host.clone(),
        };
        Ok(Volume {
            host,
            target,
            read_only: mode == Some("ro"),
        })
    }

    /// Podman's `-v` value.
    pub fn podman_arg(&self) -> String {
        let mut s = format!("{}:{}", self.host.display(), self.target.display());
        if self.read_only {
            s.push_str(":ro");
        }
        s
    }
}

/// `--nix-develop`: whose dev shell the command runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevShell {
    /// The flake's directory (the workdir).
    pub flake: PathBuf,
    /// `--dev-shell`, if given.
    pub attr: Option<String>,
}

/// The hardening of the container (each relaxed only by an explicit flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// The image's root filesystem is read-only (tmpfs on /tmp, /run, /var/tmp).
    pub read_only: bool,
    /// `no-new-privileges`: setuid/setgid programs gain nothing.
    pub no_new_privileges: bool,
    /// Capabilities given back; all others are dropped.
    pub cap_add: Vec<String>,
    /// None for no limit.
    pub pids_limit: Option<u64>,
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub tmp_size: String,
    /// Whether the pids limit is held by the process limit (rootless on
    /// cgroup v1, where Podman cannot set it).
    pub pids_via_ulimit: bool,
    /// Our seccomp profile (container/seccomp.rs), if it can be made.
    pub seccomp: Option<PathBuf>,
}

/// Whether the machine has the unified cgroup hierarchy (v2).
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// What decides the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub flake: Option<String>,
    pub packages_file: Option<(PathBuf, Vec<u8>)>,
    pub nixpkgs: Option<String>,
    pub nix_extra: Vec<String>,
    pub nix_exe: String,
    pub rebuild: bool,
}

/// The policy files of a call.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub system: Option<Policy>,
    pub user: Option<Policy>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub action: Action,
    /// Management output as JSON.
    pub json: bool,
    pub command: Vec<String>,
    pub workdir: PathBuf,
    pub volumes: Vec<Volume>,
    /// `--home`, if given; otherwise a per-configuration dir (see container).
    pub home: Option<PathBuf>,
    pub allow_net: bool,
    /// `--allow-host`: the proxy's allowlist (see proxy/).
    pub allow_hosts: crate::proxy::rules::Rules,
    pub keep_warm: bool,
    pub exec_via: crate::cli::ExecVia,
    /// The dev shell to run the command in (--nix-develop, or
    /// --auto-nix-develop with a flake.nix in the workdir).
    pub develop: Option<DevShell>,
    /// `--install-plugin`: the plugin directory to write.
    pub plugin_dir: Option<PathBuf>,
    pub ttl: Duration,
    pub image: ImageSpec,
    pub podman_exe: String,
    pub podman_extra: Vec<String>,
    pub hardening: Hardening,
    pub env: Env,
    /// What sets the environment apart from passed values (see
    /// `env::identity`); None when only the defaults pass.
    pub env_identity: Option<String>,
    /// Workdir paths hidden from the command (`--hide`).
    pub hide: Vec<String>,
    /// The call's processes may outlive it (`--keep-processes`).
    pub keep_processes: bool,
    /// The mount sources, as checked (none for management flags).
    pub checked: Vec<Checked>,
    /// Where each variable of `env` comes from (for --show-config).
    pub env_sources: std::collections::BTreeMap<String, String>,
    /// The user's policy file.
    pub policy: Option<Policy>,
    /// The system policy (see `policy::SYSTEM_PATH`).
    pub system_policy: Option<Policy>,
    /// Every option's effective value and its source (for --show-config).
    pub settings: Vec<Setting>,
    pub verbose: bool,
    /// Where a Lectic MCP server's sandbox would find the policy file and
    /// cache (for --doctor and --install-plugin).
    pub mcp: Option<McpSight>,
    /// The options typed on the command line, as words for a plugin's
    /// `sandbox:` line (for --install-plugin).
    pub plugin_words: Vec<String>,
    /// `--lock-timeout`, if given.
    pub lock_timeout: Option<Duration>,
    pub paths: Paths,
    pub uid: u32,
    pub gid: u32,
}

impl Config {
    /// The configuration of this call: `cli` (parsed from `args`) over the
    /// user's policy file's options, over the system policy's, over the
    /// defaults; then judged by the system policy's `allow` rules.
    pub fn from_cli(cli: Cli, args: &[OsString]) -> Result<Config> {
        let host_env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        // The management flags mount nothing: they run from anywhere, even
        // from a directory that is gone.
        let mounting = matches!(
            cli.action(),
            Action::Run | Action::Manage(Manage::Prepare { start: true })
        );
        let cwd = match std::env::current_dir() {
            Err(_) if !mounting => PathBuf::from("/"),
            r => r.with_path("cannot read the current directory", ".")?,
        };
        let uid = sys::euid();
        let lookup = lookup_in(&host_env);
        let system = Policy::system(uid)?;
        let explicit = cli.config.as_ref().map(|p| cwd.join(p));
        let user = match policy::locate(explicit.as_deref(), &lookup) {
            Some(path) => {
                let home = lookup("HOME").map(PathBuf::from);
                Some(Policy::load(&path, &sys::user_name(uid), home.as_deref())?)
            }
            None => None,
        };
        // Single values: the command line, else the user's file, else the
        // system's; lists add up. Without a file (the common warm call)
        // the command line is parsed once.
        let mut given = if user.is_some() || system.is_some() {
            given_options(args)
        } else {
            Default::default()
        };
        let mut from_files = Vec::new();
        for p in [&user, &system].into_iter().flatten() {
            let from_file = p.arguments(&given);
            given.extend(from_file.iter().filter_map(|(_, a, _)| a.first().cloned()));
            // Each file option checked alone, so an error names its line.
            for (key, a, line) in &from_file {
                let probe = args[..1]
                    .iter()
                    .cloned()
                    .chain(a.iter().map(OsString::from));
                if let Err(e) = Cli::try_parse_from(probe.chain([OsString::from("--status")])) {
                    return Err(Error::usage(format!(
                        "{}:{line}: {key}: {}",
                        p.path.display(),
                        crate::cli::one_line(&e)
                    )));
                }
            }
            from_files.splice(
                0..0,
                from_file
                    .into_iter()
                    .map(|(_, a, line)| (a, format!("{}:{line}", p.path.display()))),
            );
        }
        let mut merged: Vec<OsString> = args[..1].to_vec();
        merged.extend(
            from_files
                .iter()
                .flat_map(|(a, _)| a.iter().map(OsString::from)),
        );
        merged.extend(args[1..].iter().cloned());
        let parsed = if from_files.is_empty() {
            Ok(cli)
        } else {
            Cli::try_parse_from(&merged)
        };
        let mut cli = parsed.map_err(|e| {
            let files: Vec<String> = [&system, &user]
                .into_iter()
                .flatten()
                .map(|p| p.path.display().to_string())
                .collect();
            Error::usage(format!(
                "{} with the options of {}",
                crate::cli::one_line(&e),
                files.join(" and ")
            ))
        })?;
        let capped = match &system {
            Some(s) => allow::enforce(&mut cli, s)?,
            None => vec![],
        };
        let settings = if cli.show_config {
            settings(&merged, &from_files, &capped)
        } else {
            vec![]
        };
        let words = match cli.action() {
            Action::Manage(Manage::InstallPlugin) => plugin_words(args, &cwd)?,
            _ => vec![],
        };
        let mut cfg = Self::build(
            cli,
            &cwd,
            &host_env,
            uid,
            sys::egid(),
            Policies { system, user },
            settings,
        )?;
        cfg.plugin_words = words;
        Ok(cfg)
    }

    pub fn build(
        cli: Cli,
        cwd: &Path,
        host_env: &[(String, String)],
        uid: u32,
        gid: u32,
        policies: Policies,
        mut settings: Vec<Setting>,
    ) -> Result<Config> {
        let Policies {
            system,
            user: policy,
        } = policies;
        cli.check().map_err(Error::usage)?;
        let ttl = cli.ttl();
        let keep_warm = cli.keep_warm();
        let lookup = lookup_in(host_env);
        // --cache stands for LECTIC_CACHE.
        let cache_flag = cli.cache.as_ref().map(|c| cwd.join(c).into_os_string());
        let with_cache = |name: &str| match (name, &cache_flag) {
            ("LECTIC_CACHE", Some(c)) => Some(c.clone()),
            _ => lookup(name),
        };
        let paths = Paths::from_env(with_cache, uid)?;
        let mcp = matches!(
            cli.action(),
            Action::Manage(Manage::Doctor | Manage::InstallPlugin)
        )
        .then(|| mcp_sight(host_env, cli.config.is_some(), cache_flag.is_some(), uid));

        let action = cli.action();
        // Only these make a container; the management flags mount nothing,
        // so they run from anywhere (HOME, /, a parent of the cache).
        let mounting = matches!(
            action,
            Action::Run | Action::Manage(Manage::Prepare { start: true })
        );
        let workdir_given = cwd.join(cli.workdir.clone().unwrap_or_else(|| cwd.to_owned()));
        let workdir = std::fs::canonicalize(&workdir_given).map_err(|e| {
            Error::usage(format!(
                "--workdir {}: {e}; give an existing directory",
                workdir_given.display()
            ))
        })?;
        if !workdir.is_dir() {
            return Err(Error::usage(format!(
                "--workdir {}: not a directory",
                workdir.display()
            )));
        }
        fill_defaults(&mut settings, &workdir, ttl);
        // Lectic's own default for LECTIC_DATA when it is not set.
        let plugin_dir = cli.install_plugin.as_ref().map(|dir| {
            if let Some(dir) = dir {
                return cwd.join(dir);
            }
            lectic_dir(
                &lookup,
                "LECTIC_DATA",
                "XDG_DATA_HOME",
                ".local/share/lectic",
            )
            .unwrap_or_else(|| PathBuf::from(".local/share/lectic"))
            .join("plugins/nix-sandbox")
        });
        let has_flake = workdir.join("flake.nix").is_file();
        if cli.nix_develop && !has_flake {
            return Err(Error::usage(format!(
                "--nix-develop: no flake.nix in {}; run in a flake project, or use --auto-nix-develop to run without one",
                workdir.display()
            )));
        }
        let develop = (cli.nix_develop || (cli.auto_nix_develop && has_flake)).then(|| DevShell {
            flake: workdir.clone(),
            attr: cli.dev_shell.clone(),
        });

        // Every host path to mount is checked before anything is created:
        // where it lies (resolved), then that it goes through no symlink.
        let guarded = Guarded::new(&lookup, &paths);
        // The system's roots bound every host path; the user's narrow them.
        let roots_of = |p: &Option<Policy>| {
            p.as_ref().and_then(|p| {
                p.project_roots
                    .as_ref()
                    .map(|r| Roots::new(&r.value, &format!("{}:{}", p.path.display(), r.line)))
            })
        };
        let (system_roots, user_roots) = (roots_of(&system), roots_of(&policy));
        let in_roots = |option: &str, path: &Path| -> Result<()> {
            [&system_roots, &user_roots]
                .into_iter()
                .flatten()
                .try_for_each(|r| r.check(option, path))
        };
        let allowed = |option: &str, path: &Path| -> Result<()> {
            guarded.check(option, path)?;
            in_roots(option, path)
        };
        // Files the call reads on the host: inside the roots as well.
        let readable = |option: &str, file: &Path| -> Result<PathBuf> {
            let real = std::fs::canonicalize(file).map_err(|e| {
                Error::usage(format!(
                    "{option} {}: {e}; give a readable file",
                    file.display()
                ))
            })?;
            in_roots(option, &real)?;
            Ok(real)
        };
        let volume_dirs = crate::allow::volume_dirs(system.as_ref());
        let mut checked = Vec::new();
        if mounting {
            allowed("--workdir", &workdir)?;
            checked.push(check_source(
                "--workdir",
                &workdir_given,
                &workdir,
                &workdir,
            )?);
        }

        // A directory the call creates if missing: checked as it will be,
        // then created and checked as it is.
        let to_create = |option: &'static str, given: &Path, target: &str| -> Result<Checked> {
            if given.exists() && !given.is_dir() {
                return Err(Error::usage(format!(
                    "{option} {}: not a directory; give a directory (it is created if missing)",
                    given.display()
                )));
            }
            let will_be = resolve_lenient(option, given)?;
            allowed(option, &will_be)?;
            if lexical(given) != will_be {
                return Err(through_symlink(option, given, &will_be));
            }
            fsutil::ensure_dir(given)?;
            check_source(option, given, given, Path::new(target))
        };
        let mut volumes = Vec::new();
        if let Some(persist) = &cli.persist {
            let dir = lexical(&cwd.join(persist));
            if mounting {
                checked.push(to_create("--persist", &dir, PERSIST)?);
            }
            volumes.push(Volume {
                host: dir,
                target: PERSIST.into(),
                read_only: false,
            });
        }
        // Mount targets: none twice, none over what the container needs.
        let mut taken: Vec<(PathBuf, &str)> = vec![
            (workdir.clone(), "--workdir"),
            (crate::container::HOME_TARGET.into(), "HOME"),
        ];
        if cli.persist.is_some() {
            taken.push((PERSIST.into(), "--persist"));
        }
        for spec in &cli.volumes {
            let mut v = Volume::parse(spec, cwd)?;
            if mounting {
                let real = std::fs::canonicalize(&v.host).with_path("cannot resolve", &v.host)?;
                if volume_dirs.iter().any(|d| real.starts_with(d)) {
                    // Allowed past the system's roots; the user's still hold.
                    guarded.check("--volume", &real)?;
                    if let Some(r) = &user_roots {
                        r.check("--volume", &real)?;
                    }
                } else {
                    allowed("--volume", &real)?;
                }
                checked.push(check_source("--volume", &v.host, &real, &v.target)?);
                v.host = real;
            }
            // The target after the source: what is mounted matters first.
            let target = lexical(&v.target);
            let reserved = [
                "/proc",
                "/sys",
                "/dev",
                "/nix",
                crate::container::watcher::MOUNT,
            ];
            if target == Path::new("/") || reserved.iter().any(|r| target.starts_with(r)) {
                return Err(Error::usage(format!(
                    "--volume {spec}: {} is where the container keeps what it needs to run; mount elsewhere, e.g. /data",
                    target.display()
                )));
            }
            if let Some((_, by)) = taken.iter().find(|(t, _)| *t == target) {
                return Err(Error::usage(format!(
                    "--volume {spec}: {} is already mounted there (by {by}); give another target",
                    target.display()
                )));
            }
            taken.push((target, "another --volume"));
            volumes.push(v);
        }

        let home = match &cli.home {
            Some(h) => {
                let h = lexical(&cwd.join(h));
                if mounting {
                    checked.push(to_create("--home", &h, crate::container::HOME_TARGET)?);
                }
                Some(h)
            }
            None => None,
        };

        let packages_file = match &cli.nix_packages_file {
            Some(p) => {
                if cli.flake.is_some() {
                    return Err(Error::usage(
                        "--nix-packages-file works with the built-in flake only; add the packages to your --flake instead",
                    ));
                }
                let path = cwd.join(p);
                let real = readable("--nix-packages-file", &path)?;
                if let Some(s) = &system {
                    allow::check_packages_file(s, p, &real)?;
                }
                // Read through the path that was checked, no symlink
                // followed: a swap after the check fails the read.
                let (meta, bytes) = fsutil::read_no_symlinks(&real).map_err(|e| {
                    Error::usage(format!(
                        "--nix-packages-file {}: {e}; give a readable .nix file",
                        p.display()
                    ))
                })?;
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
                // Nix copies it into the store, which every user can read.
                if mode & 0o004 == 0 {
                    return Err(Error::usage(format!(
                        "--nix-packages-file {}: only you can read it (mode {:o}), but Nix would copy it into the store, which every user can read; make it readable by all (chmod a+r) if it holds nothing secret",
                        p.display(),
                        mode & 0o777
                    )));
                }
                Some((path, bytes))
            }
            None => None,
        };

        let split_all = |items: &[String]| -> Result<Vec<String>> {
            let mut out = Vec::new();
            for s in items {
                out.extend(shellwords::split(s)?);
            }
            Ok(out)
        };

        let managed_by = |p: &Option<Policy>| env::Managed {
            env: p
                .iter()
                .flat_map(|p| {
                    p.env
                        .iter()
                        .map(|s| (s.value.clone(), format!("{}:{}", p.path.display(), s.line)))
                })
                .collect(),
            files: p
                .iter()
                .flat_map(|p| {
                    p.env_files
                        .iter()
                        .map(|s| (s.value.clone(), format!("{}:{}", p.path.display(), s.line)))
                })
                .collect(),
        };
        // Env files are read on the host by their resolved paths (the
        // user's inside the roots), so what was checked is what is read.
        let mut managed = managed_by(&policy);
        for (file, at) in &mut managed.files {
            *file = readable(&format!("env_files ({at})"), file)?;
        }
        let mut fixed = managed_by(&system);
        for (file, _) in &mut fixed.files {
            if let Ok(real) = std::fs::canonicalize(&*file) {
                *file = real;
            }
        }
        let env_files = cli
            .env_files
            .iter()
            .map(|f| readable("--env-file", &cwd.join(f)))
            .collect::<Result<Vec<_>>>()?;
        let (env, env_sources) = env::collect_levels(
            host_env,
            &cli.pass_env,
            &[&managed, &fixed],
            &cli.env,
            &env_files,
        )?;
        let env_identity = env::identity(&cli.pass_env, &[&managed, &fixed], &cli.env, &env_files)?;
        let allow_hosts =
            crate::proxy::rules::Rules::parse(&cli.allow_hosts).map_err(Error::Usage)?;

        Ok(Config {
            action,
            keep_processes: cli.keep_processes,
            hide: cli.hide.clone(),
            env_identity,
            checked,
            json: cli.json,
            lock_timeout: cli.lock_timeout,
            image: ImageSpec {
                flake: cli.flake.clone(),
                packages_file,
                nixpkgs: cli.nixpkgs.clone(),
                nix_extra: split_all(&cli.nix_extra)?,
                nix_exe: cli.nix_exe.clone(),
                rebuild: cli.rebuild,
            },
            podman_extra: split_all(&cli.podman_extra)?,
            hardening: Hardening {
                read_only: !cli.writable_root,
                no_new_privileges: !cli.allow_setuid,
                cap_add: cli.cap_add.clone(),
                pids_limit: (cli.pids_limit > 0).then_some(cli.pids_limit),
                memory: cli.memory.clone(),
                cpus: cli.cpus.clone(),
                tmp_size: cli.tmp_size.clone(),
                pids_via_ulimit: uid != 0 && !cgroup_v2(),
                seccomp: crate::container::seccomp::path(&paths.cache),
            },
            podman_exe: cli.podman_exe,
            command: cli.command,
            workdir,
            volumes,
            home,
            allow_net: cli.allow_net,
            allow_hosts,
            keep_warm,
            exec_via: cli.exec_via,
            develop,
            plugin_dir,
            ttl,
            env,
            env_sources,
            policy,
            system_policy: system,
            settings,
            verbose: cli.verbose,
            mcp,
            plugin_words: vec![],
            paths,
            uid,
            gid,
        })
    }

    pub fn rootless(&self) -> bool {
        self.uid != 0
    }

    /// How long to wait for a lock whose usual bound is `default`.
    pub fn lock_limit(&self, default: Duration) -> Duration {
        self.lock_timeout.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.into())
    }

    #[test]
    fn paths_follow_lectic_variables_and_keep_the_runroot_short() {
        let p = Paths::from_env(
            env_of(&[("LECTIC_CACHE", "/c/./d/../"), ("LECTIC_TEMP", "/t")]),
            4_294_967_294,
        )
        .unwrap();
        assert_eq!(p.cache, PathBuf::from("/c/nix-sandbox"));
        assert_eq!(p.tmp(), PathBuf::from("/c/nix-sandbox/tmp"));
        assert!(p.run.join("runroot").as_os_str().len() <= 50, "{:?}", p.run);
        for fallback in p.run_fallbacks(4_294_967_294, "abcdefgh") {
            assert!(
                fallback.join("runroot").as_os_str().len() <= 50,
                "{fallback:?}"
            );
        }
    }

    #[test]
    fn run_dir_depends_on_the_cache_only() {
        let a =
            Paths::from_env(env_of(&[("LECTIC_CACHE", "/c"), ("LECTIC_TEMP", "/t1")]), 1).unwrap();
        let b = Paths::from_env(env_of(&[("LECTIC_CACHE", "/c"), ("TMPDIR", "/t2")]), 1).unwrap();
        let c = Paths::from_env(env_of(&[("LECTIC_CACHE", "/other")]), 1).unwrap();
        assert_eq!(a.run, b.run);
        assert_ne!(a.run, c.run);
    }

    #[test]
    fn cache_falls_back_to_xdg_then_home() {
        let p = Paths::from_env(env_of(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]), 1).unwrap();
        assert_eq!(p.cache, PathBuf::from("/x/lectic/nix-sandbox"));
        let p = Paths::from_env(env_of(&[("HOME", "/h")]), 1).unwrap();
        assert_eq!(p.cache, PathBuf::from("/h/.cache/lectic/nix-sandbox"));
        assert!(Paths::from_env(env_of(&[]), 1).is_err());
    }

    #[test]
    fn a_path_still_to_be_created_resolves_through_what_exists() {
        let tmp = std::fs::canonicalize(std::env::temp_dir()).unwrap();
        let p = resolve_lenient("--persist", &tmp.join("no-such-lns/a/b")).unwrap();
        assert_eq!(p, tmp.join("no-such-lns/a/b"));
        let up = resolve_lenient("--persist", &tmp.join("no-such-lns/../x"));
        assert!(up.is_err(), "`..` through a missing dir");
    }

    #[test]
    fn a_mount_source_through_a_symlink_is_refused_and_a_real_one_names_its_inode() {
        let dir = crate::testutil::TempDir::new("config-src");
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        let real = dir.join("real");
        let c = check_source("--volume", &real, &real, Path::new("/data")).unwrap();
        let m = std::fs::metadata(&real).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(c.id, (m.dev(), m.ino()));
        let e = check_source("--volume", &dir.join("link"), &real, Path::new("/d")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // `..` after a symlink leaves the symlink's target, not its parent.
        std::fs::create_dir_all(dir.join("real/sub")).unwrap();
        std::fs::create_dir_all(dir.join("real/x")).unwrap();
        std::fs::create_dir_all(dir.join("x")).unwrap();
        std::os::unix::fs::symlink(dir.join("real/sub"), dir.join("deep")).unwrap();
        let up = dir.join("deep/../x");
        let resolved = std::fs::canonicalize(&up).unwrap();
        assert_eq!(resolved, dir.join("real/x"));
        let e = check_source("--volume", &up, &resolved, Path::new("/d")).unwrap_err();
        assert!(
            e.to_string().contains("symlink"),
            "`..` after a symlink: {e}"
        );
    }

    #[test]
    fn lexical_paths_drop_dots_by_name() {
        assert_eq!(lexical(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(lexical(Path::new("/../a")), PathBuf::from("/a"));
    }

    #[test]
    fn credential_directories_in_home_are_never_mounted() {
        let scratch = crate::testutil::TempDir::new("config-home");
        std::fs::create_dir_all(scratch.join("project")).unwrap();
        let home = scratch.path().to_owned();
        let paths = Paths::from_env(env_of(&[("LECTIC_CACHE", "/nonexistent/c")]), 1).unwrap();
        let h = home.display().to_string();
        let g = Guarded::new(&env_of(&[("HOME", &h)]), &paths);
        g.check("--volume", &home.join("project")).unwrap();
        for cred in [
            ".ssh",
            ".gnupg/x",
            ".aws",
            ".config/lectic",
            ".netrc",
            ".kube",
        ] {
            let e = g
                .check("--volume", &home.join(cred))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("credentials") && e.contains("never mounts"),
                "{e}"
            );
        }
        let e = g.check("--volume", &home).unwrap_err().to_string();
        assert!(e.contains("is your home directory"), "{e}");
    }

    #[test]
    fn volume_forms() {
        let cwd = std::env::temp_dir();
        let t = std::fs::canonicalize(&cwd).unwrap();
        let v = Volume::parse(cwd.to_str().unwrap(), &cwd).unwrap();
        assert_eq!(
            (v.host.clone(), v.target.clone(), v.read_only),
            (t.clone(), t.clone(), false)
        );
        let v = Volume::parse(&format!("{}:ro", cwd.display()), &cwd).unwrap();
        assert!(v.read_only && v.target == t);
        let v = Volume::parse(&format!("{}:/data:ro", cwd.display()), &cwd).unwrap();
        assert_eq!(v.podman_arg(), format!("{}:/data:ro", t.display()));
        assert!(Volume::parse(&format!("{}:relative", cwd.display()), &cwd).is_err());
        assert!(Volume::parse(&format!("{}:/d:rx", cwd.display()), &cwd).is_err());
        assert!(Volume::parse("/no/such/dir/anywhere", &cwd).is_err());
        assert!(Volume::parse("a:b:c:d", &cwd).is_err());
    }
}
