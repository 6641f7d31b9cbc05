//! End-to-end behaviour of the sandbox, each test rootful and rootless.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;

each_path!(stdout_stderr_and_exit_status_are_the_commands_own, |mode| {
    let sb = Sandbox::new(mode, "status");
    let o = sb.run(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n", "the sandbox itself must be silent");
    let o = sb.run(&["true"]);
    assert_eq!(
        (o.status.code(), stdout(&o), stderr(&o)),
        (Some(0), "".into(), "".into())
    );
});

each_path!(missing_command_is_127_and_non_executable_is_126, |mode| {
    let sb = Sandbox::new(mode, "notfound");
    assert_eq!(sb.run(&["no-such-command-xyz"]).status.code(), Some(127));
    sb.write("work/data.txt", "not a program");
    let data = sb.work.join("data.txt");
    assert_eq!(sb.run(&[data.to_str().unwrap()]).status.code(), Some(126));
});

each_path!(stdin_is_passed_through_and_eof_ends_the_command, |mode| {
    let sb = Sandbox::new(mode, "stdin");
    let o = sb.run_with_stdin(&["sh", "-c", "cat; echo done"], "line one\nline two\n");
    assert_eq!(ok(&o), "line one\nline two\ndone\n");
});

each_path!(stdin_and_stdout_stream_like_an_mcp_server_needs, |mode| {
    use std::io::{BufRead, BufReader, Write};
    let sb = Sandbox::new(mode, "mcp");
    // Warm the image and container first so the exchange below is the point.
    ok(&sb.run(&["true"]));
    let mut cmd = sb.command(&["sh", "-c", "while read -r l; do echo \"reply:$l\"; done"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    for msg in [
        "{\"jsonrpc\":\"2.0\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":2}",
    ] {
        writeln!(input, "{msg}").unwrap();
        input.flush().unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        assert_eq!(
            line,
            format!("reply:{msg}\n"),
            "each reply arrives before stdin closes"
        );
    }
    drop(input);
    let o = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(0));
});

fn assert_signal_stops_everything(mode: Mode, sig: &str, code: i32) {
    let sb = Sandbox::new(mode, &format!("signal-{sig}"));
    ok(&sb.run(&["true"]));
    // Unique per run, signal and mode: the variants run in parallel.
    let token = format!(
        "{}{}{}",
        700000 + std::process::id() % 1000,
        code,
        sb.variant()
    );
    // A shell that ignores SIGTERM, with a detached (setsid) grandchild.
    let script = format!("trap '' TERM INT HUP; (setsid sleep {token}1 &); sleep {token}2");
    let child = sb
        .command(&["sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || processes_with(&token).len()
            == 2),
        "both sleeps start: {:?}",
        processes_with(&token)
    );
    // In rootless mode the client is runuser's child; signal the binary itself.
    let pid = sandbox_pid(mode, &child);
    let sent = std::time::Instant::now();
    signal(pid, sig);
    let o = wait_bounded(child, Duration::from_secs(30));
    let took = sent.elapsed();
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(&o));
    assert!(
        processes_with(&token).is_empty(),
        "survivors: {:?}",
        processes_with(&token)
    );
    // The spec's bound; generous margin is not needed: the sandbox gives up at 1.8 s.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // And the warm container still serves the next call.
    ok(&sb.run(&["true"]));
}

each_path!(sigterm_stops_the_whole_process_tree_and_exits_143, |mode| {
    assert_signal_stops_everything(mode, "TERM", 143);
});

each_path!(sigint_stops_the_whole_process_tree_and_exits_130, |mode| {
    assert_signal_stops_everything(mode, "INT", 130);
});

each_path!(sighup_stops_the_whole_process_tree_and_exits_129, |mode| {
    assert_signal_stops_everything(mode, "HUP", 129);
});

