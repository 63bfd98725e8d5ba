#!/usr/bin/env python3
# tests/fuzz/seeds/queue_reply.py: writes corpus/queue_reply/, RESP answers
# of the shapes queue/lua/*.lua document at their tops (and Redis' errors),
# one file per answer. Rerun after a script's answer changes.
import os, sys

def resp(v):
    if isinstance(v, bool):
        raise TypeError
    if isinstance(v, int):
        return b":%d\r\n" % v
    if isinstance(v, bytes):
        return b"$%d\r\n%s\r\n" % (len(v), v)
    if isinstance(v, str):
        return resp(v.encode())
    if isinstance(v, list):
        return b"*%d\r\n" % len(v) + b"".join(resp(x) for x in v)
    if v is None:
        return b"$-1\r\n"
    if isinstance(v, tuple) and v[0] == "err":
        return b"-%s\r\n" % v[1].encode()
    if isinstance(v, tuple) and v[0] == "status":
        return b"+%s\r\n" % v[1].encode()
    raise TypeError(v)

G = "0b9c2a55-6d5e-4c8e-9f3a-1f2e3d4c5b6a"
U = "7e0c1d2b-3a4f-4e5d-8c6b-9a8f7e6d5c4b"
payload = '{"kind":"avatar","prompt":"a cat","width":1024,"height":1024}'
d = "%s\nfree\n0\n1764900000000\n%s" % (U, payload)
answers = {
    "enqueue_new": [1, "queued", 0],
    "enqueue_known": [0, "running", -1],
    "enqueue_cap": [-1, "queued", 5],
    "enqueue_einval": [-9, "EINVAL tier unknown"],
    "claim_two": [[G, d, 7, 1, G.replace("0b", "1b"), d.replace("\n0\n", "\n1764900600000\n"), 8, 2],
                  [[G.replace("0b", "2b"), U]], 1764900030000],
    "claim_empty": [[], [], 1764900030000],
    "claim_bad_data": [[G, "no newlines", 7, 1], [], 1],
    "claim_ended": [[], [], 1764900030000, [[G, U, "dead"], [G.replace("0b", "3b"), U, "canceled"]]],
    "heartbeat_ok": [1, 0, 1764900030000],
    "heartbeat_cancel": [1, 1, 1764900030000],
    "heartbeat_fenced": [-1, "done"],
    "finish_retry": [1, "delayed", 4000],
    "finish_missing": [-2],
    "cancel_canceling": [1, "canceling"],
    "event_id": [1, 12],
    "event_too_many": [-3],
    "position": ["queued", 3],
    "position_stage": ["running", -1, "decoding"],
    "position_none": [],
    "positions": ["queued", 3, "", "running", -1, "generating", "", -1, ""],
    "ratelimit": [1, 9, 0, 0],
    "ratelimit_at_cap": [0, 0, 600, 3],
    "stats": [["free", 3, "pro", 1], 2, 4, 1, 2, 30, 1, 5, 0, ["w-1", 1764900000000, 2, "w-2", 1764900001000, 0]],
    "gen_events": ["queued\n1764900000000\n{}", "running\n1764900001000\n{\"attempt\":1}", "noline"],
    "user_events": [["1764900000000-0", ["g", G, "n", 1, "t", "queued", "d", "{}"]],
                    ["1764900000001-0", ["g", G, "n", "2", "t", "done"]]],
    "dead_list": [[G, U, "free", "poison", 3, 1764900000000]],
    "count": 4,
    "err_notfound": ("err", "ERR Function not found"),
    "err_einval": ("err", "ERR user_script:1: EINVAL bad lease script: genfarm_claim"),
    "err_oom": ("err", "OOM command not allowed when used memory > 'maxmemory'."),
    "err_exists": ("err", "ERR Library 'genfarm' already exists"),
    "loaded": "genfarm",
    "status_ok": ("status", "OK"),
    "nil": None,
    "library_list": [["library_name", "genfarm", "engine", "LUA"]],
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "queue_reply")
os.makedirs(out, exist_ok=True)
for name, v in answers.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(resp(v))
# Several answers in one input: the reader yields them one after another.
with open(os.path.join(out, "pipelined"), "wb") as f:
    f.write(resp(answers["enqueue_new"]) + resp(answers["stats"]) + resp(answers["err_oom"]))
