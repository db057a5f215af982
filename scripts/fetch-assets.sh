#!/usr/bin/env bash
# Fetches the real test photos and the face-detection model (../shared/ASSETS.md) into
# fixtures/ (or $1). Idempotent: a complete fixtures folder is left alone.
# Needs npm, pip, python3 and apt-get (run `apt-get update` once on a fresh machine).
set -euo pipefail
D=${1:-${VERIDOC_FIXTURES:-fixtures}}
stamp="$D/.complete-v1"
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
touch "$stamp"
echo "assets: fetched into $D"
