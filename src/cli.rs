//! The command line. Everything from the first non-option word on is the
//! tool command, even words that look like our options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser, ValueEnum, ValueHint};

pub const DEFAULT_TTL: Duration = Duration::from_secs(900);
pub const DEFAULT_PIDS_LIMIT: u64 = 1024;
/// The help heading of the flags that stand in for a command.
const MANAGEMENT: &str = "Management (in place of a command)";

pub const DEFAULT_TMP_SIZE: &str = "1g";
const DEVELOP: &str = "The project's dev shell (through the host's Nix daemon)";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "lectic-nix-sandbox",
    version,
    about = "Run a command in a Nix-built, rootless Podman container (a sandbox for Lectic's tools)",
    long_about = "Run a command in a Nix-built, rootless Podman container.\n\n\
Lectic runs each exec tool and MCP server as `lectic-nix-sandbox [OPTIONS] COMMAND [ARGS...]`. \
The image is built from a flake (ours, embedded in this binary, or --flake) and cached; a warm \
container per configuration is reused between calls and removed after --warm-ttl of idleness. \
The command sees the working directory at the same path, a persistent HOME, no network unless \
--allow-net, and only LECTIC_*, TERM, LANG, LC_*, TZ, NO_COLOR from the host environment plus \
what --pass-env, --env and --env-file add (in that order; later wins).",
    after_help = "Exit status: the command's own; 125 when the sandbox itself fails; 126/127 when the \
command cannot be executed / is not found; 128+N when stopped by signal N; \
--doctor exits 1 when a check fails.\n\
State lives under $LECTIC_CACHE/nix-sandbox (default ~/.cache/lectic/nix-sandbox; private) and a \
short run dir (/tmp/lns-<uid>/..., see --doctor). An administrator's system policy (root's; \
--show-config names it) is always read, and no option loosens it.",
    trailing_var_arg = true,
    dont_delimit_trailing_values = true,
    group(
        ArgGroup::new("action")
            .args(["status", "prune", "gc", "prepare", "doctor", "show_config", "install_plugin", "completions", "man", "remove"])
            .conflicts_with("command")
    )
)]
pub struct Cli {
    /// Directory mounted read-write at the same path and used as the cwd [default: current directory]
    #[arg(short = 'd', long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub workdir: Option<PathBuf>,

    /// Mount HOST at TARGET (default: the same path); append :ro for read-only. Repeatable
    #[arg(short = 'v', long = "volume", value_name = "HOST[:TARGET][:ro]", value_hint = ValueHint::AnyPath)]
    pub volumes: Vec<String>,

    /// Mount DIR (created if missing) at /persist
    #[arg(short = 'p', long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub persist: Option<PathBuf>,

    /// Work in a git worktree of the workdir's repository: .worktrees/NAME, on branch lectic-worktree/NAME/work made from HEAD. The user's checkout is not mounted and .git is read-only; the command's commits reach the branch after each call. NAME defaults to $LECTIC_INTERLOCUTOR, else Assistant (give it as --worktree=NAME)
    #[arg(long, value_name = "NAME", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub worktree: Option<String>,

    /// Host directory used as HOME (/home/sandbox) [default: one per configuration, under the cache]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub home: Option<PathBuf>,

    /// Give the container network access (default: no network at all)
    #[arg(long)]
    pub allow_net: bool,

    /// Let the command reach only these hosts, through a filtering proxy (no other network): a name (pypi.org), *.domain (its subdomains), an address or network (10.0.0.0/8); ports 80 and 443 unless :PORT or :* follows. Loopback and private addresses only when allowed as addresses. Repeatable
    #[arg(long = "allow-host", value_name = "PATTERN")]
    pub allow_hosts: Vec<String>,

    /// Keep a warm container per configuration for later calls (the default)
    #[arg(long, overrides_with = "no_keep_warm")]
    pub keep_warm: bool,

