#!/usr/bin/env python3
# tests/fuzz/seeds/gen_validate.py: writes corpus/gen_validate/, POST
# /v1/generations bodies: API.md's example, its variants with the
# repository's presets (imaging/presets), and the refusals the unit tests
# of imaging/params.c and api/validate.c check.
import json, os, sys

UP = "0b9c2a55-6d5e-4c8e-9f3a-1f2e3d4c5b6a"
full = {
    "kind": "avatar", "prompt": "a watercolor portrait of a red-haired astronaut",
    "negative_prompt": "blurry", "width": 1024, "height": 1024, "count": 1, "seed": 42,
    "steps": 28, "guidance": 3.5, "style": "watercolor", "identity": {"upload_id": UP},
    "exports": ["instagram_story", "linkedin_post"], "provider": "auto", "deadline_s": 600,
    "webhook_url": "https://example.com/hook", "metadata": {"client_ref": "abc"},
}
pose = {"kind": "pose", "prompt": "a dancer", "count": 2,
        "poses": [{"preset": "standing-arms-crossed"}, {"upload_id": UP}]}
seeds = {
    "api_md_example": json.dumps(full, indent=2),
    "minimal": '{"kind":"avatar","prompt":"a cat"}',
    "pose": json.dumps(pose),
    "identity_generation": json.dumps({"kind": "avatar", "prompt": "me again",
                                       "identity": {"generation_id": UP, "index": 0}}),
    "provider_hf": '{"kind":"avatar","prompt":"a cat","provider":"hf","guidance":7}',
    "provider_local": '{"kind":"avatar","prompt":"a cat","provider":"local","width":512,"height":768}',
    "provider_null": '{"kind":"avatar","prompt":"a cat","provider":null}',
    "unicode_prompt": '{"kind":"avatar","prompt":"\\u00e9t\\u00e9 \\ud83d\\ude00 caf\\u00e9"}',
    "unknown_field": '{"kind":"avatar","prompt":"a","colour":"red"}',
    "bad_size": '{"kind":"avatar","prompt":"a","width":1000}',
    "bad_count": '{"kind":"avatar","prompt":"a","count":5}',
    "pose_unknown_preset": '{"kind":"pose","prompt":"a","poses":[{"preset":"nope"}]}',
    "too_many_images": json.dumps({"kind": "pose", "prompt": "a", "count": 4,
                                   "poses": [{"preset": "standing-neutral"}] * 11}),
    "duplicate_exports": '{"kind":"avatar","prompt":"a","exports":["linkedin_post","linkedin_post"]}',
    "seed_too_big": '{"kind":"avatar","prompt":"a","seed":4294967296}',
    "guidance_int": '{"kind":"avatar","prompt":"a","guidance":3}',
    "not_json": "kind=avatar&prompt=a",
    "array": '[{"kind":"avatar"}]',
    "duplicate_key": '{"kind":"avatar","kind":"pose","prompt":"a"}',
    "nul_in_prompt": '{"kind":"avatar","prompt":"a\\u0000b"}',
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "gen_validate")
os.makedirs(out, exist_ok=True)
for name, v in seeds.items():
    with open(os.path.join(out, name), "w") as f:
        f.write(v)
