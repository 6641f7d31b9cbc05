//! Where each option's value comes from, for `--show-config`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, parser::ValueSource};

use crate::allow;
use crate::cli::Cli;

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
pub(super) fn given_options(args: &[OsString]) -> BTreeSet<String> {
    let Ok(m) = Cli::command().try_get_matches_from(args) else {
        return Default::default();
    };
    Cli::command()
        .get_arguments()
        .filter(|a| m.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// The option a word names: `--worktree=NAME` is `--worktree`.
pub(super) fn long_of_word(word: &str) -> &str {
    word.split_once('=').map_or(word, |(long, _)| long)
}

/// Options shown on the line of another: (hidden, shown on).
pub(super) const SHOWN_WITH: &[(&str, &str)] = &[
    ("no_keep_warm", "keep_warm"),
    ("warm_ttl_seconds", "warm_ttl"),
];

/// Every option's value in `m` (parsed from the files' options first, then
/// the user's, whose long options are `user`; empty without a file) and its
/// source: each file and line that gave it, the command line, or the
/// default; and the system policy's rule where it set or
/// capped the value (`capped`). Flags are booleans, repeatable options
/// lists, unset options null (see `Config::build` for the defaults that
/// depend on the call).
pub(super) fn settings(
    m: &ArgMatches,
    user: &BTreeSet<String>,
    from_files: &[(Vec<String>, String)],
    capped: &[allow::Capped],
) -> Vec<Setting> {
    use clap::ArgAction;
    use serde_json::Value as J;
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
                .filter(|(fa, _)| {
                    fa.first()
                        .is_some_and(|f| longs.iter().any(|l| long_of_word(f) == l))
                })
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
pub(super) fn fill_defaults(settings: &mut [Setting], workdir: &Path, ttl: Duration) {
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
