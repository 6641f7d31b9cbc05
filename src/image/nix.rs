//! `nix build` of the image. Works with Nix 2.8 (Debian) and current Nix:
//! flags both know, and the store path parsed from `--json`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::config::ImageSpec;
use crate::error::{Error, Result};
use crate::verbose;

use super::flake::EXTRA_PACKAGES;

/// Builds `installable` and returns its output path, kept in the store by
/// the GC root `out_link` (replaced if there was one).
pub fn build(spec: &ImageSpec, installable: &str, out_link: &Path) -> Result<String> {
    let mut cmd = flake_command(spec, "build");
    cmd.args(["--json", "--out-link"])
        .arg(out_link)
        .args(&spec.nix_extra)
        .arg(installable);
    let (ok, stdout, log) = run(&spec.nix_exe, cmd)?;
    if !ok {
        return Err(build_error(spec, installable, &log));
    }
    parse_out_path(&stdout).ok_or_else(|| Error::Nix {
        message: format!(
            "`nix build {installable}` did not print one output path; is `containerImage` a package, and does --nix-extra name no other installable?"
        ),
        log: String::from_utf8_lossy(&stdout).into_owned(),
    })
}

/// `nix SUB` on a flake, with our nixpkgs override.
fn flake_command(spec: &ImageSpec, sub: &str) -> Command {
    let mut cmd = Command::new(&spec.nix_exe);
    cmd.args(["--extra-experimental-features", "nix-command flakes"])
        .args([sub, "--no-write-lock-file"]);
    if let Some(nixpkgs) = &spec.nixpkgs {
        cmd.args(["--override-input", "nixpkgs", nixpkgs]);
    }
    cmd
}

/// Whether the flake `reference` has a `containerRootfs` package for
/// this system (else its `containerImage` is built).
pub fn has_rootfs(spec: &ImageSpec, reference: &str) -> Result<bool> {
    let mut cmd = flake_command(spec, "eval");
    cmd.args(["--json", "--apply", "p: p ? containerRootfs"])
        .arg(format!("{reference}#packages.{}", super::record::system()));
    let (ok, stdout, log) = run(&spec.nix_exe, cmd)?;
    if !ok {
        return Err(Error::Nix {
            message: format!(
                "cannot read the packages of --flake {reference}; is it a flake with packages.{}?",
                super::record::system()
            ),
            log: tail_lines(&log, 25),
        });
    }
    Ok(stdout.trim_ascii() == b"true")
}

/// The closure of `path` (every store path it needs, itself included)
/// and its size in the store.
pub fn closure(nix_exe: &str, path: &str) -> Result<(Vec<String>, u64)> {
    let mut cmd = Command::new(nix_exe);
    cmd.args([
        "--extra-experimental-features",
        "nix-command",
        "path-info",
        "--json",
        "--recursive",
        path,
    ]);
    let (ok, stdout, log) = run(nix_exe, cmd)?;
    let parsed = ok.then(|| parse_path_info(&stdout)).flatten();
    parsed.ok_or_else(|| Error::Nix {
        message: format!("cannot list the closure of {path} (`nix path-info --recursive`)"),
        log: tail_lines(&log, 25),
    })
}

/// `nix path-info --json` output: a list of `{path, narSize}` (Nix before
/// 2.19) or an object keyed by path (later).
fn parse_path_info(json: &[u8]) -> Option<(Vec<String>, u64)> {
    let v: Value = serde_json::from_slice(json).ok()?;
    let items: Vec<(String, u64)> = match &v {
        Value::Array(a) => a
            .iter()
            .map(|i| {
                Some((
                    i.get("path")?.as_str()?.to_owned(),
                    i.get("narSize")?.as_u64()?,
                ))
            })
            .collect::<Option<_>>()?,
        Value::Object(o) => o
            .iter()
            .map(|(p, i)| Some((p.clone(), i.get("narSize")?.as_u64()?)))
            .collect::<Option<_>>()?,
        _ => return None,
    };
    if items.is_empty() || !items.iter().all(|(p, _)| is_store_path(p)) {
        return None;
    }
    let bytes = items.iter().map(|(_, n)| n).sum();
    let mut paths: Vec<String> = items.into_iter().map(|(p, _)| p).collect();
    paths.sort();
    Some((paths, bytes))
}

