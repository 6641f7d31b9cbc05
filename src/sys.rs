//! The few libc calls std does not wrap. std links libc already; declaring
//! them here spares a dependency.

unsafe extern "C" {
    fn geteuid() -> u32;
    fn getegid() -> u32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    fn sendmsg(fd: i32, msg: *const MsgHdr, flags: i32) -> isize;
    fn recvmsg(fd: i32, msg: *mut MsgHdr, flags: i32) -> isize;
    fn poll(fds: *mut PollFd, n: u64, timeout_ms: i32) -> i32;
    fn getxattr(
        path: *const std::ffi::c_char,
        name: *const std::ffi::c_char,
        value: *mut std::ffi::c_void,
        size: usize,
    ) -> isize;
}

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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

/// Sends `sig` to every process of group `pgid`; false if none is left.
pub fn signal_group(pgid: i32, sig: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill takes plain integers; -pgid (< -1) names one group.
    unsafe { kill(-pgid, sig) == 0 }
}

/// Sends `sig` to `pid`; false if the process is gone or not ours.
pub fn send_signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false; // never a process group or "every process"
    }
    // SAFETY: kill takes plain integers; pid > 0 names one process.
    unsafe { kill(pid, sig) == 0 }
}

/// A process's exit status as a shell reports it: its code, or 128+N when
/// signal N ended it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(125)
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

// The Linux layouts of `struct iovec`, `struct msghdr`, `struct cmsghdr`
// and `struct pollfd` (the same on every 64-bit and 32-bit glibc/musl
// target, thanks to C alignment rules that repr(C) follows).
#[repr(C)]
struct IoVec {
    base: *mut std::ffi::c_void,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: *mut std::ffi::c_void,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut std::ffi::c_void,
    controllen: usize,
    flags: i32,
}

#[repr(C)]
struct CmsgHdr {
    len: usize,
    level: i32,
    kind: i32,
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const MSG_NOSIGNAL: i32 = 0x4000;
const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;
const MSG_CTRUNC: i32 = 0x8;
/// Room for this many passed descriptors; a call passes three.
const MAX_FDS: usize = 8;
const CMSG_HDR: usize = std::mem::size_of::<CmsgHdr>();

/// Calls a byte-counting system call until a signal does not interrupt it.
fn retry_interrupted(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes `data` on a Unix socket with `fds` attached (SCM_RIGHTS); returns
/// how many bytes went out (the descriptors go with the first of them).
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    assert!(fds.len() <= MAX_FDS && !data.is_empty());
    // u64 words keep the buffer aligned as cmsghdr needs.
    let mut control = [0u64; (CMSG_HDR + 4 * MAX_FDS).div_ceil(8)];
    let used = CMSG_HDR + 4 * fds.len();
    let header = CmsgHdr {
        len: used,
        level: SOL_SOCKET,
        kind: SCM_RIGHTS,
    };
    // SAFETY: `control` is larger than `used` bytes and 8-aligned; we write
    // the header and then the descriptor numbers right after it.
    unsafe {
        let base = control.as_mut_ptr().cast::<u8>();
        std::ptr::write(base.cast::<CmsgHdr>(), header);
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(base.add(CMSG_HDR + 4 * i).cast::<i32>(), fd.as_raw_fd());
        }
    }
    let mut iov = IoVec {
        base: data.as_ptr() as *mut _,
        len: data.len(),
    };
    let msg = MsgHdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        // CMSG_SPACE: the payload padded to the word size.
        controllen: if fds.is_empty() {
            0
        } else {
            used.div_ceil(8) * 8
        },
        flags: 0,
    };
    // SAFETY: every pointer in `msg` points at live buffers above.
    retry_interrupted(|| unsafe { sendmsg(sock.as_raw_fd(), &msg, MSG_NOSIGNAL) })
}

/// Reads up to `buf.len()` bytes from a Unix socket and the descriptors
/// that came with them (close-on-exec, so no other command inherits them).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = [0u64; (CMSG_HDR + 4 * MAX_FDS).div_ceil(8)];
    let mut iov = IoVec {
        base: buf.as_mut_ptr().cast(),
        len: buf.len(),
    };
    let mut msg = MsgHdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen: std::mem::size_of_val(&control),
        flags: 0,
    };
    // SAFETY: every pointer in `msg` points at live buffers above.
    let n = retry_interrupted(|| unsafe { recvmsg(sock.as_raw_fd(), &mut msg, MSG_CMSG_CLOEXEC) })?;
    let mut fds = Vec::new();
    let mut offset = 0;
    let base = control.as_ptr().cast::<u8>();
    // Walk the control messages (CMSG_FIRSTHDR/CMSG_NXTHDR).
    while offset + CMSG_HDR <= msg.controllen {
        // SAFETY: offset + CMSG_HDR is within the bytes the kernel filled.
        let h = unsafe { std::ptr::read_unaligned(base.add(offset).cast::<CmsgHdr>()) };
        if h.len < CMSG_HDR || offset + h.len > msg.controllen {
            break;
        }
        if h.level == SOL_SOCKET && h.kind == SCM_RIGHTS {
            for i in 0..(h.len - CMSG_HDR) / 4 {
                // SAFETY: within this message's data; the kernel gave us
                // each descriptor, so we own it.
                unsafe {
                    let fd =
                        std::ptr::read_unaligned(base.add(offset + CMSG_HDR + 4 * i).cast::<i32>());
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
        }
        offset += h.len.div_ceil(8) * 8;
    }
    if msg.flags & MSG_CTRUNC != 0 {
        return Err(io::Error::other("too many descriptors were passed"));
    }
    Ok((n, fds))
}

/// Waits until `fd` is readable (or closed), at most `timeout`; true if so.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<bool> {
    const POLLIN: i16 = 1;
    let mut p = PollFd {
        fd: fd.as_raw_fd(),
        events: POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd.
    let n = unsafe { poll(&mut p, 1, ms) };
    match n {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_of_a_signalled_process_is_128_plus_signal() {
        let sh = |script: &str| {
            std::process::Command::new("sh")
                .args(["-c", script])
                .status()
                .unwrap()
        };
        assert_eq!(exit_code(sh("kill -TERM $$")), 143);
        assert_eq!(exit_code(sh("exit 3")), 3);
    }

    #[test]
    fn descriptors_pass_over_a_socket_pair() {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut r, mut w) = std::io::pipe().unwrap();
        let n = send_with_fds(a.as_fd(), b"hi", &[w.as_fd(), r.as_fd()]).unwrap();
        assert_eq!(n, 2);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"hi"[..], 2));
        // The passed write end reaches the pipe we kept.
        let mut passed = std::fs::File::from(fds.into_iter().next().unwrap());
        passed.write_all(b"through").unwrap();
        drop((passed, w.flush()));
        drop(w);
        let mut got = [0u8; 7];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through");
        assert!(wait_readable(b.as_fd(), std::time::Duration::from_millis(10)).is_ok());
    }

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
