//! The policy files. The user's, `$LECTIC_CONFIG/nix-sandbox.yaml` or
//! `--config FILE`: defaults for the command-line options (the command
//! line wins), and the policy: the invoking user's project roots, managed
//! `env` and `env_files`. The system's, [`SYSTEM_PATH`] (fixed when the
//! program is built; root's to write): the same keys, always read, under
//! everything else, plus `allow`, which forbids or allowlists each option
//! that relaxes the sandbox. Nothing the user gives can loosen it: its
//! roots bound every host path the call reads, its env wins over every
//! other level, and its `allow` rules judge the final values, whichever
//! layer set them. Every key is checked; a mistake is an error naming
//! file, line and key.
//!
//! Options from a file become command-line arguments placed before the
//! user's own, so they are parsed and checked exactly like typed ones; an
//! option the user gave is not taken from the file at all.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::{Error, Result};

pub const FILE_NAME: &str = "nix-sandbox.yaml";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Bool,
    Str,
    /// A path: `~` is the user's HOME, relative paths are the file's dir's.
    Path,
    List,
    /// Volumes: a list whose host part is a path.
    Volumes,
}

/// Option keys: (key, the long option, kind). Keys are the long options
/// with `_` for `-`.
type OptionSpec = (&'static str, &'static str, Kind);

const OPTIONS: &[OptionSpec] = &[
    ("workdir", "--workdir", Kind::Path),
    ("volumes", "--volume", Kind::Volumes),
    ("persist", "--persist", Kind::Path),
    ("home", "--home", Kind::Path),
    ("allow_net", "--allow-net", Kind::Bool),
    ("allow_hosts", "--allow-host", Kind::List),
    ("keep_warm", "--keep-warm", Kind::Bool),
    ("exec_via", "--exec-via", Kind::Str),
    ("nix_develop", "--nix-develop", Kind::Bool),
    ("auto_nix_develop", "--auto-nix-develop", Kind::Bool),
    ("dev_shell", "--dev-shell", Kind::Str),
    ("warm_ttl", "--warm-ttl", Kind::Str),
    ("nix_packages_file", "--nix-packages-file", Kind::Path),
    ("rebuild", "--rebuild", Kind::Bool),
    ("flake", "--flake", Kind::Str),
    ("nixpkgs", "--nixpkgs", Kind::Str),
    ("pass_env", "--pass-env", Kind::List),
    ("nix_exe", "--nix-exe", Kind::Str),
    ("podman_exe", "--podman-exe", Kind::Str),
    ("nix_extra", "--nix-extra", Kind::List),
    ("podman_extra", "--podman-extra", Kind::List),
    ("verbose", "--verbose", Kind::Bool),
    ("lock_timeout", "--lock-timeout", Kind::Str),
    ("memory", "--memory", Kind::Str),
    ("cpus", "--cpus", Kind::Str),
    ("pids_limit", "--pids-limit", Kind::Str),
    ("tmp_size", "--tmp-size", Kind::Str),
    ("cap_add", "--cap-add", Kind::List),
    ("writable_root", "--writable-root", Kind::Bool),
    ("allow_setuid", "--allow-setuid", Kind::Bool),
    ("hide", "--hide", Kind::List),
    ("keep_processes", "--keep-processes", Kind::Bool),
    ("worktree", "--worktree", Kind::Str),
];

/// The long option of a key (`volumes` is `--volume`).
pub fn flag_of(key: &str) -> String {
    OPTIONS.iter().find(|(k, _, _)| *k == key).map_or_else(
        || format!("--{}", key.replace('_', "-")),
        |(_, flag, _)| (*flag).to_owned(),
    )
}

const POLICY_KEYS: &[&str] = &["project_roots", "users", "env", "env_files", "allow"];

/// The system policy's path: `LECTIC_NIX_SANDBOX_SYSTEM_POLICY` when the
/// program was built, else /etc/lectic/nix-sandbox.yaml. Never taken from
/// the environment or the command line, which the user controls.
pub const SYSTEM_PATH: &str = match option_env!("LECTIC_NIX_SANDBOX_SYSTEM_POLICY") {
    Some(p) => p,
    None => "/etc/lectic/nix-sandbox.yaml",
};

/// Which file a policy is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Layer {
    #[default]
    User,
    System,
}