each_path!(only_allowed_host_variables_reach_the_command, |mode| {
    let mut sb = Sandbox::new(mode, "env");
    sb.extra_env = [
        ("OPENAI_API_KEY", "sk-secret"),
        ("LECTIC_INTERLOCUTOR", "Assistant"),
        ("TERM", "xterm-test"),
        ("LC_TIME", "C"),
        ("TZ", "UTC"),
        ("NO_COLOR", "1"),
        ("QUERY", "from-host"),
        ("TOOL_A", "a"),
        ("TOOL_B", "b"),
        ("MULTI", "line1\nline2"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let env_file = sb.write(
        "vars.env",
        "# secrets\nFROM_FILE=\"quoted value\"\nORDER=file\n",
    );
    let env_file = env_file.to_str().unwrap();
    let o = sb.run(&[
        "--pass-env",
        "TOOL_*",
        "--pass-env",
        "MULTI",
        "--pass-env",
        "ORDER",
        "--env",
        "ORDER=flag",
        "--env",
        "SET=yes",
        "--env-file",
        env_file,
        "env",
    ]);
    let out = ok(&o);
    for expected in [
        "LECTIC_INTERLOCUTOR=Assistant",
        "TERM=xterm-test",
        "LC_TIME=C",
        "TZ=UTC",
        "NO_COLOR=1",
        "TOOL_A=a",
        "TOOL_B=b",
        "SET=yes",
        "FROM_FILE=quoted value",
        "ORDER=file",
        "MULTI=line1\nline2",
        "HOME=/home/sandbox",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    for forbidden in ["OPENAI_API_KEY", "QUERY", "sk-secret"] {
        assert!(!out.contains(forbidden), "{forbidden} leaked:\n{out}");
    }
    // --env beats --pass-env.
    let o = sb.run(&[
        "--pass-env",
        "QUERY",
        "--env",
        "QUERY=flag",
        "sh",
        "-c",
        "echo $QUERY",
    ]);
    assert_eq!(ok(&o), "flag\n");
});

each_path!(env_values_never_appear_in_process_arguments, |mode| {
    let mut sb = Sandbox::new(mode, "env-argv");
    let secret = format!("s3cr3t-{}", std::process::id());
    sb.extra_env = vec![("API_TOKEN".into(), secret.clone())];
    ok(&sb.run(&["true"]));
    let token = format!("{}{}", 880000 + std::process::id() % 1000, sb.variant());
    // Also under a name podman itself reads, which cannot go through
    // podman's environment.
    let file = sb.write("reserved.env", &format!("CONTAINERS_SECRET={secret}\n"));
    let child = sb
        .command(&[
            "--pass-env",
            "API_TOKEN",
            "--env-file",
            file.to_str().unwrap(),
            "sleep",
            &token,
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Look while the call (and its podman processes) is running.
    assert!(eventually(Duration::from_secs(60), || !processes_with(
        &token
    )
    .is_empty()));
    let calls = command_lines_with(&token);
    let seen = command_lines_with(&secret);
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::process::Command::new("pkill")
        .args(["-f", &format!("sleep {token}")])
        .status();
    // The agent path has no podman process; the podman path's `podman
    // exec` must be among what we looked at.
    let carrier = if sb.via == Some("podman") {
        "podman"
    } else {
        "lectic-nix-sandbox"
    };
    assert!(
        calls
            .iter()
            .any(|l| l.contains(carrier) && l.contains("API_TOKEN")),
        "the {carrier} process is among what we look at: {calls:?}"
    );
    assert!(seen.is_empty(), "secret visible in argv: {seen:?}");
});

each_path!(
    files_written_in_the_workdir_belong_to_the_invoking_user,
    |mode| {
        let sb = Sandbox::new(mode, "owner");
        ok(&sb.run(&["sh", "-c", "echo hi > made-inside; mkdir d; id -u"]));
        let meta = std::fs::metadata(sb.work.join("made-inside")).unwrap();
        assert_eq!(meta.uid(), sb.uid());
        assert_eq!(
            std::fs::metadata(sb.work.join("d")).unwrap().uid(),
            sb.uid()
        );
        let id = ok(&sb.run(&["id", "-u"]));
        assert_eq!(id.trim(), sb.uid().to_string());
        // The uid has a name inside.
        let name = ok(&sb.run(&["id", "-un"]));
        let expected = if mode == Mode::Rootful {
            "root"
        } else {
            ROOTLESS_USER
        };
        assert_eq!(name.trim(), expected);
    }
);

each_path!(
    lectic_script_tools_with_env_shebangs_run_from_the_cwd,
    |mode| {
        let sb = Sandbox::new(mode, "script");
        let script = sb.write(
            "work/.lectic_script-0b9f2d2e",
            "#!/usr/bin/env bash\necho \"script says $1 from $(pwd)\"\n",
        );
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = script.to_str().unwrap();
        // As Lectic runs it: shebang words, then the script's absolute path.
        let o = sb.run(&["/usr/bin/env", "bash", path, "hello"]);
        assert_eq!(
            ok(&o),
            format!("script says hello from {}\n", sb.work.display())
        );
        // And executed directly through its shebang.
        let o = sb.run(&[path, "again"]);
        assert_eq!(
            ok(&o),
            format!("script says again from {}\n", sb.work.display())
        );
    }
);

each_path!(warm_call_starts_no_nix_and_no_new_container, |mode| {
    let sb = Sandbox::private(mode, "warm");
    let c = sb.counting();
    let (nix_log, podman_log) = (c.nix_log.as_path(), c.podman_log.as_path());
    let args = c.with(&["echo", "hi"]);
    let cold = sb.run(&args);
    assert_eq!(ok(&cold), "hi\n");
    assert_eq!(
        stderr(&cold),
        "",
        "a cold call off a terminal shows no build or load progress"
    );
    assert_eq!(count_lines(nix_log, "build"), 1);
    assert_eq!(count_lines(podman_log, " run -d --rm "), 1);
    assert_eq!(
        count_lines(podman_log, " load "),
        0,
        "run from the Nix store"
    );
    let podman_calls = || std::fs::read_to_string(podman_log).unwrap().lines().count();
    let nix_calls = || std::fs::read_to_string(nix_log).unwrap().lines().count();
    // The build and the closure's listing.
    assert_eq!(nix_calls(), 2);
    let (before, execs) = (podman_calls(), count_lines(podman_log, " exec "));
    assert_eq!(ok(&sb.run(&args)), "hi\n");
    assert_eq!(ok(&sb.run(&args)), "hi\n");
    if sb.via.is_none() {
        assert_eq!(
            podman_calls(),
            before,
            "no podman process on warm agent calls"
        );
    } else {
        assert_eq!(count_lines(podman_log, " exec "), execs + 2);
    }
    assert_eq!(nix_calls(), 2, "no nix process on warm calls");
    assert_eq!(
        count_lines(podman_log, " run -d --rm "),
        1,
        "no new container on warm calls"
    );
    assert_eq!(count_lines(podman_log, " load "), 0);
    // --rebuild ignores the record.
    ok(&sb.run(&[&["--rebuild"][..], &args[..]].concat()));
    assert_eq!(count_lines(nix_log, "build"), 2);
});

each_path!(a_changed_configuration_gets_its_own_container, |mode| {
    let sb = Sandbox::private(mode, "config");
    let (podman, podman_log) = sb.logging_wrapper("podman");
    let podman = podman.to_str().unwrap();
    let extra = sb.mkdir("extra");
    let extra = extra.to_str().unwrap();
    let runs = || {
        std::fs::read_to_string(&podman_log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(" run -d --rm "))
            .map(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != "--name")
                    .nth(1)
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    ok(&sb.run(&["--podman-exe", podman, "true"]));
    ok(&sb.run(&["--podman-exe", podman, "--volume", extra, "true"]));
    ok(&sb.run(&["--podman-exe", podman, "--volume", extra, "true"]));
    ok(&sb.run(&["--podman-exe", podman, "--allow-net", "true"]));
    let names = runs();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("lectic-nix-sandbox-")));
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 3);
});

each_path!(network_is_off_unless_allowed, |mode| {
    let sb = Sandbox::new(mode, "net");
    let interfaces = |o: std::process::Output| {
        ok(&o)
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|s| s.trim().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(interfaces(sb.run(&["cat", "/proc/net/dev"])), ["lo"]);
    let with_net = interfaces(sb.run(&["--allow-net", "cat", "/proc/net/dev"]));
    assert!(with_net.len() >= 2, "{with_net:?}");
});

/// A derivation written without pkgs: `cal` as a copy of static busybox.
const RAW_CAL: &str = r#"(derivation {
  name = "raw-cal"; system = "x86_64-linux"; builder = "/bin/busybox";
  args = [ "sh" "-c" "/bin/busybox mkdir -p $out/bin && /bin/busybox cp /bin/busybox $out/bin/cal" ];
})"#;

each_path!(
    packages_file_accepts_a_list_an_attrset_and_a_function,
    |mode| {
        let sb = Sandbox::new(mode, "pkgfile");
        let forms = [
            ("list.nix", format!("[ {RAW_CAL} ]")),
            ("attrs.nix", format!("{{ packages = [ {RAW_CAL} ]; }}")),
            ("fn-list.nix", "{ pkgs, ... }: [ pkgs.hello ]".to_owned()),
            (
                "fn-attrs.nix",
                "{ pkgs, callPackage }: { packages = [ (callPackage ({ hello }: hello) { }) ]; }"
                    .to_owned(),
            ),
            (
                "fn-pkgs-only.nix",
                "{ pkgs }: { packages = [ pkgs.hello ]; }".to_owned(),
            ),
            ("empty.nix", "[ ]".to_owned()),
        ];
        for (name, text) in &forms {
            let f = sb.write(name, text);
            let o = sb.run(&[
                "--nix-packages-file",
                f.to_str().unwrap(),
                "sh",
                "-c",
                "test -e /bin/cal && echo /bin/cal || echo none",
            ]);
            let expected = if *name == "empty.nix" {
                "none\n"
            } else {
                "/bin/cal\n"
            };
            assert_eq!(ok(&o), expected, "{name}");
        }
        // Without a packages file, no cal.
        assert_eq!(
            ok(&sb.run(&["sh", "-c", "test -e /bin/cal && echo /bin/cal || echo none"])),
            "none\n"
        );
    }
);

both_modes!(packages_file_errors_name_the_file_and_exit_125, |mode| {
    let sb = Sandbox::new(mode, "pkgfile-bad");
    let cases = [
        ("string.nix", "\"hello\"", "expected a list of derivations"),
        (
            "element.nix",
            "[ 42 ]",
            "element 0 of the package list is a int",
        ),
        (
            "packages.nix",
            "{ packages = \"x\"; }",
            "`packages` must be a list",
        ),
        ("syntax.nix", "[ (", "does not evaluate"),
    ];
    for (name, text, expect) in cases {
        let f = sb.write(name, text);
        let o = sb.run(&["--nix-packages-file", f.to_str().unwrap(), "true"]);
        assert_eq!(o.status.code(), Some(125), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("lectic-nix-sandbox: --nix-packages-file "),
            "{err}"
        );
        assert!(
            err.contains(f.to_str().unwrap()),
            "{name}: names the file: {err}"
        );
        assert!(err.contains(expect), "{name}: {err}");
    }
    let o = sb.run(&["--nix-packages-file", "/no/such/file.nix", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("/no/such/file.nix"));
});

each_path!(flake_option_uses_another_flakes_image, |mode| {
    let sb = Sandbox::new(mode, "flake");
    let flake = format!("path:{}", fixture("other-image").display());
    let o = sb.run(&["--flake", &flake, "cat", "/etc/marker"]);
    assert_eq!(ok(&o), "other-image\n");
    // Ours does not have the marker.
    assert_eq!(sb.run(&["cat", "/etc/marker"]).status.code(), Some(1));
});

each_path!(one_shot_calls_leave_no_container_behind, |mode| {
    let sb = Sandbox::private(mode, "oneshot");
    let (podman, podman_log) = sb.logging_wrapper("podman");
    let o = sb.run(&[
        "--podman-exe",
        podman.to_str().unwrap(),
        "--no-keep-warm",
        "sh",
        "-c",
        "echo once; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o), "once\n");
    let log = std::fs::read_to_string(&podman_log).unwrap();
    assert!(log.contains("run --rm"), "{log}");
    // No `podman exec` (the one-shot gate's `exec "$@"` is the shell's).
    assert!(!log.contains(" exec --"), "{log}");
    let o = sb.run(&[
        "--podman-exe",
        podman.to_str().unwrap(),
        "--no-keep-warm",
        "true",
    ]);
    ok(&o);
    // Nothing of ours is left in the store.
    let ps = ps_names(&sb);
    assert!(ps.is_empty(), "{ps:?}");
});

each_path!(persist_volume_and_home_mounts, |mode| {
    let sb = Sandbox::new(mode, "mounts");
    let persist = sb.dir.join("persist-dir");
    let ro = sb.mkdir("ro");
    sb.write("ro/file", "read me");
    let home = sb.mkdir("myhome");
    let p = persist.to_str().unwrap();
    let ro_arg = format!("{}:/data:ro", ro.display());
    let h = home.to_str().unwrap();
    let script = "echo kept > /persist/p; cat /data/file; echo; touch /data/x 2>/dev/null && echo writable || echo read-only; echo $HOME; echo h > $HOME/h";
    let o = sb.run(&["-p", p, "-v", &ro_arg, "--home", h, "sh", "-c", script]);
    assert_eq!(ok(&o), "read me\nread-only\n/home/sandbox\n");
    assert_eq!(
        std::fs::read_to_string(persist.join("p")).unwrap(),
        "kept\n"
    );
    assert_eq!(std::fs::read_to_string(home.join("h")).unwrap(), "h\n");
    // Without --home, HOME persists between calls of one configuration.
    ok(&sb.run(&["sh", "-c", "echo remembered > $HOME/note"]));
    assert_eq!(ok(&sb.run(&["cat", "/home/sandbox/note"])), "remembered\n");
});

each_path!(workdir_option_sets_the_mounted_cwd, |mode| {
    let sb = Sandbox::new(mode, "workdir");
    let other = sb.mkdir("other");
    let o = sb.run(&[
        "--workdir",
        other.to_str().unwrap(),
        "sh",
        "-c",
        "pwd; touch here",
    ]);
    assert_eq!(ok(&o), format!("{}\n", other.display()));
    assert!(other.join("here").exists());
});

each_path!(extra_arguments_are_split_with_quotes, |mode| {
    // A store of its own: the variants' parallel --rebuild calls of one
    // record would otherwise share one build (see parallel_rebuilds_build_once).
    let sb = Sandbox::private(mode, "extra");
    let (nix, nix_log) = sb.logging_wrapper("nix");
    let o = sb.run(&[
        "--nix-exe",
        nix.to_str().unwrap(),
        "--rebuild",
        "--nix-extra",
        "--option cores '1'",
        "--podman-extra",
        "--env 'GREETING=hello  world'",
        "sh",
        "-c",
        "echo \"$GREETING\"",
    ]);
    assert_eq!(ok(&o), "hello  world\n");
    let log = std::fs::read_to_string(&nix_log).unwrap();
    assert!(log.contains("--option cores 1 "), "{log}");
});

both_modes!(bad_input_is_one_line_on_stderr_and_exit_125, |mode| {
    let sb = Sandbox::new(mode, "badinput");
    let bad_env = sb.write("bad.env", "GOOD=1\nthis line is wrong\n");
    let bad_env = bad_env.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--no-such-option", "true"], "--no-such-option"),
        (vec!["--workdir"], "--workdir"),
        (vec!["--allow-net"], "COMMAND"),
        (vec!["--workdir", "/no/such/dir", "true"], "/no/such/dir"),
        (vec!["--volume", "/no/such/src:/x", "true"], "/no/such/src"),
        (vec!["--volume", "/tmp:relative", "true"], "absolute"),
        (vec!["--env", "NOVALUE", "true"], "--pass-env NOVALUE"),
        (
            vec!["--env-file", &bad_env, "true"],
            ":2: expected NAME=VALUE",
        ),
        (vec!["--nix-extra", "'unclosed", "true"], "unterminated"),
        (vec!["--warm-ttl", "sometime", "true"], "sometime"),
        (vec!["--status", "ls"], "--status"),
        (vec!["--prune", "--gc"], "--gc"),
        (vec!["--all", "true"], "--prune"),
        (vec!["--lock-timeout", "never", "true"], "never"),
        (
            vec!["--podman-exe", "/no/such/podman", "true"],
            "/no/such/podman",
        ),
    ];
    for (args, expect) in cases {
        let o = sb.run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("lectic-nix-sandbox: "), "{args:?}: {err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
    }
    // Nothing half-made: the next call works.
    ok(&sb.run(&["true"]));
});

each_path!(a_terminal_gets_a_terminal, |mode| {
    let sb = Sandbox::new(mode, "tty");
    ok(&sb.run(&["true"]));
    // `script` gives the sandbox a pseudo-terminal as stdin and stdout.
    let cmd = sb.command(&["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty"]);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect();
    let envs: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            Some(format!(
                "{}={}",
                k.to_string_lossy(),
                shell_quote(&v?.to_string_lossy())
            ))
        })
        .collect();
    let inner = format!(
        "env -i {} {} {}",
        envs.join(" "),
        shell_quote(&program),
        args.join(" ")
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &inner, "/dev/null"])
        .current_dir(&sb.work);
    let o = run_bounded(script, None);
    assert!(ok(&o).contains("is-a-tty"), "{}", stdout(&o));
    // Without a terminal, none.
    let o = sb.run(&["sh", "-c", "test -t 0 || echo no-tty"]);
    assert_eq!(ok(&o), "no-tty\n");
});

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

each_path!(a_long_lectic_temp_still_works, |mode| {
    let mut sb = Sandbox::new(mode, "longtemp");
    let long = sb
        .dir
        .join("a-temporary-directory-whose-name-is-far-longer-than-fifty-characters");
    sb.temp = long;
    assert_eq!(ok(&sb.run(&["echo", "fine"])), "fine\n");
});

both_modes!(
    verbose_says_which_storage_driver_and_which_exec_path_is_used,
    |mode| {
        let sb = Sandbox::new(mode, "verbose");
        let o = sb.run(&["--verbose", "true"]);
        ok(&o);
        assert!(
            stderr(&o).contains("storage driver overlay")
                || stderr(&o).contains("storage driver vfs"),
            "{}",
            stderr(&o)
        );
        let o = sb.run(&["--verbose", "true"]);
        ok(&o);
        assert!(stderr(&o).contains("through its agent"), "{}", stderr(&o));
        let o = sb.run(&["--verbose", "--exec-via", "podman", "true"]);
        ok(&o);
        assert!(stderr(&o).contains("with podman exec"), "{}", stderr(&o));
    }
);

#[test]
fn help_and_version_exit_zero_and_tell_the_truth() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "help");
    let o = sb.run(&["--help"]);
    let help = ok(&o);
    for flag in [
        "--workdir",
        "--volume",
        "--persist",
        "--home",
        "--allow-net",
        "--keep-warm",
        "--no-keep-warm",
        "--warm-ttl-seconds",
        "--warm-ttl",
        "--nix-packages-file",
        "--nix-exe",
        "--podman-exe",
        "--nix-extra",
        "--podman-extra",
        "--flake",
        "--nixpkgs",
        "--env",
        "--pass-env",
        "--env-file",
        "--rebuild",
        "--version",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let o = sb.run(&["--version"]);
    assert_eq!(
        ok(&o).trim(),
        format!("lectic-nix-sandbox {}", env!("CARGO_PKG_VERSION"))
    );
}

