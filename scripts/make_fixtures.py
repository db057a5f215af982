#!/usr/bin/env python3
"""Writes the tiny format fixtures in tests/fixtures/ (committed; a few KB in all).

Every file shows the same 32x24 reference picture: four flat quadrants, top-left red
(220,30,30), top-right green (30,200,40), bottom-left blue (20,40,210), bottom-right yellow
(230,220,30). Tests decode each file and check the quadrant centres, which proves format,
pixel-format conversion and EXIF orientation handling at once.

usage: python3 scripts/make_fixtures.py   (needs Pillow; output is deterministic per Pillow build)
"""
import io, os
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
W, H = 32, 24
Q = {"tl": (220, 30, 30), "tr": (30, 200, 40), "bl": (20, 40, 210), "br": (230, 220, 30)}

def reference():
    im = Image.new("RGB", (W, H))
    px = im.load()
    for y in range(H):
        for x in range(W):
            k = ("t" if y < H // 2 else "b") + ("l" if x < W // 2 else "r")
            px[x, y] = Q[k]
    return im

ref = reference()
def save(name, im, **kw):
    im.save(os.path.join(OUT, name), **kw)

save("rgb.png", ref)
save("palette.png", ref.convert("P", palette=Image.ADAPTIVE, colors=8))
rgba = ref.convert("RGBA")
# bottom-right quadrant fully transparent, so it flattens to the background
alpha = Image.new("L", (W, H), 255)
alpha.paste(0, (W // 2, H // 2, W, H))
rgba.putalpha(alpha)
save("rgba.png", rgba)
save("gray.png", ref.convert("L"))
save("gray16.png", ref.convert("L").point(lambda v: v * 257, "I").convert("I;16"))
save("rgb.bmp", ref)
save("rgb.tiff", ref)
save("lossless.webp", ref, lossless=True)
save("lossy.webp", ref, quality=95)
frames = [ref, ref.transpose(Image.Transpose.ROTATE_180)]
frames[0].save(os.path.join(OUT, "anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
save("q95.jpg", ref, quality=95)
save("progressive.jpg", ref, quality=95, progressive=True)
save("gray.jpg", ref.convert("L"), quality=95)
save("cmyk.jpg", ref.convert("CMYK"), quality=95)
# EXIF orientation n: store the image so that applying orientation n shows `ref`.
INVERSE = {
    1: [], 2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_90], 7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_270],
}
for n, ops in INVERSE.items():
    im = ref
    for op in ops:
        im = im.transpose(op)
    exif = Image.Exif(); exif[0x0112] = n
    save(f"orient{n}.jpg", im, quality=95, exif=exif.tobytes())
    save(f"orient{n}.png", im, exif=exif.tobytes())
# check with Pillow's own exif_transpose that the stored files round-trip
from PIL import ImageOps
for n in INVERSE:
    got = ImageOps.exif_transpose(Image.open(os.path.join(OUT, f"orient{n}.jpg"))).convert("RGB")
    assert got.size == (W, H), (n, got.size)
    assert all(abs(a - b) < 12 for a, b in zip(got.getpixel((4, 4)), Q["tl"])), (n, got.getpixel((4, 4)))
print("fixtures written to", os.path.normpath(OUT))
