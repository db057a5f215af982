#!/usr/bin/env bash
# Independent head-pose reference (yaw, pitch, roll in degrees) for the labelled corpus, from
# @vladmandic/human's face mesh under Node.js, to calibrate / validate veridoc's own yaw / pitch
# estimate from the 68 face-api landmarks.
#
#   bash scripts/pose-reference.sh          (from anywhere; needs node >= 18, npm, python3)
#
# Steps (each skipped when its result is already there; the whole run is skipped when the
# stamp $OUT/.pose-complete-v1 exists):
#   1. npm: @vladmandic/human 3.3.6 (MIT; ships its models in models/, ~29 MB tarball) with
#      @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22.0 (human 3.3.6 is built against
#      tfjs 4.22; its dist/human.node-wasm.js requires tfjs-core / tfjs-converter / backend-wasm
#      from outside) into $D/node-human, a prefix of its own (install scripts off: none needed).
#   2. python: the venv $D/venv with Pillow (pinned; shared with scripts/faceapi-reference.sh)
#      decodes every corpus photo ($D/corpus/*.jpg) to packed RGB8 with the EXIF orientation
#      applied (ImageOps.exif_transpose, then convert('RGB')).
#   3. node scripts/pose-reference.js -> $OUT/pose.json: per photo the largest face's
#      face.rotation.angle (yaw, pitch, roll, converted to degrees), box, scores, gaze, the mesh
#      points the angles come from; every photo is also run mirrored left-right ("mirrored"), and
#      the sign conventions are measured and written to "conventions" (see the .js header).
# D = $VERIDOC_FIXTURES (default fixtures, git-ignored), OUT = $D/reference.
# POSE_BACKEND=cpu uses tfjs's pure-JS backend instead of wasm (if wasm cannot start, the .js
# falls back to cpu by itself and records it in "backend" / "backend_note").
# POSE_MIRROR=all (default) | comma-separated file names | "" (none): which photos are also run
# mirrored. About 1 minute for the 223 photos + their mirrors on 2 cores (wasm), plus the first
# npm install.
# Runs unattended (CI): no GPU; only the npm and PyPI registries are needed (and apt-get when
# python3 -m venv needs Debian's python3-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
start=$(date +%s.%N)

D=${VERIDOC_FIXTURES:-fixtures}
OUT="$D/reference"
STAMP="$OUT/.pose-complete-v1"
CORPUS="$D/corpus"
NODE_DIR="$D/node-human"
VENV="$D/venv"
BACKEND=${POSE_BACKEND:-wasm}
MIRROR=${POSE_MIRROR-all}
PILLOW_VERSION=${PILLOW_VERSION:-13.0.0}
TFJS_VERSION=4.22.0
HUMAN_VERSION=3.3.6

if [ -f "$STAMP" ] && [ -s "$OUT/pose.json" ]; then
  echo "pose-reference: $OUT/pose.json already complete (delete $STAMP to redo)"
  exit 0
fi
need_commands pose-reference node npm python3
if ! ls "$CORPUS"/*.jpg >/dev/null 2>&1; then
  echo "pose-reference: no $CORPUS/*.jpg: build the corpus first (scripts/make_corpus.py)" >&2
  exit 1
fi

# ---- 1. npm packages (skipped when the pinned versions are installed)
if [ "$(npm_version "$NODE_DIR" @vladmandic/human)" != "$HUMAN_VERSION" ] ||
   [ "$(npm_version "$NODE_DIR" @tensorflow/tfjs)" != "$TFJS_VERSION" ] ||
   [ "$(npm_version "$NODE_DIR" @tensorflow/tfjs-backend-wasm)" != "$TFJS_VERSION" ] ||
   [ ! -f "$NODE_DIR/node_modules/@vladmandic/human/models/facemesh.bin" ]; then
  echo "pose-reference: npm install into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  npm install --no-audit --no-fund --ignore-scripts --loglevel=error --prefix "$NODE_DIR" \
    "@tensorflow/tfjs@$TFJS_VERSION" "@tensorflow/tfjs-backend-wasm@$TFJS_VERSION" \
    "@vladmandic/human@$HUMAN_VERSION"
fi

# ---- 2. python venv with Pillow, decode the photos
if ! "$VENV/bin/python" -c "import PIL, sys; sys.exit(PIL.__version__ != '$PILLOW_VERSION')" 2>/dev/null; then
  echo "pose-reference: venv $VENV with Pillow $PILLOW_VERSION"
  make_venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "Pillow==$PILLOW_VERSION"
fi

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
"$VENV/bin/python" scripts/decode_rgb.py "$CORPUS" "$TMP" pose-reference .jpg .jpeg
# ---- 3. human
rm -f "$STAMP"
mkdir -p "$OUT"
labels=()
[ -f "$CORPUS/labels.json" ] && labels=(--labels "$CORPUS/labels.json")
node scripts/pose-reference.js --modules "$NODE_DIR" --decoded "$TMP" --out "$OUT/pose.json" \
  --backend "$BACKEND" --mirror "$MIRROR" "${labels[@]}"
touch "$STAMP"
echo "pose-reference: wrote $OUT/pose.json in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
