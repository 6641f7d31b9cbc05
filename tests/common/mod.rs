//! Test harness: runs the real binary against real Podman and real Nix
//! (our flake.nix with nixpkgs swapped for tests/fixtures/nixpkgs), as root
//! and, through `runuser`, as the unprivileged user `sbtest`.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ROOTLESS_USER: &str = "sbtest";
/// The other local user, hostile (see scripts/setup-machine).
pub const NEIGHBOUR: &str = "sbnb";
const BASE: &str = "/tmp/lns-tests";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Rootful,
    Rootless,
}

pub struct Counting {
    pub args: Vec<String>,
    pub nix_log: PathBuf,
    pub podman_log: PathBuf,
}

impl Counting {
    /// Our options followed by `rest`.
    pub fn with<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        self.args
            .iter()
            .map(String::as_str)
            .chain(rest.iter().copied())
            .collect()
    }
}

/// One test's world: its own workdir, and a cache either shared by every
/// test of the mode (fast, and it exercises the locks) or private.
pub struct Sandbox {
    pub mode: Mode,
    /// `Some("podman")` when the test runs on the `--exec-via podman` path.
    pub via: Option<&'static str>,
    pub dir: PathBuf,
    pub work: PathBuf,
    pub cache: PathBuf,
    pub temp: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

/// Copies of the binary and fixtures where `sbtest` can read them.
struct Shared {
    bin: PathBuf,
    fixtures: PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let root = PathBuf::from(BASE).join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // Root's, as the sandbox wants every directory above a cache to be:
        // an earlier run's Podman cleanup (a conmon exit command, as the
        // test user) may have made it again after it was removed.
        std::os::unix::fs::chown(BASE, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(BASE, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = root.join("lectic-nix-sandbox");
        std::fs::copy(env!("CARGO_BIN_EXE_lectic-nix-sandbox"), &bin).unwrap();
        let fixtures = root.join("fixtures");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let ok = Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(&fixtures)
            .status()
            .unwrap();
        assert!(ok.success());
        let ok = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(ok.success());
        Shared { bin, fixtures }
    })
}

pub fn fixture(name: &str) -> PathBuf {
    shared().fixtures.join(name)
}

pub fn nixpkgs_ref() -> String {
    format!("path:{}", fixture("nixpkgs").display())
}

pub fn rootless_uid() -> u32 {
    let out = Command::new("id")
        .args(["-u", ROOTLESS_USER])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

impl Sandbox {
    /// A test using the mode's shared cache.
    pub fn new(mode: Mode, test: &str) -> Sandbox {
        let cache = PathBuf::from(BASE).join(format!("shared-{mode:?}-{}", std::process::id()));
        Self::with_cache(mode, test, Some(cache))
    }

    /// A test with a cache of its own (for counting builds and containers).
    pub fn private(mode: Mode, test: &str) -> Sandbox {
        Self::with_cache(mode, test, None)
    }

    fn with_cache(mode: Mode, test: &str, cache: Option<PathBuf>) -> Sandbox {
        shared();
        let via = VIA.with(std::cell::Cell::get);
        let dir = PathBuf::from(BASE)
            .join(format!("run-{}", std::process::id()))
            .join(format!(
                "{test}-{mode:?}{}",
                via.map(|v| format!("-{v}")).unwrap_or_default()
            ));
        let _ = std::fs::remove_dir_all(&dir);
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let cache = cache.unwrap_or_else(|| dir.join("cache"));
        std::fs::create_dir_all(&cache).unwrap();
        let sb = Sandbox {
            mode,
            via,
            temp: dir.join("temp"),
            dir,
            work,
            cache,
            extra_env: vec![],
        };
        sb.give_to_user(&sb.dir);
        // Not recursively: a shared cache's contents are the user's already,
        // and other tests add and remove files in it meanwhile.
        if sb.mode == Mode::Rootless {
            let ok = Command::new("chown")
                .arg(format!("{ROOTLESS_USER}:{ROOTLESS_USER}"))
                .arg(&sb.cache)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        sb
    }

    /// Makes `path` (recursively) the test user's in rootless mode.
    pub fn give_to_user(&self, path: &Path) {
        if self.mode == Mode::Rootless {
            let ok = Command::new("chown")
                .args(["-R", &format!("{ROOTLESS_USER}:{ROOTLESS_USER}")])
                .arg(path)
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }

    /// Creates a directory owned by the user the sandbox runs as.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        self.give_to_user(&p);
        p
    }

    /// Writes a file owned by the user the sandbox runs as.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        self.give_to_user(&p);
        p
    }

    /// Writes an executable script owned by the sandbox's user.
    pub fn script(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.write(rel, text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// An executable wrapper that logs its arguments, then runs `real`.
    pub fn logging_wrapper(&self, real: &str) -> (PathBuf, PathBuf) {
        let log = self.dir.join(format!("{real}.log"));
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec {real} \"$@\"\n",
            log.display()
        );
        let path = self.script(&format!("{real}-wrapper"), &script);
        std::fs::write(&log, "").unwrap();
        self.give_to_user(&log);
        (path, log)
    }

    /// `--nix-exe`/`--podman-exe` options naming logging wrappers of the
    /// real programs, and the two logs, to count what a call started.
    pub fn counting(&self) -> Counting {
        let (nix, nix_log) = self.logging_wrapper("nix");
        let (podman, podman_log) = self.logging_wrapper("podman");
        let args = vec![
            "--nix-exe".to_owned(),
            nix.display().to_string(),
            "--podman-exe".to_owned(),
            podman.display().to_string(),
        ];
        Counting {
            args,
            nix_log,
            podman_log,
        }
    }

    /// A digit that differs between the variants of one test (mode and
    /// exec path), which run in parallel: for unique process names.
    pub fn variant(&self) -> u8 {
        self.mode as u8 * 2 + u8::from(self.via.is_some())
    }

    pub fn uid(&self) -> u32 {
        match self.mode {
            Mode::Rootful => 0,
            Mode::Rootless => rootless_uid(),
        }
    }

    /// The binary with the fixture nixpkgs and this test's state dirs.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut full: Vec<String> = vec!["--nixpkgs".into(), nixpkgs_ref()];
        if let Some(via) = self.via {
            full.extend(["--exec-via".into(), via.into()]);
        }
        full.extend(args.iter().map(|s| s.to_string()));
        self.raw_command(&full)
    }

    /// The binary with exactly `args`.
    pub fn raw_command(&self, args: &[String]) -> Command {
        let home = match self.mode {
            Mode::Rootful => "/root".to_owned(),
            Mode::Rootless => format!("/home/{ROOTLESS_USER}"),
        };
        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), home),
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("LECTIC_CACHE".into(), self.cache.display().to_string()),
            ("LECTIC_TEMP".into(), self.temp.display().to_string()),
            (
                "NIX_CONFIG".into(),
                "substituters =\nexperimental-features = nix-command flakes".into(),
            ),
        ];
        if self.mode == Mode::Rootless {
            env.push(("USER".into(), ROOTLESS_USER.into()));
            env.push(("NIX_REMOTE".into(), "daemon".into()));
        }
        env.extend(self.extra_env.iter().cloned());
        let mut cmd = match self.mode {
            Mode::Rootful => Command::new(&shared().bin),
            Mode::Rootless => {
                let mut c = Command::new("runuser");
                c.args(["-u", ROOTLESS_USER, "--"]).arg(&shared().bin);
                c
            }
        };
        cmd.env_clear().envs(env).args(args).current_dir(&self.work);
        // As under Lectic: no terminal or file on any of the three, which
        // would make calls relay through `podman exec` (see exec/).
        cmd.stdin(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_bounded(self.command(args), None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_bounded(self.command(args), Some(stdin))
    }
}

/// A shell command line that runs `cmd` as it is: in its directory, with
/// exactly its environment (`env -i`), each word single-quoted. For running
/// a call under another program, such as `script` for a terminal.
pub fn shell_line(cmd: &Command) -> String {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let mut words = vec![];
    if let Some(dir) = cmd.get_current_dir() {
        words.extend(["cd".to_owned(), quote(dir.as_os_str()), "&&".into()]);
    }
    words.push("env -i".into());
    for (name, value) in cmd.get_envs() {
        if let Some(value) = value {
            let mut pair = name.to_owned();
            pair.push("=");
            pair.push(value);
            words.push(quote(&pair));
        }
    }
    words.push(quote(cmd.get_program()));
    words.extend(cmd.get_args().map(quote));
    words.join(" ")
}

/// Runs to completion, with a bound so a hang fails the test instead of CI.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn lectic-nix-sandbox");
    if let Some(input) = stdin {
        let mut s = child.stdin.take().unwrap();
        s.write_all(input.as_bytes()).unwrap();
    }
    wait_bounded(child, Duration::from_secs(300))
}

