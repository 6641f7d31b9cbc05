"""Turns hyperfine JSON results into docs/benchmarks.md."""
import json, os, platform, subprocess, sys

d = sys.argv[1]

def load(name):
    return {r["command"]: r for r in json.load(open(os.path.join(d, name)))["results"]}

def ms(r):
    return f"{r['median'] * 1000:.1f} ms"

def table(rows, ref_name, results):
    ref = results[ref_name]["median"]
    out = ["| what | median | min | max | ratio to " + ref_name + " |", "|---|---|---|---|---|"]
    for name in rows:
        r = results[name]
        out.append(f"| {name} | {ms(r)} | {r['min'] * 1000:.1f} ms | {r['max'] * 1000:.1f} ms | {r['median'] / ref:.2f} |")
    return "\n".join(out)

warm, cold, run, par, keepid, loadr, scold, swarm, develop = (load(f + ".json") for f in ("warm", "cold", "run", "parallel", "keepid", "load", "stress-cold", "stress-warm", "develop"))
develop.update(load("develop-eval.json"))
stress = dict(scold); stress.update(swarm)
keepid.update(load("keepid-later.json"))
disk = {n: open(os.path.join(d, "disk-" + n)).read().strip() for n in ("loaded", "keepid")}
podman = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()
driver = open(os.path.join(d, "driver")).read().strip()
run_cold = dict(cold); run_cold.update(run)

agent, raw, direct = (warm[n]["median"] for n in ("warm call (agent)", "raw podman exec", "direct true"))
med = lambda n: par[n]["median"]
rss = {}
for n in ("parallel", "stress"):
    f = open(os.path.join(d, "rss-" + n)).read().split()
    rss[n] = (int(f[0]), int(f[1])) if len(f) == 2 else (0, 0)
rows = [
    ("warm call ≤ 0.1 × raw podman exec", f"{agent / raw:.3f} ×", agent <= 0.1 * raw),
    ("warm call within 15 ms of direct `true`", f"+{(agent - direct) * 1000:.1f} ms", agent - direct <= 0.015),
    ("16 parallel warm `true` ≤ 2 × one", f"{med('16 parallel warm calls') / med('1 warm call'):.2f} × (16 parallel direct `true`: {med('16 parallel direct true') / med('1 direct true'):.2f} ×)", med("16 parallel warm calls") <= 2 * med("1 warm call")),
    ("16 parallel warm `sleep 0.2` ≤ 2 × one", f"{med('16 parallel warm calls (sleep 0.2)') / med('1 warm call (sleep 0.2)'):.2f} ×", med("16 parallel warm calls (sleep 0.2)") <= 2 * med("1 warm call (sleep 0.2)")),
]
for n, when in (("parallel", "after the parallel runs"), ("stress", "after 64 parallel calls")):
    r, a = rss[n]
    rows.append((f"agent RSS ≤ 4 MiB ({when})", f"{r} KiB, of which {a} KiB private", 0 < r <= 4096))
