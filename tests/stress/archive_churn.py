#!/usr/bin/env python3
"""One recorder's directory under constant archive pressure: files written
(half of them dated three days back), renamed (some over another), unlinked,
rewritten, appended to and recalled (`nvrctl archive recall`) at random,
while the mover archives whatever is closed. Every file's bytes are kept in
a model and read back against it; at the end the model (name -> sha256),
the errnos met and the files that read otherwise go to OUT as JSON.
archive_churn.sh runs three at once. It found, on a real single-node Ceph:
ArchiveUnreachable raised and the mover backed off while radosgw answered
every request (the read-back after an upload asked for the file as a writer
had made it meanwhile).

usage: archive_churn.py DIR SEED SECONDS NVRCTL CONF OUT
"""
import errno
import hashlib
import json
import os
import random
import subprocess
import sys
import time

top, seed, secs, nvrctl, conf, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
rng = random.Random(seed)
os.makedirs(top, exist_ok=True)
model = {}  # name -> bytes
errs, bad = {}, []
n = nid = 0


def p(name):
    return os.path.join(top, name)


def note(op, e):
    k = f"{op}:{errno.errorcode.get(e.errno, e.errno)}"
    errs[k] = errs.get(k, 0) + 1


def verify(name):
    try:
        with open(p(name), "rb") as f:
            got = f.read()
    except OSError as e:
        note("verify", e)
        bad.append([name, str(e)])
        return
    if got != model[name]:
        bad.append([name, f"{len(got)} bytes read, {len(model[name])} written"])


def create():
    global nid
    nid += 1
    name = f"f{nid}.mp4"
    b = os.urandom(rng.randint(50_000, 2_000_000))
    with open(p(name), "wb") as f:
        f.write(b)
    model[name] = b
    if rng.random() < 0.5:
        os.utime(p(name), (time.time() - 3 * 86400,) * 2)


def step(op, name):
    global nid
    if op == "unlink":
        os.unlink(p(name))
        del model[name]
    elif op == "rename":
        others = [x for x in model if x != name]
        if others and rng.random() < 0.4:
            tgt = rng.choice(others)
        else:
            nid += 1
            tgt = f"f{nid}.mp4"
        os.rename(p(name), p(tgt))
        model[tgt] = model.pop(name)
    elif op == "recall":
        r = subprocess.run([nvrctl, "archive", "recall", p(name), "--config", conf],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            errs["recall-exit"] = errs.get("recall-exit", 0) + 1
            print("recall", name, r.returncode, r.stderr.strip()[:300], flush=True)
    elif op == "read":
        verify(name)
    elif op == "rewrite":
        b = os.urandom(rng.randint(50_000, 1_000_000))
        with open(p(name), "wb") as f:
            f.write(b)
        model[name] = b
    elif op == "append":
        b = os.urandom(rng.randint(1000, 200_000))
        try:
            with open(p(name), "ab") as f:
                f.write(b)
            model[name] += b
        except OSError as e:
            note("append", e)
            with open(p(name), "rb") as f:  # what it holds now
                model[name] = f.read()


OPS = ["create"] * 4 + ["rename", "unlink", "recall", "recall", "read", "read", "rewrite", "append"]
end = time.time() + secs
while time.time() < end:
    n += 1
    op = rng.choice(OPS)
    try:
        if op == "create" or not model:
            if len(model) < 20:
                create()
                continue
            op = "unlink"
        step(op, rng.choice(sorted(model)))
    except OSError as e:
        note(op, e)
for name in sorted(model):
    verify(name)
with open(out, "w") as f:
    json.dump({"ops": n, "errs": errs, "bad": bad,
               "files": {k: hashlib.sha256(v).hexdigest() for k, v in model.items()}}, f)
print(f"{top}: {n} operations, errors {errs}, {len(bad)} read otherwise {bad[:3]}")
