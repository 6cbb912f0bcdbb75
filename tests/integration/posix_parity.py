#!/usr/bin/env python3
"""POSIX parity: the same calls, in the same order, on a reference directory
(plain ext4) and on nvrfs; every result and errno is compared call by call
(the approach of mergerfs's tests).

usage: posix_parity.py REFERENCE_DIR NVRFS_DIR [--only SUBSTRING]

Prints one line per call that differs and ends with
"parity: N calls, N same, N documented differences, N unexpected".
Exit status 1 when a call differs in a way docs/format.md does not document,
or a documented difference is not what nvrfs answered.
"""
import ctypes
import errno
import os
import socket
import stat
import sys

libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

# Where nvrfs answers differently on purpose (docs/format.md, "POSIX"):
# call name -> the result nvrfs gives.
DOCUMENTED = {
    "link file": "err:EPERM",                  # hard links: every stored file has one name
    "link then stat nlink": "err:ENOENT",      # (follows from the above)
    "mknod char device": "err:EPERM",          # device nodes would open the member's devices
    "fallocate punch hole": "err:ENOTSUP",  # recordings are not rewritten in place
}


def fallocate(fd, mode, off, length):
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def renameat2(a, b, flags):
    libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def kind(mode):
    for test, name in ((stat.S_ISREG, "reg"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "lnk"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "sock"), (stat.S_ISCHR, "chr")):
        if test(mode):
            return name
    return "?"


def lmode(p):
    st = os.lstat(p)
    return f"{kind(st.st_mode)} {stat.S_IMODE(st.st_mode):o}"


def write_file(p, data, mode=0o644):
    with opened(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode) as fd:
        os.write(fd, data)


def read_file(p):
    with open(p, "rb") as f:
        return f.read()


def create_under_umask(p, mask, mode):
    old = os.umask(mask)
    try:
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, mode))
    finally:
        os.umask(old)
    return lmode(p)


class opened:
    """with opened(path, flags[, mode]) as fd: ... — closed however the block ends."""

    def __init__(self, p, flags, mode=0o644):
        self.fd = os.open(p, flags, mode)

    def __enter__(self):
        return self.fd

    def __exit__(self, *exc):
        os.close(self.fd)


def mknod_char(p):
    os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    return lmode(p)


