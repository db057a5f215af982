#!/usr/bin/env bash
# One-time (idempotent) machine setup for veridoc:
#  - system packages: nasm (SIMD JPEG decoding is built from source), Mesa's lavapipe and the
#    Vulkan loader (a real Vulkan adapter on the CPU, for the GPU path's tests); Chromium,
#    headless, for the review page's rendering test (tests/review.rs; Debian's package is
#    ~155 MB to fetch, ~480 MB installed, ~25 s);
#  - test assets: real photos and face-api's models (scripts/fetch-assets.sh);
#  - face-api itself under Node (scripts/faceapi-reference.sh): the independent reference
#    outputs the ported networks are tested against (fixtures/reference);
#  - the labelled conformance corpus of passport-style photos built from the fetched
#    portraits (scripts/make-corpus.sh: fixtures/corpus);
#  - an independent head-pose reference for that corpus, from @vladmandic/human's face mesh
#    under Node (scripts/pose-reference.sh: fixtures/reference/pose.json);
#  - the Python package's venv with pinned maturin, pytest, Ray Data and pyarrow
#    (scripts/python-env.sh: fixtures/pyenv; ~30 s).
# Safe to run again: installed packages and complete assets are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v nasm >/dev/null 2>&1 || need+=(nasm)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.aarch64.json ] || need+=(mesa-vulkan-drivers)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need+=(libvulkan1)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
  command -v google-chrome >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
    $sudo_cmd apt-get update -qq >/dev/null
    $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
  }
fi
if [ ! -f "${VERIDOC_FIXTURES:-fixtures}/.complete-v2" ]; then
  command -v npm >/dev/null 2>&1 && apt-get download --print-uris opencv-data >/dev/null 2>&1 || \
    { sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"; $sudo_cmd apt-get update -qq >/dev/null || true; }
  scripts/fetch-assets.sh
fi
scripts/faceapi-reference.sh
scripts/make-corpus.sh
scripts/pose-reference.sh
scripts/python-env.sh
echo "setup: ok"
