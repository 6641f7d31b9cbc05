//! The system calls std lacks, through the libc crate, so their constants
//! and struct layouts are right on every architecture. Every libc call of
//! the program lives in this module.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub const SIGHUP: i32 = libc::SIGHUP;
pub const SIGINT: i32 = libc::SIGINT;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGCONT: i32 = libc::SIGCONT;
pub const SIGSTOP: i32 = libc::SIGSTOP;
/// For `OpenOptionsExt::custom_flags`: a final symlink is not followed.
pub const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn egid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Sends `sig` to every process of group `pgid`; false if none is left.
pub fn signal_group(pgid: i32, sig: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill takes plain integers; -pgid (< -1) names one group.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// Sends `sig` to every process this one may signal but itself and the
/// init of its pid namespace (`kill(-1)`): only for the agent, as the main
/// process of a container (see `agent::reap`).
pub fn signal_all_but_init(sig: i32) -> bool {
    // SAFETY: kill takes plain integers; -1 names every process we may
    // signal, init and ourselves excepted.
    unsafe { libc::kill(-1, sig) == 0 }
}

/// Sends `sig` to `pid`; false if the process is gone or not ours.
pub fn send_signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false; // never a process group or "every process"
    }
    // SAFETY: kill takes plain integers; pid > 0 names one process.
    unsafe { libc::kill(pid, sig) == 0 }
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

