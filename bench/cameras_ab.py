#!/usr/bin/env python3
"""Camera streams on two builds of nvrfs, rounds interleaved, order alternating.

Each build gets its own set (made by its own nvrctl, so each writes its own
format) on the same two ext4 file systems on loop files, as compare.py
--peers places nvrfs's members. Per round and stream count, for each build:
caches dropped, compare.py's camera workload (fio, 32 KiB writes at 1 MiB/s
into a new 2 MiB file every 2 s; with --writer wo its write-only streams,
as a recorder opens its files), then `sync`. Reported per build: streams
that kept up, nvrfsd's CPU (cores over the run), and bytes the two loop
devices wrote per byte of video. The recordings are removed after each run.
Not part of `make test`.

    python3 bench/cameras_ab.py OLD_BUILD [--new build] [--streams 128,256] [--seconds 10] [--rounds 3] [--writer fio|wo]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
from compare import Target, cameras, cameras_wo, drop_caches, proc_cpu  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*a):
    return subprocess.run(a, check=True, capture_output=True, text=True).stdout.strip()


def written_sectors(devs):
    return sum(int(open(f"/sys/block/{d}/stat").read().split()[6]) for d in devs)


def mount_sets(stack, work, builds):
    """Two loop ext4 file systems under `work` (e1, e2), and on them one set
    per build ({name: build dir}), mounted at work/NAME.mnt; all undone by
    `stack`. Returns ({name: (nvrfsd pid, mountpoint)}, the loop devices)."""
    loops = [os.path.basename(sh("findmnt", "-no", "SOURCE", peers.ext4(stack, work, d, 16))) for d in ("e1", "e2")]
    daemons = {}
    for name, b in builds.items():
        conf = f"{work}/{name}.conf"
        sh(f"{b}/nvrctl", "init", "--member", f"{work}/e1/{name}", "--member", f"{work}/e2/{name}",
           "--host-key", f"{work}/{name}.key", "--config", conf)
        with open(conf, "a") as f:
            f.write(f"control_socket = {work}/{name}.sock\nstate_dir = {work}/{name}.state\n")
        mnt = f"{work}/{name}.mnt"
        os.mkdir(mnt)
        sh(f"{b}/nvrfsd", "--config", conf, mnt)
        stack.push(lambda m=mnt: subprocess.run(["fusermount3", "-u", m], capture_output=True))
        daemons[name] = (int(sh("pgrep", "-n", "-f", f"nvrfsd --config {conf}")), mnt)
    return daemons, loops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("--new", default=f"{ROOT}/build")
    ap.add_argument("--streams", default="128,256")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--writer", choices=("fio", "wo"), default="fio", help="fio jobs (a), or write-only streams (o)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nvrfs-cams.", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    stack = peers.Stack()
    stack.push(lambda: subprocess.run(["rm", "-rf", work]))
    try:
        builds = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
        daemons, loops = mount_sets(stack, work, builds)
        res = {}
        for r in range(args.rounds):
            for n in [int(x) for x in args.streams.split(",")]:
                for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                    pid, mnt = daemons[name]
                    d = f"{mnt}/cams"
                    os.makedirs(d, exist_ok=True)
                    drop_caches()
                    c0, s0, t0 = proc_cpu(pid), written_sectors(loops), time.monotonic()
                    kept, video = (cameras if args.writer == "fio" else cameras_wo)(Target(name, [d]), n, args.seconds)
                    os.sync()
                    c1, s1, t1 = proc_cpu(pid), written_sectors(loops), time.monotonic()
                    res.setdefault((n, name), []).append((kept, (c1 - c0) / (t1 - t0), (s1 - s0) * 512 / video))
                    print(f"round {r + 1} {n} streams {name}: kept up {kept}, nvrfsd {(c1 - c0) / (t1 - t0):.2f} cores, "
                          f"disk writes {(s1 - s0) * 512 / video:.2f} x video", flush=True)
                    sh("rm", "-rf", d)
        print("\nstreams  build  kept up (each round)   nvrfsd cores (median)   disk bytes / video byte (median)")
        for (n, name), v in sorted(res.items()):
            print(f"{n:7d}  {name:5s}  {' '.join(str(k) for k, _, _ in v):21s}  "
                  f"{statistics.median(c for _, c, _ in v):21.2f}   {statistics.median(w for _, _, w in v):.2f}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
