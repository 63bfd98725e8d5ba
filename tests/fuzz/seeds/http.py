#!/usr/bin/env python3
# tests/fuzz/seeds/http.py [OUT]: writes corpus/http/, requests as curl,
# browsers and Node's fetch send them to fuzz_http.c's routes (API.md's
# shapes): keep-alive and pipelined requests, bodies by Content-Length and
# chunked, Expect: 100-continue, an SSE reconnect, HTTP/1.0, HEAD, and the
# requests the server must refuse (405, 404, 413, 431, 505, garbage).
import os, sys

G = "0b9c2a55-6d5e-4c8e-9f3a-1f2e3d4c5b6a"
TOK = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig"
body = b'{"kind":"avatar","prompt":"a cat"}'

def req(method, path, headers=(), body=b"", version="1.1"):
    h = [("Host", "127.0.0.1:8080")] + list(headers)
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in h):
        h.append(("Content-Length", str(len(body))))
    return ("%s %s HTTP/%s\r\n" % (method, path, version)).encode() + b"".join(
        ("%s: %s\r\n" % kv).encode() for kv in h) + b"\r\n" + body

def chunked(b, n=7):
    return b"".join(b"%x\r\n%s\r\n" % (len(b[i:i + n]), b[i:i + n]) for i in range(0, len(b), n)) + b"0\r\n\r\n"

curl = [("User-Agent", "curl/7.88.1"), ("Accept", "*/*")]
fetch = [("Connection", "keep-alive"), ("Accept", "*/*"), ("Accept-Language", "*"),
         ("Sec-Fetch-Mode", "cors"), ("User-Agent", "node"), ("Accept-Encoding", "gzip, deflate")]
seeds = {
    "healthz_curl": req("GET", "/healthz", curl),
    "get_generation": req("GET", "/v1/generations/%s?cursor=abc%%3D%%3D&x=1+2" % G, curl + [("Authorization", TOK)]),
    "post_generation_fetch": req("POST", "/v1/generations", fetch + [("Content-Type", "application/json"), ("Authorization", TOK), ("Idempotency-Key", "k-1")], body),
    "post_wrong_type": req("POST", "/v1/generations", curl + [("Content-Type", "text/plain")], body),
    "post_chunked": req("POST", "/v1/generations", curl + [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")], chunked(body)),
    "post_expect": req("POST", "/v1/uploads", curl + [("Content-Type", "application/json"), ("Expect", "100-continue")], body),
    "pipelined": req("GET", "/healthz") + req("GET", "/v1/generations/" + G) + req("POST", "/v1/generations", [("Content-Type", "application/json")], body) + req("GET", "/healthz", [("Connection", "close")]),
    "delete_then_get": req("DELETE", "/v1/generations/" + G, [("Authorization", TOK)]) + req("GET", "/v1/generations/" + G),
    "sse_reconnect": req("GET", "/v1/generations/%s/events?access_token=t" % G, [("Accept", "text/event-stream"), ("Last-Event-ID", "4"), ("Cache-Control", "no-cache")]),
    "file_download": req("GET", "/v1/files/%s/0-original.png?exp=1764900000&sig=abc" % G, curl),
    "file_twice": req("GET", "/v1/files/u/a.png") + req("GET", "/v1/files/u/b.png"),
    "http10": req("GET", "/healthz", version="1.0"),
    "http10_keepalive": req("GET", "/healthz", [("Connection", "keep-alive")], version="1.0") + req("GET", "/healthz", version="1.0"),
    "head": req("HEAD", "/v1/generations/" + G),
    "head_sse": req("HEAD", "/v1/generations/%s/events" % G),
    "method_not_allowed": req("PUT", "/v1/generations", curl, b"{}"),
    "options_preflight": req("OPTIONS", "/v1/generations", [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")]),
    "not_found": req("GET", "/v1/nothing/here"),
    "percent_path": req("GET", "/v1/generations/%2e%2e%2Fetc%00x"),
    "absolute_target": req("GET", "http://127.0.0.1:8080/healthz?a=b"),
    "body_too_large": req("POST", "/v1/generations", [("Content-Type", "application/json")], b"x" * 9000),
    "body_too_large_chunked": req("POST", "/v1/generations", [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")], chunked(b"y" * 9000, 4000)),
    "headers_too_large": req("GET", "/healthz", [("X-Big", "a" * 5000)]),
    "many_headers": req("GET", "/healthz", [("X-H%d" % i, "v") for i in range(300)]),
    "http2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http2_request_line": b"GET / HTTP/2.0\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "request_id": req("GET", "/healthz", [("X-Request-Id", "abc-123.x:y")]) + req("GET", "/healthz", [("X-Request-Id", "bad id with spaces")]),
    "partial_headers": b"GET /v1/generations/%s HTTP/1.1\r\nHost: x\r\nAuthor" % G.encode(),
    "partial_body": req("POST", "/v1/generations", [("Content-Type", "application/json"), ("Content-Length", "100")], b"{\"kind\""),
    "upgrade": req("GET", "/healthz", [("Connection", "Upgrade"), ("Upgrade", "websocket")]),
    "folded_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
    "empty": b"",
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "http")
os.makedirs(out, exist_ok=True)
for name, v in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(v)
