//! The hostile command: each test tries a way out of the default sandbox
//! and asserts it fails, rootful and rootless. docs/security.md lists them.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

/// The host user's real HOME (not the sandbox's).
fn real_home(mode: Mode) -> String {
    match mode {
        Mode::Rootful => "/root".into(),
        Mode::Rootless => format!("/home/{ROOTLESS_USER}"),
    }
}

/// Options for an image that also has busybox (for `nc`).
fn with_busybox(sb: &Sandbox) -> Vec<String> {
    let p = sb.write("busybox.nix", "{ pkgs, ... }: [ pkgs.busybox ]");
    vec!["--nix-packages-file".into(), p.display().to_string()]
}

fn run_script(sb: &Sandbox, extra: &[&str], script: &str) -> std::process::Output {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["sh", "-c", script]);
    sb.run(&args)
}

each_path!(writes_outside_the_workdir_and_home_fail, |mode| {
    let sb = Sandbox::new(mode, "esc-write");
    let home = real_home(mode);
    let cache = sb.cache.display().to_string();
    // The image root is read-only; the host's HOME and our cache are not
    // there (a write to their paths lands in the container, if anywhere).
    let script = format!(
        "for p in /etc/lns-x /usr/lns-x /bin/lns-x /lns-x /nix/store/lns-x; do \
           touch $p 2>/dev/null && echo wrote $p; done; \
         for p in {home}/lns-x {cache}/lns-x; do mkdir -p \"$(dirname $p)\" 2>/dev/null; touch $p 2>/dev/null; done; \
         touch ./in-workdir \"$HOME/in-home\" /tmp/in-tmp && echo allowed"
    );
    assert_eq!(ok(&run_script(&sb, &[], &script)), "allowed\n");
    for t in [
        format!("{home}/lns-x"),
        format!("{cache}/lns-x"),
        "/etc/lns-x".into(),
    ] {
        assert!(!std::path::Path::new(&t).exists(), "{t} exists on the host");
    }
    assert!(sb.work.join("in-workdir").exists());
});

each_path!(the_real_home_and_the_sandbox_state_are_not_there, |mode| {
    let sb = Sandbox::new(mode, "esc-read");
    let home = real_home(mode);
    let secret = format!("{home}/lns-secret-{}", std::process::id());
    std::fs::write(&secret, "top secret").unwrap();
    if mode == Mode::Rootless {
        Command::new("chown")
            .args([ROOTLESS_USER, &secret])
            .status()
            .unwrap();
    }
    let script = format!(
        "cat {secret} 2>/dev/null; ls {home} 2>/dev/null; ls {} 2>/dev/null; \
         find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f -print 2>/dev/null \
           | xargs grep -l 'top [s]ecret' 2>/dev/null; echo end",
        sb.cache.display()
    );
    let out = ok(&run_script(&sb, &[], &script));
    let _ = std::fs::remove_file(&secret);
    assert_eq!(out, "end\n");
});

each_path!(no_network_without_allow_net, |mode| {
    let sb = Sandbox::new(mode, "esc-net");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_ip = String::from_utf8(Command::new("hostname").arg("-I").output().unwrap().stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap_or("10.0.2.15")
        .to_owned();
    let bb = with_busybox(&sb);
    let mut args: Vec<&str> = bb.iter().map(String::as_str).collect();
    args.push("--warm-ttl-seconds");
    args.push("60");
    let script = format!(
        "for a in 127.0.0.1 {host_ip} 1.1.1.1 8.8.8.8; do \
           busybox nc -w 2 $a {port} </dev/null 2>/dev/null && echo reached $a; \
         done; busybox nc -w 2 1.1.1.1 80 </dev/null 2>/dev/null && echo reached web; echo end"
    );
    assert_eq!(ok(&run_script(&sb, &args, &script)), "end\n");
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection"
    );
});

each_path!(host_processes_are_invisible, |mode| {
    let sb = Sandbox::new(mode, "esc-ps");
    let token = 900_000 + std::process::id() % 99_999;
    let mut host = Command::new("sleep")
        .arg(token.to_string())
        .spawn()
        .unwrap();
    // Neither the script nor grep's own argv may contain the pattern.
    let script = format!(
        "t=$(({} + 1)); for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null; echo; done | grep -c \"[s]leep $t\"; \
         ls /proc | grep -c '^[0-9]'",
        token - 1
    );
    let out = stdout(&run_script(&sb, &[], &script));
    let _ = host.kill();
    let _ = host.wait();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "a host process is visible: {out}");
    let visible: usize = lines.next().unwrap().parse().unwrap();
    assert!(visible < 20, "{visible} processes visible");
});

each_path!(capabilities_are_gone_and_privileged_calls_fail, |mode| {
    let sb = Sandbox::new(mode, "esc-caps");
    sb.write("work/file", "x");
    let script = "grep -E '^(CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status; \
        mkdir -p /tmp/m; mount -t tmpfs t /tmp/m 2>/dev/null && echo mounted; \
        chown 12345 file 2>/dev/null && echo chowned; \
        chown 0:0 file 2>/dev/null && [ \"$(id -u)\" != 0 ] && echo chowned-to-root; \
        echo end";
    assert_eq!(
        ok(&run_script(&sb, &[], script)),
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n\
         CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nend\n"
    );
});

each_path!(setuid_programs_gain_nothing, |mode| {
    let sb = Sandbox::new(mode, "esc-suid");
    // A setuid-root copy of busybox, made by the host's root.
    let dir = sb.work.join("suid");
    std::fs::create_dir_all(&dir).unwrap();
    let suid = dir.join("busybox");
    std::fs::copy("/bin/busybox", &suid).unwrap();
    Command::new("chown")
        .args(["root:root"])
        .arg(&suid)
        .status()
        .unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let script = "id -u; ./suid/busybox id -u; ./suid/busybox grep CapEff /proc/self/status";
    let out = ok(&run_script(&sb, &[], script));
    let uid = sb.uid();
    assert_eq!(out, format!("{uid}\n{uid}\nCapEff:\t0000000000000000\n"));
});

each_path!(podman_and_session_sockets_are_unreachable, |mode| {
    let mut sb = Sandbox::new(mode, "esc-sock");
    sb.extra_env = vec![
        ("SSH_AUTH_SOCK".into(), "/run/user/1/ssh.sock".into()),
        ("DISPLAY".into(), ":0".into()),
        ("XDG_RUNTIME_DIR".into(), "/run/user/1".into()),
        ("DOCKER_HOST".into(), "unix:///run/docker.sock".into()),
    ];
    let script = "env | grep -E '^(SSH_AUTH_SOCK|DISPLAY|XDG_RUNTIME_DIR|DOCKER_HOST|DBUS)'; \
        ls /run/podman /run/user /var/run/docker.sock /tmp/.X11-unix 2>/dev/null; \
        find / \\( -name 'podman.sock' -o -name 'docker.sock' -o -name 'bus' -type s \\) 2>/dev/null | grep -v '^/proc'; \
        echo end";
    assert_eq!(ok(&run_script(&sb, &["--pass-env", "*"], script)), "end\n");
});

