// tests/webhooks/receiver.js - the webhook receiver of the integration
// tests (tests/integration/webhooks/): real HTTP on 127.0.0.1, each request's
// signature checked by the `standardwebhooks` package (an independent
// implementation of the spec), and the same request with one byte of its
// body changed checked too (it must fail).
//
//   node receiver.js PORT_FILE        (WH_SECRET: the farm's FARM_WEBHOOK_SECRET)
//
// WH_TAMPER_CHECK=0 leaves the tampered copy unchecked (tampered_verified
// null): scripts/bench webhooks, whose receiver shares the cores with the
// farm it measures, still verifies every signature it gets.
//
// POST /hook/<script>[?anything]: the n-th request to that exact path and
// query answers the n-th entry of the comma-separated script (the last one
// repeats): an HTTP status, or "hang" (never answers; the socket stays open).
// GET /received: every request so far, oldest first, as JSON (at_ms: when its body
// was read; closed_ms: when its answer went or its client closed, null while open).
// GET /wait?n=N&ms=T: the count of requests so far, as text, once it is at
// least N or after T ms (at most 60,000), whichever comes first: a waiter
// that costs nothing while it waits (scripts/bench webhooks).
"use strict";
const http = require("http");
const fs = require("fs");
const { Webhook } = require("standardwebhooks");

const portFile = process.argv[2];
const secret = process.env.WH_SECRET;
if (!portFile || !secret) {
  console.error("usage: WH_SECRET=... node receiver.js PORT_FILE");
  process.exit(2);
}
const wh = new Webhook(secret);
const tamperCheck = process.env.WH_TAMPER_CHECK !== "0";
const received = [];
const seen = new Map(); // path+query -> requests so far
const waiters = new Set(); // {n, res, timer} of GET /wait

function answerWaiters() {
  for (const w of waiters) {
    if (received.length >= w.n) {
      clearTimeout(w.timer);
      waiters.delete(w);
      w.res.end(String(received.length));
    }
  }
}

function verifies(body, headers) {
  try {
    wh.verify(body, headers);
    return true;
  } catch (e) {
    return false;
  }
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/received") {
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify(received));
    return;
  }
  if (req.method === "GET" && req.url.startsWith("/wait?")) {
    const q = new URL(req.url, "http://receiver").searchParams;
    const n = Number(q.get("n"));
    const ms = Math.min(Number(q.get("ms")) || 0, 60000);
    if (!Number.isInteger(n) || n < 0) {
      res.statusCode = 400;
      res.end("n must be a count");
      return;
    }
    res.setHeader("Content-Type", "text/plain");
    const w = { n, res, timer: null };
    w.timer = setTimeout(() => {
      waiters.delete(w);
      res.end(String(received.length));
    }, ms);
    waiters.add(w);
    answerWaiters();
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const n = seen.get(req.url) || 0;
    seen.set(req.url, n + 1);
    const m = /^\/hook\/([^?]*)/.exec(req.url);
    const script = m ? decodeURIComponent(m[1]).split(",") : ["404"];
    const step = script[Math.min(n, script.length - 1)];
    const headers = {
      "webhook-id": req.headers["webhook-id"],
      "webhook-timestamp": req.headers["webhook-timestamp"],
      "webhook-signature": req.headers["webhook-signature"],
    };
    const tampered = body.length ? (body[0] === "{" ? "[" : "{") + body.slice(1) : "x";
    let parsed = null;
    try {
      parsed = JSON.parse(body);
    } catch (e) {}
    const entry = {
      path: req.url,
      n: n + 1,
      answer: step,
      at_ms: Date.now(),
      method: req.method,
      id: headers["webhook-id"] || null,
      timestamp: headers["webhook-timestamp"] || null,
      signature: headers["webhook-signature"] || null,
      content_type: req.headers["content-type"] || null,
      user_agent: req.headers["user-agent"] || null,
      verified: verifies(body, headers),
      tampered_verified: tamperCheck ? verifies(tampered, headers) : null,
      body: parsed,
      closed_ms: null,
    };
    received.push(entry);
    // When the answer went or the client gave up (a "hang" whose socket the sender closed):
    // with at_ms, how many requests a receiver had open at once.
    res.on("close", () => {
      entry.closed_ms = Date.now();
    });
    answerWaiters();
    if (step === "hang") return; // never answered
    res.statusCode = parseInt(step, 10) || 500;
    res.end("ok");
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  fs.writeFileSync(portFile + ".tmp", String(server.address().port));
  fs.renameSync(portFile + ".tmp", portFile);
});
process.on("SIGTERM", () => process.exit(0));
