//! `--allow-host`: the filtering proxy, end to end. Servers of the test on
//! the host's loopback, names for them in /etc/hosts (added by
//! `scripts/test-hosts`, which `scripts/test` runs), and the fixture's
//! curl (the host's, packaged with its libraries) inside; rootful and
//! rootless, through the agent, through `podman exec`, and one-shot.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, ToSocketAddrs};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The names `scripts/test-hosts` gives 127.0.0.1.
const NAMES: [&str; 3] = [
    "allowed.lns.test",
    "sub.allowed.lns.test",
    "denied.lns.test",
];

/// An HTTP server on the host's loopback that answers every request with
/// `served PATH` and remembers the paths it was asked for.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        for name in NAMES {
            let found = (name, 80).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
            assert!(
                found
                    .as_ref()
                    .is_ok_and(|a| a.iter().all(|a| a.ip().is_loopback())),
                "{name} must name 127.0.0.1 in /etc/hosts: run `scripts/test-hosts add` (scripts/test does): {found:?}"
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    log.lock().unwrap().push(path.clone());
                    // Which site the origin was asked for, where it matters.
                    let body = match head.lines().find_map(|l| l.strip_prefix("Host: ")) {
                        Some(host) if path == "/fronted" => format!("served {path} for {host}\n"),
                        _ => format!("served {path}\n"),
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Server { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The warm container of `sb` whose allowlist has `pattern`, from --status.
fn warm_with(sb: &Sandbox, pattern: &str) -> Value {
    let v = json(&sb.run(&["--status", "--json"]));
    v["warm"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| {
            w["allow_hosts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p == pattern))
        })
        .unwrap_or_else(|| panic!("no warm container allows {pattern}: {v}"))
        .clone()
}

fn proxy_pid(sb: &Sandbox, pattern: &str) -> Option<u32> {
    warm_with(sb, pattern)["proxy"]["pid"]
        .as_str()
        .map(|p| p.parse().unwrap())
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Runs `script` under `sh -c` with our options first.
fn sh(sb: &Sandbox, options: &[&str], script: &str) -> Output {
    let mut args = options.to_vec();
    args.extend(["sh", "-c", script]);
    let mut cmd = sb.command(&args);
    cmd.stderr(Stdio::piped());
    run_bounded(cmd, None)
}

/// Allowed over plain HTTP, CONNECT and SOCKS5; a name not on the list,
/// over each, gets 403 (SOCKS: "not allowed") with a body that names the
/// option, and a log line; nothing of it reaches the server.
fn allowlist_decides(mode: Mode, one_shot: bool) {
    let server = Server::start();
    let p = server.port;
    let sb = Sandbox::new(
        mode,
        if one_shot {
            "proxy-once"
        } else {
            "proxy-decides"
        },
    );
    let (allowed, wildcard, address) = (
        format!("allowed.lns.test:{p}"),
        format!("*.allowed.lns.test:{p}"),
        format!("127.0.0.1:{p}"),
    );
    let mut options = vec![
        "--allow-host",
        &allowed,
        "--allow-host",
        &wildcard,
        "--allow-host",
        &address,
        "--verbose",
    ];
    if one_shot {
        options.push("--no-keep-warm");
    }
    let script = format!(
        "curl -sS http://allowed.lns.test:{p}/plain
curl -sS -p http://allowed.lns.test:{p}/connect
curl -sS --socks5-hostname 127.0.0.1:3128 http://sub.allowed.lns.test:{p}/socks
env -u http_proxy -u HTTP_PROXY curl -sS http://sub.allowed.lns.test:{p}/all-proxy
curl -sS -w ' %{{http_code}}\\n' http://denied.lns.test:{p}/denied-plain
curl -sS -p http://denied.lns.test:{p}/denied-connect; echo connect $?
curl -sS --socks5-hostname 127.0.0.1:3128 http://denied.lns.test:{p}/denied-socks; echo socks $?
curl -sS -w ' %{{http_code}}\\n' http://lns.test:{p}/unresolvable-parent
curl -sS -H 'Host: denied.lns.test:{p}' http://allowed.lns.test:{p}/fronted
printf 'GET http://allowed.lns.test:{p}/split HTTP/1.1\\r\\nHost: q\\nforged line\\r\\n\\r\\n' | nc 127.0.0.1 3128 | head -1
printf '\\005\\001\\000\\005\\001\\000\\003\\010y\\nforged\\000\\120' | nc 127.0.0.1 3128 >/dev/null
"
    );
    let o = sh(&sb, &options, &script);
    let out = stdout(&o);
    for path in ["plain", "connect", "socks", "all-proxy"] {
        assert!(
            out.contains(&format!("served /{path}\n")),
            "{path}: {out}\n{}",
            stderr(&o)
        );
    }
    assert!(
        out.contains(&format!(
            "lectic-nix-sandbox refused denied.lns.test:{p}: not on the allowlist; allow it with --allow-host denied.lns.test:{p} (or allow_hosts: in the policy file)\n 403\n"
        )),
        "{out}"
    );
    assert!(out.contains("connect 56\n"), "CONNECT refused: {out}");
    assert!(!out.contains("socks 0\n"), "SOCKS refused: {out}");
    // The Host header names the site that was judged, not another one on
    // the same server; a header with a lone LF is not read at all.
    assert!(
        out.contains(&format!("served /fronted for allowed.lns.test:{p}\n")),
        "{out}"
    );
    assert!(out.contains("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    // Names are judged before anything is resolved.
    assert!(
        out.contains(&format!("refused lns.test:{p}: not on the allowlist")),
        "{out}"
    );
    let seen: HashSet<String> = server.seen().into_iter().collect();
    let expected: HashSet<String> = ["/plain", "/connect", "/socks", "/all-proxy", "/fronted"]
        .map(String::from)
        .into();
    assert_eq!(seen, expected, "only allowed requests reach the server");
    // The refusals, on the call's stderr with --verbose...
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "the proxy refused denied.lns.test:{p}: not on the allowlist"
        )),
        "{err}"
    );
    if !one_shot {
        // ...and in the container's log, which --status shows.
        let w = warm_with(&sb, &allowed);
        let refused: Vec<&str> = w["proxy"]["refused"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            refused
                .iter()
                .filter(|l| l.contains(&format!("refused denied.lns.test:{p}")))
                .count()
                == 3,
            "{refused:?}"
        );
        let text = ok(&sb.run(&["--status"]));
        assert!(
            text.contains(&format!(
                "network through the proxy to {allowed}, {wildcard}, {address}"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("refused denied.lns.test:{p}")),
            "{text}"
        );
        // What the command asked for cannot make a line of its own.
        assert!(
            text.contains("refused y\\nforged:80: not a host name"),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("forged")),
            "{text}"
        );
    }
}

each_path!(
    an_allowed_name_is_reached_and_others_refused_over_http_connect_and_socks,
    |mode| {
        allowlist_decides(mode, false);
    }
);

both_modes!(a_one_shot_call_has_the_proxy_too, |mode| {
    allowlist_decides(mode, true);
});

both_modes!(a_wildcard_matches_subdomains_and_not_its_parent, |mode| {
    let server = Server::start();
    let p = server.port;
    let sb = Sandbox::new(mode, "proxy-wildcard");
    let (wildcard, address) = (format!("*.allowed.lns.test:{p}"), format!("127.0.0.1:{p}"));
    let o = sh(
        &sb,
        &["--allow-host", &wildcard, "--allow-host", &address],
        &format!(
            "curl -sS http://sub.allowed.lns.test:{p}/sub; curl -sS -w ' %{{http_code}}\\n' http://allowed.lns.test:{p}/parent"
        ),
    );
    let out = stdout(&o);
    assert!(out.contains("served /sub\n"), "{out}");
    assert!(
        out.contains(&format!(
            "refused allowed.lns.test:{p}: not on the allowlist"
        )) && out.ends_with(" 403\n"),
        "{out}"
    );
    assert_eq!(server.seen(), ["/sub"]);
});

both_modes!(
    an_allowed_name_that_resolves_to_loopback_is_refused_unless_its_address_is_allowed,
    |mode| {
        let server = Server::start();
        let p = server.port;
        let sb = Sandbox::new(mode, "proxy-private");
        let allowed = format!("allowed.lns.test:{p}");
        let script = format!(
            "curl -sS -w ' %{{http_code}}\\n' http://allowed.lns.test:{p}/by-name
env -u NO_PROXY -u no_proxy curl -sS -w ' %{{http_code}}\\n' http://127.0.0.1:{p}/by-address
curl -sS -w ' %{{http_code}}\\n' http://169.254.169.254/latest/meta-data/
curl -sS -p http://allowed.lns.test:{p}/tunnel; echo connect $?"
        );
        let o = sh(&sb, &["--allow-host", &allowed], &script);
        let out = stdout(&o);
        assert!(
        out.contains(&format!(
            "refused allowed.lns.test:{p}: it resolves to 127.0.0.1, a loopback address; allow it with --allow-host 127.0.0.1:{p}"
        )),
        "{out}"
    );
        assert!(
            out.contains(&format!(
                "refused 127.0.0.1:{p}: an address that is not on the allowlist"
            )),
            "{out}"
        );
        assert!(out.contains("refused 169.254.169.254:80"), "{out}");
        assert!(out.contains("connect 56\n"), "{out}");
        assert_eq!(out.matches(" 403\n").count(), 3, "{out}");
        assert!(server.seen().is_empty(), "{:?}", server.seen());
        // Allowed explicitly, the address is reached by name and by itself.
        let address = format!("127.0.0.1:{p}");
        let o = sh(
            &sb,
            &["--allow-host", &allowed, "--allow-host", &address],
            &script,
        );
        let out = stdout(&o);
        assert!(
            out.contains("served /by-name\n 200\n") && out.contains("served /by-address\n 200\n"),
            "{out}"
        );
        assert!(out.contains("served /tunnel\nconnect 0\n"), "{out}");
        assert!(
            out.contains("refused 169.254.169.254:80"),
            "metadata stays shut: {out}"
        );
    }
);

both_modes!(without_the_proxy_nothing_leaves_the_container, |mode| {
    let server = Server::start();
    let p = server.port;
    let sb = Sandbox::new(mode, "proxy-none-else");
    let (allowed, address) = (format!("allowed.lns.test:{p}"), format!("127.0.0.1:{p}"));
    for once in [false, true] {
        let mut options = vec!["--allow-host", &allowed, "--allow-host", &address];
        if once {
            options.push("--no-keep-warm");
        }
        let o = sh(
            &sb,
            &options,
            &format!(
                "curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:{p}/direct-loopback; echo loopback $?
curl -sS --noproxy '*' --max-time 5 http://allowed.lns.test:{p}/direct-name; echo name $?
curl -sS --noproxy '*' --max-time 5 http://10.255.255.1:{p}/direct-lan; echo lan $?
nslookup -timeout=2 allowed.lns.test >/dev/null 2>&1; echo dns $?
grep -c : /proc/net/dev; tail -n +2 /proc/net/route | wc -l
curl -sS http://allowed.lns.test:{p}/proxied"
            ),
        );
        let out = stdout(&o);
        for what in ["loopback", "name", "lan", "dns"] {
            assert!(!out.contains(&format!("{what} 0\n")), "{what}: {out}");
        }
        // Only the loopback interface, and no route anywhere.
        assert!(out.contains("\n1\n0\nserved /proxied\n"), "{out}");
        assert_eq!(server.seen(), ["/proxied"], "once={once}");
        server.seen.lock().unwrap().clear();
    }
});

both_modes!(
    the_proxy_lives_as_long_as_its_container_and_a_killed_one_is_restarted,
    |mode| {
        let server = Server::start();
        let p = server.port;
        let sb = Sandbox::new(mode, "proxy-life");
        let (allowed, address) = (format!("allowed.lns.test:{p}"), format!("127.0.0.1:{p}"));
        let options = [
            "--allow-host",
            allowed.as_str(),
            "--allow-host",
            address.as_str(),
        ];
        let fetch = |path: &str| {
            let o = sh(
                &sb,
                &options,
                &format!("curl -sS http://allowed.lns.test:{p}/{path}"),
            );
            assert_eq!(stdout(&o), format!("served /{path}\n"), "{}", stderr(&o));
        };
        fetch("first");
        let first = proxy_pid(&sb, &allowed).expect("a proxy runs");
        assert!(kill(first, 9));
        assert!(wait_gone(first, Duration::from_secs(10)));
        assert_eq!(proxy_pid(&sb, &allowed), None, "--status sees it gone");
        fetch("after-kill");
        let second = proxy_pid(&sb, &allowed).expect("restarted by the call");
        assert_ne!(first, second);
        // Parallel calls share it.
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let mut args: Vec<&str> = options.to_vec();
                let script = format!("curl -sS http://allowed.lns.test:{p}/parallel-{i}");
                args.extend(["sh", "-c"]);
                let mut cmd = sb.command(&args);
                cmd.arg(script)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                cmd.spawn().unwrap()
            })
            .collect();
        for (i, c) in calls.into_iter().enumerate() {
            let o = wait_bounded(c, Duration::from_secs(120));
            assert_eq!(
                stdout(&o),
                format!("served /parallel-{i}\n"),
                "{}",
                stderr(&o)
            );
        }
        assert_eq!(proxy_pid(&sb, &allowed), Some(second));
        let name = warm_with(&sb, &allowed)["name"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            command_lines_with(&name)
                .iter()
                .filter(|l| l.contains("--internal-proxy"))
                .count(),
            1
        );
        // The container goes (removed, as a TTL or --prune would): so does
        // its proxy.
        let o = store_podman(&sb)
            .args(["rm", "-f", "-t", "0", &name])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            wait_gone(second, Duration::from_secs(10)),
            "the proxy outlived its container"
        );
    }
);

fn kill(pid: u32, signal: i32) -> bool {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap()
        .success()
}

#[test]
fn a_bad_pattern_is_one_line_naming_the_fix() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "proxy-bad");
    let mut cmd = sb.command(&["--allow-host", "a b", "true"]);
    cmd.stderr(Stdio::piped());
    let o = run_bounded(cmd, None);
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "lectic-nix-sandbox: --allow-host \"a b\": not a host name; give a host name (pypi.org)"
        ),
        "{err}"
    );
}
