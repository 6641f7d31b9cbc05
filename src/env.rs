//! The command's environment. Lectic's own environment holds the user's API
//! keys, so nothing of the host passes unless named. Levels, later wins:
//! host (the defaults below and `--pass-env`), the policy's `env` and
//! `env_files`, `--env`, `--env-file`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Host variables every call passes (names or globs).
pub const DEFAULT_PASS: &[&str] = &["LECTIC_*", "TERM", "LANG", "LC_*", "TZ", "NO_COLOR"];

/// Variables that name a way out of the sandbox (host sockets of the SSH
/// agent, D-Bus, the display, Podman or Docker): never passed or set, not
/// even by a glob that matches them.
pub const NEVER: &[&str] = &[
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "GPG_AGENT_INFO",
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "XDG_RUNTIME_DIR",
    "DOCKER_HOST",
    "CONTAINER_HOST",
    "PODMAN_HOST",
];

pub(crate) fn never(name: &str) -> std::result::Result<(), String> {
    if NEVER.contains(&name) {
        Err(format!(
            "{name} names a host socket and is never set inside the sandbox"
        ))
    } else {
        Ok(())
    }
}

pub type Env = BTreeMap<String, String>;

/// Why a value with a NUL byte is refused: no environment can carry one,
/// and passed on it would split into variables nobody set.
const NUL: &str = "the value holds a NUL byte, which no environment can carry; remove it";

/// What sets a call's environment, apart from the values that pass from
/// the host (a schema'd tool's parameters change with every call): the
/// `--pass-env` patterns, what `--env` sets, the policy's variables and
/// env files, and the `--env-file`s, paths and contents. None when
/// there is none of that. Tools that differ here get different containers
/// and HOMEs, so one tool's secrets never reach another's processes.
pub fn identity(
    pass: &[String],
    managed: &[&Managed],
    sets: &[String],
    files: &[PathBuf],
) -> Result<Option<String>> {
    if pass.is_empty()
        && managed
            .iter()
            .all(|m| m.env.is_empty() && m.files.is_empty())
        && sets.is_empty()
        && files.is_empty()
    {
        return Ok(None);
    }
    let mut key = crate::digest::Key::new("env-identity-v1");
    for p in pass {
        key.field("pass", p.as_bytes());
    }
    for (level, m) in managed.iter().enumerate() {
        key.field("level", &level.to_le_bytes());
        for ((name, value), _) in &m.env {
            key.field("policy-env", format!("{name}={value}").as_bytes());
        }
    }
    let mut file = |kind: &str, path: &Path| -> Result<()> {
        let (_, bytes) =
            crate::fsutil::read_no_symlinks(path).with_path("cannot read the env file", path)?;
        key.field(kind, path.as_os_str().as_encoded_bytes());
        key.field("contents", &bytes);
        Ok(())
    };
    for m in managed {
        for (path, _) in &m.files {
            file("policy-env-file", path)?;
        }
    }
    for path in files {
        file("env-file", path)?;
    }
    // Values too: a sandbox line's `--env` is fixed (a tool's parameters
    // come through `--pass-env`), and a secret given there is a secret.
    for set in sets {
        key.field("env", set.as_bytes());
    }
    Ok(Some(key.hex()))
}

/// What the policy file manages: variables and env files, each with where
/// it is set.
#[derive(Debug, Default, Clone)]
pub struct Managed {
    pub env: Vec<((String, String), String)>,
    pub files: Vec<(PathBuf, String)>,
}

pub fn collect(
    host: &[(String, String)],
    pass: &[String],
    sets: &[String],
    files: &[PathBuf],
) -> Result<Env> {
    collect_levels(host, pass, &[], sets, files).map(|(env, _)| env)
}

