//! `--doctor`: checks what the sandbox needs, each failure with its fix.
//! Exit status 0 when nothing failed (warnings allowed), 1 otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::ExecVia;
use crate::config::Config;
use crate::fsutil;
use crate::store::Podman;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Check {
    name: &'static str,
    level: Level,
    detail: String,
    fix: String,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        level: Level::Ok,
        detail: detail.into(),
        fix: String::new(),
    }
}

fn bad(
    name: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        fix: fix.into(),
    }
}

pub fn run(cfg: &Config) -> i32 {
    let mut checks = vec![podman_version(cfg), nix_version(cfg), nix_store(cfg)];
    if cfg.rootless() {
        let user = crate::sys::user_name(cfg.uid);
        for (file, what) in [("/etc/subuid", "subuid"), ("/etc/subgid", "subgid")] {
            checks.push(sub_ids(Path::new(file), what, &user, cfg.uid));
        }
        for helper in ["newuidmap", "newgidmap"] {
            checks.push(id_mapper(helper));
        }
        checks.push(network_helpers());
    }
    if cfg.rootless() {
        checks.push(keyring_quota(cfg.uid));
    }
    checks.push(exec_agent(cfg));
    checks.push(system_policy(cfg));
    checks.push(mcp_servers(cfg));
    checks.extend(dirs(cfg));
    checks.extend(store(cfg));
    let failed = checks.iter().any(|c| c.level == Level::Fail);
    let value = json!({
        "ok": !failed,
        "checks": checks.iter().map(|c| json!({
            "name": c.name,
            "status": match c.level { Level::Ok => "ok", Level::Warn => "warn", Level::Fail => "fail" },
            "detail": c.detail,
            "fix": c.fix,
        })).collect::<Vec<_>>(),
    });
    super::emit(cfg, &value, render);
    i32::from(failed)
}

fn render(v: &Value) -> String {
    let mut out = String::new();
    for c in super::items(v, "checks") {
        let tag = match super::s(c, "status") {
            "ok" => "ok  ",
            "warn" => "warn",
            _ => "FAIL",
        };
        out += &format!("{tag}  {}: {}", super::s(c, "name"), super::s(c, "detail"));
        let fix = super::s(c, "fix");
        if !fix.is_empty() {
            out += &format!("; fix: {fix}");
        }
        out.push('\n');
    }
    out
}

/// Runs `cmd` for at most `limit`; its stdout and stderr, or why not.
fn probe(cmd: Command, limit: Duration) -> Result<(bool, String, String), String> {
    use crate::process::{Failure, Stderr, capture};
    match capture(cmd, Stderr::Capture, Some(limit)) {
        Ok(r) => Ok((
            r.status.success(),
            String::from_utf8_lossy(&r.stdout).trim().to_owned(),
            String::from_utf8_lossy(&r.stderr).trim().to_owned(),
        )),
        Err(Failure::Spawn(e)) => Err(e.to_string()),
        Err(Failure::TimedOut(limit)) => Err(format!("no answer within {}s", limit.as_secs())),
    }
}

/// The first `major.minor` in `text`.
fn version(text: &str) -> Option<(u32, u32)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|w| {
            let mut parts = w.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some((major, minor))
        })
}

/// `exe --version` against `min`; `why` says what needs it ("flakes
/// need"); VERSION in `install` is `min`.
fn tool_version(
    name: &'static str,
    exe: &str,
    option: &str,
    (min, why): ((u32, u32), &str),
    install: &str,
) -> Check {
    let mut cmd = Command::new(exe);
    cmd.arg("--version");
    match probe(cmd, Duration::from_secs(20)) {
        Err(e) => bad(
            name,
            Level::Fail,
            format!("cannot run `{exe}`: {e}"),
            format!("{install}, or name it with {option}"),
        ),
        Ok((_, out, _)) => match version(&out) {
            Some(v) if v >= min => ok(name, format!("{out} ({why} {}.{})", min.0, min.1)),
            _ => bad(
                name,
                Level::Fail,
                format!("{out:?} is too old ({why} {}.{})", min.0, min.1),
                install.replace("VERSION", &format!("{}.{}", min.0, min.1)),
            ),
        },
    }
}