zc = load("zero-copy.json"); zc.update(load("zero-copy-ref.json")); zc.update(load("zero-copy-load.json"))
zc_cold = zc["cold call, root filesystem from the Nix store"]["median"]
zc_load = zc["cold call, the same as an image (load, keep-id copy)"]["median"]
zc_ref = zc["container of a loaded image (keep-id copy made)"]["median"]
added_kib, closure_kib = (int(x) for x in open(os.path.join(d, "disk-rootfs")).read().split())
zc_rows = [
    ("cold call from the store ≤ 0.05 × the load path", f"{zc_cold / zc_load:.3f} ×", zc_cold <= 0.05 * zc_load),
    ("cold call from the store ≤ 1.5 × a container of a loaded image", f"{zc_cold / zc_ref:.2f} ×", zc_cold <= 1.5 * zc_ref),
    ("disk added ≤ 0.1 × the closure", f"{added_kib} KiB for a {closure_kib} KiB closure: {added_kib / max(closure_kib, 1):.3f} ×", added_kib <= 0.1 * closure_kib),
]
px = load("proxy-warm.json"); px.update(load("proxy-bulk.json"))
bulk_ratio = px["256 MiB, --allow-net"]["median"] / px["256 MiB, through the proxy"]["median"]
def ttfb(name):
    v = sorted(float(x) for x in open(os.path.join(d, "ttfb-" + name)).read().split())
    return v[len(v) // 2]
ttfb_gap = (ttfb("proxy") - ttfb("direct")) * 1000
prss, phwm, panon = (int(x) for x in open(os.path.join(d, "rss-proxy")).read().split())
px_rows = [
    ("bulk download through the proxy ≥ 0.8 × with --allow-net", f"{bulk_ratio:.2f} × (throughput)", bulk_ratio >= 0.8),
    ("time to first byte through the proxy − with --allow-net ≤ 2 ms", f"{ttfb_gap:+.2f} ms (medians of 50: {ttfb('proxy') * 1000:.2f} vs {ttfb('direct') * 1000:.2f} ms)", ttfb_gap <= 2),
    ("proxy RSS per container ≤ 4 MiB", f"{prss} KiB after the downloads (peak {phwm} KiB, {panon} KiB private)", prss <= 4096),
]
wt = load("worktree.json")
px_targets = "\n".join(f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in px_rows)
zc_targets = "\n".join(f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in zc_rows)
targets = "\n".join(f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in rows)

print(f"""# Benchmarks

Written by `scripts/bench` (hyperfine, rootless as an unprivileged user,
storage driver `{driver}`, {podman}, {os.cpu_count()} cores, kernel
{platform.release()}). Every figure stands beside a reference measured in
the same run; read the ratios, not the absolute times, since these machines
are noisy. The image is our real flake.nix built against the fixture
nixpkgs (busybox), so image-size-dependent costs are measured separately
on a synthetic image (below).

## Warm call

{table(["direct true", "start-up of our binary (--version)", "warm call (agent)", "warm call (--exec-via podman)", "raw podman exec"], "raw podman exec", warm)}

A warm call through the agent looks for the system policy (one failed
open), checks the paths of the cache and the run dir from `/` down (a
few `openat`/`fstat` per component, since another user must not be able
to swap them), reads the image record, takes the container's use lock, connects to the agent's socket, checks that the
listener is the agent recorded at creation (`SO_PEERCRED` and the pid's
start time) and waits for its "ready" (the proof the container runs), then
sends argv, env, cwd and its stdin, stdout and stderr; the agent forks and
execs the command inside the container, kills whatever the call left
behind (a scan of the container's `/proc`) and sends the exit status back.
No `nix` and no `podman` process. `--exec-via podman` (and a non-static
binary) makes it one `podman exec` instead, with the container's liveness
read from its watcher's `alive.lock`, and the leftovers killed from the
host.

## Warm call in a project's dev shell (--nix-develop)

{table(["warm call", "warm call, --nix-develop (cached dev shell)", "warm call, --nix-develop, evaluating the dev shell"], "warm call", develop)}

With the dev shell's environment cached (keyed by flake.nix and flake.lock)
a `--nix-develop` call starts no `nix` process: it hashes the two files,
reads the cached variables, and runs the command under a `sh` that puts
the shell's PATH in front (one more exec inside the container). The last
row is the same call with the cached environment removed before each run:
`nix print-dev-env` of the fixture project through the host's daemon, with
Nix's own evaluation cache warm and the shell already built: about what
the first call after a change to flake.nix pays when nothing new must be
built.

## Targets of the exec agent

| target | measured | met |
|---|---|---|
{targets}

## Cold call and one-shot call

{table(["cold call (build record, create)", "one-shot call (--no-keep-warm)", "raw podman run --rm"], "raw podman run --rm", run_cold)}

The cold call starts from an empty record and container (the Nix store
already holds the build, as after any first build): `nix build`
evaluation (with its GC root), `nix path-info` of the closure, the
container's skeleton root, container creation on it, exec. Nothing is
loaded: our root filesystem runs from the Nix store.

## Parallel warm calls

{table(["1 direct true", "16 parallel direct true", "1 warm call", "16 parallel warm calls", "1 warm call (sleep 0.2)", "16 parallel warm calls (sleep 0.2)", "16 parallel raw podman exec"], "1 warm call", par)}

Parallel calls of one configuration share the container's use lock and take
no other lock when the container runs; through the agent each is a
connection of its own (the agent serves each on a thread), so 16 calls cost
16 start-ups of our binary and 16 fork+execs, against Podman's 16
concurrent `exec`s (the last row). With `true` the calls are pure CPU, and
16 of them on {os.cpu_count()} cores cannot finish within twice the time of one: the
same holds for 16 direct `true`s (second row), the floor of the machine.
With a command that takes time (`sleep 0.2`) the ratio shows whether calls
wait for each other: they do not.

## Many calls at once

{table(["16 parallel cold calls, 4 configurations", "64 parallel warm calls, 4 configurations", "64 parallel raw podman exec, 4 containers"], "64 parallel raw podman exec, 4 containers", stress)}

Wall time of the whole batch (every call must succeed, or the run fails).
Cold: no image record and no container for any of the 4 configurations
(each with its own packages file, so its own root filesystem); the Nix
store already holds the builds. Each configuration builds and creates
once while its other calls wait on its locks. The end-to-end test
`sixteen_cold_then_sixty_four_warm_calls_...` checks the counts (4
builds, 0 loads, 4 containers, 0 failures).

## Choosing the user mapping: keep-id's first-container cost (images only)

A synthetic image of 20,000 small files (`scripts/bench-image.py`; the real
image cannot be built here without network access, and 20,000 is an
order-of-magnitude guess for bash, coreutils, git, curl, jq, util-linux and
their closure, not a count), loaded fresh before each run, then the first
container created from it:

{table(["first container, default mapping", "first container, --userns=keep-id", "later container, --userns=keep-id"], "first container, default mapping", keepid)}

Disk: the loaded image takes {disk["loaded"]} MB in the store; after the first keep-id
container, {disk["keepid"]} MB (Podman keeps a chowned copy of the layers for the mapping).

## Running from the Nix store: no load, no copy

The same 20,000 files as a Nix-built root filesystem (`scripts/bench-flake.nix`,
`#rootfs`) and as an image of it (`#image`), each through our binary with
`--flake`. A cold call here has its record built and the build in the Nix
store, but no container: from the store it makes the container's skeleton
root (symlinks and mount points) and creates the container on it, with the
closure bind-mounted read-only; as an image, the record's image is gone,
so the call loads it again and the first keep-id container copies it. The
reference is a container of the image once it is loaded and copied.

{table(["cold call, root filesystem from the Nix store", "cold call, the same as an image (load, keep-id copy)", "container of a loaded image (keep-id copy made)"], "container of a loaded image (keep-id copy made)", zc)}

| target | measured | met |
|---|---|---|
{zc_targets}

Disk added is what our cache and Podman's store grew by when the first
container of the root filesystem was made (`du` of the cache, Podman's
store inside it): the skeleton root, the record, the GC root and Podman's
container state. The closure stays where Nix put it.

## Only some hosts: the --allow-host proxy

A server in a network namespace of the bench's own (behind a veth pair,
sending with `sendfile`), reached by the fixture's curl inside a warm
container: through the proxy (`--allow-host 10.233.0.2:8080`: the agent
hands each connection to the host's proxy, which relays it) and directly
with `--allow-net` (rootless: slirp4netns). Both rows of the download
include the warm call (a few ms).

{table(["warm call", "warm call, --allow-host", "256 MiB, --allow-net", "256 MiB, through the proxy"], "warm call", px)}

| target | measured | met |
|---|---|---|
{px_targets}

A warm call with `--allow-host` costs one more `flock` (is the proxy
alive?) and two small reads. Time to first byte is curl's
`time_starttransfer` for a 3-byte response, 50 requests in one call.
The proxy's RSS is mostly this binary's pages (shared with every other
process of it); its private part is what the proxy itself holds.

## A worktree per interlocutor: --worktree

A repository of one commit: a warm call in its worktree (the host's `git
rev-parse` to find the repository, a lock, the carry-over's small reads)
against the plain warm call; and a call whose command commits (the
carry-over then runs `git pack-objects | git index-pack`, `git rev-list`,
`git update-ref` and `git read-tree` on the host) against the same commit
by git alone on the host.

{table(["warm call", "warm call, --worktree", "a commit on the host (git alone)", "a commit inside, --worktree (with the carry-over)"], "warm call", wt)}

## Loading: file versus stream

{table(["podman load -i (file)", "podman load (stdin)"], "podman load -i (file)", loadr)}

The same 20,000-file archive, loaded from a file and from a pipe. What a
streamed image saves is on the build side: no image tarball is written to
(or compressed into) the Nix store. That needs real nixpkgs to measure and
is not measured here.
""")
