//! The few libc calls std does not wrap. std links libc already; declaring
//! them here spares a dependency.

unsafe extern "C" {
    fn geteuid() -> u32;
    fn getegid() -> u32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    fn getxattr(
        path: *const std::ffi::c_char,
        name: *const std::ffi::c_char,
        value: *mut std::ffi::c_void,
        size: usize,
    ) -> isize;
}

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() }
}

pub fn egid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { getegid() }
}

/// Sends `sig` to `pid`; false if the process is gone or not ours.
pub fn send_signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false; // never a process group or "every process"
    }
    // SAFETY: kill takes plain integers; pid > 0 names one process.
    unsafe { kill(pid, sig) == 0 }
}

/// Asks the kernel to SIGKILL this process when its parent dies. For a
/// child between fork and exec (`CommandExt::pre_exec`): async-signal-safe.
pub fn kill_with_parent() -> std::io::Result<()> {
    const PR_SET_PDEATHSIG: i32 = 1;
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number only.
    if unsafe { prctl(PR_SET_PDEATHSIG, SIGKILL as u64, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `path` carries file capabilities (as newuidmap may instead of
/// being setuid).
pub fn has_file_capabilities(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0
    // only asks for the attribute's length.
    unsafe {
        getxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        ) > 0
    }
}

/// The login name of `uid` (from /etc/passwd, else USER, else the number).
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
            })
        })
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string())
}

/// When process `pid` started (clock ticks since boot), or None if there is
/// no such process. With the pid it names one process across pid reuse.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it don't.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// This process, as `pid:start` (see `process_start`).
pub fn self_identity() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", process_start(pid).unwrap_or(0))
}

/// Whether the process named by a `pid:start` identity still runs.
pub fn identity_alive(identity: &str) -> bool {
    let Some((pid, start)) = identity.split_once(':') else {
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => process_start(pid) == Some(start),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_name_live_processes_only() {
        assert!(identity_alive(&self_identity()));
        let pid = std::process::id();
        assert!(!identity_alive(&format!("{pid}:1")), "another start time");
        assert!(!identity_alive("garbage"));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = format!("{}:{}", child.id(), process_start(child.id()).unwrap_or(0));
        child.wait().unwrap();
        assert!(!identity_alive(&id));
    }
}
