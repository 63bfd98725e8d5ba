#!/usr/bin/env python3
# tests/fuzz/seeds/provider_reply.py FAKE_BIN [OUT]: writes
# corpus/provider_reply/ from real exchanges with farm-fake-provider
# (tests/fake): it starts the fake on a free port, submits to its hf, bfl and
# fal endpoints (with prompt markers for its faults), follows the polling
# URLs, and stores each reply in fuzz_provider_reply.c's input form: byte 0
# the curl code (0), bytes 1-2 the status, the headers, an empty line, the body.
import http.client, json, os, subprocess, sys, urllib.parse

fake = subprocess.Popen([sys.argv[1], "--port", "0", "--polls", "1"], stdout=subprocess.PIPE)
port = int(fake.stdout.readline())
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "corpus", "provider_reply")
os.makedirs(out, exist_ok=True)

def call(name, method, url, body=None, headers=None):
    u = urllib.parse.urlsplit(url if url.startswith("http") else "http://127.0.0.1:%d%s" % (port, url))
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"} if data else {}
    h.update(headers or {})
    c.request(method, u.path + ("?" + u.query if u.query else ""), data, h)
    r = c.getresponse()
    raw = r.read()
    seed = bytes([0, r.status >> 8, r.status & 0xFF])
    seed += b"".join(b"%s: %s\n" % (k.lower().encode(), v.encode()) for k, v in r.getheaders())
    seed += b"\n" + raw[:16384]  # an image reply: its first bytes are what the parsers look at
    with open(os.path.join(out, name), "wb") as f:
        f.write(seed)
    c.close()
    try:
        return json.loads(raw)
    except ValueError:
        return None

try:
    hf = "/hf/models/black-forest-labs/FLUX.1-dev"
    auth = {"Authorization": "Bearer hf_x"}
    for m in ["", "model_loading", "rate_limit", "auth_401", "credits_402", "validation_422",
              "server_500", "bad_gateway_502", "unavailable_503", "gateway_timeout_504"]:
        p = "a cat" + (" [[%s]]" % m if m else "")
        call("hf_" + (m or "image"), "POST", hf, {"inputs": p, "parameters": {"width": 64, "height": 64}}, auth)
    call("hf_legacy", "POST", "/hf-legacy/models/a/b", {"inputs": "a"}, auth)
    call("hf_hub", "GET", "/hf-hub/api/models/black-forest-labs/FLUX.1-dev")

    key = {"x-key": "k"}
    for m in ["", "content_moderated", "request_moderated", "bfl_error", "task_not_found",
              "poll_422_with_task", "rate_limit"]:
        tag = m or "ok"
        p = "a dog" + (" [[%s]]" % m if m else "")
        j = call("bfl_submit_" + tag, "POST", "/bfl/v1/flux-pro-1.1", {"prompt": p, "width": 256, "height": 256}, key)
        for i in range(3):
            if not j or "polling_url" not in j:
                break
            j2 = call("bfl_poll_%s_%d" % (tag, i), "GET", j["polling_url"], None, key)
            if not j2 or j2.get("status") != "Pending":
                break
    call("bfl_no_key", "POST", "/bfl/v1/flux-pro-1.1", {"prompt": "a"})

    fk = {"Authorization": "Key k"}
    for m in ["", "nsfw_flag", "fal_failed_result", "rate_limit", "validation_422"]:
        tag = m or "ok"
        p = "a bird" + (" [[%s]]" % m if m else "")
        j = call("fal_submit_" + tag, "POST", "/fal/fal-ai/flux/dev", {"prompt": p, "image_size": {"width": 256, "height": 256}}, fk)
        if not j or "status_url" not in j:
            continue
        for i in range(3):
            s = call("fal_status_%s_%d" % (tag, i), "GET", j["status_url"], None, fk)
            if s and s.get("status") == "COMPLETED":
                break
        call("fal_result_" + tag, "GET", j["response_url"], None, fk)
finally:
    fake.terminate()
    fake.wait()
