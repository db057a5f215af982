#!/usr/bin/env bash
# The Python package's venv, $VERIDOC_FIXTURES/pyenv (default fixtures/pyenv), with pinned
# versions: maturin (builds the wheel), pytest, Ray Data + pyarrow (veridoc.ray and its tests
# on a local multi-raylet cluster), numpy, and Pillow (the tests make their photos with it).
# Idempotent: a venv that already holds these versions is left alone (~30 s otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
D=${VERIDOC_FIXTURES:-fixtures}
VENV="$D/pyenv"
PINS=("ray[data]==2.60.0" "pyarrow==26.0.1" "maturin==1.16.0" "pytest==9.2.0" "numpy==2.2.6" "pillow==13.0.0")
STAMP="$VENV/.veridoc-pins"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${PINS[*]}" ]; then
  exit 0
fi
echo "python-env: venv $VENV with ${PINS[*]}"
make_venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}"
echo "${PINS[*]}" > "$STAMP"
