#!/usr/bin/env python3
"""compare.py — raw mirror vs gocryptfs vs nvrfs, side by side in one run.

Targets, all on the same disk (BENCH_DIR, default /var/tmp):
  raw        two plain directories written at once (the bytes a mirror must write)
  raw+wo     the same, the writer also starting write-out every 8 MiB
             (sync_file_range), as nvrfs does on the members: (b) only
  gocryptfs  gocryptfs over one directory (encrypted FUSE, no mirror)
  nvrfs      nvrfs with two members
  before     (with --baseline DIR) the nvrfsd/nvrctl in DIR, e.g. an older
             build, on its own two members: before/after ratios in one run
  btrfs      (with --peers) btrfs RAID1 over two loop files: the kernel's mirror
  gcf-btrfs  (with --peers) gocryptfs over that btrfs RAID1
  gcf-ao     (with --peers) gocryptfs mounted -allow_other over the first
             member's file system, as a recorder running as a service user
             needs it (nvrfs always is): (d) and (l) only. With it gocryptfs
             creates as the caller and checks permissions the kernel's way,
             as nvrfs does
With --peers every other target lives on ext4 file systems on loop files of
the same disk (first and second member, a third for spares), so that all of
them write through a loop device the same way (see peers.py).
Workloads (fio where it fits):
  (a) N camera streams (fio jobs) at 1 MiB/s (8 Mbit/s) in 32 KiB writes, a new
      2-second file every 2 MiB; a stream "keeps up" when its data is down
      within one second of schedule; raw writes every stream to both dirs
  (o) (a) as a recorder writes: a thread per stream (per stream and dir on
      raw) opens each file write-only (O_TRUNC, as ffmpeg's segment muxer)
      and writes 32 KiB on schedule, catching up when late
  (b) one sequential writer, 1 MiB writes to a new file, fsync at the end
  (w) 8 sequential writers at once, --writers-mib each, fsync at the end
  (v) (b) and (w) as a recorder writes: `dd` (write-only descriptors, as
      ffmpeg opens its output; fio opens read-write), 1 MiB blocks,
      conv=fsync; one writer of --size-mib, then 8 of --writers-mib
  (c) sequential 1 MiB reads and random 64 KiB reads (each block once) of (b)'s
      file, page cache dropped first
  (r) 8 sequential readers at once of (w)'s files, page cache dropped first
  (d) metadata: create + stat + unlink of many small files
  (l) `ls -l` of a directory of 10 000 files, caches dropped first
  (e) rebuild of a hot spare after a member fails, vs `cp -a` of a member (and
      `btrfs replace`); scrub of both members, vs reading both members' files
      (and `btrfs scrub`), all holding the same recordings
--only picks workloads by their letters (default: all).
For each: MiB/s (or ops/s, or seconds), CPU seconds per GiB (benchmark tools +
the filesystem daemon), and the daemon's peak memory during that workload.
(b), (w), (c), (r), (d), (l) and (e) run --rounds times, interleaved across targets (each round
starting one target later, every second one in reverse order); the median counts. (a) and (o)
run --camera-rounds times, interleaved alike (default 1: a single draw, which depends on the
target measured before it).
Usage: bench/compare.py [--streams 16,64,128] [--seconds 10] [--size-mib 1024]
                        [--writers-mib 192] [--rebuild-mib 1024] [--rounds 3] [--camera-rounds 1]
                        [--baseline DIR] [--peers [--loop-gib 24]] [--only aobwvcrdle]"""
import argparse, json, os, resource, shutil, socket, subprocess, sys, tempfile, threading, time

import peers
from peers import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEEP_UP_SLACK = 1.0  # seconds a stream may end behind schedule


def proc_cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def peak_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def drop_caches():
    os.sync()
    open("/proc/sys/vm/drop_caches", "w").write("3")