both_modes!(the_users_own_podman_store_is_never_touched, |mode| {
    let sb = Sandbox::new(mode, "isolation");
    ok(&sb.run(&["true"]));
    let home = match mode {
        Mode::Rootful => "/var/lib/containers/storage".to_owned(),
        Mode::Rootless => format!("/home/{ROOTLESS_USER}/.local/share/containers/storage"),
    };
    // The default store, as the user's own podman sees it.
    let o = podman_as(mode)
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("lectic-nix-sandbox"),
        "ours leaked into {home}: {}",
        stdout(&o)
    );
    // And ours holds the container.
    assert!(
        ps_names(&sb)
            .iter()
            .any(|n| n.starts_with("lectic-nix-sandbox-"))
    );
});

#[test]
fn the_example_packages_file_builds_and_its_packages_run() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "example");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packages.example.nix");
    let o = sb.run(&[
        "--nix-packages-file",
        example.to_str().unwrap(),
        "sh",
        "-c",
        "hello-sandbox; command -v rg; command -v python3",
    ]);
    assert_eq!(ok(&o), "hello from the sandbox\n/bin/rg\n/bin/python3\n");
}

#[test]
fn plugin_install_puts_lectic_yaml_beside_the_binary() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "plugin");
    let dest = sb.dir.join("plugins/nix-sandbox");
    let install = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin/install");
    let mut cmd = std::process::Command::new(install);
    cmd.arg(&dest).env(
        "LECTIC_NIX_SANDBOX_BIN",
        env!("CARGO_BIN_EXE_lectic-nix-sandbox"),
    );
    let o = run_bounded(cmd, None);
    assert!(ok(&o).contains("installed"));
    let yaml = std::fs::read_to_string(dest.join("lectic.yaml")).unwrap();
    let line = yaml.lines().find(|l| l.starts_with("sandbox:")).unwrap();
    // Lectic resolves `local:./x` beside the YAML file.
    let rel = line.trim_start_matches("sandbox: local:./");
    let bin = dest.join(rel);
    let o = run_bounded(
        {
            let mut c = std::process::Command::new(bin);
            c.arg("--version");
            c
        },
        None,
    );
    assert!(ok(&o).starts_with("lectic-nix-sandbox "));
}