/// The environment, lowest level first (later wins): host variables that
/// pass (the defaults and `--pass-env`), the user policy's `env`, its
/// `env_files`, `--env`, `--env-file`, then the system policy's `env` and
/// `env_files`. So a host variable never overrides a managed one, what
/// the command line says explicitly wins over the user's file, and
/// nothing overrides the system's. `managed` is [user, system]. Also
/// returns where each variable came from.
pub fn collect_levels(
    host: &[(String, String)],
    pass: &[String],
    managed: &[&Managed],
    sets: &[String],
    files: &[PathBuf],
) -> Result<(Env, BTreeMap<String, String>)> {
    let mut env = Env::new();
    let mut sources = BTreeMap::new();
    let mut put = |name: &str, value: &str, source: String| {
        env.insert(name.to_owned(), value.to_owned());
        sources.insert(name.to_owned(), source);
    };
    let patterns = DEFAULT_PASS
        .iter()
        .copied()
        .chain(pass.iter().map(String::as_str));
    for pattern in patterns {
        for (name, value) in host {
            if glob_match(pattern, name) && never(name).is_ok() {
                put(name, value, "host".into());
            }
        }
    }
    let level = |m: &Managed, put: &mut dyn FnMut(&str, &str, String)| -> Result<()> {
        for ((name, value), at) in &m.env {
            if value.contains('\0') {
                return Err(Error::usage(format!("policy env {name} ({at}): {NUL}")));
            }
            put(name, value, format!("policy env ({at})"));
        }
        for (file, at) in &m.files {
            for (name, value) in read_env_file(file)? {
                put(
                    &name,
                    &value,
                    format!("policy env file {} ({at})", file.display()),
                );
            }
        }
        Ok(())
    };
    if let Some(user) = managed.first() {
        level(user, &mut put)?;
    }
    for set in sets {
        let (name, value) = set.split_once('=').ok_or_else(|| {
            Error::usage(format!(
                "--env {set}: expected NAME=VALUE; to pass the host's value use --pass-env {set}"
            ))
        })?;
        check_name(name)
            .and_then(|()| never(name))
            .map_err(|why| Error::usage(format!("--env {set}: {why}")))?;
        put(name, value, "--env".into());
    }
    for file in files {
        for (name, value) in read_env_file(file)? {
            put(&name, &value, format!("--env-file {}", file.display()));
        }
    }
    for system in managed.iter().skip(1) {
        level(system, &mut put)?;
    }
    Ok((env, sources))
}

/// Reads an env file in Docker Compose's `.env` format (see
/// [`parse_env_file`]). A malformed line is an error naming file and line,
/// never skipped.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    // Read through the path as resolved and checked (see Config::build).
    let (_, bytes) =
        crate::fsutil::read_no_symlinks(path).with_path("cannot read the env file", path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::usage(format!(
            "env file {}: not UTF-8 text; give a file of NAME=VALUE lines",
            path.display()
        ))
    })?;
    parse_env_file(&text)
        .map_err(|(line, why)| Error::usage(format!("env file {}:{line}: {why}", path.display())))
}

/// Docker Compose's `.env` format (docs.docker.com, "Use an environment
/// file"), without interpolation: `NAME=VALUE` lines, an optional
/// `export `, blank lines and `#` lines skipped. Unquoted values end at
/// ` #` (a comment) and are trimmed; `'...'` is literal but for `\'`;
/// `"..."` knows `\n \r \t \\ \" \$`; quoted values may span lines and
/// only a comment may follow them. A `$` outside single quotes is refused
/// (Compose would substitute a host variable; we never do), `$$` is a `$`.
/// Errors name the line, never its text (it may be a secret).
fn parse_env_file(text: &str) -> std::result::Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let at = i + 1;
        let line = raw.trim_start();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, rest)) = line.split_once('=') else {
            return Err((at, "expected NAME=VALUE".into()));
        };
        let name = name.trim_end();
        check_name(name).map_err(|_| {
            (
                at,
                "the part before `=` is not a variable name (letters, digits, _)".to_owned(),
            )
        })?;
        never(name).map_err(|why| (at, why))?;
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                // A quoted value may go on over the next lines.
                let mut body = rest[1..].to_owned();
                loop {
                    if let Some((value, after)) = quoted(&body, q).map_err(|why| (at, why))? {
                        let after = after.trim_start();
                        if !after.is_empty() && !after.starts_with('#') {
                            return Err((at, format!("only a comment may follow the closing {q}")));
                        }
                        break value;
                    }
                    let Some((_, next)) = lines.next() else {
                        return Err((at, format!("the {q} that opens the value is never closed")));
                    };
                    body.push('\n');
                    body += next;
                }
            }
            _ => {
                let end = rest
                    .find(" #")
                    .or_else(|| rest.find("\t#"))
                    .unwrap_or(rest.len());
                dollars(rest[..end].trim_end()).map_err(|why| (at, why))?
            }
        };
        if value.contains('\0') {
            return Err((at, NUL.into()));
        }
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// The value of a quoted body up to its closing `q` and what follows it;
/// None if `body` has no closing quote yet.
fn quoted(body: &str, q: char) -> std::result::Result<Option<(String, &str)>, String> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == q => {
                let value = if q == '"' { dollars(&value)? } else { value };
                return Ok(Some((value, &body[i + 1..])));
            }
            '\\' => match (q, chars.next().map(|(_, c)| c)) {
                ('\'', Some('\'')) => value.push('\''),
                ('"', Some('n')) => value.push('\n'),
                ('"', Some('r')) => value.push('\r'),
                ('"', Some('t')) => value.push('\t'),
                ('"', Some('\\')) => value.push('\\'),
                ('"', Some('"')) => value.push('"'),
                // Kept as `$$`, which `dollars` makes one literal `$`.
                ('"', Some('$')) => value.push_str("$$"),
                (_, Some(c)) => {
                    value.push('\\');
                    value.push(c);
                }
                (_, None) => value.push('\\'),
            },
            c => value.push(c),
        }
    }
    Ok(None)
}

