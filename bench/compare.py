#!/usr/bin/env python3
"""compare.py — raw mirror vs gocryptfs vs nvrfs, side by side in one run.

Targets on the same disk (BENCH_DIR, default /var/tmp):
  raw        two plain directories written at once (the bytes a mirror must write)
  gocryptfs  gocryptfs over one directory (encrypted FUSE, no mirror)
  nvrfs      nvrfs with two members
Workloads: (a) camera streams: N writers at 1 MB/s (8 Mbit/s) in 32 KiB writes,
a new file every 2 s, for each N in STREAMS; a stream "keeps up" if it ends
less than one second behind schedule; (b) one sequential writer, 1 MiB writes,
fsync at the end; (c) sequential and random 64 KiB reads, cold cache;
(d) metadata: create + stat + unlink of many small files.
For each: MiB/s (or ops/s), CPU seconds per GiB (writer + filesystem daemon),
and the daemon's peak memory; then nvrfs/raw and nvrfs/gocryptfs ratios.
Usage: bench/compare.py [--streams 16,64,128] [--seconds 10] [--size-mib 512]"""
import argparse, os, random, resource, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*a, **kw):
    return subprocess.run(a, check=True, **kw)


def proc_cpu(pid):
    if not pid:
        return 0.0
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def peak_kib(pid):
    if not pid:
        return 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def drop_caches():
    os.sync()
    open("/proc/sys/vm/drop_caches", "w").write("3")


class Target:
    def __init__(self, name, dirs, pid=0):
        self.name, self.dirs, self.pid = name, dirs, pid

    def measure(self, fn):
        """Runs fn(); returns (result, cpu seconds of this process + the daemon)."""
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        d0 = proc_cpu(self.pid)
        out = fn()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime) + proc_cpu(self.pid) - d0
        return out, cpu


