//! The warm container's long-lived process: it sleeps until the container
//! has been idle for its TTL and then exits, which stops the container, and
//! `--rm` removes it. So an idle container goes away even if nobody ever
//! calls the sandbox again.
//!
//! It reads the `inside/` part of the state directory (warm_dir.rs), mounted
//! read-only at [`MOUNT`]. It exits only while holding `busy.lock`
//! exclusively, which every call holds shared, so it never ends a container
//! in use. For its whole life it holds `alive.lock`, and lets go of it
//! before it exits (and so before `busy.lock`): a call that holds
//! `busy.lock` and finds `alive.lock` held knows the container runs and
//! will go on running (see `ensure_warm`). A command can take these locks
//! too, which keeps only its own container from ending itself; pruning
//! goes by the host's `use.lock`, which the container cannot see.
//!
//! It needs `sh`, `sleep`, `stat`, `date` and `flock` in the image. Ours
//! has them; a `--flake` image is checked once when loaded, and without
//! them its warm container only sleeps and later calls prune it.

/// Where the state directory's `inside/` appears inside the container.
pub const MOUNT: &str = "/run/lectic-nix-sandbox";
/// Names this script and the state layout it expects (in the container's
/// name, so a change makes new containers).
pub const VERSION: &[u8] = b"watcher-2";

/// `left` prints the seconds of TTL left; negative when expired or when
/// the stamp is gone (the container was pruned or never recorded). While
/// idle it sleeps until the TTL would run out, but at most 10 s, so a
/// lowered TTL is noticed soon (the price: four tiny processes every 10 s);
/// while a call longer than the TTL holds the lock, it looks again as often.
const SCRIPT: &str = r#"d=/run/lectic-nix-sandbox
if ! [ -r "$d/busy.lock" ] || ! command -v flock >/dev/null 2>&1; then exec sleep infinity; fi
exec 8<"$d/alive.lock" 9<"$d/busy.lock"
flock -x 8
left() {
  ttl=; last=
  read -r ttl 2>/dev/null <"$d/ttl"
  last=$(stat -c %Y "$d/last-use" 2>/dev/null)
  case "$ttl" in ''|*[!0-9]*) echo -1; return;; esac
  case "$last" in ''|*[!0-9]*) echo -1; return;; esac
  echo $((last + ttl - $(date +%s)))
}
while :; do
  n=$(left)
  if [ "$n" -lt 0 ]; then
    if flock -n -x 9; then
      [ "$(left)" -lt 0 ] && { exec 8<&-; exit 0; }
      flock -u 9
    fi
    n=9
  fi
  [ "$n" -gt 9 ] && n=9
  sleep $((n + 1))
done
"#;

/// The container's command: the watcher under `sh`.
pub fn command() -> Vec<String> {
    debug_assert!(SCRIPT.starts_with(&format!("d={MOUNT}\n")));
    vec!["sh".into(), "-c".into(), SCRIPT.into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{self, Mode};
    use std::process::Command;
    use std::time::{Duration, Instant, SystemTime};

    /// The script with its directory moved to `dir`, run by the host's sh.
    fn run_in(dir: &std::path::Path) -> std::process::Child {
        let script = SCRIPT.replacen(&format!("d={MOUNT}"), &format!("d={}", dir.display()), 1);
        Command::new("sh").args(["-c", &script]).spawn().unwrap()
    }

    fn scratch(name: &str) -> crate::testutil::TempDir {
        let d = crate::testutil::TempDir::new(&format!("watch-{name}"));
        std::fs::write(d.join("busy.lock"), "").unwrap();
        std::fs::write(d.join("alive.lock"), "").unwrap();
        d
    }

    fn exits_within(child: &mut std::process::Child, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    #[test]
    fn exits_once_idle_past_the_ttl_but_not_while_the_lock_is_held() {
        if Command::new("flock").arg("--version").output().is_err() {
            return; // the host has no flock(1); the e2e tests cover it
        }
        let d = scratch("idle");
        std::fs::write(d.join("ttl"), "1\n").unwrap();
        std::fs::write(d.join("last-use"), "").unwrap();
        let held = lock::acquire(
            &d.join("busy.lock"),
            Mode::Shared,
            "test",
            Duration::from_secs(1),
        )
        .unwrap();
        let alive = d.join("alive.lock");
        let mut child = run_in(&d);
        assert!(
            !exits_within(&mut child, Duration::from_secs(4)),
            "a call holds the lock"
        );
        assert!(
            lock::try_acquire(&alive, Mode::Shared).unwrap().is_none(),
            "alive while running"
        );
        drop(held);
        assert!(exits_within(&mut child, Duration::from_secs(15)));
        assert!(
            lock::try_acquire(&alive, Mode::Shared).unwrap().is_some(),
            "not alive once gone"
        );
    }

    #[test]
    fn a_fresh_stamp_keeps_it_running() {
        let d = scratch("fresh");
        std::fs::write(d.join("ttl"), "600\n").unwrap();
        std::fs::write(d.join("last-use"), "").unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(d.join("last-use"))
            .unwrap();
        f.set_modified(SystemTime::now()).unwrap();
        let mut child = run_in(&d);
        assert!(!exits_within(&mut child, Duration::from_secs(2)));
        child.kill().unwrap();
        let _ = child.wait();
    }
}
