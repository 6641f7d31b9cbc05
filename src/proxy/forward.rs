//! The container's end of the proxy: a listener on the container's
//! loopback whose connections are handed, socket and all, to the host's
//! proxy over [`SOCKET`](super::SOCKET). Nothing is copied here; the host
//! reads and writes the client's socket itself.
//!
//! The agent runs it on a thread. Where there is no agent (`--exec-via
//! podman`, one-shot calls) this binary is the container's main process
//! as `--internal-forward -- COMMAND...`: it listens, starts COMMAND (the
//! watcher or the call's command) as its child, and exits with its status,
//! so the command is not the parent of anything it did not start (a
//! shell's `wait` would wait for a forwarder that was its child).

use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use super::server::HANDOVER;
use crate::container::watcher::MOUNT;
use crate::sys;

/// The argument that makes this binary the wrapper (never a user's option:
/// checked before the command line is parsed, and only as argv[1]).
pub const ARG: &str = "--internal-forward";

/// The host proxy's socket as the container sees it.
pub fn socket() -> PathBuf {
    Path::new(MOUNT).join(super::SOCKET)
}

/// Listens on the container's loopback.
pub fn listen() -> std::io::Result<TcpListener> {
    TcpListener::bind(super::listen_addr())
}

/// Hands every connection to the proxy at `socket`; a connection the proxy
/// cannot take (it is being restarted) is closed.
pub fn forward(listener: &TcpListener, socket: &Path) {
    loop {
        let Ok((client, _)) = listener.accept() else {
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        };
        if let Ok(proxy) = UnixStream::connect(socket) {
            let _ = sys::send_with_fds(proxy.as_fd(), &[HANDOVER], &[client.as_fd()]);
        }
    }
}

/// Forwards `listener`'s connections on a thread of this process.
pub fn spawn(listener: TcpListener) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("forward".into())
        .stack_size(64 << 10)
        .spawn(move || forward(&listener, &socket()))?;
    Ok(())
}

/// The wrapper: `--internal-forward [-- COMMAND...]`.
pub fn wrap(args: &[std::ffi::OsString]) -> ExitCode {
    let fail = |what: &str, e: std::io::Error| {
        eprintln!("lectic-nix-sandbox: {what}: {e}");
        ExitCode::from(125)
    };
    let listener = match listen() {
        Ok(l) => l,
        Err(e) => return fail("cannot listen for the proxy", e),
    };
    let command = match args.iter().position(|a| a == "--") {
        Some(i) => &args[i + 1..],
        None => &[][..],
    };
    if command.is_empty() {
        forward(&listener, &socket());
        return ExitCode::SUCCESS;
    }
    // The listener is close-on-exec: the command does not get it.
    let mut child = match Command::new(&command[0]).args(&command[1..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = crate::agent::server::cannot_run(&command[0], &e, std::io::stderr());
            return ExitCode::from(code as u8);
        }
    };
    // A stop of the call signals the command itself (stop.rs); this process
    // goes when it has ended.
    sys::ignore_stop_signals();
    if let Err(e) = spawn(listener) {
        return fail("cannot start forwarding", e);
    }
    match child.wait() {
        Ok(status) => ExitCode::from(sys::exit_code(status) as u8),
        Err(e) => fail("cannot wait for the command", e),
    }
}
