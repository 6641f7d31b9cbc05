//! `--worktree`: the command works in a git worktree of its own, on a branch
//! of its own, and nothing of the repository that the user's git reads
//! can be changed from inside.
//!
//! The worktree is `<top>/.worktrees/<NAME>` on branch
//! `lectic-worktree/<NAME>/work`, made from HEAD by the host's git (hooks
//! and fsmonitor off, no `GIT_*` of the caller's). The container sees the
//! git directory read-only, and over it, read-write, directories of the
//! worktree's own in the cache (`worktrees/<key>/`, see [`Worktree::mounts`]):
//!
//! - `gitdir/` at the worktree's git directory (`<common>/worktrees/<id>`):
//!   its HEAD, index and logs, and `lectic-objects/`, where git writes new
//!   objects (`GIT_OBJECT_DIRECTORY`; the repository's objects are read,
//!   read-only, as alternates);
//! - `refs/` and `logs/` at the directories of its branch's ref and reflog.
//!
//! So nothing the command writes lies where the user's git looks. Before
//! and after each call, [`Worktree::sync`] carries the work over, on the
//! host and under the repository's lock: new objects go in through `git
//! pack-objects | git index-pack`, which names each object by the hash of
//! its content (a forged object cannot take the name of one of the user's),
//! read from the cache without following symlinks; then the branch is moved
//! with `git update-ref` to the commit the command's git left, if it is a
//! commit the repository now has, and the host's index of the worktree is
//! set to it. A branch the user moved between calls is handed to the next
//! call the other way.
//!
//! The worktree's `.git` file is mounted read-only over itself: rewritten,
//! it would point the user's git at a directory the command made.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::{Paths, Volume};
use crate::error::{Error, IoContext, Result};
use crate::lock::{self, Mode};
use crate::process::{self, Stderr};
use crate::state::{Bucket, Guard};
use crate::{fsutil, verbose};

/// Where worktrees live, under the repository's top directory.
pub const DIR: &str = ".worktrees";
/// Where the command's git writes objects, in its git directory.
const OBJECTS: &str = "lectic-objects";
/// How many bytes of object files one carry-over copies at most.
const IMPORT_LIMIT: u64 = 1 << 30;
/// The name when neither `--worktree=NAME` nor LECTIC_INTERLOCUTOR gives one.
pub const DEFAULT_NAME: &str = "Assistant";
/// The branch's ref file, in its directory.
const LEAF: &str = "work";

/// A worktree as asked for: its name and the repository of the workdir
/// (read from git, nothing made yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    /// The repository's top directory (of the user's checkout).
    pub top: PathBuf,
    /// The git directory all worktrees share.
    pub common: PathBuf,
    /// The workdir relative to `top` (the command runs there in the worktree).
    pub prefix: PathBuf,
}

/// A worktree that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    pub plan: Plan,
    /// Its git directory on the host (`<common>/worktrees/<id>`).
    pub gitdir: PathBuf,
    /// What the command may write, in the cache (see the module comment).
    pub private: PathBuf,
}

/// Checks a worktree name: it becomes a directory and part of a branch.
pub fn check_name(name: &str, from: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') || name.contains("..") {
        Some("no '/' or '..'")
    } else if name.starts_with(['.', '-']) || name.ends_with(".lock") {
        Some("it may not begin with '.' or '-' or end with .lock")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    {
        Some("letters, digits and . _ - + only")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::usage(format!(
            "--worktree: {from} {name:?} is no worktree name ({why}); give one with --worktree=NAME"
        ))),
        None => Ok(()),
    }
}

/// The host's git, on the repository at `dir`, with nothing of the
/// caller's git environment, no hook or fsmonitor of the repository run,
/// and no network: in a partial clone, git would fetch a missing object
/// the command names from the user's remote, with the user's credentials
/// (`GIT_NO_LAZY_FETCH` from git 2.44; before it, no protocol is allowed).
fn git(dir: &Path) -> Command {
    let mut cmd = git_fetching(dir);
    cmd.env("GIT_NO_LAZY_FETCH", "1")
        .args(["-c", "protocol.allow=never"]);
    cmd
}

/// What the host's git may use while it works on what the command wrote:
/// a small pack can claim gigabytes of deltas, a small tree billions of
/// paths (measured: a 16 KB pack made `index-pack` take 1.6 GB).
const BOUNDS: crate::sys::Limits = crate::sys::Limits {
    address_space: 2 << 30,
    cpu_seconds: 60,
    file_size: 2 << 30,
};
/// The most files, and bytes of them, of the command's tree the host
/// puts in an index or checks out.
const TREE_FILES: u64 = 1_000_000;
const TREE_BYTES: u64 = 4 << 30;

/// `git` within [`BOUNDS`], for what works on the command's objects.
fn bounded(dir: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = git(dir);
    // SAFETY: the closure makes async-signal-safe system calls only.
    unsafe {
        cmd.pre_exec(|| BOUNDS.apply());
    }
    cmd
}

/// `git` that may fetch what the user's HEAD lacks in a partial clone
/// (making the worktree checks HEAD out: the user's choice, not the
/// command's).
fn git_fetching(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    for (k, _) in std::env::vars_os() {
        if k.as_encoded_bytes().starts_with(b"GIT_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("-C").arg(dir).args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "core.fsmonitor=false",
    ]);
    cmd
}

