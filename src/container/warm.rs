//! The warm lifecycle: making sure a configuration's container runs
//! (and knowing it without asking Podman), making it, checking its
//! mounts, and killing what `podman exec` calls left in it.

use std::collections::HashSet;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::warm_dir::{AGENT_FILE, Main, SOCKET_DIR, WarmDir};
use super::{Spec, State, watcher};
use crate::config::{Checked, Config};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::lock::{self, Lock, Mode};
use crate::state::Guard;
use crate::{agent, fsutil, stop, sys, verbose};

/// How long killing a `podman exec` call's leftovers may take, per phase
/// (see `stop::kill_until_none`): each round reads the host's /proc.
const REAP_LIMIT: Duration = Duration::from_secs(10);
/// How long a new container's agent or watcher may take to show it is alive.
const START_LIMIT: Duration = Duration::from_secs(10);

/// What `ensure_warm` found.
#[derive(Debug)]
pub enum Warmed {
    /// The container runs and this call uses it.
    Ready(Warm),
    /// It had to be made, and the store no longer has the image the spec
    /// names (or a root filesystem's store path is gone): load it again.
    ImageGone,
}

/// A warm container in use by this call.
#[derive(Debug)]
pub struct Warm {
    pub name: String,
    /// A connection to its agent, if it has one.
    pub agent: Option<UnixStream>,
    /// Whether its image has a shell (and the watcher's tools).
    pub has_shell: bool,
    /// Its proxy's refusal log and how long it was when the call began.
    refusals: Option<(PathBuf, u64)>,
    dir: WarmDir,
    _busy: Option<Lock>,
    _in_use: Lock,
}

impl Warm {
    /// Whether the container's init still runs (a command may kill it).
    pub fn alive(&self) -> bool {
        self.dir.live_init().is_some()
    }

