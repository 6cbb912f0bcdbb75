#!/usr/bin/env python3
"""Random file operations against an in-memory model, in the manner of fsx
(xfstests): several files, each open through several descriptors at once
(read-only, write-only, read-write, append), written with pwrite, write and
shared mmap, cut and grown with ftruncate, truncate and fallocate, renamed
over each other (also into and out of a subdirectory, which is itself
renamed while files in it are open) and unlinked while open. Every read,
every size and, every few hundred steps and at the end, every whole file
is compared with the model. nvrfs splits files into sealed chunks, gives write-only descriptors
FUSE direct I/O and the others the page cache, and keeps unlinked open files
hidden: the places where such a file system goes wrong.

usage: fsx_model.py DIR [--ops N] [--seed S] [--save FILE | --check FILE]

--save writes the names and SHA-256 of what DIR should hold at the end;
--check (no operations) compares DIR with such a file, after a remount.
Exit status 1 at the first difference, with the step, the seed and the
last operations, so that the run can be repeated.
"""
import argparse
import ctypes
import hashlib
import json
import mmap
import os
import random
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE = 1
TOP_NAMES = ["a.mp4", "b.mp4", "c.mp4"]
SUB_NAMES = ["x.mp4", "y.mp4"]
DIRS = ["cam1", "cam2"]
MAX_SIZE = 3 << 20
MODES = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR,
         "wa": os.O_WRONLY | os.O_APPEND, "rwa": os.O_RDWR | os.O_APPEND}


class Mismatch(Exception):
    pass


class Inode:
    """What one file holds, whatever names or descriptors reach it."""
    def __init__(self):
        self.data = bytearray()

    def write(self, off, buf):
        if len(self.data) < off:
            self.data.extend(bytes(off - len(self.data)))
        self.data[off:off + len(buf)] = buf

    def resize(self, n):
        if n < len(self.data):
            del self.data[n:]
        else:
            self.data.extend(bytes(n - len(self.data)))


