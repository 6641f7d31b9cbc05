//! The exec agent: what only the agent path has to prove (the semantics it
//! shares with `podman exec` are proved by every `each_path!` test).

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// The warm state directory of the sandbox's only warm container.
fn warm_dir(sb: &Sandbox) -> std::path::PathBuf {
    let root = sb.cache.join("nix-sandbox/warm");
    let dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("inside/sock").exists())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// Zombies among the container's processes, as a call sees them.
const ZOMBIES: &str = "n=0; for f in /proc/[0-9]*/stat; do read -r l < $f || continue; \
    s=${l##*) }; case $s in Z*) n=$((n+1));; esac; done; echo $n";

both_modes!(a_double_forking_command_leaves_no_zombie, |mode| {
    let sb = Sandbox::private(mode, "agent-orphans");
    // The grandchild outlives its parent and is orphaned when it ends.
    ok(&sb.run(&["sh", "-c", "sh -c 'sleep 0.3 &' ; exit 0"]));
    ok(&sb.run(&["sh", "-c", "for i in 1 2 3; do (true &); done"]));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(ok(&sb.run(&["sh", "-c", ZOMBIES])), "0\n");
});

both_modes!(
    a_sigkilled_caller_leaves_no_process_within_two_seconds,
    |mode| {
        let sb = Sandbox::new(mode, "agent-sigkill");
        ok(&sb.run(&["true"]));
        let token = format!("{}{}", 660000 + std::process::id() % 1000, sb.variant());
        // A detached grandchild too: the call's marker finds it.
        let script = format!("(setsid sleep {token}1 &); sleep {token}2");
        let child = sb
            .command(&["sh", "-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(eventually(Duration::from_secs(60), || processes_with(
            &token
        )
        .len()
            == 2));
        let pid = sandbox_pid(mode, &child);
        signal(pid, "KILL");
        let _ = wait_bounded(child, Duration::from_secs(30));
        assert!(
            eventually(Duration::from_secs(2), || processes_with(&token).is_empty()),
            "survivors: {:?}",
            processes_with(&token)
        );
        ok(&sb.run(&["true"]));
    }
);

both_modes!(
    a_symlink_in_place_of_the_socket_reaches_no_host_socket,
    |mode| {
        let sb = Sandbox::private(mode, "agent-symlink");
        ok(&sb.run(&["true"]));
        let host = sb.dir.join("host.sock");
        let listener = UnixListener::bind(&host).unwrap();
        listener.set_nonblocking(true).unwrap();
        sb.give_to_user(&host);
        // The command can write the socket's directory; the host must not
        // follow what it leaves there.
        let script = format!(
            "cd /run/lectic-nix-sandbox/sock && rm -f agent && ln -s {} agent && echo swapped",
            host.display()
        );
        assert_eq!(ok(&sb.run(&["sh", "-c", &script])), "swapped\n");
        assert_eq!(ok(&sb.run(&["echo", "still works"])), "still works\n");
        assert!(
            listener.accept().is_err(),
            "the host socket got a connection"
        );
    }
);

both_modes!(another_protocol_gets_a_mismatch_reply, |mode| {
    let sb = Sandbox::private(mode, "agent-mismatch");
    ok(&sb.run(&["true"]));
    // Through /proc/self/fd: the path is longer than a socket address holds.
    let sock =
        lectic_nix_sandbox::sys::open_path_nofollow(&warm_dir(&sb).join("inside/sock/agent"))
            .unwrap();
    let mut s = UnixStream::connect(format!("/proc/self/fd/{}", sock.as_raw_fd())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"LNS0\0\0\0\0").unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"R\0V\0", "ready, then the mismatch");
});