def fio(*jobs, common=()):
    """Runs fio with `common` options and one job per list in `jobs`; returns its JSON jobs."""
    args = ["fio", "--output-format=json", "--thread", "--ioengine=psync", "--fallocate=none", *common]
    for j in jobs:
        args += j
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])["jobs"]


class Target:
    """A file system under test: where its files go, and its daemon (if any)."""

    def __init__(self, name, dirs, proc=None, nvrctl=None, conf=None, members=()):
        self.name, self.dirs, self.proc = name, dirs, proc
        self.nvrctl, self.conf, self.members = nvrctl, conf, list(members)

    @property
    def pid(self):
        return self.proc.pid if self.proc else 0

    def measure(self, fn):
        """Runs fn(); returns (result, CPU seconds of us, our children and the daemon, daemon peak KiB)."""
        if self.pid:
            open(f"/proc/{self.pid}/clear_refs", "w").write("5")  # restart the VmHWM count
        ru = lambda: [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        r0, d0 = ru(), proc_cpu(self.pid) if self.pid else 0.0
        out = fn()
        r1, d1 = ru(), proc_cpu(self.pid) if self.pid else 0.0
        cpu = sum((b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime) for a, b in zip(r0, r1)) + d1 - d0
        return out, cpu, peak_kib(self.pid) if self.pid else 0


def cameras(t, n, seconds):
    """n streams per directory of t; returns (streams that kept up, bytes written)."""
    files = max(1, seconds // 2)
    jobs = [[f"--name=cam{k}", f"--directory={d}", f"--numjobs={n}", "--rw=write", "--bs=32k", "--rate=1m",
             "--filesize=2m", f"--nrfiles={files}", "--file_service_type=sequential", "--openfiles=1",
             "--create_on_open=1"] for k, d in enumerate(t.dirs)]
    res = fio(*jobs)
    late, seen = set(), {}
    for j in res:  # numjobs clones of one job come in order: the k-th is stream k
        k = seen[j["jobname"]] = seen.get(j["jobname"], -1) + 1
        if j["job_runtime"] > (files * 2 + KEEP_UP_SLACK) * 1000:
            late.add(k)
    ok = n - len(late)
    return ok, sum(j["write"]["io_bytes"] for j in res)


def cameras_wo(t, n, seconds):
    """(o): n write-only streams per directory of t; returns (streams that kept up, bytes written)."""
    files, buf = max(1, seconds // 2), os.urandom(32 << 10)
    start, late = time.monotonic() + 0.5, set()

    def stream(k, d):
        for f in range(files):
            fd = os.open(f"{d}/wo{k}.{f}.mp4", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            for i in range(64):  # 2 MiB at 1 MiB/s
                delay = start + (f * 64 + i) / 32 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                os.write(fd, buf)
            os.close(fd)
        if time.monotonic() > start + files * 2 + KEEP_UP_SLACK:
            late.add(k)

    threads = [threading.Thread(target=stream, args=(k, d)) for k in range(n) for d in t.dirs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return n - len(late), n * len(t.dirs) * files * (2 << 20)


def seq_write(t, mib):
    for d in t.dirs:  # a new file each round, as a recorder writes
        if os.path.exists(f"{d}/seq.bin"):
            os.unlink(f"{d}/seq.bin")
    wo = ["--sync_file_range=write:8"] if t.name == "raw+wo" else []
    jobs = [[f"--name=seq{k}", f"--filename={d}/seq.bin", "--rw=write", "--bs=1m", f"--size={mib}m", "--end_fsync=1", *wo]
            for k, d in enumerate(t.dirs)]
    t0 = time.monotonic()
    fio(*jobs)
    return mib / (time.monotonic() - t0)


WRITERS = 8  # (w) and (r)


def seq_writers(t, mib):
    """WRITERS sequential writers per directory at once, each a new file; MiB/s of one copy."""
    remove_named(t, "many")
    wo = ["--sync_file_range=write:8"] if t.name == "raw+wo" else []
    jobs = [[f"--name=many{k}", f"--directory={d}", f"--numjobs={WRITERS}", "--rw=write", "--bs=1m", f"--size={mib}m",
             "--end_fsync=1", *wo] for k, d in enumerate(t.dirs)]
    t0 = time.monotonic()
    fio(*jobs)
    return WRITERS * mib / (time.monotonic() - t0)


def remove_named(t, prefix):
    for d in t.dirs:
        for f in os.listdir(d):
            if f.startswith(prefix):
                os.unlink(os.path.join(d, f))


def dd_writers(t, n, mib):
    """n `dd` writers per directory at once, each a new file; MiB/s of one copy."""
    remove_named(t, "dd")
    t0 = time.monotonic()
    ps = [subprocess.Popen(["dd", "if=/dev/zero", f"of={d}/dd{k}", "bs=1M", f"count={mib}", "conv=fsync", "status=none"])
          for d in t.dirs for k in range(n)]
    if any(p.wait() for p in ps):
        sys.exit(f"compare.py: dd failed on {t.name}")
    return n * mib / (time.monotonic() - t0)


def seq_readers(t, mib):
    """WRITERS sequential readers at once of (w)'s files."""
    job = ["--name=many0", f"--directory={t.dirs[0]}", f"--numjobs={WRITERS}", "--rw=read", "--bs=1m", f"--size={mib}m",
           "--invalidate=1"]
    res = fio(job)
    return sum(j["read"]["bw_bytes"] for j in res) / 2**20, sum(j["read"]["io_bytes"] for j in res)


LS_FILES = 10000  # (l): a camera directory after a few days of 2-second segments


def ls_prepare(t):
    """LS_FILES files of 4 KiB (empty ones would be a case of their own: nvrfs
    authenticates an empty file's one chunk when it is stat'ed)."""
    d = os.path.join(t.dirs[0], "cam")
    os.makedirs(d, exist_ok=True)
    data = os.urandom(4096)
    for i in range(LS_FILES):
        with open(os.path.join(d, f"seg{i:05}.mp4"), "wb") as f:
            f.write(data)


def ls_l(t):
    t0 = time.monotonic()
    run("ls", "-l", os.path.join(t.dirs[0], "cam"), stdout=subprocess.DEVNULL)
    return time.monotonic() - t0, None


def reads(t, rand):
    path = f"{t.dirs[0]}/seq.bin"
    job = ["--name=rd", f"--filename={path}", "--rw=randread" if rand else "--rw=read", "--bs=64k" if rand else "--bs=1m",
           "--runtime=10", "--invalidate=1"]
    r = fio(job)[0]["read"]
    return r["bw_bytes"] / 2**20, r["io_bytes"]


def unjournalled_ext4(path):
    """ext4 without a journal (the kernel then lists no jbd2 for it)."""
    src, fstype = (subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", path], capture_output=True,
                                  text=True).stdout.split() + ["", ""])[:2]
    return fstype == "ext4" and src.startswith("/dev/") and not os.path.exists(f"/proc/fs/jbd2/{os.path.basename(src)}-8")


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


def tree_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def daemon_status(t):
    """What `nvrctl status` asks nvrfsd (its control socket, control.hpp), without starting a process."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(t.sock)
        s.sendall(b'{"cmd":"status"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            d = s.recv(1 << 16)
            if not d:
                break
            buf += d
    return json.loads(buf)


def rebuild(t):
    """Fails the second member with a spare standing by; seconds until the set is clean again.
    The wait asks the daemon every 10 ms over its socket (btrfs's `replace start -B` just
    blocks): starting `nvrctl status` every 50 ms took 7% of the two cores from the rebuild,
    and a 50 ms step charged nvrfs 25 ms on average for the wait itself."""
    # Each round's spare goes where the member failed in the round before.
    n = t.rebuilds = getattr(t, "rebuilds", -1) + 1
    spare, failed = f"{t.spare_roots[n % 2]}/{t.name}-spare{n}", t.members[1]
    os.makedirs(spare)
    run(t.nvrctl, "spare", "add", "--config", t.conf, spare, stdout=subprocess.DEVNULL)
    drop_caches()
    t0 = time.monotonic()
    run(t.nvrctl, "member", "fail", "--config", t.conf, failed, stdout=subprocess.DEVNULL)
    while daemon_status(t).get("state") != "clean":
        if time.monotonic() - t0 > 600:
            sys.exit(f"compare.py: {t.name} was not clean 600 s after the member failed")
        time.sleep(0.01)
    os.sync()
    secs = time.monotonic() - t0
    run(t.nvrctl, "member", "remove", "--config", t.conf, failed, stdout=subprocess.DEVNULL)
    shutil.rmtree(failed)
    t.members[1] = spare
    return secs


def scrub(t):
    drop_caches()
    t0 = time.monotonic()
    run(t.nvrctl, "scrub", "--config", t.conf, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def start_nvrfs(name, bindir, base, roots):
    """nvrfs with its members under roots[0] and roots[1], its spare (for (e)) under roots[2]."""
    m = [f"{roots[0]}/{name}-m1", f"{roots[1]}/{name}-m2"]
    conf, mnt = f"{base}/{name}.conf", f"{base}/{name}-mnt"
    os.makedirs(mnt)
    run(f"{bindir}/nvrctl", "init", "--member", m[0], "--member", m[1], "--host-key", f"{base}/{name}.key",
        "--config", conf, "--control-socket", f"{base}/{name}.sock", stdout=subprocess.DEVNULL)
    p = subprocess.Popen([f"{bindir}/nvrfsd", "--config", conf, "-f", mnt])
    t = Target(name, [mnt], p, f"{bindir}/nvrctl", conf, m)
    t.spare_roots = [roots[2], roots[1]]  # (e): rebuilds go to each in turn
    t.sock = f"{base}/{name}.sock"
    return t


def start_gocryptfs(name, cipher, plain, base, allow_other=False):
    os.makedirs(cipher)
    os.makedirs(plain)
    run("gocryptfs", "-q", "-init", "-passfile", f"{base}/pass", cipher, stdout=subprocess.DEVNULL)
    opts = ["-allow_other"] if allow_other else []
    return Target(name, [plain], subprocess.Popen(["gocryptfs", "-q", "-fg", *opts, "-passfile", f"{base}/pass", cipher, plain]))


def empty_dirs(t):
    for d in t.dirs:
        for f in os.listdir(d):
            p = os.path.join(d, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="16,64,128")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--writers-mib", type=int, default=192, help=f"MiB each of the {WRITERS} writers of (w)")
    ap.add_argument("--rebuild-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (b), (w), (c), (r), (d), (l) and (e); the median counts")
    ap.add_argument("--camera-rounds", type=int, default=1,
                    help="rounds of (a) and (o), interleaved as --rounds (a single draw depends on its slot)")
    ap.add_argument("--baseline", help="directory with an older nvrfsd and nvrctl to compare against")
    ap.add_argument("--peers", action="store_true", help="add btrfs RAID1 and gocryptfs on it; all targets on loop devices")
    ap.add_argument("--loop-gib", type=int, default=24, help="size of each (sparse) loop file with --peers")
    ap.add_argument("--only", default="aobwvcrdle", help="the workloads to run, by letter")
    args = ap.parse_args()
    base = tempfile.mkdtemp(dir=os.environ.get("BENCH_DIR", "/var/tmp"), prefix="nvrfs-compare.")
    targets, stack = [], peers.Stack()
    try:
        open(f"{base}/pass", "w").write("benchmark\n")
        btrfs = None
        if args.peers:
            roots = [peers.ext4(stack, base, f"e{i}", args.loop_gib) for i in (1, 2, 3)]
            btrfs = peers.Btrfs(stack, base, args.loop_gib)
        else:
            roots = [base] * 3
            if "d" in args.only and unjournalled_ext4(base):
                print(f"note: {base} is on ext4 without a journal, whose inode allocator steps over every inode "
                      "freed in the last ~30 s: (d) slows from round to round, nvrfs (two inodes per file) "
                      "twice as much as the others. --peers puts every target on journalled loop ext4.",
                      file=sys.stderr, flush=True)
        for d in (f"{roots[0]}/raw1", f"{roots[1]}/raw2"):
            os.makedirs(d)
        targets = [Target("raw", [f"{roots[0]}/raw1", f"{roots[1]}/raw2"]),
                   Target("raw+wo", [f"{roots[0]}/raw1", f"{roots[1]}/raw2"]),
                   start_gocryptfs("gocryptfs", f"{roots[0]}/gcipher", f"{base}/gplain", base)]
        targets.append(start_nvrfs("nvrfs", f"{ROOT}/build", base, roots))
        if args.baseline:
            targets.append(start_nvrfs("before", args.baseline, base, roots))
        # The peers last, so that what runs right after gocryptfs-on-btrfs is
        # raw, not nvrfs: in (w) the target measured right after it ran at
        # 0.55x (the same build in both nvrfs slots, either order), and
        # waiting for the machine to go quiet did not change that.
        if btrfs:
            os.makedirs(f"{btrfs.mnt}/plain")
            targets.append(Target("btrfs", [f"{btrfs.mnt}/plain"]))
            targets[-1].btrfs = btrfs
            targets.append(start_gocryptfs("gcf-btrfs", f"{btrfs.mnt}/gcipher", f"{base}/gbplain", base))
            targets.append(start_gocryptfs("gcf-ao", f"{roots[0]}/gaocipher", f"{base}/gaoplain", base, allow_other=True))
        fuse = [t for t in targets if t.proc]
        stack.push(lambda: stop_fuse(fuse))
        for t in fuse:
            for _ in range(200):
                if os.path.ismount(t.dirs[0]):
                    break
                time.sleep(0.05)
            else:
                sys.exit(f"compare.py: {t.name} did not mount")
        rows, stored_mib = measure_all(args, targets)
        report(args, targets, rows, stored_mib)
    finally:
        stack.close()
        subprocess.run(["rm", "-rf", base])


def stop_fuse(fuse):
    for t in fuse:
        subprocess.run(["fusermount3", "-u", t.dirs[0]], stderr=subprocess.DEVNULL)
    for t in fuse:
        try:
            t.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            t.proc.kill()


def measure_all(args, targets):
    """Runs the workloads args.only names; returns the rows
    (label, [(value, cpu s/GiB or None, peak MiB or None) per target], higher_is_better)."""
    rows = []

    def row(label, fn, gib=None, only=None, better_high=True, rounds=1, prep=None):
        """Measures fn on every target, rounds interleaved (the disk's mood changes by the
        minute); keeps each target's median round."""
        runs = {t.name: [] for t in targets}
        for r in range(rounds):
            # Each round starts one target later, and every second round runs the
            # other way round: a target measured right after a heavy writer can
            # do worse (the (a) row: whichever build followed gocryptfs), and a
            # rotation alone keeps every target behind the same neighbour.
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for t in (order if r % 2 == 0 else order[::-1]):
                if only and t.name not in only:
                    continue
                if prep:
                    prep(t)
                drop_caches()
                (v, nbytes), cpu, peak = t.measure(lambda: fn(t))
                g = (nbytes if nbytes is not None else 0) / 2**30 if gib is None else gib(t)
                runs[t.name].append((v, cpu / g if g else None, peak / 1024 if t.pid else None))
        vals = [sorted(runs[t.name], key=lambda r: r[0])[len(runs[t.name]) // 2] if runs[t.name] else None
                for t in targets]
        rows.append((label + (f" (median of {rounds})" if rounds > 1 else ""), vals, better_high))
        each = "; ".join(f"{n} " + " ".join(f"{v[0]:.6g}" for v in runs[n]) for n in runs if runs[n])
        print(f"  done: {label} (each round: {each})", file=sys.stderr, flush=True)

    names = [t.name for t in targets]
    data = [n for n in names if n != "gcf-ao"]  # gcf-ao is a metadata peer: (d) and (l)
    most = [n for n in data if n != "raw+wo"]
    meta = most + [n for n in names if n == "gcf-ao"]
    want = args.only
    for letter, label, streams in (("a", "cameras at 8 Mbit/s", cameras), ("o", "cameras, write-only", cameras_wo)):
        if letter not in want:
            continue
        for n in [int(x) for x in args.streams.split(",")]:
            # Every stream records into new files: fio opens an existing file without
            # O_TRUNC, so the previous row's files would be overwritten in place.
            row(f"({letter}) {n} {label}: streams kept up", lambda t: streams(t, n, args.seconds), only=most,
                prep=empty_dirs, rounds=args.camera_rounds)
    for t in targets:  # the camera files would take the room of the rows below
        if t.name in most and ("a" in want or "o" in want):
            empty_dirs(t)
    mib, wmib, rounds = args.size_mib, args.writers_mib, args.rounds
    if "b" in want or "c" in want:
        row("(b) one sequential writer, MiB/s", lambda t: (seq_write(t, mib), None),
            gib=lambda t: mib * len(t.dirs) / 1024, only=data, rounds=rounds)
    if "w" in want or "r" in want:
        row(f"(w) {WRITERS} sequential writers, MiB/s", lambda t: (seq_writers(t, wmib), None),
            gib=lambda t: WRITERS * wmib * len(t.dirs) / 1024, only=data, rounds=rounds)
    if "v" in want:
        row("(v) one write-only writer (dd), MiB/s", lambda t: (dd_writers(t, 1, mib), None),
            gib=lambda t: mib * len(t.dirs) / 1024, only=most, rounds=rounds)
        row(f"(v) {WRITERS} write-only writers (dd), MiB/s", lambda t: (dd_writers(t, WRITERS, wmib), None),
            gib=lambda t: WRITERS * wmib * len(t.dirs) / 1024, only=most, rounds=rounds)
        for t in targets:
            if t.name in most:
                remove_named(t, "dd")
    if "c" in want:
        row("(c) sequential read (cold), MiB/s", lambda t: reads(t, False), only=most, rounds=rounds)
        row("(c) random 64 KiB read (cold), MiB/s", lambda t: reads(t, True), only=most, rounds=rounds)
    if "r" in want:
        row(f"(r) {WRITERS} sequential readers (cold), MiB/s", lambda t: seq_readers(t, wmib), only=most, rounds=rounds)
    if "d" in want:
        row("(d) create/stat/unlink, ops/s", lambda t: (metadata(t), 0), only=meta, rounds=rounds)
    if "l" in want:
        for t in targets:
            if t.name in meta:
                ls_prepare(t)
        row(f"(l) ls -l of {LS_FILES} files (cold), s", ls_l, only=meta, better_high=False, rounds=rounds)
    stored_mib = rebuild_rows(args, targets, row) if "e" in want else None
    return rows, stored_mib


def rebuild_rows(args, targets, row):
    """(e): the same recordings on nvrfs (and btrfs), rebuilt onto a spare and scrubbed."""
    for t in targets:  # only the recordings, so that every mirror holds the same bytes
        if t.name != "raw+wo":
            empty_dirs(t)
    holders = [t for t in targets if t.nvrctl or hasattr(t, "btrfs")]
    for t in holders:
        os.makedirs(f"{t.dirs[0]}/rec")
        for i in range(args.rebuild_mib // 256):
            fio(["--name=fill", f"--filename={t.dirs[0]}/rec/seg{i}.mp4", "--rw=write", "--bs=1m", "--size=256m"])
    os.sync()
    src = next(t for t in targets if t.nvrctl)  # the raw rows copy and read nvrfs's members
    stored_gib = tree_bytes(src.members[0]) / 2**30

    def raw_copy(t):
        dst = f"{src.spare_roots[0]}/rawcopy"
        t0 = time.monotonic()
        run("cp", "-a", src.members[0], dst)
        os.sync()
        secs = time.monotonic() - t0
        shutil.rmtree(dst)
        return secs, None

    def raw_read2(t):
        t0 = time.monotonic()
        for m in src.members:
            for r, _, fs in os.walk(m):
                for f in fs:
                    with open(os.path.join(r, f), "rb") as fh:
                        while fh.read(1 << 20):
                            pass
        return time.monotonic() - t0, None

    def rebuilt(t):
        return raw_copy(t) if t.name == "raw" else (t.btrfs.replace() if hasattr(t, "btrfs") else rebuild(t), None)

    def scrubbed(t):
        return raw_read2(t) if t.name == "raw" else (t.btrfs.scrub() if hasattr(t, "btrfs") else scrub(t), None)

    names = ["raw"] + [t.name for t in holders]
    row("(e) rebuild a spare (raw: cp -a a member), s", rebuilt, gib=lambda t: stored_gib, only=names, better_high=False,
        rounds=args.rounds)
    row("(e) scrub both members (raw: read both), s", scrubbed, gib=lambda t: 2 * stored_gib, only=names,
        better_high=False, rounds=args.rounds)
    return stored_gib * 1024


def report(args, targets, rows, stored_mib):
    names = [t.name for t in targets]
    ratios = [("nv/raw", "nvrfs", "raw"), ("nv/raw+wo", "nvrfs", "raw+wo"), ("nv/gcf", "nvrfs", "gocryptfs")]
    if args.peers:
        ratios += [("nv/btrfs", "nvrfs", "btrfs"), ("nv/gcf-bt", "nvrfs", "gcf-btrfs"), ("nv/gcf-ao", "nvrfs", "gcf-ao")]
    if args.baseline:
        ratios.append(("nv/before", "nvrfs", "before"))
    fuse = [t.name for t in targets if t.proc]
    head = f"{'workload (same run)':<56}" + "".join(f"{n:>10}" for n in names) + "".join(f"{r[0]:>10}" for r in ratios)
    print(head + "   CPU s/GiB " + "/".join(names) + "   peak MiB " + "/".join(fuse))
    for label, vals, high in rows:
        cell = lambda v: f"{v[0]:>10.1f}" if v else f"{'-':>10}"
        line = f"{label:<56}" + "".join(cell(v) for v in vals)
        for _, a, b in ratios:
            va, vb = vals[names.index(a)], vals[names.index(b)]
            ok = va and vb and va[0] and vb[0]
            line += f"{(va[0] / vb[0] if high else vb[0] / va[0]):>10.2f}" if ok else f"{'-':>10}"
        fmt = lambda x, spec: "-" if x is None else format(x, spec)
        line += "   " + "/".join(fmt(v[1] if v else None, ".1f") for v in vals)
        line += "   " + "/".join(fmt(v[2] if v else None, ".0f") for v, t in zip(vals, targets) if t.proc)
        print(line)
    print("ratios: higher is better for nvrfs (times are inverted); 'kept up' counts streams within "
          f"{KEEP_UP_SLACK:.0f} s of schedule; CPU s/GiB counts the benchmark tools and FUSE daemons, "
          "not kernel threads (btrfs's own work)")
    if stored_mib is not None:
        print(f"(e): every mirror holds the same recordings, {stored_mib:.0f} MiB stored per nvrfs member")


if __name__ == "__main__":
    sys.exit(main())
