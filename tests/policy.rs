//! The policy file: defaults for options, project roots, managed env and
//! their precedence, `--show-config`, and its errors; rootful and rootless.

mod common;

use common::*;
use serde_json::Value;

/// A sandbox whose `$LECTIC_CONFIG/nix-sandbox.yaml` is `yaml`.
fn with_policy(mode: Mode, test: &str, yaml: &str) -> Sandbox {
    let mut sb = Sandbox::new(mode, test);
    sb.write("config/nix-sandbox.yaml", yaml);
    sb.extra_env.push((
        "LECTIC_CONFIG".into(),
        sb.dir.join("config").display().to_string(),
    ));
    sb
}

both_modes!(
    policy_options_are_defaults_and_the_command_line_wins,
    |mode| {
        let sb = with_policy(mode, "pol-opts", "tmp_size: 32m\nallow_net: true\n");
        let probe = "df -k /tmp | tail -1 | awk '{print $2}'; ls /sys/class/net | wc -l";
        assert_eq!(ok(&sb.run(&["sh", "-c", probe])), "32768\n2\n");
        assert_eq!(
            ok(&sb.run(&["--tmp-size", "16m", "sh", "-c", probe])),
            "16384\n2\n"
        );
        // --config names another file instead.
        let other = sb.write("other.yaml", "tmp_size: 8m\n");
        let o = sb.run(&["--config", other.to_str().unwrap(), "sh", "-c", probe]);
        assert_eq!(ok(&o), "8192\n1\n");
    }
);

both_modes!(project_roots_admit_only_the_users_own_directories, |mode| {
    let mut sb = Sandbox::new(mode, "pol-roots");
    let mine = sb.mkdir("work/mine");
    let theirs = sb.mkdir("theirs");
    let user = match mode {
        Mode::Rootful => "root",
        Mode::Rootless => ROOTLESS_USER,
    };
    // The user's own list beats the default list, which admits `theirs`.
    let yaml = format!(
        "project_roots: [{}]\nusers:\n  {user}:\n    project_roots:\n      - {}\n",
        theirs.display(),
        sb.work.display()
    );
    sb.write("config/nix-sandbox.yaml", &yaml);
    sb.extra_env.push((
        "LECTIC_CONFIG".into(),
        sb.dir.join("config").display().to_string(),
    ));
    assert_eq!(ok(&sb.run(&["pwd"])), format!("{}\n", sb.work.display()));
    ok(&sb.run(&["-d", mine.to_str().unwrap(), "true"]));
    std::os::unix::fs::symlink(&theirs, sb.work.join("link-out")).unwrap();
    let up = format!("{}/mine/../../theirs", sb.work.display());
    let link = sb.work.join("link-out").display().to_string();
    for args in [
        vec!["-d", theirs.to_str().unwrap(), "true"],
        vec!["--volume", &up, "true"],
        vec!["--volume", &link, "true"],
        vec!["-d", "link-out", "true"],
    ] {
        let o = sb.run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("outside your project roots")
                && err.contains(&sb.work.display().to_string())
                && err.contains("nix-sandbox.yaml:4"),
            "{args:?}: {err}"
        );
    }
});

