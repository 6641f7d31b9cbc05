//! `--worktree`: each interlocutor works in a git worktree on a branch of
//! its own; the user's checkout and the rest of `.git` stay out of reach.
//! Real git on the host and inside (the fixture packages the host's git),
//! real Podman, rootful and rootless.

mod common;

use std::process::{Command, Output};

use common::*;

/// The host's git on the sandbox's repository, as the mode's user.
fn git(sb: &Sandbox, args: &[&str]) -> String {
    git_in(sb, &sb.work, args)
}

/// The host's git on the repository at `dir`, as the mode's user.
fn git_in(sb: &Sandbox, dir: &std::path::Path, args: &[&str]) -> String {
    let mut c = match sb.mode {
        Mode::Rootful => Command::new("git"),
        Mode::Rootless => {
            let mut c = Command::new("runuser");
            c.args(["-u", ROOTLESS_USER, "--", "git"]);
            c
        }
    };
    c.arg("-C")
        .arg(dir)
        .args(["-c", "user.name=u", "-c", "user.email=u@x"]);
    let o = c.args(args).output().unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A repository in the workdir: f.txt and sub/s committed on main, and an
/// untracked file of the user's.
fn repository(sb: &Sandbox) -> String {
    sb.write("work/f.txt", "hello\n");
    sb.write("work/sub/s", "s\n");
    git(sb, &["init", "-q", "-b", "main"]);
    git(sb, &["add", "f.txt", "sub"]);
    git(sb, &["commit", "-qm", "init"]);
    git(
        sb,
        &[
            "config",
            "remote.origin.url",
            "https://u:secret-token@example.com/r.git",
        ],
    );
    sb.write("work/mine.txt", "the user's\n");
    sb.write("work/staged.txt", "staged by the user\n");
    git(sb, &["add", "staged.txt"]);
    git(sb, &["rev-parse", "main"])
}

const IDENTITY: [&str; 8] = [
    "--env",
    "GIT_AUTHOR_NAME=agent",
    "--env",
    "GIT_AUTHOR_EMAIL=agent@x",
    "--env",
    "GIT_COMMITTER_NAME=agent",
    "--env",
    "GIT_COMMITTER_EMAIL=agent@x",
];

fn in_worktree(sb: &Sandbox, name: &str, script: &str) -> Output {
    let flag = format!("--worktree={name}");
    let mut args = vec![flag.as_str()];
    args.extend(IDENTITY);
    args.extend(["sh", "-c", script]);
    sb.run(&args)
}

both_modes!(
    two_interlocutors_commit_in_parallel_each_on_its_own_branch,
    |mode| {
        let sb = Sandbox::new(mode, "wt-parallel");
        let main = repository(&sb);
        // Two interlocutors, and a third first call, of B's, at once that
        // only looks: B's worktree is made once.
        let calls: Vec<_> = [("A", true), ("B", true), ("B", false)]
            .map(|(name, commits)| {
                let flag = format!("--worktree={name}");
                let mut args: Vec<String> = vec![flag];
                args.extend(IDENTITY.map(String::from));
                let commit = format!("echo {name} >> f.txt && git commit -qam 'from {name}' && ");
                let script = format!(
                    "{}git branch --show-current",
                    if commits { commit.as_str() } else { "" }
                );
                args.extend(["sh".into(), "-c".into(), script]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut cmd = sb.command(&args);
                cmd.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                (name, cmd.spawn().unwrap())
            })
            .into_iter()
            .collect();
        for (name, child) in calls {
            let o = wait_bounded(child, std::time::Duration::from_secs(300));
            assert_eq!(ok(&o), format!("lectic-worktree/{name}/work\n"));
        }
        let listed = git(&sb, &["worktree", "list", "--porcelain"]);
        assert_eq!(listed.matches("/.worktrees/").count(), 2, "{listed}");
        for name in ["A", "B"] {
            let branch = format!("lectic-worktree/{name}/work");
            assert_eq!(
                git(&sb, &["log", "-1", "--format=%s", &branch]),
                format!("from {name}\n")
            );
            assert_eq!(
                git(&sb, &["show", &format!("{branch}:f.txt")]),
                format!("hello\n{name}\n")
            );
        }
        // The user's checkout and branches are as they were.
        assert_eq!(git(&sb, &["rev-parse", "main"]), main);
        assert_eq!(git(&sb, &["branch", "--show-current"]), "main\n");
        assert_eq!(
            std::fs::read_to_string(sb.work.join("f.txt")).unwrap(),
            "hello\n"
        );
        assert_eq!(
            git(&sb, &["status", "--porcelain"]),
            "A  staged.txt\n?? mine.txt\n"
        );
        git(&sb, &["fsck", "--full", "--no-progress"]);
    }
);

both_modes!(
    from_inside_nothing_else_of_the_repository_can_be_changed,
    |mode| {
        let sb = Sandbox::new(mode, "wt-inside");
        repository(&sb);
        let g = sb.work.join(".git");
        // The worktree exists from the first call on.
        ok(&in_worktree(&sb, "A", "true"));
        let gitdir = g.join("worktrees/A");
        let branch = g.join("refs/heads/lectic-worktree/A/work");
        let watched = [
            g.join("config"),
            g.join("HEAD"),
            g.join("refs/heads/main"),
            g.join("info/exclude"),
            g.join("description"),
            gitdir.join("HEAD"),
            gitdir.join("commondir"),
            gitdir.join("gitdir"),
            gitdir.join("index"),
            branch.clone(),
        ];
        let before: Vec<_> = watched.iter().map(|p| std::fs::read(p).ok()).collect();
        let wt = sb.work.join(".worktrees/A");
        let script = format!(
            "for f in {g}/hooks/pre-commit {g}/config {g}/refs/heads/main {g}/packed-refs \
               {g}/refs/heads/other {g}/info/exclude {g}/objects/info/alternates {wt}/.git; do \
               (echo x > $f) 2>/dev/null && echo \"wrote $f\"; done; \
             mv {g}/refs/heads/main {g}/refs/heads/gone 2>/dev/null && echo moved; \
             rm -rf {g}/hooks 2>/dev/null; cat {work}/f.txt {work}/mine.txt 2>/dev/null; \
             grep -r secret-token {g}/config; git config remote.origin.url; \
             GIT_INDEX_FILE={g}/index git ls-files 2>/dev/null; \
             echo new > new.txt; git status --porcelain; \
             echo 'ref: refs/heads/main' > {branch}; ln -sf {work}/mine.txt {g}/logs/refs/heads/lectic-worktree/A/work; \
             echo 'ref: refs/heads/main' > {gd}/HEAD; echo /tmp > {gd}/commondir",
            g = g.display(),
            gd = gitdir.display(),
            wt = wt.display(),
            work = sb.work.display(),
            branch = branch.display(),
        );
        let o = in_worktree(&sb, "A", &script);
        // Only the worktree's own change shows; the user's checkout is not
        // there at all (its files cannot be read).
        assert_eq!(ok(&o), "?? new.txt\n");
        // What the command's git wrote of its state stays its own: the
        // branch is no symbolic ref to the user's, HEAD and commondir of
        // the host's worktree are as git made them.
        let after: Vec<_> = watched.iter().map(|p| std::fs::read(p).ok()).collect();
        assert_eq!(before, after);
        assert!(!g.join("hooks/pre-commit").exists() && g.join("hooks").is_dir());
        assert!(!g.join("packed-refs").exists() && !g.join("refs/heads/other").exists());
        // The user commits in the worktree on the host: their branch and
        // files stay as they were.
        let main = git(&sb, &["rev-parse", "main"]);
        let wt_git = |args: &[&str]| {
            let mut all = vec!["-C", ".worktrees/A"];
            all.extend(args);
            git(&sb, &all)
        };
        assert_eq!(
            wt_git(&["branch", "--show-current"]),
            "lectic-worktree/A/work\n"
        );
        wt_git(&["commit", "-qm", "by the user", "--allow-empty"]);
        assert_eq!(git(&sb, &["rev-parse", "main"]), main);
        assert_eq!(
            std::fs::read_to_string(sb.work.join("mine.txt")).unwrap(),
            "the user's\n"
        );
        assert!(
            std::fs::read_to_string(wt.join(".git"))
                .unwrap()
                .starts_with("gitdir: ")
        );
    }
);

both_modes!(
    an_object_forged_inside_cannot_replace_one_of_the_users,
    |mode| {
        let sb = Sandbox::new(mode, "wt-forge");
        repository(&sb);
        ok(&in_worktree(&sb, "A", "true"));
        // A pack whose index files blob "evil" under the name of the user's
        // f.txt: git reads packs (its alternates' too) before loose
        // objects and does not check a packed object's hash on reading.
        let target = git(&sb, &["rev-parse", "main:f.txt"]);
        let target = target.trim().to_owned();
        let scratch = sb.mkdir("scratch-objects");
        sb.write("evil.txt", "evil\n");
        let with_scratch = |args: &[&str], stdin: Option<&str>| {
            let mut c = Command::new("git");
            c.env("GIT_OBJECT_DIRECTORY", &scratch)
                .args(["-c", "safe.directory=*", "-C"])
                .arg(&sb.work)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            std::io::Write::write_all(&mut input, stdin.unwrap_or("").as_bytes()).unwrap();
            drop(input);
            stdout(&child.wait_with_output().unwrap()).trim().to_owned()
        };
        let evil_file = sb.dir.join("evil.txt").display().to_string();
        let evil = with_scratch(&["hash-object", "-w", &evil_file], None);
        let base = scratch.join("p").display().to_string();
        let name = with_scratch(&["pack-objects", "-q", &base], Some(&format!("{evil}\n")));
        let pack = std::fs::read(format!("{base}-{name}.pack")).unwrap();
        let mut idx = std::fs::read(format!("{base}-{name}.idx")).unwrap();
        // Index v2 of one object: the fan-out table, then its name.
        let first = u8::from_str_radix(&target[..2], 16).unwrap() as usize;
        for i in 0..256 {
            let n: u32 = (i >= first).into();
            idx[8 + 4 * i..12 + 4 * i].copy_from_slice(&n.to_be_bytes());
        }
        for (i, b) in (0..20)
            .map(|i| u8::from_str_radix(&target[2 * i..2 * i + 2], 16).unwrap())
            .enumerate()
        {
            idx[8 + 1024 + i] = b;
        }
        let wt = sb.work.join(".worktrees/A");
        std::fs::write(wt.join("pack-forged.pack"), pack).unwrap();
        std::fs::write(wt.join("pack-forged.idx"), idx).unwrap();
        sb.give_to_user(&wt);
        let script = "mkdir -p $GIT_OBJECT_DIRECTORY/pack && mv pack-forged.* $GIT_OBJECT_DIRECTORY/pack/ && \
             git cat-file -p HEAD:f.txt && git commit -qm touch --allow-empty && echo done";
        // Inside, the forgery works on the command's own git only.
        assert_eq!(ok(&in_worktree(&sb, "A", script)), "evil\ndone\n");
        let target = target.as_str();
        let evil = evil.as_str();

        // Taken in under the name its content hashes to: the user's blob
        // is still theirs.
        assert_eq!(git(&sb, &["cat-file", "-p", target]), "hello\n");
        assert_eq!(git(&sb, &["cat-file", "-t", evil]), "blob\n");
        git(&sb, &["checkout", "-q", "--", "f.txt"]);
        assert_eq!(
            std::fs::read_to_string(sb.work.join("f.txt")).unwrap(),
            "hello\n"
        );
        assert!(!sb.work.join(".git/objects/info/alternates").exists());
        git(&sb, &["fsck", "--full", "--no-progress"]);
    }
);

both_modes!(
    a_worktree_removed_by_hand_comes_back_and_remove_keeps_its_commits,
    |mode| {
        let sb = Sandbox::new(mode, "wt-remove");
        let main = repository(&sb);
        ok(&in_worktree(
            &sb,
            "A",
            "echo A > a.txt && git add a.txt && git commit -qm 'from A'",
        ));
        let wt = sb.work.join(".worktrees/A");
        std::fs::remove_dir_all(&wt).unwrap();
        // Made again on its branch: the commit is there.
        let o = in_worktree(&sb, "A", "git log -1 --format=%s; cat a.txt");
        assert_eq!(ok(&o), "from A\nA\n");
        // Not merged: the branch stays, with its commits in the repository.
        let o = sb.run(&["--worktree=A", "--remove"]);
        assert!(
            ok(&o).contains("kept branch lectic-worktree/A/work"),
            "{}",
            stdout(&o)
        );
        assert!(!wt.exists());
        assert!(!sb.work.join(".git/objects/info/alternates").exists());
        assert_eq!(
            git(&sb, &["log", "-1", "--format=%s", "lectic-worktree/A/work"]),
            "from A\n"
        );
        git(&sb, &["fsck", "--full", "--no-progress"]);
        // Merged: it goes.
        git(&sb, &["merge", "-q", "--ff-only", "lectic-worktree/A/work"]);
        ok(&in_worktree(&sb, "A", "true"));
        let o = sb.run(&["--worktree=A", "--remove"]);
        assert!(ok(&o).contains("removed branch lectic-worktree/A/work (merged)"));
        assert_ne!(git(&sb, &["rev-parse", "main"]), main);
        assert_eq!(git(&sb, &["branch", "--list", "lectic-worktree/*"]), "");
        git(&sb, &["fsck", "--full", "--no-progress"]);
    }
);

both_modes!(
    bad_names_and_a_workdir_outside_git_are_one_line_errors,
    |mode| {
        let sb = Sandbox::new(mode, "wt-bad");
        for name in ["a/b", "..", ".hidden", "two words"] {
            let o = sb.run(&[&format!("--worktree={name}"), "true"]);
            assert_eq!(o.status.code(), Some(125), "{name}");
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("--worktree=NAME"), "{err}");
        }
        let o = sb.run(&["--worktree", "A", "--remove"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("`--worktree=A --remove`"),
            "{}",
            stderr(&o)
        );
        let o = sb.run(&["--worktree", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("is not in a git repository"),
            "{}",
            stderr(&o)
        );
        assert_eq!(stderr(&o).lines().count(), 1);
    }
);

both_modes!(
    a_sparse_file_left_as_an_object_is_not_read_on_the_host,
    |mode| {
        let sb = Sandbox::new(mode, "wt-sparse");
        repository(&sb);
        // 4 GiB that cost the command nothing: the host neither reads nor
        // copies it, says so once, and the repository stays whole.
        let script = "mkdir -p $GIT_OBJECT_DIRECTORY/ab && \
        dd if=/dev/zero of=$GIT_OBJECT_DIRECTORY/ab/cdef0123456789abcdef0123456789abcdef01 bs=1M seek=4096 count=0 2>/dev/null && \
        echo done";
        let o = in_worktree(&sb, "A", script);
        assert_eq!(ok(&o), "done\n");
        assert!(
            stderr(&o).contains("left out of the repository"),
            "{}",
            stderr(&o)
        );
        let o = in_worktree(&sb, "A", "true");
        assert_eq!(stderr(&o), "", "said once");
        git(&sb, &["fsck", "--no-progress"]);
    }
);

both_modes!(
    the_commands_tree_is_checked_out_on_the_host_with_no_filter_and_bounded,
    |mode| {
        let sb = Sandbox::new(mode, "wt-filter");
        repository(&sb);
        // A filter driver of the user's repository, and a command that
        // sends every file through it.
        let marker = sb.dir.join("filter-ran");
        let driver = format!("touch {}; cat", marker.display());
        git(&sb, &["config", "filter.user.smudge", &driver]);
        git(&sb, &["config", "filter.user.clean", "cat"]);
        let o = in_worktree(
            &sb,
            "A",
            "echo '* filter=user' > .gitattributes && git add .gitattributes && \
             git commit -qm attrs && echo done",
        );
        assert_eq!(ok(&o), "done\n");
        // Made again from the command's branch: its files come back, and
        // the user's filter does not run on them.
        std::fs::remove_dir_all(sb.work.join(".worktrees/A")).unwrap();
        let o = in_worktree(&sb, "A", "cat .gitattributes f.txt");
        assert_eq!(ok(&o), "* filter=user\nhello\n");
        assert!(
            !marker.exists(),
            "the user's filter ran on the command's files"
        );
        // A tree of 2.56 million paths in 5 small objects: the branch moves,
        // the host does not list them all into an index.
        let bomb = "B=$(echo x | git hash-object -w --stdin); \
            mk(){ i=0; while [ $i -lt 40 ]; do printf \"$1 $2 $3\\tf%03d\\n\" $i; i=$((i+1)); done | git mktree; }; \
            T=$(mk 100644 blob $B); for d in 1 2 3; do T=$(mk 040000 tree $T); done; \
            git update-ref HEAD $(git commit-tree -p HEAD -m bomb $T) && echo done";
        let o = in_worktree(&sb, "A", bomb);
        assert_eq!(ok(&o), "done\n");
        assert!(
            stderr(&o).contains("has more than 1000000 files"),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            git(&sb, &["log", "-1", "--format=%s", "lectic-worktree/A/work"]),
            "bomb\n"
        );
        let index = sb.work.join(".git/worktrees/A/index");
        assert!(std::fs::metadata(index).unwrap().len() < 1 << 20);
    }
);

both_modes!(
    a_commit_naming_an_object_a_partial_clone_lacks_fetches_nothing,
    |mode| {
        // The user's remote, and the workdir a blob-less clone of it: the
        // first version of s.txt is there, not here.
        let sb = Sandbox::new(mode, "wt-lazy");
        let remote = sb.mkdir("remote");
        sb.write("remote/s.txt", "secret v1\n");
        git_in(&sb, &remote, &["init", "-q", "-b", "main"]);
        git_in(&sb, &remote, &["config", "uploadpack.allowFilter", "true"]);
        git_in(&sb, &remote, &["add", "s.txt"]);
        git_in(&sb, &remote, &["commit", "-qm", "v1"]);
        sb.write("remote/s.txt", "v2\n");
        git_in(&sb, &remote, &["commit", "-qam", "v2"]);
        let url = format!("file://{}", remote.display());
        let work = sb.work.display().to_string();
        git_in(
            &sb,
            &sb.dir,
            &["clone", "-q", "--filter=blob:none", &url, &work],
        );
        let old = git_in(&sb, &remote, &["rev-parse", "HEAD~1:s.txt"]);
        let old = old.trim();
        let missing = || {
            let mut c = Command::new("git");
            c.args([
                "-c",
                "safe.directory=*",
                "-c",
                "protocol.allow=never",
                "-C",
                &work,
            ])
            .args(["cat-file", "-e", old]);
            !c.output().unwrap().status.success()
        };
        assert!(missing());
        // The command names it in a commit of its branch.
        let script = format!(
            "T=$(printf '100644 blob {old}\\tstolen.txt\\n' | git mktree --missing) && \
             git update-ref HEAD $(git commit-tree $T -p HEAD -m steal) && echo done"
        );
        let o = in_worktree(&sb, "A", &script);
        assert_eq!(ok(&o), "done\n");
        assert!(stderr(&o).contains("does not have whole"), "{}", stderr(&o));
        // The host's git fetched nothing on its behalf, and the branch stays.
        assert!(missing(), "the blob was fetched from the user's remote");
        assert_eq!(
            git(&sb, &["log", "-1", "--format=%s", "lectic-worktree/A/work"]),
            "v2\n"
        );
    }
);

/// SHA-1 of `bytes`, by the host's sha1sum (no SHA-1 crate here).
fn sha1(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let hex = stdout(&child.wait_with_output().unwrap());
    (0..20)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `data` as a zlib stream of stored (uncompressed) blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(*chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

/// A pack of two objects, 64 KiB of zeros and a delta against it that
/// claims `claimed` bytes (one byte per 64 KiB copied), and its index,
/// which files the delta under a made-up name.
fn delta_bomb(claimed: u64) -> (Vec<u8>, Vec<u8>) {
    let varint = |mut n: u64| {
        let mut v = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            v.push(if n > 0 { b | 0x80 } else { b });
            if n == 0 {
                return v;
            }
        }
    };
    // Pack object header: type and size, size continued 7 bits a byte.
    let header = |kind: u8, size: u64| {
        let mut h = vec![(kind << 4) | (size & 0x0f) as u8];
        let mut rest = size >> 4;
        while rest > 0 {
            *h.last_mut().unwrap() |= 0x80;
            h.push((rest & 0x7f) as u8);
            rest >>= 7;
        }
        h
    };
    let base = vec![0u8; 0x10000];
    let mut blob = header(3, base.len() as u64);
    blob.extend(zlib_stored(&base));
    // A copy of offset 0 and size 0 (that is, 0x10000) is the byte 0x80.
    let copies = claimed / 0x10000;
    let mut delta = varint(base.len() as u64);
    delta.extend(varint(copies * 0x10000));
    delta.extend(std::iter::repeat_n(0x80u8, copies as usize));
    let mut ofs = header(6, delta.len() as u64);
    // How far back the base lies, as git encodes it.
    let mut back = blob.len() as u64;
    let mut distance = vec![(back & 0x7f) as u8];
    back >>= 7;
    while back > 0 {
        back -= 1;
        distance.insert(0, 0x80 | (back & 0x7f) as u8);
        back >>= 7;
    }
    ofs.extend(distance);
    ofs.extend(zlib_stored(&delta));
    let mut pack = b"PACK".to_vec();
    pack.extend(2u32.to_be_bytes());
    pack.extend(2u32.to_be_bytes());
    let (at_blob, at_ofs) = (pack.len() as u32, (pack.len() + blob.len()) as u32);
    pack.extend(&blob);
    pack.extend(&ofs);
    let trailer = sha1(&pack);
    pack.extend(&trailer);
    let mut blob_id = format!("blob {}\0", base.len()).into_bytes();
    blob_id.extend(&base);
    let mut entries = [
        (sha1(&blob_id), crc32(&blob), at_blob),
        (vec![0x11; 20], crc32(&ofs), at_ofs),
    ];
    entries.sort();
    let mut idx = vec![0xff, b't', b'O', b'c'];
    idx.extend(2u32.to_be_bytes());
    for i in 0..=255u8 {
        let n = entries.iter().filter(|e| e.0[0] <= i).count() as u32;
        idx.extend(n.to_be_bytes());
    }
    for e in &entries {
        idx.extend(&e.0);
    }
    for e in &entries {
        idx.extend(e.1.to_be_bytes());
    }
    for e in &entries {
        idx.extend(e.2.to_be_bytes());
    }
    idx.extend(&trailer);
    let sum = sha1(&idx);
    idx.extend(sum);
    (pack, idx)
}

both_modes!(
    a_pack_of_deltas_claiming_gigabytes_is_refused_within_bounds,
    |mode| {
        let sb = Sandbox::new(mode, "wt-delta-bomb");
        repository(&sb);
        ok(&in_worktree(&sb, "A", "true"));
        // 48 KiB that claim 3 GiB once resolved: the host's git stops at its
        // bound (2 GiB) instead of taking it.
        let (pack, idx) = delta_bomb(3 << 30);
        let wt = sb.work.join(".worktrees/A");
        std::fs::write(wt.join("pack-bomb.pack"), pack).unwrap();
        std::fs::write(wt.join("pack-bomb.idx"), idx).unwrap();
        sb.give_to_user(&wt);
        let o = in_worktree(
            &sb,
            "A",
            "mkdir -p $GIT_OBJECT_DIRECTORY/pack && mv pack-bomb.* $GIT_OBJECT_DIRECTORY/pack/ && echo done",
        );
        assert_eq!(ok(&o), "done\n");
        assert!(
            stderr(&o).contains("taking what the command's git wrote into the repository failed"),
            "{}",
            stderr(&o)
        );
        // Said once; the repository is whole.
        assert_eq!(stderr(&in_worktree(&sb, "A", "true")), "");
        git(&sb, &["fsck", "--no-progress"]);
    }
);
