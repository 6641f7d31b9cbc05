//! The log of refused connections: one line per refusal (when, host and
//! port, why, the option that would allow it). A warm container's proxy
//! appends to a file in the host's part of its state directory, which
//! `--status` and a `--verbose` call read; a one-shot call's proxy, which
//! runs in the call itself, says it on stderr with `--verbose`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::rules::{Refusal, hostport};

/// Past this size the log keeps its newer half.
const MAX_BYTES: u64 = 256 << 10;

#[derive(Debug, Clone)]
pub enum Log {
    File(PathBuf),
    /// Lines on stderr, with `--verbose` only.
    Stderr,
}

impl Log {
    pub fn refused(&self, r: &Refusal) {
        self.line(&format!("refused {r}"));
    }

    pub fn unreachable(&self, host: &str, port: u16, why: &str) {
        self.line(&format!("could not reach {}: {why}", hostport(host, port)));
    }

    fn line(&self, what: &str) {
        match self {
            Log::Stderr => crate::verbose!("the proxy {what}"),
            Log::File(path) => {
                let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                let _ = append(path, &format!("{now} {what}\n"));
            }
        }
    }
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write: a reader never sees half a line.
    f.write_all(line.as_bytes())?;
    if f.metadata()?.len() > MAX_BYTES {
        let mut text = Vec::new();
        let mut r = std::fs::File::open(path)?;
        r.seek(SeekFrom::Start(MAX_BYTES / 2))?;
        r.read_to_end(&mut text)?;
        let start = text.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        crate::fsutil::write_atomic(path, &text[start..]).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// How long the log at `path` is now (where a call's own lines start).
pub fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The lines written since the log was `from` bytes long (all of it if it
/// was cut meanwhile).
pub fn since(path: &Path, from: u64) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let from = if from as usize > text.len() {
        0
    } else {
        from as usize
    };
    String::from_utf8_lossy(&text[from..])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Its last `n` lines.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let all = since(path, 0);
    all[all.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_whole_lines_and_its_newer_half_when_full() {
        let d = crate::testutil::TempDir::new("proxy-log");
        let path = d.join("refused.log");
        let log = Log::File(path.clone());
        let r = |i: usize| Refusal {
            host: format!("h{i}.test"),
            port: 443,
            why: "not on the allowlist".into(),
            fix: format!("h{i}.test"),
        };
        log.refused(&r(0));
        let mark = len(&path);
        log.refused(&r(1));
        let new = since(&path, mark);
        assert_eq!(new.len(), 1);
        assert!(
            new[0].ends_with("refused h1.test:443: not on the allowlist; allow it with --allow-host h1.test (or allow_hosts: in the policy file)"),
            "{}",
            new[0]
        );
        for i in 2..5000 {
            log.refused(&r(i));
        }
        assert!(len(&path) <= MAX_BYTES);
        let last = tail(&path, 2);
        assert!(last[1].contains("h4999.test:443"), "{last:?}");
        assert!(since(&path, 0).iter().all(|l| l.contains(" refused h")));
    }
}
