#!/usr/bin/env python3
"""Peer-library benchmark for veridoc's W1 and W2 workloads, so anyone can rerun the comparison.

W1 (default): the JPEGs in target/w1/*.jpg (24 x 4032x3024, made by scripts/gen_w1.py).
Per image: decode, letterbox into 640x640 (resize keeping the aspect ratio so the long side is
640, then pad centred with black, the odd pixel right/bottom, as veridoc's `fit` does), then
ImageNet-normalize to float32 NCHW (mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] on
[0, 1] values; the padding is normalized like a black pixel). Each peer spreads the files over a
multiprocessing Pool(--procs, default 2) of single-threaded workers; the work in each worker is
everything from reading the file to the normalized float32 array (the array is not sent back).
  pillow       Image.open; im.draft('RGB', (w, h)) for the letterboxed size w x h (JPEG
               DCT-domain downscale to the smallest scale covering it, 1/4 here);
               convert('RGB'); resize(..., Image.BILINEAR) (antialiased); pad; numpy normalize
  pillow-simd  the same code, run by a second interpreter that has Pillow-SIMD
               (--python-simd, default /work/venv-simd/bin/python when it exists; see
               scripts/setup-peers.sh)
  pillow-simd-full       Pillow-SIMD, no draft: Image.open; convert('RGB') (full-resolution
               decode); resize(..., Image.BILINEAR); pad; normalize (what veridoc's
               `--shrink exact` does)
  pillow-simd-thumbnail  Pillow-SIMD with Image.thumbnail's reducing gap 2: im.draft('RGB',
               (2 * w, 2 * h)) for the letterboxed size w x h (the smallest DCT scale that
               keeps >= 2x the target: 1/2 for 4032x3024 -> 640x480), convert('RGB'),
               resize(..., Image.BILINEAR); pad; normalize. This is Image.thumbnail((640, 640),
               Image.BILINEAR) (its default resample is BICUBIC); thumbnail's extra
               reduce() step only runs when the draft leaves >= 4x the target, never on W1.
               (veridoc's `--shrink balanced`)
  (pillow-full and pillow-thumbnail: the same two in upstream Pillow)
  opencv       cv2.imread(path, IMREAD_REDUCED_COLOR_{2,4,8}) with the largest reduction that
               keeps the decode >= the letterboxed size (4 for 4032x3024, read from the JPEG
               header), cv2.resize(INTER_AREA), BGR->RGB (on the small image), pad, normalize;
               cv2.setNumThreads(1) in the workers
  pyvips       pyvips.Image.thumbnail(path, 640, height=640) (shrink-on-load), .numpy(), pad,
               normalize; VIPS_CONCURRENCY=1 in the workers and the libvips operation cache off
               (so a later pass cannot reuse an earlier pass's result)

W2 (--w2): the first 4 W1 files decoded once to 4032x3024 RGB8 arrays in memory, cycled through;
per image: stretch to 224x224 and normalize to float32 NCHW, in a single process.
  pillow       Image.fromarray(a).resize((224, 224), Image.BILINEAR) + normalize
  pillow-simd  the same, in the Pillow-SIMD interpreter
  opencv       cv2.resize(a, (224, 224), interpolation=INTER_AREA) + normalize, once with
               cv2.setNumThreads(1) and once with OpenCV's default thread count

Interleaved rounds (--rounds N, W1 only): veridoc's W1 and the peers take turns, round by round,
so that machine noise hits both alike. Each round runs, for each pair (engine mode, peer) of
--pairs (default exact:pillow-simd-full,balanced:pillow-simd-thumbnail,fast:pillow-simd), the
engine command and the peer, the engine first in even rounds and the peer first in odd ones.
The engine command is `--engine-bin` (default target/release/bench, the `bench` binary of
veridoc-bench) run as `BIN --workload w1 --device cpu --passes P --shrink MODE --w1-dir DIR
--json TMP` (its own warm-up pass, then P = --round-passes (3) timed passes of the 24 files on
all cores, the files read into memory first); a peer's round is a fresh Pool(--procs) with one
warm-up pass and P timed passes. A round's figure is the best of its P passes (noise from other
tenants only ever slows a pass down). Reported: per implementation the median (and min-max) of
the rounds' images/s, and per pair the median of the per-round ratios engine/peer.
  python3 scripts/peers.py --rounds 5 [--round-passes 3] [--pairs exact:pillow-simd-full,...]
                           [--engine-bin PATH]

Timing: each peer does 1 warm-up pass, then the best of --passes (3) timed passes; images/s =
images per pass / best pass time, ms/image = 1000 / images/s (a throughput figure: with 2
processes it is not one image's latency). A peer whose library is missing is reported as
"not installed". Also printed: the load average before and after each peer, and a sanity check:
the mean |difference| of each peer's first output tensor from Pillow's (normalized units).

usage:
  python3 scripts/peers.py [--dir target/w1] [--procs 2] [--passes 3] [--json out.json]
                           [--python-simd PATH] [--peers pillow,pillow-simd,opencv,pyvips,
                           pillow-simd-full,pillow-simd-thumbnail,pillow-full,pillow-thumbnail]
  python3 scripts/peers.py --rounds N [--pairs MODE:PEER,...] [--engine-bin PATH] ...
  python3 scripts/peers.py --w2 [--w2-count 24] [--json out.json] ...
Install the peers with scripts/setup-peers.sh.
"""
import argparse
import functools
import glob
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
# x_norm = v * SCALE + BIAS for an 8-bit value v, per channel
SCALE = (1.0 / (255.0 * STD)).astype(np.float32)
BIAS = (-MEAN / STD).astype(np.float32)

