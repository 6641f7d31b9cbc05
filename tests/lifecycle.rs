//! Shared state under many calls, idle TTLs, kills at every step, and the
//! management flags; each test rootful and rootless.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    let mut cmd = sb.command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A nix wrapper that, once it starts, writes `started` and waits (at most
/// 2 minutes) for `release` to exist before building: a slow cold build
/// that holds the image lock as long as the test likes.
struct Gate {
    nix: PathBuf,
    started: PathBuf,
    release: PathBuf,
}

impl Gate {
    fn new(sb: &Sandbox, name: &str) -> Gate {
        let started = sb.dir.join(format!("{name}.started"));
        let release = sb.dir.join(format!("{name}.release"));
        let nix = sb.script(
            &format!("{name}-nix"),
            &format!(
                "#!/bin/sh\ntouch '{}'\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\nexec nix \"$@\"\n",
                started.display(),
                release.display()
            ),
        );
        Gate {
            nix,
            started,
            release,
        }
    }

    fn wait_started(&self) {
        assert!(
            eventually(Duration::from_secs(120), || self.started.exists()),
            "the build never started"
        );
    }

    fn open(&self) {
        std::fs::write(&self.release, "").unwrap();
    }
}

fn still_running(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

both_modes!(
    a_call_waits_for_a_slow_build_without_building_and_gives_up_clearly_at_its_limit,
    |mode| {
        let sb = Sandbox::private(mode, "lockwait");
        let c = sb.counting();
        let gate = Gate::new(&sb, "slow");
        let slow = spawn(
            &sb,
            &["--nix-exe", gate.nix.to_str().unwrap(), "echo", "slow"],
        );
        gate.wait_started();
        // Holds the image lock now. A call with a short limit gives up...
        let o = sb.run(&c.with(&["--lock-timeout", "1s", "echo", "impatient"]));
        assert_eq!(o.status.code(), Some(125));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("the image build") && err.contains("--lock-timeout"),
            "{err}"
        );
        // ...and one with the default limit waits.
        let mut patient = spawn(&sb, &c.with(&["echo", "patient"]));
        std::thread::sleep(Duration::from_secs(2));
        assert!(still_running(&mut patient), "it waits for the lock");
        gate.open();
        assert_eq!(ok(&wait_bounded(slow, Duration::from_secs(300))), "slow\n");
        assert_eq!(
            ok(&wait_bounded(patient, Duration::from_secs(300))),
            "patient\n"
        );
        assert_eq!(
            count_lines(&c.nix_log, " build "),
            0,
            "the waiting calls used the slow call's build"
        );
        assert_eq!(ps_names(&sb).len(), 1);
    }
);

both_modes!(
    different_configurations_do_not_wait_for_each_other,
    |mode| {
        let sb = Sandbox::private(mode, "lockpar");
        let gate = Gate::new(&sb, "held");
        let mut held = spawn(
            &sb,
            &["--nix-exe", gate.nix.to_str().unwrap(), "echo", "first"],
        );
        gate.wait_started();
        // Another image, while the first build still holds its lock.
        let pkgs = sb.write("other.nix", "{ pkgs, ... }: [ pkgs.hello ]");
        let other = sb.run(&[
            "--nix-packages-file",
            pkgs.to_str().unwrap(),
            "echo",
            "second",
        ]);
        assert_eq!(ok(&other), "second\n");
        assert!(still_running(&mut held), "the first is still building");
        gate.open();
        assert_eq!(ok(&wait_bounded(held, Duration::from_secs(300))), "first\n");
    }
);

/// Four configurations, each with its own image: `tool<i>` on PATH.
fn stress_configs(sb: &Sandbox) -> Vec<String> {
    (0..4)
        .map(|i| {
            let p = sb.write(
                &format!("pkgs{i}.nix"),
                &format!(
                    "{{ pkgs, ... }}: [ (pkgs.writeShellScriptBin \"tool{i}\" \"echo tool{i}\") ]"
                ),
            );
            p.display().to_string()
        })
        .collect()
}