/// Whether Podman enforces resource limits for this mode here; if not
/// (rootless on cgroup v1), checks that --doctor says so.
fn limits_enforced_or_said(sb: &Sandbox) -> bool {
    if limits_enforced(sb.mode) {
        return true;
    }
    let text = ok(&sb.run(&["--doctor"]));
    assert!(
        text.contains("rootless containers get no memory or CPU limits"),
        "{text}"
    );
    false
}

fn limits_enforced(mode: Mode) -> bool {
    let v2 = String::from_utf8(
        Command::new("stat")
            .args(["-fc", "%T", "/sys/fs/cgroup"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
        == "cgroup2fs";
    v2 || mode == Mode::Rootful
}

each_path!(a_fork_bomb_stops_at_the_pids_limit, |mode| {
    let sb = Sandbox::new(mode, "esc-fork");
    // In every mode: rootless on cgroup v1, ulimit nproc holds the limit.
    // Forks until refused (each child lives 5 s); the outer shell counts
    // with builtins only, since forking is what fails.
    let script = "sh -c 'i=0; while [ $i -lt 500 ]; do sleep 5 & i=$((i+1)); echo $i > /tmp/n; done' 2>/dev/null; \
        read n < /tmp/n; echo $n";
    let out = run_script(&sb, &["--no-keep-warm", "--pids-limit", "64"], script);
    let n: usize = stdout(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{out:?}"));
    assert!((30..64).contains(&n), "{n} forks");
});

each_path!(tmp_is_bounded_and_the_image_root_read_only, |mode| {
    let sb = Sandbox::new(mode, "esc-tmp");
    let script = "df -k /tmp | tail -1 | awk '{print $2}'; \
        dd if=/dev/zero of=/tmp/big bs=1048576 count=64 2>/dev/null || echo full; \
        rm -f /tmp/big; touch /usr/x /etc/x 2>/dev/null || echo read-only";
    assert_eq!(
        ok(&run_script(&sb, &["--tmp-size", "16m"], script)),
        "16384\nfull\nread-only\n"
    );
    let default = ok(&run_script(
        &sb,
        &[],
        "df -k /tmp | tail -1 | awk '{print $2}'",
    ));
    assert_eq!(default, "1048576\n", "1 GiB by default");
});

each_path!(symlinks_in_the_workdir_lead_nowhere_outside, |mode| {
    let sb = Sandbox::new(mode, "esc-link");
    let home = real_home(mode);
    let secret = format!("{home}/lns-link-secret-{}", std::process::id());
    std::fs::write(&secret, "top secret").unwrap();
    std::os::unix::fs::symlink("/etc", sb.work.join("to-etc")).unwrap();
    std::os::unix::fs::symlink(&secret, sb.work.join("to-secret")).unwrap();
    let before = std::fs::read("/etc/passwd").unwrap();
    let script = "echo evil >> to-etc/passwd 2>/dev/null && echo wrote; \
        cat to-secret 2>/dev/null; ln -s / root-link; echo x > root-link/etc/lns-x 2>/dev/null && echo wrote-root; \
        echo end";
    let out = ok(&run_script(&sb, &[], script));
    let _ = std::fs::remove_file(&secret);
    assert_eq!(out, "end\n");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), before);
    assert!(!std::path::Path::new("/etc/lns-x").exists());
});

each_path!(mounting_home_sockets_or_state_is_refused, |mode| {
    let sb = Sandbox::new(mode, "esc-mount");
    // The shared state exists whichever test runs first.
    ok(&sb.run(&["--status"]));
    let home = real_home(mode);
    let up = format!("{}/../../../..", sb.work.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--volume".into(), home.clone()],
            "is your home directory",
        ),
        (
            vec!["--workdir".into(), home.clone()],
            "is your home directory",
        ),
        (
            vec!["--home".into(), home.clone()],
            "is your home directory",
        ),
        (vec!["--volume".into(), "/".into()], "holds"),
        (vec!["--volume".into(), up], "holds"),
        (vec!["--volume".into(), "/run".into()], "host's sockets"),
        (vec!["--volume".into(), "/tmp/.X11-unix".into()], "X11"),
        (
            vec![
                "--volume".into(),
                sb.cache.join("nix-sandbox").display().to_string(),
            ],
            "own state",
        ),
        (vec!["--env".into(), "SSH_AUTH_SOCK=/x".into()], "never set"),
        (
            vec![
                "--persist".into(),
                sb.cache
                    .join("nix-sandbox/made-by-persist")
                    .display()
                    .to_string(),
            ],
            "own state",
        ),
    ];
    std::fs::create_dir_all("/tmp/.X11-unix").unwrap();
    for (opts, expect) in cases {
        let mut args: Vec<&str> = opts.iter().map(String::as_str).collect();
        args.push("true");
        let o = sb.run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{args:?}: {expect:?} in {err}");
    }
    assert!(
        !sb.cache.join("nix-sandbox/made-by-persist").exists(),
        "a refused --persist creates nothing"
    );
});

each_path!(memory_and_cpu_limits_reach_the_cgroup, |mode| {
    let sb = Sandbox::new(mode, "esc-limits");
    if !limits_enforced_or_said(&sb) {
        return;
    }
    // cgroup v2 names the files memory.max and cpu.max; v1 otherwise.
    let script = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; \
        cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us";
    let out = ok(&run_script(
        &sb,
        &["--no-keep-warm", "--memory", "64m", "--cpus", "0.5"],
        script,
    ));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("67108864"), "{out}");
    let cpu = lines.next().unwrap();
    assert!(cpu == "50000" || cpu.starts_with("50000 "), "{out}");
});

each_path!(raw_sockets_are_refused, |mode| {
    let sb = Sandbox::new(mode, "esc-raw");
    let bb = with_busybox(&sb);
    let mut args: Vec<&str> = bb.iter().map(String::as_str).collect();
    args.push("--no-keep-warm");
    // traceroute and arping open raw sockets; ping tries raw, then ICMP.
    let script = "busybox traceroute -n -m 1 127.0.0.1 >/dev/null 2>&1 || echo no-traceroute; \
        busybox arping -c 1 -I lo 127.0.0.1 >/dev/null 2>&1 || echo no-arping; \
        busybox ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 || echo no-ping";
    assert_eq!(
        ok(&run_script(&sb, &args, script)),
        "no-traceroute\nno-arping\nno-ping\n"
    );
});

