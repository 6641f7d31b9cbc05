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

warm, cold, run, par, keepid, loadr, scold, swarm = (load(f + ".json") for f in ("warm", "cold", "run", "parallel", "keepid", "load", "stress-cold", "stress-warm"))
stress = dict(scold); stress.update(swarm)
keepid.update(load("keepid-later.json"))
disk = {n: open(os.path.join(d, "disk-" + n)).read().strip() for n in ("loaded", "keepid")}
podman = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()
driver = open(os.path.join(d, "driver")).read().strip()
run_cold = dict(cold); run_cold.update(run)

print(f"""# Benchmarks

Written by `scripts/bench` (hyperfine, rootless as an unprivileged user,
storage driver `{driver}`, {podman}, {os.cpu_count()} cores, kernel
{platform.release()}). Every figure stands beside a reference measured in
the same run; read the ratios, not the absolute times, since these machines
are noisy. The image is our real flake.nix built against the fixture
nixpkgs (busybox), so image-size-dependent costs are measured separately
on a synthetic image (below).

## Warm call

{table(["direct true", "warm call (podman exec path)", "raw podman exec"], "raw podman exec", warm)}

A warm call is one `podman exec`, after reading the image record and
taking the container's use lock; whether the container runs is read from
its watcher's `alive.lock`, so no `nix` process and no `podman inspect`.
Issue 5 (the in-container agent) removes the podman process from this
path too.

## Cold call and one-shot call

{table(["cold call (build record, load, create)", "one-shot call (--no-keep-warm)", "raw podman run --rm"], "raw podman run --rm", run_cold)}

The cold call starts from an empty record and container (the Nix store
already holds the build, as after any first build): `nix build`
evaluation, `podman load` of the streamed image, `podman tag`, container
creation, exec.

## Parallel warm calls

{table(["1 warm call", "16 parallel warm calls", "16 parallel raw podman exec"], "1 warm call", par)}

Parallel calls of one configuration share the container's use lock and take
no other lock when the container runs, so what remains is Podman's own cost
of 16 concurrent `exec`s on 2 cores (compare the last two rows).

## Many calls at once

{table(["16 parallel cold calls, 4 configurations", "64 parallel warm calls, 4 configurations", "64 parallel raw podman exec, 4 containers"], "64 parallel raw podman exec, 4 containers", stress)}

Wall time of the whole batch (every call must succeed, or the run fails).
Cold: no image record and no container for any of the 4 configurations
(each with its own packages file, so its own image); the Nix store already
holds the builds. Each configuration builds, loads and creates once while
its other calls wait on its locks; loads are one at a time. The
end-to-end test `sixteen_cold_then_sixty_four_warm_calls_...` checks the
counts (4 builds, 4 loads, 4 containers, 0 failures).

## Choosing the user mapping: keep-id's first-container cost

A synthetic image of 20,000 small files (`scripts/bench-image.py`; the real
image cannot be built here without network access, and 20,000 is an
order-of-magnitude guess for bash, coreutils, git, curl, jq, util-linux and
their closure, not a count), loaded fresh before each run, then the first
container created from it:

{table(["first container, default mapping", "first container, --userns=keep-id", "later container, --userns=keep-id"], "first container, default mapping", keepid)}

Disk: the loaded image takes {disk["loaded"]} MB in the store; after the first keep-id
container, {disk["keepid"]} MB (Podman keeps a chowned copy of the layers for the mapping).

## Loading: file versus stream

{table(["podman load -i (file)", "podman load (stdin)"], "podman load -i (file)", loadr)}

The same 20,000-file archive, loaded from a file and from a pipe. What a
streamed image saves is on the build side: no image tarball is written to
(or compressed into) the Nix store. That needs real nixpkgs to measure and
is not measured here.
""")