    /// Whether the container's init is gone, or goes within `limit` (it
    /// outlives its agent by a moment when a command kills it).
    pub fn ended_within(&self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while self.alive() {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Lets the processes of call `id` outlive it (see `reap_leftovers`).
    pub fn keep_call(&self, id: &str) {
        if let Err(e) = self.dir.keep_call(id) {
            verbose!("cannot record that call {id} keeps its processes: {e}");
        }
    }

    /// Says (with --verbose) what the proxy refused during the call (in
    /// this container: a parallel call's refusals show too).
    pub fn report_refusals(&self) {
        if let Some((log, from)) = &self.refusals {
            for line in crate::proxy::log::since(log, *from) {
                verbose!(
                    "the proxy {}",
                    line.split_once(' ').map_or(line.as_str(), |(_, l)| l)
                );
            }
        }
    }

    /// Records the end of a use: the idle TTL counts from here.
    pub fn touch(&self) {
        if let Err(e) = self.dir.touch() {
            verbose!("cannot record the end of the call: {e}");
        }
    }
}

/// Makes sure the warm container for `spec` runs and marks it in use.
///
/// The use lock (shared) comes first and is all a call needs when the
/// container runs, so parallel calls do not queue; pruning takes it
/// exclusively, and the container cannot reach it. A container is alive
/// exactly when its agent, the process recorded at creation (SO_PEERCRED),
/// answers on its socket and says ready (from then on it counts the
/// connection as a call and will not end itself), or when its watcher
/// holds `alive.lock` while the call holds `busy.lock` (the watcher lets
/// go of `alive.lock` only as it exits, and exits only with `busy.lock`
/// exclusive). So no Podman process is needed to know the container runs,
/// and a call never execs into a dying container. A container with
/// neither is asked about with `podman inspect`. Only a dead, missing,
/// stopped or impersonated container is made anew, under the create lock,
/// unless the store no longer has the image `spec` names.
pub fn ensure_warm(cfg: &Config, engine: &dyn Engine, spec: &Spec) -> Result<Warmed> {
    let name = spec.name();
    let dir = WarmDir::new(cfg, &name);
    // Locks are created as they are taken; `prepare` before a creation.
    fsutil::ensure_dir(dir.inside())?;
    let in_use = lock::acquire(
        &dir.use_lock(),
        Mode::Shared,
        Guard::WarmUse.what(),
        cfg.lock_limit(Guard::WarmUse.wait()),
    )?;
    // Only a watcher looks at `busy.lock`. A command inside can hold it
    // exclusively; then the call waits only briefly and makes a new
    // container.
    let watcher = spec.agent.is_none() && spec.watcher;
    let take_busy = || {
        lock::acquire(
            &dir.busy_lock(),
            Mode::Shared,
            Guard::WarmBusy.what(),
            Guard::WarmBusy.wait(),
        )
    };
    let mut busy = if watcher { take_busy().ok() } else { None };
    if dir.store_replaced() {
        end_orphan(&dir);
    }
    let blocked = watcher && busy.is_none();
    let mut alive = if blocked {
        Err(State::Stopped)
    } else {
        probe(engine, spec, &dir)?
    };
    if alive.is_err() {
        let _creating = lock::acquire(
            &dir.create_lock(),
            Mode::Exclusive,
            Guard::WarmCreate.what(),
            cfg.lock_limit(Guard::WarmCreate.wait()),
        )?;
        // Another call may have made it while we waited.
        if !blocked {
            alive = probe(engine, spec, &dir)?;
        }
        if let Err(s) = alive {
            if !spec.image_present(engine)? {
                return Ok(Warmed::ImageGone);
            }
            if s != State::Missing {
                engine.remove(&name)?;
            }
            // The locks and the stamp first: the new container's main
            // process opens and reads them.
            drop(busy.take());
            dir.prepare()?;
            dir.record(spec, cfg.ttl)?;
            if watcher {
                busy = Some(take_busy()?);
            }
            alive = Ok(create(engine, spec, &dir)?);
        }
    }
    if !dir.recorded() {
        dir.record(spec, cfg.ttl)?; // repairs a stamp someone removed
    }
    dir.set_ttl(cfg.ttl)?;
    dir.touch()?;
    let refusals = if spec.allow_hosts.is_empty() {
        None
    } else {
        // Started with the container, or again if it died.
        crate::proxy::daemon::ensure(&dir, &spec.allow_hosts)?;
        let log = dir.refusal_log();
        let from = crate::proxy::log::len(&log);
        Some((log, from))
    };
    Ok(Warmed::Ready(Warm {
        name,
        refusals,
        agent: alive.unwrap_or(None),
        has_shell: spec.watcher,
        dir,
        _busy: busy,
        _in_use: in_use,
    }))
}

/// Whether the container runs (with a connection to its agent, if it has
/// one), or in what state it is.
fn probe(
    engine: &dyn Engine,
    spec: &Spec,
    dir: &WarmDir,
) -> Result<Result<Option<UnixStream>, State>> {
    if spec.agent.is_some() {
        return Ok(match agent_connection(dir) {
            Ok(conn) => Ok(Some(conn)),
            Err(Some(why)) => {
                verbose!("{}: {why}; making a new container", dir.name);
                Err(State::Stopped)
            }
            Err(None) => Err(State::Stopped),
        });
    }
    if spec.watcher {
        return Ok(if watcher_alive(dir)? {
            Ok(None)
        } else {
            Err(State::Stopped)
        });
    }
    Ok(match engine.state(&dir.name)? {
        State::Running => Ok(None),
        s => Err(s),
    })
}

/// A connection to the container's own agent, ready for a call. Err(None)
/// when no agent listens; Err(Some(why)) when something else answers on
/// its socket (a command may put its own listener there) or it does not
/// say ready in time.
fn agent_connection(dir: &WarmDir) -> std::result::Result<UnixStream, Option<String>> {
    let (conn, pid) = agent::client::connect(&dir.socket()).map_err(|_| None)?;
    let recorded = dir.main().and_then(|m| m.agent);
    if recorded.is_none() || recorded != sys::identity(pid as u32) {
        return Err(Some(format!(
            "its agent's socket is served by another process (pid {pid})"
        )));
    }
    agent::client::await_ready(&conn)
        .map_err(|e| Some(format!("its agent did not say ready ({e})")))?;
    Ok(conn)
}

/// One `podman run -d` (a `create` and a `start` cost a second Podman
/// process, about 60 ms): a call killed while it runs leaves a created or
/// running container without a stamp, which the next call removes and
/// makes again. Before
/// the container serves a call, its mounts are checked to be what was
/// checked on the host (see `verify_mounts`). Returns a connection to the
/// new container's agent, if it has one.
fn create(engine: &dyn Engine, spec: &Spec, dir: &WarmDir) -> Result<Option<UnixStream>> {
    spec.prepare_host(&dir.root())?;
    let name = &dir.name;
    verbose!("creating warm container {name}");
    note_limits(&spec.hardening);
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--rm".into(),
        "--name".into(),
        name.clone(),
    ];
    args.extend(spec.run_args());
    let (guards, guarded) = spec.workdir_guards()?;
    args.extend(guards);
    args.extend([
        "--volume".into(),
        format!("{}:{}:ro", dir.inside().display(), watcher::MOUNT),
    ]);
    if let Some(exe) = spec.agent.as_ref().or(spec.forwarder.as_ref()) {
        // The same binary either way.
        args.extend([
            "--volume".into(),
            format!("{}:{}/{AGENT_FILE}:ro", exe.display(), watcher::MOUNT),
        ]);
    }
    if spec.agent.is_some() {
        args.extend([
            "--volume".into(),
            format!(
                "{}:{}/{SOCKET_DIR}",
                dir.socket_dir().display(),
                watcher::MOUNT
            ),
        ]);
        args.extend(spec.image_args(&dir.root()));
        args.extend(agent::command(!spec.allow_hosts.is_empty()));
    } else if spec.watcher {
        args.extend(spec.image_args(&dir.root()));
        args.extend(spec.forward_prefix(true));
        args.extend(watcher::command());
    } else if spec.forwarder.is_some() {
        // Forwards until calls prune it.
        args.extend(spec.image_args(&dir.root()));
        args.extend(spec.forward_prefix(false));
    } else {
        // Without the watcher's tools it only sleeps; calls prune it.
        args.extend(spec.image_args(&dir.root()));
        args.extend(["sleep".into(), "infinity".into()]);
    }
    let what = "starting the warm container";
    match engine.run_detached(what, &args) {
        // We hold the create lock, so a container of our name is what a
        // killed call's podman made (it went on after the call died).
        Err(Error::Podman { log, .. }) if log.contains("is already in use") => {
            verbose!("a killed call left {name}; making it again");
            engine.remove(name)?;
            engine.run_detached(what, &args)?;
        }
        r => {
            r?;
        }
    }
    let (main, conn) = match started(engine, spec, dir) {
        Ok(found) => found,
        Err(e) => {
            let _ = engine.remove(name);
            return Err(e);
        }
    };
    let verified = match sys::live_pid(&main.init) {
        Some(pid) => verify_mounts(spec.checked.iter().chain(&guarded), pid),
        None => Err(Error::failed(format!(
            "warm container {name} ended at once; run with --verbose"
        ))),
    };
    if let Err(e) = verified {
        let _ = engine.remove(name);
        return Err(e);
    }
    dir.set_main(&main)?;
    if conn.is_none() && spec.agent.is_none() && spec.watcher {
        // Calls waiting on the create lock will ask whether it is alive.
        let start = std::time::Instant::now();
        while !watcher_alive(dir)? {
            if start.elapsed() > START_LIMIT {
                verbose!("the watcher of {name} did not start; later calls will replace it");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(conn)
}

/// Who the new container's init and agent are, and a connection to the
/// agent. The first process to answer on the fresh socket directory of a
/// container that runs nothing else is its agent.
fn started(engine: &dyn Engine, spec: &Spec, dir: &WarmDir) -> Result<(Main, Option<UnixStream>)> {
    let name = &dir.name;
    if spec.agent.is_none() {
        let pid = engine.init_pid(name)?;
        let init = sys::identity(pid).ok_or_else(|| {
            Error::failed(format!(
                "warm container {name} ended at once; run with --verbose"
            ))
        })?;
        return Ok((Main { init, agent: None }, None));
    }
    let start = std::time::Instant::now();
    loop {
        if let Ok((conn, pid)) = agent::client::connect(&dir.socket())
            && agent::client::await_ready(&conn).is_ok()
        {
            let pid = pid as u32;
            let init = sys::parent_pid(pid).and_then(sys::identity);
            if let (Some(init), Some(agent)) = (init, sys::identity(pid)) {
                return Ok((
                    Main {
                        init,
                        agent: Some(agent),
                    },
                    Some(conn),
                ));
            }
        }
        if start.elapsed() > START_LIMIT {
            return Err(Error::Podman {
                message: format!(
                    "the agent of warm container {name} did not answer within {START_LIMIT:?}; `--exec-via podman` does without it"
                ),
                log: engine.logs(name),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checks, through the new container's root as its process `pid` sees it,
/// that every mount source is the inode that was checked on the host: a
/// command of another container that swapped a directory for a symlink
/// between the check and Podman's mount is caught here, before this
/// container runs anything.
pub(crate) fn verify_mounts<'a>(
    checked: impl Iterator<Item = &'a Checked>,
    pid: u32,
) -> Result<()> {
    for c in checked {
        let inside = PathBuf::from(format!("/proc/{pid}/root"))
            .join(c.target.strip_prefix("/").unwrap_or(&c.target));
        let seen = std::fs::metadata(&inside).map(|m| fsutil::file_id(&m));
        if seen.ok() != Some(c.id) {
            return Err(Error::failed(format!(
                "{} {}: it changed while the container was made (something swapped it, e.g. for a symlink); nothing ran, call again",
                c.option,
                c.path.display()
            )));
        }
    }
    Ok(())
}

/// Ends a container whose store was replaced under it (it runs on layers
/// that are gone, and Podman no longer lists it, so neither `podman rm`
/// nor its TTL would end it in time): its init is killed, which ends every
/// process in it, and its stamp cleared, so it is made again.
pub(crate) fn end_orphan(dir: &WarmDir) {
    verbose!(
        "the Podman store was replaced under {}; making it again",
        dir.name
    );
    if let Some(init) = dir.live_init() {
        sys::send_signal(init as i32, sys::SIGKILL);
    }
    dir.clear();
    dir.remove_root();
}

/// Says (with --verbose) how the limits hold where cgroups cannot hold
/// them: rootless on cgroup v1.
pub fn note_limits(h: &crate::config::Hardening) {
    if !h.pids_via_ulimit {
        return;
    }
    if h.pids_limit.is_some() {
        verbose!("rootless on cgroup v1: the pids limit holds through ulimit nproc");
    }
    if h.memory.is_some() || h.cpus.is_some() {
        verbose!("rootless on cgroup v1: --memory and --cpus cannot be applied (see --doctor)");
    }
}

/// Kills what call `call_id`, made through `podman exec`, left in the
/// container (the agent does this itself for its calls): every process of
/// the container but init, its main process and what that started, unless
/// it carries the mark of a call that may keep its processes or of a call
/// still running. Orphans of an exec session hang under its conmon (a
/// subreaper outside the container) or init, so a call still running is
/// known by its exec session's root: the process whose parent is outside.
/// A session still starting (runc's init, parent runc) is left alone.
pub fn reap_leftovers(warm: &Warm, call_id: &str) {
    let Some(main) = warm.dir.main() else { return };
    let Some(init) = sys::live_pid(&main.init) else {
        return;
    };
    let init = init as i32;
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(container_ns) = ns(init) else { return };
    let kept: HashSet<String> = warm.dir.kept_calls().into_iter().collect();
    stop::kill_until_none(REAP_LIMIT, || {
        let inside =
            stop::process_table_where(|pid| pid != init && ns(pid).as_ref() == Some(&container_ns));
        // The main process: the agent, or else init's oldest child.
        let main_pid = main
            .agent
            .as_deref()
            .and_then(sys::live_pid)
            .map(|p| p as i32)
            .or_else(|| {
                inside
                    .iter()
                    .filter(|&(_, &pp)| pp == init)
                    .min_by_key(|&(&pid, _)| sys::process_start(pid as u32))
                    .map(|(&pid, _)| pid)
            });
        let under_main = |pid: i32| {
            let mut p = pid;
            for _ in 0..=inside.len() {
                if Some(p) == main_pid {
                    return true;
                }
                match inside.get(&p) {
                    Some(&pp) if inside.contains_key(&pp) => p = pp,
                    _ => return false,
                }
            }
            false
        };
        let mut spared = kept.clone();
        spared.extend(
            inside
                .iter()
                .filter(|&(_, pp)| !inside.contains_key(pp) && *pp != init)
                .filter_map(|(&pid, _)| stop::mark_of(pid))
                .filter(|id| id != call_id),
        );
        // An exec session being set up: its process is still runc's init,
        // child of the runtime outside (not yet of the session's conmon)
        // and without the call's mark until it execs the command. A
        // command cannot fake that parent, which is outside the container.
        let starting = |pid: i32| {
            inside.get(&pid).is_some_and(|&pp| {
                !inside.contains_key(&pp)
                    && pp != init
                    && std::fs::read(format!("/proc/{pp}/comm")).is_ok_and(|c| c != b"conmon\n")
            })
        };
        inside
            .keys()
            .copied()
            .filter(|&pid| !under_main(pid))
            .filter(|&pid| !starting(pid))
            .filter(|&pid| !stop::marked_with_any(pid, &spared))
            .collect()
    });
}

/// Whether the container's watcher runs: it holds `alive.lock` for as long
/// as it lives (see watcher.rs).
fn watcher_alive(dir: &WarmDir) -> Result<bool> {
    Ok(lock::try_acquire(&dir.alive_lock(), Mode::Shared)?.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::Recording;
    use crate::image::listing::StoredImage;
    use crate::testutil::{TempDir, config};

    /// A spec with neither agent nor watcher: only the engine says whether
    /// its container runs.
    fn plain(cfg: &Config) -> Spec {
        let mut s = super::super::spec::tests::spec();
        s.agent = None;
        s.watcher = false;
        s.workdir = cfg.workdir.clone();
        s
    }

    fn with_image(engine: Recording, spec: &Spec) -> Recording {
        engine.images.borrow_mut().push(StoredImage {
            id: spec.image_id.clone(),
            tags: vec![spec.image.clone()],
            size: 1,
            created: 0,
        });
        engine
    }

    fn ensure(cfg: &Config, engine: &Recording, spec: &Spec) -> Result<Warmed> {
        ensure_warm(cfg, engine, spec)
    }

    #[test]
    fn a_running_container_is_used_without_asking_more() {
        let t = TempDir::new("warm-running");
        let cfg = config(&t, &[]);
        let spec = plain(&cfg);
        let name = spec.name();
        let engine = Recording::with(&[(&name, "running")]);
        let Warmed::Ready(warm) = ensure(&cfg, &engine, &spec).unwrap() else {
            panic!("not ready");
        };
        assert_eq!(warm.name, name);
        assert_eq!(engine.calls(), [format!("state {name}")]);
        assert!(
            WarmDir::new(&cfg, &name).stamped(),
            "a missing stamp is repaired"
        );
    }

    #[test]
    fn a_stopped_container_is_removed_and_made_again_under_the_create_lock() {
        let t = TempDir::new("warm-stopped");
        let cfg = config(&t, &[]);
        let spec = plain(&cfg);
        let name = spec.name();
        let mut engine = with_image(Recording::with(&[(&name, "exited")]), &spec);
        engine.init = Some(std::process::id());
        let Warmed::Ready(_) = ensure(&cfg, &engine, &spec).unwrap() else {
            panic!("not ready");
        };
        let image = &spec.image;
        assert_eq!(
            engine.calls(),
            [
                format!("state {name}"),
                // asked again once the create lock is held
                format!("state {name}"),
                format!("image_id {image}"),
                format!("remove {name}"),
                format!("run {name}"),
                format!("init_pid {name}"),
            ]
        );
        let dir = WarmDir::new(&cfg, &name);
        assert_eq!(dir.live_init(), Some(std::process::id()));
        assert!(dir.stamped());
    }

    #[test]
    fn without_its_image_nothing_is_removed_or_made() {
        let t = TempDir::new("warm-no-image");
        let cfg = config(&t, &[]);
        let spec = plain(&cfg);
        let name = spec.name();
        // A tag that names another image counts as gone too.
        let mut other = plain(&cfg);
        other.image_id = "sha256:ff".into();
        let engine = with_image(Recording::with(&[(&name, "exited")]), &other);
        assert!(matches!(
            ensure(&cfg, &engine, &spec),
            Ok(Warmed::ImageGone)
        ));
        assert!(engine.called("remove").is_empty() && engine.called("run").is_empty());
    }

    #[test]
    fn a_container_a_killed_call_left_under_the_name_is_replaced() {
        let t = TempDir::new("warm-left");
        let cfg = config(&t, &[]);
        let spec = plain(&cfg);
        let name = spec.name();
        let mut engine = with_image(Recording::default(), &spec);
        engine.init = Some(std::process::id());
        engine
            .run_fails
            .borrow_mut()
            .push(format!("the container name \"{name}\" is already in use"));
        assert!(matches!(ensure(&cfg, &engine, &spec), Ok(Warmed::Ready(_))));
        let tail: Vec<String> = engine.calls().split_off(3);
        assert_eq!(
            tail,
            [
                format!("run {name}"),
                format!("remove {name}"),
                format!("run {name}"),
                format!("init_pid {name}"),
            ]
        );
    }

    #[test]
    fn a_container_that_does_not_start_is_removed_and_its_error_returned() {
        let t = TempDir::new("warm-no-start");
        let cfg = config(&t, &[]);
        let spec = plain(&cfg);
        let name = spec.name();
        let engine = with_image(Recording::default(), &spec);
        assert!(ensure(&cfg, &engine, &spec).is_err());
        assert_eq!(engine.called("remove"), [name.as_str()]);
        assert!(engine.containers.borrow().is_empty());
        assert!(WarmDir::new(&cfg, &name).main().is_none());
    }
}