/// Asserts a refusal: exit 125 and one line of stderr containing `word`.
#[track_caller]
fn assert_refused(o: &Output, word: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(125),
        "{what}: not refused; stdout {:?}, stderr {err:?}",
        stdout(o)
    );
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(err.contains(word), "{what}: {word:?} not in {err}");
}

/// A number unique to this run and variant: `n` followed by digits of our
/// pid and the variant, for the names of the command's processes.
fn unique(sb: &Sandbox, n: u32) -> String {
    format!("{n}{:03}{}", std::process::id() % 1000, sb.variant())
}

/// The command's processes whose command line starts with `prefix`.
fn running(prefix: &str) -> Vec<String> {
    processes_with(prefix)
        .into_iter()
        .filter(|l| {
            l.split_once(": ")
                .is_some_and(|(_, c)| c.starts_with(prefix))
        })
        .collect()
}

/// Kills, when dropped, every process with one of its tokens in its
/// command line (such as `flock -x /run/lectic-nix-sandbox/use.lock sleep
/// N`, which `processes_with` leaves out), so a failing test leaves none
/// behind.
struct Reaper(Vec<String>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for token in &self.0 {
            for line in command_lines_with(token) {
                if let Some((pid, _)) = line.split_once(':') {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
    }
}

// Issue 11, item 1

each_path!(
    mount_sources_reached_through_a_symlink_are_refused,
    |mode| {
        // A mount source the command can write (it is in the workdir) may be a
        // symlink by the next call, and a resolved path then mounts its target.
        let sb = Sandbox::new(mode, "esc-symsrc");
        for d in [
            "real-data",
            "real-home",
            "real-persist",
            "real-work",
            "real-dir/sub",
        ] {
            sb.mkdir(&format!("work/{d}"));
        }
        for (link, target) in [
            ("data", "real-data"),
            ("h", "real-home"),
            ("p", "real-persist"),
            ("w", "real-work"),
            ("dir", "real-dir"),
        ] {
            std::os::unix::fs::symlink(target, sb.work.join(link)).unwrap();
        }
        let cases: [&[&str]; 5] = [
            &["--volume", "./data:/data:ro"],
            &["--home", "./h"],
            &["--persist", "./p"],
            &["--workdir", "./w"],
            &["--volume", "./dir/sub:/sub:ro"],
        ];
        for opts in cases {
            let mut args = opts.to_vec();
            args.extend(["touch", "ran"]);
            assert_refused(&sb.run(&args), "symlink", &format!("{opts:?}"));
            for ran in [sb.work.join("ran"), sb.work.join("real-work/ran")] {
                assert!(!ran.exists(), "{opts:?}: the command ran");
            }
        }
    }
);

each_path!(
    a_command_cannot_turn_a_mounted_directory_into_a_symlink_for_the_next_call,
    |mode| {
        // Call 1 replaces ./data, mounted read-only, by a symlink to a
        // directory outside the workdir; call 2 has the same --volume line.
        let sb = Sandbox::new(mode, "esc-symswap");
        let token = format!("lns-swap-secret-{}-{}", std::process::id(), sb.variant());
        let secret = sb.mkdir("secret");
        sb.write("secret/secret", &token);
        sb.mkdir("work/data");
        let swap = format!("rm -rf data; ln -s {} data", secret.display());
        ok(&sb.run(&["--volume", "./data:/data:ro", "sh", "-c", &swap]));
        assert!(sb.work.join("data").is_symlink(), "call 1 did not swap");
        let o = sb.run(&["--volume", "./data:/data:ro", "cat", "/data/secret"]);
        assert!(
            !stdout(&o).contains(&token),
            "call 2 read the secret: {:?}",
            stdout(&o)
        );
        assert_refused(&o, "symlink", "call 2");
    }
);

/// Credential stores in HOME: HOME's projects may be mounted, these never.
const CREDENTIAL_DIRS: [&str; 6] = [".ssh", ".gnupg", ".aws", ".config", ".kube", ".docker"];

/// What a test created in the real HOME, removed when dropped (only if
/// still empty: nothing of anyone else's goes).
struct Created(Vec<PathBuf>);

impl Drop for Created {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            if p.is_dir() {
                let _ = std::fs::remove_dir(p);
            } else if std::fs::metadata(p).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

both_modes!(homes_credential_directories_are_never_mounted, |mode| {
    // HOME itself is refused, but what lies inside it may be mounted (its
    // projects), and with it ~/.ssh, ~/.aws and the rest. Rootful and
    // rootless only: the refusal comes before any exec path, and the
    // variants of one mode would create and remove the same directories.
    let sb = Sandbox::new(mode, "esc-creds");
    let home = PathBuf::from(real_home(mode));
    let mut created = Created(vec![]);
    let mut make = |path: PathBuf, dir: bool| {
        if std::fs::symlink_metadata(&path).is_err() {
            if dir {
                std::fs::create_dir(&path).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
            } else {
                std::fs::write(&path, "").unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            sb.give_to_user(&path);
            created.0.push(path);
        }
    };
    for d in CREDENTIAL_DIRS {
        make(home.join(d), true);
    }
    make(home.join(".netrc"), false);
    // --home creates its directory: registered last, so removed first.
    let made_by_home = home.join(".ssh/x");
    let existed = made_by_home.exists();
    if !existed {
        created.0.push(made_by_home.clone());
    }
    let mut cases: Vec<Vec<String>> = CREDENTIAL_DIRS
        .iter()
        .map(|d| vec!["--volume".into(), home.join(d).display().to_string()])
        .collect();
    cases.push(vec![
        "--volume".into(),
        format!("{}:/n:ro", home.join(".netrc").display()),
    ]);
    cases.push(vec!["--home".into(), made_by_home.display().to_string()]);
    for opts in cases {
        let mut args: Vec<&str> = opts.iter().map(String::as_str).collect();
        args.push("true");
        assert_refused(&sb.run(&args), "never mounts", &format!("{opts:?}"));
    }
    assert!(
        existed || !made_by_home.exists(),
        "a refused --home created {}",
        made_by_home.display()
    );
});

/// Swaps two directory entries (RENAME_EXCHANGE) in a loop until dropped.
struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Swapper {
    fn start(a: &Path, b: &Path) -> Swapper {
        use std::os::unix::ffi::OsStrExt;
        let a = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
        let b = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: two valid NUL-terminated paths.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                swaps += u64::from(r == 0);
                std::thread::yield_now();
            }
            swaps
        });
        Swapper {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop; returns how many swaps it made.
    fn finish(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map_or(0, |t| t.join().unwrap_or_default())
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.finish();
    }
}

each_path!(
    a_symlink_swapped_in_while_a_call_starts_mounts_nothing_of_it,
    |mode| {
        // A process left in another container with the same workdir swaps
        // ./data with a symlink to a secret directory, over and over, while
        // calls with `--volume ./data` make their containers (warm and
        // one-shot): a check of the path and the mount that follows it see
        // different things.
        let sb = Sandbox::private(mode, "esc-symrace");
        let token = format!("lns-race-secret-{}-{}", std::process::id(), sb.variant());
        let secret = sb.mkdir("secret");
        sb.write("secret/secret", &token);
        sb.write("work/data/public", "public\n");
        std::os::unix::fs::symlink(&secret, sb.work.join("link")).unwrap();
        let mut swapper = Swapper::start(&sb.work.join("data"), &sb.work.join("link"));
        // Every other call one-shot: its command waits until the mounts
        // are verified, as a new warm container does.
        for n in 0..20 {
            let label = if n % 2 == 0 {
                format!("--podman-extra=--label=lns-race={n}")
            } else {
                "--no-keep-warm".to_owned()
            };
            let o = sb.run(&[
                "--volume",
                "./data:/data:ro",
                &label,
                "sh",
                "-c",
                "cat /data/public /data/secret 2>/dev/null; exit 0",
            ]);
            let out = stdout(&o);
            assert!(!out.contains(&token), "call {n} read the secret: {out:?}");
            match o.status.code() {
                Some(0) => assert_eq!(out, "public\n", "call {n}"),
                Some(125) => assert_eq!(stderr(&o).lines().count(), 1, "call {n}: {}", stderr(&o)),
                code => panic!("call {n}: exit {code:?}: {}", stderr(&o)),
            }
        }
        assert!(swapper.finish() > 0, "nothing was swapped");
        let _ = sb.run(&["--prune", "--all"]);
    }
);

// Issue 11, item 2

/// Tool A (`a_opts` give it the secret `token`) and tool B (no options) in
/// one workdir: while A runs, B looks for the token in every process's
/// environment, and for the file A left in its HOME.
fn another_tool_sees_no_secret(sb: &Sandbox, a_opts: &[&str], token: &str) {
    let as_a = |rest: &[&'static str]| -> Vec<String> {
        a_opts.iter().chain(rest).map(|s| s.to_string()).collect()
    };
    // B's container first, so B's look below is quick.
    ok(&sb.run(&["true"]));
    let touch = as_a(&["sh", "-c", "touch $HOME/a-was-here"]);
    ok(&sb.run(&touch.iter().map(String::as_str).collect::<Vec<_>>()));
    let long = as_a(&["sh", "-c", "sleep 6 & touch a-started; wait"]);
    let mut a = sb
        .command(&long.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || sb
            .work
            .join("a-started")
            .exists()),
        "tool A did not start"
    );
    let look = format!(
        "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c {token}; ls -a $HOME"
    );
    let seen = sb.run(&["sh", "-c", &look]);
    let a_ran = a.try_wait().unwrap().is_none();
    let a = wait_bounded(a, Duration::from_secs(60));
    assert!(a_ran, "inconclusive: tool A ended before B looked");
    let seen = ok(&seen);
    assert_eq!(
        seen.lines().next(),
        Some("0"),
        "B sees A's secret in a process's environment: {seen}"
    );
    assert!(
        !seen.lines().any(|l| l == "a-was-here"),
        "B sees A's HOME: {seen}"
    );
    ok(&a);
}

each_path!(a_tools_env_file_secret_reaches_no_other_tool, |mode| {
    // Two tools of one workdir shared a container and a HOME: a process of
    // the one without secrets reads the other's /proc/<pid>/environ.
    let sb = Sandbox::new(mode, "esc-envfile-share");
    let token = format!("lns2a-{}-{}-file", std::process::id(), sb.variant());
    sb.write("work/secrets.env", &format!("TOKEN={token}\n"));
    another_tool_sees_no_secret(&sb, &["--env-file", "secrets.env"], &token);
});

each_path!(a_tools_env_secret_reaches_no_other_tool, |mode| {
    // The same with the secret given by --env.
    let sb = Sandbox::new(mode, "esc-env-share");
    let token = format!("lns2a-{}-{}-env", std::process::id(), sb.variant());
    let pair = format!("TOKEN={token}");
    another_tool_sees_no_secret(&sb, &["--env", &pair], &token);
});

each_path!(
    one_shot_tools_with_different_secrets_share_no_home,
    |mode| {
        // One-shot containers are separate, but the default HOME was one per
        // configuration without its environment: shared by both tools.
        let sb = Sandbox::new(mode, "esc-once-share");
        sb.write("work/secrets.env", "TOKEN=lns2a-once\n");
        ok(&sb.run(&[
            "--no-keep-warm",
            "--env-file",
            "secrets.env",
            "sh",
            "-c",
            "touch $HOME/a-was-here",
        ]));
        let seen = ok(&sb.run(&["--no-keep-warm", "sh", "-c", "ls -a $HOME"]));
        assert!(
            !seen.lines().any(|l| l == "a-was-here"),
            "B sees A's HOME: {seen}"
        );
    }
);

each_path!(what_a_call_started_is_gone_when_it_returns, |mode| {
    // Processes that detach (setsid, a double fork) and drop the call's
    // mark (env -i) outlived their call: they could watch later calls.
    let sb = Sandbox::new(mode, "esc-leftover");
    let sleeps = [
        format!("sleep {}", unique(&sb, 3011)),
        format!("sleep {}", unique(&sb, 3012)),
    ];
    let _reaper = Reaper(sleeps.to_vec());
    let script = format!(
        "setsid env -i {} </dev/null >/dev/null 2>&1 & \
         setsid sh -c '{} </dev/null >/dev/null 2>&1 &'; echo started",
        sleeps[0], sleeps[1]
    );
    assert_eq!(ok(&run_script(&sb, &[], &script)), "started\n");
    for s in &sleeps {
        assert!(
            eventually(Duration::from_secs(2), || processes_with(s).is_empty()),
            "left running after the call: {:?}",
            processes_with(s)
        );
    }
});

each_path!(a_stopped_call_leaves_no_detached_process, |mode| {
    // SIGTERM stops the call's group and the processes with its mark; one
    // that left both (setsid, env -i) went on running.
    let sb = Sandbox::new(mode, "esc-stop-detached");
    ok(&sb.run(&["true"]));
    let sleep = format!("sleep {}", unique(&sb, 3021));
    let _reaper = Reaper(vec![sleep.clone()]);
    let script = format!("setsid env -i {sleep} </dev/null >/dev/null 2>&1 & sleep 100");
    let child = sb
        .command(&["sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || !running(&sleep).is_empty()),
        "the detached process did not start"
    );
    signal(sandbox_pid(mode, &child), "TERM");
    let out = wait_bounded(child, Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(143));
    assert!(
        eventually(Duration::from_secs(2), || processes_with(&sleep).is_empty()),
        "left running after the stop: {:?}",
        processes_with(&sleep)
    );
});

each_path!(keep_processes_lets_what_a_call_started_outlive_it, |mode| {
    // The opt-in for a call that means to leave something running.
    let sb = Sandbox::new(mode, "esc-keep");
    let sleep = format!("sleep {}", unique(&sb, 3031));
    let _reaper = Reaper(vec![sleep.clone()]);
    let script = format!("setsid {sleep} </dev/null >/dev/null 2>&1 & echo started");
    assert_eq!(
        ok(&run_script(&sb, &["--keep-processes"], &script)),
        "started\n"
    );
    assert!(
        eventually(Duration::from_secs(2), || !running(&sleep).is_empty()),
        "the kept process is not there"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!running(&sleep).is_empty(), "the kept process was killed");
});

// Issue 11, item 3

/// Receives bytes and any SCM_RIGHTS descriptors that come with them.
fn recv_with_fds(conn: &UnixStream, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 64];
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives
    // the call, and the control data is read as the kernel laid it out.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut fds = vec![];
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<i32>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        Ok((n as usize, fds))
    }
}

/// Not a test: the impostor that `an_impostor_on_the_agents_socket_gets_no_call`
/// runs inside a container (this test binary is static). It takes the
/// agent's socket, logs what each connection sends, answers exit status 42
/// and then writes into the caller's stdout.
#[test]
#[ignore]
fn impostor_listener() {
    let Some(log) =
        std::env::var_os("LNS_IMPOSTOR_LOG").filter(|_| std::env::var_os("LNS_IMPOSTOR").is_some())
    else {
        return;
    };
    let log = PathBuf::from(log);
    let sock = "/run/lectic-nix-sandbox/sock/agent";
    let _ = std::fs::remove_file(sock);
    let listener = UnixListener::bind(sock).unwrap();
    // Its existence says the socket is ours.
    std::fs::File::create(&log).unwrap();
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(30));
        std::process::exit(0);
    });
    for conn in listener.incoming().flatten() {
        let log = log.clone();
        std::thread::spawn(move || impostor_serve(conn, &log));
    }
}