/// `$$` is a literal `$`; a lone `$` would be interpolation, which we refuse.
fn dollars(v: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.next_if_eq(&'$').is_none() {
            return Err(
                "a `$` outside single quotes would substitute a variable, which env files here never do; write the value in single quotes or the `$` as `$$`"
                    .into(),
            );
        }
        out.push(c);
    }
    Ok(out)
}

pub(crate) fn check_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid variable name (letters, digits, _; not starting with a digit)"
        ))
    }
}

/// `*` matches any run of characters, `?` one character; nothing else is special.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<(String, String)> {
        [
            ("LECTIC_DATA", "/d"),
            ("OPENAI_API_KEY", "secret"),
            ("TERM", "xterm"),
            ("LC_ALL", "C"),
            ("QUERY", "from-host"),
            ("PATH", "/usr/bin"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn only_default_names_pass_from_the_host() {
        let env = collect(&host(), &[], &[], &[]).unwrap();
        let names: Vec<_> = env.keys().map(String::as_str).collect();
        assert_eq!(names, ["LC_ALL", "LECTIC_DATA", "TERM"]);
    }

    #[test]
    fn pass_env_then_env_then_env_file_later_wins() {
        let dir = crate::testutil::TempDir::new("env");
        let file = dir.join("vars");
        std::fs::write(
            &file,
            "# c\n\nexport FROM_FILE='x y'\nQUERY=\"from-file\"\n",
        )
        .unwrap();
        let env = collect(
            &host(),
            &["QUER?".into(), "OPENAI_*".into()],
            &["QUERY=from-flag".into(), "EMPTY=".into()],
            &[file],
        )
        .unwrap();
        assert_eq!(env["QUERY"], "from-file");
        assert_eq!(env["OPENAI_API_KEY"], "secret");
        assert_eq!(env["FROM_FILE"], "x y");
        assert_eq!(env["EMPTY"], "");
        let env = collect(&host(), &["QUERY".into()], &["QUERY=from-flag".into()], &[]).unwrap();
        assert_eq!(env["QUERY"], "from-flag");
    }

    #[test]
    fn env_files_read_like_docker_compose_reads_them() {
        let text = concat!(
            "# comment\n",
            "  \n",
            "PLAIN=a b  # a comment\n",
            "HASH=a#b\n",
            "export SPACED = x\r\n",
            "SINGLE='lit \\n $HOME \\' # c'\n",
            "DOUBLE=\"x\\ny\\t\\\"q\\\" \\$ $$ # not a comment\" # a comment\n",
            "MULTI=\"one\n",
            "two\"\n",
            "UNQUOTED_ESC=a\\nb\n",
            "PRICE=5$$\n",
            "EMPTY=\n",
        );
        let env: BTreeMap<String, String> = parse_env_file(text).unwrap().into_iter().collect();
        assert_eq!(env["PLAIN"], "a b");
        assert_eq!(env["HASH"], "a#b");
        assert_eq!(env["SPACED"], "x");
        assert_eq!(env["SINGLE"], "lit \\n $HOME ' # c");
        assert_eq!(env["DOUBLE"], "x\ny\t\"q\" $ $ # not a comment");
        assert_eq!(env["MULTI"], "one\ntwo");
        assert_eq!(env["UNQUOTED_ESC"], "a\\nb");
        assert_eq!(env["PRICE"], "5$");
        assert_eq!(env["EMPTY"], "");
        assert_eq!(env.len(), 9);
    }

    #[test]
    fn env_file_values_that_compose_would_read_differently_are_refused() {
        for (text, line, why) in [
            ("A=1\nB=$HOME\n", 2, "single quotes"),
            ("A=\"${X}\"", 1, "single quotes"),
            ("A=\"x\" y\n", 1, "only a comment"),
            ("A=1\nB='open\nC=2\n", 2, "never closed"),
        ] {
            let e = parse_env_file(text).unwrap_err();
            assert_eq!(e.0, line, "{text:?}");
            assert!(e.1.contains(why), "{text:?}: {}", e.1);
        }
    }

    #[test]
    fn malformed_env_file_line_is_reported_with_its_number() {
        let e = parse_env_file("A=1\n\nnot a pair\n").unwrap_err();
        assert_eq!(e.0, 3);
        let e = parse_env_file("ghp_x/secret+token=x").unwrap_err();
        assert_eq!(e.0, 1);
        assert!(e.1.contains("not a variable name"), "{}", e.1);
        assert!(!e.1.contains("secret"), "the line is not echoed: {}", e.1);
    }

    #[test]
    fn the_system_policy_env_wins_over_every_other_level() {
        let at = |s: &str| s.to_owned();
        let user = Managed {
            env: vec![(("LEVEL".into(), "user-file".into()), at("u:1"))],
            files: vec![],
        };
        let system = Managed {
            env: vec![(("LEVEL".into(), "system".into()), at("s:1"))],
            files: vec![],
        };
        let (env, sources) = collect_levels(
            &[("LEVEL".into(), "host".into())],
            &["LEVEL".into()],
            &[&user, &system],
            &["LEVEL=flag".into()],
            &[],
        )
        .unwrap();
        assert_eq!(env["LEVEL"], "system");
        assert_eq!(sources["LEVEL"], "policy env (s:1)");
        let without = collect_levels(&[], &[], &[&user], &["LEVEL=flag".into()], &[]).unwrap();
        assert_eq!(
            without.0["LEVEL"], "flag",
            "the command line wins over the user's file"
        );
    }

    #[test]
    fn env_flag_without_value_points_to_pass_env() {
        let e = collect(&host(), &[], &["QUERY".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("--pass-env QUERY"), "{e}");
    }

    #[test]
    fn host_sockets_never_pass_not_even_by_glob_or_by_name() {
        let host = vec![
            ("SSH_AUTH_SOCK".to_owned(), "/run/user/1/ssh".to_owned()),
            ("DISPLAY".to_owned(), ":0".to_owned()),
            ("SHELL".to_owned(), "/bin/sh".to_owned()),
        ];
        let env = collect(&host, &["*".into()], &[], &[]).unwrap();
        assert_eq!(env.keys().collect::<Vec<_>>(), ["SHELL"]);
        let e = collect(&host, &[], &["DISPLAY=:1".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("never set"), "{e}");
        assert!(parse_env_file("DOCKER_HOST=unix:///x\n").is_err());
    }

    #[test]
    fn a_nul_in_an_env_file_value_is_refused_with_its_line() {
        let e = parse_env_file("A=1\nB=x\0LECTIC_INJECTED=evil\0C=y\n").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("NUL"), "{}", e.1);
    }

    #[test]
    fn the_environment_identity_sees_what_is_set_and_files_but_not_passed_values() {
        let none = identity(&[], &[], &[], &[]).unwrap();
        assert_eq!(none, None, "a plain call keeps its container and HOME");
        let id = |pass: &[&str], sets: &[&str]| {
            let pass: Vec<String> = pass.iter().map(|s| s.to_string()).collect();
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            identity(&pass, &[], &sets, &[]).unwrap()
        };
        assert_ne!(
            id(&[], &["TOKEN=a"]),
            id(&[], &["TOKEN=b"]),
            "values of --env"
        );
        assert_ne!(id(&[], &["TOKEN=a"]), id(&[], &["OTHER=a"]));
        assert_ne!(id(&["QUERY"], &[]), id(&["OTHER"], &[]));
        assert_ne!(id(&["QUERY"], &[]), None);
        let dir = crate::testutil::TempDir::new("env-id");
        let f = dir.join("secrets.env");
        std::fs::write(&f, "TOKEN=one\n").unwrap();
        let one = identity(&[], &[], &[], std::slice::from_ref(&f)).unwrap();
        std::fs::write(&f, "TOKEN=two\n").unwrap();
        let two = identity(&[], &[], &[], std::slice::from_ref(&f)).unwrap();
        assert_ne!(one, two, "an env file's contents");
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("LC_*", "LC_ALL"));
        assert!(glob_match("*", "ANY"));
        assert!(glob_match("A*B*C", "AxxBxxC"));
        assert!(glob_match("A?C", "ABC"));
        assert!(!glob_match("A?C", "AC"));
        assert!(!glob_match("LC_*", "XLC_ALL"));
        assert!(!glob_match("TERM", "TERMINAL"));
    }
}