BOX = 640        # W1 letterbox size
W2_SIZE = 224    # W2 stretch size
DEFAULT_SIMD = "/work/venv-simd/bin/python"
W1_PEERS = ["pillow", "pillow-simd", "opencv", "pyvips", "pillow-full", "pillow-thumbnail",
            "pillow-simd-full", "pillow-simd-thumbnail"]
# W1 peers that run in the Pillow-SIMD interpreter, and the Pillow code each runs there
W1_DEFAULT = ["pillow", "pillow-simd", "opencv", "pyvips"]  # run when --peers is not given
SIMD_PEERS = {"pillow-simd": "pillow", "pillow-simd-full": "pillow-full",
              "pillow-simd-thumbnail": "pillow-thumbnail"}
DEFAULT_PAIRS = "exact:pillow-simd-full,balanced:pillow-simd-thumbnail,fast:pillow-simd"
W2_PEERS = ["pillow", "pillow-simd", "opencv-1thread", "opencv-threads"]


# ---------------------------------------------------------------- shared steps

def fit_size(w, h, box_w=BOX, box_h=BOX):
    """Letterbox size: one side matches the box, the other is rounded (veridoc's geometry)."""
    if w * box_h >= h * box_w:
        return box_w, min(max(int(round(h * box_w / w)), 1), box_h)
    return min(max(int(round(w * box_h / h)), 1), box_w), box_h


def pad_centre(rgb, box_w=BOX, box_h=BOX):
    """HWC uint8 RGB -> box_h x box_w x 3 uint8, centred on black (odd pixel right/bottom)."""
    h, w = rgb.shape[:2]
    canvas = np.zeros((box_h, box_w, 3), np.uint8)
    y0, x0 = (box_h - h) // 2, (box_w - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = rgb
    return canvas


def normalize_nchw(rgb):
    """HWC uint8 RGB -> 1 x 3 x H x W float32, ImageNet-normalized."""
    h, w = rgb.shape[:2]
    out = np.empty((1, 3, h, w), np.float32)
    for c in range(3):
        np.multiply(rgb[:, :, c], SCALE[c], out=out[0, c])
        out[0, c] += BIAS[c]
    return out