fn impostor_serve(conn: UnixStream, log: &Path) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = vec![0u8; 1 << 16];
    let mut got = vec![];
    let mut fds = vec![];
    if let Ok((n, received)) = recv_with_fds(&conn, &mut buf) {
        got.extend_from_slice(&buf[..n]);
        fds = received;
        let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
        while let Ok(n @ 1..) = (&conn).read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        let _ = writeln!(f, "{}", String::from_utf8_lossy(&got).replace('\0', " "));
    }
    let _ = (&conn).write_all(&[b'X', 42]);
    std::thread::sleep(Duration::from_secs(1));
    if let Some(out) = fds.get(1).and_then(|fd| fd.try_clone().ok()) {
        let _ = std::fs::File::from(out).write_all(b"hijacked\n");
    }
    drop(fds);
    std::thread::sleep(Duration::from_secs(30));
}

both_modes!(an_impostor_on_the_agents_socket_gets_no_call, |mode| {
    // The socket's directory is writable inside: a process of call 1 binds
    // its own listener there, and call 2 of the same configuration sends
    // it argv, environment and its stdout.
    let sb = Sandbox::new(mode, "esc-impostor");
    let token = format!("lns-impostor-{}-{}", std::process::id(), sb.variant());
    let secret = format!("SECRET_ARG={token}");
    let bin = sb.work.join("escape-bin");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.give_to_user(&bin);
    let start = "LNS_IMPOSTOR=1 LNS_IMPOSTOR_LOG=$PWD/impostor.log \
        ./escape-bin --ignored --exact impostor_listener --test-threads=1 >/dev/null 2>&1 & sleep 8";
    let first = sb
        .command(&["--env", &secret, "sh", "-c", start])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = sb.work.join("impostor.log");
    assert!(
        eventually(Duration::from_secs(60), || log.exists()),
        "the impostor did not take the socket"
    );
    let second = sb
        .command(&["--env", &secret, "sh", "-c", "echo real-call; exit 0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(second, Duration::from_secs(20));
    let _ = wait_bounded(first, Duration::from_secs(30));
    let got = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(
        !got.contains(&token) && !got.contains("real-call"),
        "the impostor got call 2: {got:?}"
    );
    assert!(
        !stdout(&out).contains("hijacked"),
        "the impostor wrote into call 2's stdout"
    );
    assert_eq!(ok(&out), "real-call\n");
});

/// Not a test: a client of the agent's socket that a command runs inside
/// its container (this test binary is static). Writes to
/// `agent-client.out` whether the agent took the connection as a call
/// ("ready") or not ("refused").
#[test]
#[ignore]
fn agent_client() {
    if std::env::var_os("LNS_AGENT_CLIENT").is_none() {
        return;
    }
    let said = match UnixStream::connect("/run/lectic-nix-sandbox/sock/agent") {
        Err(_) => "no agent",
        Ok(conn) => {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut b = [0u8; 2];
            if (&conn).read_exact(&mut b).is_ok() && b[0] == b'R' {
                "ready"
            } else {
                "refused"
            }
        }
    };
    std::fs::write("agent-client.out", said).unwrap();
}

both_modes!(a_command_cannot_ask_the_agent_for_a_call, |mode| {
    // The agent's socket is reachable inside: a command that sends its
    // own requests (marked as kept, say) starts processes the agent would
    // spare and keeps the container alive. The agent serves only the host.
    let sb = Sandbox::new(mode, "esc-agent-client");
    let bin = sb.work.join("escape-bin");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.give_to_user(&bin);
    ok(&sb.run(&[
        "sh",
        "-c",
        "LNS_AGENT_CLIENT=1 ./escape-bin --ignored --exact agent_client --test-threads=1 >/dev/null 2>&1",
    ]));
    let said = std::fs::read_to_string(sb.work.join("agent-client.out")).unwrap();
    assert_eq!(said, "refused");
});

// Issue 11, item 4

each_path!(a_file_on_stdout_is_not_handed_to_the_command, |mode| {
    // Given the caller's file itself, the command can reopen it through
    // /proc/self/fd/1 (no directory permission applies) and overwrite it.
    let sb = Sandbox::new(mode, "esc-stdout-file");
    let dir = sb.mkdir("private");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = sb.write("private/out", "secret-line\n");
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let script =
        "readlink /proc/self/fd/1; echo overwritten 1<>/proc/self/fd/1 2>/dev/null; echo done";
    let child = sb
        .command(&["sh", "-c", script])
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(300));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("secret-line\n"),
        "the command overwrote the file: {text:?}"
    );
    let link = text.lines().nth(1).unwrap_or_default();
    assert!(
        link.starts_with("pipe:"),
        "the command's stdout was {link:?}: {text:?}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
});

each_path!(
    a_terminal_on_stdin_and_stderr_is_not_handed_to_the_command,
    |mode| {
        // With stdout piped, the call does not count as on a terminal, and
        // its terminal went to the command as stdin and stderr: TIOCSTI on it
        // types into the host's shell.
        let sb = Sandbox::new(mode, "esc-half-tty");
        let call = sb.command(&[
            "sh",
            "-c",
            "[ -t 0 ] && echo stdin-is-tty; [ -t 2 ] && echo stderr-is-tty; echo end",
        ]);
        let line = format!("{} | cat", shell_line(&call));
        let mut script = Command::new("script");
        script
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null());
        let o = run_bounded(script, None);
        assert_eq!(
            stdout(&o).replace('\r', ""),
            "end\n",
            "stderr: {}",
            stderr(&o)
        );
    }
);

