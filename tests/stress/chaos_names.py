#!/usr/bin/env python3
"""Several processes doing random operations on the same few names — opens
(some O_TRUNC, O_APPEND), pwrite/pread, truncate by path, rename over each
other across directories, unlink while open, mkdir/rmdir/rename of two
subdirectories — count the errnos and print "SEED N ops {errno: count}".
t42 runs four at once for 8 s. It found, on Debian 12 (libfuse 3.14.0): the
mount hung within seconds (libfuse's high-level API deadlocks on a rename of
a name onto itself: fuse/wire_guard.hpp), and false TamperDetected and
MemberInconsistent alerts for files unlinked while open and for opens racing
an unlink. A hung mount shows as a process that never prints.

usage: chaos_names.py DIR SEED SECONDS   (run 4 at once on one DIR;
SKIP=op,op leaves operations out)
"""
import errno
import os
import random
import sys
import time
top, seed, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(seed); names = ["a.mp4","b.mp4","c.mp4","d/x.mp4","d/y.mp4","e/x.mp4"]
OPS = [o for o in ["open","open","write","write","read","read","close","trunc","rename","unlink","mkdir","rmdir","renamedir","stat","list"] if o not in os.environ.get("SKIP","").split(",")]
fds = []; errs = {}; n = 0
def p(x): return os.path.join(top, x)
end = time.time() + secs
while time.time() < end:
    n += 1
    op = rng.choice(OPS)
    try:
        if op == "open":
            fds.append(os.open(p(rng.choice(names)), rng.choice([os.O_RDWR, os.O_WRONLY, os.O_RDONLY, os.O_WRONLY|os.O_APPEND]) | os.O_CREAT | (os.O_TRUNC if rng.random()<0.1 else 0), 0o644))
        elif op == "write" and fds: os.pwrite(rng.choice(fds), rng.randbytes(rng.choice([100, 65536, 200000])), rng.randrange(0, 1<<20))
        elif op == "read" and fds: os.pread(rng.choice(fds), 100000, rng.randrange(0, 1<<20))
        elif op == "close" and fds: os.close(fds.pop(rng.randrange(len(fds))))
        elif op == "trunc": os.truncate(p(rng.choice(names)), rng.randrange(0, 1<<20))
        elif op == "rename": os.rename(p(rng.choice(names)), p(rng.choice(names)))
        elif op == "unlink": os.unlink(p(rng.choice(names)))
        elif op == "mkdir": os.mkdir(p(rng.choice(["d","e"])))
        elif op == "rmdir": os.rmdir(p(rng.choice(["d","e"])))
        elif op == "renamedir": os.rename(p(rng.choice(["d","e"])), p(rng.choice(["d","e"])))
        elif op == "stat": os.stat(p(rng.choice(names)))
        elif op == "list": os.listdir(top); os.listdir(p(rng.choice(["d","e"])))
    except OSError as e:
        errs[errno.errorcode.get(e.errno, e.errno)] = errs.get(errno.errorcode.get(e.errno, e.errno), 0) + 1
for f in fds: os.close(f)
print(seed, n, "ops", errs)
