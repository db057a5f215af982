#!/usr/bin/env bash
# Reference outputs ("goldens") from face-api under Node.js, to check veridoc's Rust ports of
# face-api's TinyFaceDetector, faceLandmark68Net and faceExpressionNet against.
#
#   bash scripts/faceapi-reference.sh          (from anywhere; needs node >= 18, npm, python3)
#
# Steps (each skipped when its result is already there; the whole run is skipped when the
# stamp $OUT/.faceapi-complete-v1 exists):
#   1. npm: @tensorflow/tfjs, @tensorflow/tfjs-backend-wasm 4.22.0 and @vladmandic/face-api
#      1.7.15 into $D/node (install scripts off: none of the three needs one).
#   2. models: face_landmark_68, face_landmark_68_tiny and face_expression weights (MIT) copied
#      from the installed face-api package's model/ folder into $D/models (TinyFaceDetector
#      is already there from scripts/fetch-assets.sh).
#   3. python: a venv $D/venv with Pillow (pinned), to decode every photo in $D/photos (jpg, png)
#      to packed RGB8 with the EXIF orientation applied (ImageOps.exif_transpose, as a camera
#      viewer shows it), then convert('RGB') (greyscale is replicated, alpha dropped).
#   4. node scripts/faceapi-reference.js -> $OUT/faceapi.json (per photo: detections at input
#      size 416 with landmarks + expressions and their crops; boxes at 608 and 320) and
#      $OUT/nets.json + $OUT/nets_input_*.bin (raw nets on fixed 112x112x3 inputs).
#      The preprocessing and the architectures are documented at the top of that file.
# D = $VERIDOC_FIXTURES (default fixtures, git-ignored), OUT = $D/reference.
# FACEAPI_BACKEND=cpu uses tfjs's pure-JS backend instead of wasm (about 10x slower; agrees with
# wasm to ~1e-5 in scores / logits and ~1e-3 px in boxes, identical crops).
# Runs unattended (CI): no GPU; only the npm and PyPI registries are needed (and apt-get when
# python3 -m venv needs Debian's python3-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
start=$(date +%s.%N)

D=${VERIDOC_FIXTURES:-fixtures}
OUT="$D/reference"
STAMP="$OUT/.faceapi-complete-v1"
NODE_DIR="$D/node"
VENV="$D/venv"
BACKEND=${FACEAPI_BACKEND:-wasm}
PILLOW_VERSION=${PILLOW_VERSION:-13.0.0}
TFJS_VERSION=4.22.0
FACEAPI_VERSION=1.7.15

if [ -f "$STAMP" ] && [ -s "$OUT/faceapi.json" ] && [ -s "$OUT/nets.json" ]; then
  echo "faceapi-reference: $OUT already complete (delete $STAMP to redo)"
  exit 0
fi
need_commands faceapi-reference node npm python3
if [ ! -f "$D/models/tiny_face_detector_model.bin" ] || [ ! -d "$D/photos" ]; then
  echo "faceapi-reference: $D has no photos / TinyFaceDetector model: run scripts/fetch-assets.sh first" >&2
  exit 1
fi

# ---- 1. npm packages (skipped when the pinned versions are installed)
if [ "$(npm_version "$NODE_DIR" @vladmandic/face-api)" != "$FACEAPI_VERSION" ] ||
   [ "$(npm_version "$NODE_DIR" @tensorflow/tfjs)" != "$TFJS_VERSION" ] ||
   [ "$(npm_version "$NODE_DIR" @tensorflow/tfjs-backend-wasm)" != "$TFJS_VERSION" ]; then
  echo "faceapi-reference: npm install into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  npm install --no-audit --no-fund --ignore-scripts --loglevel=error --prefix "$NODE_DIR" \
    "@tensorflow/tfjs@$TFJS_VERSION" "@tensorflow/tfjs-backend-wasm@$TFJS_VERSION" \
    "@vladmandic/face-api@$FACEAPI_VERSION"
fi

# ---- 2. model files
PKG_MODELS="$NODE_DIR/node_modules/@vladmandic/face-api/model"
for m in face_landmark_68_model face_landmark_68_tiny_model face_expression_model; do
  for f in "$m-weights_manifest.json" "$m.bin"; do
    cmp -s "$PKG_MODELS/$f" "$D/models/$f" || cp "$PKG_MODELS/$f" "$D/models/$f"
  done
done

# ---- 3. python venv with Pillow, decode the photos
if ! "$VENV/bin/python" -c "import PIL, sys; sys.exit(PIL.__version__ != '$PILLOW_VERSION')" 2>/dev/null; then
  echo "faceapi-reference: venv $VENV with Pillow $PILLOW_VERSION"
  make_venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "Pillow==$PILLOW_VERSION"
fi

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
"$VENV/bin/python" scripts/decode_rgb.py "$D/photos" "$TMP" faceapi-reference .jpg .jpeg .png
# ---- 4. face-api
rm -f "$STAMP"
mkdir -p "$OUT"
rm -f "$OUT"/nets_input_*.bin
node scripts/faceapi-reference.js --modules "$NODE_DIR" --models "$D/models" \
  --decoded "$TMP" --out "$OUT" --backend "$BACKEND"
touch "$STAMP"
echo "faceapi-reference: wrote $OUT in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