fn run_parallel(sb: &Sandbox, c: &Counting, configs: &[String], n: usize) -> Duration {
    let start = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|i| {
            let k = i % configs.len();
            let script = format!("tool{k}; echo call{i}");
            let args = c.with(&["--nix-packages-file", &configs[k], "sh", "-c", &script]);
            (format!("tool{k}\ncall{i}\n"), spawn(sb, &args))
        })
        .collect();
    let mut failures = vec![];
    for (expect, child) in children {
        let o = wait_bounded(child, Duration::from_secs(600));
        if o.status.code() != Some(0) || stdout(&o) != expect {
            failures.push(format!("{:?} {} {}", o.status, stdout(&o), stderr(&o)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    start.elapsed()
}

/// The argument after `flag` on each logged line that has `word`.
fn logged_values(log: &Path, word: &str, flag: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(word))
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip_while(|w| *w != flag);
            w.next();
            w.next().map(str::to_owned)
        })
        .collect()
}

both_modes!(
    sixteen_cold_then_sixty_four_warm_calls_build_and_create_once_per_configuration,
    |mode| {
        let sb = Sandbox::private(mode, "stress");
        let c = sb.counting();
        let configs = stress_configs(&sb);
        let cold = run_parallel(&sb, &c, &configs, 16);
        let builds = count_lines(&c.nix_log, " build ");
        assert_eq!(builds, 4, "one build per configuration");
        assert_eq!(
            count_lines(&c.podman_log, " load "),
            0,
            "run from the Nix store"
        );
        let names = logged_values(&c.podman_log, " run -d --rm ", "--name");
        assert_eq!(names.len(), 4, "{names:?}");
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), 4);
        let warm = run_parallel(&sb, &c, &configs, 64);
        assert_eq!(count_lines(&c.nix_log, " build "), 4);
        assert_eq!(count_lines(&c.podman_log, " run -d --rm "), 4);
        assert_eq!(ps_names(&sb).len(), 4);
        eprintln!("stress {mode:?}: 16 cold calls {cold:?}, 64 warm calls {warm:?}");
    }
);

