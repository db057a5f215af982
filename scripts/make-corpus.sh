#!/usr/bin/env bash
# Builds the labelled passport-photo conformance corpus (fixtures/corpus/) with
# scripts/make_corpus.py: see that file's docstring and fixtures/corpus/README.md.
#
#   bash scripts/make-corpus.sh            (from anywhere; needs python3; CORPUS_DEBUG=DIR
#                                           also writes inspection montages to DIR)
#
# Needs fixtures/photos and fixtures/reference/faceapi.json (scripts/fetch-assets.sh, then
# scripts/faceapi-reference.sh). Creates or completes the venv $D/venv with pinned Pillow,
# numpy and opencv-python-headless (PyPI only; apt-get python3-venv when Debian's python3
# lacks ensurepip). Idempotent: skipped when the stamp $D/corpus/.corpus-complete holds the
# hash of this script, of make_corpus.py and of the inputs (faceapi.json, the photo list).
# D = $VERIDOC_FIXTURES (default fixtures, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
start=$(date +%s.%N)
elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

D=${VERIDOC_FIXTURES:-fixtures}
VENV="$D/venv"
OUT="$D/corpus"
STAMP="$OUT/.corpus-complete"
PILLOW_VERSION=13.0.0        # the same Pillow as scripts/faceapi-reference.sh (same decoding)
NUMPY_VERSION=2.2.6
OPENCV_VERSION=4.12.0.88     # opencv-python-headless: grabCut, warpAffine, GaussianBlur

for f in "$D/reference/faceapi.json" "$D/photos"; do
  if [ ! -e "$f" ]; then
    echo "make-corpus: $f missing: run scripts/fetch-assets.sh and scripts/faceapi-reference.sh first" >&2
    exit 1
  fi
done
command -v python3 >/dev/null 2>&1 || { echo "make-corpus: python3 not found" >&2; exit 1; }

# what the corpus is made from: both scripts, the pins, the reference results, the photos
inputs_hash() {
  {
    sha256sum scripts/make_corpus.py scripts/make-corpus.sh "$D/reference/faceapi.json"
    (cd "$D/photos" && sha256sum -- *)
  } | sha256sum | cut -d' ' -f1
}
HASH=$(inputs_hash)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && [ -s "$OUT/labels.json" ]; then
  echo "make-corpus: $OUT already complete (delete $STAMP to redo), $(elapsed) s"
  exit 0
fi

# ---- venv with the pinned packages (kept when they are already there)
pins_ok() {
  "$VENV/bin/python" - "$PILLOW_VERSION" "$NUMPY_VERSION" "$OPENCV_VERSION" <<'PY' 2>/dev/null
import sys
import PIL, numpy, cv2
want_pil, want_np, want_cv = sys.argv[1:]
ok = PIL.__version__ == want_pil and numpy.__version__ == want_np \
    and cv2.__version__ == ".".join(want_cv.split(".")[:3])
sys.exit(0 if ok else 1)
PY
}
if ! pins_ok; then
  echo "make-corpus: venv $VENV with Pillow $PILLOW_VERSION, numpy $NUMPY_VERSION, opencv-python-headless $OPENCV_VERSION"
  make_venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "Pillow==$PILLOW_VERSION" "numpy==$NUMPY_VERSION" "opencv-python-headless==$OPENCV_VERSION"
  pins_ok || { echo "make-corpus: the venv does not have the pinned packages" >&2; exit 1; }
fi

# ---- the corpus
rm -f "$STAMP"
debug_args=()
[ -n "${CORPUS_DEBUG:-}" ] && debug_args=(--debug "$CORPUS_DEBUG")
"$VENV/bin/python" scripts/make_corpus.py --fixtures "$D" "${debug_args[@]}"
echo "$HASH" > "$STAMP"
echo "make-corpus: wrote $OUT in $(elapsed) s"