fn spawn_error(e: std::io::Error) -> Error {
    Error::failed(format!(
        "--worktree: cannot run the host's git ({e}); install git"
    ))
}

/// Runs `cmd` (a `git`); its stdout, or an error with what it said.
fn output(cmd: Command, what: &str) -> Result<String> {
    verbose!("running {cmd:?}");
    let out = process::capture(cmd, Stderr::Capture, None).map_err(|e| match e {
        process::Failure::Spawn(source) => spawn_error(source),
        process::Failure::TimedOut(_) => Error::failed("--worktree: git did not finish"),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim().lines().last().unwrap_or_default();
        Err(Error::failed(format!(
            "--worktree: {what}: git says: {said}"
        )))
    }
}

/// Runs git on the repository at `dir`.
fn run<I, S>(dir: &Path, what: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = git(dir);
    cmd.args(args);
    output(cmd, what)
}

/// A git object ID as a ref file holds it (SHA-1 or SHA-256).
fn object_id(text: &str) -> Option<String> {
    let id = text.trim_end_matches('\n');
    let hex = id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    (hex && (id.len() == 40 || id.len() == 64)).then(|| id.to_owned())
}

impl Plan {
    /// The repository of `workdir`, or a one-line error outside one.
    pub fn locate(workdir: &Path, name: &str) -> Result<Plan> {
        let out = run(
            workdir,
            "reading the repository",
            [
                "rev-parse",
                "--path-format=absolute",
                "--show-toplevel",
                "--git-common-dir",
                "--show-prefix",
            ],
        )
        .map_err(|_| {
            Error::usage(format!(
                "--worktree: {} is not in a git repository (with a checkout); run in one, or drop --worktree",
                workdir.display()
            ))
        })?;
        let mut lines = out.lines();
        let (Some(top), Some(common)) = (lines.next(), lines.next()) else {
            return Err(Error::failed("--worktree: git rev-parse said too little"));
        };
        let real = |p: &str| std::fs::canonicalize(p).with_path("cannot resolve", p);
        let mut plan = Plan {
            name: name.to_owned(),
            top: real(top)?,
            common: real(common)?,
            prefix: PathBuf::from(lines.next().unwrap_or_default()),
        };
        // Inside a worktree of ours: the repository is the one it belongs to.
        if plan.top.parent().and_then(Path::file_name) == Some(OsStr::new(DIR)) {
            let outer = plan
                .top
                .parent()
                .and_then(Path::parent)
                .unwrap_or(&plan.top);
            plan.top = outer.to_owned();
        }
        Ok(plan)
    }

    /// `<top>/.worktrees/<NAME>`.
    pub fn path(&self) -> PathBuf {
        self.top.join(DIR).join(&self.name)
    }

    pub fn branch(&self) -> String {
        format!("lectic-worktree/{}/{LEAF}", self.name)
    }

    /// The directory of the branch's ref, relative to the git directory.
    fn branch_dir(&self) -> String {
        format!("refs/heads/lectic-worktree/{}", self.name)
    }

    /// The worktree's directory in the cache.
    fn private(&self, paths: &Paths) -> PathBuf {
        let mut key = crate::digest::Key::new("worktree-v1");
        key.field("repository", self.common.as_os_str().as_encoded_bytes());
        key.field("name", self.name.as_bytes());
        paths.bucket(Bucket::Worktrees).join(&key.hex()[..16])
    }

    /// One call at a time makes, syncs or removes a worktree of the
    /// repository: `git worktree prune` would take another's worktree that
    /// is half made.
    fn lock(&self, paths: &Paths, wait: std::time::Duration) -> Result<lock::Lock> {
        let mut key = crate::digest::Key::new("worktree-lock-v1");
        key.field("repository", self.common.as_os_str().as_encoded_bytes());
        let key = key.hex();
        fsutil::ensure_dir(&paths.locks())?;
        lock::acquire(
            &paths.locks().join(Guard::Worktree(&key).file_name()),
            Mode::Exclusive,
            Guard::Worktree("").what(),
            wait,
        )
    }

    /// The worktree, made (or made again, if removed by hand) from HEAD,
    /// with the work of earlier calls carried over.
    pub fn ensure(&self, paths: &Paths, wait: std::time::Duration) -> Result<Worktree> {
        let _one = self.lock(paths, wait)?;
        let path = self.path();
        let private = self.private(paths);
        if !path.join(".git").is_file() {
            // What an earlier worktree of the name left goes to its branch
            // first: the new one is made on that branch.
            self.sync_left(&private)?;
            fsutil::remove_any(&private)?;
            self.create(&path)?;
        }
        let wt = Worktree {
            plan: self.clone(),
            gitdir: read_gitdir(&path)?,
            private,
        };
        wt.prepare()?;
        wt.sync()?;
        Ok(wt)
    }

    fn create(&self, path: &Path) -> Result<()> {
        verbose!(
            "making worktree {} on branch {}",
            path.display(),
            self.branch()
        );
        // A worktree removed by hand is still registered until pruned.
        run(
            &self.top,
            "pruning removed worktrees",
            ["worktree", "prune"],
        )?;
        if path.exists() {
            return Err(Error::failed(format!(
                "--worktree: {} exists but is no git worktree; move it away",
                path.display()
            )));
        }
        let branch = self.branch();
        let tip = self.host_ref();
        let add = match &tip {
            // From the user's HEAD: their own files, so their git's filters
            // and what it fetches in a partial clone are theirs to run.
            None => {
                let mut add = git_fetching(&self.top);
                add.args(["worktree", "add", "-b", &branch])
                    .arg(path)
                    .arg("HEAD");
                add
            }
            // On the branch the command made: its files are checked out
            // below, within bounds, offline, with no filter of the user's
            // configuration run (the command's `.gitattributes` would
            // choose which files go through, e.g., git-lfs): git runs no
            // filter whose commands are empty, and one that is not
            // required may do nothing.
            Some(_) => {
                let mut add = bounded(&self.top);
                add.args(["worktree", "add", "--no-checkout"])
                    .arg(path)
                    .arg(&branch);
                add
            }
        };
        output(add, "making the worktree")?;
        add_line(&self.common.join("info/exclude"), &format!("/{DIR}/"))?;
        let Some(tip) = tip else {
            return Ok(());
        };
        if !self.tree_fits(&tip, true) {
            eprintln!(
                "lectic-nix-sandbox: --worktree: {branch} has more than {TREE_FILES} files or {} GiB: {} was made without them",
                TREE_BYTES >> 30,
                path.display()
            );
            return Ok(());
        }
        let mut checkout = bounded(path);
        checkout
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        for driver in self.filter_drivers() {
            for (key, value) in [
                ("smudge", ""),
                ("clean", ""),
                ("process", ""),
                ("required", "false"),
            ] {
                checkout
                    .arg("-c")
                    .arg(format!("filter.{driver}.{key}={value}"));
            }
        }
        checkout.args(["reset", "--hard", "-q"]);
        output(checkout, "checking the branch out").map(drop)
    }

    /// The lines of `git config --get-regexp REGEXP` (with `flags`) of the
    /// repository's own config file: no include, no user or system file.
    fn config_lines(&self, flags: &[&str], regexp: &str) -> String {
        let mut cmd = git(&self.top);
        cmd.args(["config", "--file"])
            .arg(self.common.join("config"))
            .args(flags)
            .args(["--get-regexp", regexp]);
        output(cmd, "reading the repository's config").unwrap_or_default()
    }

    /// The filter drivers the repository's own config names.
    fn filter_drivers(&self) -> BTreeSet<String> {
        self.config_lines(&["--name-only"], r"^filter\.")
            .lines()
            .filter_map(|key| Some(key.strip_prefix("filter.")?.rsplit_once('.')?.0.to_owned()))
            .collect()
    }

    /// Whether the tree of commit `id` has at most [`TREE_FILES`] files
    /// (and, with `bytes`, [`TREE_BYTES`] of them): listed by the host's
    /// git, which is stopped as soon as there are too many.
    fn tree_fits(&self, id: &str, bytes: bool) -> bool {
        use std::io::BufRead;
        let mut cmd = bounded(&self.top);
        cmd.args(["ls-tree", "-r", "-l", "-z", id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        let Some(out) = child.stdout.take() else {
            return false;
        };
        let mut out = std::io::BufReader::new(out);
        let (mut files, mut total) = (0u64, 0u64);
        let mut entry = Vec::new();
        let fits = loop {
            entry.clear();
            match out.read_until(0, &mut entry) {
                Ok(0) => break true,
                Err(_) => break false,
                Ok(_) => {}
            }
            // `<mode> <type> <id> <size>\t<path>`
            let size = entry
                .split(|&b| b == b'\t')
                .next()
                .and_then(|meta| meta.split(|&b| b == b' ').filter(|f| !f.is_empty()).nth(3))
                .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            files += 1;
            total += size;
            if files > TREE_FILES || (bytes && total > TREE_BYTES) {
                break false;
            }
        };
        let _ = child.kill();
        let listed = child.wait().is_ok_and(|s| s.success());
        fits && listed
    }

    /// Where the branch points on the host.
    fn host_ref(&self) -> Option<String> {
        let file = self.common.join(self.branch_dir()).join(LEAF);
        if let Ok(text) = std::fs::read_to_string(file) {
            return object_id(&text);
        }
        // Packed (`git pack-refs`).
        let full = format!("refs/heads/{}", self.branch());
        run(
            &self.top,
            "reading the branch",
            ["rev-parse", "--verify", "-q", &full],
        )
        .ok()
        .and_then(|out| object_id(out.trim()))
    }

    /// Carries over what the cache's copy `private` holds of a worktree
    /// that may be gone (removed by hand, or being removed).
    fn sync_left(&self, private: &Path) -> Result<()> {
        match read_gitdir_of(self, private) {
            Ok(gitdir) if private.is_dir() => Worktree {
                plan: self.clone(),
                gitdir,
                private: private.to_owned(),
            }
            .sync(),
            _ => Ok(()),
        }
    }
}

/// The git directory a worktree's `.git` file names.
fn read_gitdir(path: &Path) -> Result<PathBuf> {
    let file = path.join(".git");
    let text = std::fs::read_to_string(&file).with_path("cannot read", &file)?;
    let dir = text
        .trim()
        .strip_prefix("gitdir: ")
        .map(|d| path.join(d))
        .ok_or_else(|| {
            Error::failed(format!(
                "--worktree: {} does not name a git directory; remove {} and call again",
                file.display(),
                path.display()
            ))
        })?;
    std::fs::canonicalize(&dir).with_path("cannot resolve", &dir)
}

/// The host's git directory the cache's copy of a removed worktree stood
/// for (recorded at creation).
fn read_gitdir_of(plan: &Plan, private: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(private.join(".gitdir"))
        .with_path("cannot read", private.join(".gitdir"))?;
    let dir = PathBuf::from(text.trim());
    if dir.starts_with(plan.common.join("worktrees")) {
        Ok(dir)
    } else {
        Err(Error::failed("--worktree: a stale record in the cache"))
    }
}

/// Appends `line` to the file at `path` unless a line of it is `line`.
fn add_line(path: &Path, line: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if text.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fsutil::ensure_dir(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_path("cannot write", path)?;
    let sep = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    writeln!(f, "{sep}{line}").with_path("cannot write", path)
}

impl Worktree {
    fn private_gitdir(&self) -> PathBuf {
        self.private.join("gitdir")
    }

    fn private_refs(&self) -> PathBuf {
        self.private.join("refs")
    }

    fn private_logs(&self) -> PathBuf {
        self.private.join("logs")
    }

    /// Where the command's git writes objects (inside, at the same place
    /// under the worktree's git directory).
    fn private_objects(&self) -> PathBuf {
        self.private_gitdir().join(OBJECTS)
    }

    /// The cache's copy of the worktree's git state, made once from the
    /// host's (HEAD, index, commondir, gitdir), and the host's mount
    /// targets (packing refs may have removed the branch's directory).
    fn prepare(&self) -> Result<()> {
        let c = &self.plan.common;
        for dir in [
            c.join(self.plan.branch_dir()),
            c.join("logs").join(self.plan.branch_dir()),
        ] {
            std::fs::create_dir_all(&dir).with_path("cannot create directory", &dir)?;
        }
        let empty = self.private.join("empty");
        if self.private_gitdir().is_dir() {
            if !empty.exists() {
                std::fs::write(&empty, b"").with_path("cannot write", &empty)?;
            }
            return self.write_config();
        }
        let fresh = self.private.with_extension("new");
        fsutil::remove_any(&fresh)?;
        for dir in ["gitdir", "refs", "logs", &format!("gitdir/{OBJECTS}")] {
            fsutil::ensure_dir(&fresh.join(dir))?;
        }
        for f in ["HEAD", "commondir", "gitdir", "index"] {
            let from = self.gitdir.join(f);
            if from.exists() {
                std::fs::copy(&from, fresh.join("gitdir").join(f))
                    .with_path("cannot copy", &from)?;
            }
        }
        std::fs::write(
            fresh.join(".gitdir"),
            self.gitdir.as_os_str().as_encoded_bytes(),
        )
        .with_path("cannot write", &fresh)?;
        std::fs::rename(&fresh, &self.private)
            .with_path("cannot rename into place", &self.private)?;
        std::fs::write(&empty, b"").with_path("cannot write", &empty)?;
        self.write_config()
    }

    /// The repository's config as the command's git reads it: what git
    /// needs to read the repository (`core`, `extensions`) and the
    /// identity (`user.name`, `user.email`); no remote URL (which may hold
    /// a token), credential helper or include. Written again when the
    /// repository's changes (a running container keeps the copy it has).
    fn write_config(&self) -> Result<()> {
        let host = self.plan.common.join("config");
        let ours = self.private.join("config");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if ours.exists() && modified(&ours) >= modified(&host) {
            return Ok(());
        }
        let listed = self.plan.config_lines(&[], r"^(core|extensions|user)\.");
        fsutil::write_atomic(&ours, config_subset(&listed).as_bytes())
    }

    /// Its directory's identity (`dev:ino`): one made again is another.
    pub fn identity(&self) -> Result<String> {
        let path = self.plan.path();
        let (dev, ino) =
            fsutil::file_id(&std::fs::metadata(&path).with_path("cannot read", &path)?);
        Ok(format!("{dev}:{ino}"))
    }

    /// Where the command runs: the workdir's place in the worktree.
    pub fn workdir(&self) -> PathBuf {
        self.plan.path().join(&self.plan.prefix)
    }

    /// Every mount: the git directory read-only, the cache's copies of
    /// what the command's git writes over it, the worktree read-write and
    /// its `.git` file read-only.
    pub fn mounts(&self) -> Vec<Volume> {
        let c = &self.plan.common;
        let mount = |host: PathBuf, target: PathBuf, read_only| Volume {
            host,
            target,
            read_only,
        };
        let mut v = vec![
            mount(c.clone(), c.clone(), true),
            // A read-only copy over the user's config, without remotes.
            mount(self.private.join("config"), c.join("config"), true),
            mount(self.private_gitdir(), self.gitdir.clone(), false),
            mount(self.private_refs(), c.join(self.plan.branch_dir()), false),
            mount(
                self.private_logs(),
                c.join("logs").join(self.plan.branch_dir()),
                false,
            ),
        ];
        // The user's index (what they staged, by name) shows empty.
        if c.join("index").is_file() {
            v.push(mount(self.private.join("empty"), c.join("index"), true));
        }
        let path = self.plan.path();
        // With the workdir at its top, the workdir's own mount is it.
        if !self.plan.prefix.as_os_str().is_empty() {
            v.push(mount(path.clone(), path.clone(), false));
        }
        v.push(mount(path.join(".git"), path.join(".git"), true));
        v
    }

    /// What git inside needs to find its objects.
    pub fn env(&self) -> Vec<String> {
        vec![
            format!(
                "GIT_OBJECT_DIRECTORY={}",
                self.gitdir.join(OBJECTS).display()
            ),
            format!(
                "GIT_ALTERNATE_OBJECT_DIRECTORIES={}",
                self.plan.common.join("objects").display()
            ),
        ]
    }

    /// Carries the work over (see the module comment), under the
    /// repository's lock.
    pub fn sync_locked(&self, paths: &Paths, wait: std::time::Duration) -> Result<()> {
        let _one = self.plan.lock(paths, wait)?;
        self.sync()
    }

    fn sync(&self) -> Result<()> {
        self.import_objects()?;
        let synced_file = self.private.join(".synced");
        let synced = std::fs::read_to_string(&synced_file)
            .ok()
            .and_then(|t| object_id(&t));
        let inside = read_small(&self.private_refs().join(LEAF)).and_then(|t| object_id(&t));
        let host = self.plan.host_ref();
        let branch = format!("refs/heads/{}", self.plan.branch());
        if let Some(id) = inside.as_ref().filter(|id| Some(*id) != synced.as_ref()) {
            // A commit, and everything it reaches is in the repository now.
            let check = |args: &[&str]| {
                let mut cmd = bounded(&self.plan.top);
                cmd.args(args);
                output(cmd, "checking the commit")
            };
            let is_commit = check(&["cat-file", "-t", id]).is_ok_and(|t| t.trim() == "commit");
            let whole = ["rev-list", "--objects", "--quiet", id, "--not", "--all"];
            if is_commit && check(&whole).is_ok() {
                if host.as_ref() != Some(id) {
                    verbose!("moving {branch} to {id}, where the command's git left it");
                    let msg = "lectic-nix-sandbox: the worktree's commits";
                    run(
                        &self.plan.top,
                        "moving the branch",
                        ["update-ref", "-m", msg, &branch, id],
                    )?;
                    self.set_host_index(id)?;
                }
                return fsutil::write_atomic(&synced_file, id.as_bytes());
            }
            eprintln!(
                "lectic-nix-sandbox: --worktree: the worktree's branch names {id}, which the repository does not have whole (objects the command's git left are missing or unreadable); {branch} stays where it was"
            );
        }
        // The user moved the branch (or the command's ref is no commit):
        // the next call starts from the host's.
        let Some(host) = host else {
            return Ok(());
        };
        if inside.as_ref() == Some(&host) && synced.as_ref() == Some(&host) {
            // Nothing moved (every warm call): nothing to write.
            return Ok(());
        }
        if inside.as_ref() != Some(&host) {
            fsutil::write_atomic(
                &self.private_refs().join(LEAF),
                format!("{host}\n").as_bytes(),
            )?;
            if synced.as_ref() != Some(&host) {
                self.set_host_index(&host)?;
                let index = self.gitdir.join("index");
                if let Ok(bytes) = std::fs::read(&index) {
                    fsutil::write_atomic(&self.private_gitdir().join("index"), &bytes)?;
                }
            }
        }
        fsutil::write_atomic(&synced_file, host.as_bytes())
    }

    /// Sets the host's index of the worktree to commit `id` (its files are
    /// the command's: only the index is written).
    fn set_host_index(&self, id: &str) -> Result<()> {
        if !self.plan.tree_fits(id, false) {
            eprintln!(
                "lectic-nix-sandbox: --worktree: {id} has more than {TREE_FILES} files: the host's index of the worktree was left as it was"
            );
            return Ok(());
        }
        let mut cmd = bounded(&self.plan.top);
        cmd.arg("--git-dir")
            .arg(&self.gitdir)
            .arg("--work-tree")
            .arg(self.plan.path())
            .args(["read-tree", id]);
        output(cmd, "setting the worktree's index").map(drop)
    }

    /// Takes the objects the command's git wrote since the last time into
    /// the repository: copied out of the cache without following symlinks,
    /// packed, and indexed by the repository's git, which names each by
    /// the hash of its content.
    fn import_objects(&self) -> Result<()> {
        let record = self.private.join(".imported");
        let done: BTreeSet<String> = std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let fresh: Vec<String> = object_files(&self.private_objects())
            .into_iter()
            .filter(|f| !done.contains(f))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let staging = self.private.join("staging");
        fsutil::remove_any(&staging)?;
        let mut ids = Vec::new();
        let mut taken = Vec::new();
        let mut budget = IMPORT_LIMIT;
        let mut refused = Vec::new();
        for rel in &fresh {
            // Streamed, within what is left of the budget; a sparse file
            // (cheap to make inside, costly to read and copy here) is no
            // object git wrote.
            let mut copy = |rel: &str| -> std::result::Result<(), String> {
                let (meta, f) = fsutil::open_no_symlinks(&self.private_objects().join(rel))
                    .map_err(|e| format!("{rel}: {e}"))?;
                let len = std::os::unix::fs::MetadataExt::size(&meta);
                let blocks = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
                if len > budget || (len > 65536 && blocks < len / 2) {
                    return Err(format!("{rel}: {len} bytes ({blocks} on disk)"));
                }
                budget -= len;
                let to = staging.join(rel);
                let parent = to.parent().unwrap_or(&staging);
                fsutil::ensure_dir(parent).map_err(|e| e.to_string())?;
                let mut out = std::fs::File::create(&to).map_err(|e| e.to_string())?;
                std::io::copy(&mut std::io::Read::take(f, len), &mut out)
                    .map(drop)
                    .map_err(|e| format!("{rel}: {e}"))
            };
            let copied = match rel.strip_suffix(".pack") {
                Some(pack) => copy(rel).and_then(|()| copy(&format!("{pack}.idx"))),
                None => copy(rel),
            };
            match copied {
                Ok(()) if rel.ends_with(".pack") => {
                    ids.extend(pack_ids(
                        &self.plan.top,
                        &staging.join(rel.replace(".pack", ".idx")),
                    ));
                }
                Ok(()) => ids.push(rel.replace('/', "")),
                Err(why) => refused.push(why),
            }
            // Refused files are not looked at again.
            taken.push(rel.clone());
        }
        if !refused.is_empty() {
            eprintln!(
                "lectic-nix-sandbox: --worktree: left out of the repository (not a regular file, sparse, or past {} MiB in all): {}",
                IMPORT_LIMIT >> 20,
                refused.join(", ")
            );
        }
        if !ids.is_empty() {
            verbose!(
                "taking {} objects of {} into the repository",
                ids.len(),
                self.plan.name
            );
            let mut pack = bounded(&self.plan.top);
            pack.env("GIT_OBJECT_DIRECTORY", &staging)
                .env(
                    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                    self.plan.common.join("objects"),
                )
                .args(["pack-objects", "--stdout", "-q", "--window=0"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut packer = pack.spawn().map_err(spawn_error)?;
            let mut input = packer.stdin.take();
            let list = ids.join("\n") + "\n";
            let feeder = std::thread::spawn(move || {
                if let Some(i) = input.as_mut() {
                    let _ = i.write_all(list.as_bytes());
                }
            });
            let mut index = bounded(&self.plan.top);
            index
                .args(["index-pack", "--stdin"])
                .stdin(packer.stdout.take().map_or_else(Stdio::null, Into::into));
            // Its stdin is the packer's stdout (`process::capture` would
            // give it none).
            let indexed = index.output().map_err(spawn_error)?;
            let _ = feeder.join();
            let packed = packer.wait_with_output().map_err(spawn_error)?;
            if !packed.status.success() || !indexed.status.success() {
                let said = [&packed.stderr, &indexed.stderr]
                    .map(|e| String::from_utf8_lossy(e).trim().to_owned())
                    .join(" ");
                // Not tried again: what fails within the bounds fails again.
                eprintln!(
                    "lectic-nix-sandbox: --worktree: taking what the command's git wrote into the repository failed ({}); {} objects left out",
                    said.chars().take(300).collect::<String>(),
                    ids.len()
                );
            }
        }
        fsutil::remove_any(&staging)?;
        let mut text = taken.join("\n");
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&record)
            .with_path("cannot write", &record)?;
        f.write_all(text.as_bytes())
            .with_path("cannot write", &record)
    }
}

/// The object files in `dir`, relative to it: loose objects (`ab/cdef…`)
/// and packs (`pack/pack-….pack`). Entries are only listed here; each is
/// opened without following symlinks.
fn object_files(dir: &Path) -> Vec<String> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    // Each directory opened without following a symlink (a symlinked
    // `ab/` would list a directory of the host's), then read through its
    // descriptor.
    let names = |d: &Path| -> Vec<String> {
        let Ok(dir) = crate::sys::open_no_symlinks(d) else {
            return vec![];
        };
        if !dir.metadata().is_ok_and(|m| m.is_dir()) {
            return vec![];
        }
        std::fs::read_dir(crate::sys::fd_path(&dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let mut files = Vec::new();
    for fan in names(dir) {
        if fan.len() == 2 && hex(&fan) {
            for obj in names(&dir.join(&fan)) {
                if hex(&obj) {
                    files.push(format!("{fan}/{obj}"));
                }
            }
        }
    }
    for p in names(&dir.join("pack")) {
        if p.starts_with("pack-") && p.ends_with(".pack") && !p.contains(['/', '\\']) {
            files.push(format!("pack/{p}"));
        }
    }
    files.sort();
    files
}

/// `git config --get-regexp` lines as a config file, without the keys that
/// name the user's checkout or run programs.
fn config_subset(listed: &str) -> String {
    const LEFT_OUT: &[&str] = &[
        "core.worktree",
        "core.bare",
        "core.hookspath",
        "core.fsmonitor",
        "core.sshcommand",
        "core.editor",
        "core.pager",
        "core.askpass",
    ];
    let mut sections: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for line in listed.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, "true"));
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        if name.contains('.') || LEFT_OUT.contains(&key) || name.is_empty() {
            continue;
        }
        let value = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        sections
            .entry(section)
            .or_default()
            .push(format!("\t{name} = \"{value}\""));
    }
    sections
        .into_iter()
        .map(|(section, lines)| format!("[{section}]\n{}\n", lines.join("\n")))
        .collect()
}

/// The start of the small file at `path` (a ref), opened following no
/// symlink.
fn read_small(path: &Path) -> Option<String> {
    let (_, f) = fsutil::open_no_symlinks(path).ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 256), &mut text).ok()?;
    Some(text)
}

/// The IDs a pack's index lists (read by the host's git, in the
/// repository at `top` for its object format).
fn pack_ids(top: &Path, idx: &Path) -> Vec<String> {
    let Ok(file) = std::fs::File::open(idx) else {
        return vec![];
    };
    use std::io::BufRead;
    let mut cmd = bounded(top);
    cmd.arg("show-index")
        .stdin(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return vec![];
    };
    let Some(out) = child.stdout.take() else {
        return vec![];
    };
    // An index can claim any number of objects: at most PACK_IDS of them.
    let ids = std::io::BufReader::new(out)
        .lines()
        .map_while(std::result::Result::ok)
        .take(PACK_IDS)
        .filter_map(|l| object_id(l.split_whitespace().nth(1)?))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    ids
}

/// The most objects taken from one pack of the command's git.
const PACK_IDS: usize = 1_000_000;

/// What `--worktree --remove` did.
#[derive(Debug, Default)]
pub struct Removed {
    pub path: PathBuf,
    pub branch: String,
    /// Why the branch was kept (not merged into HEAD); None if it went.
    pub branch_kept: Option<String>,
    /// Why the last work could not be carried over, if it could not.
    pub not_carried: Option<String>,
}

impl Plan {
    /// Removes the worktree (its container must be gone): its work is
    /// carried over first, then the worktree, the cache's copy and, if
    /// merged into HEAD, its branch go.
    pub fn remove(&self, paths: &Paths, wait: std::time::Duration) -> Result<Removed> {
        let _one = self.lock(paths, wait)?;
        let path = self.path();
        let private = self.private(paths);
        // What cannot be carried over (the command's own objects broken)
        // does not keep the worktree: the reason is reported.
        let not_carried = self.sync_left(&private).err().map(|e| e.to_string());
        if path.exists() {
            run(
                &self.top,
                "removing the worktree",
                [
                    OsStr::new("worktree"),
                    "remove".as_ref(),
                    "--force".as_ref(),
                    path.as_os_str(),
                ],
            )?;
        }
        run(
            &self.top,
            "pruning removed worktrees",
            ["worktree", "prune"],
        )?;
        fsutil::remove_any(&private)?;
        let branch = self.branch();
        let branch_kept = match run(&self.top, "deleting the branch", ["branch", "-d", &branch]) {
            Ok(_) => None,
            Err(_) if self.host_ref().is_none() => None,
            Err(_) => Some("not merged into HEAD; `git branch -D` deletes it".into()),
        };
        Ok(Removed {
            path,
            branch,
            branch_kept,
            not_carried,
        })
    }
}

/// One of our worktrees of a repository, for `--status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    pub branch: Option<String>,
    /// Commits on its branch that HEAD lacks.
    pub ahead: Option<u64>,
}

/// Our worktrees (under `.worktrees/`) of the repository of `workdir`;
/// none outside a repository or without git.
pub fn list(workdir: &Path) -> Vec<Listed> {
    let Ok(plan) = Plan::locate(workdir, DEFAULT_NAME) else {
        return vec![];
    };
    let Ok(porcelain) = run(
        &plan.top,
        "listing worktrees",
        ["worktree", "list", "--porcelain"],
    ) else {
        return vec![];
    };
    parse_list(&porcelain, &plan.top.join(DIR))
        .into_iter()
        .map(|mut l| {
            l.ahead = l.branch.as_ref().and_then(|b| {
                let range = format!("HEAD..refs/heads/{b}");
                run(
                    &plan.top,
                    "counting commits",
                    ["rev-list", "--count", &range],
                )
                .ok()?
                .trim()
                .parse()
                .ok()
            });
            l
        })
        .collect()
}

/// The entries of `git worktree list --porcelain` that lie in `dir`.
fn parse_list(porcelain: &str, dir: &Path) -> Vec<Listed> {
    porcelain
        .split("\n\n")
        .filter_map(|entry| {
            let mut path = None;
            let mut branch = None;
            for line in entry.lines() {
                if let Some(p) = line.strip_prefix("worktree ") {
                    path = Some(PathBuf::from(p));
                } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                    branch = Some(b.to_owned());
                }
            }
            let path = path?;
            let name = path.file_name()?.to_string_lossy().into_owned();
            (path.parent() == Some(dir)).then_some(Listed {
                name,
                path,
                branch,
                ahead: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_directory_or_break_a_branch_are_refused() {
        for good in ["Assistant", "code-reviewer", "a.b_c+1"] {
            assert!(check_name(good, "the name").is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            ".hidden",
            "-x",
            "x.lock",
            "two words",
            "é",
        ] {
            let e = check_name(bad, "the name").unwrap_err().to_string();
            assert!(e.contains("--worktree=NAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_worktrees_under_the_worktrees_directory_are_listed() {
        let porcelain = "worktree /r\nHEAD 1\nbranch refs/heads/main\n\n\
            worktree /r/.worktrees/A\nHEAD 2\nbranch refs/heads/lectic-worktree/A/work\n\n\
            worktree /elsewhere/B\nHEAD 3\nbranch refs/heads/b\n\n\
            worktree /r/.worktrees/C\nHEAD 4\ndetached\n";
        let l = parse_list(porcelain, Path::new("/r/.worktrees"));
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name, "A");
        assert_eq!(l[0].branch.as_deref(), Some("lectic-worktree/A/work"));
        assert_eq!((l[1].name.as_str(), l[1].branch.as_ref()), ("C", None));
    }

    #[test]
    fn the_mounts_make_writable_only_the_caches_copies_and_the_worktree() {
        let plan = Plan {
            name: "A".into(),
            top: "/r".into(),
            common: "/r/.git".into(),
            prefix: "sub".into(),
        };
        let wt = Worktree {
            plan,
            gitdir: "/r/.git/worktrees/A".into(),
            private: "/c/worktrees/k".into(),
        };
        let mounts = wt.mounts();
        let writable: Vec<(String, String)> = mounts
            .iter()
            .filter(|v| !v.read_only)
            .map(|v| (v.host.display().to_string(), v.target.display().to_string()))
            .collect();
        let pair = |h: &str, t: &str| (h.to_owned(), t.to_owned());
        assert_eq!(
            writable,
            [
                pair("/c/worktrees/k/gitdir", "/r/.git/worktrees/A"),
                pair(
                    "/c/worktrees/k/refs",
                    "/r/.git/refs/heads/lectic-worktree/A"
                ),
                pair(
                    "/c/worktrees/k/logs",
                    "/r/.git/logs/refs/heads/lectic-worktree/A"
                ),
                pair("/r/.worktrees/A", "/r/.worktrees/A"),
            ]
        );
        // Nothing of the repository's own is writable.
        assert!(writable.iter().all(|(h, _)| !h.starts_with("/r/.git")));
        let ro = |p: &str| mounts.iter().any(|v| v.read_only && v.host == Path::new(p));
        assert!(ro("/r/.git") && ro("/r/.worktrees/A/.git"));
        assert_eq!(wt.workdir(), Path::new("/r/.worktrees/A/sub"));
        assert!(wt.env()[0].ends_with("/r/.git/worktrees/A/lectic-objects"));
    }

    #[test]
    fn the_config_inside_keeps_only_what_git_needs_and_the_identity() {
        let listed = "core.repositoryformatversion 0\ncore.filemode true\ncore.worktree /r\n\
            core.hookspath .husky\ncore.logallrefupdates\nextensions.objectformat sha256\n\
            user.name A \"B\"\nsubmodule.x.url u\n";
        assert_eq!(
            config_subset(listed),
            "[core]\n\trepositoryformatversion = \"0\"\n\tfilemode = \"true\"\n\tlogallrefupdates = \"true\"\n\
             [extensions]\n\tobjectformat = \"sha256\"\n\
             [user]\n\tname = \"A \\\"B\\\"\"\n"
        );
    }

    #[test]
    fn only_object_ids_are_read_from_refs() {
        assert_eq!(object_id(&"a".repeat(40)), Some("a".repeat(40)));
        assert_eq!(
            object_id(&format!("{}\n", "b".repeat(64))),
            Some("b".repeat(64))
        );
        for bad in [
            "ref: refs/heads/main",
            "",
            "xyz",
            &"A".repeat(40),
            &"a".repeat(41),
        ] {
            assert_eq!(object_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn object_files_lists_loose_objects_and_packs_only() {
        let t = crate::testutil::TempDir::new("objects");
        for f in [
            "ab/cdef01",
            "pack/pack-1.pack",
            "pack/pack-1.idx",
            "info/alternates",
            "zz/00",
            "ab/x.tmp",
        ] {
            std::fs::create_dir_all(t.join(f).parent().unwrap()).unwrap();
            std::fs::write(t.join(f), "").unwrap();
        }
        assert_eq!(object_files(&t), ["ab/cdef01", "pack/pack-1.pack"]);
    }

    #[test]
    fn object_directories_that_are_symlinks_are_not_listed() {
        // A directory of the host's with names that look like objects.
        let host = crate::testutil::TempDir::new("host-objects");
        std::fs::create_dir(host.join("pack")).unwrap();
        for f in ["0123456789", "pack/pack-9.pack"] {
            std::fs::write(host.join(f), "").unwrap();
        }
        let t = crate::testutil::TempDir::new("linked-objects");
        std::os::unix::fs::symlink(host.path(), t.join("cd")).unwrap();
        std::os::unix::fs::symlink(host.join("pack"), t.join("pack")).unwrap();
        assert!(object_files(&t).is_empty(), "{:?}", object_files(&t));
        let linked = crate::testutil::TempDir::new("linked-root");
        let root = linked.join("objects");
        std::os::unix::fs::symlink(host.path(), &root).unwrap();
        assert!(object_files(&root).is_empty());
    }
}