class Run:
    def __init__(self, top, seed):
        self.top, self.rng = top, random.Random(seed)
        self.names = {}      # name -> Inode
        self.fds = []        # (fd, mode, Inode)
        self.log = []
        self.dir = DIRS[0]   # the one subdirectory, renamed between DIRS[0] and DIRS[1]
        os.mkdir(self.path(self.dir))

    def all_names(self):
        return TOP_NAMES + [f"{self.dir}/{n}" for n in SUB_NAMES]

    def path(self, name):
        return os.path.join(self.top, name)

    def blob(self, n):
        return self.rng.randbytes(n)

    def expect(self, what, got, want):
        if got != want:
            diff = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want))) \
                if isinstance(got, (bytes, bytearray)) else None
            raise Mismatch(f"{what}: got {len(got) if diff is not None else got!r}"
                           f"{' bytes' if diff is not None else ''}, model "
                           f"{len(want) if diff is not None else want!r}"
                           + (f"; first difference at byte {diff}" if diff is not None else ""))

    # -- operations; each returns a line for the log --
    def op_open(self):
        name, mode = self.rng.choice(self.all_names()), self.rng.choice(list(MODES))
        trunc = mode != "r" and self.rng.random() < 0.1
        fd = os.open(self.path(name), MODES[mode] | os.O_CREAT | (os.O_TRUNC if trunc else 0), 0o644)
        ino = self.names.setdefault(name, Inode())
        if trunc:
            ino.resize(0)
        self.fds.append((fd, mode, ino))
        return f"open {name} {mode}{' trunc' if trunc else ''} -> {fd}"

    def op_close(self):
        fd, mode, _ = self.fds.pop(self.rng.randrange(len(self.fds)))
        os.close(fd)
        return f"close {fd}"

    def pick(self, want):
        fds = [f for f in self.fds if want in f[1]]
        return self.rng.choice(fds) if fds else None

    def op_write(self):
        f = self.pick("w")
        if not f:
            return self.op_open()
        fd, mode, ino = f
        n = self.rng.choice([1, 17, 4096, 65536, 65537, 200000, self.rng.randrange(1, 300000)])
        off = self.rng.randrange(0, min(len(ino.data) + 200000, MAX_SIZE))
        buf = self.blob(n)
        if mode.endswith("a"):  # O_APPEND: every write lands at the end, pwrite's offset too
            off = len(ino.data)
            self.expect(f"write of {n} to {fd}", os.pwrite(fd, buf, 0), n)
        else:
            self.expect(f"pwrite of {n} at {off} to {fd}", os.pwrite(fd, buf, off), n)
        ino.write(off, buf)
        return f"pwrite {fd} {mode} off {off} len {n}"

    def op_read(self):
        f = self.pick("r")
        if not f:
            return self.op_open()
        fd, _, ino = f
        off = self.rng.randrange(0, len(ino.data) + 70000)
        n = self.rng.choice([1, 4096, 65536, 131072, self.rng.randrange(1, 400000)])
        self.expect(f"pread {n} at {off} from {fd}", os.pread(fd, n, off), bytes(ino.data[off:off + n]))
        return f"pread {fd} off {off} len {n}"

    def op_truncate(self):
        n = self.rng.choice([0, self.rng.randrange(0, MAX_SIZE), 65536 * self.rng.randrange(0, 40)])
        f = self.pick("w")
        if f and self.rng.random() < 0.6:
            fd, _, ino = f
            os.ftruncate(fd, n)
            ino.resize(n)
            return f"ftruncate {fd} {n}"
        name = self.rng.choice(list(self.names) or self.all_names())
        if name not in self.names:
            return self.op_open()
        os.truncate(self.path(name), n)
        self.names[name].resize(n)
        return f"truncate {name} {n}"

    def op_fallocate(self):
        f = self.pick("w")
        if not f or f[1].endswith("a"):
            return self.op_open()
        fd, _, ino = f
        keep = self.rng.random() < 0.5
        off, n = self.rng.randrange(0, MAX_SIZE), self.rng.randrange(1, 300000)
        if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE if keep else 0, off, n) != 0:
            raise Mismatch(f"fallocate {fd} {off} {n}: {os.strerror(ctypes.get_errno())}")
        if not keep and off + n > len(ino.data):
            ino.resize(off + n)
        return f"fallocate {fd} {'keep ' if keep else ''}off {off} len {n}"

    def op_mmap(self):
        f = self.pick("rw")
        if not f or f[1].endswith("a") or not f[2].data:
            return self.op_read()
        fd, _, ino = f
        size = len(ino.data)
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            off = self.rng.randrange(0, size)
            n = min(self.rng.randrange(1, 150000), size - off)
            self.expect(f"mmap read {n} at {off} of {fd}", m[off:off + n], bytes(ino.data[off:off + n]))
            buf = self.blob(n)
            m[off:off + n] = buf
            ino.write(off, buf)
            m.flush()  # msync: the other descriptors (direct I/O ones too) must see it now
        return f"mmap {fd} off {off} len {n}"

    def op_fsync(self):
        f = self.pick("")
        if not f:
            return self.op_open()
        (os.fdatasync if self.rng.random() < 0.5 else os.fsync)(f[0])
        return f"fsync {f[0]}"

    def op_rename(self):
        src, dst = self.rng.sample(self.all_names(), 2)
        if src not in self.names:
            return self.op_open()
        os.rename(self.path(src), self.path(dst))
        self.names[dst] = self.names.pop(src)
        return f"rename {src} {dst}"

    def op_unlink(self):
        if not self.names:
            return self.op_open()
        name = self.rng.choice(list(self.names))
        os.unlink(self.path(name))
        del self.names[name]
        return f"unlink {name}"

    def op_rename_dir(self):
        new = DIRS[1] if self.dir == DIRS[0] else DIRS[0]
        os.rename(self.path(self.dir), self.path(new))
        self.names = {(new + n[len(self.dir):] if n.startswith(self.dir + "/") else n): i for n, i in self.names.items()}
        self.dir = new
        return f"rename dir -> {new}"

    def check_sizes(self):
        for fd, _, ino in self.fds:
            self.expect(f"fstat size of {fd}", os.fstat(fd).st_size, len(ino.data))
        for name, ino in self.names.items():
            self.expect(f"stat size of {name}", os.stat(self.path(name)).st_size, len(ino.data))

    def listing(self):
        # libfuse keeps a file unlinked or renamed over while open under a
        # hidden name until its last descriptor closes (hard_remove off).
        sub = [f"{self.dir}/{n}" for n in os.listdir(self.path(self.dir))]
        return sorted(n for n in os.listdir(self.top) + sub
                      if not n.split("/")[-1].startswith(".fuse_hidden") and n != self.dir)

    def check_contents(self):
        self.expect("names", self.listing(), sorted(self.names))
        for name, ino in self.names.items():
            with open(self.path(name), "rb") as f:
                self.expect(f"content of {name}", f.read(), bytes(ino.data))

    def run(self, ops):
        table = [(self.op_write, 30), (self.op_read, 25), (self.op_open, 8), (self.op_close, 6),
                 (self.op_truncate, 6), (self.op_fallocate, 4), (self.op_mmap, 8), (self.op_fsync, 3),
                 (self.op_rename, 3), (self.op_unlink, 2), (self.op_rename_dir, 1)]
        funcs, weights = zip(*table)
        for step in range(1, ops + 1):
            op = self.rng.choices(funcs, weights)[0]
            if op == self.op_close and not self.fds:
                op = self.op_open
            self.log = (self.log + [f"{step}: {op()}"])[-12:]
            self.check_sizes()
            if step % 250 == 0:
                self.check_contents()
        self.check_contents()
        for fd, _, _ in self.fds:
            os.close(fd)
        self.fds = []
        self.check_contents()
        for _ in range(50):  # the hidden files go with the (asynchronous) last release
            if self.everything() == sorted(self.names):
                break
            time.sleep(0.1)
        self.expect("names once all is closed", self.everything(), sorted(self.names))

    def everything(self):
        return sorted([n for n in os.listdir(self.top) if n != self.dir] +
                      [f"{self.dir}/{n}" for n in os.listdir(self.path(self.dir))])


def digest(top):
    out = {}
    for d, _, files in os.walk(top):
        for name in files:
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, top)] = hashlib.sha256(f.read()).hexdigest()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save")
    ap.add_argument("--check")
    a = ap.parse_args()
    if a.check:
        want, got = json.load(open(a.check)), digest(a.dir)
        print(f"fsx: {len(got)} files, {'as saved' if got == want else 'NOT as saved'}")
        return 0 if got == want else 1
    r = Run(a.dir, a.seed)
    try:
        r.run(a.ops)
    except (Mismatch, OSError) as e:
        print(f"fsx: seed {a.seed}: {e}\nlast operations:\n  " + "\n  ".join(r.log))
        return 1
    if a.save:
        json.dump(digest(a.dir), open(a.save, "w"))
    print(f"fsx: seed {a.seed}: {a.ops} operations, {len(r.names)} files, all reads and sizes as the model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