    /// Run a one-shot container removed after the command
    #[arg(long, overrides_with = "keep_warm")]
    pub no_keep_warm: bool,

    /// How a warm call reaches its container: `agent`, this (static) binary running inside it, which starts no Podman process per call; or `podman exec`. Without a static binary or with a terminal, calls use podman exec
    #[arg(long, value_enum, value_name = "HOW", default_value_t = ExecVia::Agent)]
    pub exec_via: ExecVia,

    /// Idle seconds before a warm container is removed [default: 900]
    #[arg(long, value_name = "N", conflicts_with = "warm_ttl", value_parser = parse_seconds)]
    pub warm_ttl_seconds: Option<u64>,

    /// Idle time before a warm container is removed, e.g. 15m, 1h30m [default: 15m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub warm_ttl: Option<Duration>,

    /// Nix file with extra packages: a list, { packages = [...]; }, or a function of { pkgs, callPackage }
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub nix_packages_file: Option<PathBuf>,

    /// Use this flake instead of the built-in one: its `containerRootfs` package (a root filesystem, run from the Nix store), else its `containerImage` (loaded into Podman); REF#ATTR builds that output
    #[arg(long, value_name = "REF")]
    pub flake: Option<String>,

    /// Override the built-in flake's nixpkgs input (e.g. `nixpkgs` for your registry entry)
    #[arg(long, value_name = "REF")]
    pub nixpkgs: Option<String>,

    /// Ignore the cached image record: evaluate and build again (and load, for an image)
    #[arg(long)]
    pub rebuild: bool,

    /// Set NAME=VALUE inside the container. Repeatable
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// Pass host variables matching NAME or a glob (*, ?) into the container. Repeatable
    #[arg(long = "pass-env", value_name = "NAME_OR_GLOB")]
    pub pass_env: Vec<String>,

    /// Read NAME=VALUE lines from FILE into the container's environment. Repeatable
    #[arg(long = "env-file", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub env_files: Vec<PathBuf>,

    /// The nix executable
    #[arg(long, value_name = "PATH", default_value = "nix", value_hint = ValueHint::ExecutablePath)]
    pub nix_exe: String,

    /// The podman executable
    #[arg(long, value_name = "PATH", default_value = "podman", value_hint = ValueHint::ExecutablePath)]
    pub podman_exe: String,

    /// Extra arguments for `nix build`, split like a shell would. Repeatable
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub nix_extra: Vec<String>,

    /// Extra arguments for creating the container (`podman run`), split like a shell would. Repeatable
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub podman_extra: Vec<String>,

    /// Hide workdir paths matching PATTERN from the command (files read as empty, directories as empty): a name such as `.env`, `*.pem` (at any depth) or a path such as `secrets/*`. Repeatable
    #[arg(long, value_name = "PATTERN", help_heading = "Limits and hardening")]
    pub hide: Vec<String>,

    /// Let the processes the command starts outlive the call (a daemon for later calls); by default every process a call started is killed when it ends
    #[arg(long)]
    pub keep_processes: bool,

