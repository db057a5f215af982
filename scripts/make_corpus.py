#!/usr/bin/env python3
"""Builds a LABELLED conformance corpus of passport-style photos from real portraits.

The corpus measures false-accept and false-reject rates of veridoc's checks: every image is
made from a real photo by a known geometric transform, a known segmentation of the person and
a known edit, so its ground truth (crown, chin, eyes, roll, sizes) comes from construction,
never from the engine.

usage: fixtures/venv/bin/python scripts/make_corpus.py [--fixtures DIR] [--debug DIR]
       (normally through scripts/make-corpus.sh, which sets up the venv: Pillow, numpy,
       opencv-python-headless, pinned)

Inputs (DIR = fixtures unless --fixtures):
  DIR/photos/*            the real photos (decoded like scripts/faceapi-reference.sh does:
                          Pillow, EXIF orientation applied, RGB)
  DIR/reference/faceapi.json
                          face-api's boxes, 68 landmarks and expressions per photo
Outputs (all rewritten on each run):
  DIR/corpus/*.jpg        the passport-style images (JPEG q95)
  DIR/corpus/labels.json  a list of {file, source, class, variant, params, expect, reasons,
                          neutral_source, source_expression, source_neutral_p, truth}
  DIR/corpus/samples/     3 "compliant" + 3 defect images for the demo, with labels.json
  DIR/corpus/recall/      small-face recall images (JPEG q90) + DIR/corpus/recall.json
  DIR/corpus/README.md    the conventions below
With --debug DIR2: montages (PNG) of the masks, of every class and of the recall set.

Steps (one function each, in order):
  1. pick_sources: every photo of faceapi.json with exactly one face, its box fully inside
     the photo, at least MIN_FACE_BOX_PX tall, not named *partial*, whose eyes can be
     MIN_INTER_EYE_PX apart without upscaling more than MAX_UPSCALE. A source is "neutral"
     when face-api's expression argmax is "neutral"; only neutral sources give accept
     entries (compliant, roll_5). Donor faces (for second faces and the recall set) are
     every face of the DONOR_PREFIX* photos whose box is inside the photo.
  2. segment: the person by cv2.grabCut, twice: a head-and-shoulders pass on a copy whose
     longer side is SEG_SIDE px (the rectangle box.x - 0.9w .. box.x + 1.9w, box.y - 0.9h
     down, sure background outside it and along the photo border), and a head pass (crown,
     hair) at up to HEAD_SEG_SIDE px on Lab with stretched chroma, sure background outside
     a head ellipse. Both are seeded from the landmarks (sure person: the face polygon
     pulled in a little, a skull cap above the brows, the neck, the chest); the open mouth
     (and, for the body pass, the lips) is painted with skin colour first so that teeth
     and lips do not make white flags or red signs "person". The head pass decides above
     the eye line and beside the cheeks, the body pass below; then an opening, the
     component holding the face, small holes filled. A source whose hair reaches the
     photo's top edge is dropped (its crown is unknown).
  3. compliant bases: 35:45 portrait, head 0.72-0.78 of the height, eyes centred, eye line
     0.55-0.65 from the bottom, roll levelled plus +-2 deg, plain light background; the
     height is drawn in H_TARGET but the scale is capped at MAX_UPSCALE (so sources whose
     head is under ~650 px give shorter photos: 550-770 px for the current ones).
  4. single defects made from those bases (class list in DEFECTS; roll_5 is compliant),
     DEFECT_PER_SOURCE of each per source (fewer when there are many sources).
  5. samples/ for the demo.
  6. the recall set of pasted small faces, and a 29-face group image.

Conventions (also written to DIR/corpus/README.md):
  * Coordinates are output-image pixels, x right, y down, origin at the top-left CORNER of
    the top-left pixel (pixel centres at +0.5), as in faceapi.json.
  * eye_right is the subject's right eye = the eye on the image's LEFT (landmarks 36-41,
    mean of the 6 points); eye_left = landmarks 42-47; eye_mid their midpoint.
  * roll_deg = atan2(eye_left.y - eye_right.y, eye_left.x - eye_right.x) in degrees
    (positive: the image-right eye is lower, i.e. the head is tilted clockwise on screen).
  * chin_y = transformed landmark 8. crown_y = the top of the person mask (alpha >= 0.5,
    sub-pixel) in the columns between the transformed outer eye corners (landmarks 36, 45);
    negative when the crown is above the frame (crop_head).
  * head_height_ratio = (chin_y - crown_y) / height (vertical extent, also when rolled);
    eye_line_from_bottom = (height - eye_mid.y) / height; eye_center_x = eye_mid.x / width;
    inter_eye_px = |eye_left - eye_right|; face_box = the transformed face-api box (bounding
    box of its 4 corners); second_face_px = the pasted face's box height (second_face only).
  * expect "accept" only for neutral sources; reasons: check names of veridoc's profile, any
    one of which failing counts as "rejected for the right reason". Entries of non-neutral
    sources can also fail expression_neutral / mouth_closed: that is not their reason.
Deterministic: each source and defect has its own RNG seeded from names (crc32), so adding
a photo does not change the images of the others (only how many defects each gets);
OpenCV's RNG is reseeded before each grabCut; WORKERS processes do not change the result.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time
import zlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import cv2
from PIL import Image, ImageDraw, ImageOps

cv2.setNumThreads(1)  # parallel per source instead (WORKERS processes)
# worker processes (sources are independent); CORPUS_WORKERS=N overrides
WORKERS = int(os.environ.get("CORPUS_WORKERS") or 0) or max(1, min(4, os.cpu_count() or 1))


def _mp_context():
    """fork where available (no re-import of the module per worker), else the default."""
    try:
        return multiprocessing.get_context("fork")
    except ValueError:
        return None


# ---------------------------------------------------------------------------- constants
# -- step 1: sources and donors
MIN_FACE_BOX_PX = 200        # smallest face-api box height (photo px) accepted as a source
MIN_INTER_EYE_PX = 100       # eye centres at least this far apart in every compliant output
MAX_UPSCALE = 1.25           # a source is never enlarged more than this (compliant outputs)
DONOR_PREFIX = "sample"      # photos whose faces are pasted as second / recall faces
DONOR_MIN_BOX_PX = 120       # donor faces smaller than this (photo px) are not used
# -- step 2: segmentation
SEG_SIDE = 600               # longer side of the head-and-shoulders grabCut copy (px)
HEAD_SEG_SIDE = 480          # longer side of the head (hair, crown) grabCut copy (px)
GC_ITERATIONS = 5            # grabCut iterations of each pass
HAIR_ALLOW = 0.15            # head pass: probable person above the eye line = the skull cap
HAIR_SIDE = 0.05             # grown by this upwards (brow-to-chin distances) and this
                             # sideways (jaw widths): short hair; longer hair is won by colour
FACE_SHRINK = 0.04           # sure-person face polygon pulled in by this (jaw widths)
EAR_OUT = 0.12               # ears reach this far beside the jaw (jaw widths)
NECK_HALF = 0.3              # head pass: neck half width below the chin (jaw widths)
HEAD_OUTER = (0.8, 1.15)     # head pass: sure background outside this ellipse
HEAD_CHROMA = 4.0            # head pass runs on Lab with a, b stretched this much
BODY_CHROMA = 2.0            # body pass likewise
HAIR_OPEN_RADIUS = 0.07      # head pass: opening radius above the eye line (face boxes)
OPEN_RADIUS = 0.035          # morphological opening radius of the final mask (face boxes)
BORDER_BGD_PX = 4            # photo border band forced to sure background (grabCut px)
HOLE_AREA = 0.08             # enclosed background holes smaller than this (face box areas)
                             # are filled (gaps between arm and body are larger)
CROWN_EDGE_PX = 3.0          # a crown this close to the photo's top edge may be cut: refused
# -- step 3: compliant geometry (fractions of the output height H or width W)
ASPECT = 35.0 / 45.0         # ICAO 9303 35 x 45 mm portrait, width / height
HEAD_OK = (0.72, 0.78)       # chin-to-crown over H for compliant photos (profile: 0.70-0.80)
EYE_X_OK = (0.48, 0.52)      # eye midpoint x over W (profile: 0.45-0.55)
EYE_LINE_OK = (0.55, 0.65)   # eye line from the bottom over H (profile: 0.50-0.70)
ROLL_JITTER_DEG = 2.0        # compliant roll is levelled, then jittered within +- this
H_TARGET = (700, 1000)       # output height drawn in this range (capped by MAX_UPSCALE)
MIN_TOP_MARGIN = 0.02        # crown at least this fraction of H below the top edge
COMPLIANT_PER_SOURCE = 5     # compliant (or compliant-geometry) bases per source
# Plain background shades (RGB) of the compliant bases, one per base in this order.
BACKGROUNDS = [
    ("white", (255, 255, 255)),
    ("off_white", (245, 245, 242)),
    ("light_gray", (225, 225, 225)),
    ("light_blue_gray", (214, 224, 235)),
    ("light_cream", (240, 234, 220)),
]
GRADIENT_LEVELS = (4.0, 8.0)  # soft vertical gradient (top to bottom darkening) on half
EDGE_FADE_PX = 12.0          # person faded out over this many px where the photo ends
FEATHER_SIGMA = 1.0          # Gaussian sigma (output px) of the mask edge: ~2 px feather
ERODE_PX = 1                 # mask eroded this much (output px) before feathering: no halo
DECONTAM_SIGMA = 3.0         # sigma of the inward colour fill used at the mask edge (px)
# -- step 4: defects
DEFECT_TARGET_PER_CLASS = 12  # aim for about this many entries per defect class overall
DEFECT_PER_SOURCE = (2, 3)   # ... but between these per source
ROLL_SMALL_DEG = 5.0         # roll_5: compliant (profile: +-8)
ROLL_MID_DEG = 10.0          # roll_10
ROLL_BIG_DEG = 20.0          # roll_20
HEAD_SMALL = (0.55, 0.62)    # head_small ratio range
HEAD_LARGE = (0.86, 0.92)    # head_large ratio range
HEAD_LARGE_TOP = (0.015, 0.03)  # head_large: crown this fraction of H below the top
MIN_DEFECT_H = 540           # defect images stay this tall (profile minimum 500)
OFF_CENTRE_X = (0.33, 0.67)  # off_centre eye midpoint x fractions
BLUR_SIGMA = (3.0, 4.0)      # blur: Gaussian sigma at output scale (px)
SHADOW_DEPTH = (0.45, 0.55)  # shadow_half: darkening of one half of the head
SHADOW_RAMP_PX = 15.0        # shadow_half: width of the soft transition at the nose line
SECOND_FACE_PX = [30, 45, 60, 90, 120]  # second_face: pasted face box heights
DONOR_MAX_ROLL = 20.0        # donors are upright faces: eye line within this many degrees
DONOR_CROP = 1.4             # donor crop = face box expanded this much (soft ellipse alpha)
PATTERNS = ["stripes", "checks", "curtain", "texture"]  # bg_pattern kinds, cycled
TEXTURES = ["coffee.png", "chelsea.png"]  # real textures for bg_pattern (rocket.jpg is mostly plain sky: not a pattern)
TEXTURE_TRIES = 6            # bg_pattern textures: the busiest of this many random crops
PATTERN_MEAN_LUMA = 175.0    # patterns are kept light: only texture/uniformity fails
DARK_LUMA = (50.0, 70.0)     # bg_dark luma range
DARK_TINTS = [(1.0, 1.0, 1.0), (0.85, 0.95, 1.25), (1.2, 1.0, 0.8)]  # gray, blue, brown
CROP_HEAD = (0.06, 0.12)     # crop_head: crown this fraction of H above the top edge
LOW_RES = (0.35, 0.45)       # low_res: downscale factor of a compliant image
JPEG_QUALITY = 95            # corpus images
# -- step 6: recall set
RECALL_QUALITY = 90          # recall JPEG quality
# (width, height, background, face heights): heights in px, or floats = fraction of the
# longer side; between 40 px and 12 % of the longer side.
RECALL_IMAGES = [
    (1000, 750, "coffee", [40, 60, 90, 120]),
    (1000, 750, "plain", [40, 50, 75, 100]),
    (1000, 750, "gradient", [45, 70, 110]),
    (1000, 750, "rocket", [40, 60, 0.08]),
    (1920, 1280, "rocket", [40, 60, 90, 140, 0.10]),
    (1920, 1280, "plain", [40, 60, 0.05, 140, 0.12]),
    (1920, 1280, "coffee", [50, 80, 120, 0.09]),
    (4000, 3000, "rocket", [40, 60, 90, 140, 0.05, 0.10]),
    (4000, 3000, "gradient", [40, 90, 0.075, 0.12]),
    (4000, 3000, "coffee", [60, 140, 0.06, 0.09]),
]
GROUP_SIZE = (1666, 1136)    # the group-like image (w, h)
GROUP_ROWS = [8, 7, 8, 6]    # faces per row: 29 in all
GROUP_FACE_PX = (45, 60)     # their box heights


# ---------------------------------------------------------------------------- helpers
def load_rgb(path):
    """Decodes like faceapi-reference.sh: Pillow, EXIF orientation applied, RGB."""
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))


def save_jpeg(path, img, quality):
    im = Image.fromarray(img)
    im.save(path, quality=quality, optimize=True)


def write_json_lines(path, items):
    """A JSON list with one item per line (diffable, compact)."""
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(it, separators=(", ", ": ")) for it in items) + "\n]\n")


def rng_for(*keys):
    """A numpy RNG seeded from strings (stable across runs and machines)."""
    return np.random.default_rng([zlib.crc32(str(k).encode()) for k in keys])


def uniform(rng, lo_hi):
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def luma(rgb):
    """Rec. 601 luma of an RGB array (float)."""
    rgb = np.asarray(rgb, np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def box_inside(box, w, h):
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= w \
        and box["y"] + box["height"] <= h


def cv_affine(a):
    """OpenCV's warp matrix for an affine map `a` (2x3) between corner-origin coordinates:
    warpAffine samples at integer pixel indices, which are the pixel centres (+0.5)."""
    m = a.copy()
    m[:, 2] += a[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return m


def apply(a, pts):
    pts = np.asarray(pts, np.float64)
    return pts @ a[:, :2].T + a[:, 2]


def r2(v):
    return round(float(v), 2)


# ---------------------------------------------------------------------------- step 1
class Source:
    """A portrait photo with its single face-api face."""

    def __init__(self, name, img, face):
        self.name = name
        self.stem = os.path.splitext(name)[0]
        self.img = img
        self.face = face
        self.box = face["box"]
        self.lm = np.array(face["landmarks"], np.float64)
        self.eye_r = self.lm[36:42].mean(0)   # subject's right eye (image left)
        self.eye_l = self.lm[42:48].mean(0)
        self.eye_mid = (self.eye_r + self.eye_l) / 2
        self.inter_eye = float(np.linalg.norm(self.eye_l - self.eye_r))
        d = self.eye_l - self.eye_r
        self.roll = math.degrees(math.atan2(d[1], d[0]))
        self.expression = face.get("expression")
        exprs = face.get("expressions")
        self.neutral_p = float(exprs[0] if isinstance(exprs, list) else exprs.get("neutral", 0))
        self.neutral = self.expression == "neutral"
        self.mask = None     # uint8 0..255, photo size (step 2)
        self.contour = None  # mask outline points (corner coordinates)


def donor_roll(face):
    """The eye line's angle (degrees) of a face-api face (landmarks 36-41 and 42-47)."""
    lm = np.asarray(face["landmarks"], dtype=float)
    er, el = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    return math.degrees(math.atan2(el[1] - er[1], el[0] - er[0]))


