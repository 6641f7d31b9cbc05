//! Running another program (nix, a probe of `--doctor`) and capturing what
//! it says. Both pipes are drained on threads while it runs, so a chatty
//! program never stalls on a full pipe, and a limit, when given, is kept
//! whatever the program does.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What becomes of the program's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    Capture,
    /// Ours: a person at a terminal sees the program's progress.
    Inherit,
}

/// What a program did.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Empty with [`Stderr::Inherit`].
    pub stderr: Vec<u8>,
}

/// Why a program did not finish.
#[derive(Debug)]
pub enum Failure {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It ran past the limit and was killed.
    TimedOut(Duration),
}

/// Runs `cmd` with no stdin, its stdout captured and its stderr as
/// `stderr` says, for at most `limit` (then it is killed).
pub fn capture(
    mut cmd: Command,
    stderr: Stderr,
    limit: Option<Duration>,
) -> Result<Captured, Failure> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    cmd.stderr(match stderr {
        Stderr::Capture => Stdio::piped(),
        Stderr::Inherit => Stdio::inherit(),
    });
    let mut child = cmd.spawn().map_err(Failure::Spawn)?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = match limit {
        None => child.wait().map_err(Failure::Spawn)?,
        Some(limit) => wait_at_most(&mut child, limit)?,
    };
    Ok(Captured {
        status,
        stdout: joined(out),
        stderr: joined(err),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            buf
        })
    })
}

fn joined(t: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    t.and_then(|t| t.join().ok()).unwrap_or_default()
}

fn wait_at_most(child: &mut Child, limit: Duration) -> Result<ExitStatus, Failure> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(Failure::Spawn)? {
            return Ok(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            // Its pipes' threads end when whatever it left closes them.
            return Err(Failure::TimedOut(limit));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_chatty_program_is_read_while_it_runs_and_finishes() {
        // 1 MiB on each pipe: far past a pipe's 64 KiB, which would stall
        // a program whose pipes were read only after it exits.
        let r = capture(
            sh("head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2; exit 3"),
            Stderr::Capture,
            Some(Duration::from_secs(20)),
        )
        .unwrap();
        assert_eq!((r.stdout.len(), r.stderr.len()), (1 << 20, 1 << 20));
        assert_eq!(r.status.code(), Some(3));
    }

    #[test]
    fn a_program_past_its_limit_is_killed() {
        let start = Instant::now();
        let r = capture(
            sh("exec sleep 30"),
            Stderr::Capture,
            Some(Duration::from_millis(200)),
        );
        assert!(matches!(r, Err(Failure::TimedOut(_))), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(matches!(
            capture(Command::new("/nonexistent/program"), Stderr::Capture, None),
            Err(Failure::Spawn(_))
        ));
    }
}