/// What the system policy allows of one relaxing option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Any value (`true`): for the options that are refused unless
    /// allowed (see `Policy::rule`).
    Any,
    /// Not at all (the option must keep its default).
    No,
    /// Only these values (see `ALLOW_KEYS` for what a value is).
    Only(Vec<String>),
}

/// One `allow` rule and where it stands.
#[derive(Debug, Clone)]
pub struct Rule {
    pub key: &'static str,
    pub allow: Allow,
    pub line: usize,
}

/// The options `allow` governs, and whether a list is meaningful for each
/// (else only `false`): words of podman_extra/nix_extra; patterns (`*`
/// for any run) of flake/nixpkgs; capability names; program paths;
/// directories of packages files, and of volumes outside the roots.
pub const ALLOW_KEYS: &[(&str, bool)] = &[
    ("podman_extra", true),
    ("nix_extra", true),
    ("flake", true),
    ("nixpkgs", true),
    ("nix_packages_file", true),
    ("cap_add", true),
    ("podman_exe", true),
    ("nix_exe", true),
    ("volumes", true),
    ("allow_hosts", true),
    ("allow_setuid", false),
    ("writable_root", false),
    ("allow_net", false),
    ("nix_develop", false),
];

/// A value from the file and where it stands.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub line: usize,
}

/// A loaded, checked policy file.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub path: PathBuf,
    pub layer: Layer,
    /// The system policy's `allow` rules.
    pub allow: Vec<Rule>,
    /// Option (from OPTIONS) → (its arguments, line).
    options: Vec<(&'static OptionSpec, Vec<String>, usize)>,
    /// The invoking user's roots (their own list, else the default list);
    /// None when the file sets no roots at all.
    pub project_roots: Option<Sourced<Vec<PathBuf>>>,
    pub env: Vec<Sourced<(String, String)>>,
    pub env_files: Vec<Sourced<PathBuf>>,
}

/// Where the policy file is: `--config`, else `$LECTIC_CONFIG/`, else
/// `$XDG_CONFIG_HOME/lectic/`, else `~/.config/lectic/` (if it exists).
pub fn locate(explicit: Option<&Path>, get: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    let dir = crate::config::lectic_dir(get, "LECTIC_CONFIG", "XDG_CONFIG_HOME", ".config/lectic")?;
    let path = dir.join(FILE_NAME);
    path.exists().then_some(path)
}

