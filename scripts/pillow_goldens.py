#!/usr/bin/env python3
"""Pillow reference values ("goldens") for veridoc's resampling tests.

What it is: for a fixed list of (source size -> destination size, filter) cases, this script
builds a deterministic RGB8 test image, resizes it with Pillow's `Image.resize((dw, dh),
resample=F)` (no `box`, no `reducing_gap`) and stores the packed RGB8 output (row-major,
3 bytes per pixel) as a lowercase hex string in tests/goldens/pillow_resize.json.

The input image (the Rust test re-creates it identically) is, for x in [0, w), y in [0, h),
channel c in {0: R, 1: G, 2: B}:

    v(x, y, c) = 48 + (x*73 + y*151 + c*29 + ((x*y*7) % 61)*3) % 160

Values stay in [48, 207], so the overshoot of bicubic and lanczos3 never reaches 0 or 255:
with clipping out of play, any two correct implementations (whatever their pass order)
agree up to rounding, which is what the <= 1/255 comparison needs.

Filters: bilinear = Image.BILINEAR, bicubic = Image.BICUBIC, lanczos3 = Image.LANCZOS,
box = Image.BOX.

Size budget: the file stays under ~120 KB; the largest cases (the 200+ px ones, which the
tests also check against the f64 model) are dropped first. Run with --all to keep every case.

Rerun (from the repository root):

    python3 scripts/pillow_goldens.py            # writes tests/goldens/pillow_resize.json
    python3 scripts/pillow_goldens.py --all      # keep the cases the budget drops

The committed tests/goldens/pillow_resize.json was produced with Pillow 13.0.0 (CPython 3.11.7,
numpy not needed); the version that ran is recorded in the file as "pillow_version".
"""
import argparse
import json
import os

import PIL
from PIL import Image

FORMULA = "v(x, y, c) = 48 + (x*73 + y*151 + c*29 + ((x*y*7) % 61)*3) % 160"

FILTERS = {
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos3": Image.LANCZOS,
    "box": Image.BOX,
}
ALL = tuple(FILTERS)

# (src_w, src_h, dst_w, dst_h, filters)
CASES = [
    (97, 61, 31, 17, ALL),
    (64, 48, 20, 15, ALL),
    (13, 7, 41, 29, ALL),
    (113, 67, 53, 41, ALL),
    (227, 214, 224, 220, ("bilinear",)),
    (1, 37, 3, 9, ALL),
    (37, 1, 9, 3, ALL),
    (31, 17, 97, 61, ("bilinear",)),
    (5, 5, 2, 2, ALL),
    (255, 235, 214, 227, ("bilinear",)),
]
ALWAYS_KEEP = set()
BUDGET_BYTES = 120 * 1024  # keeps the committed file small


def test_image(w, h):
    """The deterministic RGB8 input image, packed row-major."""
    buf = bytearray(w * h * 3)
    i = 0
    for y in range(h):
        for x in range(w):
            for c in range(3):
                buf[i] = 48 + (x * 73 + y * 151 + c * 29 + ((x * y * 7) % 61) * 3) % 160
                i += 1
    return Image.frombytes("RGB", (w, h), bytes(buf))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/goldens/pillow_resize.json")
    ap.add_argument("--all", action="store_true", help="keep every case (ignore the size budget)")
    a = ap.parse_args()

    cases = []
    for sw, sh, dw, dh, filters in CASES:
        src = test_image(sw, sh)
        for name in filters:
            out = src.resize((dw, dh), resample=FILTERS[name])
            assert out.mode == "RGB" and out.size == (dw, dh)
            cases.append({"src": [sw, sh], "dst": [dw, dh], "filter": name,
                          "rgb_hex": out.tobytes().hex()})

    if not a.all:
        optional = [c for c in cases
                    if (tuple(c["src"]), tuple(c["dst"]), c["filter"]) not in ALWAYS_KEEP]
        total = sum(len(c["rgb_hex"]) for c in optional)
        for c in sorted(optional, key=lambda c: len(c["rgb_hex"]), reverse=True):
            if total <= BUDGET_BYTES:
                break
            print(f"dropping {c['src']}->{c['dst']} {c['filter']} ({len(c['rgb_hex'])} hex chars)")
            total -= len(c["rgb_hex"])
            cases.remove(c)

    doc = {"pillow_version": PIL.__version__, "formula": FORMULA, "cases": cases}
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        f.write("{\n")
        f.write(f' "pillow_version": {json.dumps(doc["pillow_version"])},\n')
        f.write(f' "formula": {json.dumps(doc["formula"])},\n')
        f.write(' "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c) for c in cases))
        f.write("\n ]\n}\n")
    # round-trip check: the file is plain JSON
    with open(a.out) as f:
        assert json.load(f) == doc
    print(f"wrote {a.out}: {len(cases)} cases, {os.path.getsize(a.out)} bytes, Pillow {PIL.__version__}")


if __name__ == "__main__":
    main()