def overlaps_other(face, faces):
    """Whether the donor crop (the box expanded DONOR_CROP) would hold part of another face."""
    b = face["box"]
    cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    hw, hh = DONOR_CROP * b["width"] / 2, DONOR_CROP * b["height"] / 2
    for o in faces:
        if o is face:
            continue
        ob = o["box"]
        ix = min(cx + hw, ob["x"] + ob["width"]) - max(cx - hw, ob["x"])
        iy = min(cy + hh, ob["y"] + ob["height"]) - max(cy - hh, ob["y"])
        if ix > 0 and iy > 0 and ix * iy > 0.05 * ob["width"] * ob["height"]:
            return True
    return False


def pick_sources(ref, photos_dir):
    """Step 1: the photos usable as passport sources, and the donor faces."""
    sources, donors = [], []
    print("make_corpus: sources (from %d photos in faceapi.json)" % len(ref))
    for name in sorted(ref):
        rec = ref[name]
        path = os.path.join(photos_dir, name)
        faces = rec.get("faces", [])
        if name.startswith(DONOR_PREFIX):
            for i, f in enumerate(faces):
                if box_inside(f["box"], rec["width"], rec["height"]) and \
                        f["box"]["height"] >= DONOR_MIN_BOX_PX and \
                        abs(donor_roll(f)) <= DONOR_MAX_ROLL and \
                        not overlaps_other(f, faces):
                    donors.append({"photo": name, "index": i, "box": f["box"]})
        why = None
        if not os.path.exists(path):
            why = "file missing"
        elif "partial" in name:
            why = "named *partial*"
        elif name.startswith("sample"):
            why = "a group photo (donor of small faces only)"
        elif len(faces) != 1:
            why = "%d faces" % len(faces)
        elif not box_inside(faces[0]["box"], rec["width"], rec["height"]):
            why = "face box not inside the photo"
        elif faces[0]["box"]["height"] < MIN_FACE_BOX_PX:
            why = "face box %.0f px < %d" % (faces[0]["box"]["height"], MIN_FACE_BOX_PX)
        if why is None:
            src = Source(name, None, faces[0])
            if src.inter_eye * MAX_UPSCALE < MIN_INTER_EYE_PX:
                why = "eyes %.0f px apart: < %d even at %.1fx" % (
                    src.inter_eye, MIN_INTER_EYE_PX, MAX_UPSCALE)
        if why:
            print("  skip %-26s %s" % (name, why))
            continue
        src.img = load_rgb(path)
        assert src.img.shape[:2] == (rec["height"], rec["width"]), name
        sources.append(src)
        print("  use  %-26s face %.0f px, eyes %.0f px apart, roll %+.1f deg, expression %s "
              "(neutral p=%.3f)%s" % (name, src.box["height"], src.inter_eye, src.roll,
                                      src.expression, src.neutral_p,
                                      "  NEUTRAL" if src.neutral else ""))
    print("make_corpus: %d candidate sources, %d donor faces" % (len(sources), len(donors)))
    return sources, donors


# ---------------------------------------------------------------------------- step 2
def _grabcut(img_small, mask, chroma=1.0):
    """grabCut from an initial label mask; chroma > 1 runs it on Lab with a and b
    stretched by that factor (dark blue flags vs dark hair)."""
    cv2.setRNGSeed(0)  # grabCut's GMM initialisation (k-means) uses OpenCV's RNG
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    if chroma != 1.0:
        lab = cv2.cvtColor(img_small, cv2.COLOR_RGB2LAB).astype(np.float32)
        lab[..., 1:] = 128 + (lab[..., 1:] - 128) * chroma
        feed = np.clip(lab + 0.5, 0, 255).astype(np.uint8)
    else:
        feed = cv2.cvtColor(img_small, cv2.COLOR_RGB2BGR)
    cv2.grabCut(feed, mask, None, bgd, fgd, GC_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)


def _region(img, x0, y0, x1, y1, side):
    """Crop [x0,x1) x [y0,y1) of img, downscaled so its longer side is <= side;
    returns the copy and a function mapping photo points to its pixel indices."""
    crop = img[y0:y1, x0:x1]
    k = min(1.0, side / max(crop.shape[:2]))
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))),
                       interpolation=cv2.INTER_AREA)
    ky = small.shape[0] / crop.shape[0]
    kx = small.shape[1] / crop.shape[1]

    def to_small(pts):
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        return np.round((pts - [x0, y0]) * [kx, ky] - 0.5).astype(np.int32)
    return small, to_small, (kx, ky)


def _face_polygon(lm):
    """Jaw 0-16 and brows 26..17: the face outline."""
    return lm[list(range(0, 17)) + list(range(26, 16, -1))]