/// prctl(2) with one argument (the others zero, as some options require).
/// Async-signal-safe: no allocation, errno read only on failure.
fn prctl(option: i32, arg: libc::c_ulong) -> io::Result<()> {
    let zero: libc::c_ulong = 0;
    // SAFETY: prctl takes plain integers; every option used here reads
    // at most its unsigned long arguments.
    if unsafe { libc::prctl(option, arg, zero, zero, zero) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to SIGKILL this process when its parent dies. For a
/// child between fork and exec (`CommandExt::pre_exec`): async-signal-safe.
pub fn kill_with_parent() -> std::io::Result<()> {
    prctl(libc::PR_SET_PDEATHSIG, SIGKILL as libc::c_ulong)
}

/// Bounds on a child's resources (setrlimit): its address space, CPU
/// seconds and the size of any file it writes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub address_space: u64,
    pub cpu_seconds: u64,
    pub file_size: u64,
}

impl Limits {
    /// Sets them in this process. For a child between fork and exec
    /// (`CommandExt::pre_exec`): async-signal-safe.
    pub fn apply(self) -> io::Result<()> {
        for (resource, value) in [
            (libc::RLIMIT_AS, self.address_space),
            (libc::RLIMIT_CPU, self.cpu_seconds),
            (libc::RLIMIT_FSIZE, self.file_size),
        ] {
            let limit = libc::rlimit {
                rlim_cur: value as libc::rlim_t,
                rlim_max: value as libc::rlim_t,
            };
            // SAFETY: `limit` is a valid rlimit for the call's duration.
            if unsafe { libc::setrlimit(resource, &limit) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Ignores the signals that stop a call (SIGTERM, SIGINT, SIGHUP): for a
/// process that must outlive its child's handling of them.
pub fn ignore_stop_signals() {
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        // SAFETY: SIG_IGN installs no handler of ours.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
}

/// Starts a new session, leaving the caller's process group and terminal.
/// For a child between fork and exec: async-signal-safe.
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A descriptor that becomes readable when process `pid` ends (Linux 5.3).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The networks this host is on: each address of its interfaces with its
/// prefix length (its own address, and the hosts on the same link).
pub fn local_networks() -> io::Result<Vec<(std::net::IpAddr, u8)>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    // SAFETY (both): `sa` is null or a sockaddr of the family it names.
    let ip = |sa: *const libc::sockaddr| unsafe {
        if sa.is_null() {
            return None;
        }
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*sa.cast::<libc::sockaddr_in>();
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*sa.cast::<libc::sockaddr_in6>();
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    };
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs gave.
        let ifa = unsafe { &*p };
        if let Some(addr) = ip(ifa.ifa_addr) {
            let bits = match ip(ifa.ifa_netmask) {
                Some(IpAddr::V4(m)) => u32::from(m).count_ones() as u8,
                Some(IpAddr::V6(m)) => u128::from(m).count_ones() as u8,
                None => {
                    if addr.is_ipv4() {
                        32
                    } else {
                        128
                    }
                }
            };
            out.push((addr, bits));
        }
        p = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs gave, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Whether `fd` is a stream socket.
pub fn is_stream_socket(fd: BorrowedFd<'_>) -> bool {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_TYPE writes one int into `kind`, of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && kind == libc::SOCK_STREAM
}

/// Keeps malloc to one arena: glibc gives each thread that allocates an
/// arena of its own, whose pages stay resident after the thread ends (the
/// agent serves each call on a short-lived thread). musl has one anyway.
pub fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Makes this process not dumpable: no core dump, and processes of the
/// same uid (without CAP_SYS_PTRACE) can neither ptrace it nor read its
/// /proc entries (environ, fd/, mem). An exec undoes it.
pub fn set_not_dumpable() -> io::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, 0)
}

/// Whether `path` carries file capabilities (as newuidmap may instead of
/// being setuid).
pub fn has_file_capabilities(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0
    // only asks for the attribute's length.
    unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        ) > 0
    }
}

/// Opens `path` itself with O_PATH|O_NOFOLLOW (and O_CLOEXEC): a final
/// symlink is opened as the link, not followed. The file can be inspected
/// (`metadata`) and named through /proc/self/fd, not read or written.
pub fn open_path_nofollow(path: &Path) -> io::Result<std::fs::File> {
    open_path_at(libc::AT_FDCWD, &c_name(path.as_os_str())?, 0)
}

/// `openat(at, name, O_PATH|O_NOFOLLOW|O_CLOEXEC|extra)`. Not through
/// std's `custom_flags`, which masks O_ACCMODE out of them, and musl's
/// O_ACCMODE includes O_PATH: a musl build would open without it.
fn open_path_at(at: RawFd, name: &std::ffi::CStr, extra: libc::c_int) -> io::Result<std::fs::File> {
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC | extra;
    // SAFETY: `at` is AT_FDCWD or an open descriptor, `name` NUL-terminated.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that we now own.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Opens the absolute, normalized (no `.` or `..`) `path` with O_PATH,
/// one component at a time from `/`, never following a symlink: a
/// symlink anywhere on the path is an error (ELOOP), even one put there
/// while we walk. What is returned is the inode the path named.
pub fn open_no_symlinks(path: &Path) -> io::Result<std::fs::File> {
    let mut at = open_path_at(libc::AT_FDCWD, c"/", libc::O_DIRECTORY)?;
    for part in path.components() {
        let name = match part {
            std::path::Component::RootDir => continue,
            std::path::Component::Normal(name) => name,
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let next = open_path_at(at.as_raw_fd(), &c_name(name)?, 0)?;
        if next.metadata()?.file_type().is_symlink() {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        at = next;
    }
    Ok(at)
}

/// Opens `name` (one path component) in the directory `at` with O_PATH,
/// without following it if it is a symlink: the link itself is opened.
pub fn open_at_nofollow(at: &std::fs::File, name: &std::ffi::OsStr) -> io::Result<std::fs::File> {
    open_path_at(at.as_raw_fd(), &c_name(name)?, 0)
}

/// Creates the directory `name` in the directory `at` with `mode`.
pub fn mkdir_at(at: &std::fs::File, name: &std::ffi::OsStr, mode: u32) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: `at` is an open descriptor and `name` NUL-terminated.
    if unsafe { libc::mkdirat(at.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The target of the symlink `name` in the directory `at`.
pub fn readlink_at(at: &std::fs::File, name: &std::ffi::OsStr) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let name = c_name(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` has `buf.len()` writable bytes; `name` is NUL-terminated.
    let n = unsafe {
        libc::readlinkat(
            at.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(std::ffi::OsString::from_vec(buf).into())
}

/// Sets the mode of the directory `at` (opened with O_PATH) to `mode`.
pub fn chmod_dir(at: &std::fs::File, mode: u32) -> io::Result<()> {
    // O_PATH descriptors refuse fchmod; their /proc/self/fd name does not.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fd_path(at), std::fs::Permissions::from_mode(mode))
}

/// Whether `f` (any descriptor, O_PATH too) carries a POSIX access ACL
/// beyond its mode bits; then its group bits are the ACL's mask, and named
/// users or groups may have what the mask allows.
pub fn has_acl(f: &std::fs::File) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(fd_path(f).as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0
    // asks only for the attribute's size.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    n > 0
}

/// A path naming the open file `f` (its /proc/self/fd link), to open it
/// again with other flags.
pub fn fd_path(f: &std::fs::File) -> std::path::PathBuf {
    format!("/proc/self/fd/{}", f.as_raw_fd()).into()
}

fn c_name(name: &std::ffi::OsStr) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Whether `e` is [`open_no_symlinks`] finding a symlink.
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// The pid of the process at the other end of Unix socket `sock`, as it
/// was when it connected (SO_PEERCRED); 0 if it is in a pid namespace
/// this process cannot see.
pub fn peer_pid(sock: BorrowedFd<'_>) -> io::Result<i32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live ucred and `len` its size.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.pid)
}

/// Whether `fd` is a pipe (FIFO) or a socket, not a file or a device.
pub fn is_pipe_or_socket(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let kind = fstat(fd)?.st_mode & libc::S_IFMT;
    Ok(kind == libc::S_IFIFO || kind == libc::S_IFSOCK)
}

/// Whether `fd` is /dev/null (the character device 1:3).
pub fn is_dev_null(fd: BorrowedFd<'_>) -> bool {
    fstat(fd).is_ok_and(|st| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
    })
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one struct stat into `st`.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// The login name of `uid` (from the user database, else USER, else the
/// number).
pub fn user_name(uid: u32) -> String {
    passwd(uid)
        .map(|(name, _)| name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string())
}

/// The entries of a colon-separated database file (/etc/passwd, /etc/group).
///
/// Read as files, not through NSS: the program is linked statically, and
/// glibc's NSS modules loaded into a static binary crash (seen here with
/// nss_systemd). Users known only to NSS (LDAP, systemd-homed) are
/// therefore not found, which counts as an unknown user.
fn db_entries(file: &str) -> Vec<Vec<String>> {
    std::fs::read(file)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(|l| l.split(':').map(str::to_owned).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// `uid`'s name and home directory in /etc/passwd, which the user cannot
/// change, unlike USER and HOME.
pub fn passwd(uid: u32) -> Option<(String, Option<std::path::PathBuf>)> {
    let uid = uid.to_string();
    db_entries("/etc/passwd")
        .into_iter()
        .find(|f| f.len() > 5 && f[2] == uid)
        .map(|f| {
            let home = Some(std::path::PathBuf::from(&f[5])).filter(|h| h.is_absolute());
            (f[0].clone(), home)
        })
}

/// Whether group `gid` has no member but `user`, by /etc/group's list and
/// by /etc/passwd's primary groups (a user private group, where group
/// write gives no one else anything).
pub fn group_has_only(gid: u32, user: &str) -> bool {
    let gid = gid.to_string();
    let listed = db_entries("/etc/group")
        .into_iter()
        .find(|f| f.len() > 3 && f[2] == gid);
    let Some(group) = listed else {
        return false;
    };
    let members_ok = group[3].split(',').all(|m| m.is_empty() || m == user);
    let primary_ok = db_entries("/etc/passwd")
        .iter()
        .all(|f| f.len() < 4 || f[3] != gid || f[0] == user);
    members_ok && primary_ok
}

/// Field `n` (numbered from 1 as in proc(5); n ≥ 3) of /proc/<pid>/stat,
/// or None if there is no such process.
fn stat_field<T: std::str::FromStr>(pid: u32, n: usize) -> Option<T> {
    stat_fields(pid)?.nth(n.checked_sub(3)?)?.parse().ok()
}

/// The fields of /proc/<pid>/stat from the third (the state) on.
fn stat_fields(pid: u32) -> Option<std::vec::IntoIter<String>> {
    // Bytes: the command name (field 2) is whatever the process set, not
    // always UTF-8, and may contain spaces and parentheses; the fields
    // after its closing one are plain.
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
    Some(
        rest.split(' ')
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter(),
    )
}

/// Whether process `pid` is stopped (SIGSTOP), waiting for SIGCONT.
pub fn is_stopped(pid: u32) -> bool {
    stat_fields(pid).and_then(|mut f| f.next()).as_deref() == Some("T")
}

/// The parent of process `pid` while it lives: None for no such process
/// and for a zombie (dead, only waiting for its parent to reap it).
pub fn live_parent(pid: u32) -> Option<u32> {
    let mut fields = stat_fields(pid)?;
    match fields.next()?.as_str() {
        "Z" | "X" => None,
        _ => fields.next()?.parse().ok(),
    }
}

/// When process `pid` started (clock ticks since boot), or None if there is
/// no such process. With the pid it names one process across pid reuse.
pub fn process_start(pid: u32) -> Option<u64> {
    stat_field(pid, 22)
}

/// The parent of process `pid`, or None if there is no such process.
pub fn parent_pid(pid: u32) -> Option<u32> {
    stat_field(pid, 4)
}

/// Process `pid` as `pid:start` (see `process_start`), if it runs.
pub fn identity(pid: u32) -> Option<String> {
    Some(format!("{pid}:{}", process_start(pid)?))
}

/// This process, as `pid:start` (see `process_start`).
pub fn self_identity() -> String {
    let pid = std::process::id();
    identity(pid).unwrap_or_else(|| format!("{pid}:0"))
}

/// Whether the process named by a `pid:start` identity still runs.
pub fn identity_alive(identity: &str) -> bool {
    live_pid(identity).is_some()
}

/// The pid of the process a `pid:start` identity names, while it runs.
pub fn live_pid(identity: &str) -> Option<u32> {
    let (pid, start) = identity.split_once(':')?;
    let (pid, start) = (pid.parse::<u32>().ok()?, start.parse::<u64>().ok()?);
    (process_start(pid) == Some(start)).then_some(pid)
}

/// Room for this many passed descriptors; a call passes three.
const MAX_FDS: usize = 8;
const FDS_BYTES: libc::c_uint = (MAX_FDS * std::mem::size_of::<RawFd>()) as libc::c_uint;
// SAFETY: CMSG_SPACE is arithmetic on its argument.
const CONTROL_LEN: usize = unsafe { libc::CMSG_SPACE(FDS_BYTES) } as usize;

/// A control-message buffer, aligned as `cmsghdr` needs (its alignment is
/// that of size_t: at most 8).
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);
const _: () = assert!(std::mem::align_of::<libc::cmsghdr>() <= 8);

/// A `msghdr` for one buffer and no address or control data.
fn msghdr(iov: &mut libc::iovec) -> libc::msghdr {
    // SAFETY: msghdr is plain data (pointers, lengths, padding on some
    // targets); all zeroes is "no address, no buffers, no control data".
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg
}

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
    let mut control = Control([0; CONTROL_LEN]);
    let mut iov = libc::iovec {
        // sendmsg only reads through it.
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut msg = msghdr(&mut iov);
    if !fds.is_empty() {
        let bytes = (fds.len() * std::mem::size_of::<RawFd>()) as libc::c_uint;
        msg.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic on its argument.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes) } as _;
        // SAFETY: msg_control points at CONTROL_LEN ≥ msg_controllen bytes
        // aligned for cmsghdr, so CMSG_FIRSTHDR is not null, and its header
        // and CMSG_LEN(bytes) of data lie within them.
        unsafe {
            let h = libc::CMSG_FIRSTHDR(&msg);
            (*h).cmsg_level = libc::SOL_SOCKET;
            (*h).cmsg_type = libc::SCM_RIGHTS;
            (*h).cmsg_len = libc::CMSG_LEN(bytes) as _;
            let data = libc::CMSG_DATA(h).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: every pointer in `msg` points at live buffers above.
    retry_interrupted(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })
}

/// Reads up to `buf.len()` bytes from a Unix socket and the descriptors
/// that came with them (close-on-exec, so no other command inherits them).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = Control([0; CONTROL_LEN]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg = msghdr(&mut iov);
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL_LEN as _;
    // SAFETY: every pointer in `msg` points at live buffers above.
    let n = retry_interrupted(|| unsafe {
        libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC)
    })?;
    // The kernel set msg_controllen to the bytes of control data it wrote.
    // (socklen_t on musl, size_t on glibc: hence `as _`.)
    let controllen: usize = msg.msg_controllen as _;
    let end = control.0.as_ptr() as usize + controllen;
    // SAFETY: CMSG_LEN is arithmetic on its argument.
    let header = unsafe { libc::CMSG_LEN(0) } as usize;
    let mut fds = Vec::new();
    // SAFETY: `msg` describes the control data the kernel wrote;
    // CMSG_FIRSTHDR gives null or a header wholly within it.
    let mut h = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !h.is_null() {
        // SAFETY: `h` is a whole header within the control data.
        let (level, kind, len) = unsafe { ((*h).cmsg_level, (*h).cmsg_type, (*h).cmsg_len) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            let len: usize = len as _;
            let len = len.min(end - h as usize);
            // SAFETY: CMSG_DATA is `header` bytes past `h`, within `len`.
            let data = unsafe { libc::CMSG_DATA(h) }.cast::<RawFd>();
            for i in 0..len.saturating_sub(header) / std::mem::size_of::<RawFd>() {
                // SAFETY: within this message's data; the kernel gave us
                // each descriptor, so we own it.
                fds.push(unsafe { OwnedFd::from_raw_fd(data.add(i).read_unaligned()) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR; CMSG_NXTHDR gives null past the end.
        h = unsafe { libc::CMSG_NXTHDR(&msg, h) };
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("too many descriptors were passed"));
    }
    Ok((n, fds))
}

/// Waits until `fd` is readable (or closed), at most `timeout`; true if so.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
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
    use std::os::fd::AsFd;

    #[test]
    fn limits_bind_the_child_they_are_applied_in() {
        use std::os::unix::process::CommandExt;
        let limits = Limits {
            address_space: 3 << 30,
            cpu_seconds: 60,
            file_size: 1 << 20,
        };
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "ulimit -v; ulimit -t; ulimit -f"]);
        // SAFETY: the closure makes async-signal-safe system calls only.
        unsafe {
            cmd.pre_exec(move || limits.apply());
        }
        let out = cmd.output().unwrap();
        // KiB, seconds, 512-byte blocks.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "3145728\n60\n2048\n");
    }

    fn scratch(name: &str) -> crate::testutil::TempDir {
        crate::testutil::TempDir::new(&format!("sys-{name}"))
    }

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
    fn the_hosts_networks_include_loopback() {
        let local = local_networks().unwrap();
        assert!(
            local.contains(&("127.0.0.1".parse().unwrap(), 8)),
            "{local:?}"
        );
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(is_stream_socket(a.as_fd()));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!is_stream_socket(udp.as_fd()) && is_stream_socket(b.as_fd()));
    }

    #[test]
    fn descriptors_pass_over_a_socket_pair() {
        use std::io::{Read, Write};
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
    fn data_without_descriptors_passes_and_none_come_out() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(send_with_fds(a.as_fd(), b"plain", &[]).unwrap(), 5);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"plain"[..], 0));
        let quiet = wait_readable(b.as_fd(), std::time::Duration::from_millis(10)).unwrap();
        assert!(!quiet, "nothing more to read");
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

    #[test]
    fn the_user_database_names_root_and_its_home() {
        let (name, home) = passwd(0).unwrap();
        assert_eq!(name, "root");
        assert_eq!(home.as_deref(), Some(Path::new("/root")));
        assert!(passwd(4_000_000_000).is_none());
        // Group 0 lists no members on Debian: "only root" holds.
        assert!(group_has_only(0, "root"));
        assert!(!group_has_only(0, "someone-else"), "root's primary group");
        assert!(!group_has_only(4_000_000_000, "root"));
    }

    #[test]
    fn open_no_symlinks_refuses_a_symlink_anywhere_on_the_path() {
        let scratch = crate::testutil::TempDir::new("sys-walk");
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("real/inner")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        let dir = std::fs::canonicalize(dir).unwrap();
        let f = open_no_symlinks(&dir.join("real/inner")).unwrap();
        let want = std::fs::metadata(dir.join("real/inner")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(f.metadata().unwrap().ino(), want.ino());
        for through in ["link", "link/inner"] {
            let e = open_no_symlinks(&dir.join(through)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{through}");
        }
        assert!(open_no_symlinks(&dir.join("real/../real")).is_err());
    }

    #[test]
    fn a_process_named_in_bytes_that_are_not_utf8_is_still_seen() {
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "printf '\\377) x' > /proc/self/comm; while :; do sleep 1; done",
            ])
            .spawn()
            .unwrap();
        let renamed = (0..400).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            std::fs::read(format!("/proc/{}/comm", child.id())).is_ok_and(|c| c[0] == 0xff)
        });
        let parent = live_parent(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(renamed, "the name was set");
        assert_eq!(parent, Some(std::process::id()));
    }

    #[test]
    fn parent_of_a_child_is_this_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let parent = parent_pid(child.id());
        assert_eq!(live_parent(child.id()), parent);
        child.kill().unwrap();
        // Killed but not yet reaped: a zombie, which has no live parent.
        let zombie = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            live_parent(child.id()).is_none()
        });
        child.wait().unwrap();
        assert_eq!(parent, Some(std::process::id()));
        assert!(zombie, "a zombie is not alive");
        let mut stopped = std::process::Command::new("sh")
            .args(["-c", "kill -STOP $$; exit 7"])
            .spawn()
            .unwrap();
        let seen = (0..400).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            is_stopped(stopped.id())
        });
        assert!(seen, "a stopped process is stopped");
        send_signal(stopped.id() as i32, libc::SIGCONT);
        assert_eq!(stopped.wait().unwrap().code(), Some(7));
        assert_eq!(parent_pid(u32::MAX), None, "no such process");
    }

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer_pid(a.as_fd()).unwrap(), std::process::id() as i32);
        let (r, _w) = std::io::pipe().unwrap();
        assert!(peer_pid(r.as_fd()).is_err(), "a pipe has no peer");
    }

    #[test]
    fn a_pipe_is_a_pipe_and_a_file_is_not() {
        let (r, w) = std::io::pipe().unwrap();
        assert!(is_pipe_or_socket(r.as_fd()).unwrap());
        assert!(is_pipe_or_socket(w.as_fd()).unwrap());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(is_pipe_or_socket(a.as_fd()).unwrap(), "a socket");
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_pipe_or_socket(file.as_fd()).unwrap());
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_pipe_or_socket(null.as_fd()).unwrap(), "a device");
        assert!(is_dev_null(null.as_fd()) && !is_dev_null(file.as_fd()));
        let zero = std::fs::File::open("/dev/zero").unwrap();
        assert!(!is_dev_null(zero.as_fd()), "another device");
    }

    #[test]
    fn a_socket_opens_with_o_path_on_every_libc() {
        // Without O_PATH (std's custom_flags drops it on musl) this is ENXIO.
        let dir = scratch("socket");
        let path = dir.join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let f = open_path_nofollow(&path).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(f.metadata().unwrap().file_type().is_socket());
        assert!(open_no_symlinks(&path).is_ok());
    }

    #[test]
    fn open_path_nofollow_refuses_to_follow_a_symlink() {
        let dir = scratch("nofollow");
        std::fs::write(dir.join("target"), "x").unwrap();
        std::os::unix::fs::symlink("target", dir.join("link")).unwrap();
        let link = open_path_nofollow(&dir.join("link")).unwrap();
        assert!(link.metadata().unwrap().file_type().is_symlink());
        let target = open_path_nofollow(&dir.join("target")).unwrap();
        assert!(target.metadata().unwrap().is_file());
    }

    #[test]
    fn a_process_made_not_dumpable_is_not_dumpable() {
        // In a forked child, so this test process stays dumpable.
        // SAFETY: the child makes only async-signal-safe calls (prctl,
        // _exit) and never returns into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: PR_GET_DUMPABLE takes no argument.
            let before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
            let made = set_not_dumpable().is_ok();
            // SAFETY: as above.
            let after = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
            let code = if before != 0 && made && after == 0 {
                0
            } else {
                1
            };
            // SAFETY: ends the child without running the parent's exit code.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child, into a live int.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
