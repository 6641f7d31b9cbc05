//! A warm container's proxy process: this binary as `--internal-proxy
//! DIR`, started by the call that finds the container without one (it was
//! just made, or its proxy died), in a session of its own, as the user.
//! It lives exactly as long as the container's init: it waits on a pidfd
//! of the init recorded at creation and exits when that ends.
//!
//! `proxy.lock` (host-only part of the state directory) is held by the
//! proxy for its whole life, so a call knows it runs with one `flock`, no
//! process of its own; `proxy.pid` says which init it serves, so a proxy
//! of an earlier container of the same name (it ends within moments of its
//! init) is not taken for this one's. Starting is serialised by
//! `proxy-start.lock`, so parallel calls start one proxy.

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::log::Log;
use super::rules::Rules;
use super::server::{self, Proxy};
use crate::container::warm_dir::WarmDir;
use crate::error::{Error, IoContext, Result};
use crate::lock::{self, Mode};
use crate::state::Guard;
use crate::{fsutil, sys};

/// The argument that makes this binary a container's proxy (checked
/// before the command line is parsed, and only as argv[1]).
pub const ARG: &str = "--internal-proxy";
/// How long a proxy may take to say it serves.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Makes sure a proxy serves the container of `dir` with `rules`.
pub fn ensure(dir: &WarmDir, rules: &Rules) -> Result<()> {
    if serving(dir).is_some() {
        return Ok(());
    }
    let _starting = lock::acquire(
        &dir.proxy_start_lock(),
        Mode::Exclusive,
        Guard::ProxyStart.what(),
        Guard::ProxyStart.wait(),
    )?;
    if serving(dir).is_some() {
        return Ok(());
    }
    fsutil::write_atomic(&dir.proxy_rules(), rules.to_lines().as_bytes())?;
    start(dir)
}

/// The `pid:start` of the proxy serving the container's current init, if
/// one runs.
pub fn serving(dir: &WarmDir) -> Option<String> {
    let init = dir.main()?.init;
    let free = lock::try_acquire(&dir.proxy_lock(), Mode::Shared).ok()?;
    if free.is_some() {
        return None;
    }
    let (proxy, serves) = dir.proxy()?;
    (serves == init).then_some(proxy)
}

fn start(dir: &WarmDir) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::os("cannot find this executable", e))?;
    let err_path = dir.proxy_err();
    let err = std::fs::File::create(&err_path).with_path("cannot create", &err_path)?;
    let mut cmd = Command::new(&exe);
    cmd.arg(ARG)
        .arg(dir.path())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    // Not in the call's process group or session: a signal to the call
    // (Lectic's timeout) or the end of its terminal does not end it.
    // SAFETY: the closure makes one async-signal-safe system call.
    unsafe {
        cmd.pre_exec(sys::new_session);
    }
    let mut child = cmd.spawn().map_err(|e| Error::Spawn {
        program: exe.display().to_string(),
        source: e,
    })?;
    let out = child.stdout.take().expect("piped");
    let said = sys::wait_readable(out.as_fd(), START_LIMIT)
        .ok()
        .filter(|r| *r)
        .and_then(|_| BufReader::new(out).lines().next()?.ok());
    if said.as_deref() == Some("ready") {
        crate::verbose!("started the proxy of {} (--allow-host)", dir.name);
        return Ok(());
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(Error::Proxy {
        message: format!("the proxy of warm container {} did not start", dir.name),
        log: std::fs::read_to_string(&err_path).unwrap_or_default(),
    })
}

/// The proxy process: serves the container of the state directory
/// `path` until its init ends.
pub fn serve(path: &Path) -> Result<()> {
    // Name lookups run on threads of the runtime's pool.
    sys::one_malloc_arena();
    let dir = WarmDir::open(path);
    // A proxy of an earlier container of this name goes as its init ends.
    let _alive = lock::acquire(
        &dir.proxy_lock(),
        Mode::Exclusive,
        Guard::Proxy.what(),
        Guard::Proxy.wait(),
    )?;
    let gone = || Error::failed(format!("warm container {} is gone", dir.name));
    let main = dir.main().ok_or_else(gone)?;
    let pid = sys::live_pid(&main.init).ok_or_else(gone)?;
    let ended = sys::pidfd_open(pid).map_err(|e| Error::os("pidfd_open", e))?;
    // The pidfd names that very init only if it still runs now.
    if sys::live_pid(&main.init) != Some(pid) {
        return Err(gone());
    }
    let text =
        std::fs::read_to_string(dir.proxy_rules()).with_path("cannot read", dir.proxy_rules())?;
    let rules = Rules::parse(&text.lines().map(str::to_owned).collect::<Vec<_>>())
        .map_err(Error::Failed)?;
    let listener = server::bind(dir.inside(), super::SOCKET)
        .with_path("cannot listen on", dir.inside().join(super::SOCKET))?;
    dir.set_proxy(&sys::self_identity(), &main.init)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::os("cannot start the runtime", e))?;
    let proxy = Arc::new(Proxy {
        rules,
        log: Log::File(dir.refusal_log()),
    });
    runtime.block_on(async {
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(|e| Error::os("cannot listen", e))?;
        // The init's end, waited for on a thread of the runtime's pool.
        let ended = tokio::task::spawn_blocking(move || {
            while !sys::wait_readable(ended.as_fd(), Duration::from_secs(3600)).unwrap_or(true) {}
        });
        {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "ready").and_then(|_| out.flush());
        }
        tokio::select! {
            _ = server::serve(listener, proxy) => {}
            _ = ended => {}
        }
        Ok(())
    })
}
