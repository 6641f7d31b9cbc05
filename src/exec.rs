//! Running the command: `podman exec` into the warm container or `podman
//! run --rm` for a one-shot call, with our stdin, stdout and stderr handed
//! straight to it, and signals turned into stopping every process the call
//! started.
//!
//! Podman 4.x does not forward signals to an exec session, and a command
//! may detach itself (setsid, double fork). So each call carries a unique
//! `LECTIC_SANDBOX_CALL` variable, which every process it starts inherits;
//! on SIGTERM/SIGINT/SIGHUP we find those processes through the host's
//! /proc (which sees into the container) and signal them directly.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::container::list::OWNER_LABEL;
use crate::container::{PREFIX, Spec};
use crate::error::{Error, Result};
use crate::store::Podman;
use crate::sys;

/// The variable that marks every process of one call.
pub const CALL_VAR: &str = "LECTIC_SANDBOX_CALL";

/// After a signal: SIGTERM, then SIGKILL after this long...
const KILL_AFTER: Duration = Duration::from_millis(1000);
/// ...and give up on the podman client after this long (within 2 s).
const GIVE_UP_AFTER: Duration = Duration::from_millis(1800);

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

/// Options that put the command's environment in place. Values go through
/// podman's own environment (`--env NAME`), never argv, where any local
/// user could read them with `ps`; names podman itself needs go as
/// `--env NAME=VALUE`.
fn env_options(cfg: &Config, call_id: &str, cmd: &mut Command) -> Vec<String> {
    let mut opts = Vec::new();
    for (name, value) in cfg.env.iter().filter(|(n, _)| n.as_str() != CALL_VAR) {
        if Podman::reserved_env(name) {
            opts.extend(["--env".into(), format!("{name}={value}")]);
        } else {
            cmd.env(name, value);
            opts.extend(["--env".into(), name.clone()]);
        }
    }
    opts.extend(["--env".into(), format!("{CALL_VAR}={call_id}")]);
    opts
}

fn interactive_options() -> Vec<String> {
    let mut opts = vec!["--interactive".to_owned()];
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        opts.push("--tty".into());
    }
    opts
}

/// Runs the command in the warm container `name`.
pub async fn run_warm(cfg: &Config, podman: &Podman, name: &str) -> Result<i32> {
    let call_id = new_call_id();
    let mut cmd = podman.command(["exec"]);
    let mut args = interactive_options();
    args.extend(["--workdir".into(), cfg.workdir.display().to_string()]);
    args.extend(env_options(cfg, &call_id, &mut cmd));
    args.push(name.to_owned());
    args.extend(cfg.command.iter().cloned());
    cmd.args(&args);
    supervise(podman, cmd, &call_id).await
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
    args.extend(env_options(cfg, &call_id, &mut cmd));
    args.push(spec.image.clone());
    args.extend(cfg.command.iter().cloned());
    cmd.args(&args);
    supervise(podman, cmd, &call_id).await
}

/// Runs `cmd` with our stdio; on a signal stops the call's processes and
/// returns 128+signal.
async fn supervise(podman: &Podman, mut cmd: Command, call_id: &str) -> Result<i32> {
    let listen =
        |kind: SignalKind| signal(kind).map_err(|e| Error::os("cannot listen for signals", e));
    let mut term = listen(SignalKind::terminate())?;
    let mut int = listen(SignalKind::interrupt())?;
    let mut hup = listen(SignalKind::hangup())?;
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
    let signo = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| Error::os("cannot wait for podman", e))?;
            return Ok(exit_code(status));
        }
        _ = term.recv() => sys::SIGTERM,
        _ = int.recv() => sys::SIGINT,
        _ = hup.recv() => sys::SIGHUP,
    };
    stop_call(call_id, &mut child).await;
    Ok(128 + signo)
}

/// Stops every process marked with `call_id`: SIGTERM, then SIGKILL after
/// KILL_AFTER. Keeps looking until the podman client is gone too, since the
/// command may still have been starting when the signal came.
async fn stop_call(call_id: &str, client: &mut tokio::process::Child) {
    let start = Instant::now();
    let mut termed = HashSet::new();
    loop {
        let late = start.elapsed() >= KILL_AFTER;
        let pids = marked_processes(call_id);
        for &pid in &pids {
            if late {
                sys::send_signal(pid, sys::SIGKILL);
            } else if termed.insert(pid) {
                sys::send_signal(pid, sys::SIGTERM);
            }
        }
        let client_done = matches!(client.try_wait(), Ok(Some(_)));
        if pids.is_empty() && client_done {
            return;
        }
        if start.elapsed() >= GIVE_UP_AFTER {
            let _ = client.start_kill();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Host pids of the processes whose environment holds `CALL_VAR=call_id`.
pub fn marked_processes(call_id: &str) -> Vec<i32> {
    let needle = format!("{CALL_VAR}={call_id}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(125)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn exit_code_of_a_signalled_process_is_128_plus_signal() {
        let status = Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .unwrap();
        assert_eq!(exit_code(status), 143);
        let status = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
        assert_eq!(exit_code(status), 3);
    }
}
