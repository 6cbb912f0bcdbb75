#!/usr/bin/env python3
"""How long a recorder's new file can stall while the disks are busy, on two builds of nvrfs.

Each build gets its own set on the same two ext4 file systems on loop files
(as cameras_ab.py). Per round, for each build (order alternating): caches
dropped, two `dd` writers put 1.5 GiB each into the set without fsync (the
members' dirty pages pile up, as under many cameras), while one thread
creates a file, writes 32 KiB to it and closes it every 20 ms for 14 s: the
work a segmenting recorder does every few seconds per camera, all of it
audited. A create or close that waits for a member's journal commit shows
here (the host anchor fdatasyncs the audit log every check_interval).
Reported: per round the slowest file and the 99th percentile, in ms.
Not part of `make test`.

    python3 bench/stall_ab.py OLD_BUILD [--new build] [--rounds 4]
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
from cameras_ab import ROOT, mount_sets, sh  # noqa: E402
from compare import drop_caches  # noqa: E402

SECONDS, PERIOD, BIG_MIB = 14, 0.02, 1536


def small_files(d, seconds):
    """Latencies (ms) of create + 32 KiB write + close, one every PERIOD."""
    buf, lat, end, i = os.urandom(32 << 10), [], time.monotonic() + seconds, 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        fd = os.open(f"{d}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, buf)
        os.close(fd)
        lat.append((time.monotonic() - t0) * 1000)
        i += 1
        time.sleep(max(0.0, PERIOD - (time.monotonic() - t0)))
    return sorted(lat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("--new", default=f"{ROOT}/build")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nvrfs-stall.", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    stack = peers.Stack()
    stack.push(lambda: subprocess.run(["rm", "-rf", work]))
    try:
        daemons, _ = mount_sets(stack, work, {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)})
        mnts = {name: mnt for name, (_, mnt) in daemons.items()}
        res = {}
        for r in range(args.rounds):
            for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
                m = mnts[name]
                os.makedirs(f"{m}/small", exist_ok=True)
                drop_caches()
                dds = [subprocess.Popen(["dd", "if=/dev/zero", f"of={m}/big{k}", "bs=1M", f"count={BIG_MIB}", "status=none"])
                       for k in (1, 2)]
                lat = small_files(f"{m}/small", SECONDS)
                for p in dds:
                    p.wait()
                p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
                res.setdefault(name, []).append((lat[-1], p99))
                print(f"round {r + 1} {name}: {len(lat)} files, median {lat[len(lat) // 2]:.1f} ms, "
                      f"p99 {p99:.1f} ms, slowest {lat[-1]:.1f} ms", flush=True)
                sh("rm", "-rf", f"{m}/small", f"{m}/big1", f"{m}/big2")
                os.sync()
        print("\nbuild  slowest file per round, ms        median   p99 median")
        for name, v in res.items():
            print(f"{name:5s}  {' '.join(f'{s:.0f}' for s, _ in v):32s}  {statistics.median(s for s, _ in v):6.0f}   "
                  f"{statistics.median(p for _, p in v):.1f}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
