//! The hostile command: each test tries a way out of the default sandbox
//! and asserts it fails, rootful and rootless. docs/security.md lists them.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

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
    // Rootless on cgroup v1, ulimit nproc holds the limit.
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