def jpeg_size(path):
    """(width, height) from a JPEG's SOF marker, reading only the header."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            raise ValueError(f"{path}: not a JPEG")
        while True:
            b = f.read(1)
            while b and b != b"\xff":
                b = f.read(1)
            while b == b"\xff":
                b = f.read(1)
            if not b:
                raise ValueError(f"{path}: no SOF marker")
            m = b[0]
            if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:
                continue
            seg = int.from_bytes(f.read(2), "big")
            if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
                d = f.read(5)
                return int.from_bytes(d[3:5], "big"), int.from_bytes(d[1:3], "big")
            f.seek(seg - 2, 1)


# ---------------------------------------------------------------- W1 peers (run in workers)

def w1_pillow(path, gap=1):
    """Pillow's W1: draft to >= gap x the letterboxed size (gap None: no draft, a
    full-resolution decode), convert, resize BILINEAR, pad, normalize."""
    from PIL import Image
    with Image.open(path) as im:
        nw, nh = fit_size(*im.size)
        if gap:
            im.draft("RGB", (gap * nw, gap * nh))
        im = im.convert("RGB")
    im = im.resize((nw, nh), Image.BILINEAR)
    return normalize_nchw(pad_centre(np.asarray(im)))


def w1_opencv(path):
    import cv2
    w, h = jpeg_size(path)
    tw, th = fit_size(w, h)
    flag = cv2.IMREAD_COLOR
    for r, f in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                 (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if w // r >= tw and h // r >= th:
            flag = f
            break
    bgr = cv2.imread(path, flag)
    if bgr is None:
        raise ValueError(f"{path}: cv2.imread failed")
    nw, nh = fit_size(bgr.shape[1], bgr.shape[0])
    small = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return normalize_nchw(pad_centre(rgb))


def w1_pyvips(path):
    import pyvips
    im = pyvips.Image.thumbnail(path, BOX, height=BOX)
    if im.bands == 4:
        im = im.flatten()
    elif im.bands == 1:
        im = im.colourspace("srgb")
    return normalize_nchw(pad_centre(im.numpy()))


W1_FUNCS = {"pillow": w1_pillow, "pillow-full": functools.partial(w1_pillow, gap=None),
            "pillow-thumbnail": functools.partial(w1_pillow, gap=2), "opencv": w1_opencv,
            "pyvips": w1_pyvips}
PILLOW_CODES = ("pillow", "pillow-full", "pillow-thumbnail")


def worker_init(lib):
    """Pool initializer: one thread per worker for every library."""
    os.environ["VIPS_CONCURRENCY"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    try:  # a missing library must not fail the initializer (the Pool would respawn forever)
        if lib == "opencv":
            import cv2
            cv2.setNumThreads(1)
        elif lib == "pyvips":
            import pyvips
            pyvips.cache_set_max(0)
            if hasattr(pyvips, "concurrency_set"):
                pyvips.concurrency_set(1)
    except ImportError:
        pass


def worker_run(job):
    lib, path = job
    out = W1_FUNCS[lib](path)
    assert out.shape == (1, 3, BOX, BOX) and out.dtype == np.float32, out.shape
    return None


def worker_save(job):
    lib, path, dest = job
    np.save(dest, W1_FUNCS[lib](path))


def lib_version(lib):
    """Version string of a peer's library, or raises ImportError."""
    if lib in PILLOW_CODES:
        import PIL
        from PIL import features
        name = "pillow"
        try:
            from importlib import metadata
            try:
                metadata.version("pillow-simd")
                name = "pillow-simd"
            except metadata.PackageNotFoundError:
                pass
        except ImportError:
            pass
        if features.check_feature("libjpeg_turbo"):
            jpeg = "libjpeg-turbo " + (features.version_feature("libjpeg_turbo") or "?")
        else:
            jpeg = "libjpeg " + (features.version("jpg") or "?")
        return f"{name} {PIL.__version__} ({jpeg})"
    if lib == "opencv":
        import cv2
        return f"opencv {cv2.__version__}"
    if lib == "pyvips":
        import pyvips
        return (f"pyvips {pyvips.__version__}, libvips "
                f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}")
    raise ValueError(lib)


