//! Failure paths: every failure is one `lectic-nix-sandbox:` line naming
//! the cause and the fix (the tool's detail only with --verbose), exit
//! codes are exact on every path, bad input is refused before anything
//! runs, and state that drifted heals on the next call or on --prune.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Asserts a refusal: exit 125 and one line of ours containing `expect`.
#[track_caller]
fn refused(o: &std::process::Output, expect: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(125), "{expect}: {}{err}", stdout(o));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("lectic-nix-sandbox: "), "{err}");
    assert!(err.contains(expect), "{expect:?} in {err}");
}

both_modes!(bad_input_is_refused_up_front_in_one_line, |mode| {
    let sb = Sandbox::new(mode, "fail-input");
    let file = sb.write("work/a-file", "x\n");
    let file = file.to_str().unwrap();
    let other = sb.mkdir("other");
    let work = sb.work.display().to_string();
    let twice = [
        format!("{work}:/data"),
        format!("{}:/data", other.display()),
    ];
    let (root, proc, same) = (
        format!("{work}:/"),
        format!("{work}:/proc/x"),
        format!("{work}:{work}"),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tmp-size", "0"], "must be more than 0"),
        (vec!["--volume", &root], "mount elsewhere"),
        (vec!["--volume", &proc], "mount elsewhere"),
        (vec!["--warm-ttl", "1000000000y"], "at most a year"),
        (vec!["--warm-ttl-seconds", "99999999999"], "at most a year"),
        (vec!["--warm-ttl", "-5m"], "must be positive"),
        (vec!["--cap-add", "NOT_A_CAP"], "not a capability"),
        (vec!["--memory", "1k"], "at least 6m"),
        (vec!["--pids-limit", "99999999999"], "at most 4194304"),
        (vec!["--home", file], "not a directory"),
        (
            vec!["--volume", &twice[0], "--volume", &twice[1]],
            "already mounted there",
        ),
        (vec!["--volume", &same], "(by --workdir)"),
        // The host's system: the Nix store (only the closure is mounted,
        // read-only), the kernel's interfaces, its configuration.
        (vec!["--workdir", "/nix/store"], "the Nix store"),
        (vec!["--workdir", "/nix"], "the Nix store"),
        (vec!["--volume", "/nix/store:/s:ro"], "the Nix store"),
        (vec!["--workdir", "/proc"], "the host's processes"),
        (vec!["--workdir", "/sys"], "never mounts it"),
        (vec!["--workdir", "/etc"], "never mounts it"),
        (vec!["--workdir", "/usr/bin"], "never mounts it"),
        (vec!["--home", "/var"], "never mounts it"),
    ];
    for (args, expect) in cases {
        let mut a = args.clone();
        a.extend(["echo", "ran"]);
        let o = sb.run(&a);
        refused(&o, expect);
        assert!(!stdout(&o).contains("ran"), "{args:?}");
    }
});

/// A script that exists but may not be run.
fn not_executable(sb: &Sandbox) -> String {
    let p = sb.write("work/not-exec.sh", "echo ran\n");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    "./not-exec.sh".into()
}

each_path!(
    a_command_that_cannot_run_exits_127_or_126_in_our_words,
    |mode| {
        let sb = Sandbox::new(mode, "fail-exec");
        let script = not_executable(&sb);
        for once in [false, true] {
            let mut args = if once { vec!["--no-keep-warm"] } else { vec![] };
            args.push("no-such-command");
            let o = sb.run(&args);
            assert_eq!(o.status.code(), Some(127), "{args:?}: {}", stderr(&o));
            assert_eq!(
                stderr(&o),
                "lectic-nix-sandbox: no-such-command: command not found\n"
            );
            args.pop();
            args.push(&script);
            let o = sb.run(&args);
            assert_eq!(o.status.code(), Some(126), "{args:?}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(
                err.starts_with("lectic-nix-sandbox: ./not-exec.sh: Permission denied")
                    && err.lines().count() == 1,
                "{args:?}: {err}"
            );
        }
    }
);

