//! The agent's side (see the module's documentation): it listens on the
//! socket, serves each call on a thread of its own, reaps what calls left
//! behind, and ends itself once the container is idle past its TTL.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire::{self, BadRequest, Message};
use crate::container::warm_dir::WarmDir;
use crate::container::watcher::MOUNT;
use crate::error::{Error, IoContext, Result};
use crate::stop::{self, CALL_VAR};
use crate::sys;

/// Look at the TTL at least this often, so a lowered TTL is noticed.
const RECHECK: Duration = Duration::from_secs(10);
/// Threads per call only read a socket and wait; they need little stack.
const CALL_STACK: usize = 128 << 10;
/// How long killing a call's leftovers may take (a fork bomb is frozen
/// round by round, then killed).
const REAP_LIMIT: Duration = Duration::from_secs(5);

/// The calls the agent serves.
#[derive(Default)]
struct Calls {
    /// Open connections: the agent does not end itself while there is one.
    open: AtomicUsize,
    /// The running commands: their pid and call id.
    running: Mutex<Vec<(i32, String)>>,
    /// Calls whose processes may outlive them.
    kept: Mutex<HashSet<String>>,
}

/// Counts a connection as open for as long as it lives.
struct Open(Arc<Calls>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the agent until the container has been idle past its TTL.
pub fn serve(forward: bool) -> Result<()> {
    sys::set_not_dumpable().map_err(|e| Error::os("cannot make the agent non-dumpable", e))?;
    sys::one_malloc_arena();
    // Listening before the first call can run: nothing else takes the port.
    if forward {
        let listener = crate::proxy::forward::listen()
            .map_err(|e| Error::os("cannot listen for the proxy", e))?;
        crate::proxy::forward::spawn(listener)
            .map_err(|e| Error::os("cannot start forwarding", e))?;
    }
    let dir = WarmDir::at(Path::new(MOUNT));
    let path = dir.socket();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_path("cannot listen on", &path)?;
    // What podman gave the container is what `podman exec` would give.
    let base_env: Arc<Vec<(OsString, OsString)>> = Arc::new(std::env::vars_os().collect());
    let calls = Arc::new(Calls::default());
    loop {
        let wait = match dir.left() {
            Some(left) => left.min(RECHECK) + Duration::from_millis(50),
            None if calls.open.load(Ordering::SeqCst) == 0 => {
                // A call that connected meanwhile sees its connection
                // close before ready, and makes a new container.
                drop(listener);
                let _ = std::fs::remove_file(&path);
                return Ok(());
            }
            None => RECHECK,
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
        // Only the host may ask for a call: its pid is outside our pid
        // namespace (0 here), a command's is inside. A command talking to
        // us directly could otherwise start processes we would spare.
        if sys::peer_pid(conn.as_fd()).map_or(true, |pid| pid != 0) {
            continue;
        }
        calls.open.fetch_add(1, Ordering::SeqCst);
        let open = Open(Arc::clone(&calls));
        if wire::send(&conn, Message::Ready).is_err() {
            continue;
        }
        let env = Arc::clone(&base_env);
        let spawned = std::thread::Builder::new()
            .stack_size(CALL_STACK)
            .spawn(move || {
                serve_call(conn, &env, &open.0);
                drop(open);
            });
        if let Err(e) = spawned {
            eprintln!("lectic-nix-sandbox agent: cannot start a thread: {e}");
        }
    }
}

/// One call: start the command, watch the socket, kill what it left
/// behind, report the status.
fn serve_call(conn: UnixStream, base_env: &[(OsString, OsString)], calls: &Calls) {
    let (req, [stdin, stdout, stderr]) = match wire::read_request(&conn) {
        Ok(r) => r,
        Err(BadRequest::Mismatch) => {
            let _ = wire::send(&conn, Message::Mismatch);
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
    if req.keep {
        lock(&calls.kept).insert(req.call_id.clone());
    }
    // Spawned and listed under one lock, which a reaping call holds for a
    // whole round: it never sees the command before it is listed.
    let mut running = lock(&calls.running);
    let spawned = cmd.spawn();
    if let Ok(child) = &spawned {
        running.push((child.id() as i32, req.call_id.clone()));
    }
    drop(running);
    // Our copies of the caller's pipes must go, or its reader never sees EOF.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let code = match report {
                Some(fd) => cannot_run(&req.argv[0], &e, std::fs::File::from(fd)),
                None => cannot_run(&req.argv[0], &e, std::io::sink()),
            };
            let _ = wire::send(&conn, Message::Exit(code as u8));
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
    lock(&calls.running).retain(|(pid, _)| *pid != group);
    // A stop the caller asked for finishes first (it may still be killing
    // what the command started), then whatever is left goes.
    let _ = conn.shutdown(Shutdown::Read);
    if let Ok(w) = watch {
        let _ = w.join();
    }
    reap(calls);
    let _ = wire::send(&conn, Message::Exit(code as u8));
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Passes the caller's signal on; kills the call if the caller vanishes
/// before the command ends.
fn watch_caller(conn: &UnixStream, group: i32, call_id: &str, exited: &AtomicBool) {
    loop {
        match wire::receive(conn) {
            Ok(Some(Message::Signal(sig))) => {
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

/// Kills every process of the container that no running call accounts
/// for: orphans (their parent gone, they hang under init, pid 1) and what
/// they started, unless they carry the mark of a running or kept call.
/// Not the agent, not init, not `podman exec` sessions (whose parent is
/// outside the container: 0 here). A leftover that dropped its call's mark
/// (`env -i`, say) belongs to no call and goes.
fn reap(calls: &Calls) {
    let me = std::process::id() as i32;
    {
        // With no other call connected or running and none kept (a
        // `podman exec` session holds a connection open), everything but
        // init and us goes: one kill(-1) per round reaches a fork bomb's
        // newest children too. Only as the container's main process.
        let running = lock(&calls.running);
        let alone = calls.open.load(Ordering::SeqCst) <= 1; // this call's
        if alone && running.is_empty() && lock(&calls.kept).is_empty() && container_main() {
            let start = std::time::Instant::now();
            while start.elapsed() < REAP_LIMIT {
                let others = stop::process_table().keys().any(|&p| p != 1 && p != me);
                if !others {
                    return;
                }
                sys::signal_all_but_init(sys::SIGKILL);
                std::thread::sleep(Duration::from_millis(5));
            }
            return;
        }
    }
    stop::kill_until_none(REAP_LIMIT, || {
        // Not while a call starts its command: it is listed as it starts.
        let running = lock(&calls.running);
        let mut spared: HashSet<String> = lock(&calls.kept).clone();
        spared.extend(running.iter().map(|(_, id)| id.clone()));
        let table = stop::process_table();
        table
            .keys()
            .copied()
            .filter(|&pid| pid != 1 && pid != me)
            .filter(|&pid| leftover(pid, me, &table, &running))
            .filter(|&pid| !stop::marked_with_any(pid, &spared))
            .collect()
    });
}

/// Whether this process is a container's main process: a child of the
/// pid namespace's init, Podman's catatonit.
fn container_main() -> bool {
    let init = std::fs::read("/proc/1/comm").unwrap_or_default();
    std::os::unix::process::parent_id() == 1
        && (init.starts_with(b"podman-init") || init.starts_with(b"catatonit"))
}

/// Whether `pid` hangs under init (or under the agent) rather than under a
/// running call or an exec session.
fn leftover(pid: i32, me: i32, parents: &HashMap<i32, i32>, running: &[(i32, String)]) -> bool {
    let mut p = pid;
    for _ in 0..parents.len() + 1 {
        if running.iter().any(|(r, _)| *r == p) {
            return false;
        }
        match parents.get(&p) {
            Some(&1) => return true,
            Some(&parent) if parent == me => return true,
            Some(&0) | None => return false,
            Some(&parent) => p = parent,
        }
    }
    false
}

/// Says on the command's stderr why it could not start, as a shell would;
/// returns 127 (not found) or 126 (cannot be executed).
pub(crate) fn cannot_run(
    program: &std::ffi::OsStr,
    e: &std::io::Error,
    mut stderr: impl Write,
) -> i32 {
    let (code, why) = match e.kind() {
        std::io::ErrorKind::NotFound => (127, "command not found".to_owned()),
        _ => (126, e.to_string()),
    };
    let _ = writeln!(
        stderr,
        "lectic-nix-sandbox: {}: {why}",
        program.to_string_lossy()
    );
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_what_hangs_under_init_or_an_ended_call() {
        let me = 2;
        let running = vec![(10, "a".to_owned())];
        let parents: HashMap<i32, i32> = [
            (1, 0),   // init
            (10, me), // a running call
            (11, 10), // and what it started
            (12, 1),  // an orphan
            (13, 12), // and what it started
            (14, 0),  // a `podman exec` session
            (15, 14),
            (16, me), // a call that has ended
        ]
        .into_iter()
        .collect();
        let left: Vec<i32> = {
            let mut v: Vec<i32> = parents
                .keys()
                .copied()
                .filter(|&p| p != 1 && leftover(p, me, &parents, &running))
                .collect();
            v.sort();
            v
        };
        assert_eq!(left, [12, 13, 16]);
    }
}