fn podman_version(cfg: &Config) -> Check {
    tool_version(
        "podman",
        &cfg.podman_exe,
        "--podman-exe",
        ((4, 0), "the sandbox needs"),
        "install podman VERSION or newer (e.g. `apt install podman`)",
    )
}

/// Nix against what flakes and the build's nixpkgs need.
fn nix_version(cfg: &Config) -> Check {
    use crate::image::nixpkgs;
    let spec = &cfg.image;
    let need = nixpkgs::needs(spec.flake.as_deref(), spec.nixpkgs.as_deref())
        .filter(|n| n.version > nixpkgs::FLAKES_MIN_NIX);
    let (min, why) = match &need {
        Some(n) => (n.version, format!("{} needs", n.why)),
        None => (nixpkgs::FLAKES_MIN_NIX, "flakes need".into()),
    };
    let install = match &spec.nixpkgs {
        None if need.is_some() => {
            "install Nix VERSION or newer (https://nixos.org/download), or pass --nixpkgs REF naming a nixpkgs this Nix can evaluate (your registry's `nixpkgs`, say)"
        }
        _ => "install Nix VERSION or newer (https://nixos.org/download)",
    };
    tool_version("nix", &spec.nix_exe, "--nix-exe", (min, &why), install)
}

fn nix_store(cfg: &Config) -> Check {
    let mut cmd = Command::new(&cfg.image.nix_exe);
    cmd.args([
        "--extra-experimental-features",
        "nix-command",
        "store",
        "ping",
    ]);
    match probe(cmd, Duration::from_secs(20)) {
        Ok((true, _, _)) => ok("nix store", "reachable"),
        Ok((false, _, err)) => bad(
            "nix store",
            Level::Fail,
            first_line(&err),
            "start the Nix daemon (`systemctl start nix-daemon`) or check NIX_REMOTE",
        ),
        Err(e) => bad(
            "nix store",
            Level::Fail,
            e,
            "install Nix, or start its daemon",
        ),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("failed").to_owned()
}

/// The number of subordinate ids `file` gives `user` (by name or uid).
fn sub_id_count(text: &str, user: &str, uid: u32) -> u64 {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            (f.len() == 3 && (f[0] == user || f[0] == uid.to_string()))
                .then(|| f[2].parse::<u64>().unwrap_or(0))
        })
        .sum()
}

fn sub_ids(file: &Path, what: &'static str, user: &str, uid: u32) -> Check {
    let fix = format!(
        "`sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`, then `podman system migrate`"
    );
    let count = std::fs::read_to_string(file)
        .map(|t| sub_id_count(&t, user, uid))
        .unwrap_or(0);
    if count >= 65_536 {
        ok(
            what,
            format!("{count} ids for {user} in {}", file.display()),
        )
    } else {
        bad(
            what,
            Level::Fail,
            format!(
                "{count} ids for {user} in {} (65536 needed)",
                file.display()
            ),
            fix,
        )
    }
}

fn id_mapper(helper: &'static str) -> Check {
    let fix = "install the uidmap package (Debian, Ubuntu) or shadow-utils (Fedora, Arch)";
    let Some(path) = fsutil::on_path(helper.as_ref()) else {
        return bad(helper, Level::Fail, "not found on PATH", fix);
    };
    let setuid = std::fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o4000 != 0)
        .unwrap_or(false);
    if setuid || crate::sys::has_file_capabilities(&path) {
        ok(helper, path.display().to_string())
    } else {
        bad(
            helper,
            Level::Fail,
            format!(
                "{} is neither setuid root nor has file capabilities",
                path.display()
            ),
            "reinstall the uidmap/shadow-utils package",
        )
    }
}

/// `--allow-net` in rootless Podman 4 needs slirp4netns and /dev/net/tun.
fn network_helpers() -> Check {
    if fsutil::on_path("slirp4netns".as_ref()).is_none() {
        return bad(
            "network",
            Level::Warn,
            "slirp4netns not found: --allow-net will fail",
            "install slirp4netns",
        );
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => ok(
            "network",
            "slirp4netns and /dev/net/tun available for --allow-net",
        ),
        Err(e) => bad(
            "network",
            Level::Warn,
            format!("/dev/net/tun: {e}: --allow-net will fail"),
            "load the tun module (`modprobe tun`) and make /dev/net/tun usable (mode 0666)",
        ),
    }
}

