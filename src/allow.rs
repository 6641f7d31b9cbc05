//! The system policy's `allow` rules applied to a call's options: each
//! option that relaxes the sandbox (see `policy::ALLOW_KEYS`) is judged by
//! its final value, whichever layer (system file, user file, command line)
//! set it, so nothing below the system policy can loosen it. A refusal is
//! one line naming the option, the rule's file and line, and what to do.

use std::path::{Path, PathBuf};

use crate::cli::Cli;
use crate::env::glob_match;
use crate::error::{Error, Result};
use crate::policy::{Allow, Policy, Rule};
use crate::proxy::rules::Pattern;
use crate::shellwords;

/// An option whose value a rule set or capped (for `--show-config`).
#[derive(Debug, Clone)]
pub struct Capped {
    /// The long option, `--name`.
    pub option: String,
    /// The value the rule chose, when it chose one.
    pub value: Option<String>,
    /// The rule, "FILE:LINE (allow.KEY)".
    pub source: String,
}

/// Refuses `cli` if it breaks a rule of `system`; a program option left at
/// its default under an allowlist becomes the list's first entry (the
/// default is looked up on the user's PATH, which the rule is there to
/// pin). Returns every option a rule governs.
pub fn enforce(cli: &mut Cli, system: &Policy) -> Result<Vec<Capped>> {
    let mut capped = Vec::new();
    for rule in &system.rules() {
        let source = if rule.line == 0 {
            format!(
                "{}, which does not allow {} (allow.{}: true or a list of words would)",
                system.path.display(),
                rule.key,
                rule.key
            )
        } else {
            format!(
                "{}:{} (allow.{})",
                system.path.display(),
                rule.line,
                rule.key
            )
        };
        let option = crate::policy::flag_of(rule.key);
        let refuse = |what: &str| {
            Error::usage(format!(
                "{option}{what}: not allowed by the system policy ({source}){}; leave it out, or ask your administrator",
                match &rule.allow {
                    Allow::Only(list) => format!(", which allows only {}", list.join(", ")),
                    _ => String::new(),
                }
            ))
        };
        let mut value = None;
        match rule.key {
            "podman_extra" | "nix_extra" => {
                let given = if rule.key == "podman_extra" {
                    &cli.podman_extra
                } else {
                    &cli.nix_extra
                };
                let mut words = Vec::new();
                for s in given {
                    words.extend(shellwords::split(s)?);
                }
                for w in &words {
                    if !permits(&rule.allow, |v| v == w) {
                        return Err(refuse(&format!(" {w}")));
                    }
                }
            }
            "flake" | "nixpkgs" => {
                let given = if rule.key == "flake" {
                    &cli.flake
                } else {
                    &cli.nixpkgs
                };
                // `*` matches any run, `..` too: a reference that climbs
                // out of what a pattern names is refused outright.
                let climbs = |f: &str| f.split(['/', '?', '&', '=', ':']).any(|part| part == "..");
                if let Some(f) = given
                    && (!permits(&rule.allow, |p| glob_match(p, f)) || climbs(f))
                {
                    return Err(refuse(&format!(" {f}")));
                }
            }
            "cap_add" => {
                for cap in &cli.cap_add {
                    if !permits(&rule.allow, |c| cap_name(c) == *cap) {
                        return Err(refuse(&format!(" {cap}")));
                    }
                }
            }
            "podman_exe" | "nix_exe" => {
                let (given, default) = if rule.key == "podman_exe" {
                    (&mut cli.podman_exe, "podman")
                } else {
                    (&mut cli.nix_exe, "nix")
                };
                match &rule.allow {
                    Allow::Only(list) if given == default && !list.is_empty() => {
                        given.clone_from(&list[0]);
                        value = Some(list[0].clone());
                    }
                    // The default, found where only root installs
                    // programs, not on the user's PATH.
                    Allow::No if given == default => {
                        let found = SYSTEM_PATH
                            .iter()
                            .map(|d| Path::new(d).join(default))
                            .find(|p| p.is_file())
                            .ok_or_else(|| {
                                Error::usage(format!(
                                    "{option}: the system policy ({source}) wants the system's {default}, and none is in {}; ask your administrator",
                                    SYSTEM_PATH.join(", ")
                                ))
                            })?;
                        *given = found.display().to_string();
                        value = Some(given.clone());
                    }
                    Allow::No => return Err(refuse(&format!(" {given}"))),
                    Allow::Only(list) if !list.contains(given) => {
                        return Err(refuse(&format!(" {given}")));
                    }
                    _ => {}
                }
            }
            // A list is checked where the file is read (Config::build,
            // through `check_packages_file`), on the path it reads.
            "nix_packages_file" => {
                if rule.allow == Allow::No
                    && let Some(file) = &cli.nix_packages_file
                {
                    return Err(refuse(&format!(" {}", file.display())));
                }
            }
            // The directories of an allowlist widen the project roots for
            // --volume; `false` forbids --volume.
            "volumes" => {
                if matches!(rule.allow, Allow::No)
                    && let Some(v) = cli.volumes.first()
                {
                    return Err(refuse(&format!(" {v}")));
                }
            }
            // Each pattern must be within one the rule lists (a bad one
            // is named where the call's patterns are read).
            "allow_hosts" => {
                for given in &cli.allow_hosts {
                    let Ok(p) = Pattern::parse(given) else {
                        continue;
                    };
                    let covered = |r: &String| Pattern::parse(r).is_ok_and(|r| r.covers(&p));
                    if !permits(&rule.allow, covered) {
                        return Err(refuse(&format!(" {given}")));
                    }
                }
            }
            "allow_setuid" | "writable_root" | "allow_net" | "nix_develop" => {
                let on = match rule.key {
                    "allow_setuid" => cli.allow_setuid,
                    "writable_root" => cli.writable_root,
                    "allow_net" => cli.allow_net,
                    _ => cli.nix_develop || cli.auto_nix_develop,
                };
                if on && rule.allow == Allow::No {
                    let what = if rule.key == "nix_develop" && !cli.nix_develop {
                        " (--auto-nix-develop)"
                    } else {
                        ""
                    };
                    return Err(refuse(what));
                }
            }
            other => unreachable!("policy::ALLOW_KEYS has no {other}"),
        }
        capped.push(Capped {
            option,
            value,
            source: format!("capped by {source}"),
        });
    }
    Ok(capped)
}

