//! Running the command: through the warm container's agent (agent.rs), by
//! `podman exec` into the warm container, or by `podman run --rm` for a
//! one-shot call; with our stdin, stdout and stderr handed straight to it,
//! and signals turned into stopping every process the call started.
//!
//! Podman 4.x does not forward signals to an exec session, so on the
//! podman paths a SIGTERM/SIGINT/SIGHUP makes us find the call's processes
//! through the host's /proc (which sees into the container) and signal
//! them directly (see stop.rs).

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Checked, Config};
use crate::container::list::OWNER_LABEL;
use crate::container::{PREFIX, Spec, Warm, verify_mounts};
use crate::error::{Error, IoContext, Result};
use crate::stop::{self, CALL_VAR, new_call_id};
use crate::store::Podman;
use crate::{sys, verbose};

/// Options that put the command's environment in place. Values never go
/// on argv, where any local user could read them with `ps`: they go
/// through podman's own environment (`--env NAME`), and those of names
/// podman itself reads (`PATH`, `HOME`, `CONTAINERS_*`, ...) through a
/// private env file, removed when the returned guard goes.
fn env_options(
    cfg: &Config,
    call_id: &str,
    cmd: &mut Command,
) -> Result<(Vec<String>, Option<EnvFile>)> {
    let mut opts = Vec::new();
    let mut reserved = String::new();
    for (name, value) in call_env(cfg) {
        if Podman::reserved_env(name) {
            if value.contains('\n') {
                return Err(Error::usage(format!(
                    "{name}: its value has a newline, which podman cannot be given without showing it on its command line; remove the newline"
                )));
            }
            reserved += &format!("{name}={value}\n");
        } else {
            cmd.env(name, value);
            opts.extend(["--env".into(), name.clone()]);
        }
    }
    let file = if reserved.is_empty() {
        None
    } else {
        let file = EnvFile::write(&cfg.paths.tmp().join(format!("env-{call_id}")), &reserved)?;
        opts.extend(["--env-file".into(), file.0.display().to_string()]);
        Some(file)
    };
    opts.extend(["--env".into(), format!("{CALL_VAR}={call_id}")]);
    Ok((opts, file))
}

/// A file of `NAME=VALUE` lines only we can read, for `podman --env-file`;
/// removed when dropped.
struct EnvFile(std::path::PathBuf);

impl EnvFile {
    fn write(path: &std::path::Path, text: &str) -> Result<EnvFile> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_path("cannot write", path)?;
        let file = EnvFile(path.to_owned());
        f.write_all(text.as_bytes())
            .with_path("cannot write", path)?;
        Ok(file)
    }
}

impl Drop for EnvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The call's variables; the call's own marker is set per path, never
/// taken from the caller.
pub(crate) fn call_env(cfg: &Config) -> impl Iterator<Item = (&String, &String)> {
    cfg.env.iter().filter(|(n, _)| n.as_str() != CALL_VAR)
}

/// Whether the call has a terminal on stdin and stdout.
fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

fn interactive_options() -> Vec<String> {
    let mut opts = vec!["--interactive".to_owned()];
    if on_terminal() {
        opts.push("--tty".into());
    }
    opts
}

/// The signals that stop a call: SIGTERM (Lectic's timeout), SIGINT, SIGHUP.
pub(crate) struct StopSignals([tokio::signal::unix::Signal; 3]);

impl StopSignals {
    /// Listens from now on, so a signal during setup is not lost.
    pub(crate) fn listen() -> Result<StopSignals> {
        let listen =
            |kind: SignalKind| signal(kind).map_err(|e| Error::os("cannot listen for signals", e));
        Ok(StopSignals([
            listen(SignalKind::terminate())?,
            listen(SignalKind::interrupt())?,
            listen(SignalKind::hangup())?,
        ]))
    }