/// runc makes a session keyring per container, counted against a per-user
/// quota (200 keys by default) that frees them only minutes later.
fn keyring_quota(uid: u32) -> Check {
    let text = std::fs::read_to_string("/proc/key-users").unwrap_or_default();
    match key_quota(&text, uid) {
        Some((used, max)) if used * 5 >= max * 4 => bad(
            "keyring quota",
            Level::Warn,
            format!(
                "{used} of {max} kernel keys in use: new containers fail with \"disk quota exceeded\" when it runs out"
            ),
            "`sudo sysctl -w kernel.keys.maxkeys=20000 kernel.keys.maxbytes=2000000`",
        ),
        Some((used, max)) => ok(
            "keyring quota",
            format!("{used} of {max} kernel keys in use"),
        ),
        None => ok("keyring quota", "no keys in use"),
    }
}

/// (keys in use, quota) of `uid` from /proc/key-users.
fn key_quota(text: &str, uid: u32) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.trim_start().split(':').next() == Some(&uid.to_string()))?;
    let (used, max) = line.split_whitespace().nth(3)?.split_once('/')?;
    Some((used.parse().ok()?, max.parse().ok()?))
}

/// Whether warm calls can go through the agent (a static binary).
fn exec_agent(cfg: &Config) -> Check {
    match (cfg.exec_via, crate::agent::binary::usable()) {
        (ExecVia::Podman, _) => ok(
            "exec agent",
            "off (--exec-via podman): warm calls use podman exec",
        ),
        (ExecVia::Agent, Ok(exe)) => ok(
            "exec agent",
            format!(
                "{} is static: warm calls go through the agent",
                exe.display()
            ),
        ),
        (ExecVia::Agent, Err(why)) => bad(
            "exec agent",
            Level::Warn,
            format!("{why}: warm calls fall back to podman exec (about 0.2 s each)"),
            "install the flake's package, or build with `cargo build --release` in a checkout (its .cargo/config.toml links statically)",
        ),
    }
}

/// Which system policy binds the calls (a broken one stops every call,
/// this one included, before any check runs).
fn system_policy(cfg: &Config) -> Check {
    match &cfg.system_policy {
        Some(p) => ok(
            "system policy",
            format!(
                "{} (root's; {} allow rule(s){})",
                p.path.display(),
                p.allow.len(),
                if p.project_roots.is_some() {
                    ", project roots"
                } else {
                    ""
                }
            ),
        ),
        None => ok(
            "system policy",
            format!("none ({} does not exist)", crate::policy::SYSTEM_PATH),
        ),
    }
}

/// Whether an MCP server's sandbox, which Lectic starts without LECTIC_*
/// and XDG_*, would read the policy file and use the cache this call does.
fn mcp_servers(cfg: &Config) -> Check {
    let sight = cfg.mcp.clone().unwrap_or_default();
    let shown = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or("no policy file".to_owned(), |p| p.display().to_string())
    };
    let mut differ = Vec::new();
    if let Some((here, there)) = &sight.config {
        differ.push(format!("{} instead of {}", shown(there), shown(here)));
    }
    if let Some((here, there)) = &sight.cache {
        differ.push(format!(
            "the cache {} instead of {}",
            there.display(),
            here.display()
        ));
    }
    if differ.is_empty() {
        return ok(
            "mcp servers",
            "their sandbox (no LECTIC_*, no XDG_*) sees the policy file and cache this call does",
        );
    }
    bad(
        "mcp servers",
        Level::Warn,
        format!(
            "an MCP server's sandbox (Lectic gives it no LECTIC_*, no XDG_*) would use {}",
            differ.join(" and ")
        ),
        "run `lectic-nix-sandbox --install-plugin` again (it names them in the sandbox line), or add --config/--cache to your own sandbox line",
    )
}

