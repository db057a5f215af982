#!/usr/bin/env bash
# Builds the Python package (bindings/python: an abi3 wheel, maturin, release profile, the
# same target directory as cargo), installs it into the setup's venv ($VERIDOC_FIXTURES/pyenv)
# and runs its tests: the API (tests/test_api.py) and veridoc.ray on a local multi-raylet Ray
# cluster (tests/test_ray.py, every job under a timeout, the cluster shut down whatever
# happens). Extra arguments go to pytest (`scripts/python-tests.sh -k api`).
# The README's test command and .ci/run run it after `cargo test --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-env.sh
D=${VERIDOC_FIXTURES:-fixtures}
VENV="$(cd "$D/pyenv" && pwd)"
WHEELS="${CARGO_TARGET_DIR:-target}/python-wheels"
start=$(date +%s)
rm -f "$WHEELS"/veridoc-*.whl
"$VENV/bin/maturin" build --release --quiet -m bindings/python/Cargo.toml \
  --interpreter "$VENV/bin/python" -o "$WHEELS"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
  "$WHEELS"/veridoc-*.whl
built=$(date +%s)
echo "python-tests: wheel built and installed in $((built - start)) s"
export VERIDOC_FIXTURES="$(cd "$D" && pwd)"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# the outer bound: a hung Ray job fails the run instead of stalling CI
(cd bindings/python && timeout 1200 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@")
echo "python-tests: ok in $(($(date +%s) - start)) s (tests $(($(date +%s) - built)) s)"
