//! Our flake's root filesystem runs in place from the Nix store: no image
//! in Podman, only its closure under /nix/store, nothing writable, a GC
//! root that `--gc` drops; rootful and rootless, both exec paths.

mod common;

use common::*;
use serde_json::Value;

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// The call's record, as its --status tells it.
fn root_of(sb: &Sandbox) -> Value {
    let v = json_of(&sb.run(&["--status", "--json"]));
    let roots = v["roots"].as_array().unwrap().clone();
    assert_eq!(roots.len(), 1, "{v}");
    roots[0].clone()
}

/// A store path that is surely in no closure of ours.
fn foreign_store_path(sb: &Sandbox) -> String {
    let file = sb.write("not-in-the-image", "x\n");
    let o = std::process::Command::new("nix-store")
        .arg("--add")
        .arg(&file)
        .output()
        .unwrap();
    let path = stdout(&o).trim().to_owned();
    assert!(path.starts_with("/nix/store/"), "{path}: {}", stderr(&o));
    path
}

each_path!(
    the_command_runs_on_the_store_path_with_only_its_closure_and_nothing_writable,
    |mode| {
        let sb = Sandbox::private(mode, "rootfs-closure");
        let foreign = foreign_store_path(&sb);
        let script = format!(
            "echo basics $(id -u) $(pwd) $HOME; \
             test -x /bin/sh && test -x /usr/bin/env && test -s /etc/ssl/certs/ca-bundle.crt && echo certs; \
             test -e {foreign} && echo FOREIGN-VISIBLE; \
             ls /nix/store | wc -l; \
             for p in / /nix/store /etc /bin /nix/store/$(ls /nix/store | head -1); do \
               touch $p/lns-probe 2>/dev/null && echo WRITABLE $p; mkdir $p/lns-dir 2>/dev/null && echo WRITABLE-DIR $p; \
             done; touch lns-workdir-ok && echo workdir-writable"
        );
        let out = ok(&sb.run(&["sh", "-c", &script]));
        let uid = sb.uid();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("basics {uid} {} /home/sandbox", sb.work.display())
        );
        assert_eq!(lines[1], "certs", "{out}");
        assert!(!out.contains("FOREIGN-VISIBLE"), "{out}");
        assert!(!out.contains("WRITABLE"), "{out}");
        assert!(out.ends_with("workdir-writable\n"), "{out}");
        // Exactly the closure under /nix/store.
        let root = root_of(&sb);
        assert_eq!(lines[2], root["closure_paths"].to_string(), "{out}");
        // No image in our Podman store, and no copy of the root anywhere.
        let o = store_podman(&sb)
            .args(["images", "--quiet"])
            .output()
            .unwrap();
        assert_eq!(stdout(&o), "", "{}", stderr(&o));
        assert!(root["in_store"].as_bool().unwrap(), "{root}");
        ok(&sb.run(&["--prune", "--all"]));
    }
);