/// The words of the plugin's `sandbox:` line (none of ours has quotes).
fn plugin_line(dir: &std::path::Path) -> Vec<String> {
    let yaml = std::fs::read_to_string(dir.join("lectic.yaml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let line = v["sandbox"].as_str().unwrap();
    assert!(!line.contains(['\'', '"']), "{line}");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn install_plugin_writes_a_lectic_yaml_that_runs_this_binary_and_is_idempotent() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "install-plugin");
    let data = sb.dir.join("data");
    sb_install(&sb, &data, "wrote ");
    let words = plugin_line(&data.join("plugins/nix-sandbox"));
    let o = run_bounded(
        {
            let mut c = std::process::Command::new(&words[0]);
            c.arg("--version");
            c
        },
        None,
    );
    assert!(ok(&o).starts_with("lectic-nix-sandbox "));
    // Again: nothing to do, and it says so.
    sb_install(&sb, &data, "is up to date");
}

/// `--install-plugin` with LECTIC_DATA=data; its output starts or holds `says`.
fn sb_install(sb: &Sandbox, data: &std::path::Path, says: &str) {
    let mut cmd = sb.raw_command(&["--install-plugin".into()]);
    cmd.env("LECTIC_DATA", data);
    let out = ok(&run_bounded(cmd, None));
    assert!(
        out.contains(says) && out.contains("plugins/nix-sandbox/lectic.yaml"),
        "{out}"
    );
}

both_modes!(
    the_plugin_line_gives_an_mcp_server_the_policy_cache_and_options_of_an_exec_tool,
    |mode| {
        let sb = Sandbox::new(mode, "plugin-mcp");
        let conf = sb.mkdir("conf");
        sb.write(
            "conf/nix-sandbox.yaml",
            "env:\n  FROM_POLICY: policy-seen\n",
        );
        let plugin = sb.dir.join("plugin");
        // As the user runs it, with LECTIC_CONFIG moved and options to keep.
        let mut cmd = sb.command(&[
            "--pids-limit",
            "77",
            "--install-plugin",
            plugin.to_str().unwrap(),
        ]);
        cmd.env("LECTIC_CONFIG", &conf);
        let out = ok(&run_bounded(cmd, None));
        assert!(out.starts_with("wrote "), "{out}");
        let words = plugin_line(&plugin);
        let after = |flag: &str| {
            let i = words
                .iter()
                .position(|w| w == flag)
                .unwrap_or_else(|| panic!("{flag} in {words:?}"));
            words[i + 1].clone()
        };
        assert_eq!(
            after("--config"),
            conf.join("nix-sandbox.yaml").display().to_string()
        );
        assert_eq!(after("--cache"), sb.cache.display().to_string());
        assert_eq!(after("--nixpkgs"), nixpkgs_ref());
        assert_eq!(after("--pids-limit"), "77");
        // As Lectic starts an MCP server: only its SDK's variables.
        let mcp = |extra: &[&str]| {
            let mut cmd = sb.raw_command(&[]);
            cmd.env_remove("LECTIC_CACHE").env_remove("LECTIC_TEMP");
            cmd.env("SHELL", "/bin/sh")
                .env("TERM", "dumb")
                .env("LOGNAME", "x");
            let env: Vec<_> = cmd
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
                .collect();
            let mut cmd = match mode {
                Mode::Rootful => std::process::Command::new(&words[0]),
                Mode::Rootless => {
                    let mut c = std::process::Command::new("runuser");
                    c.args(["-u", ROOTLESS_USER, "--", &words[0]]);
                    c
                }
            };
            cmd.args(&words[1..])
                .args(extra)
                .env_clear()
                .envs(env)
                .current_dir(&sb.work)
                .stdin(std::process::Stdio::null());
            run_bounded(cmd, None)
        };
        assert_eq!(
            ok(&mcp(&["sh", "-c", "echo $FROM_POLICY"])),
            "policy-seen\n"
        );
        let status = |o: &std::process::Output| {
            let v: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
            let names: Vec<String> = v["warm"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].to_string())
                .collect();
            assert!(!names.is_empty(), "{v}");
            (v["cache"].clone(), names)
        };
        assert_eq!(
            status(&mcp(&["--status", "--json"])),
            status(&sb.run(&["--status", "--json"])),
            "the same cache"
        );
        // --doctor names the difference for a line without them.
        let mut cmd = sb.command(&["--doctor"]);
        cmd.env("LECTIC_CONFIG", &conf);
        let text = stdout(&run_bounded(cmd, None));
        let line = text.lines().find(|l| l.contains("mcp servers:")).unwrap();
        assert!(
            line.starts_with("warn") && line.contains("no policy file instead of"),
            "{text}"
        );
        // An option that would act on every call is refused.
        let o = sb.run(&["--rebuild", "--install-plugin", plugin.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("--rebuild would rebuild"),
            "{}",
            stderr(&o)
        );
    }
);

/// What `shell` offers when `line` is typed and TAB pressed, in `dir`
/// (with a directory "dir with space" in it), one candidate per line.
fn complete_in(
    shell: &str,
    scripts: &std::path::Path,
    dir: &std::path::Path,
    line: &str,
) -> String {
    let mut cmd = match shell {
        "bash" => {
            // As bash calls it: the words, the cursor at the end.
            let words: Vec<String> = line.split(' ').map(|w| format!("'{w}'")).collect();
            let mut c = std::process::Command::new("bash");
            c.arg("-c").arg(format!(
                "source /usr/share/bash-completion/bash_completion; source {}/lectic-nix-sandbox.bash; \
                 COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=({}); COMP_CWORD={}; \
                 _lectic_nix_sandbox; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                scripts.display(),
                words.join(" "),
                words.len() - 1
            ));
            c
        }
        "zsh" => {
            let mut c = std::process::Command::new("zsh");
            c.arg(fixture("completion/capture.zsh"))
                .arg(scripts)
                .arg(line);
            c
        }
        _ => {
            let mut c = std::process::Command::new("fish");
            c.arg("-c").arg(format!(
                "source {}/lectic-nix-sandbox.fish; complete -C '{line}'",
                scripts.display()
            ));
            c
        }
    };
    cmd.current_dir(dir).env("HOME", dir).stdin(Stdio::null());
    let o = run_bounded(cmd, None);
    assert!(o.status.success(), "{shell} {line:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn completions_work_in_bash_zsh_and_fish_and_hand_the_command_over() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "completions");
    let scripts = sb.mkdir("scripts");
    for (shell, file) in [
        ("bash", "lectic-nix-sandbox.bash"),
        ("zsh", "_lectic-nix-sandbox"),
        ("fish", "lectic-nix-sandbox.fish"),
    ] {
        std::fs::write(scripts.join(file), ok(&sb.run(&["--completions", shell]))).unwrap();
    }
    let dir = sb.mkdir("cwd");
    sb.mkdir("cwd/dir with space");
    for shell in ["bash", "zsh", "fish"] {
        let offers = |line: &str| -> Vec<String> {
            complete_in(shell, &scripts, &dir, line)
                .lines()
                // fish adds a tab and a description.
                .map(|l| l.split('\t').next().unwrap().to_owned())
                .collect()
        };
        let has = |line: &str, want: &str| {
            let got = offers(line);
            assert!(
                got.iter().any(|g| g == want),
                "{shell}: {line:?} offers {want:?}: {got:?}"
            );
        };
        has("lectic-nix-sandbox --he", "--help");
        has("lectic-nix-sandbox --vers", "--version");
        has("lectic-nix-sandbox --exec-via ", "podman");
        // A directory with a space is one candidate (bash and fish add the /;
        // zsh adds it as a suffix of its own).
        has(
            "lectic-nix-sandbox --workdir di",
            if shell == "zsh" {
                "dir with space"
            } else {
                "dir with space/"
            },
        );
        // The command word: command names; after it, that command's own
        // completion and none of our options.
        has("lectic-nix-sandbox --allow-net bas", "bash");
        has("lectic-nix-sandbox -- bas", "bash");
        has("lectic-nix-sandbox --allow-net ls --al", "--all");
        let after = offers("lectic-nix-sandbox ls --wo");
        assert!(
            !after.iter().any(|o| o == "--workdir"),
            "{shell}: {after:?}"
        );
    }
    // Descriptions are whole, not cut at the first period.
    let desc = complete_in("fish", &scripts, &dir, "lectic-nix-sandbox --exec-v");
    assert!(desc.contains("Without a static binary"), "{desc}");
    let zsh = std::fs::read_to_string(scripts.join("_lectic-nix-sandbox")).unwrap();
    assert!(zsh.contains("Without a static binary"), "{zsh}");
}

#[test]
fn the_man_page_renders_cleanly_with_environment_and_files() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "man");
    let page = sb.dir.join("lectic-nix-sandbox.1");
    std::fs::write(&page, ok(&sb.run(&["--man"]))).unwrap();
    let o = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    let o = std::process::Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou"])
        .arg(&page)
        .output()
        .unwrap();
    let text = stdout(&o);
    for section in [
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "LECTIC_CACHE",
        "Possible values",
    ] {
        assert!(text.contains(section), "{section} in {text}");
    }
}