    /// Memory limit, e.g. 4g (podman --memory) [default: none]
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, help_heading = "Limits and hardening")]
    pub memory: Option<String>,

    /// CPU limit in cores, e.g. 1.5 (podman --cpus) [default: none]
    #[arg(long, value_name = "N", value_parser = parse_cpus, help_heading = "Limits and hardening")]
    pub cpus: Option<String>,

    /// Most processes and threads in the container; 0 for no limit
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PIDS_LIMIT, value_parser = parse_pids, help_heading = "Limits and hardening")]
    pub pids_limit: u64,

    /// Size of the tmpfs at /tmp
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_TMP_SIZE, value_parser = parse_size, help_heading = "Limits and hardening")]
    pub tmp_size: String,

    /// Give the command this capability (all are dropped by default), e.g. CAP_NET_RAW. Repeatable
    #[arg(long, value_name = "CAP", value_parser = parse_cap, help_heading = "Limits and hardening")]
    pub cap_add: Vec<String>,

    /// Let the command write to the image's root filesystem (read-only by default)
    #[arg(long, help_heading = "Limits and hardening")]
    pub writable_root: bool,

    /// Let setuid/setgid programs gain privileges (no-new-privileges is set by default)
    #[arg(long, help_heading = "Limits and hardening")]
    pub allow_setuid: bool,

    /// Run the command as `nix develop WORKDIR -c COMMAND`: in the dev shell of the workdir's flake, evaluated once per flake.nix/flake.lock and cached; mounts the host's /nix/store (read-only) and Nix daemon socket
    #[arg(long, help_heading = DEVELOP, conflicts_with = "auto_nix_develop")]
    pub nix_develop: bool,

    /// Like --nix-develop when the workdir holds a flake.nix; otherwise run the command directly
    #[arg(long, help_heading = DEVELOP)]
    pub auto_nix_develop: bool,

    /// The devShell to use (`devShells.<system>.ATTR`) [default: default]
    #[arg(long, value_name = "ATTR", help_heading = DEVELOP)]
    pub dev_shell: Option<String>,

    /// Your options and policy from FILE [default: $LECTIC_CONFIG/nix-sandbox.yaml, if it exists]; the system policy still applies
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,

    /// Lectic's cache dir: state lives in DIR/nix-sandbox [default: $LECTIC_CACHE, else $XDG_CACHE_HOME/lectic, else ~/.cache/lectic]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub cache: Option<PathBuf>,

    /// Say on stderr what the sandbox does (storage driver, build, container)
    #[arg(long)]
    pub verbose: bool,

    /// How long to wait for another call's lock (a cold build, a container being made) [default: 1h for builds, 10m otherwise]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,

    /// Instead of a command: list warm containers, cached images and disk use
    #[arg(
        long,
        visible_alias = "list",
        help_heading = MANAGEMENT
    )]
    pub status: bool,

    /// Instead of a command: remove warm containers idle past their TTL, and leftovers of killed calls
    #[arg(long, help_heading = MANAGEMENT)]
    pub prune: bool,

    /// With --prune: remove every warm container of ours that no call is using. With --gc: remove every image and record no container uses, however recently used
    #[arg(long, help_heading = MANAGEMENT)]
    pub all: bool,

    /// Instead of a command: remove unused images, stale image records and leftover files
    #[arg(long, help_heading = MANAGEMENT)]
    pub gc: bool,

    /// Instead of a command: build and load the image for these options now
    #[arg(long, help_heading = MANAGEMENT)]
    pub prepare: bool,

    /// With --prepare: also start the warm container for these options (and this directory)
    #[arg(long, help_heading = MANAGEMENT)]
    pub start: bool,

    /// With --worktree, instead of a command: remove the worktree and its container, and its branch if merged into HEAD
    #[arg(long, help_heading = MANAGEMENT, requires = "worktree")]
    pub remove: bool,

    /// Instead of a command: check podman, nix, rootless prerequisites, storage and the cache dirs
    #[arg(long, help_heading = MANAGEMENT)]
    pub doctor: bool,

    /// Instead of a command: print the effective configuration and where each value comes from
    #[arg(long, help_heading = MANAGEMENT)]
    pub show_config: bool,

    /// Instead of a command: write the Lectic plugin (a lectic.yaml whose `sandbox:` is this binary with the other options given here, plus --config and --cache where an MCP server would not find them) into DIR [default: $LECTIC_DATA/plugins/nix-sandbox]
    #[arg(long, value_name = "DIR", num_args = 0..=1, help_heading = MANAGEMENT, value_hint = ValueHint::DirPath)]
    pub install_plugin: Option<Option<PathBuf>>,

    /// Instead of a command: print the completion script for SHELL
    #[arg(long, value_enum, value_name = "SHELL", help_heading = MANAGEMENT)]
    pub completions: Option<Shell>,

    /// Instead of a command: print the man page (roff)
    #[arg(long, help_heading = MANAGEMENT)]
    pub man: bool,

    /// Print the output of --status, --prune, --gc, --prepare, --doctor or --show-config as JSON
    #[arg(long, help_heading = MANAGEMENT)]
    pub json: bool,

    /// The command to run and its arguments
    #[arg(value_name = "COMMAND", required_unless_present = "action", num_args = 1.., value_hint = ValueHint::CommandWithArguments)]
    pub command: Vec<String>,
}

