"""peers.py — loop-backed file systems for compare.py --peers (issue 17).

What an administrator would build instead of nvrfs, on the same disk as
nvrfs: btrfs RAID1 (data and metadata) over two loop files, and the ext4
file systems on loop files that nvrfs's members, the raw mirror and
gocryptfs use, so that every target writes through a loop device the
same way. Everything made here is undone by Stack.close(), newest first."""
import os, subprocess, time


def run(*a, **kw):
    return subprocess.run(a, check=True, **kw)


class Stack:
    """Undo actions, run newest first; a failing one does not stop the rest."""

    def __init__(self):
        self.undo = []

    def push(self, fn):
        self.undo.append(fn)

    def close(self):
        while self.undo:
            try:
                self.undo.pop()()
            except Exception as e:  # the rest must still be undone
                print(f"peers: cleanup: {e}", flush=True)


def loop_device(stack, image, gib):
    """A sparse image file of gib GiB on a loop device; returns the device."""
    with open(image, "wb") as f:
        f.truncate(gib << 30)
    dev = run("losetup", "-f", "--show", image, capture_output=True, text=True).stdout.strip()
    stack.push(lambda: run("losetup", "-d", dev))
    return dev


def mount(stack, dev, mnt):
    os.makedirs(mnt, exist_ok=True)
    run("mount", dev, mnt)
    stack.push(lambda: unmount(mnt))


def unmount(mnt):
    for _ in range(50):  # a FUSE daemon on top may still be letting go
        if subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.1)
    run("umount", "-l", mnt)


def ext4(stack, base, name, gib):
    """An ext4 file system on its own loop file, mounted at base/name."""
    dev = loop_device(stack, f"{base}/{name}.img", gib)
    run("mkfs.ext4", "-q", "-F", dev)
    mnt = f"{base}/{name}"
    mount(stack, dev, mnt)
    os.rmdir(f"{mnt}/lost+found")
    return mnt


class Btrfs:
    """btrfs -d raid1 -m raid1 over two loop files, and a third loop file
    standing by as the replacement for `btrfs replace`."""

    def __init__(self, stack, base, gib):
        self.devs = [loop_device(stack, f"{base}/btrfs{i}.img", gib) for i in (1, 2)]
        self.spare = loop_device(stack, f"{base}/btrfs3.img", gib)
        run("mkfs.btrfs", "-q", "-f", "-d", "raid1", "-m", "raid1", *self.devs)
        self.mnt = f"{base}/btrfs"
        mount(stack, self.devs[0], self.mnt)

    def replace(self):
        """Replaces the second device by the spare, which it becomes (the device
        replaced is the next spare); returns seconds until done."""
        t0 = time.monotonic()
        run("btrfs", "replace", "start", "-B", "-f", self.devs[1], self.spare, self.mnt, stdout=subprocess.DEVNULL)
        run("sync", "-f", self.mnt)
        secs = time.monotonic() - t0
        self.devs[1], self.spare = self.spare, self.devs[1]
        return secs

    def scrub(self):
        """Reads and checks both copies of everything; returns seconds."""
        t0 = time.monotonic()
        run("btrfs", "scrub", "start", "-B", self.mnt, stdout=subprocess.DEVNULL)
        return time.monotonic() - t0
