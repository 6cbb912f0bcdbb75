#!/usr/bin/env python3
"""A recorder's churn of a camera directory, or a player reading it, for a
number of seconds (t32). One process per role, each in its own loop, so the
roles race each other on the same paths through the kernel like separate
programs do.

    path_churn.py ROLE DIR STOP      (a writer: until the file STOP exists)
    path_churn.py read DIR SECONDS OPENS

ROLE is one of
  rename    rewrites live.m3u8 through live.m3u8.tmp and a rename over it
  append    appends to grow.ts (a segment being recorded)
  truncate  cuts cut.ts to a random length, by descriptor and by path in turn
  recycle   deletes recycled.ts and records it anew
  read      opens and reads each of the four to the end, again and again,
            for SECONDS and until it has made OPENS opens (a slow machine,
            a sanitizer build), at most five times SECONDS

Every error goes to stderr as "PATH: STRERROR", one line each, and the loop
goes on. The reader prints how many opens it made.

A process per operation (cat, head, mv in a shell loop) made some 50 opens
a second on 2 busy cores, most of it fork and exec; here the time goes to
the file system under test.
"""
import os
import random
import sys
import time

FILES = ("live.m3u8", "grow.ts", "cut.ts", "recycled.ts")
PIECE = 8192  # what head(1) writes at a time


def report(path, err):
    print(f"{path}: {os.strerror(err.errno)}", file=sys.stderr, flush=True)


def write_new(path, size, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        data = os.urandom(size)
        for off in range(0, size, PIECE):
            os.write(fd, data[off:off + PIECE])
    finally:
        os.close(fd)


def step(role, d, n):
    if role == "rename":
        write_new(f"{d}/live.m3u8.tmp", random.randrange(131072))
        os.rename(f"{d}/live.m3u8.tmp", f"{d}/live.m3u8")
    elif role == "append":
        write_new(f"{d}/grow.ts", random.randrange(1, 70001), os.O_WRONLY | os.O_APPEND)
    elif role == "truncate":
        size = random.randrange(196608)
        if n % 2:
            os.truncate(f"{d}/cut.ts", size)
        else:
            fd = os.open(f"{d}/cut.ts", os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o644)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
    elif role == "recycle":
        try:
            os.unlink(f"{d}/recycled.ts")
        except FileNotFoundError:
            pass
        write_new(f"{d}/recycled.ts", random.randrange(1, 32769))


def read_all(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 131072):
            pass
    finally:
        os.close(fd)


def reader(d, seconds, opens):
    start = time.monotonic()
    n = 0
    while True:
        took = time.monotonic() - start
        if took >= 5 * seconds or (took >= seconds and n >= opens):
            break
        for f in FILES:
            n += 1
            try:
                read_all(f"{d}/{f}")
            except OSError as e:
                report(f"{d}/{f}", e)
    print(n)


def main():
    role, d = sys.argv[1], sys.argv[2]
    if role == "read":
        reader(d, float(sys.argv[3]), int(sys.argv[4]))
        return
    stop = sys.argv[3]
    n = 0
    while not os.path.exists(stop):
        n += 1
        try:
            step(role, d, n)
        except OSError as e:
            report(e.filename or d, e)
        # A recorder writes at its cameras' pace (grow.ts: about 1 MB/s, an
        # 8 Mbit/s camera); the players read flat out.
        time.sleep(0.035 if role == "append" else 0.01)


if __name__ == "__main__":
    main()