# Each case: (name, function run with the test directory as cwd). A case
# returns what it observed; an OSError becomes "err:<ERRNO>".
def cases():
    c = []

    def case(name):
        def reg(f):
            c.append((name, f))
            return f
        return reg

    # --- create modes and umask -------------------------------------------
    @case("create 04777 under umask 0")
    def _():
        return create_under_umask("m4777", 0, 0o4777)

    @case("create 0666 under umask 022")
    def _():
        return create_under_umask("m666", 0o22, 0o666)

    @case("create 0640 under umask 0")
    def _():
        return create_under_umask("m640", 0, 0o640)

    @case("create O_EXCL over an existing file")
    def _():
        os.close(os.open("m666", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))

    @case("chmod 000 then stat")
    def _():
        os.chmod("m666", 0)
        r = lmode("m666")
        os.chmod("m666", 0o644)
        return r

    # --- sizes and holes ----------------------------------------------------
    @case("truncate grow to 1 GiB, size and tail")
    def _():
        write_file("sparse", b"head")
        os.truncate("sparse", 1 << 30)
        with opened("sparse", os.O_RDONLY) as fd:
            return (os.fstat(fd).st_size, os.pread(fd, 8, 0), os.pread(fd, 16, (1 << 30) - 16))

    @case("write into the middle of a hole")
    def _():
        with opened("sparse", os.O_RDWR) as fd:
            os.pwrite(fd, b"middle", 500 << 20)
            return (os.pread(fd, 10, (500 << 20) - 2), os.fstat(fd).st_size)

    @case("write past the end leaves zeros")
    def _():
        with opened("past", os.O_CREAT | os.O_RDWR, 0o644) as fd:
            os.pwrite(fd, b"x", 3_000_000)
            return (os.fstat(fd).st_size, os.pread(fd, 4, 2_999_998), os.pread(fd, 4, 0))

    @case("truncate shrink")
    def _():
        os.truncate("past", 100)
        return (os.stat("past").st_size, read_file("past") == bytes(100))

    @case("posix_fallocate grows the file")
    def _():
        with opened("falloc", os.O_CREAT | os.O_RDWR, 0o644) as fd:
            os.posix_fallocate(fd, 0, 10 << 20)
            return (os.fstat(fd).st_size, os.pread(fd, 4, (10 << 20) - 4))

    @case("fallocate KEEP_SIZE keeps the size")
    def _():
        with opened("falloc", os.O_RDWR) as fd:
            fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 20 << 20)
            return os.fstat(fd).st_size

    @case("fallocate punch hole")
    def _():
        with opened("falloc", os.O_RDWR) as fd:
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
            return os.fstat(fd).st_size

    @case("ftruncate on a read-only descriptor")
    def _():
        with opened("falloc", os.O_RDONLY) as fd:
            os.ftruncate(fd, 0)

    # --- open but unlinked --------------------------------------------------
    @case("read an open file after unlink")
    def _():
        write_file("gone", b"hi\n")
        with opened("gone", os.O_RDONLY) as fd:
            os.unlink("gone")
            return (os.read(fd, 10), os.fstat(fd).st_size, os.path.exists("gone"))

    @case("write, unlink, write, pread, fstat")
    def _():
        with opened("gone2", os.O_CREAT | os.O_RDWR) as fd:
            os.write(fd, b"abc" * 1000)
            os.unlink("gone2")
            os.write(fd, b"more")
            return (os.pread(fd, 6, 0), os.pread(fd, 4, 3000), os.fstat(fd).st_size)

    @case("unlinked open file survives rmdir of its directory")
    def _():
        os.mkdir("dd")
        with opened("dd/x", os.O_CREAT | os.O_RDWR) as fd:
            os.write(fd, b"x" * 100)
            os.unlink("dd/x")
            os.rmdir("dd")
            return (os.pread(fd, 4, 0), os.path.exists("dd"))

    @case("listing after the last handle closed")
    def _():
        return sorted(n for n in os.listdir(".") if n.startswith(("gone", ".fuse")))

    # --- symlinks -------------------------------------------------------------
    @case("symlink, readlink, lstat")
    def _():
        os.symlink("target/that/is/missing", "dangling")
        st = os.lstat("dangling")
        return (os.readlink("dangling"), kind(st.st_mode), st.st_size)

    @case("stat through a dangling symlink")
    def _():
        os.stat("dangling")

    @case("symlink to a file: stat and read follow it")
    def _():
        write_file("real", b"real data")
        os.symlink("real", "link")
        return (os.stat("link").st_size, read_file("link"), lmode("link"))

    @case("symlink over an existing name")
    def _():
        os.symlink("x", "real")

    @case("symlink with a 4095-byte target")
    def _():
        t = "t" * 4095
        os.symlink(t, "longtarget")
        return os.readlink("longtarget") == t

    @case("readlink of a regular file")
    def _():
        os.readlink("real")

    @case("utimensat AT_SYMLINK_NOFOLLOW on a symlink")
    def _():
        os.utime("link", ns=(1_000_000_000, 2_000_000_000), follow_symlinks=False)
        return (os.lstat("link").st_mtime_ns, os.stat("real").st_mtime_ns == 2_000_000_000)

    @case("rename a symlink over a file")
    def _():
        write_file("victim", b"v")
        os.rename("link", "victim")
        return (lmode("victim"), os.readlink("victim"), os.path.exists("link"))

    @case("symlink to a directory, path through it")
    def _():
        os.mkdir("realdir")
        write_file("realdir/f", b"inside")
        os.symlink("realdir", "dirlink")
        return (read_file("dirlink/f"), sorted(os.listdir("dirlink")))

    @case("unlink a symlink leaves its target")
    def _():
        os.unlink("dirlink")
        return (os.path.lexists("dirlink"), os.path.isdir("realdir"))

    # --- fifos, sockets, devices, hard links ---------------------------------
    @case("mkfifo 0640")
    def _():
        os.mkfifo("fifo", 0o640)
        return lmode("fifo")

    @case("chmod a fifo")
    def _():
        os.chmod("fifo", 0o600)
        return lmode("fifo")

    @case("rename a fifo")
    def _():
        os.rename("fifo", "fifo2")
        return lmode("fifo2")

    @case("unix socket bound in the directory")
    def _():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind("sock")
            return kind(os.lstat("sock").st_mode)
        finally:
            s.close()

    @case("unlink a socket and a fifo")
    def _():
        os.unlink("sock")
        os.unlink("fifo2")
        return (os.path.lexists("sock"), os.path.lexists("fifo2"))

    @case("mknod char device")
    def _():
        return mknod_char("chr")

    @case("link file")
    def _():
        os.link("real", "hard")
        return os.stat("real").st_nlink

    @case("link then stat nlink")
    def _():
        return os.stat("hard").st_nlink

    # --- rename across types ----------------------------------------------------
    def prep_rename():
        for d in ("ra", "rb", "rfull"):
            os.mkdir(d)
        write_file("rfull/x", b"x")
        write_file("rf1", b"1")
        write_file("rf2", b"2")

    @case("rename file over file")
    def _():
        prep_rename()
        os.rename("rf1", "rf2")
        return (read_file("rf2"), os.path.exists("rf1"))

    @case("rename file over directory")
    def _():
        os.rename("rf2", "ra")

    @case("rename directory over file")
    def _():
        os.rename("ra", "rf2")

    @case("rename directory over non-empty directory")
    def _():
        os.rename("ra", "rfull")

    @case("rename directory over empty directory")
    def _():
        os.rename("ra", "rb")
        return (os.path.isdir("rb"), os.path.exists("ra"))

    @case("rename directory into itself")
    def _():
        os.mkdir("rb/sub")
        os.rename("rb", "rb/sub/inner")

    @case("rename onto itself")
    def _():
        os.rename("rf2", "rf2")
        return read_file("rf2")

    @case("rename a missing name")
    def _():
        os.rename("nothing", "other")

    @case("rename NOREPLACE over an existing name")
    def _():
        write_file("rf3", b"3")
        renameat2("rf3", "rf2", RENAME_NOREPLACE)

    @case("rename EXCHANGE file and directory")
    def _():
        renameat2("rf3", "rb", RENAME_EXCHANGE)
        return (kind(os.lstat("rf3").st_mode), kind(os.lstat("rb").st_mode), read_file("rb"))

    @case("rename with a missing parent")
    def _():
        os.rename("rb", "nodir/rb")

    # --- directories --------------------------------------------------------------
    @case("rmdir a non-empty directory")
    def _():
        os.rmdir("rfull")

    @case("rmdir a file")
    def _():
        os.rmdir("rf2")

    @case("unlink a directory")
    def _():
        os.unlink("rfull")

    @case("mkdir over an existing name")
    def _():
        os.mkdir("rf2")

    @case("open O_DIRECTORY on a file")
    def _():
        os.open("rf2", os.O_RDONLY | os.O_DIRECTORY)

    @case("create below a file")
    def _():
        write_file("rf2/x", b"")

    # --- names and paths ------------------------------------------------------------
    @case("255-byte name")
    def _():
        n = "n" * 255
        write_file(n, b"long name")
        return (read_file(n), n in os.listdir("."))

    @case("rename a 255-byte name")
    def _():
        os.rename("n" * 255, "m" * 255)
        return (read_file("m" * 255), ("n" * 255) in os.listdir("."))

    @case("255-byte directory name with a file below")
    def _():
        d = "d" * 255
        os.mkdir(d)
        write_file(d + "/" + "f" * 255, b"deep")
        return (read_file(d + "/" + "f" * 255), os.listdir(d) == ["f" * 255])

    @case("256-byte name")
    def _():
        write_file("n" * 256, b"")

    def deep_path(comp):
        """Directories of `comp` down to ~4000 bytes, a file at the bottom."""
        depth, p = 0, "."
        while len(p) + len(comp) + 1 < 4000:
            p = p + "/" + comp
            os.mkdir(p)
            depth += 1
        write_file(p + "/end", b"end")
        return (depth, read_file(p + "/end"), os.listdir(p))

    @case("a path near PATH_MAX (200-byte names, stored long)")
    def _():
        return deep_path("p" * 200)

    @case("a path beyond PATH_MAX on the members (150-byte names)")
    def _():
        return deep_path("q" * 150)

    return c