    /// The number of the next signal.
    pub(crate) async fn recv(&mut self) -> i32 {
        let [term, int, hup] = &mut self.0;
        tokio::select! {
            _ = term.recv() => sys::SIGTERM,
            _ = int.recv() => sys::SIGINT,
            _ = hup.recv() => sys::SIGHUP,
        }
    }
}

/// Runs the command in the warm container: through its agent when it has
/// one and our stdin, stdout and stderr can be handed to it, else with
/// `podman exec`, which relays them.
pub async fn run_warm(cfg: &Config, podman: &Podman, warm: &mut Warm) -> Result<i32> {
    // Held open through a `podman exec`: the agent counts it as a call and
    // does not end the container meanwhile.
    let mut _open = None;
    if let Some(conn) = warm.agent.take() {
        match unpassable_stdio() {
            Some(why) => {
                verbose!("{why}: podman exec relays it");
                _open = Some(conn);
            }
            None => {
                verbose!("running the command in {} through its agent", warm.name);
                let ran = crate::agent::client::run(cfg, conn).await;
                if ran.is_err() && warm.ended_within(INIT_OUTLIVES_AGENT) {
                    return Ok(ended_with_init(warm));
                }
                match ran? {
                    Some(code) => return Ok(code),
                    None => verbose!(
                        "the agent of {} is another version's; using podman exec",
                        warm.name
                    ),
                }
            }
        }
    }
    verbose!("running the command in {} with podman exec", warm.name);
    let call_id = new_call_id();
    if cfg.keep_processes {
        warm.keep_call(&call_id);
    }
    let code = exec_in(cfg, podman, warm, &call_id).await;
    if !cfg.keep_processes {
        crate::container::reap_leftovers(warm, &call_id);
    }
    // `podman exec` says 255 and its own words when the container went
    // away under it (a process in it killed its init): the command was
    // killed with it, as the agent path reports.
    if matches!(code, Ok(255)) && !warm.alive() {
        return Ok(ended_with_init(warm));
    }
    code
}

/// How long a container's init may outlive its agent when a command in it
/// killed the init (catatonit waits for its child, then exits).
const INIT_OUTLIVES_AGENT: Duration = Duration::from_secs(2);

/// A call whose container went away under it (a process in it killed its
/// init): the command was killed with it.
fn ended_with_init(warm: &Warm) -> i32 {
    eprintln!(
        "lectic-nix-sandbox: the warm container {} ended during the call (its init was killed); the next call makes a new one",
        warm.name
    );
    128 + sys::SIGKILL
}

/// Why our stdin, stdout or stderr cannot be handed to the command as it
/// is, if one cannot: only pipes, sockets and /dev/null can. A terminal
/// would let it type into the host's terminal (TIOCSTI) and read what is
/// typed after the call; a file, read or truncate it through
/// /proc/self/fd.
fn unpassable_stdio() -> Option<String> {
    use std::os::fd::AsFd;
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let fds = [
        ("stdin", i.as_fd()),
        ("stdout", o.as_fd()),
        ("stderr", e.as_fd()),
    ];
    fds.into_iter().find_map(|(name, fd)| {
        let ok = sys::is_pipe_or_socket(fd).unwrap_or(false) || sys::is_dev_null(fd);
        (!ok).then(|| format!("{name} is neither a pipe, a socket nor /dev/null"))
    })
}

async fn exec_in(cfg: &Config, podman: &Podman, warm: &Warm, call_id: &str) -> Result<i32> {
    let mut cmd = podman.command(["exec"]);
    let mut args = interactive_options();
    args.extend(["--workdir".into(), cfg.workdir.display().to_string()]);
    let (env, _env_file) = env_options(cfg, call_id, &mut cmd)?;
    args.extend(env);
    args.push(warm.name.clone());
    if warm.has_shell {
        // A command that cannot run gets our words, not runc's.
        args.extend([
            "sh".into(),
            "-c".into(),
            format!("{RUNNABLE}exec \"$@\""),
            "sh".into(),
        ]);
    }
    args.extend(cfg.command.iter().cloned());
    cmd.args(&args);
    supervise(podman, cmd, call_id, None).await
}