def probe(lib):
    """(version, None) or (None, reason) -- imports in a throwaway process, so the main
    process never initializes a library before its workers set their thread counts."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, initializer=worker_init, initargs=(lib,)) as pool:
        try:
            return pool.apply(lib_version, (lib,)), None
        except ImportError as e:
            return None, f"not installed ({e})"


def loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_w1_peer(lib, label, files, procs, passes, check_dir):
    version, why = probe(lib)
    res = {"peer": label, "version": version, "images": len(files), "procs": procs}
    if version is None:
        res["status"] = why
        return res
    if label in SIMD_PEERS and not version.startswith("pillow-simd"):
        res["status"] = f"not installed (this interpreter has {version})"
        return res
    if label in PILLOW_CODES and version.startswith("pillow-simd"):
        res["status"] = f"skipped: this interpreter has {version}, not upstream Pillow"
        return res
    res["load_before"] = loadavg()
    ctx = mp.get_context("spawn")
    jobs = [(lib, f) for f in files]
    with ctx.Pool(procs, initializer=worker_init, initargs=(lib,)) as pool:
        pool.map(worker_run, jobs, chunksize=1)  # warm-up pass
        times = []
        for _ in range(passes):
            t0 = time.perf_counter()
            pool.map(worker_run, jobs, chunksize=1)
            times.append(time.perf_counter() - t0)
        if check_dir:
            dest = os.path.join(check_dir, f"w1-{label}.npy")
            pool.apply(worker_save, ((lib, files[0], dest),))
            res["check_npy"] = dest
    res["load_after"] = loadavg()
    res["pass_seconds"] = [round(t, 4) for t in times]
    best = min(times)
    res["images_per_s"] = len(files) / best
    res["ms_per_image"] = 1000.0 * best / len(files)
    res["status"] = "ok"
    return res


# ---------------------------------------------------------------- W2 peers (single process)

def w2_load(files):
    from PIL import Image
    arrays = []
    for f in files[:4]:
        with Image.open(f) as im:
            arrays.append(np.ascontiguousarray(np.asarray(im.convert("RGB"))))
    return arrays


def w2_funcs(lib):
    if lib == "pillow":
        from PIL import Image

        def f(a):
            return normalize_nchw(np.asarray(Image.fromarray(a).resize((W2_SIZE, W2_SIZE),
                                                                         Image.BILINEAR)))
        return f
    import cv2

    def g(a):
        return normalize_nchw(cv2.resize(a, (W2_SIZE, W2_SIZE), interpolation=cv2.INTER_AREA))
    return g


def run_w2_peer(lib, label, arrays, count, passes, check_dir):
    res = {"peer": label, "images": count, "procs": 1}
    try:
        res["version"] = lib_version("pillow" if lib == "pillow" else "opencv")
        fn = w2_funcs(lib)
    except ImportError as e:
        res["version"] = None
        res["status"] = f"not installed ({e})"
        return res
    if label == "pillow-simd" and not res["version"].startswith("pillow-simd"):
        res["status"] = f"not installed (this interpreter has {res['version']})"
        return res
    if lib == "opencv":
        import cv2
        if label == "opencv-1thread":
            cv2.setNumThreads(1)
        else:
            cv2.setNumThreads(-1)  # back to OpenCV's default
        res["threads"] = cv2.getNumThreads()
        res["version"] += f" ({res['threads']} thread{'s' if res['threads'] != 1 else ''})"
    res["load_before"] = loadavg()
    n = len(arrays)
    for i in range(count):  # warm-up pass
        out = fn(arrays[i % n])
    assert out.shape == (1, 3, W2_SIZE, W2_SIZE) and out.dtype == np.float32
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for i in range(count):
            fn(arrays[i % n])
        times.append(time.perf_counter() - t0)
    res["load_after"] = loadavg()
    if check_dir:
        dest = os.path.join(check_dir, f"w2-{label}.npy")
        np.save(dest, fn(arrays[0]))
        res["check_npy"] = dest
    res["pass_seconds"] = [round(t, 4) for t in times]
    best = min(times)
    res["images_per_s"] = count / best
    res["ms_per_image"] = 1000.0 * best / count
    res["status"] = "ok"
    return res


# ---------------------------------------------------------------- driver

def run_simd(a, files, check_dir, label="pillow-simd", passes=None):
    """Run a Pillow peer (`label`, a key of SIMD_PEERS) under the Pillow-SIMD interpreter;
    returns its result dicts."""
    py = a.python_simd
    if not py or not os.path.exists(py):
        return [{"peer": label, "version": None,
                 "status": f"not installed (no interpreter at {py or DEFAULT_SIMD})"}]
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "simd.json")
        cmd = [py, os.path.abspath(__file__), "--dir", a.dir, "--procs", str(a.procs),
               "--passes", str(passes or a.passes), "--w2-count", str(a.w2_count),
               "--json", out, "--peers", label, "--_simd-child"]
        if a.w2:
            cmd.append("--w2")
        if check_dir:
            cmd += ["--_check-dir", check_dir]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0 or not os.path.exists(out):
            tail = " ".join(p.stdout.strip().splitlines()[-3:])
            return [{"peer": label, "version": None,
                     "status": f"failed under {py}: {tail[-300:]}"}]
        with open(out) as f:
            return json.load(f)["results"]


def run_peer_once(a, files, peer):
    """One round of a W1 peer: a fresh pool, one warm-up pass, then the best of
    --round-passes timed passes."""
    if peer in SIMD_PEERS:
        return run_simd(a, files, None, peer, passes=a.round_passes)[0]
    return run_w1_peer(peer, peer, files, a.procs, a.round_passes, None)


def run_engine_once(a, mode):
    """One round of veridoc's W1 in shrink mode `mode` (see the docstring): a dict with
    images_per_s, or status."""
    res = {"peer": f"veridoc {mode}", "version": os.path.basename(a.engine_bin)}
    if not os.path.exists(a.engine_bin):
        res["status"] = (f"no engine binary at {a.engine_bin} (cargo build --release "
                         f"-p veridoc-bench)")
        return res
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "w1.json")
        cmd = [a.engine_bin, "--workload", "w1", "--device", "cpu", "--passes",
               str(a.round_passes),
               "--shrink", mode, "--w1-dir", a.dir, "--json", out]
        res["load_before"] = loadavg()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        res["load_after"] = loadavg()
        if p.returncode != 0 or not os.path.exists(out):
            tail = " ".join(p.stdout.strip().splitlines()[-3:])
            res["status"] = f"failed: {tail[-300:]}"
            return res
        with open(out) as f:
            rows = json.load(f)
    res["images_per_s"] = rows[0]["best_img_s"]
    res["status"] = "ok"
    return res


def median(v):
    v = sorted(v)
    n = len(v)
    return None if n == 0 else (v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2]))


def interleaved(a, files):
    """--rounds: engine modes and their peers in alternating order, round by round."""
    pairs = []
    for item in a.pairs.split(","):
        mode, _, peer = item.strip().partition(":")
        if mode not in ("exact", "balanced", "fast") or peer not in W1_PEERS:
            raise SystemExit(f"--pairs: bad pair {item!r} (MODE:PEER, MODE exact|balanced|fast,"
                             f" PEER one of {W1_PEERS})")
        pairs.append((mode, peer))
    rates = {}    # implementation -> [images/s per round]
    ratios = {}   # (mode, peer) -> [engine/peer per round]
    loads = []
    versions = {}
    for r in range(a.rounds):
        for mode, peer in pairs:
            order = [("engine", mode), ("peer", peer)]
            if r % 2:
                order.reverse()
            got = {}
            for kind, what in order:
                res = run_engine_once(a, what) if kind == "engine" else run_peer_once(a, files,
                                                                                   what)
                if res.get("status") != "ok":
                    raise SystemExit(f"round {r + 1}: {res['peer']}: {res.get('status')}")
                name = res["peer"]
                versions[name] = res.get("version")
                rates.setdefault(name, []).append(res["images_per_s"])
                loads.append((res.get("load_before"), res.get("load_after")))
                got[kind] = res["images_per_s"]
                print(f"  round {r + 1}: {name}: {res['images_per_s']:.1f} images/s "
                      f"(load {res.get('load_before')}/{res.get('load_after')})",
                      file=sys.stderr, flush=True)
            ratios.setdefault((mode, peer), []).append(got["engine"] / got["peer"])
    title = (f"W1 interleaved: {len(files)} JPEGs from {a.dir} -> {BOX}x{BOX} letterbox + "
             f"normalize, {a.rounds} rounds of best-of-{a.round_passes} passes, peers "
             f"Pool({a.procs})")
    lines = [f"### {title}", "", "| implementation | version | median images/s | min-max |",
             "| --- | --- | ---: | ---: |"]
    for name, v in rates.items():
        lines.append(f"| {name} | {versions.get(name)} | {median(v):.1f} | "
                     f"{min(v):.1f}-{max(v):.1f} |")
    lines += ["", "| veridoc mode | peer | median of per-round ratios | min-max |",
              "| --- | --- | ---: | ---: |"]
    for (mode, peer), v in ratios.items():
        lines.append(f"| {mode} | {peer} | {median(v):.2f}x | {min(v):.2f}-{max(v):.2f} |")
    print("\n".join(lines))
    la = [x for pair in loads for x in pair if x is not None]
    print()
    print(f"host: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average (1 min) over the runs: {min(la, default=0):.2f}-{max(la, default=0):.2f}")
    if a.json:
        doc = {"workload": "w1-interleaved", "title": title, "dir": a.dir, "procs": a.procs,
               "rounds": a.rounds, "engine_bin": a.engine_bin,
               "rates": rates, "versions": versions,
               "ratios": {f"{m}:{p}": v for (m, p), v in ratios.items()},
               "loads": loads}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {a.json}")


def mean_abs_diff(a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    if a.shape != b.shape:
        return None
    return float(np.abs(a - b).mean())


def markdown(results, title):
    lines = [f"### {title}", "",
             "| peer | version | images/s | ms/image |",
             "| --- | --- | ---: | ---: |"]
    for r in results:
        if r.get("status") == "ok":
            lines.append(f"| {r['peer']} | {r['version']} | {r['images_per_s']:.1f} | "
                         f"{r['ms_per_image']:.2f} |")
        else:
            lines.append(f"| {r['peer']} | {r.get('version') or '-'} | {r['status']} | - |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="Peer-library benchmark for W1/W2 (see the "
                                 "module docstring).")
    ap.add_argument("--dir", default="target/w1", help="folder of W1 JPEGs (default target/w1)")
    ap.add_argument("--procs", type=int, default=2, help="W1 worker processes (default 2)")
    ap.add_argument("--passes", type=int, default=3, help="timed passes, best kept (default 3)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--python-simd", default=DEFAULT_SIMD if os.path.exists(DEFAULT_SIMD) else None,
                    help=f"interpreter with Pillow-SIMD (default {DEFAULT_SIMD} if it exists)")
    ap.add_argument("--w2", action="store_true", help="W2: in-memory 12 MP arrays -> 224x224")
    ap.add_argument("--w2-count", type=int, default=24, help="W2 images per pass (default 24)")
    ap.add_argument("--peers", help="comma-separated subset of peers to run")
    ap.add_argument("--no-check", action="store_true", help="skip the output sanity check")
    ap.add_argument("--rounds", type=int, default=0,
                    help="W1: interleave veridoc's W1 with the peers for N rounds (docstring)")
    ap.add_argument("--round-passes", type=int, default=3,
                    help="with --rounds: timed passes per implementation and round, best kept "
                    "(default 3)")
    ap.add_argument("--pairs", default=DEFAULT_PAIRS,
                    help=f"with --rounds: MODE:PEER pairs (default {DEFAULT_PAIRS})")
    ap.add_argument("--engine-bin", default="target/release/bench",
                    help="with --rounds: veridoc-bench's `bench` binary "
                    "(default target/release/bench)")
    ap.add_argument("--_simd-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_check-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()

    files = sorted(glob.glob(os.path.join(a.dir, "*.jpg")))
    if not files:
        raise SystemExit(f"no JPEGs in {a.dir}: run scripts/gen_w1.py first")
    wanted = W2_PEERS if a.w2 else W1_PEERS
    if a.peers:
        sel = [p.strip() for p in a.peers.split(",") if p.strip()]
        bad = [p for p in sel if p not in wanted and not (a.w2 and p == "opencv")]
        if bad:
            raise SystemExit(f"unknown peer(s) {bad}; choose from {wanted}")
        if a.w2 and "opencv" in sel:
            sel = [p for p in sel if p != "opencv"] + ["opencv-1thread", "opencv-threads"]
        wanted = [p for p in wanted if p in sel]
    elif not a.w2:
        wanted = W1_DEFAULT

    if a._simd_child:  # the Pillow-SIMD interpreter: run only the Pillow code, labelled simd
        if a.w2:
            res = [run_w2_peer("pillow", "pillow-simd", w2_load(files), a.w2_count, a.passes,
                               a._check_dir)]
        else:
            label = wanted[0] if len(wanted) == 1 else "pillow-simd"
            res = [run_w1_peer(SIMD_PEERS[label], label, files, a.procs, a.passes,
                               a._check_dir)]
        with open(a.json, "w") as f:
            json.dump({"results": res}, f)
        return

    if a.rounds > 0:
        if a.w2:
            raise SystemExit("--rounds is for W1")
        interleaved(a, files)
        return

    check_dir = None if a.no_check else tempfile.mkdtemp(prefix="peers-check-")
    results = []
    if a.w2:
        title = (f"W2: {min(4, len(files))} decoded 12 MP RGB8 arrays -> {W2_SIZE}x{W2_SIZE} "
                 f"stretch + normalize, single process, {a.w2_count} images/pass")
        arrays = None
        for peer in wanted:
            if peer == "pillow-simd":
                results += run_simd(a, files, check_dir)
                print(f"  {peer}: {results[-1].get('status')}", file=sys.stderr, flush=True)
                continue
            if arrays is None:
                arrays = w2_load(files)
            lib = "pillow" if peer == "pillow" else "opencv"
            results.append(run_w2_peer(lib, peer, arrays, a.w2_count, a.passes, check_dir))
            print(f"  {peer}: {results[-1].get('status')}", file=sys.stderr, flush=True)
    else:
        title = (f"W1: {len(files)} JPEGs from {a.dir} -> {BOX}x{BOX} letterbox + normalize, "
                 f"Pool({a.procs})")
        for peer in wanted:
            if peer in SIMD_PEERS:
                results += run_simd(a, files, check_dir, peer)
            else:
                results.append(run_w1_peer(peer, peer, files, a.procs, a.passes, check_dir))
            print(f"  {peer}: {results[-1].get('status')}", file=sys.stderr, flush=True)

    # sanity: every peer's first output against Pillow's (same shape, small difference)
    ref = next((r.get("check_npy") for r in results if r["peer"] == "pillow"), None)
    for r in results:
        p = r.pop("check_npy", None)
        if ref and p and os.path.exists(p):
            r["mean_abs_diff_vs_pillow"] = mean_abs_diff(ref, p)
    if check_dir:
        for f in glob.glob(os.path.join(check_dir, "*.npy")):
            os.remove(f)
        os.rmdir(check_dir)

    print(markdown(results, title))
    print()
    print(f"host: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}; load average (1 min) before/after each peer: " +
          ", ".join(f"{r['peer']} {r.get('load_before')}/{r.get('load_after')}"
                    for r in results if r.get("status") == "ok"))
    diffs = [f"{r['peer']} {r['mean_abs_diff_vs_pillow']:.4f}" for r in results
             if r.get("mean_abs_diff_vs_pillow") is not None]
    if diffs:
        print("mean |output - pillow output| on the first image (normalized units): " +
              ", ".join(diffs))
    if a.json:
        doc = {"workload": "w2" if a.w2 else "w1", "title": title, "dir": a.dir,
               "procs": 1 if a.w2 else a.procs, "passes": a.passes,
               "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "numpy": np.__version__},
               "results": results}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
