//! Turns the command line and the process environment into a checked
//! configuration: absolute paths, parsed volumes, the command's environment
//! and where our state lives.
//!
//! In parts: `paths` (where state lives), `mounts` (what no option may
//! mount, the project roots, sources checked without following a
//! symlink), `provenance` (where each value comes from), `policy` (the
//! policy files); here the types and `Config::build`, which merges them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Action, Cli, Manage};
use crate::env::{self, Env};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::lexical;
use crate::policy::Policy;
use crate::{allow, fsutil, shellwords, sys};
use clap::{CommandFactory, FromArgMatches, Parser, parser::ValueSource};

pub mod mounts;
pub mod paths;
pub mod policy;
pub mod provenance;

pub use mounts::{Checked, Volume};
use mounts::{Guarded, PERSIST, Roots, check_source, resolve_lenient, through_symlink};
pub use paths::{Paths, lectic_dir, path_var};
pub use provenance::Setting;
use provenance::{fill_defaults, given_options, long_of_word, settings};

/// A variable of `host_env` by name.
pub(super) fn lookup_in(host_env: &[(String, String)]) -> impl Fn(&str) -> Option<OsString> + '_ {
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

/// A directory the call mounts and creates if missing.
#[derive(Debug, Clone)]
pub struct ToCreate {
    option: &'static str,
    path: PathBuf,
    target: PathBuf,
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
    /// Directories to mount that the call creates if missing, checked as
    /// they will be (see `create_dirs`).
    pub creates: Vec<ToCreate>,
    /// `--worktree`: the worktree to make and work in (see worktree.rs).
    pub worktree: Option<crate::worktree::Plan>,
    /// The worktree, once made (its work is carried over after the call).
    pub worktree_made: Option<crate::worktree::Worktree>,
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
        let mounting = cli.action().mounts();
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
        let typed = given.clone();
        let mut from_files = Vec::new();
        // Each file option with its key, for an error that names its line.
        let mut keyed = Vec::new();
        for p in [&user, &system].into_iter().flatten() {
            let from_file = p.arguments(&given);
            given.extend(
                from_file
                    .iter()
                    .filter_map(|(_, a, _)| a.first().map(|w| long_of_word(w).to_owned())),
            );
            let at = |line: usize| format!("{}:{line}", p.path.display());
            keyed.extend(from_file.iter().map(|(k, a, l)| (*k, a.clone(), at(*l))));
            from_files.splice(0..0, from_file.into_iter().map(|(_, a, l)| (a, at(l))));
        }
        let mut merged: Vec<OsString> = args[..1].to_vec();
        merged.extend(
            from_files
                .iter()
                .flat_map(|(a, _)| a.iter().map(OsString::from)),
        );
        merged.extend(args[1..].iter().cloned());
        // Parsed again only with options from a file, or to show sources.
        let matches = (!from_files.is_empty() || cli.show_config)
            .then(|| Cli::command().try_get_matches_from(&merged))
            .transpose()
            .map_err(|e| file_error(&e, args, &keyed, [&system, &user]))?;
        let mut cli = match &matches {
            Some(m) => Cli::from_arg_matches(m)
                .map_err(|e| file_error(&e, args, &keyed, [&system, &user]))?,
            None => cli,
        };
        let capped = match &system {
            Some(s) => allow::enforce(&mut cli, s)?,
            None => vec![],
        };
        let settings = match &matches {
            Some(m) if cli.show_config => settings(m, &typed, &from_files, &capped),
            _ => vec![],
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
        let mounting = action.mounts();
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
        let worktree = match &cli.worktree {
            Some(given) => {
                let interlocutor = lookup("LECTIC_INTERLOCUTOR")
                    .and_then(|v| v.into_string().ok())
                    .filter(|v| !v.is_empty());
                let (name, from) = match (given.as_str(), interlocutor) {
                    ("", Some(i)) => (i, "LECTIC_INTERLOCUTOR"),
                    ("", None) => (crate::worktree::DEFAULT_NAME.to_owned(), "the default"),
                    (n, _) => (n.to_owned(), "the name"),
                };
                crate::worktree::check_name(&name, from)?;
                Some(crate::worktree::Plan::locate(&workdir, &name)?)
            }
            None => None,
        };
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

        // A directory the call creates if missing: checked here as it will
        // be; `create_dirs` creates it and checks it as it is.
        let mut creates = Vec::new();
        let to_create = |option: &'static str, given: &Path, target: &str| -> Result<ToCreate> {
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
            Ok(ToCreate {
                option,
                path: given.to_owned(),
                target: target.into(),
            })
        };
        let mut volumes = Vec::new();
        if let Some(persist) = &cli.persist {
            let dir = lexical(&cwd.join(persist));
            if mounting {
                creates.push(to_create("--persist", &dir, PERSIST)?);
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
                    creates.push(to_create("--home", &h, crate::container::HOME_TARGET)?);
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
            creates,
            worktree,
            worktree_made: None,
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

    /// Creates the directories to mount that are missing (`--persist`,
    /// `--home`; `build` only reads and checks) and checks each as it is,
    /// not through a symlink, adding it to `checked`.
    pub fn create_dirs(&mut self) -> Result<()> {
        for d in std::mem::take(&mut self.creates) {
            fsutil::ensure_dir(&d.path)?;
            let checked = check_source(d.option, &d.path, &d.path, &d.target)?;
            self.checked.push(checked);
        }
        if self.action.mounts()
            && let Some(plan) = &self.worktree
        {
            let wait = self.lock_limit(crate::state::Guard::Worktree("").wait());
            let wt = plan.ensure(&self.paths, wait)?;
            // The user's checkout is not mounted: the worktree's place
            // of the workdir is (made if the checkout lacks it).
            let workdir = wt.workdir();
            fsutil::ensure_dir(&workdir)?;
            self.checked.retain(|c| c.option != "--workdir");
            let checked = check_source("--workdir", &workdir, &workdir, &workdir)?;
            self.checked.push(checked);
            self.workdir = workdir;
            for v in wt.mounts() {
                let checked = check_source("--worktree", &v.host, &v.host, &v.target)?;
                self.checked.push(checked);
                self.volumes.push(v);
            }
            self.worktree_made = Some(wt);
        }
        Ok(())
    }

    pub fn rootless(&self) -> bool {
        self.uid != 0
    }

    /// How long to wait for a lock whose usual bound is `default`.
    pub fn lock_limit(&self, default: Duration) -> Duration {
        self.lock_timeout.unwrap_or(default)
    }
}

/// Why the options from the policy files do not parse with the user's: the
/// first file option that does not parse alone, by its file and line, or
/// else the error with the files named.
fn file_error(
    e: &clap::Error,
    args: &[OsString],
    keyed: &[(&str, Vec<String>, String)],
    files: [&Option<Policy>; 2],
) -> Error {
    for (key, a, at) in keyed {
        let alone = args[..1]
            .iter()
            .cloned()
            .chain(a.iter().map(OsString::from))
            .chain([OsString::from("--status")]);
        if let Err(e) = Cli::try_parse_from(alone) {
            return Error::usage(format!("{at}: {key}: {}", crate::cli::one_line(&e)));
        }
    }
    let files: Vec<String> = files
        .into_iter()
        .flatten()
        .map(|p| p.path.display().to_string())
        .collect();
    Error::usage(format!(
        "{} with the options of {}",
        crate::cli::one_line(e),
        files.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.into())
    }

    #[test]
    fn lexical_paths_drop_dots_by_name() {
        assert_eq!(lexical(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(lexical(Path::new("/../a")), PathBuf::from("/a"));
    }
}