/// How a warm call reaches its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecVia {
    Agent,
    Podman,
}

/// A shell `--completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// What a call does: run a command, or one management action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Run,
    Manage(Manage),
}

impl Action {
    /// Whether it makes a container, so mounts: the management flags mount
    /// nothing, so they run from anywhere (HOME, /, a directory that is
    /// gone, a parent of the cache).
    pub fn mounts(self) -> bool {
        matches!(
            self,
            Action::Run | Action::Manage(Manage::Prepare { start: true })
        )
    }
}

/// The management actions: flags that stand in for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manage {
    Status,
    Prune { all: bool },
    Gc { all: bool },
    Prepare { start: bool },
    Doctor,
    ShowConfig,
    InstallPlugin,
    RemoveWorktree,
}

impl Cli {
    /// Checks what clap cannot: `requires` counts a flag's default as given.
    pub fn check(&self) -> Result<(), String> {
        if self.all && !self.prune && !self.gc {
            return Err(
                "--all goes with --prune or --gc: use `--prune --all` or `--gc --all`".into(),
            );
        }
        if self.dev_shell.is_some() && !self.nix_develop && !self.auto_nix_develop {
            return Err(
                "--dev-shell goes with --nix-develop or --auto-nix-develop: add one of them".into(),
            );
        }
        // `--worktree NAME --remove` would run the command `NAME --remove`
        // in the default worktree: the name goes with '='.
        if self.worktree.as_deref() == Some("")
            && let [name, flag] = self.command.as_slice()
            && flag == "--remove"
        {
            return Err(format!(
                "--worktree takes its name after '=' (a word after it is the command): use `--worktree={name} --remove`"
            ));
        }
        if self.start && !self.prepare {
            return Err("--start goes with --prepare: use `--prepare --start`".into());
        }
        Ok(())
    }

    pub fn action(&self) -> Action {
        let manage = if self.status {
            Manage::Status
        } else if self.prune {
            Manage::Prune { all: self.all }
        } else if self.gc {
            Manage::Gc { all: self.all }
        } else if self.prepare {
            Manage::Prepare { start: self.start }
        } else if self.doctor {
            Manage::Doctor
        } else if self.show_config {
            Manage::ShowConfig
        } else if self.install_plugin.is_some() {
            Manage::InstallPlugin
        } else if self.remove {
            Manage::RemoveWorktree
        } else {
            return Action::Run;
        };
        Action::Manage(manage)
    }

    pub fn keep_warm(&self) -> bool {
        !self.no_keep_warm
    }

    pub fn ttl(&self) -> Duration {
        self.warm_ttl_seconds
            .map(Duration::from_secs)
            .or(self.warm_ttl)
            .unwrap_or(DEFAULT_TTL)
    }
}

/// clap's message (without its usage block and tips) as one line, with the fix.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| {
            !l.is_empty() && !l.starts_with("tip:") && !l.starts_with("For more information")
        })
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message}; see `lectic-nix-sandbox --help`")
}

