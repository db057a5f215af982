"""Distinct photos made from the fetched ones (shared by the tests and the benchmark)."""

import pathlib
from typing import List, Sequence


def make_photos(sources: Sequence[pathlib.Path], out: pathlib.Path, n: int) -> List[str]:
    """``n`` distinct JPEGs in ``out``: each source photo at several crops (0-7 % trimmed off
    the sides and top) and scales (longer side 256-480 px, so that runs stay short on two
    cores). Deterministic."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        src = sources[k % len(sources)]
        variant = k // len(sources)
        with Image.open(src) as im:
            im = im.convert("RGB")
            w, h = im.size
            t = (variant % 8) / 100
            im = im.crop((int(w * t / 2), int(h * t), w - int(w * t / 2), h))
            side = 256 + (variant * 37) % 225
            s = side / max(im.size)
            im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))))
            p = out / f"p{k:04d}.jpg"
            im.save(p, quality=90)
        paths.append(str(p))
    return paths


def sources_in(folder: pathlib.Path) -> List[pathlib.Path]:
    """The fetched photos (JPEG and PNG), sorted."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
