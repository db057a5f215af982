#!/usr/bin/env python3
"""Writes the W1 benchmark set: N deterministic 4032x3024 'photographic' JPEGs (quality 90).

Content: the real sample photos from fixtures/photos (fetched by scripts/fetch-assets.sh),
upscaled to 12 MP with bicubic, then given seeded sensor-like grain so the entropy per pixel is
close to a real phone photo (about 3-4 MB per file at quality 90). Deterministic: the same files
(byte for byte, for a given Pillow/libjpeg build) every run.

usage: scripts/gen_w1.py [OUT_DIR] [--count N] [--size WxH] [--quality Q]
"""
import argparse, glob, os
import numpy as np
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", default="target/w1")
ap.add_argument("--count", type=int, default=24)
ap.add_argument("--size", default="4032x3024")
ap.add_argument("--quality", type=int, default=90)
ap.add_argument("--photos", default=os.environ.get("VERIDOC_FIXTURES", "fixtures") + "/photos")
a = ap.parse_args()
W, H = map(int, a.size.lower().split("x"))
srcs = sorted(glob.glob(a.photos + "/sample*.jpg")) + sorted(glob.glob(a.photos + "/obama*.jpg"))
if not srcs:
    raise SystemExit(f"no source photos in {a.photos}: run scripts/fetch-assets.sh first")
os.makedirs(a.out, exist_ok=True)
for i in range(a.count):
    path = os.path.join(a.out, f"w1_{i:03d}.jpg")
    if os.path.exists(path):
        continue
    im = Image.open(srcs[i % len(srcs)]).convert("RGB")
    # alternate landscape/portrait crops so both orientations are exercised
    if i % 4 == 3:
        im = im.transpose(Image.Transpose.ROTATE_90)
    im = im.resize((W, H), Image.BICUBIC)
    rng = np.random.default_rng(1000 + i)
    x = np.asarray(im, np.float32)
    x += rng.normal(0.0, 5.0, size=(H, W, 1)).astype(np.float32)      # luma grain
    x += rng.normal(0.0, 2.0, size=(H, W, 3)).astype(np.float32)      # chroma grain
    Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8)).save(path, quality=a.quality)
print(f"w1: {a.count} images in {a.out}")