fn dirs(cfg: &Config) -> Vec<Check> {
    let cache = &cfg.paths.cache;
    let probe = cache.join(format!(".doctor-{}", std::process::id()));
    // Made and checked as a call makes them.
    let made = crate::store::open_cache(cfg)
        .and_then(|()| fsutil::write_atomic(&probe, b"ok"))
        .map(|()| {
            let _ = std::fs::remove_file(&probe);
        });
    let mut checks = vec![match made {
        Ok(()) => ok(
            "cache dir",
            format!(
                "{} is private and only you and root can change its path",
                cache.display()
            ),
        ),
        Err(e) => {
            return vec![bad(
                "cache dir",
                Level::Fail,
                e.to_string(),
                "set LECTIC_CACHE to a directory of yours that only you (and root) can change",
            )];
        }
    }];
    checks.push(match crate::store::run_dir(cfg) {
        Ok(run) if run.skipped.is_empty() => ok("run dir", run.path.display().to_string()),
        Ok(run) => bad(
            "run dir",
            Level::Warn,
            format!("{} ({})", run.path.display(), run.skipped.join("; ")),
            "nothing to do: the sandbox uses the run dir named, recorded in the cache",
        ),
        Err(e) => bad(
            "run dir",
            Level::Fail,
            e.to_string(),
            "set XDG_RUNTIME_DIR to a private directory of yours",
        ),
    });
    checks
}

/// Our store: its storage driver, and whether podman runs on it.
fn store(cfg: &Config) -> Vec<Check> {
    let podman = match Podman::open(cfg) {
        Ok(p) => p,
        Err(e) => {
            return vec![bad(
                "store",
                Level::Fail,
                first_line(&e.to_string()),
                "see the podman check above; run with --verbose for details",
            )];
        }
    };
    let driver = if podman.driver == "overlay" {
        ok(
            "storage driver",
            "overlay (for --flake images; our root filesystem runs from the Nix store)",
        )
    } else {
        bad(
            "storage driver",
            Level::Warn,
            format!(
                "{} (slower, more disk, for --flake images only: our root filesystem runs from the Nix store)",
                podman.driver
            ),
            "use a kernel with rootless overlay (5.13+) or install fuse-overlayfs, then remove podman-conf/storage.conf under the cache dir",
        )
    };
    let info = podman.output([
        "info",
        "--format",
        "{{.Host.CgroupsVersion}} {{.Host.OCIRuntime.Name}}",
    ]);
    let runs = match info {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let mut words = text.split_whitespace();
            let cgroups = words.next().unwrap_or("?").to_owned();
            let runtime = words.next().unwrap_or("?").to_owned();
            if cgroups == "v2" || !cfg.rootless() {
                ok(
                    "podman info",
                    format!("cgroups {cgroups}, runtime {runtime}"),
                )
            } else {
                bad(
                    "podman info",
                    Level::Warn,
                    format!(
                        "cgroups {cgroups}, runtime {runtime}: rootless containers get no memory or CPU limits (the pids limit holds through ulimit nproc instead)"
                    ),
                    "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)",
                )
            }
        }
        Ok(o) => bad(
            "podman info",
            Level::Fail,
            first_line(String::from_utf8_lossy(&o.stderr).trim()),
            "run `podman info` as this user and fix what it reports",
        ),
        Err(e) => bad("podman info", Level::Fail, e.to_string(), "install podman"),
    };
    vec![driver, runs]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_tools_print() {
        assert_eq!(version("podman version 4.3.1"), Some((4, 3)));
        assert_eq!(version("nix (Nix) 2.8.0"), Some((2, 8)));
        assert_eq!(version("nothing"), None);
    }

    #[test]
    fn key_quota_is_read_for_the_user() {
        let text =
            "    0:    10 9/9 4/1000000 118/25000000\n 1001:   200 200/200 200/200 1018/20000\n";
        assert_eq!(key_quota(text, 1001), Some((200, 200)));
        assert_eq!(key_quota(text, 0), Some((4, 1_000_000)));
        assert_eq!(key_quota(text, 7), None);
    }

    #[test]
    fn sub_ids_count_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:65536\n";
        assert_eq!(sub_id_count(text, "alice", 1000), 65_536);
        assert_eq!(sub_id_count(text, "carol", 1001), 1000);
        assert_eq!(sub_id_count(text, "dave", 1002), 0);
    }
}