def _inner_face(lm):
    """The face outline pulled FACE_SHRINK of the jaw width towards the nose: sure person
    even where face-api's jaw points sit a few px outside the cheek (turned heads)."""
    poly = _face_polygon(lm)
    centre = lm[30]
    jaw = lm[16, 0] - lm[0, 0]
    d = poly - centre
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return centre + d * np.maximum(0, 1 - FACE_SHRINK * jaw / np.maximum(n, 1e-6))


def _skull_cap(lm):
    """(centre, axes) of the ellipse whose upper half is surely the person: the forehead
    and skull above the brows, 0.42 of the brow-to-chin distance high (short-haired men
    measured 0.47-0.5; a bald skull is taller than that) and 0.9 of the jaw wide."""
    brow_y = lm[17:27, 1].mean()
    f = lm[8, 1] - brow_y
    jaw = lm[16, 0] - lm[0, 0]
    return (lm[17:27, 0].mean(), brow_y), (0.45 * jaw, 0.42 * f)


def segment(src):
    """Step 2: the person mask (uint8 0..255, photo size) from two grabCut passes."""
    img = src.img
    H, W = img.shape[:2]
    b, lm = src.box, src.lm
    bx, by, bw, bh = b["x"], b["y"], b["width"], b["height"]
    cx = bx + 0.5 * bw
    chin_y = lm[8, 1]

    # the head pass's copy of the photo: the open mouth painted with the skin colour of the
    # nose, so that teeth do not teach its person model white (flags and walls are white;
    # the body pass keeps the teeth: there white is the shirt)
    gc_img = img.copy()
    nose = np.zeros((H, W), np.uint8)
    cv2.fillPoly(nose, [cv2.convexHull(np.round(lm[27:36] - 0.5).astype(np.int32))], 1)
    skin = np.median(img[nose == 1], axis=0)
    mouth = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mouth, [np.round(lm[60:68] - 0.5).astype(np.int32)], 1)
    mouth = cv2.dilate(mouth, np.ones((5, 5), np.uint8))
    gc_img[mouth == 1] = skin.astype(np.uint8)
    # the body pass's copy: the lips too (red signs and flags beside the neck are not lips)
    body_img = gc_img.copy()
    lips = np.zeros((H, W), np.uint8)
    cv2.fillPoly(lips, [np.round(lm[48:60] - 0.5).astype(np.int32)], 1)
    body_img[cv2.dilate(lips, np.ones((5, 5), np.uint8)) == 1] = skin.astype(np.uint8)

    # ---- pass 1: head and shoulders. Work region: what any output can show.
    x0, x1 = max(0, int(bx - 1.2 * bw)), min(W, int(math.ceil(bx + 2.2 * bw)))
    y0, y1 = max(0, int(by - 1.2 * bh)), min(H, int(math.ceil(chin_y + 1.3 * bh)))
    small, P, (kx, ky) = _region(body_img, x0, y0, x1, y1, SEG_SIDE)
    h, w = small.shape[:2]
    m = np.full((h, w), cv2.GC_BGD, np.uint8)
    # the brief's rectangle: x from box.x - 0.9w to box.x + 1.9w, y from box.y - 0.9h down,
    # kept BORDER_BGD_PX inside the top / left / right border (sure background there)
    (rx0, ry0), (rx1, _) = P([[bx - 0.9 * bw, by - 0.9 * bh], [bx + 1.9 * bw, 0]])
    rx0, ry0 = max(rx0, BORDER_BGD_PX), max(ry0, BORDER_BGD_PX)
    rx1 = min(rx1, w - BORDER_BGD_PX)
    m[ry0:, rx0:rx1] = cv2.GC_PR_BGD
    # probable person: a head ellipse above the nose, the face, a neck column, shoulders
    prior = np.zeros((h, w), np.uint8)
    c = P([[cx, by + 0.4 * bh]])[0]
    cv2.ellipse(prior, (int(c[0]), int(c[1])), (int(0.65 * bw * kx), int(0.8 * bh * ky)),
                0, 0, 360, 1, -1)
    prior[max(0, P([[0, lm[33, 1]]])[0][1]):] = 0
    cv2.fillPoly(prior, [P(lm[0:17])], 1)
    nose_y = lm[33, 1]
    cv2.fillPoly(prior, [P([[cx - 0.3 * bw, nose_y], [cx + 0.3 * bw, nose_y],
                            [cx + 0.3 * bw, chin_y + 0.3 * bh], [cx - 0.3 * bw, chin_y + 0.3 * bh]])], 1)
    # shoulders from 0.3 face heights below the chin; above that only the neck and collar
    # column (what stands beside a close-up's neck, e.g. a sign, is rather not the person)
    cv2.fillPoly(prior, [P([[cx - 0.35 * bw, chin_y - 0.05 * bh], [cx + 0.35 * bw, chin_y - 0.05 * bh],
                            [cx + 0.35 * bw, chin_y + 0.3 * bh], [cx - 0.35 * bw, chin_y + 0.3 * bh]])], 1)
    cv2.fillPoly(prior, [P([[cx - 0.35 * bw, chin_y + 0.3 * bh], [cx + 0.35 * bw, chin_y + 0.3 * bh],
                            [cx + 1.5 * bw, chin_y + 0.9 * bh], [cx + 1.5 * bw, y1 + bh],
                            [cx - 1.5 * bw, y1 + bh], [cx - 1.5 * bw, chin_y + 0.9 * bh]])], 1)
    m[(prior == 1) & (m == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
    # sure person: face polygon, skull cap, neck, chest column
    sure = np.zeros((h, w), np.uint8)
    cv2.fillPoly(sure, [P(_inner_face(lm))], 1)
    (scx, scy), (sax, say) = _skull_cap(lm)
    cap = np.zeros((h, w), np.uint8)
    sc = P([[scx, scy]])[0]
    cv2.ellipse(cap, (int(sc[0]), int(sc[1])), (int(sax * kx), int(say * ky)), 0, 0, 360, 1, -1)
    cap[max(0, sc[1]):] = 0
    inner = _inner_face(lm)
    cl, cr = P([[inner[:, 0].min(), 0], [inner[:, 0].max(), 0]])[:, 0]
    cap[:, :max(0, cl)] = 0  # not wider than the (shrunk) face: turned heads
    cap[:, cr + 1:] = 0
    sure |= cap
    cv2.fillPoly(sure, [P([[cx - 0.15 * bw, chin_y], [cx + 0.15 * bw, chin_y],
                           [cx + 0.15 * bw, chin_y + 0.3 * bh], [cx - 0.15 * bw, chin_y + 0.3 * bh]])], 1)
    if y1 > chin_y + 0.6 * bh:  # the photo shows the chest
        cv2.fillPoly(sure, [P([[cx - 0.45 * bw, chin_y + 0.5 * bh], [cx + 0.45 * bw, chin_y + 0.5 * bh],
                               [cx + 0.8 * bw, y1], [cx + 0.8 * bw, y1 + bh],
                               [cx - 0.8 * bw, y1 + bh], [cx - 0.8 * bw, y1]])], 1)
    m[sure == 1] = cv2.GC_FGD
    body = _grabcut(small, m, BODY_CHROMA)
    body_full = cv2.resize(body.astype(np.float32), (x1 - x0, y1 - y0),
                           interpolation=cv2.INTER_LINEAR)

    # ---- pass 2: the head at a higher resolution, where hair meets a busy background
    browy = lm[17:27, 1].mean()
    f = chin_y - browy
    jaw = lm[16, 0] - lm[0, 0]
    hx0, hx1 = max(0, int(cx - 1.1 * bw)), min(W, int(math.ceil(cx + 1.1 * bw)))
    hy0, hy1 = max(0, int(browy - 1.3 * f)), min(H, int(math.ceil(chin_y + 0.15 * f)))
    small2, P2, (kx2, ky2) = _region(gc_img, hx0, hy0, hx1, hy1, HEAD_SEG_SIDE)
    h2, w2 = small2.shape[:2]
    # sure background outside a wide head ellipse; probable background inside it, except
    # the probable person: the skull / hair ellipse above the eye line and the neck and
    # collar below the jaw line (the face polygon itself is sure person). Beside the cheeks
    # (ears) everything starts as probable background: a probable-person zone there teaches
    # the person model whatever is beside the cheeks (flags, walls), while skin-coloured
    # ears are won back from the face's colours.
    m2 = np.full((h2, w2), cv2.GC_BGD, np.uint8)
    c2 = tuple(int(v) for v in P2([[scx, browy]])[0])
    e = np.zeros((h2, w2), np.uint8)
    cv2.ellipse(e, c2, (int(HEAD_OUTER[0] * jaw * kx2), int(HEAD_OUTER[1] * f * ky2)),
                0, 0, 360, 1, -1)
    m2[e == 1] = cv2.GC_PR_BGD
    e[:] = 0
    cv2.ellipse(e, c2, (int((sax + HAIR_SIDE * jaw) * kx2), int((say + HAIR_ALLOW * f) * ky2)),
                0, 0, 360, 1, -1)
    eye_row = int(P2([[0, src.eye_mid[1]]])[0][1])
    e[max(0, eye_row):] = 0
    # below the jaw line, between its 3rd and 15th points: neck and collar
    cv2.fillPoly(e, [P2(np.vstack([lm[2:15], [[lm[14, 0], hy1 + 10], [lm[2, 0], hy1 + 10]]]))], 1)
    cv2.fillPoly(e, [P2([[cx - NECK_HALF * jaw, chin_y - 0.1 * f], [cx + NECK_HALF * jaw, chin_y - 0.1 * f],
                         [cx + NECK_HALF * jaw, hy1 + 10], [cx - NECK_HALF * jaw, hy1 + 10]])], 1)
    m2[(e == 1) & (m2 == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
    # (no forced background along the photo's top edge here: hair that reaches it must
    # show, so that such a photo is refused below)
    cap2 = np.zeros((h2, w2), np.uint8)
    cv2.ellipse(cap2, c2, (int(sax * kx2), int(say * ky2)), 0, 0, 360, 1, -1)
    cap2[max(0, c2[1]):] = 0
    cl2, cr2 = P2([[inner[:, 0].min(), 0], [inner[:, 0].max(), 0]])[:, 0]
    cap2[:, :max(0, cl2)] = 0
    cap2[:, cr2 + 1:] = 0
    cv2.fillPoly(cap2, [P2(_inner_face(lm))], 1)
    m2[cap2 == 1] = cv2.GC_FGD
    head_init = m2.copy()
    head = _grabcut(small2, m2, HEAD_CHROMA)
    # above the eye line, open (erode then dilate) with a wide disc: lamps and flag bits
    # stuck beside the hair go, the round skull and the hair stay
    r2_ = max(1, int(round(HAIR_OPEN_RADIUS * bh * ky2)))
    opened = cv2.morphologyEx(head, cv2.MORPH_OPEN,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r2_ + 1,) * 2))
    top = max(0, eye_row)
    head[:top] = opened[:top] | cap2[:top]
    head_full = cv2.resize(head.astype(np.float32), (hx1 - hx0, hy1 - hy0),
                           interpolation=cv2.INTER_LINEAR)

    # ---- combine in photo coordinates: the head pass decides above the eye line and, below
    # it, inside the jaw outline grown by the ears' reach; the body pass everywhere else
    # (collar, shoulders), with a soft seam
    full = np.zeros((H, W), np.float32)
    full[y0:y1, x0:x1] = body_full
    if y1 < H:  # the body continues below the work region: repeat its last row
        full[y1:, x0:x1] = body_full[-1:]
    hw, hh = hx1 - hx0, hy1 - hy0
    auth = np.zeros((hh, hw), np.uint8)
    auth[:max(0, int(src.eye_mid[1]) - hy0)] = 1
    jaw_hull = np.zeros((hh, hw), np.uint8)
    cv2.fillPoly(jaw_hull, [np.round(cv2.convexHull(_face_polygon(lm).astype(np.float32))
                                     .reshape(-1, 2) - [hx0, hy0]).astype(np.int32)], 1)
    reach = int(round(EAR_OUT * jaw))
    ears = cv2.dilate(jaw_hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    ears[max(0, int(max(lm[3, 1], lm[13, 1]) - hy0)):] = 0  # ears end at the jaw's 4th point
    auth |= ears | jaw_hull
    wgt = cv2.GaussianBlur(auth.astype(np.float32), (0, 0), 0.03 * jaw)
    full[hy0:hy1, hx0:hx1] = wgt * head_full + (1 - wgt) * full[hy0:hy1, hx0:hx1]
    binary = (full >= 0.5).astype(np.uint8)
    # opening: removes background slivers stuck to the outline (flags, lamps, neighbours)
    # narrower than 2 r; the smooth crown curve and the ears are much wider
    r = max(1, int(round(OPEN_RADIUS * bh)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, disc)
    # keep the component holding the face; fill holes inside the person
    n, lab = cv2.connectedComponents(binary, connectivity=4)
    if n > 2:
        ex, ey = src.eye_mid.astype(int)
        keep = lab[min(H - 1, ey), min(W - 1, ex)]
        if keep > 0:
            binary = (lab == keep).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(1 - binary, connectivity=4)
    x, y, ww, hh_, area = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4]
    touches = (x == 0) | (y == 0) | (x + ww == W) | (y + hh_ == H)
    holes = np.where(~touches & (area < HOLE_AREA * bw * bh))[0]  # small enclosed ones
    holes = holes[holes > 0]
    if len(holes):
        binary[np.isin(lab, holes)] = 1
    # anti-aliased edge at photo resolution: the masks came from smaller copies
    smooth = cv2.GaussianBlur(binary.astype(np.float32), (0, 0), max(0.7, 0.5 / max(kx, 1e-3)))
    src.mask = np.clip(smooth * 255 + 0.5, 0, 255).astype(np.uint8)
    cs, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    src.contour = np.vstack([c.reshape(-1, 2) for c in cs]).astype(np.float64) + 0.5
    # the crown is unknown when the hair reaches the photo's top edge
    crown_src = src.contour[(src.contour[:, 0] >= min(lm[36, 0], lm[45, 0])) &
                            (src.contour[:, 0] <= max(lm[36, 0], lm[45, 0])), 1].min()
    src.crown_cut = crown_src <= CROWN_EDGE_PX
    src.debug = {"body": (small, body, (x0, y0)), "head": (small2, head, (hx0, hy0)),
                 "head_init": head_init}


# ---------------------------------------------------------------------------- geometry
def affine(src, s, roll_out, eye_out):
    """Source photo -> output map: scale s, rotation so the eye line is at roll_out deg,
    the eye midpoint at eye_out."""
    phi = math.radians(roll_out - src.roll)
    c, sn = math.cos(phi) * s, math.sin(phi) * s
    a = np.array([[c, -sn, 0.0], [sn, c, 0.0]])
    a[:, 2] = np.asarray(eye_out, np.float64) - a[:, :2] @ src.eye_mid
    return a


def head_extent(src, roll_out):
    """(crown above the eye line, chin below it) in source px, for a given output roll,
    from the mask outline: crown = topmost outline point between the outer eye corners."""
    a = affine(src, 1.0, roll_out, (0.0, 0.0))
    pts = apply(a, src.contour)
    ex = apply(a, src.lm[[36, 45]])[:, 0]
    sel = (pts[:, 0] >= ex.min()) & (pts[:, 0] <= ex.max())
    crown = -pts[sel, 1].min()
    chin = apply(a, src.lm[8:9])[0, 1]
    return crown, chin


# ---------------------------------------------------------------------------- backgrounds
def plain(W, H, rgb, gradient=0.0):
    """A plain colour, darkened linearly by `gradient` levels from top to bottom."""
    t = (np.arange(H, dtype=np.float32) + 0.5)[:, None, None] / H
    bg = np.asarray(rgb, np.float32) - gradient * t
    return np.array(np.broadcast_to(bg, (H, W, 3)), np.float32)  # a writable copy


def texture_crop(img, W, H, rng, blur=0.0, tries=1):
    """A random crop of `img` with the aspect W:H, resized to W x H; with tries > 1 the
    most textured of that many candidate crops (mean gradient of the luma)."""
    ih, iw = img.shape[:2]
    best = None
    for _ in range(tries):
        scale = min(iw / W, ih / H) * uniform(rng, (0.55, 0.8))
        cw, ch = W * scale, H * scale
        x = uniform(rng, (0, iw - cw))
        y = uniform(rng, (0, ih - ch))
        if tries > 1:
            g = luma(img[int(y):int(y + ch), int(x):int(x + cw)])
            energy = float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
        else:
            energy = 0.0
        if best is None or energy > best[0]:
            best = (energy, scale, x, y)
    _, scale, x, y = best
    a = np.array([[1 / scale, 0, -x / scale], [0, 1 / scale, -y / scale]])
    out = cv2.warpAffine(img, cv_affine(a), (W, H), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    return out


def pattern(kind, W, H, rng, photos_dir):
    """A patterned light background (bg_pattern); returns (image, description)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    if kind == "stripes":
        period = uniform(rng, (20, 40))          # stripe period (px)
        angle = float(rng.choice([0.0, 45.0, 90.0]))  # vertical, diagonal, horizontal
        u = x * math.cos(math.radians(angle)) + y * math.sin(math.radians(angle))
        t = (np.sin(2 * math.pi * u / period) > 0).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 1.0)
        a, b = np.array([238, 238, 236], np.float32), np.array([175, 190, 210], np.float32)
        img = a + (b - a) * t[..., None]
        desc = "stripes period %.0f px angle %.0f" % (period, angle)
    elif kind == "checks":
        cell = uniform(rng, (24, 48))            # check cell size (px)
        t = ((np.floor(x / cell) + np.floor(y / cell)) % 2).astype(np.float32)
        a, b = np.array([240, 240, 240], np.float32), np.array([180, 180, 185], np.float32)
        img = a + (b - a) * t[..., None]
        desc = "checks cell %.0f px" % cell
    elif kind == "curtain":
        period = uniform(rng, (35, 70))          # fold spacing (px)
        wob = uniform(rng, (0.5, 1.5))           # how much the folds sway with height
        phase = 2 * math.pi * x / period + wob * np.sin(2 * math.pi * y / (3.1 * H))
        t = 0.5 + 0.5 * np.sin(phase) * (0.8 + 0.2 * np.sin(x / (2.3 * period)))
        base = np.array([226, 212, 188], np.float32)  # cream fabric
        img = base * (0.72 + 0.28 * t[..., None])
        desc = "curtain folds %.0f px" % period
    else:
        name = TEXTURES[int(rng.integers(len(TEXTURES)))]
        img = texture_crop(load_rgb(os.path.join(photos_dir, name)), W, H, rng,
                           tries=TEXTURE_TRIES)
        desc = "texture %s" % name
    img = img - luma(img).mean() + PATTERN_MEAN_LUMA  # light: only the pattern is wrong
    return np.clip(img, 0, 255).astype(np.float32), desc


def dark_colour(target, tint):
    rgb = np.asarray(tint, np.float32)
    return rgb * (target / float(luma(rgb)))


# ---------------------------------------------------------------------------- donors
def donor_crop(donor, height_px, flip, cache):
    """The donor face scaled so its box is height_px tall: (rgb float, alpha, box in crop)."""
    img = cache.get(donor["photo"])
    if img is None:
        img = cache[donor["photo"]] = load_rgb(donor["path"])
    b = donor["box"]
    s = height_px / b["height"]
    cw, ch = DONOR_CROP * b["width"] * s, DONOR_CROP * b["height"] * s
    W, H = max(2, int(round(cw))), max(2, int(round(ch)))
    # crop centre = box centre; box offset inside the crop
    ox, oy = (W - b["width"] * s) / 2, (H - b["height"] * s) / 2
    a = np.array([[s, 0, ox - b["x"] * s], [0, s, oy - b["y"] * s]])
    if s < 1:  # shrink with area averaging first (warpAffine has no INTER_AREA)
        pre = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        kx, ky = pre.shape[1] / img.shape[1], pre.shape[0] / img.shape[0]
        a2 = np.array([[s / kx, 0, ox - b["x"] * s], [0, s / ky, oy - b["y"] * s]])
        rgb = cv2.warpAffine(pre, cv_affine(a2), (W, H), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
    else:
        rgb = cv2.warpAffine(img, cv_affine(a), (W, H), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    r = np.sqrt(((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2)
    alpha = np.clip((1.0 - r) / 0.2, 0, 1)  # soft ellipse: 1 inside r < 0.8, 0 at r = 1
    rgb = rgb.astype(np.float32)
    box = [ox, oy, b["width"] * s, b["height"] * s]
    if flip:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        box[0] = W - box[0] - box[2]
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha), box


def paste(canvas, rgb, alpha, x, y):
    """Alpha-blends rgb at integer (x, y) into canvas (float), clipped at the borders."""
    H, W = canvas.shape[:2]
    h, w = alpha.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - a) + rgb[y0 - y:y1 - y, x0 - x:x1 - x] * a


# ---------------------------------------------------------------------------- rendering
def render(src, p, photos_dir, donors, donor_cache):
    """Draws one corpus image from plan `p`; returns (uint8 image, truth dict, extras)."""
    W, H = p["W"], p["H"]
    a = affine(src, p["s"], p["roll"], p["eye"])
    m = cv_affine(a)
    if p["s"] >= 0.75:
        fg = cv2.warpAffine(src.img, m, (W, H), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    else:  # strong shrink: area-average first (warpAffine has no INTER_AREA)
        pre = cv2.resize(src.img, None, fx=p["s"], fy=p["s"], interpolation=cv2.INTER_AREA)
        a2 = a.copy()
        a2[:, 0] *= src.img.shape[1] / pre.shape[1]
        a2[:, 1] *= src.img.shape[0] / pre.shape[0]
        fg = cv2.warpAffine(pre, cv_affine(a2), (W, H), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    # the mask on a canvas extended above the frame (a crown above the top edge is found)
    pad = int(math.ceil(0.35 * H))
    ap = a.copy()
    ap[1, 2] += pad
    # outside the photo there is no person: the background fills it (a body cut by the
    # photo's bottom edge ends there)
    mk = cv2.warpAffine(src.mask, cv_affine(ap), (W, H + pad), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32) / 255.0
    binary = (mk >= 0.5).astype(np.uint8)
    if ERODE_PX > 0:
        binary = cv2.erode(binary, np.ones((2 * ERODE_PX + 1,) * 2, np.uint8))
    alpha_ext = cv2.GaussianBlur(binary.astype(np.float32), (0, 0), FEATHER_SIGMA)
    # where the photo ends inside the frame (a close-up's neck), fade the person out over
    # EDGE_FADE_PX instead of a hard cut
    valid = cv2.warpAffine(np.full(src.img.shape[:2], 255, np.uint8), cv_affine(ap), (W, H + pad),
                           flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    below = int(np.clip(math.ceil(apply(ap, src.lm[8:9])[0, 1]), 0, H + pad))
    photo_edge = bool((valid[below:] == 0).any())  # the photo ends below the chin
    if photo_edge:  # only below the chin: the crown must stay where the mask puts it
        dist = cv2.distanceTransform((valid > 0).astype(np.uint8), cv2.DIST_L2, 3)
        alpha_ext[below:] *= np.clip(dist[below:] / EDGE_FADE_PX, 0, 1)
    alpha = np.ascontiguousarray(alpha_ext[pad:])
    # colour decontamination: near the edge use colours pushed out from inside the mask,
    # so the source's background does not fringe the hair on the new background
    core = cv2.erode(binary[pad:], np.ones((5, 5), np.uint8)).astype(np.float32)
    num = cv2.GaussianBlur(fg * core[..., None], (0, 0), DECONTAM_SIGMA)
    den = cv2.GaussianBlur(core, (0, 0), DECONTAM_SIGMA)[..., None]
    filled = np.where(den > 1e-3, num / np.maximum(den, 1e-3), fg)
    edge = cv2.GaussianBlur(1.0 - core, (0, 0), 1.0)[..., None]
    fg = fg * (1 - edge) + filled * edge

    # ---- truth from construction
    lm = apply(a, src.lm)
    eye_r, eye_l = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_mid = (eye_r + eye_l) / 2
    cols = np.arange(int(math.ceil(min(lm[36, 0], lm[45, 0]) - 0.5)),
                     int(math.floor(max(lm[36, 0], lm[45, 0]) - 0.5)) + 1)
    cols = cols[(cols >= 0) & (cols < W)]
    crown_y = _crown(alpha_ext, cols) - pad
    chin_y = lm[8, 1]
    d = eye_l - eye_r
    bx = src.box
    corners = apply(a, [[bx["x"], bx["y"]], [bx["x"] + bx["width"], bx["y"]],
                        [bx["x"], bx["y"] + bx["height"]],
                        [bx["x"] + bx["width"], bx["y"] + bx["height"]]])
    fb = [corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()]
    truth = {
        "width": W, "height": H,
        "crown_y": r2(crown_y), "chin_y": r2(chin_y),
        "eye_right": [r2(v) for v in eye_r], "eye_left": [r2(v) for v in eye_l],
        "eye_mid": [r2(v) for v in eye_mid],
        "head_height_ratio": round((chin_y - crown_y) / H, 4),
        "eye_line_from_bottom": round((H - eye_mid[1]) / H, 4),
        "eye_center_x": round(eye_mid[0] / W, 4),
        "roll_deg": r2(math.degrees(math.atan2(d[1], d[0]))),
        "inter_eye_px": r2(np.linalg.norm(d)),
        "face_box": [r2(fb[0]), r2(fb[1]), r2(fb[2] - fb[0]), r2(fb[3] - fb[1])],
        "scale": round(p["s"], 4),
        "photo_edge_below_chin": photo_edge,
    }

    # ---- background (+ a second face behind the subject)
    bgk = p["bg"]
    if bgk["kind"] == "plain":
        bg = plain(W, H, bgk["rgb"], bgk.get("gradient", 0.0))
        bg_desc = _bg_desc(bgk)
    elif bgk["kind"] == "pattern":
        bg, bg_desc = pattern(bgk["pattern"], W, H, rng_for(src.name, p["name"], "bg"), photos_dir)
    else:
        raise ValueError(bgk)
    extra = {"bg_desc": bg_desc}
    if p.get("second_face"):
        sf = p["second_face"]
        placed = _place_second_face(bg, alpha, sf, donors, donor_cache, lm, W, H)
        if placed is None:
            return None, None, None
        truth["second_face_px"] = r2(placed["box"][3])
        truth["second_face_box"] = [r2(v) for v in placed["box"]]
        extra["second_face"] = placed

    # ---- shadow on one half of the head (the subject layer only)
    if p.get("shadow"):
        sh = p["shadow"]
        n0, n1 = lm[27], lm[30]  # nose bridge top, nose tip: the nose line
        dirv = (n1 - n0) / np.linalg.norm(n1 - n0)
        normal = np.array([-dirv[1], dirv[0]])  # points to the image's left when upright
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
        dist = (xx - n0[0]) * normal[0] + (yy - n0[1]) * normal[1]  # > 0: image-left side
        if sh["side"] == "image_right":
            dist = -dist
        side = np.clip(dist / SHADOW_RAMP_PX + 0.5, 0, 1)  # 15 px soft transition
        head_len = chin_y - crown_y
        # down to the neck: full below the crown, fading out from 0.15 to 0.3 head heights
        # under the chin
        vert = np.clip(1 - (yy - (chin_y + 0.15 * head_len)) / (0.15 * head_len), 0, 1)
        shade = 1 - sh["depth"] * side * vert
        fg = fg * shade[..., None]
        truth["shadow_side"] = sh["side"]

    out = fg * alpha[..., None] + bg * (1 - alpha[..., None])
    if p.get("blur"):
        out = cv2.GaussianBlur(out, (0, 0), p["blur"])
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if p.get("gray"):
        g = np.clip(luma(out) + 0.5, 0, 255).astype(np.uint8)
        out = g if p["gray"] == "L" else np.repeat(g[..., None], 3, axis=2)
    if p.get("low_res"):
        f = p["low_res"]
        nw, nh = int(round(W * f)), int(round(H * f))
        out = cv2.resize(out, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / W, nh / H
        for k in ("eye_right", "eye_left", "eye_mid"):
            truth[k] = [r2(truth[k][0] * fx), r2(truth[k][1] * fy)]
        truth["crown_y"] = r2(crown_y * fy)
        truth["chin_y"] = r2(chin_y * fy)
        truth["inter_eye_px"] = r2(np.linalg.norm(d * [fx, fy]))
        fbx = truth["face_box"]
        truth["face_box"] = [r2(fbx[0] * fx), r2(fbx[1] * fy), r2(fbx[2] * fx), r2(fbx[3] * fy)]
        truth["width"], truth["height"] = nw, nh
        truth["scale"] = round(p["s"] * f, 4)
    return out, truth, extra


def _crown(alpha_ext, cols):
    """Sub-pixel top of alpha >= 0.5 over the given columns (corner coordinates)."""
    if len(cols) == 0:
        return float("nan")
    a = alpha_ext[:, cols]
    hit = np.where((a >= 0.5).any(1))[0]
    if len(hit) == 0:
        return float("nan")
    r = int(hit[0])
    if r == 0:
        return 0.0
    col = int(np.argmax(a[r]))  # the column reaching highest
    lo, hi = a[r - 1, col], a[r, col]
    frac = (0.5 - lo) / max(hi - lo, 1e-6)
    return (r - 1 + 0.5) + float(np.clip(frac, 0, 1))


def _place_second_face(bg, alpha, sf, donors, cache, lm, W, H):
    """Pastes a donor face into bg beside the shoulder, its face box clear of the subject
    (the rest of the soft crop may go behind the subject). Tries smaller sizes when the
    asked one does not fit. Returns the placement or None."""
    rng = sf["rng"]
    donor = donors[sf["donor"] % len(donors)]
    clear = cv2.dilate((alpha > 0.02).astype(np.uint8), np.ones((9, 9), np.uint8))
    integ = cv2.integral(clear)
    sizes = [v for v in SECOND_FACE_PX if v <= sf["px"]][::-1]
    chin_y = lm[8, 1]
    for px in sizes:
        rgb, a, box = donor_crop(donor, px, sf["flip"], cache)
        h, w = a.shape
        bx0, by0, bw, bh = box
        # every crop position on a 3 px grid whose face box is inside the frame and clear
        # of the (dilated) subject, by the integral image of the subject mask
        Y, X = np.meshgrid(np.arange(2, H - h - 1, 3), np.arange(-int(bx0) + 2, W - int(bx0 + bw) - 2, 3),
                           indexing="ij")
        fx0, fy0 = (X + bx0).astype(int), (Y + by0).astype(int)
        fx1, fy1 = np.ceil(X + bx0 + bw).astype(int), np.ceil(Y + by0 + bh).astype(int)
        inside = (fx0 >= 2) & (fy0 >= 2) & (fx1 <= W - 2) & (fy1 <= H - 2)
        cx0, cy0 = np.clip(fx0, 0, W), np.clip(fy0, 0, H)
        cx1, cy1 = np.clip(fx1, 0, W), np.clip(fy1, 0, H)
        covered = integ[cy1, cx1] - integ[cy0, cx1] - integ[cy1, cx0] + integ[cy0, cx0]
        ok = inside & (covered == 0)
        if not ok.any():
            continue
        X, Y = X[ok], Y[ok]
        # prefer the face centre near shoulder height (just above the chin line)
        score = np.abs(Y + by0 + bh / 2 - (chin_y - 0.5 * bh))
        order = np.lexsort((Y, X, score))
        best = order[:max(1, len(order) // 20)]
        pick = best[int(rng.integers(len(best)))]
        x, y = int(X[pick]), int(Y[pick])
        paste(bg, rgb, a, x, y)
        return {"px": px, "box": [x + bx0, y + by0, bw, bh], "donor": donor["photo"],
                "donor_index": donor["index"], "flip": bool(sf["flip"])}
    return None


# ---------------------------------------------------------------------------- step 3 / 4
def plan_base(src, i, rng):
    """A compliant(-geometry) base: returns the plan dict, or None when impossible."""
    r = uniform(rng, (HEAD_OK[0] + 0.005, HEAD_OK[1] - 0.005))  # margin for the rounding
    roll = uniform(rng, (-ROLL_JITTER_DEG, ROLL_JITTER_DEG))
    crown, chin = head_extent(src, roll)
    head1 = crown + chin
    s = min(r * uniform(rng, H_TARGET) / head1, MAX_UPSCALE)
    if src.inter_eye * s < MIN_INTER_EYE_PX:
        s = MIN_INTER_EYE_PX / src.inter_eye
    H = int(round(head1 * s / r))
    s = r * H / head1
    W = int(round(H * ASPECT))
    ex = uniform(rng, EYE_X_OK) * W
    e_hi = min(EYE_LINE_OK[1], 1 - crown * s / H - MIN_TOP_MARGIN)
    e = uniform(rng, (EYE_LINE_OK[0], max(EYE_LINE_OK[0], e_hi)))
    name, rgb = BACKGROUNDS[i % len(BACKGROUNDS)]
    grad = uniform(rng, GRADIENT_LEVELS) if i % 2 == 1 else 0.0
    return {"W": W, "H": H, "s": s, "roll": roll, "eye": (ex, (1 - e) * H), "ratio": r,
            "bg": {"kind": "plain", "rgb": rgb, "name": name, "gradient": grad}}


def _resize_for_ratio(src, base, r, rng, top=None):
    """A plan with the base's scale and roll but head ratio r (H changes, W follows)."""
    p = dict(base)
    crown, chin = head_extent(src, p["roll"])
    head = (crown + chin) * p["s"]
    H = int(round(head / r))
    if H < MIN_DEFECT_H:  # keep the frame tall enough: enlarge the subject a little
        H = MIN_DEFECT_H
        p["s"] = r * H / (crown + chin)
        head = (crown + chin) * p["s"]
    W = int(round(H * ASPECT))
    ex = base["eye"][0] / base["W"] * W
    if top is None:
        e_hi = min(EYE_LINE_OK[1], 1 - crown * p["s"] / H - MIN_TOP_MARGIN)
        e = uniform(rng, (EYE_LINE_OK[0], max(EYE_LINE_OK[0], e_hi)))
        ey = (1 - e) * H
    else:
        ey = top * H + crown * p["s"]
    p.update(W=W, H=H, eye=(ex, ey), ratio=head / H)
    return p


def _keep_head_inside(src, p):
    """Moves the eye line down when a rotation pushed the crown over the top margin."""
    crown, chin = head_extent(src, p["roll"])
    top = p["eye"][1] - crown * p["s"]
    if top < MIN_TOP_MARGIN * p["H"]:
        p["eye"] = (p["eye"][0], p["eye"][1] + MIN_TOP_MARGIN * p["H"] - top)
    return p


def plan_defect(src, cls, j, base, rng, n_donors):
    """Plan of defect `cls` (j-th of its class for this source) from a base plan."""
    p = dict(base)
    sign = 1 if j % 2 == 0 else -1
    if cls in ("roll_5", "roll_10", "roll_20"):
        deg = {"roll_5": ROLL_SMALL_DEG, "roll_10": ROLL_MID_DEG, "roll_20": ROLL_BIG_DEG}[cls]
        p["roll"] = sign * deg
        p = _keep_head_inside(src, p)
        return p, "roll %+.0f deg" % p["roll"]
    if cls == "head_small":
        p = _resize_for_ratio(src, base, uniform(rng, HEAD_SMALL), rng)
        return p, "head %.3f" % p["ratio"]
    if cls == "head_large":
        p = _resize_for_ratio(src, base, uniform(rng, HEAD_LARGE), rng,
                              top=uniform(rng, HEAD_LARGE_TOP))
        return p, "head %.3f" % p["ratio"]
    if cls == "off_centre":
        fx = OFF_CENTRE_X[j % 2]
        p["eye"] = (fx * p["W"], p["eye"][1])
        return p, "eye x %.2f" % fx
    if cls == "blur":
        p["blur"] = uniform(rng, BLUR_SIGMA)
        return p, "gaussian sigma %.2f px" % p["blur"]
    if cls == "shadow_half":
        p["shadow"] = {"side": "image_left" if j % 2 == 0 else "image_right",
                       "depth": uniform(rng, SHADOW_DEPTH)}
        return p, "%s half darkened %.0f %%" % (p["shadow"]["side"], 100 * p["shadow"]["depth"])
    if cls == "second_face":
        px = SECOND_FACE_PX[(j + zlib.crc32(src.name.encode())) % len(SECOND_FACE_PX)]
        p["second_face"] = {"px": px, "donor": int(rng.integers(n_donors)),
                            "flip": bool(rng.integers(2)), "rng": rng}
        return p, "second face %d px" % px
    if cls == "bg_pattern":
        kind = PATTERNS[(j + zlib.crc32(src.name.encode())) % len(PATTERNS)]
        p["bg"] = {"kind": "pattern", "pattern": kind}
        return p, kind
    if cls == "bg_dark":
        lum = uniform(rng, DARK_LUMA)
        tint = DARK_TINTS[j % len(DARK_TINTS)]
        rgb = tuple(float(v) for v in dark_colour(lum, tint))
        p["bg"] = {"kind": "plain", "rgb": rgb, "name": "dark", "gradient": 0.0}
        return p, "background luma %.0f rgb (%d,%d,%d)" % ((lum,) + tuple(int(v) for v in rgb))
    if cls == "crop_head":
        f = uniform(rng, CROP_HEAD)
        crown, chin = head_extent(src, p["roll"])
        p["eye"] = (p["eye"][0], crown * p["s"] - f * p["H"])
        return p, "crown %.1f %% above the top" % (100 * f)
    if cls == "low_res":
        p["low_res"] = uniform(rng, LOW_RES)
        return p, "downscaled %.2fx" % p["low_res"]
    if cls == "grayscale":
        p["gray"] = "L" if j % 2 == 0 else "RGB"
        return p, "grayscale (%s JPEG)" % p["gray"]
    raise ValueError(cls)


# class -> (expect, reasons); roll_5 is compliant (accept) and only from neutral sources
DEFECTS = {
    "roll_5": ("accept", []),
    "roll_10": ("reject", ["roll"]),
    "roll_20": ("reject", ["roll"]),
    "head_small": ("reject", ["head_height"]),
    "head_large": ("reject", ["head_height"]),
    "off_centre": ("reject", ["eye_center_x"]),
    "blur": ("reject", ["face_sharpness"]),
    "shadow_half": ("reject", ["illumination_balance"]),
    "second_face": ("reject", ["faces"]),
    "bg_pattern": ("reject", ["background_texture", "background_uniformity"]),
    "bg_dark": ("reject", ["background_brightness"]),
    "crop_head": ("reject", ["head_inside", "head_height"]),
    "low_res": ("reject", ["inter_eye_distance", "width", "height"]),
    "grayscale": ("reject", ["colourfulness"]),
}
# the checks that tell a non-neutral expression (reasons of non-neutral compliant bases)
EXPRESSION_REASONS = ["expression_neutral", "mouth_closed"]


def _bg_desc(bg):
    if bg["kind"] == "plain":
        g = bg.get("gradient", 0.0)
        return "bg %s%s" % (bg.get("name", "plain"), " gradient %.1f" % g if g else "")
    return "bg %s" % bg["pattern"]


def _check_truth(cls, t):
    """Asserts the construction reached the class's intended geometry."""
    H = t["height"]
    hr = t["head_height_ratio"]
    inside = t["crown_y"] >= 0 and t["chin_y"] <= H
    problems = []
    if cls in ("compliant", "compliant_geometry", "roll_5"):
        if not (HEAD_OK[0] - 0.01 <= hr <= HEAD_OK[1] + 0.01):
            problems.append("head ratio %.3f" % hr)
        if not (0.45 <= t["eye_center_x"] <= 0.55):
            problems.append("eye x %.3f" % t["eye_center_x"])
        if not (0.5 <= t["eye_line_from_bottom"] <= 0.7):
            problems.append("eye line %.3f" % t["eye_line_from_bottom"])
    if cls == "head_small" and not (HEAD_SMALL[0] - 0.01 <= hr <= HEAD_SMALL[1] + 0.01):
        problems.append("head ratio %.3f" % hr)
    if cls == "head_large" and not (HEAD_LARGE[0] - 0.01 <= hr <= HEAD_LARGE[1] + 0.01):
        problems.append("head ratio %.3f" % hr)
    if cls == "crop_head" and not (t["crown_y"] < 0):
        problems.append("crown inside")
    if cls not in ("crop_head",) and not inside:
        problems.append("head not inside (crown %.1f chin %.1f)" % (t["crown_y"], t["chin_y"]))
    if math.isnan(t["crown_y"]):
        problems.append("no crown")
    return problems


def build_source(src, per, donors, photos_dir, out_dir, debug):
    """Steps 3 and 4 for one source: its images (written to out_dir), their labels, log
    lines and (with debug) labelled thumbnails."""
    entries, thumbs, log = [], [], []
    donor_cache = {}
    rng = rng_for("corpus", src.name)
    own_donors = [d for d in donors if d["photo"] != src.name]
    bases = []
    for i in range(COMPLIANT_PER_SOURCE):
        p = plan_base(src, i, rng)
        p["name"] = "base%d" % i
        bases.append(p)
    jobs = []
    for i, p in enumerate(bases):
        cls = "compliant" if src.neutral else "compliant_geometry"
        jobs.append((cls, i + 1, p, "%s, roll %+.1f" % (_bg_desc(p["bg"]), p["roll"])))
    for cls in DEFECTS:
        if cls == "roll_5" and not src.neutral:
            continue  # roll_5 is a compliant class
        for j in range(per):
            base = bases[(j + list(DEFECTS).index(cls)) % len(bases)]
            p, desc = plan_defect(src, cls, j, base, rng_for(src.name, cls, j), len(own_donors))
            p["name"] = "%s%d" % (cls, j)
            jobs.append((cls, j + 1, p, desc))
    for cls, k, p, desc in jobs:
        img, truth, extra = render(src, p, photos_dir, own_donors, donor_cache)
        if img is None:
            log.append("  %s %s %d: not made (no room for the second face)" % (src.name, cls, k))
            continue
        problems = _check_truth(cls, truth)
        if problems:
            log.append("  WARNING %s %s %d: %s" % (src.name, cls, k, "; ".join(problems)))
        if cls in ("compliant", "compliant_geometry"):
            expect, reasons = ("accept", []) if src.neutral else ("reject", EXPRESSION_REASONS)
        else:
            expect, reasons = DEFECTS[cls]
        fname = "%s_%s_%02d.jpg" % (src.stem, cls, k)
        if img.ndim == 2:
            Image.fromarray(img, "L").save(os.path.join(out_dir, fname), quality=JPEG_QUALITY,
                                           optimize=True)
        else:
            save_jpeg(os.path.join(out_dir, fname), img, JPEG_QUALITY)
        params = {"scale": round(p["s"], 4), "roll_applied_deg": round(p["roll"], 2),
                  "background": extra["bg_desc"]}
        if extra.get("second_face"):
            sfp = extra["second_face"]
            params["second_face"] = {k2: sfp[k2] for k2 in ("px", "donor", "donor_index", "flip")}
            desc = "second face %d px (%s #%d%s)" % (
                sfp["px"], sfp["donor"], sfp["donor_index"], ", flipped" if sfp["flip"] else "")
            if sfp["px"] != p["second_face"]["px"]:
                desc += ", %d px did not fit" % p["second_face"]["px"]
        for key in ("blur", "low_res", "gray"):
            if p.get(key):
                params[key] = round(p[key], 3) if isinstance(p[key], float) else p[key]
        if p.get("shadow"):
            params["shadow"] = {"side": p["shadow"]["side"], "depth": round(p["shadow"]["depth"], 3)}
        if p["bg"]["kind"] == "pattern":
            desc = extra["bg_desc"]
        entries.append({
            "file": fname, "source": src.name, "class": cls, "variant": desc,
            "params": params, "expect": expect, "reasons": reasons,
            "neutral_source": src.neutral, "source_expression": src.expression,
            "source_neutral_p": round(src.neutral_p, 4), "truth": truth,
        })
        if debug:
            thumbs.append((cls, _truth_thumb(fname, img, truth)))
    return entries, thumbs, log


def _segment_job(src):
    """Worker: step 2 for one source; returns what the later steps need."""
    segment(src)
    return src.mask, src.contour, src.crown_cut, src.debug


def _build_job(args):
    return build_source(*args)


# ---------------------------------------------------------------------------- step 5
def write_samples(entries, out_dir):
    """3 'compliant' (accept entries; compliant-geometry ones when there are none) and
    3 defect images for the demo, from different sources where possible."""
    sdir = os.path.join(out_dir, "samples")
    os.makedirs(sdir, exist_ok=True)
    good = [e for e in entries if e["class"] == "compliant"]
    if len(good) < 3:
        good += [e for e in entries if e["class"] == "compliant_geometry"]
    # most neutral-looking first, then the sharpest (largest eye distance)
    good.sort(key=lambda e: (not e["neutral_source"], e["truth"]["photo_edge_below_chin"],
                             -e["source_neutral_p"], -e["truth"]["inter_eye_px"]))
    picked, seen = [], set()
    for e in good:
        if e["source"] not in seen:
            picked.append(e)
            seen.add(e["source"])
        if len(picked) == 3:
            break
    for e in good:
        if len(picked) >= 3:
            break
        if e not in picked:
            picked.append(e)
    for cls in ("second_face", "shadow_half", "bg_pattern"):
        cands = [e for e in entries if e["class"] == cls]
        if cls == "second_face":
            cands.sort(key=lambda e: -e["truth"].get("second_face_px", 0))
        if cls == "bg_pattern":
            cands.sort(key=lambda e: "curtain" not in e["variant"])
        cands.sort(key=lambda e: e["source"] in [p["source"] for p in picked[3:]])
        if cands:
            picked.append(cands[0])
    labels = []
    for e in picked:
        shutil.copyfile(os.path.join(out_dir, e["file"]), os.path.join(sdir, e["file"]))
        labels.append(e)
    write_json_lines(os.path.join(sdir, "labels.json"), labels)
    return picked


# ---------------------------------------------------------------------------- step 6
def recall_background(kind, W, H, rng, photos_dir):
    if kind == "plain":
        return plain(W, H, (uniform(rng, (150, 235)),) * 3)
    if kind == "gradient":
        y = (np.arange(H, dtype=np.float32) + 0.5)[:, None, None] / H
        top = np.array([200, 215, 235], np.float32)   # sky-like blue at the top
        bottom = np.array([120, 110, 95], np.float32)  # brown at the bottom
        return np.array(np.broadcast_to(top + (bottom - top) * y, (H, W, 3)), np.float32)
    name = {"coffee": "coffee.png", "rocket": "rocket.jpg"}[kind]
    return texture_crop(load_rgb(os.path.join(photos_dir, name)), W, H, rng,
                        blur=0.6 * max(W, H) / 1000)


def _free(rect, taken, gap):
    x0, y0, x1, y1 = rect
    return all(x1 + gap <= a or b + gap <= x0 or y1 + gap <= c or d + gap <= y0
               for a, c, b, d in taken)


def build_recall(donors, photos_dir, out_dir, debug):
    """Step 6: small-face recall images with known boxes."""
    rdir = os.path.join(out_dir, "recall")
    os.makedirs(rdir, exist_ok=True)
    cache = {}
    labels, thumbs = [], []
    for idx, (W, H, bgk, heights) in enumerate(RECALL_IMAGES):
        rng = rng_for("recall", idx)
        canvas = recall_background(bgk, W, H, rng, photos_dir)
        taken, faces = [], []
        hs = [int(round(v * max(W, H))) if isinstance(v, float) else v for v in heights]
        for k, px in enumerate(sorted(hs, reverse=True)):  # big ones first: they need room
            donor = donors[int(rng.integers(len(donors)))]
            rgb, a, box = donor_crop(donor, px, bool(rng.integers(2)), cache)
            h, w = a.shape
            for _ in range(2000):
                x = int(rng.integers(4, W - w - 4))
                y = int(rng.integers(4, H - h - 4))
                rect = (x, y, x + w, y + h)
                if _free(rect, taken, 0.15 * max(w, h)):
                    break
            else:
                raise RuntimeError("recall image %d: no room for a %d px face" % (idx, px))
            taken.append(rect)
            paste(canvas, rgb, a, x, y)
            faces.append([r2(x + box[0]), r2(y + box[1]), r2(box[2]), r2(box[3])])
        img = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
        fname = "recall_%02d_%dx%d_%s.jpg" % (idx + 1, W, H, bgk)
        save_jpeg(os.path.join(rdir, fname), img, RECALL_QUALITY)
        labels.append({"file": "recall/" + fname, "width": W, "height": H, "faces": faces,
                       "background": bgk})
        if debug:
            thumbs.append(_recall_thumb(fname, img, faces))
    # the group-like image: rows of 45-60 px faces on a textured background
    W, H = GROUP_SIZE
    rng = rng_for("recall", "group")
    canvas = texture_crop(load_rgb(os.path.join(photos_dir, "coffee.png")), W, H, rng, blur=1.0)
    faces = []
    rows = len(GROUP_ROWS)
    for r, count in enumerate(GROUP_ROWS):
        cy = H * (r + 0.6) / (rows + 0.2)
        for c in range(count):
            cx = W * (c + 0.5 + (0.25 if r % 2 else 0)) / (count + 0.5)
            px = int(rng.integers(GROUP_FACE_PX[0], GROUP_FACE_PX[1] + 1))
            donor = donors[(r * 8 + c) % len(donors)]
            rgb, a, box = donor_crop(donor, px, bool((r + c) % 2), cache)
            h, w = a.shape
            x = int(round(cx - w / 2 + rng.uniform(-12, 12)))
            y = int(round(cy - h / 2 + rng.uniform(-15, 15)))
            paste(canvas, rgb, a, x, y)
            faces.append([r2(x + box[0]), r2(y + box[1]), r2(box[2]), r2(box[3])])
    img = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    fname = "recall_group_%dx%d.jpg" % (W, H)
    save_jpeg(os.path.join(rdir, fname), img, RECALL_QUALITY)
    labels.append({"file": "recall/" + fname, "width": W, "height": H, "faces": faces,
                   "background": "coffee"})
    if debug:
        thumbs.append(_recall_thumb(fname, img, faces))
    write_json_lines(os.path.join(out_dir, "recall.json"), labels)
    return labels, thumbs


# ---------------------------------------------------------------------------- debug montages
def _thumb(img, h):
    im = Image.fromarray(img if img.ndim == 3 else np.repeat(img[..., None], 3, 2))
    k = h / im.height
    return im.resize((max(1, int(im.width * k)), h), Image.BILINEAR), k


def montage_masks(sources, path):
    tiles = []
    for src in sources:
        th, k = _thumb(src.img, 420)
        m = cv2.resize(src.mask, th.size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        arr = np.asarray(th).astype(np.float32)
        arr = arr * (0.25 + 0.75 * m[..., None]) + np.array([0, 90, 0]) * (1 - m[..., None])
        tiles.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
        for key in ("body", "head"):
            small, fg, _ = src.debug[key]
            v = small.astype(np.float32)
            v[fg == 0] = v[fg == 0] * 0.3 + np.array([0, 90, 0])
            t, _ = _thumb(np.clip(v, 0, 255).astype(np.uint8), 420)
            tiles.append(t)
    _grid(tiles, path, cols=6)


def _grid(tiles, path, cols):
    if not tiles:
        return
    rows = [tiles[i:i + cols] for i in range(0, len(tiles), cols)]
    W = max(sum(t.width for t in r) for r in rows)
    H = sum(max(t.height for t in r) for r in rows)
    M = Image.new("RGB", (W, H), (40, 40, 40))
    y = 0
    for r in rows:
        x = 0
        for t in r:
            M.paste(t, (x, y))
            x += t.width
        y += max(t.height for t in r)
    M.save(path)


def _truth_thumb(fname, img, t):
    """A 300 px tall thumbnail with the truth drawn: crown (red), chin (blue), eyes
    (green), second face box (magenta), and a label."""
    th, _ = _thumb(img, 300)
    th = th.convert("RGB")
    d = ImageDraw.Draw(th)
    ky = 300 / t["height"]
    kx = th.width / t["width"]
    cy, ch = t["crown_y"] * ky, t["chin_y"] * ky
    d.line([(0, cy), (th.width, cy)], fill=(255, 0, 0))
    d.line([(0, ch), (th.width, ch)], fill=(0, 0, 255))
    for e in ("eye_right", "eye_left"):
        x, y = t[e][0] * kx, t[e][1] * ky
        d.ellipse([x - 2, y - 2, x + 2, y + 2], outline=(0, 255, 0))
    if "second_face_box" in t:
        b = t["second_face_box"]
        d.rectangle([b[0] * kx, b[1] * ky, (b[0] + b[2]) * kx, (b[1] + b[3]) * ky],
                    outline=(255, 0, 255))
    d.rectangle([0, 0, th.width, 11], fill=(0, 0, 0))
    d.text((2, 0), "%s h%.2f e%.2f" % (fname[:-4][-18:], t["head_height_ratio"],
                                       t["eye_line_from_bottom"]), fill=(255, 255, 0))
    return th


def montage_corpus(thumbs, debug):
    """One PNG per class: the thumbnails of its images."""
    groups = {}
    for cls, tile in thumbs:
        groups.setdefault(cls, []).append(tile)
    paths = []
    for cls, tiles in groups.items():
        p = os.path.join(debug, "corpus_%s.png" % cls)
        _grid(tiles, p, cols=8)
        paths.append(p)
    return paths


def _recall_thumb(fname, img, faces):
    """A 500 px tall thumbnail with the face boxes (red) and the file name."""
    th, k = _thumb(img, 500)
    d = ImageDraw.Draw(th)
    for x, y, w, h in faces:
        d.rectangle([x * k, y * k, (x + w) * k, (y + h) * k], outline=(255, 0, 0))
    d.text((2, 0), fname, fill=(255, 255, 0))
    return th


def montage_recall(thumbs, debug):
    p = os.path.join(debug, "recall.png")
    _grid(thumbs, p, cols=3)
    return p


# ---------------------------------------------------------------------------- main
README = """# veridoc conformance corpus (generated by scripts/make_corpus.py; do not edit)

labels.json: one entry per image: file, source (photo in ../photos), class, variant
(human-readable), params, expect ("accept" | "reject"), reasons (check names: the image
counts as "rejected for the right reason" when any one of them fails), neutral_source
(face-api's expression argmax of the source is "neutral"), source_expression,
source_neutral_p, truth.

Only neutral sources give "accept" entries (classes compliant and roll_5). Non-neutral
sources give "compliant_geometry" entries (passport geometry, plain background) expected to be
rejected for expression_neutral / mouth_closed, and defect entries whose reasons are the
defect's own checks (they may fail the expression checks as well).

truth (from construction: transformed face-api landmarks and a grabCut person mask):
* coordinates: image px, x right, y down, origin at the top-left corner of the image
  (pixel centres at +0.5)
* eye_right = subject's right eye = image-left eye (landmarks 36-41 mean); eye_left = 42-47
* roll_deg = atan2(eye_left.y - eye_right.y, eye_left.x - eye_right.x) in degrees
* chin_y = landmark 8; crown_y = top of the person mask (alpha >= 0.5) between the outer eye
  corners (36, 45); negative when above the frame
* head_height_ratio = (chin_y - crown_y) / height; eye_line_from_bottom =
  (height - eye_mid.y) / height; eye_center_x = eye_mid.x / width
* inter_eye_px = |eye_left - eye_right|; face_box = transformed face-api box [x, y, w, h];
  scale = output px per source px; second_face_px / second_face_box: the pasted face's box;
  shadow_side: the darkened half (image_left / image_right)
* photo_edge_below_chin: the source photo ends inside the frame below the chin (close-up
  sources): the body stops there, faded out over a few px, and the background fills the rest
* for low_res the truth is scaled with the image; for crop_head crown_y < 0 and
  head_height_ratio counts the part above the frame

Classes and reasons: compliant / roll_5 (accept; neutral sources only), compliant_geometry
(expression_neutral, mouth_closed), roll_10 / roll_20 (roll), head_small / head_large
(head_height), off_centre (eye_center_x), blur (face_sharpness), shadow_half
(illumination_balance), second_face (faces), bg_pattern (background_texture,
background_uniformity), bg_dark (background_brightness), crop_head (head_inside,
head_height), low_res (inter_eye_distance, width, height), grayscale (colourfulness).

samples/: 3 compliant (accept entries first) and 3 defect images with their labels.json.

recall.json: {file, width, height, faces: [[x, y, w, h], ...], background}: face-api-style
boxes of the pasted donor faces (their detection boxes, transformed).
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=os.environ.get("VERIDOC_FIXTURES", "fixtures"))
    ap.add_argument("--debug", default=None, help="write inspection montages (PNG) here")
    args = ap.parse_args()
    t0 = time.time()
    photos_dir = os.path.join(args.fixtures, "photos")
    ref = json.load(open(os.path.join(args.fixtures, "reference", "faceapi.json")))["photos"]
    out_dir = os.path.join(args.fixtures, "corpus")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    if args.debug:
        os.makedirs(args.debug, exist_ok=True)

    sources, donors = pick_sources(ref, photos_dir)
    if not sources:
        sys.exit("make_corpus: no usable source photo")
    if not donors:
        sys.exit("make_corpus: no donor face (%s*.jpg)" % DONOR_PREFIX)
    for d in donors:
        d["path"] = os.path.join(photos_dir, d["photo"])
    t1 = time.time()
    # steps 2-4 and 6 run in WORKERS processes; every job seeds its own RNGs, so the
    # result does not depend on how many run at once
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=_mp_context()) as pool:
        recall_job = pool.submit(build_recall, donors, photos_dir, out_dir, args.debug)
        for src, (mask, contour, crown_cut, dbg) in zip(sources, pool.map(_segment_job, sources)):
            src.mask, src.contour, src.crown_cut, src.debug = mask, contour, crown_cut, dbg
        for src in sources:
            if src.crown_cut:
                print("  skip %-26s hair reaches the photo's top edge: crown unknown" % src.name)
        sources = [s_ for s_ in sources if not s_.crown_cut]
        if not sources:
            sys.exit("make_corpus: no usable source photo")
        t2 = time.time()
        print("make_corpus: %d sources (%d neutral: %s), segmented in %.1f s" % (
            len(sources), sum(s_.neutral for s_ in sources),
            ", ".join(s_.name for s_ in sources if s_.neutral) or "none", t2 - t1))
        if args.debug:
            montage_masks(sources, os.path.join(args.debug, "masks.png"))
        per = int(np.clip(math.ceil(DEFECT_TARGET_PER_CLASS / len(sources)), *DEFECT_PER_SOURCE))
        entries, thumbs = [], []
        jobs = [(src, per, donors, photos_dir, out_dir, args.debug) for src in sources]
        for ents, ths, log in pool.map(_build_job, jobs):
            for line in log:
                print(line)
            entries += ents
            thumbs += ths
        t3 = time.time()
        recall, rthumbs = recall_job.result()
    write_json_lines(os.path.join(out_dir, "labels.json"), entries)
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(README)
    picked = write_samples(entries, out_dir)
    t4 = time.time()

    counts = {}
    for e in entries:
        counts.setdefault(e["class"], {}).setdefault(e["source"], 0)
        counts[e["class"]][e["source"]] += 1
    print("make_corpus: %d images (%d accept, %d reject) in %s" % (
        len(entries), sum(e["expect"] == "accept" for e in entries),
        sum(e["expect"] == "reject" for e in entries), out_dir))
    for cls, per in counts.items():
        print("  %-19s %3d  %s" % (cls, sum(per.values()),
                                   ", ".join("%s %d" % kv for kv in sorted(per.items()))))
    print("make_corpus: samples: %s" % ", ".join(e["file"] for e in picked))
    print("make_corpus: recall: %d images, %d faces" % (len(recall),
                                                        sum(len(r["faces"]) for r in recall)))
    if args.debug:
        paths = montage_corpus(thumbs, args.debug)
        paths.append(montage_recall(rthumbs, args.debug))
        print("make_corpus: montages in %s" % args.debug)
    print("make_corpus: done in %.1f s (segmentation %.1f, images %.1f, %d workers)"
          % (time.time() - t0, t2 - t1, t3 - t2, WORKERS))


if __name__ == "__main__":
    main()
