#!/usr/bin/env python3
# tests/fuzz/seeds/webhook_reply.py [OUT]: writes corpus/webhook_reply/,
# what a webhook receiver answers, in fuzz_webhook_reply.c's input form:
# byte 0 flags (1 timed out, 2 refused address, 4 no answer), byte 1 the
# attempts made before, bytes 2-3 the status, bytes 4-5 minutes since the
# first attempt, header lines, an empty line, the transport's error text.
# The answers are those of the receivers the tests run (tests/webhooks),
# Svix's and GitHub's documented behaviours (2xx, 410 to unsubscribe, 429
# and 503 with Retry-After in seconds or as an HTTP-date) and curl's errors.
import os, sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "webhook_reply")
os.makedirs(out, exist_ok=True)

def seed(name, status, headers=(), flags=0, attempts=0, minutes=0, error=""):
    b = bytes([flags, attempts, status >> 8, status & 0xFF, minutes >> 8, minutes & 0xFF])
    b += b"".join(b"%s: %s\n" % (k.encode(), v.encode()) for k, v in headers)
    b += b"\n" + error.encode()
    with open(os.path.join(out, name), "wb") as f:
        f.write(b)

seed("ok_200", 200, [("content-type", "application/json")])
seed("ok_204", 204)
seed("accepted_202_late", 202, minutes=1439, attempts=5)
seed("gone_410", 410)
seed("not_found_404", 404, attempts=1, minutes=5)
seed("server_error_500", 500, attempts=2, minutes=35)
seed("unavailable_retry_seconds", 503, [("retry-after", "120")])
seed("too_many_retry_seconds", 429, [("retry-after", "  30 ")], attempts=3)
seed("too_many_retry_date", 429, [("retry-after", "Fri, 05 Dec 2025 02:00:00 GMT")])
seed("retry_date_past", 503, [("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])
seed("retry_after_window", 503, [("retry-after", "90000")], minutes=600)
seed("retry_garbage", 503, [("retry-after", "soon")])
seed("retry_ten_digits", 503, [("retry-after", "9999999999")])
seed("retry_negative", 429, [("retry-after", "-5")])
seed("retry_date_bad_zone", 503, [("retry-after", "Fri, 05 Dec 2025 02:00:00 PST")])
seed("window_over", 500, minutes=1440, attempts=9)
seed("redirect_301", 301, [("location", "https://example.com/new")])
seed("timeout", 0, flags=1, attempts=1, error="Operation timed out after 15000 milliseconds with 0 bytes received")
seed("refused_private", 0, flags=2, error="refused: 10.0.0.7 is not a public address")
seed("connect_failed", 0, flags=4, attempts=4, minutes=200, error="Failed to connect to hooks.example.com port 443: Connection refused")
seed("no_answer_empty_error", 0, flags=4)
seed("many_attempts", 500, attempts=255, minutes=2000)
