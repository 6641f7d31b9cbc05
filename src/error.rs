//! Typed errors. Library code returns these; only `main` turns them into a
//! message on stderr and exit status 125 (the sandbox's own failure, as
//! Podman does).

use std::fmt;
use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// Bad input on the command line or in a file the user named.
    Usage(String),
    /// A step failed for a reason outside the call's input: the machine's
    /// setup, a full disk, a container that did not start, a race with
    /// another process. The message names the cause and what to do.
    Failed(String),
    /// A file or directory operation failed.
    Io {
        context: String,
        path: PathBuf,
        source: io::Error,
    },
    /// A system call with no file to name failed.
    Os { context: String, source: io::Error },
    /// A program we run (nix, podman) could not be started.
    Spawn { program: String, source: io::Error },
    /// `nix build` failed; `log` holds the tail of its stderr.
    Nix { message: String, log: String },
    /// A Podman step failed; `log` holds what Podman said.
    Podman { message: String, log: String },
    /// A container's proxy (`--allow-host`) could not start; `log` holds
    /// what it said.
    Proxy { message: String, log: String },
    /// A lock was not released within its bound.
    LockTimeout { what: String, path: PathBuf },
    /// A private directory is owned by someone else or has loose permissions.
    Untrusted {
        path: PathBuf,
        why: String,
        /// What to do about it.
        fix: String,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            path: path.into(),
            source,
        }
    }

    pub fn os(context: impl Into<String>, source: io::Error) -> Self {
        Error::Os {
            context: context.into(),
            source,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }
}

/// Adds a context and a path to an `io::Result`.
pub trait IoContext<T> {
    fn with_path(self, context: &str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn with_path(self, context: &str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(context, path, e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Failed(m) => f.write_str(m),
            Error::Io {
                context,
                path,
                source,
            } => write!(f, "{context} {}: {source}", path.display()),
            Error::Os { context, source } => write!(f, "{context}: {source}"),
            Error::Spawn { program, source } if source.kind() == io::ErrorKind::NotFound => write!(
                f,
                "cannot run `{program}`: not found; install it or name it with the matching --*-exe option"
            ),
            Error::Spawn { program, source } => write!(f, "cannot run `{program}`: {source}"),
            Error::Nix { message, log } => write_with_log(f, message, log),
            Error::Podman { message, log } => write_with_log(f, message, log),
            Error::Proxy { message, log } => write_with_log(f, message, log),
            Error::LockTimeout { what, path } => write!(
                f,
                "gave up waiting for the lock on {what} ({}): another lectic-nix-sandbox still holds it; wait longer with --lock-timeout",
                path.display()
            ),
            Error::Untrusted { path, why, fix } => {
                write!(f, "refusing to use {}: {why}; {fix}", path.display())
            }
        }
    }
}

/// `message`, then the tool's own words: with `--verbose` its whole log
/// (indented), else only the line that says what went wrong, so the
/// error stays one line (our stderr is the model's context).
fn write_with_log(f: &mut fmt::Formatter<'_>, message: &str, log: &str) -> fmt::Result {
    f.write_str(message)?;
    let log = log.trim_end();
    if crate::is_verbose() {
        for line in log.lines() {
            write!(f, "\n  {line}")?;
        }
    } else if let Some(cause) = cause_of(log) {
        write!(f, ": {cause}")?;
    }
    Ok(())
}

/// The line of a tool's log that says what went wrong: Nix's or Podman's
/// first `error:` line (with where Nix says it happened), a full disk
/// wherever it is mentioned, else the last line.
pub fn cause_of(log: &str) -> Option<String> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if log.contains("no space left on device") {
        return Some("no space left on device".into());
    }
    let at = lines.iter().position(|l| {
        l.strip_prefix("error:")
            .or_else(|| l.strip_prefix("Error:"))
            .is_some()
    });
    let Some(at) = at else {
        return lines.last().map(|l| (*l).to_owned());
    };
    let cause = lines[at][6..].trim().to_owned();
    // Nix: "at FILE:LINE:COL:" on a following line.
    let place = lines[at + 1..]
        .iter()
        .take(3)
        .find_map(|l| l.strip_prefix("at ").and_then(|p| p.strip_suffix(':')));
    Some(match place {
        Some(p) => format!("{cause} (at {p})"),
        None => cause,
    })
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Os { source, .. } | Error::Spawn { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}
