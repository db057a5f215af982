"""Decodes the photos of a directory for the Node reference scripts.

    python decode_rgb.py SRC DST TOOL EXT [EXT ...]

Writes DST/<name>.rgb (packed RGB8, row-major) for every SRC/<name> ending in one of the
EXTs (other files, e.g. labels.json or lfw_subset.npy, are skipped) and DST/index.json:
the Pillow version, how the photos were decoded, and per photo its name, file, decoded
size and source attributes (size, mode, format, EXIF orientation). Shared by
scripts/faceapi-reference.sh and scripts/pose-reference.sh, so both references see the
same pixels.
"""
import json
import os
import sys

import PIL
from PIL import Image, ImageOps

src, dst, tool = sys.argv[1], sys.argv[2], sys.argv[3]
exts = tuple(e.lower() for e in sys.argv[4:])
photos = []
for name in sorted(os.listdir(src)):
    if not name.lower().endswith(exts):
        continue
    with Image.open(os.path.join(src, name)) as im:
        orientation = im.getexif().get(0x0112)  # EXIF Orientation tag, None when absent
        source = {'width': im.width, 'height': im.height, 'mode': im.mode,
                  'format': im.format, 'exif_orientation': orientation}
        rgb = ImageOps.exif_transpose(im).convert('RGB')
    with open(os.path.join(dst, name + '.rgb'), 'wb') as f:
        f.write(rgb.tobytes())
    photos.append({'name': name, 'file': name + '.rgb', 'width': rgb.width,
                   'height': rgb.height, 'source': source})
json.dump({'pillow_version': PIL.__version__,
           'decoding': 'Pillow %s: Image.open -> ImageOps.exif_transpose -> convert("RGB") '
                       '(greyscale replicated, alpha dropped without compositing, no ICC '
                       'conversion)' % PIL.__version__,
           'photos': photos}, open(os.path.join(dst, 'index.json'), 'w'), indent=1)
print('%s: decoded %d photos with Pillow %s' % (tool, len(photos), PIL.__version__))