both_modes!(a_packages_file_that_fails_is_one_line_naming_it, |mode| {
    let sb = Sandbox::new(mode, "fail-nix");
    let cases = [
        (
            "syntax.nix",
            "[ pkgs.hello\n",
            "syntax error, unexpected end of file",
            ":1:13)",
        ),
        (
            "undefined.nix",
            "[ nosuch ]\n",
            "undefined variable 'nosuch'",
            ":1:3)",
        ),
        (
            "throws.nix",
            "{ pkgs, ... }: throw \"no such tool\"\n",
            "no such tool",
            "",
        ),
    ];
    for (name, text, cause, place) in cases {
        let file = sb.write(&format!("work/{name}"), text);
        let path = file.display().to_string();
        let o = sb.run(&["--nix-packages-file", name, "true"]);
        refused(&o, &format!("--nix-packages-file {path}"));
        let err = stderr(&o);
        assert!(err.contains(cause) && err.contains(place), "{err}");
        assert!(!err.contains("lock file"), "{err}");
        // With --verbose, Nix's own words follow, without the lock-file
        // warning our --override-input causes.
        let o = sb.run(&["--verbose", "--nix-packages-file", name, "true"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125));
        assert!(err.lines().count() > 1 && err.contains("  error:"), "{err}");
        assert!(!err.contains("not writing modified lock file"), "{err}");
    }
});

both_modes!(
    a_full_disk_during_the_load_is_named_and_leaves_nothing_behind,
    |mode| {
        let mut sb = Sandbox::private(mode, "fail-full");
        let small = sb.dir.join("small");
        std::fs::create_dir_all(&small).unwrap();
        let uid = sb.uid();
        let mount = |size: &str| {
            let o = Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size},uid={uid},gid={uid},mode=0755"))
                .arg("lns-full")
                .arg(&small)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
        };
        mount("3m");
        sb.extra_env
            .push(("LECTIC_CACHE".into(), small.join("c").display().to_string()));
        // An image is loaded (ours runs from the Nix store, loading nothing).
        let flake = format!("path:{}", fixture("other-image").display());
        let o = sb.run(&["--flake", &flake, "echo", "ran"]);
        refused(&o, "no space left on device while Podman loaded the image");
        assert!(stderr(&o).contains(&small.join("c/nix-sandbox").display().to_string()));
        // With room, the next call works: nothing half-made stood in its way.
        let _ = Command::new("mount")
            .args(["-o", "remount,size=256m"])
            .arg(&small)
            .status();
        assert_eq!(ok(&sb.run(&["--flake", &flake, "echo", "ran"])), "ran\n");
        ok(&sb.run(&["--prune", "--all"]));
        let _ = Command::new("umount").arg("-l").arg(&small).status();
    }
);

/// Rootless on cgroup v1 only: Podman ignores memory and CPU limits there
/// and says so on the command's stderr unless we leave them out.
#[test]
fn ignored_limits_leave_the_commands_stderr_alone() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootless, "fail-v1");
    let o = sb.run(&[
        "--no-keep-warm",
        "--memory",
        "512m",
        "--cpus",
        "1",
        "sh",
        "-c",
        "echo ok >&2",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "ok\n");
}

both_modes!(parallel_rebuilds_build_once, |mode| {
    let sb = Sandbox::private(mode, "fail-rebuild");
    let log = sb.dir.join("nix.log");
    std::fs::write(&log, "").unwrap();
    sb.give_to_user(&log);
    // A slow build, so every call is waiting before the first finishes.
    let nix = sb.script(
        "slow-nix",
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \" $* \" in *\" build \"*) sleep 2;; esac\nexec nix \"$@\"\n",
            log.display()
        ),
    );
    let nix = nix.to_str().unwrap();
    ok(&sb.run(&["--nix-exe", nix, "true"]));
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = sb.command(&["--nix-exe", nix, "--rebuild", "echo", "done"]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        assert_eq!(ok(&wait_bounded(child, Duration::from_secs(300))), "done\n");
    }
    assert_eq!(
        count_lines(&log, " build "),
        2,
        "the first call's and one rebuild"
    );
});

/// Rootless: rootful Podman keeps mounts in its store that cannot be
/// removed under a running container.
#[test]
fn a_store_removed_under_a_running_container_heals_on_the_next_call() {
    e2e_or_skip!();
    let sb = Sandbox::private(Mode::Rootless, "fail-store");
    assert_eq!(ok(&sb.run(&["echo", "one"])), "one\n");
    let root = sb.cache.join("nix-sandbox/podman-root");
    let o = Command::new("rm").arg("-rf").arg(&root).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ok(&sb.run(&["sh", "-c", "echo two"])), "two\n");
    assert_eq!(ok(&sb.run(&["sh", "-c", "echo three"])), "three\n");
    ok(&sb.run(&["--prune", "--all"]));
}

both_modes!(a_stamp_replaced_by_a_directory_heals, |mode| {
    let sb = Sandbox::private(mode, "fail-stamp");
    assert_eq!(ok(&sb.run(&["echo", "one"])), "one\n");
    let warm = sb.cache.join("nix-sandbox/warm");
    let name = std::fs::read_dir(&warm)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("inside/last-use").exists())
        .unwrap();
    let stamp = name.join("inside/last-use");
    std::fs::remove_file(&stamp).unwrap();
    std::fs::create_dir(&stamp).unwrap();
    sb.give_to_user(&stamp);
    assert_eq!(ok(&sb.run(&["echo", "two"])), "two\n");
    assert!(stamp.is_file());
    ok(&sb.run(&["--prune", "--all"]));
});