/// A size as Podman takes it (digits and an optional b, k, m or g) and
/// its number of bytes.
fn size_bytes(s: &str) -> Result<(String, u64), String> {
    let digits = s.trim_end_matches(['b', 'k', 'm', 'g', 'B', 'K', 'M', 'G']);
    let unit = s[digits.len()..].to_lowercase();
    let n: u64 = match (unit.len() <= 1, digits.parse()) {
        (true, Ok(n)) if digits.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err("expected a size such as 512m or 4g".into()),
    };
    let scale: u64 = match unit.as_str() {
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => 1,
    };
    let bytes = n
        .checked_mul(scale)
        .ok_or("too large; give at most a few terabytes")?;
    Ok((s.to_lowercase(), bytes))
}

/// `--tmp-size`: Podman reads 0 as no limit at all, which it is not meant
/// to be (the tmpfs counts against memory).
fn parse_size(s: &str) -> Result<String, String> {
    match size_bytes(s)? {
        (_, 0) => Err("must be more than 0 (0 would leave /tmp unbounded)".into()),
        (s, _) => Ok(s),
    }
}

/// `--memory`: at least Podman's minimum of 6 MiB.
fn parse_memory(s: &str) -> Result<String, String> {
    match size_bytes(s)? {
        (_, b) if b < 6 << 20 => Err("must be at least 6m, Podman's smallest limit".into()),
        (s, _) => Ok(s),
    }
}

/// `--pids-limit`: 0 for none, else at most what Linux allows (2^22).
fn parse_pids(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n <= 1 << 22 => Ok(n),
        Ok(_) => Err("at most 4194304 (Linux's largest pid count); 0 for no limit".into()),
        Err(_) => Err("expected a number of processes, or 0 for no limit".into()),
    }
}

fn parse_cpus(s: &str) -> Result<String, String> {
    match s.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(s.to_owned()),
        _ => Err("expected a positive number of cores such as 1.5".into()),
    }
}

/// The capabilities Linux has (capabilities(7)), without `CAP_`.
const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// `net_raw`, `NET_RAW` and `CAP_NET_RAW` all name CAP_NET_RAW.
fn parse_cap(s: &str) -> Result<String, String> {
    let upper = s.to_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if CAPABILITIES.contains(&name) {
        Ok(format!("CAP_{name}"))
    } else {
        Err("not a capability; give one such as CAP_NET_RAW (see capabilities(7))".into())
    }
}

/// The longest idle time a warm container may be kept.
const TTL_MAX: Duration = Duration::from_secs(366 * 86_400);

/// A duration such as 15m, positive and at most a year.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.starts_with('-') {
        return Err("must be positive (examples: 900s, 15m, 1h30m)".into());
    }
    match humantime::parse_duration(s) {
        Ok(d) if d > TTL_MAX => Err("at most a year (366d)".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (examples: 900s, 15m, 1h30m)")),
    }
}

