#!/usr/bin/env python3
# tests/fuzz/seeds/jwt.py: writes corpus/jwt/. Byte 0 is fuzz_jwt.c's mode:
# 0 + a token (HS256 with the target's secret, as `farm token` issues them,
# and broken variants), 1/2/3 + the grants JSON the target signs itself.
import base64, hashlib, hmac, json, os, sys

SECRET = b"fuzz-secret-0123456789abcdef0123456789abcdef"
SUB = "7e0c1d2b-3a4f-4e5d-8c6b-9a8f7e6d5c4b"
EXP = 4102444800  # 2100-01-01: the seeds stay valid

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")

def token(header, claims, key=SECRET):
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    p = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(key, h + b"." + p, hashlib.sha256).digest())
    return h + b"." + p + b"." + sig

user = {"sub": SUB, "role": "user", "plan": "free", "iat": 1764900000, "exp": EXP}
admin = dict(user, role="admin", plan="pro")
hs = {"alg": "HS256", "typ": "JWT"}
seeds = {
    "token_user": b"\0" + token(hs, user),
    "token_admin": b"\0" + token(hs, admin),
    "token_no_plan": b"\0" + token(hs, {k: v for k, v in user.items() if k != "plan"}),
    "token_expired": b"\0" + token(hs, dict(user, exp=1000)),
    "token_other_key": b"\0" + token(hs, user, b"another"),
    "token_alg_none": b"\0" + token({"alg": "none"}, user)[: -43],
    "token_hs512": b"\0" + token({"alg": "HS512", "typ": "JWT"}, user),
    "token_garbage": b"\0not.a.token",
    "grants_user": b"\1" + json.dumps(user).encode(),
    "grants_admin": b"\1" + json.dumps(admin).encode(),
    "grants_bad_sub": b"\1" + json.dumps(dict(user, sub="ABC")).encode(),
    "grants_bad_plan": b"\1" + json.dumps(dict(user, plan="Pro Plan")).encode(),
    "grants_bad_role": b"\1" + json.dumps(dict(user, role="root")).encode(),
    "grants_exp_string": b"\1" + json.dumps(dict(user, exp="4102444800")).encode(),
    "grants_nbf": b"\1" + json.dumps(dict(user, nbf=4102444000)).encode(),
    "grants_other_key": b"\2" + json.dumps(user).encode(),
    "grants_unsigned": b"\3" + json.dumps(user).encode(),
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "jwt")
os.makedirs(out, exist_ok=True)
for name, v in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(v)
