//! `--nix-develop` and `--auto-nix-develop`: the project's dev shell,
//! evaluated by the host's Nix through the real nix-daemon the test setup
//! runs, with the fixture project tests/fixtures/devshell.

mod common;

use common::*;

/// Puts the fixture project (its nixpkgs the fixture's) in the workdir.
fn project(sb: &Sandbox) {
    let text = std::fs::read_to_string(fixture("devshell/flake.nix"))
        .unwrap()
        .replace("NIXPKGS", &nixpkgs_ref());
    std::fs::write(sb.work.join("flake.nix"), text).unwrap();
    sb.give_to_user(&sb.work);
}

const SHOW: &str =
    "ls \"${PATH%%:*}\"; cal >/dev/null && echo ran; echo \"$DEVSHELL_MARK\"; echo \"$PATH\"";

each_path!(
    nix_develop_puts_the_dev_shell_on_path_and_evaluates_once,
    |mode| {
        let sb = Sandbox::private(mode, "develop");
        project(&sb);
        let c = sb.counting();
        let out = ok(&sb.run(&c.with(&["--nix-develop", "sh", "-c", SHOW])));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..3],
            ["cal", "ran", "from-the-default-shell"],
            "{out}"
        );
        assert!(
            lines[3].starts_with("/nix/store/")
                && lines[3].contains("-hello-fixture/bin:")
                && lines[3].ends_with(":/bin:/usr/bin"),
            "the shell's PATH, then the container's: {out}"
        );
        assert_eq!(count_lines(&c.nix_log, "print-dev-env"), 1);
        // Warm and cached: no nix at all (and, through the agent, no podman).
        let podman_before = std::fs::read_to_string(&c.podman_log)
            .unwrap()
            .lines()
            .count();
        assert_eq!(
            ok(&sb.run(&c.with(&["--nix-develop", "sh", "-c", SHOW]))),
            out
        );
        assert_eq!(
            count_lines(&c.nix_log, "print-dev-env"),
            1,
            "evaluated once"
        );
        if sb.via.is_none() {
            let podman_after = std::fs::read_to_string(&c.podman_log)
                .unwrap()
                .lines()
                .count();
            assert_eq!(
                podman_after, podman_before,
                "no podman process on a warm call"
            );
        }
        // A changed flake.nix is evaluated again.
        let flake = sb.work.join("flake.nix");
        let text = std::fs::read_to_string(&flake)
            .unwrap()
            .replace("from-the-default-shell", "changed-shell");
        std::fs::write(&flake, text).unwrap();
        let out = ok(&sb.run(&c.with(&["--nix-develop", "sh", "-c", "echo $DEVSHELL_MARK"])));
        assert_eq!(out, "changed-shell\n");
        assert_eq!(count_lines(&c.nix_log, "print-dev-env"), 2);
    }
);

both_modes!(
    dev_shell_picks_another_shell_and_the_daemon_is_reachable,
    |mode| {
        let sb = Sandbox::private(mode, "develop-other");
        project(&sb);
        let script = "echo \"$DEVSHELL_MARK\"; command -v pidof >/dev/null && echo procps; \
        test -S /nix/var/nix/daemon-socket/socket && echo socket; echo \"$NIX_REMOTE\"; \
        touch /nix/store/x 2>/dev/null || echo store-read-only; test -r /etc/nix/nix.conf && echo conf";
        let out = ok(&sb.run(&["--nix-develop", "--dev-shell", "other", "sh", "-c", script]));
        assert_eq!(
            out,
            "from-the-other-shell\nprocps\nsocket\ndaemon\nstore-read-only\nconf\n"
        );
    }
);

both_modes!(
    auto_nix_develop_uses_the_shell_only_in_a_flake_project,
    |mode| {
        let sb = Sandbox::private(mode, "develop-auto");
        let plain = "echo \"[$DEVSHELL_MARK]\"; test -e /nix/var/nix/daemon-socket/socket || echo no-daemon";
        assert_eq!(
            ok(&sb.run(&["--auto-nix-develop", "sh", "-c", plain])),
            "[]\nno-daemon\n"
        );
        project(&sb);
        assert_eq!(
            ok(&sb.run(&[
                "--auto-nix-develop",
                "sh",
                "-c",
                "echo \"[$DEVSHELL_MARK]\""
            ])),
            "[from-the-default-shell]\n"
        );
    }
);

both_modes!(
    dev_shell_errors_are_one_clear_line_and_cache_nothing,
    |mode| {
        let mut sb = Sandbox::private(mode, "develop-errors");
        // No flake.
        let o = sb.run(&["--nix-develop", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("no flake.nix in") && stderr(&o).contains("--auto-nix-develop"),
            "{}",
            stderr(&o)
        );
        project(&sb);
        // A shell that fails to build, and one that is not there.
        for (shell, why) in [
            ("broken", "does not evaluate or build"),
            ("nosuch", "no such dev shell"),
        ] {
            let o = sb.run(&["--nix-develop", "--dev-shell", shell, "true"]);
            assert_eq!(o.status.code(), Some(125), "{shell}");
            let first = stderr(&o).lines().next().unwrap_or_default().to_owned();
            assert!(first.contains(why), "{shell}: {}", stderr(&o));
        }
        let cached = |sb: &Sandbox| {
            std::fs::read_dir(sb.cache.join("nix-sandbox/dev-env"))
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                        .count()
                })
                .unwrap_or(0)
        };
        assert_eq!(cached(&sb), 0, "nothing cached for a failed shell");
        assert_eq!(
            ok(&sb.run(&["--nix-develop", "sh", "-c", "echo $DEVSHELL_MARK"])),
            "from-the-default-shell\n"
        );
        assert_eq!(cached(&sb), 1);
        // No daemon socket.
        sb.extra_env = vec![(
            "NIX_DAEMON_SOCKET_PATH".into(),
            "/nonexistent/socket".into(),
        )];
        let o = sb.run(&["--nix-develop", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("no socket at /nonexistent/socket"),
            "{}",
            stderr(&o)
        );
        // --dev-shell alone.
        let o = sb.run(&["--dev-shell", "other", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("--dev-shell goes with --nix-develop"),
            "{}",
            stderr(&o)
        );
    }
);
