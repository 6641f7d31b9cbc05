//! A hostile neighbour (a second local user, `sbnb`) and an administrator's
//! system policy: nothing the sandbox writes and reads back lives where
//! another user can write, its state is private, a name taken in the
//! shared /tmp is passed over, a loaded image is the one Nix built, and no
//! option below the system policy loosens it. Rootful and rootless.
//!
//! The system policy's path is fixed when the program is built
//! (/etc/lectic/nix-sandbox.yaml); a test puts one there in a private
//! mount namespace of its own calls (a tmpfs over /etc/lectic), so no
//! other test sees it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs `cmd` (as root) and asserts that it worked.
fn sh(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", stderr(&o));
}

/// A directory of the neighbour's, with `mode`.
fn neighbours_dir(path: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    sh(&format!("chown {NEIGHBOUR}: '{}'", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

/// `shell` run as the neighbour.
fn as_neighbour(shell: &str) -> Output {
    Command::new("runuser")
        .args(["-u", NEIGHBOUR, "--", "sh", "-c", shell])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

both_modes!(a_temp_dir_in_a_neighbours_hands_is_never_used, |mode| {
    let mut sb = Sandbox::private(mode, "nb-temp");
    // LECTIC_TEMP's parent is the neighbour's, and our temp dir's name
    // in it leads to a directory the neighbour fills.
    let parent = neighbours_dir(&sb.dir.join("shared"), 0o755);
    let trap = neighbours_dir(&sb.dir.join("trap"), 0o777);
    let uid = sb.uid();
    sh(&format!(
        "runuser -u {NEIGHBOUR} -- ln -s '{}' '{}/nix-sandbox-{uid}'",
        trap.display(),
        parent.display()
    ));
    sb.extra_env
        .push(("LECTIC_TEMP".into(), parent.display().to_string()));
    sb.extra_env
        .push(("TMPDIR".into(), parent.display().to_string()));
    assert_eq!(ok(&sb.run(&["--no-keep-warm", "echo", "one"])), "one\n");
    assert_eq!(ok(&sb.run(&["echo", "two"])), "two\n");
    let in_trap: Vec<_> = std::fs::read_dir(&trap).unwrap().collect();
    assert!(in_trap.is_empty(), "{in_trap:?}");
    let in_parent: Vec<_> = std::fs::read_dir(&parent).unwrap().collect();
    assert_eq!(in_parent.len(), 1, "only the planted link: {in_parent:?}");

    // A temp dir root left behind, 0755, stops no one either.
    let roots = sb.dir.join("roots-temp");
    std::fs::create_dir_all(&roots).unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.extra_env
        .push(("LECTIC_TEMP".into(), roots.display().to_string()));
    assert_eq!(ok(&sb.run(&["echo", "three"])), "three\n");
});

both_modes!(
    an_image_altered_on_the_way_into_podman_is_refused_and_not_kept,
    |mode| {
        let sb = Sandbox::private(mode, "nb-image");
        // An image is what Podman loads (ours runs from the Nix store).
        let flake = format!("path:{}", fixture("other-image").display());
        // A podman whose `load` gets a doctored copy of what Nix built, as
        // a neighbour swapping the load's spool would feed it.
        let wrapper = sb.script(
            "doctoring-podman",
            r#"#!/bin/sh
case " $* " in
*" load "*)
  d=$(mktemp -d)
  mkdir "$d/x" && tar -C "$d/x" -xf - && cd "$d/x" || exit 1
  for c in $(ls *.json | grep -v manifest.json); do
    sed -i 's|"Env":\[|"Env":["PWNED=image injected",|' "$c"
  done
  tar -cf "$d/out.tar" * || exit 1
  exec podman "$@" -i "$d/out.tar"
  ;;
esac
exec podman "$@"
"#,
        );
        let o = sb.run(&[
            "--flake",
            &flake,
            "--podman-exe",
            wrapper.to_str().unwrap(),
            "sh",
            "-c",
            "echo ${PWNED:-clean}",
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{}{err}", stdout(&o));
        assert!(err.contains("is not the one Nix built"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let images = store_podman(&sb)
            .args(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
            .output()
            .unwrap();
        assert_eq!(stdout(&images), "", "nothing kept: {}", stderr(&images));
        // The next call loads what Nix built.
        assert_eq!(
            ok(&sb.run(&["--flake", &flake, "sh", "-c", "echo ${PWNED:-clean}"])),
            "clean\n"
        );

        // Our tag moved to another image (anything with the store can move
        // a tag): the next container is made from what was verified.
        let images = store_podman(&sb)
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .unwrap();
        let ours = stdout(&images).trim().to_owned();
        let empty = sb.dir.join("empty.tar");
        sh(&format!("tar -cf '{}' -T /dev/null", empty.display()));
        sb.give_to_user(&empty);
        for args in [
            vec!["import", empty.to_str().unwrap(), "localhost/other:1"],
            vec!["tag", "localhost/other:1", &ours],
        ] {
            let o = store_podman(&sb).args(&args).output().unwrap();
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        }
        ok(&sb.run(&["--prune", "--all"]));
        assert_eq!(
            ok(&sb.run(&["--flake", &flake, "sh", "-c", "echo ${PWNED:-clean}"])),
            "clean\n"
        );
        assert_eq!(
            ok(&sb.run(&[
                "--flake",
                &flake,
                "--no-keep-warm",
                "sh",
                "-c",
                "echo ${PWNED:-clean}"
            ])),
            "clean\n"
        );
    }
);

both_modes!(
    the_state_and_what_the_command_keeps_in_its_home_are_private,
    |mode| {
        let sb = Sandbox::private(mode, "nb-private");
        ok(&sb.run(&[
            "sh",
            "-c",
            "echo token-4711 > ~/secret; umask 0; mkdir -p ~/d",
        ]));
        let state = sb.cache.join("nix-sandbox");
        assert_eq!(mode_of(&state), 0o700);
        for dir in ["warm-home", "images", "locks", "warm", "tmp"] {
            assert_eq!(mode_of(&state.join(dir)), 0o700, "{dir}");
        }
        let o = as_neighbour(&format!(
            "cat {}/warm-home/*/secret; ls {}/warm-home",
            state.display(),
            state.display()
        ));
        assert!(!o.status.success());
        assert!(!stdout(&o).contains("token-4711"), "{}", stdout(&o));
        assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    }
);

both_modes!(
    a_run_dir_name_taken_by_another_user_is_passed_over_and_remembered,
    |mode| {
        let mut sb = Sandbox::private(mode, "nb-rundir");
        ok(&sb.run(&["--prepare"]));
        let first_choice = run_dir(&sb).display().to_string();
        // Another user's directory where ours belongs (after a reboot,
        // say, they made it first).
        sh(&format!("rm -rf '{first_choice}'"));
        neighbours_dir(Path::new(&first_choice), 0o700);
        // The session's runtime dir is the next choice.
        let runtime = PathBuf::from(format!(
            "/tmp/lns-xdg-{}-{}",
            std::process::id(),
            sb.variant()
        ));
        let _ = std::fs::remove_dir_all(&runtime);
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        sb.give_to_user(&runtime);
        sb.extra_env
            .push(("XDG_RUNTIME_DIR".into(), runtime.display().to_string()));
        let o = sb.run(&["--verbose", "echo", "ok"]);
        assert_eq!(ok(&o), "ok\n");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("run dir {first_choice} skipped"))
                && err.contains("belongs to uid"),
            "{err}"
        );
        // A call with almost no environment (an MCP server's) finds the
        // same store and its warm container.
        sb.extra_env.retain(|(k, _)| k != "XDG_RUNTIME_DIR");
        let names_before = ps_names(&sb);
        assert_eq!(ok(&sb.run(&["echo", "again"])), "again\n");
        assert_eq!(ps_names(&sb), names_before);
        let doctor = ok(&sb.run(&["--doctor"]));
        let line = doctor
            .lines()
            .find(|l| l.contains("run dir:"))
            .unwrap()
            .to_owned();
        assert!(
            line.starts_with("warn")
                && line.contains(&runtime.display().to_string())
                && line.contains(&format!("{first_choice} skipped")),
            "{doctor}"
        );
        ok(&sb.run(&["--prune", "--all"]));
        let _ = std::fs::remove_dir_all(&first_choice);
        let _ = std::fs::remove_dir_all(&runtime);
    }
);

/// `cmd` (a call made by `Sandbox::raw_command`) run with `policy` as the
/// system policy, owned by `owner` with `mode`, in a mount namespace of
/// its own.
fn under_system_policy(cmd: &Command, policy: &str, owner: &str, mode: &str) -> Output {
    std::fs::create_dir_all("/etc/lectic").unwrap();
    let file = std::env::temp_dir().join(format!(
        "lns-system-policy-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&file, policy).unwrap();
    let script = r#"set -e
mount -t tmpfs -o mode=0755 lns-system-policy /etc/lectic
cp "$1" /etc/lectic/nix-sandbox.yaml
chown "$2" /etc/lectic/nix-sandbox.yaml
chmod "$3" /etc/lectic/nix-sandbox.yaml
shift 3
exec "$@""#;
    let mut outer = Command::new("unshare");
    outer
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&file)
        .args([owner, mode])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        outer.current_dir(dir);
    }
    let o = run_bounded(outer, None);
    let _ = std::fs::remove_file(&file);
    o
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn user_of(mode: Mode) -> &'static str {
    match mode {
        Mode::Rootful => "root",
        Mode::Rootless => ROOTLESS_USER,
    }
}

both_modes!(nothing_below_the_system_policy_loosens_it, |mode| {
    let sb = Sandbox::new(mode, "nb-system");
    let outside = sb.mkdir("outside");
    sb.write("outside/secret", "outside the roots\n");
    let shared = sb.mkdir("shared");
    sb.write("shared/f", "shared data\n");
    let flakes = sb.mkdir("flakes");
    let user = user_of(mode);
    // Line numbers matter below: allow_net is on line 7.
    let system = format!(
        "users:\n  {user}:\n    project_roots: [{}]\nenv:\n  FIXED: by-admin\nallow:\n  allow_net: false\n  cap_add: [NET_BIND_SERVICE]\n  volumes: [{}]\n  flake: ['path:{}/*']\n  podman_exe: false\n",
        sb.work.display(),
        shared.display(),
        flakes.display()
    );
    let call = |args: &[&str], env: &[(&str, String)]| {
        let mut full = vec!["--nixpkgs".to_owned(), nixpkgs_ref()];
        full.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = sb.raw_command(&full);
        for (k, v) in env {
            cmd.env(k, v);
        }
        under_system_policy(&cmd, &system, "root", "0644")
    };
    // Allowed: the fixed env wins over the user's own value.
    let o = call(
        &[
            "--no-keep-warm",
            "--env",
            "FIXED=mine",
            "sh",
            "-c",
            "echo $FIXED",
        ],
        &[],
    );
    assert_eq!(ok(&o), "by-admin\n");
    // A volume outside the roots that the system allows.
    let spec = format!("{}:/shared:ro", shared.display());
    let o = call(
        &["--no-keep-warm", "--volume", &spec, "cat", "/shared/f"],
        &[],
    );
    assert_eq!(ok(&o), "shared data\n");
    // Podman reads neither the user's containers.conf (which could mount
    // anything) nor a `podman` early on the user's PATH.
    // The machine's settings plus a volume, so it would work if read.
    let machine = std::fs::read_to_string("/etc/containers/containers.conf").unwrap_or_default();
    let volume = format!("volumes = [\"{}:/x:ro\"]", outside.display());
    let conf = sb.write(
        "outside/containers.conf",
        &if machine.contains("[containers]") {
            machine.replacen("[containers]", &format!("[containers]\n{volume}"), 1)
        } else {
            format!("{machine}\n[containers]\n{volume}\n")
        },
    );
    let fake = sb.script(
        "outside/bin/podman",
        &format!(
            "#!/bin/sh\necho fake >> '{}/fake-ran'\nexit 1\n",
            sb.dir.display()
        ),
    );
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        fake.parent().unwrap().display()
    );
    let o = call(
        &["--no-keep-warm", "sh", "-c", "cat /x/secret || echo none"],
        &[
            ("CONTAINERS_CONF", conf.display().to_string()),
            ("PATH", path),
        ],
    );
    assert_eq!(ok(&o), "none\n");
    assert!(!sb.dir.join("fake-ran").exists(), "the user's podman ran");
    // Nor one planted where Podman's own config home is, in the cache.
    let planted = sb
        .cache
        .join("nix-sandbox/podman-conf/no-user-config/containers/containers.conf");
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::copy(&conf, &planted).unwrap();
    sb.give_to_user(&sb.cache.join("nix-sandbox/podman-conf/no-user-config"));
    let o = call(
        &["--no-keep-warm", "sh", "-c", "cat /x/secret || echo none"],
        &[],
    );
    assert_eq!(ok(&o), "none\n");
    if mode == Mode::Rootless {
        // Rootless Podman also reads HOME's mounts.conf (rootful reads
        // only /etc's, so there is nothing to try).
        let home = sb.mkdir("home");
        sb.write(
            "home/.config/containers/mounts.conf",
            &format!("{}:/run/secrets/leak\n", outside.display()),
        );
        let o = call(
            &[
                "--no-keep-warm",
                "sh",
                "-c",
                "cat /run/secrets/leak/secret || echo none",
            ],
            &[("HOME", home.display().to_string())],
        );
        assert_eq!(ok(&o), "none\n");
    }

    let users_file = sb.write("mine.yaml", "allow_net: true\n");
    let secret = sb.write("work/creds.nix", "ghp_secret_token_4711\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env_outside = sb.write("outside/x.env", "A=1\n");
    let pkgs_outside = sb.write("outside/p.nix", "[ ]\n");
    let s = |x: &str| x.to_owned();
    let attempts: Vec<(Vec<String>, String)> = vec![
        (
            vec![s("--config"), s("/dev/null"), s("--allow-net")],
            s("--allow-net: not allowed by the system policy (/etc/lectic/nix-sandbox.yaml:7"),
        ),
        (
            vec![s("--config"), users_file.display().to_string()],
            s("--allow-net: not allowed by the system policy"),
        ),
        // The escape hatches are refused unless allowed by name.
        (
            vec![s("--podman-extra"), s("--privileged --cap-add=ALL")],
            s(
                "--podman-extra --privileged: not allowed by the system policy (/etc/lectic/nix-sandbox.yaml, which does not allow podman_extra",
            ),
        ),
        (
            vec![s("--podman-extra"), format!("-v {}:/x", outside.display())],
            s("--podman-extra -v: not allowed"),
        ),
        (
            vec![
                s("--nix-extra"),
                format!("path:{}#containerImage", outside.display()),
            ],
            s("--nix-extra path:"),
        ),
        (
            vec![s("--flake"), format!("path:{}", outside.display())],
            s("--flake path:"),
        ),
        // `*` matches `..` too; climbing out is refused.
        (
            vec![
                s("--flake"),
                format!("path:{}/../outside", flakes.display()),
            ],
            s("/../outside: not allowed by the system policy"),
        ),
        (
            vec![s("--podman-exe"), fake.display().to_string()],
            s("--podman-exe"),
        ),
        (
            vec![s("--cap-add"), s("SYS_ADMIN")],
            s("--cap-add CAP_SYS_ADMIN: not allowed by the system policy"),
        ),
        (
            vec![s("--env-file"), env_outside.display().to_string()],
            s("--env-file"),
        ),
        (
            vec![s("--nix-packages-file"), pkgs_outside.display().to_string()],
            s("outside your project roots"),
        ),
        (
            vec![s("--volume"), outside.display().to_string()],
            s("--volume"),
        ),
        (
            vec![s("--nix-packages-file"), secret.display().to_string()],
            s("only you can read it"),
        ),
    ];
    for (args, expect) in attempts {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.extend(["echo", "got-through"]);
        let o = call(&a, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{a:?}: {}{err}", stdout(&o));
        assert!(!stdout(&o).contains("got-through"));
        assert_eq!(err.lines().count(), 1, "{a:?}: {err}");
        assert!(err.contains(&expect), "{a:?}: {expect:?} in {err}");
        assert!(!err.contains("ghp_secret"), "{err}");
    }

    // --show-config names the layer that set or capped each value.
    let text = ok(&call(&["--show-config"], &[]));
    assert!(
        text.contains("System policy: /etc/lectic/nix-sandbox.yaml"),
        "{text}"
    );
    let line = |opt: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(opt))
            .unwrap_or_else(|| panic!("{opt} in {text}"))
            .to_owned()
    };
    assert!(
        line("--allow-net").contains("capped by /etc/lectic/nix-sandbox.yaml:7 (allow.allow_net)"),
        "{text}"
    );
    assert!(
        line("--podman-exe").contains("/usr/bin/podman")
            && line("--podman-exe").contains("allow.podman_exe"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Project roots: {} (/etc/lectic/nix-sandbox.yaml:3)",
            sb.work.display()
        )),
        "{text}"
    );
});

both_modes!(
    a_system_policy_that_others_can_change_stops_every_call,
    |mode| {
        let sb = Sandbox::new(mode, "nb-system-owner");
        let mut full = vec!["--nixpkgs".to_owned(), nixpkgs_ref()];
        full.extend(["echo", "ran"].map(String::from));
        for (owner, file_mode) in [(NEIGHBOUR, "0644"), ("root", "0666")] {
            let o = under_system_policy(
                &sb.raw_command(&full),
                "allow_net: true\n",
                owner,
                file_mode,
            );
            let err = stderr(&o);
            assert_eq!(
                o.status.code(),
                Some(125),
                "{owner} {file_mode}: {}{err}",
                stdout(&o)
            );
            assert!(
                err.contains("refusing to use /etc/lectic/nix-sandbox.yaml"),
                "{err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        // A broken one is named with its line, never echoed.
        let o = under_system_policy(
            &sb.raw_command(&full),
            "allow:\n  memory: false\n",
            "root",
            "0644",
        );
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("/etc/lectic/nix-sandbox.yaml:2: allow.memory: unknown key"),
            "{}",
            stderr(&o)
        );
    }
);

/// Rootless only: root's own group is never taken as private.
#[test]
fn a_cache_under_a_directory_an_acl_opens_to_others_is_refused() {
    e2e_or_skip!();
    let mut sb = Sandbox::private(Mode::Rootless, "nb-acl");
    // Group-writable, but the group is the user's private one: fine.
    let parent = sb.mkdir("upg");
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o775)).unwrap();
    sb.extra_env.push((
        "LECTIC_CACHE".into(),
        parent.join("cache").display().to_string(),
    ));
    ok(&sb.run(&["--status"]));
    // An ACL lets the neighbour write there: the group bits are its mask.
    sh(&format!(
        "setfacl -m u:{NEIGHBOUR}:rwx '{}'",
        parent.display()
    ));
    let o = sb.run(&["--status"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!("refusing to use {}", parent.display()))
            && err.contains("has an ACL that may let others write"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Rootless only: keep-id maps only the user's own uid and gid.
#[test]
fn private_state_under_a_setgid_directory_still_lets_containers_start() {
    e2e_or_skip!();
    let mut sb = Sandbox::private(Mode::Rootless, "nb-setgid");
    // New directories here would take group root, which the container's
    // user namespace does not map: a 0700 one could not be passed.
    let parent = sb.mkdir("setgid");
    sh(&format!("chgrp root '{}'", parent.display()));
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o2755)).unwrap();
    let cache = parent.join("cache");
    sb.extra_env
        .push(("LECTIC_CACHE".into(), cache.display().to_string()));
    assert_eq!(ok(&sb.run(&["echo", "started"])), "started\n");
    let rootless_gid = std::fs::metadata(&sb.dir).unwrap().gid();
    for dir in [cache.clone(), cache.join("nix-sandbox")] {
        assert_eq!(mode_of(&dir) & 0o777, 0o700, "{dir:?}");
        assert_eq!(
            std::fs::metadata(&dir).unwrap().gid(),
            rootless_gid,
            "{dir:?}"
        );
    }
}

/// Rootless only: keep-id maps only the user's own uid and gid.
#[test]
fn a_cache_behind_a_directory_containers_cannot_pass_is_fixed_or_named() {
    e2e_or_skip!();
    let mut sb = Sandbox::private(Mode::Rootless, "nb-pass");
    // The user's own 0700 directory that came with group root (made by
    // root, then chowned): its group has no rights, so it gets the user's.
    let own = sb.mkdir("own");
    sh(&format!("chgrp root '{}'", own.display()));
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    sb.extra_env.push((
        "LECTIC_CACHE".into(),
        own.join("cache").display().to_string(),
    ));
    assert_eq!(ok(&sb.run(&["echo", "passed"])), "passed\n");
    let rootless_gid = std::fs::metadata(&sb.dir).unwrap().gid();
    assert_eq!(std::fs::metadata(&own).unwrap().gid(), rootless_gid);
    ok(&sb.run(&["--prune", "--all"]));
    // One whose group has rights is not changed: the call says what to do.
    let shared = sb.mkdir("shared");
    sh(&format!("chgrp root '{}'", shared.display()));
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
    sb.extra_env.push((
        "LECTIC_CACHE".into(),
        shared.join("cache").display().to_string(),
    ));
    let o = sb.run(&["echo", "passed"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("rootless containers cannot pass through it") && err.contains("chmod o+x"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
