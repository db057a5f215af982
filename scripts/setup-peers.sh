#!/usr/bin/env bash
# Installs the peer libraries that scripts/peers.py benchmarks against (W1/W2). Idempotent:
# each step is skipped when its result is already there. Run as root (or with a writable
# Python) from anywhere:  bash scripts/setup-peers.sh
#
#   - into the default python3: opencv-python-headless, pyvips + pyvips-binary (a libvips build
#     shipped inside the wheel, no system libvips needed), numpy. Upstream Pillow is assumed to
#     be there already (the project's other scripts use it); it is installed if missing.
#   - Pillow-SIMD in its own venv ($VENV_SIMD, default /work/venv-simd), since it replaces the
#     PIL package: built from source with the system libjpeg-turbo and zlib headers, with
#     CC="cc -mavx2" when the CPU has AVX2 (without it the build has no AVX2 code paths), and
#     --no-cache-dir so pip cannot reuse a wheel built earlier without the flag.
# Then:  python3 scripts/peers.py            (W1)
#        python3 scripts/peers.py --w2       (W2)
# peers.py finds the venv's interpreter at /work/venv-simd/bin/python by default, or pass
# --python-simd "$VENV_SIMD/bin/python".
#
# Tested on Debian 12 (x86_64), CPython 3.11.7: opencv-python-headless 5.0.0.93, pyvips 3.2.0,
# pyvips-binary 8.18.7 (libvips 8.18.7), numpy 2.4.6, pillow-simd 12.1.1.post0.
set -euo pipefail

PY=${PYTHON:-python3}
VENV_SIMD=${VENV_SIMD:-/work/venv-simd}

# 1. peers in the default interpreter
if ! "$PY" -c 'import cv2, pyvips, numpy, PIL; pyvips.Image.black(1, 1).avg()' 2>/dev/null; then
    "$PY" -m pip install opencv-python-headless pyvips pyvips-binary numpy pillow
fi

# 2. Pillow-SIMD in its own venv
have_simd() {
    [ -x "$VENV_SIMD/bin/python" ] && "$VENV_SIMD/bin/python" -c '
import importlib.metadata as m, numpy, PIL.Image
m.version("pillow-simd")' 2>/dev/null
}
if ! have_simd; then
    # build dependencies (headers for libjpeg-turbo and zlib, a C compiler, Python headers)
    need=()
    for p in libjpeg62-turbo-dev zlib1g-dev gcc; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update
        apt-get install -y "${need[@]}"
    fi
    [ -x "$VENV_SIMD/bin/python" ] || "$PY" -m venv "$VENV_SIMD"
    if grep -qw avx2 /proc/cpuinfo; then
        CC="cc -mavx2" "$VENV_SIMD/bin/pip" install --no-cache-dir pillow-simd numpy
    else
        "$VENV_SIMD/bin/pip" install --no-cache-dir pillow-simd numpy
    fi
fi

"$PY" -c 'import cv2, pyvips, PIL, numpy; print("opencv", cv2.__version__, "| pyvips", pyvips.__version__, "| Pillow", PIL.__version__, "| numpy", numpy.__version__)'
"$VENV_SIMD/bin/python" -c 'import PIL, numpy; print("pillow-simd", PIL.__version__, "| numpy", numpy.__version__, "in '"$VENV_SIMD"'")'