// Issue 11, item 5

/// A command that leaves, for every file it sees under the state mount
/// (and one level below), a detached `flock -x FILE sleep N` holding it.
fn hold_every_lock(sleep: &str) -> String {
    format!(
        "for f in /run/lectic-nix-sandbox/* /run/lectic-nix-sandbox/*/*; do \
           [ -f \"$f\" ] && setsid flock -x \"$f\" {sleep} </dev/null >/dev/null 2>&1 & \
         done; sleep 1; echo locking"
    )
}

/// After a command left holders of every lock it sees: a call of the same
/// configuration and `--prune --all` still work.
fn lock_holders_hold_up_nothing(sb: &Sandbox, opts: &[&str]) {
    let sleep = format!("sleep {}", unique(sb, 3051));
    let _reaper = Reaper(vec![sleep.clone()]);
    let script = hold_every_lock(&sleep);
    let mut args = opts.to_vec();
    args.extend(["sh", "-c", &script]);
    assert_eq!(ok(&sb.run(&args)), "locking\n");
    // use.lock's holder gets it as the call lets go.
    std::thread::sleep(Duration::from_secs(1));
    let o = sb.run(&["--lock-timeout", "5s", "echo", "still works"]);
    assert_eq!(ok(&o), "still works\n");
    assert!(!ps_names(sb).is_empty(), "no container to prune");
    ok(&sb.run(&["--prune", "--all"]));
    assert!(
        eventually(Duration::from_secs(20), || ps_names(sb).is_empty()),
        "--prune --all left {:?}",
        ps_names(sb)
    );
}

