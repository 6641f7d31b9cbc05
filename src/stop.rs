//! Stopping one call's processes, wherever they run: a command may detach
//! itself (setsid, double fork), so each call carries a unique
//! [`CALL_VAR`] variable, which every process it starts inherits, and a
//! stop signals every process whose environment holds it, as well as the
//! command's process group. /proc shows the processes of our own pid
//! namespace and those below it, so this works from the host (podman path)
//! and from the agent inside the container alike.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::sys;

/// The variable that marks every process of one call.
pub const CALL_VAR: &str = "LECTIC_SANDBOX_CALL";

/// After the first signal, SIGKILL after this long...
pub const KILL_AFTER: Duration = Duration::from_millis(1000);
/// ...and give up after this long (within 2 s of the signal).
pub const GIVE_UP_AFTER: Duration = Duration::from_millis(1800);

/// A fresh id for one call.
pub fn new_call_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut key = crate::digest::Key::new("call");
    key.field("pid", &std::process::id().to_le_bytes())
        .field("time", &now.as_nanos().to_le_bytes());
    key.hex()[..24].to_owned()
}

/// Every pid in /proc (the processes of our pid namespace and those below).
fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// The call id `pid` carries, if any.
pub fn mark_of(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{CALL_VAR}=");
    env.split(|&b| b == 0).find_map(|var| {
        let id = var.strip_prefix(prefix.as_bytes())?;
        String::from_utf8(id.to_vec()).ok()
    })
}

/// Pids of the processes whose environment holds `CALL_VAR=call_id`.
pub fn marked_processes(call_id: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| mark_of(pid).as_deref() == Some(call_id))
        .collect()
}

/// Whether `pid` carries the mark of one of `calls`.
pub fn marked_with_any(pid: i32, calls: &HashSet<String>) -> bool {
    mark_of(pid).is_some_and(|id| calls.contains(&id))
}

/// Kills the processes `victims` names, and what it names next (they may
/// fork meanwhile), until it names none or `limit` passes. They are
/// stopped (SIGSTOP) first, round by round, until no new one appears, so a
/// fork bomb cannot outgrow the rounds; then killed. Each phase is bounded
/// by `limit`.
pub fn kill_until_none(limit: Duration, mut victims: impl FnMut() -> Vec<i32>) {
    let mut start = Instant::now();
    let mut stopped = HashSet::new();
    // Two quiet rounds: one may miss a child whose parent was just dying.
    let mut quiet = 0;
    while start.elapsed() < limit && quiet < 2 {
        let fresh: Vec<i32> = victims()
            .into_iter()
            .filter(|p| !stopped.contains(p))
            .collect();
        quiet = if fresh.is_empty() { quiet + 1 } else { 0 };
        for pid in fresh {
            sys::send_signal(pid, sys::SIGSTOP);
            stopped.insert(pid);
        }
    }
    // The killing gets its own bound: what was stopped must not stay so.
    start = Instant::now();
    while start.elapsed() < limit {
        let pids = victims();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            sys::send_signal(pid, sys::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every live process (zombies left out) and its parent.
pub fn process_table() -> HashMap<i32, i32> {
    process_table_where(|_| true)
}

/// Like [`process_table`], for the processes `keep` admits (asked first,
/// so a cheap test spares reading the others' status).
pub fn process_table_where(keep: impl Fn(i32) -> bool) -> HashMap<i32, i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| keep(pid))
        .filter_map(|pid| Some((pid, sys::live_parent(pid as u32)? as i32)))
        .collect()
}

/// Sends `first` to the call's processes (and to `group`, if given), then
/// SIGKILL after [`KILL_AFTER`] to whatever is left, until none is left
/// and `done()` says the rest of the call is over too; gives up after
/// [`GIVE_UP_AFTER`]. Returns whether everything ended.
pub fn stop_call(
    call_id: &str,
    group: Option<i32>,
    first: i32,
    mut done: impl FnMut() -> bool,
) -> bool {
    let start = Instant::now();
    let mut signalled = HashSet::new();
    if let Some(g) = group {
        sys::signal_group(g, first);
    }
    let mut killed_group = false;
    loop {
        let late = start.elapsed() >= KILL_AFTER;
        if late && !killed_group {
            if let Some(g) = group {
                sys::signal_group(g, sys::SIGKILL);
            }
            killed_group = true;
        }
        let pids = marked_processes(call_id);
        for &pid in &pids {
            if late {
                sys::send_signal(pid, sys::SIGKILL);
            } else if signalled.insert(pid) {
                sys::send_signal(pid, first);
            }
        }
        if pids.is_empty() && done() {
            return true;
        }
        if start.elapsed() >= GIVE_UP_AFTER {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn call_ids_differ() {
        assert_ne!(new_call_id(), new_call_id());
    }

    #[test]
    fn marked_processes_finds_exactly_the_marked_ones() {
        let id = new_call_id();
        let mut marked = Command::new("sleep")
            .arg("30")
            .env(CALL_VAR, &id)
            .spawn()
            .unwrap();
        let mut other = Command::new("sleep")
            .arg("30")
            .env(CALL_VAR, format!("{id}x"))
            .spawn()
            .unwrap();
        let found = marked_processes(&id);
        assert_eq!(found, vec![marked.id() as i32]);
        marked.kill().unwrap();
        other.kill().unwrap();
        let _ = (marked.wait(), other.wait());
    }

    #[test]
    fn stop_call_kills_what_ignores_the_first_signal() {
        let id = new_call_id();
        let mut stubborn = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.05; done"])
            .env(CALL_VAR, &id)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let mut reaped = false;
        let ended = stop_call(&id, None, sys::SIGTERM, || {
            reaped = reaped || matches!(stubborn.try_wait(), Ok(Some(_)));
            reaped
        });
        assert!(ended);
    }
}