/// `--warm-ttl-seconds`: at most a year too.
fn parse_seconds(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n <= TTL_MAX.as_secs() => Ok(n),
        Ok(_) => Err(format!("at most a year ({} seconds)", TTL_MAX.as_secs())),
        Err(_) => Err("expected a number of seconds".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lectic-nix-sandbox").chain(args.iter().copied()))
    }

    #[test]
    fn words_after_the_command_belong_to_it_even_if_they_look_like_options() {
        let cli = parse(&["--allow-net", "ls", "-la", "--allow-net", "--", "-v"]).unwrap();
        assert!(cli.allow_net);
        assert_eq!(cli.command, ["ls", "-la", "--allow-net", "--", "-v"]);
    }

    #[test]
    fn double_dash_ends_our_options() {
        let cli = parse(&["--", "--help"]).unwrap();
        assert_eq!(cli.command, ["--help"]);
    }

    #[test]
    fn unknown_option_before_the_command_is_an_error() {
        assert!(parse(&["--no-such-flag", "true"]).is_err());
        assert!(parse(&["-z", "true"]).is_err());
    }

    #[test]
    fn missing_value_and_missing_command_are_errors() {
        assert!(parse(&["--workdir"]).is_err());
        assert!(parse(&["--allow-net"]).is_err());
    }

    #[test]
    fn ttl_accepts_seconds_or_humantime_and_defaults_to_15_minutes() {
        assert_eq!(parse(&["true"]).unwrap().ttl(), DEFAULT_TTL);
        assert_eq!(
            parse(&["--warm-ttl-seconds", "60", "true"]).unwrap().ttl(),
            Duration::from_secs(60)
        );
        assert_eq!(
            parse(&["--warm-ttl", "1h30m", "true"]).unwrap().ttl(),
            Duration::from_secs(5400)
        );
        assert!(parse(&["--warm-ttl", "soon", "true"]).is_err());
        assert!(parse(&["--warm-ttl-seconds", "-5", "true"]).is_err());
    }

    #[test]
    fn keep_warm_is_the_default_and_the_last_flag_wins() {
        assert!(parse(&["true"]).unwrap().keep_warm());
        assert!(!parse(&["--no-keep-warm", "true"]).unwrap().keep_warm());
        assert!(
            parse(&["--no-keep-warm", "--keep-warm", "true"])
                .unwrap()
                .keep_warm()
        );
    }

    #[test]
    fn extra_args_take_values_that_start_with_dashes() {
        let cli = parse(&["--nix-extra", "--option cores 1", "true"]).unwrap();
        assert_eq!(cli.nix_extra, ["--option cores 1"]);
    }

    #[test]
    fn management_flags_take_the_place_of_a_command_and_never_shadow_one() {
        assert_eq!(
            parse(&["--status"]).unwrap().action(),
            Action::Manage(Manage::Status)
        );
        assert_eq!(
            parse(&["--list"]).unwrap().action(),
            Action::Manage(Manage::Status)
        );
        assert_eq!(
            parse(&["--prune", "--all"]).unwrap().action(),
            Action::Manage(Manage::Prune { all: true })
        );
        assert_eq!(
            parse(&["--prepare", "--start"]).unwrap().action(),
            Action::Manage(Manage::Prepare { start: true })
        );
        let cli = parse(&["status", "--prune"]).unwrap();
        assert_eq!(cli.action(), Action::Run);
        assert_eq!(cli.command, ["status", "--prune"]);
        assert!(parse(&["--status", "ls"]).is_err(), "a flag and a command");
        assert!(parse(&["--status", "--gc"]).is_err(), "two actions");
        assert!(parse(&["--all", "true"]).unwrap().check().is_err());
        assert!(parse(&["--start", "--status"]).unwrap().check().is_err());
        assert!(parse(&["--prune", "--all"]).unwrap().check().is_ok());
    }

    #[test]
    fn limits_are_checked_before_podman_sees_them() {
        let cli = parse(&[
            "--memory",
            "4G",
            "--cpus",
            "1.5",
            "--cap-add",
            "net_raw",
            "true",
        ])
        .unwrap();
        assert_eq!(cli.memory.as_deref(), Some("4g"));
        assert_eq!(cli.cpus.as_deref(), Some("1.5"));
        assert_eq!(cli.cap_add, ["CAP_NET_RAW"]);
        assert_eq!(cli.pids_limit, DEFAULT_PIDS_LIMIT);
        for bad in [
            &["--memory", "lots", "true"][..],
            &["--memory", "4gb", "true"],
            &["--cpus", "0", "true"],
            &["--cap-add", "net-raw", "true"],
            &["--pids-limit", "-1", "true"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn short_options_of_the_proof_of_concept_work() {
        let cli = parse(&["-d", "/w", "-v", "/a:/b:ro", "-p", "/p", "echo", "hi"]).unwrap();
        assert_eq!(cli.workdir.unwrap(), PathBuf::from("/w"));
        assert_eq!(cli.volumes, ["/a:/b:ro"]);
        assert_eq!(cli.persist.unwrap(), PathBuf::from("/p"));
    }
}