impl Policy {
    /// Reads and checks `path` for the user `user` whose HOME is `home`.
    pub fn load(path: &Path, user: &str, home: Option<&Path>) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::usage(format!(
                "policy file {}: {e}; fix the path given to --config",
                path.display()
            ))
        })?;
        Self::parse(&text, path, user, home, Layer::User)
    }

    /// The system policy, if there is one, for the user `uid` (name and
    /// HOME from the user database, not from the environment). It must
    /// be root's, on a path only root can change; anything else is an
    /// error, never a reason to run without it.
    pub fn system(uid: u32) -> Result<Option<Policy>> {
        let path = Path::new(SYSTEM_PATH);
        let Some(bytes) = crate::fsutil::read_root_file(path)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::usage(format!(
                "system policy {SYSTEM_PATH}: not UTF-8 text; ask your administrator to fix it"
            ))
        })?;
        let (user, home) = crate::sys::passwd(uid).unwrap_or_else(|| (uid.to_string(), None));
        Self::parse(&text, path, &user, home.as_deref(), Layer::System).map(Some)
    }

    /// The rule for `key`, if the system policy has one.
    pub fn rule(&self, key: &str) -> Option<&Rule> {
        self.allow.iter().find(|r| r.key == key)
    }

    /// The rules to apply: those written, and for `podman_extra` and
    /// `nix_extra` a refusal when none is written. Those two reach past
    /// every other rule (`--podman-extra "-v /:/host --privileged"`, an
    /// extra installable or `--override-input` for nix), so a system
    /// policy allows them only by saying so (`true` or a list of words).
    pub fn rules(&self) -> Vec<Rule> {
        let mut rules = self.allow.clone();
        for key in ["podman_extra", "nix_extra"] {
            if self.rule(key).is_none() {
                rules.push(Rule {
                    key,
                    allow: Allow::No,
                    line: 0,
                });
            }
        }
        rules
    }

    pub(crate) fn parse(
        text: &str,
        path: &Path,
        user: &str,
        home: Option<&Path>,
        layer: Layer,
    ) -> Result<Policy> {
        let bad = |line: usize, key: &str, why: String| {
            Error::usage(format!("{}:{line}: {key}: {why}", path.display()))
        };
        let root: Value = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(1);
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            Error::usage(format!("{}:{line}: not valid YAML: {msg}", path.display()))
        })?;
        let base = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        let resolve = |s: &str| -> PathBuf {
            let expanded = match (s.strip_prefix("~/"), home) {
                (Some(rest), Some(h)) => h.join(rest),
                _ if s == "~" => home.map(Path::to_owned).unwrap_or_else(|| s.into()),
                _ => PathBuf::from(s),
            };
            base.join(expanded)
        };
        let mut policy = Policy {
            path: path.to_owned(),
            layer,
            ..Policy::default()
        };
        let map = match root {
            Value::Null => return Ok(policy),
            Value::Mapping(m) => m,
            _ => return Err(bad(1, "(top level)", "expected a mapping of keys".into())),
        };
        let mut default_roots = None;
        let mut users_line = None;
        for (k, v) in &map {
            let Some(key) = k.as_str() else {
                return Err(bad(1, "(top level)", "keys must be strings".into()));
            };
            let line = line_of(text, &[key]);
            let wrong = |expected: &str| bad(line, key, format!("expected {expected}"));
            if let Some(option @ &(_, flag, kind)) =
                OPTIONS.iter().find(|(name, _, _)| *name == key)
            {
                let args: Vec<String> = match kind {
                    Kind::Bool => {
                        let b = v.as_bool().ok_or_else(|| wrong("true or false"))?;
                        match (key, b) {
                            ("keep_warm", false) => vec!["--no-keep-warm".into()],
                            (_, true) => vec![flag.into()],
                            (_, false) => vec![],
                        }
                    }
                    // A bare number of seconds, or a duration such as 15m.
                    Kind::Str if key == "warm_ttl" && v.is_number() => {
                        vec!["--warm-ttl-seconds".into(), scalar(v).unwrap_or_default()]
                    }
                    // true for the default name, or the name.
                    Kind::Str if key == "worktree" => match v {
                        Value::Bool(false) => vec![],
                        Value::Bool(true) => vec![flag.into()],
                        _ => vec![format!(
                            "{flag}={}",
                            scalar(v).ok_or_else(|| wrong("true, false or a name"))?
                        )],
                    },
                    Kind::Str => vec![
                        flag.into(),
                        scalar(v).ok_or_else(|| wrong("a string or number"))?,
                    ],
                    Kind::Path => {
                        let s = scalar(v).ok_or_else(|| wrong("a path"))?;
                        vec![flag.into(), resolve(&s).display().to_string()]
                    }
                    Kind::List | Kind::Volumes => {
                        let items = list(v).ok_or_else(|| wrong("a list of strings"))?;
                        items
                            .into_iter()
                            .flat_map(|item| {
                                let item = if kind == Kind::Volumes {
                                    let (host, rest) = match item.split_once(':') {
                                        Some((h, r)) => (h.to_owned(), format!(":{r}")),
                                        None => (item.clone(), String::new()),
                                    };
                                    format!("{}{rest}", resolve(&host).display())
                                } else {
                                    item
                                };
                                [flag.to_owned(), item]
                            })
                            .collect()
                    }
                };
                policy.options.push((option, args, line));
                continue;
            }
            match key {
                "project_roots" => {
                    let roots = list(v).ok_or_else(|| wrong("a list of directories"))?;
                    default_roots = Some(Sourced {
                        value: roots.iter().map(|r| resolve(r)).collect(),
                        line,
                    });
                }
                "users" => {
                    users_line = Some(line);
                    let users = v
                        .as_mapping()
                        .ok_or_else(|| wrong("a mapping of user names"))?;
                    for (name, entry) in users {
                        let name = name.as_str().ok_or_else(|| wrong("user names as keys"))?;
                        let uline = line_of(text, &["users", name]);
                        let entry = entry.as_mapping().ok_or_else(|| {
                            bad(
                                uline,
                                &format!("users.{name}"),
                                "expected a mapping with project_roots".into(),
                            )
                        })?;
                        for (k, roots) in entry {
                            let k = k.as_str().unwrap_or_default();
                            let rline = line_of(text, &["users", name, k]);
                            if k != "project_roots" {
                                return Err(bad(
                                    rline,
                                    &format!("users.{name}.{k}"),
                                    "unknown key; a user has only project_roots".into(),
                                ));
                            }
                            let roots = list(roots).ok_or_else(|| {
                                bad(
                                    rline,
                                    &format!("users.{name}.project_roots"),
                                    "expected a list of directories".into(),
                                )
                            })?;
                            if name == user {
                                policy.project_roots = Some(Sourced {
                                    value: roots.iter().map(|r| resolve(r)).collect(),
                                    line: rline,
                                });
                            }
                        }
                    }
                }
                "env" => {
                    let vars = v
                        .as_mapping()
                        .ok_or_else(|| wrong("a mapping of NAME: value"))?;
                    for (name, value) in vars {
                        let name = name
                            .as_str()
                            .ok_or_else(|| wrong("variable names as keys"))?;
                        let vline = line_of(text, &["env", name]);
                        let value = scalar(value).ok_or_else(|| {
                            bad(
                                vline,
                                &format!("env.{name}"),
                                "expected a string or number".into(),
                            )
                        })?;
                        crate::env::check_name(name)
                            .and_then(|()| crate::env::never(name))
                            .map_err(|why| bad(vline, &format!("env.{name}"), why))?;
                        policy.env.push(Sourced {
                            value: (name.to_owned(), value),
                            line: vline,
                        });
                    }
                }
                "allow" if layer == Layer::User => {
                    return Err(bad(
                        line,
                        key,
                        format!(
                            "only the system policy ({SYSTEM_PATH}) says what is allowed; leave the option out here instead"
                        ),
                    ));
                }
                "allow" => {
                    let rules = v
                        .as_mapping()
                        .ok_or_else(|| wrong("a mapping of option: false or a list"))?;
                    for (name, rule) in rules {
                        let name = name.as_str().unwrap_or_default();
                        let rline = line_of(text, &["allow", name]);
                        let at = format!("allow.{name}");
                        let Some(&(known, takes_list)) =
                            ALLOW_KEYS.iter().find(|(k, _)| *k == name)
                        else {
                            let keys: Vec<&str> = ALLOW_KEYS.iter().map(|(k, _)| *k).collect();
                            return Err(bad(
                                rline,
                                &at,
                                format!("unknown key; allow governs {}", keys.join(", ")),
                            ));
                        };
                        let allow = match rule {
                            Value::Bool(true) => Allow::Any,
                            Value::Bool(false) => Allow::No,
                            other if takes_list => Allow::Only(list(other).ok_or_else(|| {
                                bad(
                                    rline,
                                    &at,
                                    "expected false or a list of allowed values".into(),
                                )
                            })?),
                            _ => {
                                return Err(bad(rline, &at, "expected true or false".into()));
                            }
                        };
                        let allow = match allow {
                            // Directories, like the file's other paths.
                            Allow::Only(dirs)
                                if matches!(known, "volumes" | "nix_packages_file") =>
                            {
                                Allow::Only(
                                    dirs.iter()
                                        .map(|d| resolve(d).display().to_string())
                                        .collect(),
                                )
                            }
                            a => a,
                        };
                        policy.allow.push(Rule {
                            key: known,
                            allow,
                            line: rline,
                        });
                    }
                }
                "env_files" => {
                    for f in list(v).ok_or_else(|| wrong("a list of files"))? {
                        policy.env_files.push(Sourced {
                            value: resolve(&f),
                            line,
                        });
                    }
                }
                _ => {
                    let known: Vec<&str> = OPTIONS
                        .iter()
                        .map(|(k, _, _)| *k)
                        .chain(POLICY_KEYS.iter().copied())
                        .collect();
                    return Err(bad(
                        line,
                        key,
                        format!("unknown key; known keys: {}", known.join(", ")),
                    ));
                }
            }
        }
        if policy.project_roots.is_none() {
            // Listed users only, when there is no default list.
            policy.project_roots = default_roots.or(users_line.map(|line| Sourced {
                value: vec![],
                line,
            }));
        }
        Ok(policy)
    }

    /// Arguments for the options the user did not give (`given` holds the
    /// long options they did), each with its key and line.
    pub fn arguments(&self, given: &BTreeSet<String>) -> Vec<(&'static str, Vec<String>, usize)> {
        self.options
            .iter()
            .filter(|((key, flag, kind), _, _)| {
                // Lists add to what the user gave; single values yield to it.
                let also: &[&str] = match *key {
                    "keep_warm" => &["--no-keep-warm"],
                    "warm_ttl" => &["--warm-ttl-seconds"],
                    _ => &[],
                };
                matches!(kind, Kind::List | Kind::Volumes)
                    || !std::iter::once(flag)
                        .chain(also)
                        .any(|f| given.contains(*f))
            })
            .map(|((key, _, _), args, line)| (*key, args.clone(), *line))
            .collect()
    }
}