/// Refuses the packages file `given`, resolved as `real`, unless the
/// system policy's `nix_packages_file` list has a directory holding it.
pub fn check_packages_file(system: &Policy, given: &Path, real: &Path) -> Result<()> {
    let Some(Rule {
        allow: Allow::Only(dirs),
        line,
        ..
    }) = system.rule("nix_packages_file")
    else {
        return Ok(());
    };
    if dirs
        .iter()
        .any(|d| real.starts_with(resolved(Path::new(d))))
    {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--nix-packages-file {}: not allowed by the system policy ({}:{line} (allow.nix_packages_file)), which allows only files in {}; leave it out, or ask your administrator",
        given.display(),
        system.path.display(),
        dirs.join(", ")
    )))
}

/// Directories outside the project roots that `--volume` may mount.
pub fn volume_dirs(system: Option<&Policy>) -> Vec<PathBuf> {
    match system.and_then(|s| s.rule("volumes")) {
        Some(Rule {
            allow: Allow::Only(dirs),
            ..
        }) => dirs.iter().map(|d| resolved(Path::new(d))).collect(),
        _ => vec![],
    }
}

/// Where only root installs programs.
pub const SYSTEM_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/run/current-system/sw/bin",
];

fn permits(allow: &Allow, matches: impl Fn(&String) -> bool) -> bool {
    match allow {
        Allow::Any => true,
        Allow::No => false,
        Allow::Only(list) => list.iter().any(matches),
    }
}

/// A capability as `--cap-add` spells it once parsed: CAP_NAME.
fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// `p` with symlinks and `..` resolved, as far as it exists.
fn resolved(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| crate::fsutil::lexical(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn system(text: &str) -> Policy {
        Policy::parse(
            text,
            Path::new("/etc/lectic/nix-sandbox.yaml"),
            "u",
            None,
            crate::policy::Layer::System,
        )
        .unwrap()
    }

    fn judge(text: &str, args: &[&str]) -> Result<Cli> {
        let mut cli = Cli::try_parse_from(["lns"].iter().chain(args).chain(&["true"])).unwrap();
        enforce(&mut cli, &system(text)).map(|_| cli)
    }

    #[test]
    fn each_relaxing_option_is_judged_by_its_rule() {
        let rules = "allow:\n  allow_net: false\n  cap_add: [net_raw]\n  podman_extra: [--security-opt=label=disable]\n  flake: ['path:/srv/flakes/*']\n  podman_exe: [/usr/bin/podman]\n  nix_develop: false\n  volumes: false\n  allow_hosts: ['*.pythonhosted.org', files.pypi.org]\n";
        let refused = [
            vec!["--allow-net"],
            vec!["--cap-add", "SYS_ADMIN"],
            vec!["--podman-extra", "--privileged"],
            vec![
                "--podman-extra",
                "--security-opt=label=disable --volume=/:/host",
            ],
            vec!["--flake", "path:/tmp/evil"],
            vec!["--podman-exe", "/tmp/fake-podman"],
            vec!["--auto-nix-develop"],
            vec!["--volume", "/srv:/srv"],
            vec!["--allow-host", "example.com"],
            vec!["--allow-host", "*.pypi.org"],
            vec!["--allow-host", "files.pypi.org:22"],
        ];
        for args in refused {
            let e = judge(rules, &args).unwrap_err().to_string();
            assert!(
                e.contains("not allowed by the system policy (/etc/lectic/nix-sandbox.yaml:"),
                "{args:?}: {e}"
            );
        }
        let cli = judge(
            rules,
            &[
                "--cap-add",
                "NET_RAW",
                "--podman-extra",
                "--security-opt=label=disable",
                "--flake",
                "path:/srv/flakes/a",
                "--allow-host",
                "files.pythonhosted.org",
                "--allow-host",
                "files.pypi.org:443",
            ],
        )
        .unwrap();
        assert_eq!(
            cli.podman_exe, "/usr/bin/podman",
            "the default is pinned to the list"
        );
    }
}