pub fn wait_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("command did not finish within {limit:?}");
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// How many lines of a wrapper's log contain `word`.
pub fn count_lines(log: &Path, word: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(word))
        .count()
}

/// `podman` run as the mode's user (root, or the rootless test user).
pub fn podman_as(mode: Mode) -> Command {
    let mut c = match mode {
        Mode::Rootful => Command::new("podman"),
        Mode::Rootless => {
            let mut c = Command::new("runuser");
            c.args(["-u", ROOTLESS_USER, "--", "podman"]);
            c
        }
    };
    c.arg("--log-level=error").current_dir("/tmp");
    c
}

/// Every host process whose command line contains `token`, as "pid: argv".
pub fn command_lines_with(token: &str) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(token) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

/// The command's own processes with `token` in their command line: not the
/// sandbox or podman processes, whose argv repeats the command.
pub fn processes_with(token: &str) -> Vec<String> {
    command_lines_with(token)
        .into_iter()
        .filter(|l| !l.contains("lectic-nix-sandbox") && !l.contains("podman"))
        .collect()
}

/// The sandbox's own pid for a spawned call (under runuser, its child).
pub fn sandbox_pid(mode: Mode, child: &Child) -> u32 {
    let pid = match mode {
        Mode::Rootful => child.id().to_string(),
        Mode::Rootless => {
            let out = Command::new("pgrep")
                .args(["-P", &child.id().to_string()])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        }
    };
    pid.parse()
        .unwrap_or_else(|_| panic!("no sandbox process: {pid:?}"))
}