/// A directory of a one-shot call (its skeleton root, its proxy's
/// socket), named by the call's process so --gc spares it while the call
/// runs; removed with the call.
struct CallDir(std::path::PathBuf);

impl CallDir {
    fn new(cfg: &Config, kind: &str) -> CallDir {
        let owner = sys::self_identity().replace(':', "-");
        CallDir(cfg.paths.tmp().join(format!("{kind}-{owner}")))
    }
}

impl Drop for CallDir {
    fn drop(&mut self) {
        let _ = crate::fsutil::remove_any(&self.0);
    }
}

/// Runs the command in a one-shot container removed when it ends.
pub async fn run_once(cfg: &Config, podman: &Podman, spec: &Spec) -> Result<i32> {
    let call_id = new_call_id();
    let mut cmd = podman.command(["run", "--rm"]);
    let mut args = vec![
        "--name".to_owned(),
        format!("{PREFIX}once-{call_id}"),
        // Lets pruning remove it if this call is killed (see prune.rs).
        "--label".to_owned(),
        format!("{OWNER_LABEL}={}", sys::self_identity()),
    ];
    args.extend(interactive_options());
    args.extend(spec.run_args());
    let (guards, guarded) = spec.workdir_guards()?;
    args.extend(guards);
    let (env, _env_file) = env_options(cfg, &call_id, &mut cmd)?;
    args.extend(env);
    let skeleton = CallDir::new(cfg, "root");
    spec.prepare_host(&skeleton.0)?;
    let _proxy = match &spec.forwarder {
        Some(exe) => Some(one_shot_proxy(cfg, spec, exe, &mut args)?),
        None => None,
    };
    args.extend(spec.image_args(&skeleton.0));
    args.extend(spec.forward_prefix(true));
    podman.ensure_pause_process()?;
    // The image has a shell (the watcher's tools): the command waits behind
    // the gate until the mounts are verified. Without one it runs at once.
    let gate: Vec<Checked> = if spec.watcher {
        args.extend(["sh", "-c", GATE, "sh"].map(String::from));
        spec.checked.iter().chain(&guarded).cloned().collect()
    } else {
        verbose!("the image has no sh: the one-shot container's mounts are not verified");
        Vec::new()
    };
    args.extend(cfg.command.iter().cloned());
    cmd.args(&args);
    supervise(podman, cmd, &call_id, spec.watcher.then_some(&gate[..])).await
}

/// A one-shot call's proxy (`--allow-host`): a task of this call, which
/// lives exactly as long as the container, on a socket in a directory of
/// the call's, mounted read-only where a warm container has its state
/// (with this binary, the forwarding wrapper, in it).
fn one_shot_proxy(
    cfg: &Config,
    spec: &Spec,
    exe: &std::path::Path,
    args: &mut Vec<String>,
) -> Result<(CallDir, ServeTask)> {
    use crate::container::{warm_dir::AGENT_FILE, watcher::MOUNT};
    use crate::proxy::{self, log::Log, server};
    let dir = CallDir::new(cfg, "proxy");
    crate::fsutil::ensure_dir(&dir.0)?;
    let mountpoint = dir.0.join(AGENT_FILE);
    std::fs::File::create(&mountpoint).with_path("cannot create", &mountpoint)?;
    let listener = server::bind(&dir.0, proxy::SOCKET)
        .and_then(tokio::net::UnixListener::from_std)
        .with_path("cannot listen on", dir.0.join(proxy::SOCKET))?;
    let serving = tokio::spawn(server::serve(
        listener,
        std::sync::Arc::new(server::Proxy {
            rules: spec.allow_hosts.clone(),
            log: Log::Stderr,
        }),
    ));
    args.extend([
        "--volume".into(),
        format!("{}:{MOUNT}:ro", dir.0.display()),
        "--volume".into(),
        format!("{}:{MOUNT}/{AGENT_FILE}:ro", exe.display()),
    ]);
    Ok((dir, ServeTask(serving)))
}