each_path!(
    lock_holders_left_by_a_command_block_no_call_and_no_prune,
    |mode| {
        // The state mount's lock files are the host's: a holder of use.lock
        // makes every later call time out, and pruning skip the container,
        // which then lives for ever.
        let sb = Sandbox::private(mode, "esc-locks");
        lock_holders_hold_up_nothing(&sb, &[]);
    }
);

each_path!(kept_lock_holders_block_no_call_and_no_prune, |mode| {
    // The same with holders that may outlive the call (--keep-processes):
    // no lock a command can reach may decide for the host.
    let sb = Sandbox::private(mode, "esc-locks-kept");
    lock_holders_hold_up_nothing(&sb, &["--keep-processes"]);
});

both_modes!(
    a_directory_in_place_of_the_agents_socket_breaks_no_later_call,
    |mode| {
        // The socket's directory is writable inside: a directory named like
        // the socket kept every new agent from listening.
        let sb = Sandbox::private(mode, "esc-sockdir");
        ok(&sb.run(&[
            "sh",
            "-c",
            "rm -f /run/lectic-nix-sandbox/sock/agent; mkdir /run/lectic-nix-sandbox/sock/agent",
        ]));
        assert_eq!(ok(&sb.run(&["echo", "ok"])), "ok\n");
        ok(&sb.run(&["--prune", "--all"]));
        // A directory left unwritable there (chmod 500) must not keep the
        // next container from being made.
        ok(&sb.run(&[
            "sh",
            "-c",
            "d=/run/lectic-nix-sandbox/sock/d; mkdir $d && touch $d/f && chmod 500 $d",
        ]));
        ok(&sb.run(&["--prune", "--all"]));
        assert_eq!(ok(&sb.run(&["echo", "again"])), "again\n");
        ok(&sb.run(&["--prune", "--all"]));
    }
);

// Issue 11, item 6

each_path!(run_and_var_tmp_are_bounded_tmpfs, |mode| {
    // /run and /var/tmp were tmpfs without a size: half the host's memory
    // each for the command to fill.
    let sb = Sandbox::new(mode, "esc-run-size");
    let script = "df -k /tmp /var/tmp | tail -2 | awk '{print $2}'; \
        df -k /run | tail -1 | awk '{print $2}'; \
        dd if=/dev/zero of=/run/big bs=1048576 count=80 2>/dev/null || echo full; rm -f /run/big";
    let out = ok(&run_script(&sb, &["--tmp-size", "16m"], script));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.get(..2),
        Some(&["16384", "16384"][..]),
        "/tmp, /var/tmp: {out}"
    );
    let run: u64 = lines[2].parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(run <= 65536, "/run is {run} KiB");
    assert_eq!(lines.get(3), Some(&"full"), "80 MiB fit in /run: {out}");
});

// Issue 11, item 8

each_path!(an_env_file_with_a_nul_byte_is_refused, |mode| {
    // The agent's request separates variables with NUL: a NUL in a value
    // made more variables (LECTIC_INJECTED=evil).
    let sb = Sandbox::new(mode, "esc-env-nul");
    let path = sb.work.join("nul.env");
    std::fs::write(&path, b"A=x\0LECTIC_INJECTED=evil\0B=y\n").unwrap();
    sb.give_to_user(&path);
    let o = sb.run(&[
        "--env-file",
        "nul.env",
        "sh",
        "-c",
        "echo \"[$LECTIC_INJECTED]\"",
    ]);
    assert!(
        !stdout(&o).contains("evil"),
        "the NUL made a variable: {}",
        stdout(&o)
    );
    assert_refused(&o, "nul.env", "--env-file with a NUL");
});