/// Sends `sig` (a name such as TERM) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Polls `cond` until true or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// A setting of the test store's storage.conf.
fn storage_setting(sb: &Sandbox, key: &str) -> String {
    let conf =
        std::fs::read_to_string(sb.cache.join("nix-sandbox/podman-conf/storage.conf")).unwrap();
    conf.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

/// The run dir the test's store is bound to: recorded when it is not the
/// first choice (see store::run_dir), else storage.conf's.
pub fn run_dir(sb: &Sandbox) -> PathBuf {
    match std::fs::read_to_string(sb.cache.join("nix-sandbox/run-dir")) {
        Ok(record) => PathBuf::from(record.lines().next().unwrap()),
        Err(_) => Path::new(&storage_setting(sb, "runroot"))
            .parent()
            .unwrap()
            .to_owned(),
    }
}

/// Podman on the test's store, with the paths the binary uses.
pub fn store_podman(sb: &Sandbox) -> std::process::Command {
    let run = run_dir(sb);
    let runroot = run.join("runroot").display().to_string();
    let mut cmd = podman_as(sb.mode);
    cmd.env("XDG_RUNTIME_DIR", run.join("xdg"))
        .args([
            "--root",
            &storage_setting(sb, "graphroot"),
            "--runroot",
            &runroot,
        ])
        .args([
            "--storage-driver",
            &storage_setting(sb, "driver"),
            "--tmpdir",
        ])
        .arg(run.join("libpod-tmp"));
    cmd
}

/// Names of the containers in the test's store.
pub fn ps_names(sb: &Sandbox) -> Vec<String> {
    let o = store_podman(sb)
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(str::to_owned).collect()
}

thread_local! {
    /// The exec path of the test running on this thread (see each_path!).
    static VIA: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Whether this machine can run the end-to-end tests: as root, with
/// podman, nix and the test users of scripts/setup-machine. Where it
/// cannot, each test returns at once after a note on stderr (plain `cargo
/// test` on a laptop runs the unit tests); `scripts/test`, which sets the
/// machine up, sets `LNS_E2E=require`, and there a missing piece fails.
pub fn e2e_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    static NOTED: std::sync::Once = std::sync::Once::new();
    let ready = READY.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        if !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            return Err("they run as root (and as the users of scripts/setup-machine)".into());
        }
        for (program, arg) in [
            ("podman", "--version"),
            ("nix", "--version"),
            ("id", ROOTLESS_USER),
        ] {
            let ran = Command::new(program).arg(arg).output();
            if !ran.is_ok_and(|o| o.status.success()) {
                return Err(format!("`{program} {arg}` does not run here"));
            }
        }
        Ok(())
    });
    match ready {
        Ok(()) => true,
        Err(why) if std::env::var_os("LNS_E2E").is_some_and(|v| v == "require") => {
            panic!("end-to-end tests cannot run: {why}; run scripts/setup-machine")
        }
        Err(why) => {
            // Past the test harness's capture: the note shows for a test
            // that passes.
            NOTED.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping the end-to-end tests: {why}; `scripts/test` sets the machine up and runs them all"
                );
            });
            false
        }
    }
}

/// Returns from the test unless the machine can run end-to-end tests
/// (see `e2e_ready`).
#[macro_export]
macro_rules! e2e_or_skip {
    () => {
        if !$crate::common::e2e_ready() {
            return;
        }
    };
}

/// Makes the Sandboxes this thread creates use `--exec-via VIA`.
pub fn set_exec_via(via: &'static str) {
    VIA.with(|v| v.set(Some(via)));
}

/// Generates a module `<name>` with one test per variant from one body:
/// `test_name: Mode [via "path"]`.
#[macro_export]
macro_rules! variants {
    ($name:ident, |$mode:ident| $body:block, $($test:ident: $m:ident $(via $via:literal)?),+) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($mode: $crate::common::Mode) $body
            $(
                #[test]
                fn $test() {
                    $crate::e2e_or_skip!();
                    $($crate::common::set_exec_via($via);)?
                    body($crate::common::Mode::$m)
                }
            )+
        }
    };
}

/// `<name>::rootful` and `<name>::rootless`, and `rootful_podman` and
/// `rootless_podman`, whose calls go through `podman exec` instead of the
/// agent.
#[macro_export]
macro_rules! each_path {
    ($name:ident, |$mode:ident| $body:block) => {
        $crate::variants!($name, |$mode| $body, rootful: Rootful, rootless: Rootless,
            rootful_podman: Rootful via "podman", rootless_podman: Rootless via "podman");
    };
}

/// `<name>::rootful` and `<name>::rootless` from one body.
#[macro_export]
macro_rules! both_modes {
    ($name:ident, |$mode:ident| $body:block) => {
        $crate::variants!($name, |$mode| $body, rootful: Rootful, rootless: Rootless);
    };
}
