//! The exec agent: the warm container's long-lived process when this
//! binary is static (binary.rs). Podman starts it as
//! `<MOUNT>/agent --internal-agent` under catatonit (`--init`, which reaps
//! every orphan), inside every namespace and restriction of the container,
//! so what it starts gets them too.
//!
//! A warm call connects to its socket (`sock/agent` in the state directory,
//! see stamp.rs), sends argv, env, cwd and its own stdin, stdout and stderr
//! (wire.rs); the agent starts the command in a process group of its own
//! with those descriptors, so the command writes straight into the caller's
//! pipes, and sends back the exit status. A signal the caller gets is
//! passed on to the command's group and every process of the call (see
//! stop.rs); a caller that goes away (even SIGKILLed: its socket closes)
//! has its command's processes killed.
//!
//! It also owns the idle TTL exactly as the shell watcher does (see
//! container/watcher.rs): `alive.lock` held for life, exit only while
//! holding `use.lock` exclusively, and only once `last-use` is older than
//! `ttl`. Exiting stops the container, and `--rm` removes it.

pub mod binary;
pub mod wire;

use std::ffi::OsString;
use std::io::Write;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::container::stamp::{AGENT_FILE, WarmDir};
use crate::container::watcher::MOUNT;
use crate::error::{Error, IoContext, Result};
use crate::lock::{self, Mode};
use crate::stop::{self, CALL_VAR};
use crate::sys;
use wire::BadRequest;

/// The argument that makes this binary the agent (never a user's option:
/// it is checked before the command line is parsed, and only as argv[1]).
pub const ARG: &str = "--internal-agent";

/// How long to wait for the previous owner of `alive.lock` to let go.
const ALIVE_LIMIT: Duration = Duration::from_secs(10);
/// Look at the TTL at least this often, so a lowered TTL is noticed.
const RECHECK: Duration = Duration::from_secs(10);
/// Threads per call only read a socket and wait; they need little stack.
const CALL_STACK: usize = 128 << 10;

/// The container's command for an agent.
pub fn command() -> Vec<String> {
    vec![format!("{MOUNT}/{AGENT_FILE}"), ARG.into()]
}

/// Runs the agent until the container has been idle past its TTL.
pub fn serve() -> Result<()> {
    let dir = WarmDir::at(Path::new(MOUNT));
    let start = Instant::now();
    let alive = loop {
        if let Some(l) = lock::try_acquire_existing(&dir.alive_lock(), Mode::Exclusive)? {
            break l;
        }
        if start.elapsed() > ALIVE_LIMIT {
            return Err(Error::usage("alive.lock is held by someone else"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let path = dir.socket();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_path("cannot listen on", &path)?;
    // What podman gave the container is what `podman exec` would give.
    let base_env: Arc<Vec<(OsString, OsString)>> = Arc::new(std::env::vars_os().collect());
    loop {
        let wait = match dir.left() {
            Some(left) => left.min(RECHECK) + Duration::from_millis(50),
            None => {
                // Only while no call holds `use.lock`, and still idle then.
                if let Some(_last) = lock::try_acquire_existing(&dir.use_lock(), Mode::Exclusive)?
                    && dir.expired()
                {
                    // Closed before the use lock goes: a call that gets the
                    // lock next must find no one listening, not a backlog
                    // nobody serves.
                    drop(listener);
                    let _ = std::fs::remove_file(&path);
                    drop(alive);
                    return Ok(());
                }
                RECHECK
            }
        };
        if !sys::wait_readable(listener.as_fd(), wait).map_err(|e| Error::os("poll", e))? {
            continue;
        }
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(_) => {
                // Out of descriptors, say: do not spin on it.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let env = Arc::clone(&base_env);
        let spawned = std::thread::Builder::new()
            .stack_size(CALL_STACK)
            .spawn(move || serve_call(conn, &env));
        if let Err(e) = spawned {
            eprintln!("lectic-nix-sandbox agent: cannot start a thread: {e}");
        }
    }
}

/// One call: start the command, watch the socket, report the status.
fn serve_call(conn: UnixStream, base_env: &[(OsString, OsString)]) {
    let (req, [stdin, stdout, stderr]) = match wire::read_request(&conn) {
        Ok(r) => r,
        Err(BadRequest::Mismatch) => {
            let _ = wire::send(&conn, wire::MISMATCH, 0);
            return;
        }
        Err(_) => return, // a connection that only checked we are alive
    };
    let report = stderr.try_clone().ok();
    let mut cmd = Command::new(&req.argv[0]);
    cmd.args(&req.argv[1..])
        .env_clear()
        .envs(base_env.iter().map(|(k, v)| (k, v)))
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .env(CALL_VAR, &req.call_id)
        .current_dir(&req.cwd)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let spawned = cmd.spawn();
    // Our copies of the caller's pipes must go, or its reader never sees EOF.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let code = cannot_run(&req.argv[0], &e, report);
            let _ = wire::send(&conn, wire::EXIT, code as u8);
            return;
        }
    };
    drop(report);
    let group = child.id() as i32;
    let exited = Arc::new(AtomicBool::new(false));
    let watch = {
        let conn = conn.try_clone();
        let exited = Arc::clone(&exited);
        let call_id = req.call_id.clone();
        std::thread::Builder::new()
            .stack_size(CALL_STACK)
            .spawn(move || {
                if let Ok(conn) = conn {
                    watch_caller(&conn, group, &call_id, &exited);
                }
            })
    };
    let code = match child.wait() {
        Ok(status) => sys::exit_code(status),
        Err(_) => 125,
    };
    exited.store(true, Ordering::SeqCst);
    let _ = wire::send(&conn, wire::EXIT, code as u8);
    // Wakes the watcher if the caller is still there and quiet.
    let _ = conn.shutdown(Shutdown::Read);
    if let Ok(w) = watch {
        let _ = w.join();
    }
}

/// Passes the caller's signal on; kills the call if the caller vanishes
/// before the command ends.
fn watch_caller(conn: &UnixStream, group: i32, call_id: &str, exited: &AtomicBool) {
    loop {
        match wire::receive(conn) {
            Ok(Some((wire::SIGNAL, sig))) => {
                stop::stop_call(call_id, Some(group), i32::from(sig), || true);
                return;
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                if !exited.load(Ordering::SeqCst) {
                    stop::stop_call(call_id, Some(group), sys::SIGKILL, || true);
                }
                return;
            }
        }
    }
}

/// Says on the command's stderr why it could not start, as a shell would;
/// returns 127 (not found) or 126 (cannot be executed).
fn cannot_run(program: &OsString, e: &std::io::Error, stderr: Option<OwnedFd>) -> i32 {
    let (code, why) = match e.kind() {
        std::io::ErrorKind::NotFound => (127, "command not found".to_owned()),
        _ => (126, e.to_string()),
    };
    if let Some(fd) = stderr {
        let _ = writeln!(
            std::fs::File::from(fd),
            "lectic-nix-sandbox: {}: {why}",
            program.to_string_lossy()
        );
    }
    code
}

/// Connects to the agent's socket at `path` without following a symlink
/// the container may have put there (it can write that directory): the
/// socket inode is opened with O_PATH|O_NOFOLLOW, checked, and connected to
/// through /proc/self/fd, which also spares the 108-byte path limit.
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    const O_PATH: i32 = 0o10000000;
    const O_NOFOLLOW: i32 = 0o400000;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_PATH | O_NOFOLLOW)
        .open(path)?;
    if !f.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::other("not a socket"));
    }
    UnixStream::connect(format!("/proc/self/fd/{}", f.as_raw_fd()))
}