/// A string, number or bool as a string.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of scalars (a single scalar counts as a list of one).
fn list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Sequence(items) => items.iter().map(scalar).collect(),
        Value::Null => Some(vec![]),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// The line (1-based) of `path`'s last key in block-style YAML: each key
/// is looked for below its parent, more indented than it.
fn line_of(text: &str, path: &[&str]) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let (mut from, mut indent, mut found) = (0, None::<usize>, 1);
    for key in path {
        let hit = lines.iter().enumerate().skip(from).find_map(|(i, l)| {
            let body = l.trim_start();
            let depth = l.len() - body.len();
            if indent.is_some_and(|d| depth <= d)
                && !body.is_empty()
                && !body.starts_with('#')
                && i > from
            {
                return Some(None); // left the parent's block
            }
            let k = body.trim_start_matches("- ");
            let is_key = k
                .strip_prefix(key)
                .map(|r| r.trim_start().starts_with(':'))
                .unwrap_or(false)
                || k.strip_prefix(&format!("\"{key}\""))
                    .is_some_and(|r| r.trim_start().starts_with(':'));
            (is_key && indent.is_none_or(|d| depth > d)).then_some(Some((i, depth)))
        });
        match hit.flatten() {
            Some((i, depth)) => {
                found = i + 1;
                from = i;
                indent = Some(depth);
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, user: &str) -> Result<Policy> {
        Policy::parse(
            text,
            Path::new("/etc/p.yaml"),
            user,
            Some(Path::new("/home/u")),
            Layer::User,
        )
    }

    #[test]
    fn options_become_arguments_with_paths_resolved() {
        let p = parse(
            "allow_net: true\nkeep_warm: false\nvolumes:\n  - ~/data:/data:ro\n  - rel\nmemory: 2g\npids_limit: 64\nwarm_ttl: 60\n",
            "u",
        )
        .unwrap();
        let args: Vec<String> = p
            .arguments(&BTreeSet::new())
            .into_iter()
            .flat_map(|(_, a, _)| a)
            .collect();
        assert_eq!(
            args,
            [
                "--allow-net",
                "--no-keep-warm",
                "--volume",
                "/home/u/data:/data:ro",
                "--volume",
                "/etc/rel",
                "--memory",
                "2g",
                "--pids-limit",
                "64",
                "--warm-ttl-seconds",
                "60"
            ]
        );
        let given: BTreeSet<String> = ["--memory".to_owned(), "--volume".into()].into();
        let keys: Vec<&str> = p.arguments(&given).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(
            keys,
            [
                "allow_net",
                "keep_warm",
                "volumes",
                "pids_limit",
                "warm_ttl"
            ]
        );
    }

    #[test]
    fn a_users_own_roots_beat_the_default_roots() {
        let text = "project_roots: [/srv]\nusers:\n  alice:\n    project_roots:\n      - ~/p\n";
        let alice = parse(text, "alice").unwrap().project_roots.unwrap();
        assert_eq!(alice.value, [PathBuf::from("/home/u/p")]);
        assert_eq!(alice.line, 4);
        let bob = parse(text, "bob").unwrap().project_roots.unwrap();
        assert_eq!(bob.value, [PathBuf::from("/srv")]);
        let only_alice = "users:\n  alice:\n    project_roots: [/a]\n";
        let carol = parse(only_alice, "carol").unwrap().project_roots.unwrap();
        assert!(carol.value.is_empty(), "an unlisted user gets no roots");
        assert!(
            parse("allow_net: true\n", "u")
                .unwrap()
                .project_roots
                .is_none()
        );
    }

    #[test]
    fn mistakes_name_file_line_and_key() {
        let cases = [
            (
                "allow_net: true\nno_such: 1\n",
                "/etc/p.yaml:2: no_such: unknown key",
            ),
            (
                "memory: 2g\nallow_net: yes please\n",
                "/etc/p.yaml:2: allow_net: expected true or false",
            ),
            ("env:\n  GOOD: 1\n  9BAD: x\n", "/etc/p.yaml:3: env.9BAD:"),
            (
                "env:\n  SSH_AUTH_SOCK: /x\n",
                "env.SSH_AUTH_SOCK: SSH_AUTH_SOCK names a host socket",
            ),
            (
                "users:\n  alice:\n    roots: [/a]\n",
                "/etc/p.yaml:3: users.alice.roots: unknown key",
            ),
            (
                "volumes: {a: 1}\n",
                "/etc/p.yaml:1: volumes: expected a list",
            ),
            ("allow_net: [\n", "/etc/p.yaml:2: not valid YAML"),
        ];
        for (text, expect) in cases {
            let e = parse(text, "alice").unwrap_err().to_string();
            assert!(e.starts_with(expect) || e.contains(expect), "{text:?}: {e}");
        }
    }

    #[test]
    fn env_and_env_files_keep_their_lines() {
        let p = parse("env:\n  A: 1\n  B: two\nenv_files: [secrets.env]\n", "u").unwrap();
        let env: Vec<(String, String, usize)> = p
            .env
            .iter()
            .map(|s| (s.value.0.clone(), s.value.1.clone(), s.line))
            .collect();
        assert_eq!(
            env,
            [("A".into(), "1".into(), 2), ("B".into(), "two".into(), 3)]
        );
        assert_eq!(p.env_files[0].value, PathBuf::from("/etc/secrets.env"));
    }

    #[test]
    fn allow_rules_are_the_system_policys_alone() {
        let text = "allow:\n  allow_net: false\n  cap_add: [NET_RAW]\n  volumes: [~/data]\n  podman_extra: true\n";
        let p = Policy::parse(
            text,
            Path::new("/etc/p.yaml"),
            "u",
            Some(Path::new("/home/u")),
            Layer::System,
        )
        .unwrap();
        let rules: Vec<(&str, Allow, usize)> = p
            .allow
            .iter()
            .map(|r| (r.key, r.allow.clone(), r.line))
            .collect();
        assert_eq!(
            rules,
            [
                ("allow_net", Allow::No, 2),
                ("cap_add", Allow::Only(vec!["NET_RAW".into()]), 3),
                ("volumes", Allow::Only(vec!["/home/u/data".into()]), 4),
                ("podman_extra", Allow::Any, 5),
            ]
        );
        let implied: Vec<(&str, Allow)> = p
            .rules()
            .into_iter()
            .skip(4)
            .map(|r| (r.key, r.allow))
            .collect();
        assert_eq!(implied, [("nix_extra", Allow::No)], "unless allowed");
        let e = parse(text, "u").unwrap_err().to_string();
        assert!(e.contains("allow: only the system policy"), "{e}");
        for (bad, expect) in [
            ("allow:\n  memory: false\n", "allow.memory: unknown key"),
            (
                "allow:\n  allow_net: [x]\n",
                "allow.allow_net: expected true or false",
            ),
        ] {
            let e = Policy::parse(bad, Path::new("/etc/p.yaml"), "u", None, Layer::System)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_readmes_two_policy_files_are_valid() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## The policy files").unwrap()..];
        let blocks: Vec<&str> = section
            .split("```yaml\n")
            .skip(1)
            .take(2)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        let path = Path::new("/etc/p.yaml");
        let home = Some(Path::new("/home/alice"));
        let system = Policy::parse(blocks[0], path, "alice", home, Layer::System).unwrap();
        assert!(system.rule("allow_net").is_some() && system.project_roots.is_some());
        let user = Policy::parse(blocks[1], path, "alice", home, Layer::User).unwrap();
        assert!(!user.env.is_empty());
    }
}