def streams(t, n, seconds):
    """n camera writers; returns (streams that kept up, bytes written)."""
    chunk = os.urandom(32 * 1024)
    per_sec = 1_000_000 // len(chunk)  # ~1 MB/s
    kept, total = [0], [0]
    lock = threading.Lock()

    def cam(i):
        d = t.dirs[i % len(t.dirs)] if t.name != "raw" else None
        fds, written, start = [], 0, time.monotonic()
        seg = -1
        for k in range(per_sec * seconds):
            due = start + k / per_sec
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            if k // (per_sec * 2) != seg:  # a new 2-second segment file
                for fd in fds:
                    os.close(fd)
                seg = k // (per_sec * 2)
                dirs = t.dirs if t.name == "raw" else [d]
                fds = [os.open(os.path.join(x, f"cam{i}-{seg}.mp4"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for x in dirs]
            for fd in fds:
                os.write(fd, chunk)
            written += len(chunk)
        for fd in fds:
            os.close(fd)
        behind = time.monotonic() - (start + seconds)
        with lock:
            total[0] += written
            kept[0] += behind < 1.0

    ths = [threading.Thread(target=cam, args=(i,)) for i in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return kept[0], total[0]


def seq_write(t, mib):
    buf = os.urandom(1 << 20)

    def one(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(mib):
            os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)

    ths = [threading.Thread(target=one, args=(os.path.join(d, "seq.bin"),)) for d in t.dirs]
    t0 = time.monotonic()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return time.monotonic() - t0


def reads(t, rand):
    path = os.path.join(t.dirs[0], "seq.bin")
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    t0, n = time.monotonic(), 0
    if rand:
        rng = random.Random(1)
        while time.monotonic() - t0 < 5:
            n += len(os.pread(fd, 65536, rng.randrange(0, size // 65536) * 65536))
    else:
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            n += len(b)
    os.close(fd)
    return n, time.monotonic() - t0


def metadata(t, count=2000):
    d = os.path.join(t.dirs[0], "meta")
    os.makedirs(d, exist_ok=True)
    t0 = time.monotonic()
    for i in range(count):
        p = os.path.join(d, f"f{i}")
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
        os.stat(p)
    for i in range(count):
        os.unlink(os.path.join(d, f"f{i}"))
    return 3 * count / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="16,64,128")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size-mib", type=int, default=512)
    args = ap.parse_args()
    base = tempfile.mkdtemp(dir=os.environ.get("BENCH_DIR", "/var/tmp"), prefix="nvrfs-compare.")
    mnt, gpl = f"{base}/mnt", f"{base}/gplain"
    procs = []
    try:
        for d in ("raw1", "raw2", "gcipher", "gplain", "mnt"):
            os.makedirs(f"{base}/{d}")
        open(f"{base}/pass", "w").write("benchmark\n")
        run("gocryptfs", "-q", "-init", "-passfile", f"{base}/pass", f"{base}/gcipher", stdout=subprocess.DEVNULL)
        g = subprocess.Popen(["gocryptfs", "-q", "-fg", "-passfile", f"{base}/pass", f"{base}/gcipher", gpl])
        run(f"{ROOT}/build/nvrctl", "init", "--member", f"{base}/m1", "--member", f"{base}/m2", "--host-key", f"{base}/k",
            "--config", f"{base}/c", "--control-socket", f"{base}/s", stdout=subprocess.DEVNULL)
        n = subprocess.Popen([f"{ROOT}/build/nvrfsd", "--config", f"{base}/c", "-f", mnt])
        procs = [g, n]
        for p in (gpl, mnt):
            for _ in range(100):
                if os.path.ismount(p):
                    break
                time.sleep(0.05)
        targets = [Target("raw", [f"{base}/raw1", f"{base}/raw2"]), Target("gocryptfs", [gpl], g.pid), Target("nvrfs", [mnt], n.pid)]
        rows = []
        for ns in [int(x) for x in args.streams.split(",")]:
            vals = []
            for t in targets:
                drop_caches()
                (kept, nbytes), cpu = t.measure(lambda: streams(t, ns, args.seconds))
                vals.append((kept, cpu / (nbytes / 2**30)))
            rows.append((f"(a) {ns} cameras x 1 MB/s: streams kept up", [v[0] for v in vals], [v[1] for v in vals]))
        vals = []
        for t in targets:
            drop_caches()
            secs, cpu = t.measure(lambda: seq_write(t, args.size_mib))
            vals.append((args.size_mib / secs, cpu / (args.size_mib / 1024)))
        rows.append(("(b) one sequential writer, MiB/s", [v[0] for v in vals], [v[1] for v in vals]))
        for rand, label in ((False, "(c) sequential read (cold), MiB/s"), (True, "(c) random 64k read (cold), MiB/s")):
            vals = []
            for t in targets:
                drop_caches()
                (nb, secs), cpu = t.measure(lambda: reads(t, rand))
                vals.append((nb / secs / 2**20, cpu / (nb / 2**30)))
            rows.append((label, [v[0] for v in vals], [v[1] for v in vals]))
        vals = []
        for t in targets:
            ops, cpu = t.measure(lambda: metadata(t))
            vals.append((ops, 0))
        rows.append(("(d) create/stat/unlink, ops/s", [v[0] for v in vals], None))

        print(f"{'workload (same run)':<44} {'raw':>9} {'gocryptfs':>10} {'nvrfs':>9} {'nv/raw':>7} {'nv/gcf':>7}   CPU s/GiB raw/gcf/nvrfs")
        for label, v, cpu in rows:
            r = lambda a, b: f"{a / b:.2f}" if b else "-"
            c = "" if cpu is None else " / ".join(f"{x:.1f}" for x in cpu)
            print(f"{label:<44} {v[0]:>9.1f} {v[1]:>10.1f} {v[2]:>9.1f} {r(v[2], v[0]):>7} {r(v[2], v[1]):>7}   {c}")
        print(f"peak memory (VmHWM): gocryptfs {peak_kib(g.pid) / 1024:.0f} MiB, nvrfsd {peak_kib(n.pid) / 1024:.0f} MiB")
    finally:
        for p in (mnt, gpl):
            subprocess.run(["fusermount3", "-u", p], stderr=subprocess.DEVNULL)
        for p in procs:
            p.wait(timeout=30)
        subprocess.run(["rm", "-rf", base])


if __name__ == "__main__":
    sys.exit(main())
