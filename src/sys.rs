//! The few libc calls std does not wrap. std links libc already; declaring
//! them here spares a dependency.

unsafe extern "C" {
    fn geteuid() -> u32;
    fn getegid() -> u32;
    fn kill(pid: i32, sig: i32) -> i32;
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