/// `/nix/store/<name>`: one component, no `..`.
pub fn is_store_path(p: &str) -> bool {
    p.strip_prefix("/nix/store/")
        .is_some_and(|n| !n.is_empty() && !n.contains('/') && !n.starts_with('.'))
}

/// Runs a nix command; returns whether it succeeded, its stdout, and its
/// stderr. Nix's progress is for a person at a terminal; under Lectic our
/// stderr is the model's, so it is kept and shown only if nix fails.
pub(crate) fn run(program: &str, cmd: Command) -> Result<(bool, Vec<u8>, String)> {
    use crate::process::{Failure, Stderr, capture};
    verbose!("running {cmd:?}");
    let stderr = if std::io::stderr().is_terminal() {
        Stderr::Inherit
    } else {
        Stderr::Capture
    };
    let r = capture(cmd, stderr, None).map_err(|f| Error::Spawn {
        program: program.to_owned(),
        source: match f {
            Failure::Spawn(e) => e,
            Failure::TimedOut(_) => std::io::ErrorKind::TimedOut.into(),
        },
    })?;
    let log = without_lock_file_warning(&String::from_utf8_lossy(&r.stderr));
    Ok((r.status.success(), r.stdout, log))
}

/// `log` without Nix's "not writing modified lock file" block, which our
/// own `--override-input` with `--no-write-lock-file` causes every time.
fn without_lock_file_warning(log: &str) -> String {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in log.lines() {
        if line.starts_with("warning: not writing modified lock file") {
            in_block = true;
            continue;
        }
        if in_block && (line.starts_with(char::is_whitespace) || line.starts_with('•')) {
            continue;
        }
        in_block = false;
        out.push(line);
    }
    out.join("\n")
}

/// The output path in `nix build --json` output, which must have built
/// one thing: ours (`--nix-extra` could name another installable).
fn parse_out_path(json: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(json).ok()?;
    let [built] = v.as_array()?.as_slice() else {
        return None;
    };
    let outputs = built.get("outputs")?.as_object()?;
    let path = outputs.get("out").or_else(|| outputs.values().next())?;
    Some(path.as_str()?.to_owned())
}

fn build_error(spec: &ImageSpec, installable: &str, log: &str) -> Error {
    let tail = tail_lines(log, 25);
    if let Some(needed) = super::nixpkgs::required_by_abort(log) {
        let have = Command::new(&spec.nix_exe)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        return Error::Nix {
            message: format!(
                "the nixpkgs of this build needs Nix >= {needed}, and {} is older; install a newer Nix (https://nixos.org/download), or pass --nixpkgs REF naming a nixpkgs this Nix can evaluate",
                if have.is_empty() { "this Nix" } else { &have }
            ),
            log: tail,
        };
    }
    if let Some((file, _)) = &spec.packages_file {
        // Our packages-file loader's own messages: one line, naming the file.
        if let Some(msg) = log
            .lines()
            .find_map(|l| l.split("lectic-nix-sandbox: ").nth(1))
        {
            return Error::usage(format!(
                "--nix-packages-file {}: {}",
                file.display(),
                msg.trim()
            ));
        }
        if log.contains(EXTRA_PACKAGES) {
            return Error::Nix {
                message: format!(
                    "--nix-packages-file {} does not evaluate; fix it (a copy is read, so it may not import relative paths)",
                    file.display()
                ),
                log: without_source_lines(&rename_copy(&tail, file)),
            };
        }
    }
    let with = match &spec.packages_file {
        Some((file, _)) => format!(" (with --nix-packages-file {})", file.display()),
        None => String::new(),
    };
    Error::Nix {
        message: format!("building the image with `nix build {installable}`{with} failed"),
        log: tail,
    }
}