each_path!(
    parallel_cold_calls_build_once_load_nothing_and_create_once,
    |mode| {
        let sb = Sandbox::private(mode, "parallel");
        let c = sb.counting();
        let (nix_log, podman_log) = (c.nix_log.as_path(), c.podman_log.as_path());
        let children: Vec<_> = (0..6)
            .map(|i| {
                let echo = format!("call {i}");
                let mut cmd = sb.command(&c.with(&["echo", &echo]));
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                (echo, cmd.spawn().unwrap())
            })
            .collect();
        for (echo, child) in children {
            let o = wait_bounded(child, Duration::from_secs(300));
            assert_eq!(ok(&o), format!("{echo}\n"));
        }
        assert_eq!(count_lines(nix_log, " build "), 1);
        assert_eq!(
            count_lines(podman_log, " load "),
            0,
            "run from the Nix store"
        );
        assert_eq!(count_lines(podman_log, " run -d --rm "), 1);
    }
);

each_path!(the_image_has_the_promised_basics, |mode| {
    let sb = Sandbox::new(mode, "basics");
    let script = "stat -c %a /tmp; test -x /usr/bin/env && echo env; \
        grep -c '^root:' /etc/passwd; test -s /etc/ssl/certs/ca-bundle.crt && echo certs; \
        for c in bash ls find grep sed awk git jq curl setsid; do command -v $c >/dev/null || echo missing $c; done";
    assert_eq!(ok(&sb.run(&["sh", "-c", script])), "1777\nenv\n1\ncerts\n");
});