def run(cases_, base):
    out = {}
    for name, fn in cases_:
        os.chdir(base)
        try:
            r = fn()
            out[name] = "ok" if r is None else f"ok:{r!r}"
        except OSError as e:
            out[name] = "err:" + errno.errorcode.get(e.errno, str(e.errno))
        except Exception as e:  # noqa: BLE001 - a crash of a case is a result too
            out[name] = f"exception:{type(e).__name__}:{e}"
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    ref, nvr = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    only = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--only" else ""
    cs = [c for c in cases() if only in c[0]]
    a, b = run(cs, ref), run(cs, nvr)
    same = documented = unexpected = 0
    for name, _ in cs:
        if name in DOCUMENTED and a[name] != b[name]:
            if b[name] == DOCUMENTED[name]:
                documented += 1
                print(f"  documented: {name}: reference {a[name]}, nvrfs {b[name]}")
                continue
            unexpected += 1
            print(f"  DIFFERS: {name}: reference {a[name]}, nvrfs {b[name]} (documented: {DOCUMENTED[name]})")
        elif a[name] == b[name]:
            same += 1
            if os.environ.get("VERBOSE"):
                print(f"  same: {name}: {a[name]}")
        else:
            unexpected += 1
            print(f"  DIFFERS: {name}: reference {a[name]}, nvrfs {b[name]}")
    print(f"parity: {len(cs)} calls, {same} same, {documented} documented differences, {unexpected} unexpected")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
