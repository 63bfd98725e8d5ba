#!/usr/bin/env python3
# tests/fuzz/seeds/s3_reply.py [OUT]: writes corpus/s3_reply/, replies of an
# S3 service in fuzz_s3_reply.c's input form: byte 0 the curl code (high bit
# set when there is one), byte 1 the operation (0 PUT, 1 GET, 2 DELETE,
# 3 HEAD; bit 2: the body passed the bound), bytes 2-3 the status, header
# lines, an empty line, the body. The error documents are the shape AWS
# documents for S3 (ErrorResponses: <Error><Code>...) with its common codes,
# plus what s3rver and proxies answer (an empty 500, an HTML 502, a 429).
import os, sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "s3_reply")
os.makedirs(out, exist_ok=True)
PUT, GET, DELETE, HEAD = 0, 1, 2, 3

def err(code, message, key="avatars/u/1.png"):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<Key>%s</Key><RequestId>4442587FB7D0A2F9</RequestId>'
            '<HostId>ZbUOKH9wUWE2PmOoCCGrpO5MMzTG1VLgXEq/8YB+pxmMk=</HostId></Error>' % (code, message, key))

def seed(name, op, status, headers, body=b"", curl=0, too_big=False):
    b = bytes([0x80 | curl if curl else 0, op | (4 if too_big else 0), status >> 8, status & 0xFF])
    b += b"".join(b"%s: %s\n" % (k.encode(), v.encode()) for k, v in headers)
    b += b"\n" + (body.encode() if isinstance(body, str) else body)
    with open(os.path.join(out, name), "wb") as f:
        f.write(b)

xml = [("content-type", "application/xml"), ("x-amz-request-id", "4442587FB7D0A2F9"),
       ("server", "AmazonS3")]
seed("put_ok", PUT, 200, [("etag", '"9b2cf535f27731c974343645a3985328"'), ("content-length", "0")])
seed("get_ok", GET, 200, [("etag", '"9b2cf535f27731c974343645a3985328"'),
                          ("content-type", "image/png"), ("content-length", "8")],
     b"\x89PNG\r\n\x1a\n")
seed("get_ok_multipart_etag", GET, 200, [("etag", '"d41d8cd98f00b204e9800998ecf8427e-12"')], b"x")
seed("get_ok_long_etag", GET, 200, [("etag", '"' + "a" * 200 + '"')], b"x")
seed("delete_ok", DELETE, 204, [("x-amz-request-id", "1")])
seed("delete_gone", DELETE, 404, xml, err("NoSuchKey", "The specified key does not exist."))
seed("head_ok", HEAD, 200, [("content-length", "0")])
seed("get_no_such_key", GET, 404, xml, err("NoSuchKey", "The specified key does not exist."))
seed("get_no_such_bucket", GET, 404, xml, err("NoSuchBucket", "The specified bucket does not exist"))
seed("put_signature", PUT, 403, xml, err("SignatureDoesNotMatch",
     "The request signature we calculated does not match the signature you provided."))
seed("put_access_denied", PUT, 403, xml, err("AccessDenied", "Access Denied"))
seed("put_skewed", PUT, 403, xml, err("RequestTimeTooSkewed",
     "The difference between the request time and the current time is too large."))
seed("put_bad_digest", PUT, 400, xml, err("BadDigest",
     "The Content-MD5 you specified did not match what we received."))
seed("put_entity_too_large", PUT, 400, xml, err("EntityTooLarge",
     "Your proposed upload exceeds the maximum allowed size"))
seed("put_slow_down", PUT, 503, xml + [("retry-after", "1")], err("SlowDown", "Please reduce your request rate."))
seed("put_internal", PUT, 500, xml, err("InternalError",
     "We encountered an internal error. Please try again."))
seed("get_service_unavailable", GET, 503, xml, err("ServiceUnavailable", "Reduce your request rate."))
seed("head_forbidden_no_body", HEAD, 403, xml)
seed("get_empty_500", GET, 500, [("content-length", "0")])
seed("get_proxy_502_html", GET, 502, [("content-type", "text/html")],
     "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
seed("put_429", PUT, 429, [("retry-after", "2")], "Too Many Requests")
seed("get_code_too_long", GET, 400, xml, err("X" * 100, "a code longer than the log keeps"))
seed("get_code_unclosed", GET, 400, xml, "<Error><Code>NoSuchKey")
seed("get_close_before_open", GET, 400, xml, "</Code><Code>")
seed("get_code_with_newline", GET, 400, xml, "<Error><Code>Bad\nCode\r\x1b[31m</Code></Error>")
seed("get_too_big", GET, 200, [("content-length", "999999999")], b"", too_big=True)
seed("get_timeout", GET, 0, [], b"", curl=28)
seed("put_couldnt_connect", PUT, 0, [], b"", curl=7)
seed("get_recv_error", GET, 0, [], b"", curl=56)
seed("head_status_199", HEAD, 199, [])
seed("get_status_300", GET, 300, [("location", "http://elsewhere/")])