both_modes!(
    gc_drops_the_gc_root_and_the_next_call_builds_the_record_again,
    |mode| {
        let sb = Sandbox::private(mode, "rootfs-gc");
        let c = sb.counting();
        assert_eq!(ok(&sb.run(&c.with(&["echo", "one"]))), "one\n");
        let gc_roots = sb.cache.join("nix-sandbox/gcroots");
        let links: Vec<_> = std::fs::read_dir(&gc_roots).unwrap().flatten().collect();
        assert_eq!(links.len(), 1);
        let target = std::fs::read_link(links[0].path()).unwrap();
        assert_eq!(target.to_str().unwrap(), root_of(&sb)["rootfs"]);
        // Nix itself counts it as a root of the store path.
        let roots = || {
            let o = std::process::Command::new("nix-store")
                .args(["--query", "--roots"])
                .arg(&target)
                .output()
                .unwrap();
            stdout(&o)
        };
        let link = links[0].path().display().to_string();
        assert!(roots().contains(&link), "{}", roots());
        // Kept while used, and says why.
        let text = ok(&sb.run(&["--gc"]));
        assert!(
            text.contains("kept root filesystem") && text.contains("warm container"),
            "{text}"
        );
        ok(&sb.run(&["--prune", "--all"]));
        let v = json_of(&sb.run(&["--gc", "--all", "--json"]));
        assert_eq!(v["records"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(std::fs::read_dir(&gc_roots).unwrap().count(), 0);
        assert!(!roots().contains(&link), "{}", roots());
        assert_eq!(ok(&sb.run(&c.with(&["echo", "two"]))), "two\n");
        assert_eq!(count_lines(&c.nix_log, " build "), 2);
        assert_eq!(std::fs::read_dir(&gc_roots).unwrap().count(), 1);
        ok(&sb.run(&["--prune", "--all"]));
    }
);

both_modes!(
    a_one_shot_call_runs_on_the_store_path_and_leaves_no_skeleton,
    |mode| {
        let sb = Sandbox::private(mode, "rootfs-once");
        let out = ok(&sb.run(&[
            "--no-keep-warm",
            "sh",
            "-c",
            "touch /x 2>/dev/null || echo ro; ls /nix/store | wc -l",
        ]));
        let root = root_of(&sb);
        assert_eq!(out, format!("ro\n{}\n", root["closure_paths"]));
        let tmp = sb.cache.join("nix-sandbox/tmp");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("root-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
);

both_modes!(
    a_flake_with_a_container_rootfs_runs_in_place_and_loads_nothing,
    |mode| {
        let sb = Sandbox::private(mode, "rootfs-flake");
        let c = sb.counting();
        // A root filesystem of the fixture's busybox and a marker file.
        sb.write(
            "own/flake.nix",
            r#"{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  outputs = { self, nixpkgs }:
    let pkgs = nixpkgs.legacyPackages.x86_64-linux; in {
      packages.x86_64-linux.containerRootfs = pkgs.runCommand "own-rootfs" { } ''
        mkdir -p $out/bin $out/etc
        for a in sh cat echo sleep stat date flock; do
          ln -s ${pkgs.busybox}/bin/busybox $out/bin/$a
        done
        echo own-rootfs > $out/etc/marker
      '';
    };
}
"#,
        );
        let flake = format!("path:{}", sb.dir.join("own").display());
        let out = ok(&sb.run(&c.with(&["--flake", &flake, "cat", "/etc/marker"])));
        assert_eq!(out, "own-rootfs\n");
        assert_eq!(count_lines(&c.podman_log, " load "), 0);
        let root = root_of(&sb);
        assert!(
            root["rootfs"].as_str().unwrap().ends_with("-own-rootfs"),
            "{root}"
        );
        ok(&sb.run(&["--prune", "--all"]));
    }
);

both_modes!(
    writable_root_lets_the_root_change_but_never_the_store,
    |mode| {
        let sb = Sandbox::private(mode, "rootfs-writable");
        for once in [&[][..], &["--no-keep-warm"][..]] {
            let mut args = vec!["--writable-root"];
            args.extend(once);
            args.extend([
                "sh",
                "-c",
                "mkdir -p /opt/new && touch /opt/new/f /etc/new && echo root-writable; \
             touch /bin/x /nix/store/x 2>/dev/null || echo store-read-only",
            ]);
            assert_eq!(ok(&sb.run(&args)), "root-writable\nstore-read-only\n");
        }
        // What the command wrote goes with its container.
        ok(&sb.run(&["--prune", "--all"]));
        ok(&sb.run(&["--gc"]));
        let mut left = vec![];
        for e in std::fs::read_dir(sb.cache.join("nix-sandbox/warm"))
            .unwrap()
            .flatten()
        {
            if e.path().join("root/opt").exists() {
                left.push(e.path());
            }
        }
        assert!(left.is_empty(), "{left:?}");
    }
);