/// Waits for every container of the test's store to go (by its TTL) and
/// then checks nothing else is left: no image without a record, no temp
/// file of an atomic write or a load, no process working on the store.
fn assert_nothing_leaked(sb: &Sandbox) {
    assert!(
        eventually(Duration::from_secs(90), || ps_names(sb).is_empty()),
        "containers left: {:?}",
        ps_names(sb)
    );
    let o = store_podman(sb)
        .args(["images", "--all", "--quiet"])
        .output()
        .unwrap();
    let images: HashSet<String> = stdout(&o).lines().map(str::to_owned).collect();
    // Records of loaded images, and of root filesystems (each with its GC root).
    let (mut image_records, mut roots) = (0, 0);
    for e in std::fs::read_dir(sb.cache.join("nix-sandbox/images"))
        .unwrap()
        .flatten()
    {
        let v: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        if v["rootfs"].is_null() {
            image_records += 1;
        } else {
            roots += 1;
        }
    }
    assert_eq!(images.len(), image_records, "images: {images:?}");
    let gc_roots = std::fs::read_dir(sb.cache.join("nix-sandbox/gcroots"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(gc_roots, roots, "one GC root per root filesystem");
    let skeletons: Vec<_> = std::fs::read_dir(sb.cache.join("nix-sandbox/tmp"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("root-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    // A killed one-shot call's skeleton stays until --gc.
    if !skeletons.is_empty() {
        ok(&sb.run(&["--gc"]));
        assert!(skeletons.iter().all(|s| !s.exists()), "{skeletons:?}");
    }
    let mut temp = vec![];
    walk(&sb.cache.join("nix-sandbox"), &mut |p| {
        let name = p.file_name().unwrap().to_string_lossy();
        if name.contains(".tmp-") {
            temp.push(p.to_owned());
        }
    });
    assert!(temp.is_empty(), "{temp:?}");
    let cache = sb.cache.display().to_string();
    assert!(
        eventually(Duration::from_secs(90), || command_lines_with(&cache)
            .is_empty()),
        "processes left: {:?}",
        command_lines_with(&cache)
    );
    // A killed load's scratch dir goes with the next load, or --gc.
    let loads = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(sb.cache.join("nix-sandbox/tmp"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("load"))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    if !loads().is_empty() {
        ok(&sb.run(&["--gc"]));
    }
    assert!(loads().is_empty(), "load scratch left: {:?}", loads());
}

/// Every path under `dir` but Podman's own storage.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        f(&p);
        if e.file_type().unwrap().is_dir() && !p.ends_with("podman-root") {
            walk(&p, f);
        }
    }
}

/// The call after a kill succeeds, with a short TTL so its container goes.
fn next_call_works_and_nothing_leaks(sb: &Sandbox, options: &[&str]) {
    let mut args = vec!["--warm-ttl-seconds", "2"];
    args.extend(options);
    args.extend(["echo", "next"]);
    let o = sb.run(&args);
    assert_eq!(ok(&o), "next\n");
    assert_nothing_leaked(sb);
}

/// Kills the sandbox (`kill -9 $PPID`) from a wrapper of `real` when its
/// arguments contain `trigger`, running `then` after the kill.
fn killed_at(mode: Mode, test: &str, real: &str, trigger: &str, then: &str) {
    killed_with(mode, test, real, trigger, then, &[]);
}

/// `killed_at`, with `options` on the killed call and the next.
fn killed_with(mode: Mode, test: &str, real: &str, trigger: &str, then: &str, options: &[&str]) {
    let sb = Sandbox::private(mode, test);
    let wrapper = sb.script(
        &format!("{real}-killer"),
        &format!(
            "#!/bin/sh\ncase \" $* \" in *'{trigger}'*) kill -9 $PPID; {then} ;; esac\nexec {real} \"$@\"\n"
        ),
    );
    let exe = format!("--{real}-exe");
    let mut args = vec![exe.as_str(), wrapper.to_str().unwrap()];
    args.extend(options);
    args.extend(["echo", "never"]);
    let o = sb.run(&args);
    assert_ne!(o.status.code(), Some(0), "the kill came: {}", stderr(&o));
    assert_eq!(stdout(&o), "");
    next_call_works_and_nothing_leaks(&sb, options);
}

both_modes!(killed_during_nix_build_the_next_call_works, |mode| {
    // The orphaned build finishes on its own; nothing records it.
    killed_at(mode, "kill-build", "nix", " build ", ":");
});

both_modes!(killed_during_podman_load_the_next_call_works, |mode| {
    // Podman gets part of the stream, then it and the sandbox die mid-load
    // (of an image: another flake's, since ours is not loaded).
    let flake = format!("path:{}", fixture("other-image").display());
    killed_with(
        mode,
        "kill-load",
        "podman",
        " load ",
        "setsid sh -c '(head -c 65536; sleep 20) | podman \"$@\"' sh \"$@\" & \
         sleep 1; kill -9 -- -$!; exit 1",
        &["--flake", &flake],
    );
});

both_modes!(
    killed_while_reading_the_closure_the_next_call_works,
    |mode| {
        // The root filesystem is built and has its GC root, but no record yet.
        killed_at(mode, "kill-closure", "nix", " path-info ", "exit 1");
    }
);

both_modes!(
    killed_while_the_container_starts_the_next_call_works,
    |mode| {
        // Twice: before the container exists, and with it made and running
        // (podman goes on) but no stamp.
        killed_at(mode, "kill-start", "podman", " run -d ", "exit 1");
        killed_at(mode, "kill-started", "podman", " run -d ", ":");
    }
);

/// Starts `args` (whose command prints `started` first) and kills the
/// sandbox with SIGKILL once the command runs.
fn kill_during_command(sb: &Sandbox, args: &[&str]) {
    let mode = sb.mode;
    let mut child = spawn(sb, args);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    signal(sandbox_pid(mode, &child), "KILL");
    // Its stdout closes with it: the podman client goes too.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "stdout still open after the sandbox was killed"
    );
    let _ = wait_bounded(child, Duration::from_secs(60));
}

each_path!(killed_during_a_warm_command_the_ttl_ends_it, |mode| {
    let sb = Sandbox::private(mode, "kill-warm");
    let token = format!("kill-warm-token-{mode:?}-{}", sb.variant());
    let script = format!("echo started; sleep 600; echo {token}");
    kill_during_command(&sb, &["sh", "-c", &script]);
    if sb.via.is_none() {
        // The agent sees the socket close and ends the call's processes.
        assert!(eventually(Duration::from_secs(2), || processes_with(
            &token
        )
        .is_empty()));
    } else {
        assert!(
            !processes_with(&token).is_empty(),
            "podman does not end an exec session whose client died"
        );
    }
    // The next call shares the container with the orphan, then its short
    // TTL ends both: the dead call holds no lock.
    next_call_works_and_nothing_leaks(&sb, &[]);
    assert!(processes_with(&token).is_empty());
});

both_modes!(killed_during_a_one_shot_command_prune_ends_it, |mode| {
    let sb = Sandbox::private(mode, "kill-once");
    let token = format!("kill-once-token-{mode:?}-{}", std::process::id());
    let script = format!("echo started; sleep 600; echo {token}");
    kill_during_command(&sb, &["--no-keep-warm", "sh", "-c", &script]);
    // Rootful, the container outlives the killed podman client; rootless
    // (Podman 4.3) it may go with it. What is left, --prune removes.
    let left = ps_names(&sb);
    let o = sb.run(&["--prune"]);
    let text = ok(&o);
    for name in &left {
        assert!(
            text.contains(&format!("removed {name} (one-shot call no longer running)")),
            "{text}"
        );
    }
    assert!(ps_names(&sb).is_empty());
    assert!(eventually(Duration::from_secs(30), || processes_with(
        &token
    )
    .is_empty()));
    next_call_works_and_nothing_leaks(&sb, &[]);
});

both_modes!(
    an_idle_container_removes_itself_after_the_last_calls_ttl,
    |mode| {
        let sb = Sandbox::private(mode, "ttl");
        // Made with the default TTL; the last call's TTL is what counts.
        ok(&sb.run(&["true"]));
        // Before the call: its stamp is later, so this bounds from below.
        let called = Instant::now();
        ok(&sb.run(&["--warm-ttl-seconds", "3", "true"]));
        let names = ps_names(&sb);
        assert_eq!(names.len(), 1);
        // No further call: the container's watcher ends it.
        assert!(
            eventually(Duration::from_secs(60), || ps_names(&sb).is_empty()),
            "still there: {:?}",
            ps_names(&sb)
        );
        // Not before its time (the watcher counts whole seconds).
        assert!(
            called.elapsed() >= Duration::from_secs(2),
            "{:?}",
            called.elapsed()
        );
        // Its stamp is cleared by the next call, of another configuration.
        let other = sb.mkdir("other");
        ok(&sb.run(&["-d", other.to_str().unwrap(), "true"]));
        let stamp = sb
            .cache
            .join("nix-sandbox/warm")
            .join(&names[0])
            .join("inside/last-use");
        assert!(!stamp.exists(), "stale stamp {stamp:?} left");
    }
);

fn warm_dir(sb: &Sandbox) -> PathBuf {
    let name = ps_names(sb).pop().expect("a container");
    sb.cache.join("nix-sandbox/warm").join(name)
}

both_modes!(
    stamps_and_containers_that_drifted_apart_are_repaired,
    |mode| {
        let sb = Sandbox::private(mode, "drift");
        ok(&sb.run(&["true"]));
        // A stamp with no container: someone removed it.
        let o = store_podman(&sb)
            .args(["rm", "--all", "--force", "--time", "0"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(ok(&sb.run(&["echo", "again"])), "again\n");
        // A container with no stamp: the next call replaces it.
        let dir = warm_dir(&sb);
        std::fs::remove_file(dir.join("inside/last-use")).unwrap();
        assert_eq!(ok(&sb.run(&["echo", "replaced"])), "replaced\n");
        assert_eq!(ps_names(&sb).len(), 1);
        // And --prune removes one that no call comes back to.
        std::fs::remove_file(dir.join("inside/last-use")).unwrap();
        ok(&sb.run(&["--prune"]));
        assert!(eventually(Duration::from_secs(30), || ps_names(&sb).is_empty()));
        // A record whose image is gone (covered in sandbox.rs) and the rest
        // leave the next call working.
        assert_eq!(ok(&sb.run(&["echo", "fine"])), "fine\n");
    }
);

both_modes!(a_tool_named_like_a_management_flag_still_runs, |mode| {
    let sb = Sandbox::new(mode, "toolnames");
    for name in ["status", "prune"] {
        sb.script(
            &format!("work/{name}"),
            &format!("#!/bin/sh\necho \"tool {name} $*\"\n"),
        );
    }
    let path = format!("PATH={}:/bin:/usr/bin", sb.work.display());
    for (args, expect) in [
        (vec!["--env", &path, "status"], "tool status \n"),
        (vec!["--env", &path, "prune", "--all"], "tool prune --all\n"),
        (
            vec!["--env", &path, "status", "--json"],
            "tool status --json\n",
        ),
    ] {
        assert_eq!(ok(&sb.run(&args)), expect, "{args:?}");
    }
});

both_modes!(
    status_shows_containers_images_and_disk_for_people_and_machines,
    |mode| {
        let sb = Sandbox::private(mode, "status");
        ok(&sb.run(&["true"]));
        let text = ok(&sb.run(&["--status"]));
        assert!(text.contains("Warm containers: 1"), "{text}");
        assert!(
            text.contains(&format!("workdir {}", sb.work.display())),
            "{text}"
        );
        assert!(
            text.contains("Root filesystems: 1 (run from the Nix store"),
            "{text}"
        );
        assert!(
            text.contains("Images loaded into Podman: 0 (1 records in all)"),
            "{text}"
        );
        assert!(text.contains("Disk: loaded images "), "{text}");
        let v = json(&sb.run(&["--list", "--json"]));
        let warm = v["warm"].as_array().unwrap();
        assert_eq!(warm.len(), 1, "{v}");
        assert_eq!(warm[0]["workdir"], sb.work.display().to_string());
        assert_eq!(warm[0]["state"], "running");
        assert_eq!(warm[0]["in_use"], false);
        assert_eq!(warm[0]["ttl_seconds"], 900);
        assert!(warm[0]["ttl_left_seconds"].as_u64().unwrap() <= 900);
        assert!(v["images"].as_array().unwrap().is_empty(), "{v}");
        let roots = v["roots"].as_array().unwrap();
        assert_eq!(roots.len(), 1, "{v}");
        assert_eq!(roots[0]["containers"], 1);
        assert_eq!(roots[0]["in_store"], true);
        assert!(roots[0]["closure_bytes"].as_u64().unwrap() > 0);
        assert!(roots[0]["closure_paths"].as_u64().unwrap() > 1);
    }
);

both_modes!(
    prune_removes_idle_containers_and_all_spares_only_those_in_use,
    |mode| {
        let sb = Sandbox::private(mode, "prune");
        let busy_dir = sb.mkdir("busy");
        let shared = sb.mkdir("shared");
        let release = shared.join("release");
        ok(&sb.run(&["true"]));
        let wait = format!(
            "echo started; i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done",
            release.display()
        );
        let mut busy = spawn(
            &sb,
            &[
                "-d",
                busy_dir.to_str().unwrap(),
                "-v",
                shared.to_str().unwrap(),
                "sh",
                "-c",
                &wait,
            ],
        );
        let mut line = String::new();
        BufReader::new(busy.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "started\n");
        assert_eq!(ps_names(&sb).len(), 2);
        assert_eq!(ok(&sb.run(&["--prune"])), "nothing to prune\n");
        let v = json(&sb.run(&["--prune", "--all", "--json"]));
        assert_eq!(v["removed"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["in_use"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(ps_names(&sb).len(), 1);
        std::fs::write(&release, "").unwrap();
        let o = wait_bounded(busy, Duration::from_secs(60));
        assert_eq!(
            o.status.code(),
            Some(0),
            "the call in use was not disturbed"
        );
        let v = json(&sb.run(&["--prune", "--all", "--json"]));
        assert_eq!(v["removed"].as_array().unwrap().len(), 1, "{v}");
        assert!(ps_names(&sb).is_empty());
    }
);

both_modes!(
    gc_removes_stale_records_and_the_images_nothing_uses_and_says_why_it_keeps_the_rest,
    |mode| {
        let sb = Sandbox::private(mode, "gc");
        let c = sb.counting();
        let pkgs = sb.write("old.nix", "{ pkgs, ... }: [ pkgs.hello ]");
        let pkgs = pkgs.to_str().unwrap();
        ok(&sb.run(&c.with(&["true"])));
        ok(&sb.run(&c.with(&["--nix-packages-file", pkgs, "true"])));
        let text = ok(&sb.run(&["--gc"]));
        assert!(text.starts_with("nothing to collect\n"), "{text}");
        assert_eq!(
            text.matches(": warm container lectic-nix-sandbox-").count(),
            2,
            "each kept image names what keeps it: {text}"
        );
        // The packages file's record goes unused for 40 days, and its container.
        let records = sb.cache.join("nix-sandbox/images");
        let mut newest = None;
        for e in std::fs::read_dir(&records).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            if text.contains("old.nix") {
                let ok = std::process::Command::new("touch")
                    .args(["-d", "40 days ago"])
                    .arg(e.path())
                    .status()
                    .unwrap();
                assert!(ok.success());
            } else {
                newest = Some(text);
            }
        }
        ok(&sb.run(&["--prune", "--all"]));
        let gc_roots = || {
            std::fs::read_dir(sb.cache.join("nix-sandbox/gcroots"))
                .unwrap()
                .count()
        };
        assert_eq!(gc_roots(), 2);
        let v = json(&sb.run(&["--gc", "--json"]));
        assert_eq!(v["records"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(gc_roots(), 1, "its GC root went with it");
        let status = json(&sb.run(&["--status", "--json"]));
        let roots = status["roots"].as_array().unwrap();
        assert_eq!(roots.len(), 1, "the default root filesystem stays");
        let newest: Value = serde_json::from_str(&newest.unwrap()).unwrap();
        assert_eq!(roots[0]["rootfs"], newest["image"]);
        // Both configurations still work; only the collected one builds again.
        ok(&sb.run(&c.with(&["true"])));
        ok(&sb.run(&c.with(&["--nix-packages-file", pkgs, "true"])));
        assert_eq!(count_lines(&c.nix_log, " build "), 3);
        // Without containers, --gc keeps the recent records' images and
        // says how to reclaim them; --gc --all does.
        ok(&sb.run(&["--prune", "--all"]));
        let text = ok(&sb.run(&["--gc"]));
        assert_eq!(text.matches("last used today; ").count(), 2, "{text}");
        let v = json(&sb.run(&["--gc", "--all", "--json"]));
        assert_eq!(v["records"].as_array().unwrap().len(), 2, "{v}");
        assert!(v["kept_roots"].as_array().unwrap().is_empty(), "{v}");
        assert_eq!(gc_roots(), 0);
        let status = json(&sb.run(&["--status", "--json"]));
        assert!(status["roots"].as_array().unwrap().is_empty(), "{status}");
    }
);

both_modes!(prepare_makes_the_first_call_warm, |mode| {
    let sb = Sandbox::private(mode, "prepare");
    let c = sb.counting();
    let text = ok(&sb.run(&c.with(&["--prepare"])));
    assert!(
        text.starts_with("root filesystem /nix/store/")
            && text.contains("-lectic-nix-sandbox-rootfs ready"),
        "{text}"
    );
    assert!(ps_names(&sb).is_empty(), "no container without --start");
    let v = json(&sb.run(&c.with(&["--prepare", "--start", "--json"])));
    assert_eq!(ps_names(&sb), [v["container"].as_str().unwrap()]);
    let (builds, loads) = (
        count_lines(&c.nix_log, " build "),
        count_lines(&c.podman_log, " load "),
    );
    assert_eq!((builds, loads), (1, 0));
    assert_eq!(ok(&sb.run(&c.with(&["echo", "warm"]))), "warm\n");
    assert_eq!(count_lines(&c.nix_log, " build "), 1);
    assert_eq!(count_lines(&c.podman_log, " run -d --rm "), 1);
});

both_modes!(
    doctor_passes_here_and_names_the_fix_for_what_fails,
    |mode| {
        let sb = Sandbox::private(mode, "doctor");
        let text = ok(&sb.run(&["--doctor"]));
        for check in [
            "podman:",
            "nix:",
            "nix store:",
            "cache dir:",
            "storage driver:",
        ] {
            assert!(text.contains(check), "{check} in {text}");
        }
        assert!(
            text.contains("ok    exec agent:") && text.contains("is static"),
            "{text}"
        );
        let via_podman = stdout(&sb.run(&["--doctor", "--exec-via", "podman"]));
        assert!(via_podman.contains("ok    exec agent: off"), "{via_podman}");
        if mode == Mode::Rootless {
            assert!(text.contains("ok    subuid:"), "{text}");
            assert!(text.contains("ok    newuidmap:"), "{text}");
        }
        assert!(!text.contains("FAIL"), "{text}");
        let o = sb.run(&["--doctor", "--podman-exe", "/no/such/podman"]);
        assert_eq!(o.status.code(), Some(1));
        let text = stdout(&o);
        assert!(
            text.lines().any(
                |l| l.starts_with("FAIL  podman: cannot run `/no/such/podman`")
                    && l.contains("fix: install podman")
            ),
            "{text}"
        );
        let v: Value = serde_json::from_str(&stdout(&sb.run(&["--doctor", "--json"]))).unwrap();
        assert_eq!(v["ok"], true, "{v}");
    }
);

both_modes!(
    a_call_longer_than_the_ttl_keeps_its_container_while_others_come_and_go,
    |mode| {
        let sb = Sandbox::private(mode, "longcall");
        let dir = sb.mkdir("shared");
        let shared = dir.display().to_string();
        let release = dir.join("release");
        let base = ["--warm-ttl-seconds", "1", "-v", &shared];
        ok(&sb.run(&[&base[..], &["true"]].concat()));
        let name = ps_names(&sb);
        let wait = format!(
            "echo started; i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; echo done",
            release.display()
        );
        let mut long = spawn(&sb, &[&base[..], &["sh", "-c", &wait]].concat());
        let mut out = BufReader::new(long.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "started\n");
        // Past the TTL since the long call began: the stamp has expired,
        // yet the container is in use. Other calls must share it.
        std::thread::sleep(Duration::from_millis(2500));
        for _ in 0..2 {
            assert_eq!(
                ok(&sb.run(&[&base[..], &["echo", "short"]].concat())),
                "short\n"
            );
        }
        assert_eq!(ps_names(&sb), name, "the same container throughout");
        std::fs::write(&release, "").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert_eq!(rest, "done\n");
        let o = wait_bounded(long, Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
);
