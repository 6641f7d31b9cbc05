//! The warm path through the container's agent (see agent/): one request
//! on the connection `ensure_warm` made, then the exit status back. No
//! Podman process at all.

use std::os::unix::net::UnixStream;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::agent::wire::{self, Request};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::stop;

use super::{StopSignals, call_env};

/// Runs the command through the agent; None if the agent speaks another
/// protocol (another version of us made the container).
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
            return match (r, reply) {
                (Ok(_), [wire::EXIT, code]) => Ok(Some(i32::from(code))),
                (Ok(_), [wire::MISMATCH, _]) => Ok(None),
                (Ok(_), _) => Err(lost(std::io::Error::other("unexpected reply"))),
                (Err(e), _) => Err(lost(e)),
            };
        }
        signo = signals.recv() => signo,
    };
    // The agent passes it on and escalates to SIGKILL (stop.rs); it closes
    // the connection once everything of the call has ended.
    let _ = conn.write_all(&[wire::SIGNAL, signo as u8]).await;
    let drain = async {
        let mut sink = [0u8; 64];
        while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(stop::GIVE_UP_AFTER, drain).await;
    Ok(Some(128 + signo))
}