both_modes!(
    management_flags_work_from_home_from_the_root_and_from_tmp,
    |mode| {
        // The cwd is the default workdir, and from HOME, `/` or /tmp it is a
        // place never mounted: management flags, which mount nothing, failed.
        let sb = Sandbox::private(mode, "esc-manage-cwd");
        for dir in [real_home(mode), "/".into(), "/tmp".into()] {
            for flags in [
                &["--status"][..],
                &["--prune", "--all"],
                &["--show-config"],
                &["--doctor"],
            ] {
                let mut cmd = sb.command(flags);
                cmd.current_dir(&dir);
                let o = run_bounded(cmd, None);
                let err = stderr(&o);
                assert!(
                    !err.contains("never mounts") && !err.contains("home directory"),
                    "{flags:?} from {dir}: {err}"
                );
                if flags == ["--status"] {
                    assert_eq!(o.status.code(), Some(0), "--status from {dir}: {err}");
                }
            }
        }
    }
);

// Issue 11, item 7

each_path!(
    lectic_yaml_the_chat_and_git_hooks_are_read_only_inside,
    |mode| {
        // Lectic reads lectic.yaml and the chat, git runs hooks: a command that
        // edits them has the host run what it wrote.
        let sb = Sandbox::new(mode, "esc-config");
        sb.write("work/lectic.yaml", "sandbox: lectic-nix-sandbox\n");
        sb.write("work/chat.lec", "hello\n");
        sb.mkdir("work/.git/hooks");
        let script = "echo evil >> lectic.yaml 2>/dev/null && echo wrote-yaml; \
        rm -f lectic.yaml 2>/dev/null; [ -e lectic.yaml ] || echo removed-yaml; \
        echo evil >> chat.lec 2>/dev/null && echo wrote-chat; \
        touch .git/hooks/pre-commit 2>/dev/null && echo planted-hook; \
        touch other && echo other-ok";
        let out = ok(&run_script(&sb, &[], script));
        assert_eq!(out, "other-ok\n", "the command changed what the host runs");
        assert_eq!(
            std::fs::read_to_string(sb.work.join("lectic.yaml"))
                .ok()
                .as_deref(),
            Some("sandbox: lectic-nix-sandbox\n")
        );
        assert_eq!(
            std::fs::read_to_string(sb.work.join("chat.lec")).unwrap(),
            "hello\n"
        );
        assert!(!sb.work.join(".git/hooks/pre-commit").exists());
        assert!(sb.work.join("other").exists());
    }
);

each_path!(hidden_files_are_not_readable_inside, |mode| {
    // --hide keeps the workdir's secrets (.env, keys) from the command.
    let sb = Sandbox::new(mode, "esc-hide");
    sb.write("work/.env", "TOKEN=x");
    sb.write("work/key.pem", "-----BEGIN PRIVATE KEY-----\n");
    let script = "cat .env key.pem 2>/dev/null | wc -c; \
        echo evil > .env 2>/dev/null; echo evil > key.pem 2>/dev/null; true";
    let out = ok(&run_script(
        &sb,
        &["--hide", ".env", "--hide", "*.pem"],
        script,
    ));
    assert_eq!(out.trim(), "0", "the command read hidden files");
    assert_eq!(
        std::fs::read_to_string(sb.work.join(".env")).unwrap(),
        "TOKEN=x"
    );
    assert_eq!(
        std::fs::read_to_string(sb.work.join("key.pem")).unwrap(),
        "-----BEGIN PRIVATE KEY-----\n"
    );
});

// What the red-team review of issue 11 found

each_path!(git_cannot_be_replaced_or_pointed_elsewhere, |mode| {
    // A guard on .git/hooks and .git/config alone moved with `mv .git`,
    // and .git/commondir sent git to a config the command wrote: code ran
    // on the host at the next `git status`.
    let sb = Sandbox::new(mode, "esc-git-swap");
    sb.write("work/.git/config", "[core]\n\tbare = false\n");
    sb.mkdir("work/.git/hooks");
    sb.write("work/.git/HEAD", "ref: refs/heads/main\n");
    let script = "mv .git .git2 2>/dev/null && echo moved; rm -rf .git 2>/dev/null && echo removed; \
        echo ../x > .git/commondir 2>/dev/null && echo commondir; \
        echo '[core] fsmonitor = x' >> .git/config 2>/dev/null && echo config; \
        touch .git/hooks/post-checkout 2>/dev/null && echo hook; echo end";
    assert_eq!(ok(&run_script(&sb, &[], script)), "end\n");
    assert!(!sb.work.join(".git/commondir").exists());
    assert!(!sb.work.join(".git/hooks/post-checkout").exists());
    assert_eq!(
        std::fs::read_to_string(sb.work.join(".git/config")).unwrap(),
        "[core]\n\tbare = false\n"
    );
});

each_path!(a_hidden_paths_directory_cannot_be_renamed_away, |mode| {
    // `--hide keys/id.pem` matched by path: `mv keys keys2` took the file
    // out of the pattern's way for the next container.
    let sb = Sandbox::new(mode, "esc-hide-mv");
    let token = format!("lns-hide-mv-{}-{}", std::process::id(), sb.variant());
    sb.mkdir("work/keys");
    sb.write("work/keys/id.pem", &token);
    let hide = ["--hide", "keys/id.pem"];
    let script = "mv keys keys2 2>/dev/null && echo moved; cat keys/id.pem keys2/id.pem 2>/dev/null; echo end";
    assert_eq!(ok(&run_script(&sb, &hide, script)), "end\n");
    ok(&sb.run(&["--prune", "--all"]));
    let again = run_script(
        &sb,
        &hide,
        "cat keys/id.pem keys2/id.pem 2>/dev/null; echo end",
    );
    assert_eq!(ok(&again), "end\n");
    assert_eq!(
        std::fs::read_to_string(sb.work.join("keys/id.pem")).unwrap(),
        token
    );
    // A name pattern's match cannot be moved deeper than --hide looks.
    let deep =
        "mkdir -p a/b/c/d/e/f/g && mv keys a/b/c/d/e/f/g/ 2>/dev/null && echo moved; echo end";
    assert_eq!(ok(&run_script(&sb, &["--hide", "*.pem"], deep)), "end\n");
});