/// Rootless only: rootful Podman has no pause process.
#[test]
fn prune_ends_the_idle_pause_process_of_its_store() {
    e2e_or_skip!();
    let sb = Sandbox::private(Mode::Rootless, "fail-pause");
    assert_eq!(ok(&sb.run(&["echo", "one"])), "one\n");
    let pid_file = run_dir(&sb).join("libpod-tmp/pause.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    ok(&sb.run(&["--prune", "--all"]));
    assert!(
        eventually(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "pause process {pid} still runs"
    );
    // The next call starts another.
    assert_eq!(ok(&sb.run(&["echo", "two"])), "two\n");
    ok(&sb.run(&["--prune", "--all"]));
}

/// The fixture nixpkgs as a nixpkgs that needs Nix 99.0: `lib/minver.nix`
/// and the same abort real nixpkgs evaluates first.
fn nixpkgs_needing_nix_99(sb: &Sandbox) -> String {
    let dir = sb.mkdir("nixpkgs-99");
    for name in ["lib.nix", "pkgs.nix"] {
        std::fs::copy(fixture("nixpkgs").join(name), dir.join(name)).unwrap();
    }
    sb.write("nixpkgs-99/lib/minver.nix", "\"99.0\"\n");
    sb.write(
        "nixpkgs-99/flake.nix",
        r#"{
  outputs = { self }:
    let
      lib = import ./lib.nix;
      requiredVersion = import ./lib/minver.nix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system:
        if builtins.compareVersions requiredVersion builtins.nixVersion == 1 then
          abort ''
            This version of Nixpkgs requires Nix >= ${requiredVersion}, please upgrade:
          ''
        else import ./pkgs.nix { inherit system lib; });
    };
}
"#,
    );
    format!("path:{}", dir.display())
}

both_modes!(
    a_nixpkgs_that_needs_a_newer_nix_is_named_by_doctor_and_by_the_build,
    |mode| {
        let sb = Sandbox::new(mode, "fail-minver");
        let nixpkgs = nixpkgs_needing_nix_99(&sb);
        let doctor = sb.raw_command(&["--nixpkgs".into(), nixpkgs.clone(), "--doctor".into()]);
        let o = run_bounded(doctor, None);
        let text = stdout(&o);
        assert_eq!(o.status.code(), Some(1), "{text}");
        let line = text.lines().find(|l| l.contains(" nix: ")).unwrap();
        assert!(
            line.starts_with("FAIL") && line.contains("needs 99.0"),
            "{text}"
        );
        let o = run_bounded(
            sb.raw_command(&["--nixpkgs".into(), nixpkgs, "true".into()]),
            None,
        );
        refused(&o, "needs Nix >= 99.0");
        assert!(stderr(&o).contains("--nixpkgs REF"), "{}", stderr(&o));
        // The fixture (no minver.nix) is fine for any Nix with flakes.
        let text = stdout(&sb.run(&["--doctor"]));
        let line = text.lines().find(|l| l.contains(" nix: ")).unwrap();
        assert!(
            line.starts_with("ok") && line.contains("flakes need"),
            "{text}"
        );
    }
);

both_modes!(
    a_container_podman_fails_to_kill_as_it_stops_on_its_own_is_removed_when_asked_again,
    |mode| {
        // Podman's `rm --force` races a container whose init is just
        // ending: "could not be stopped ... container state improper". A
        // wrapper answers the first `rm` so; the sandbox asks again.
        let sb = Sandbox::private(mode, "rm-race");
        ok(&sb.run(&["true"]));
        assert_eq!(ps_names(&sb).len(), 1);
        let raced = sb.dir.join("raced");
        let wrapper = sb.script(
            "podman-racing",
            &format!(
                "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = rm ] && [ ! -e '{m}' ]; then\n    : > '{m}'\n    echo 'Error: cannot remove container c as it could not be stopped: sending SIGKILL to container c: container state improper: stopped' >&2\n    exit 125\n  fi\ndone\nexec podman \"$@\"\n",
                m = raced.display()
            ),
        );
        let wrapper = wrapper.display().to_string();
        let o = sb.run(&["--podman-exe", &wrapper, "--prune", "--all"]);
        assert!(ok(&o).contains("removed"), "{}", stdout(&o));
        assert!(raced.exists(), "the race was not played");
        assert!(ps_names(&sb).is_empty(), "{:?}", ps_names(&sb));
    }
);
