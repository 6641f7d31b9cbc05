"""Writes a docker-archive image with N small files plus a static /bin/true
(busybox), to measure what scales with file count (keep-id chown, load)."""
import hashlib, io, json, sys, tarfile

out, count = sys.argv[1], int(sys.argv[2])
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    busybox = open("/bin/busybox", "rb").read()
    for d in ("bin", "files"):
        info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o755; t.addfile(info)
    info = tarfile.TarInfo("bin/true"); info.size = len(busybox); info.mode = 0o755
    t.addfile(info, io.BytesIO(busybox))
    for i in range(count):
        data = f"file {i}\n".encode()
        info = tarfile.TarInfo(f"files/d{i // 500}/f{i}"); info.size = len(data); info.mode = 0o644
        if i % 500 == 0:
            di = tarfile.TarInfo(f"files/d{i // 500}"); di.type = tarfile.DIRTYPE; di.mode = 0o755; t.addfile(di)
        t.addfile(info, io.BytesIO(data))
layer_bytes = layer.getvalue()
digest = hashlib.sha256(layer_bytes).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}"]}}).encode()
manifest = json.dumps([{"Config": "config.json", "RepoTags": ["bench-files:latest"],
                        "Layers": ["layer.tar"]}]).encode()
with tarfile.open(out, "w") as t:
    for name, data in (("manifest.json", manifest), ("config.json", config), ("layer.tar", layer_bytes)):
        info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