each_path!(
    an_image_removed_from_the_store_is_loaded_again_without_a_build,
    |mode| {
        let sb = Sandbox::private(mode, "reload");
        let c = sb.counting();
        let (nix_log, podman_log) = (c.nix_log.as_path(), c.podman_log.as_path());
        // An image (another flake's) is what Podman loads and can lose.
        let flake = format!("path:{}", fixture("other-image").display());
        let args = c.with(&["--flake", &flake, "echo", "back"]);
        assert_eq!(ok(&sb.run(&args)), "back\n");
        // Someone removes our container and image behind our back.
        let o = store_podman(&sb)
            .args(["rm", "--all", "--force", "--time", "0"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let o = store_podman(&sb)
            .args(["rmi", "--all", "--force"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(ok(&sb.run(&args)), "back\n");
        assert_eq!(
            count_lines(nix_log, " build "),
            1,
            "reloaded from the store path"
        );
        assert_eq!(count_lines(podman_log, " load "), 2);
    }
);

/// Our flake's files (as git would ship them) in a directory of their own.
fn flake_copy(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.dir.join("flake-copy");
    std::fs::create_dir_all(&dir).unwrap();
    let ok = std::process::Command::new("cp")
        .args([
            "-r",
            "--parents",
            "flake.nix",
            "flake.lock",
            "Cargo.toml",
            "Cargo.lock",
            "nix",
        ])
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(ok.success());
    dir
}

#[test]
fn the_flake_offers_the_static_binary_an_app_and_a_dev_shell_that_links_statically() {
    e2e_or_skip!();
    let sb = Sandbox::new(Mode::Rootful, "flake-outputs");
    let flake = format!("path:{}", flake_copy(&sb).display());
    let nix = |args: &[&str]| {
        let mut cmd = std::process::Command::new("nix");
        cmd.args(["--extra-experimental-features", "nix-command flakes"])
            .args(args)
            .args([
                "--no-write-lock-file",
                "--override-input",
                "nixpkgs",
                &nixpkgs_ref(),
            ])
            .env(
                "NIX_CONFIG",
                "substituters =\nexperimental-features = nix-command flakes",
            );
        run_bounded(cmd, None)
    };
    let system = "x86_64-linux";
    let app = ok(&nix(&[
        "eval",
        "--json",
        &format!("{flake}#apps.{system}.default"),
    ]));
    let app: serde_json::Value = serde_json::from_str(&app).unwrap();
    assert_eq!(app["type"], "app");
    let program = app["program"].as_str().unwrap();
    assert!(program.ends_with("/bin/lectic-nix-sandbox"), "{program}");
    let name = ok(&nix(&[
        "eval",
        "--raw",
        &format!("{flake}#packages.{system}.default.name"),
    ]));
    assert_eq!(
        name,
        format!("lectic-nix-sandbox-{}", env!("CARGO_PKG_VERSION"))
    );
    let built = ok(&nix(&[
        "build",
        "--no-link",
        "--json",
        &format!("{flake}#packages.{system}.default"),
    ]));
    assert!(built.contains("lectic-nix-sandbox"), "{built}");
    // Built by pkgsStatic's buildRustPackage, completions included.
    let v: serde_json::Value = serde_json::from_str(&built).unwrap();
    let out = v[0]["outputs"]["out"].as_str().unwrap();
    let o = std::process::Command::new(format!("{out}/bin/lectic-nix-sandbox"))
        .output()
        .unwrap();
    let says = stdout(&o);
    assert!(
        says.contains("fixture static build of Cargo.lock, with completions"),
        "{says}"
    );
    ok(&nix(&[
        "build",
        "--no-link",
        "--json",
        &format!("{flake}#devShells.{system}.default"),
    ]));
    let inputs = ok(&nix(&[
        "eval",
        "--json",
        &format!("{flake}#devShells.{system}.default.buildInputs"),
    ]));
    assert!(inputs.contains("glibc-static"), "{inputs}");
}
