//! The call's side of the agent (see the module's documentation):
//! connecting to the socket without following what a command put there,
//! waiting for "ready", and running a command through it.

use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{self, Message, Request};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::exec::{StopSignals, call_env};
use crate::{stop, sys};

/// How long an agent may take to say it is ready.
pub const READY_LIMIT: Duration = Duration::from_secs(10);

/// Connects to the agent's socket at `path` without following a symlink
/// the container may have put there (it can write that directory): the
/// socket inode is opened with O_PATH|O_NOFOLLOW, checked, and connected to
/// through /proc/self/fd, which also spares the 108-byte path limit.
/// Returns the connection and the pid of whoever listens on it.
pub fn connect(path: &Path) -> std::io::Result<(UnixStream, i32)> {
    let f = sys::open_path_nofollow(path)?;
    if !f.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::other("not a socket"));
    }
    use std::os::fd::AsRawFd;
    let conn = UnixStream::connect(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let pid = sys::peer_pid(conn.as_fd())?;
    Ok((conn, pid))
}

/// Waits (at most [`READY_LIMIT`]) for the agent to say it took the
/// connection as a call.
pub fn await_ready(conn: &UnixStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(READY_LIMIT))?;
    let said = wire::receive(conn)?;
    conn.set_read_timeout(None)?;
    match said {
        Some(Message::Ready) => Ok(()),
        Some(_) => Err(std::io::Error::other("an unexpected greeting")),
        None => Err(std::io::Error::other("the agent closed the connection")),
    }
}

/// Runs the command through the agent on `conn` (which said ready): one
/// request, then the exit status back; no Podman process at all. None if
/// the agent speaks another protocol (another version of us made the
/// container).
pub async fn run(cfg: &Config, conn: UnixStream) -> Result<Option<i32>> {
    let mut signals = StopSignals::listen()?;
    let lost = |e: std::io::Error| Error::os("lost the warm container's agent", e);
    let req = Request {
        cwd: cfg.workdir.clone(),
        call_id: stop::new_call_id(),
        keep: cfg.keep_processes,
        argv: cfg.command.iter().map(Into::into).collect(),
        env: call_env(cfg).map(|(n, v)| (n.into(), v.into())).collect(),
    };
    wire::send_request(&conn, &req).map_err(lost)?;
    conn.set_nonblocking(true).map_err(lost)?;
    let mut conn = tokio::net::UnixStream::from_std(conn).map_err(lost)?;
    let mut reply = [0u8; 2];
    let signo = tokio::select! {
        r = conn.read_exact(&mut reply) => {
            return match (r, Message::decode(reply)) {
                (Ok(_), Message::Exit(code)) => Ok(Some(i32::from(code))),
                (Ok(_), Message::Mismatch) => Ok(None),
                (Ok(_), _) => Err(lost(std::io::Error::other("unexpected reply"))),
                (Err(e), _) => Err(lost(e)),
            };
        }
        signo = signals.recv() => signo,
    };
    // The agent passes it on and escalates to SIGKILL (stop.rs); it closes
    // the connection once everything of the call has ended.
    let _ = conn.write_all(&Message::Signal(signo as u8).encode()).await;
    let drain = async {
        let mut sink = [0u8; 64];
        while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(stop::GIVE_UP_AFTER, drain).await;
    Ok(Some(128 + signo))
}