both_modes!(
    an_unlisted_user_gets_no_roots_when_there_is_no_default,
    |mode| {
        let sb = with_policy(
            mode,
            "pol-nobody",
            "users:\n  someone-else:\n    project_roots: [/tmp]\n",
        );
        let o = sb.run(&["true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("outside your project roots (none for you"),
            "{}",
            stderr(&o)
        );
    }
);

both_modes!(environment_levels_apply_in_the_documented_order, |mode| {
    let mut sb = with_policy(
        mode,
        "pol-env",
        "env:\n  P: policy\n  F: policy\n  C: policy\n  E: policy\nenv_files: [managed.env]\n",
    );
    sb.write(
        "config/managed.env",
        "F=policy-file\nC=policy-file\nE=policy-file\n",
    );
    let cli_file = sb.write("cli.env", "E=cli-file\n");
    for name in ["H", "P", "F", "C", "E"] {
        sb.extra_env.push((name.into(), "host".into()));
    }
    let script = "echo $H $P $F $C $E";
    let o = sb.run(&[
        "--pass-env",
        "?",
        "--env",
        "C=cli",
        "--env",
        "E=cli",
        "--env-file",
        cli_file.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(ok(&o), "host policy policy-file cli cli-file\n");
    let v: Value = serde_json::from_str(&ok(&sb.run(&[
        "--pass-env",
        "?",
        "--show-config",
        "--json",
    ])))
    .unwrap();
    let source = |n: &str| {
        v["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .map(|e| e["source"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(source("H"), "host");
    assert!(source("P").starts_with("policy env ("), "{v}");
    assert!(source("F").starts_with("policy env file "), "{v}");
});

both_modes!(show_config_says_where_each_value_comes_from, |mode| {
    let sb = with_policy(mode, "pol-show", "# defaults\nmemory: 2g\npids_limit: 99\n");
    let text = ok(&sb.run(&["--pids-limit", "50", "--show-config"]));
    let file = sb.dir.join("config/nix-sandbox.yaml").display().to_string();
    let line = |opt: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(opt))
            .unwrap_or_else(|| panic!("{opt} in {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("--memory"), format!("--memory 2g ({file}:2)"));
    assert_eq!(line("--pids-limit"), "--pids-limit 50 (command line)");
    assert_eq!(line("--tmp-size"), "--tmp-size 1g (default)");
    assert!(text.contains(&format!("Config file: {file}")), "{text}");
    assert!(text.contains("Project roots: any directory"), "{text}");
    // Every option shows, with the value the call really gets.
    assert_eq!(line("--keep-warm"), "--keep-warm true (default)");
    assert_eq!(line("--warm-ttl"), "--warm-ttl 15m (default)");
    assert!(line("--workdir").contains("(default)"), "{text}");
    assert!(line("--home").contains("one per configuration"), "{text}");
    assert!(line("--lock-timeout").contains("1h for builds"), "{text}");
    assert!(
        !text.contains("--no-keep-warm"),
        "one line per setting: {text}"
    );
    let v: Value = serde_json::from_str(&ok(&sb.run(&[
        "--no-keep-warm",
        "--warm-ttl-seconds",
        "60",
        "--env",
        "TOKEN=ghp_secret",
        "--show-config",
        "--json",
    ])))
    .unwrap();
    let option = |o: &str| {
        v["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["option"] == o)
            .unwrap_or_else(|| panic!("{o} in {v}"))
            .clone()
    };
    assert_eq!(option("--keep-warm")["value"], Value::Bool(false));
    assert_eq!(option("--keep-warm")["source"], "command line");
    assert_eq!(option("--allow-net")["value"], Value::Bool(false));
    assert_eq!(option("--warm-ttl")["value"], "1m");
    assert_eq!(option("--warm-ttl")["source"], "command line");
    assert_eq!(option("--pids-limit")["value"], "99");
    assert!(!v.to_string().contains("ghp_secret"), "{v}");
});

both_modes!(
    policy_mistakes_are_one_line_naming_file_line_and_key,
    |mode| {
        let sb = Sandbox::new(mode, "pol-bad");
        let cases = [
            (
                "allow_net: true\nno_such_key: 1\n",
                ":2: no_such_key: unknown key",
            ),
            (
                "memory: 1g\nallow_net: maybe\n",
                ":2: allow_net: expected true or false",
            ),
            ("pids_limit: many\n", ":1: pids_limit: invalid value 'many'"),
            (
                "env:\n  OK: 1\n  SSH_AUTH_SOCK: x\n",
                ":3: env.SSH_AUTH_SOCK",
            ),
            ("volumes: [\n", "not valid YAML"),
            ("env_files: [bad.env]\n", "bad.env:1: expected NAME=VALUE"),
        ];
        sb.write("bad.env", "not a pair\n");
        for (i, (yaml, expect)) in cases.iter().enumerate() {
            let file = sb.write(&format!("p{i}.yaml"), yaml);
            let o = sb.run(&["--config", file.to_str().unwrap(), "true"]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(125), "{yaml:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(expect), "{yaml:?}: {expect:?} in {err}");
        }
        let o = sb.run(&["--config", "/no/such.yaml", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("/no/such.yaml"), "{}", stderr(&o));
    }
);

both_modes!(
    allowed_hosts_from_the_policy_file_show_with_their_source,
    |mode| {
        let sb = with_policy(
            mode,
            "pol-hosts",
            "allow_hosts: [pypi.org, '*.pythonhosted.org']\n",
        );
        let v: Value = serde_json::from_str(&ok(&sb.run(&[
            "--allow-host",
            "example.org:8443",
            "--show-config",
            "--json",
        ])))
        .unwrap();
        let file = sb.dir.join("config/nix-sandbox.yaml").display().to_string();
        let setting = v["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["option"] == "--allow-host")
            .unwrap_or_else(|| panic!("{v}"));
        assert_eq!(
            setting["value"],
            serde_json::json!(["pypi.org", "*.pythonhosted.org", "example.org:8443"])
        );
        assert_eq!(setting["source"], format!("{file}:1 and command line"));
        // A pattern that is not one is refused, naming itself and the forms.
        let sb = with_policy(mode, "pol-hosts-bad", "allow_hosts: ['pypi org']\n");
        let o = sb.run(&["true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("--allow-host \"pypi org\": not a host name; give a host name"),
            "{}",
            stderr(&o)
        );
    }
);