/// Ends the proxy task when the call ends.
struct ServeTask(tokio::task::JoinHandle<()>);

impl Drop for ServeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Shell lines that end the shell with the agent's words and exit codes
/// (127 not found, 126 not executable) unless `$1` can be run.
macro_rules! runnable {
    () => {
        r#"no() { echo "lectic-nix-sandbox: $1: $2" >&2; exit $3; }
case $1 in
*/*) [ -e "$1" ] || no "$1" "command not found" 127
     [ -x "$1" ] && [ ! -d "$1" ] || no "$1" "Permission denied" 126 ;;
*) command -v "$1" >/dev/null || no "$1" "command not found" 127 ;;
esac
"#
    };
}
/// Runs `$@` as the agent would (see `runnable!`).
const RUNNABLE: &str = runnable!();
/// A one-shot command's first step: it stops itself, and goes on (as the
/// command, by `exec`) only when the host, having checked the container's
/// mounts through its /proc root, sends SIGCONT; a command that cannot run
/// ends it as the agent would.
const GATE: &str = concat!("kill -STOP $$\n", runnable!(), r#"exec "$@""#);

/// How long a one-shot container may take to reach the gate (the first
/// container of an image may copy its layers for keep-id).
const GATE_LIMIT: Duration = Duration::from_secs(120);

/// Waits for the call's gate (see [`GATE`]) to stop, verifies `checked`
/// through its root, and lets it go on; kills it if a mount is not what
/// was checked. Returns at once if the podman client ends meanwhile.
fn open_gate(call_id: &str, checked: &[Checked], mut ended: impl FnMut() -> bool) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        let waiting = stop::marked_processes(call_id)
            .into_iter()
            .find(|&pid| sys::is_stopped(pid as u32));
        if let Some(pid) = waiting {
            let verified = verify_mounts(checked.iter(), pid as u32);
            let signal = if verified.is_ok() {
                sys::SIGCONT
            } else {
                sys::SIGKILL
            };
            sys::send_signal(pid, signal);
            return verified;
        }
        if ended() {
            return Ok(());
        }
        if start.elapsed() > GATE_LIMIT {
            return Err(Error::failed(format!(
                "the one-shot container did not start within {GATE_LIMIT:?}; run with --verbose"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` with our stdio; on a signal stops the call's processes and
/// returns 128+signal.
/// With `gate`, the command waits behind [`GATE`] until the mounts in it
/// are verified.
async fn supervise(
    podman: &Podman,
    mut cmd: Command,
    call_id: &str,
    gate: Option<&[Checked]>,
) -> Result<i32> {
    let mut signals = StopSignals::listen()?;
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // If we are SIGKILLed, the podman client goes too, so whoever reads our
    // stdout sees it close; what it started ends with the container's TTL
    // (warm) or the next prune (one-shot).
    // SAFETY: the closure only makes one async-signal-safe system call.
    unsafe {
        cmd.pre_exec(sys::kill_with_parent);
    }
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| podman.spawn_error(e))?;
    if let Some(checked) = gate
        && let Err(e) = open_gate(call_id, checked, || matches!(child.try_wait(), Ok(Some(_))))
    {
        // Killed behind the gate: nothing ran; the container goes with it.
        let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        return Err(e);
    }
    let signo = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| Error::os("cannot wait for podman", e))?;
            return Ok(sys::exit_code(status));
        }
        signo = signals.recv() => signo,
    };
    // Keeps looking until the podman client is gone too, since the command
    // may still have been starting when the signal came.
    let ended = stop::stop_call(call_id, None, sys::SIGTERM, || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !ended {
        let _ = child.start_kill();
    }
    Ok(128 + signo)
}