/// `log` without the lines where Nix quotes the source (`  3| text` and
/// the caret line below it): the headline already names file and line,
/// and a file given by mistake may hold a secret.
fn without_source_lines(log: &str) -> String {
    log.lines()
        .filter(|l| {
            let t = l.trim_start();
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            !(t.starts_with('|') || (digits > 0 && t[digits..].starts_with('|')))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Shows the user's packages file where Nix names our copy of it.
fn rename_copy(log: &str, file: &Path) -> String {
    log.lines()
        .map(|line| match line.find(EXTRA_PACKAGES) {
            Some(end) => {
                let start = line[..end].rfind(['\'', ' ', '«']).map_or(0, |i| i + 1);
                format!(
                    "{}{}{}",
                    &line[..start],
                    file.display(),
                    &line[end + EXTRA_PACKAGES.len()..]
                )
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_path_from_old_and_new_nix_json() {
        let v28 = br#"[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/b-img"}}]"#;
        assert_eq!(parse_out_path(v28).as_deref(), Some("/nix/store/b-img"));
        let newer = br#"[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/c"},"startTime":1,"stopTime":2}]"#;
        assert_eq!(parse_out_path(newer).as_deref(), Some("/nix/store/c"));
        assert_eq!(parse_out_path(b"[]"), None);
        let two =
            br#"[{"outputs":{"out":"/nix/store/evil"}},{"outputs":{"out":"/nix/store/ours"}}]"#;
        assert_eq!(parse_out_path(two), None, "another installable came along");
        assert_eq!(parse_out_path(b"garbage"), None);
    }

    #[test]
    fn closures_are_read_from_old_and_new_path_info_json() {
        let old =
            br#"[{"path":"/nix/store/b-x","narSize":3},{"path":"/nix/store/a-y","narSize":4}]"#;
        assert_eq!(
            parse_path_info(old),
            Some((vec!["/nix/store/a-y".into(), "/nix/store/b-x".into()], 7))
        );
        let new = br#"{"/nix/store/a-y":{"narSize":4}}"#;
        assert_eq!(
            parse_path_info(new),
            Some((vec!["/nix/store/a-y".into()], 4))
        );
        assert_eq!(parse_path_info(br#"[{"path":"/etc","narSize":1}]"#), None);
        assert_eq!(
            parse_path_info(br#"[{"path":"/nix/store/../x","narSize":1}]"#),
            None
        );
        assert_eq!(parse_path_info(b"[]"), None);
    }

    #[test]
    fn our_own_lock_file_warning_is_left_out() {
        let log = "warning: not writing modified lock file of flake 'path:/c':\n\u{2022} Updated input 'nixpkgs':\n    'github:NixOS/nixpkgs/0726' (2026-04-22)\n  \u{2192} 'path:/f' (2026-11-29)\nerror: undefined variable 'pkgs'\n\n       at /w/p.nix:1:3:\n";
        let kept = without_lock_file_warning(log);
        assert!(
            kept.starts_with("error: undefined variable 'pkgs'"),
            "{kept}"
        );
        assert_eq!(
            crate::error::cause_of(&kept).as_deref(),
            Some("undefined variable 'pkgs' (at /w/p.nix:1:3)")
        );
    }

    #[test]
    fn nix_quoting_the_source_is_left_out() {
        let log = "error: undefined variable 'tok'\n       at /x.nix:1:1:\n\n            1| tok\n             | ^\n";
        let shown = without_source_lines(log);
        assert!(
            !shown.contains("1| tok") && !shown.contains(" | ^"),
            "{shown}"
        );
        assert!(shown.contains("at /x.nix:1:1:"), "{shown}");
    }

    #[test]
    fn nix_errors_about_the_copy_name_the_users_file() {
        let log = "error: syntax error, unexpected ']'\n       at /nix/store/abc-source/nix/extra-packages.nix:3:1:";
        let shown = rename_copy(log, Path::new("/home/u/pkgs.nix"));
        assert!(shown.contains("at /home/u/pkgs.nix:3:1:"), "{shown}");
    }
}