each_path!(an_unreadable_directory_hides_nothing_from_hide, |mode| {
    // The host looks for --hide matches as the user; a directory the
    // command made unreadable (chmod 311) was skipped, so its files were
    // not covered in the next container.
    let sb = Sandbox::new(mode, "esc-hide-chmod");
    let token = format!("lns-hide-chmod-{}-{}", std::process::id(), sb.variant());
    sb.mkdir("work/keys");
    sb.write("work/keys/id.pem", &token);
    let hide = ["--hide", "*.pem"];
    ok(&run_script(&sb, &hide, "chmod 311 keys"));
    ok(&sb.run(&["--prune", "--all"]));
    let o = run_script(&sb, &hide, "chmod 755 keys; cat keys/id.pem; echo end");
    assert!(!stdout(&o).contains(&token), "read the hidden file: {o:?}");
    match o.status.code() {
        Some(0) => {} // root reads it anyway, and hides it
        Some(125) => assert!(
            stderr(&o).lines().count() == 1 && stderr(&o).contains("cannot read"),
            "{}",
            stderr(&o)
        ),
        code => panic!("exit {code:?}: {o:?}"),
    }
    let _ = std::fs::set_permissions(sb.work.join("keys"), std::fs::Permissions::from_mode(0o755));
    let _ = sb.run(&["--prune", "--all"]);
});

each_path!(a_fork_bomb_left_behind_ends_with_its_call, |mode| {
    // Killing leftovers round by round lost to a fork bomb: it outlived
    // the call, filled the process limit and broke the next calls.
    let sb = Sandbox::new(mode, "esc-bomb");
    let limits = ["--pids-limit", "200"];
    let bomb = "setsid sh -c 'b(){ while :; do b & sleep 0.01; done; }; b' >/dev/null 2>&1 </dev/null & \
        sleep 2; echo done";
    assert_eq!(ok(&run_script(&sb, &limits, bomb)), "done\n");
    let count = "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n";
    let left: usize = ok(&run_script(&sb, &limits, count)).trim().parse().unwrap();
    assert!(left < 10, "{left} processes left in the container");
});

each_path!(
    a_leftover_with_an_unreadable_name_ends_with_its_call,
    |mode| {
        // A process named in bytes that are not UTF-8 was left out of the
        // reaper's process table, and so was everything it started.
        let sb = Sandbox::new(mode, "esc-comm");
        let sleep = format!("sleep {}", unique(&sb, 3041));
        let other = format!("sleep {}", unique(&sb, 3042));
        let _reaper = Reaper(vec![sleep.clone(), other.clone()]);
        ok(&sb.run(&["true"]));
        // Another call running meanwhile: the agent then sorts the
        // container's processes instead of ending all but its own.
        let running_call = sb
            .command(&["sh", "-c", &other])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            eventually(Duration::from_secs(60), || !running(&other).is_empty()),
            "the other call did not start"
        );
        let script = format!(
            "setsid env -i sh -c \"printf '\\\\377' > /proc/self/comm; while :; do {sleep}; done\" \
         </dev/null >/dev/null 2>&1 & sleep 1; echo started"
        );
        assert_eq!(ok(&run_script(&sb, &[], &script)), "started\n");
        assert!(
            eventually(Duration::from_secs(3), || running(&sleep).is_empty()),
            "left running after the call: {:?}",
            running(&sleep)
        );
        assert!(
            !running(&other).is_empty(),
            "the other call's process was killed"
        );
        drop(running_call);
    }
);

each_path!(a_submodules_gitdir_pointer_cannot_be_redirected, |mode| {
    // `.git` is read-only, but a submodule's `sub/.git` (a pointer to its
    // git directory) was not: pointed at a config the command wrote, the
    // host's `git status` ran its fsmonitor. Likewise a hooks directory
    // in the worktree (`core.hooksPath`).
    let sb = Sandbox::new(mode, "esc-submodule");
    sb.write(
        "work/.git/config",
        "[core]\n\tbare = false\n\thooksPath = .husky\n",
    );
    sb.write(
        "work/.git/modules/sub/config",
        "[core]\n\tworktree = ../../../lib/sub\n",
    );
    sb.mkdir("work/lib/sub");
    sb.mkdir("work/.husky");
    sb.write("work/lib/sub/.git", "gitdir: ../../.git/modules/sub\n");
    let script = "echo 'gitdir: ../../evil' > lib/sub/.git 2>/dev/null && echo redirected; \
        mv lib/sub lib/sub2 2>/dev/null && echo moved-sub; mv lib lib2 2>/dev/null && echo moved-lib; \
        touch .husky/pre-commit 2>/dev/null && echo hook; echo end";
    assert_eq!(ok(&run_script(&sb, &[], script)), "end\n");
    assert_eq!(
        std::fs::read_to_string(sb.work.join("lib/sub/.git")).unwrap(),
        "gitdir: ../../.git/modules/sub\n"
    );
    assert!(!sb.work.join(".husky/pre-commit").exists());
});

each_path!(a_command_cannot_leave_a_setuid_or_setgid_program, |mode| {
    // Rootful the command is uid 0: a setuid file it leaves in the workdir
    // would run as root for whoever can reach it on the host.
    let sb = Sandbox::new(mode, "esc-suid");
    let script = "rm -f planted; cp /bin/sh planted; \
        chmod 4755 planted 2>/dev/null || echo suid-refused; \
        chmod 2755 planted 2>/dev/null || echo sgid-refused; \
        chmod u+s,g+s planted 2>/dev/null || echo symbolic-refused; \
        chmod 0755 planted && echo plain-chmod-works";
    for once in [&[][..], &["--no-keep-warm"][..]] {
        let out = ok(&run_script(&sb, once, script));
        assert_eq!(
            out,
            "suid-refused\nsgid-refused\nsymbolic-refused\nplain-chmod-works\n"
        );
        let m = std::fs::metadata(sb.work.join("planted")).unwrap();
        assert_eq!(
            m.permissions().mode() & 0o6000,
            0,
            "no setuid/setgid bit on the host"
        );
    }
});

each_path!(
    a_command_that_kills_the_containers_init_ends_as_killed,
    |mode| {
        // The container goes with its init; the call says so, as killed
        // (137), not with Podman's 255. A race: a few rounds.
        let sb = Sandbox::new(mode, "esc-init");
        for _ in 0..3 {
            assert_eq!(ok(&sb.run(&["echo", "warm"])), "warm\n");
            let o = sb.run(&["sh", "-c", "kill -TERM 1; sleep 5"]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(137), "{err}");
            assert!(
                err.is_empty() || err.ends_with("the next call makes a new one\n"),
                "{err}"
            );
        }
    }
);
