#!/usr/bin/env bash
# The one-call GPU check: the entry script of the bundle that scripts/gpu-bundle.sh builds
# (copied there as .gpu-run/gpu-check.sh). Runs, each step under a time limit and past any
# failed step: the GPU parity and detector tests on the real adapter, W1-like inputs made by
# the `bench` binary, G1, W1 cpu/gpu/auto, verification throughput cpu/gpu/auto and the
# scheduler sweep; then writes gpu-check.json and gpu-check.md (plus steps.tsv and the logs)
# into $OUT. See docs/gpu-check.md.
#
#   bash .gpu-run/gpu-check.sh            # device sizes (one lent GPU machine, <= 600 s call)
#   QUICK=1 bash .gpu-run/gpu-check.sh    # small sizes: the rehearsal on lavapipe
#
# Environment: OUT (default target/gpu-check-<unix time> beside the bundle), QUICK=1,
# GPU_CHECK_BUDGET_S (default 510: the device's 600 s per call minus 90 s for the loader,
# unpacking and the transfers), GPU_CHECK_THREADS (bench's --threads; default all cores).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
quick=${QUICK:-0}
budget=${GPU_CHECK_BUDGET_S:-510}
# kept for the summary and the log archive
reserve=20
start=$(date +%s)
out=${OUT:-$repo/target/gpu-check-$start}
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
mkdir -p "$out"
: >"$work/steps.tsv"
log() { echo "[gpu-check $(($(date +%s) - start))s] $*"; }

export VERIDOC_REQUIRE_GPU=1 VERIDOC_REQUIRE_ASSETS=1 VERIDOC_FIXTURES="$here/fixtures"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$work/xdg}
mkdir -p -m700 "$XDG_RUNTIME_DIR"

# The Vulkan loader: where none is installed, the .deb carried in .gl/ (unpacked as root).
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  for f in "$repo"/.gl/*.deb; do
    [ -f "$f" ] && dpkg -x "$f" / && log "unpacked $(basename "$f")"
  done
  ldconfig 2>/dev/null || true
fi
# NVIDIA's ICD where the image keeps it outside the loader's search path
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$nv" ]; then
  export VK_DRIVER_FILES=$nv
fi

bin=$work/bin
mkdir -p "$bin"
for f in "$here"/bin/*.gz; do
  gzip -dc "$f" >"$bin/$(basename "$f" .gz)" && chmod +x "$bin/$(basename "$f" .gz)"
done
# The test executables read tests/fixtures and docs/ under the checkout they were built in
# (CARGO_MANIFEST_DIR, baked in): point that path at this checkout when it is elsewhere.
manifest_dir=
# shellcheck source=/dev/null
. "$here/manifest.env"
if [ -n "$manifest_dir" ] && [ ! -d "$manifest_dir/tests" ]; then
  mkdir -p "$(dirname "$manifest_dir")" && ln -sfn "$repo" "$manifest_dir" &&
    log "linked $manifest_dir -> $repo"
fi

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# step NAME CAP_SECONDS COMMAND...: runs COMMAND in the work folder under
# min(CAP, what is left of the budget), logs to NAME.log, records a steps.tsv line.
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((budget - ($(date +%s) - start) - reserve))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 5 ]; then
    printf '%s\tskipped (no time left)\t0\t0\t%s.log\n' "$name" "$name" >>"$work/steps.tsv"
    log "$name: skipped (no time left)"
    return
  fi
  log "$name: limit ${limit}s: $*"
  local t0 rc status ms
  t0=$(now_ms)
  (cd "$work" && timeout -k 5 "$limit" "$@") >"$work/$name.log" 2>&1
  rc=$?
  ms=$(($(now_ms) - t0))
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status="failed (rc $rc)" ;;
  esac
  printf '%s\t%s\t%d.%03d\t%d\t%s.log\n' "$name" "$status" $((ms / 1000)) $((ms % 1000)) \
    "$limit" "$name" >>"$work/steps.tsv"
  log "$name: $status in $((ms / 1000)).$((ms % 1000 / 100)) s"
}

b="$bin/bench"
threads=()
[ -n "${GPU_CHECK_THREADS:-}" ] && threads=(--threads "$GPU_CHECK_THREADS")
if [ "$quick" = 1 ]; then
  # lavapipe runs the shaders on the same cores: a subset of the parity cases, tiny sizes
  parity=(adapters_are_selected many_images_across_chunks npy_files_match)
  w1=(--w1-count 4 --w1-size 1008x756)
  g1=(--g1-count 2 --passes 1)
  passes=(--passes 1)
  repeats=(--repeats 1)
  sweep=(--passes 1 --sweep-mpx 0.3 --sweep-batches 1,4 --sweep-outputs 224)
else
  parity=()
  w1=()
  g1=(--g1-count 64 --passes 5)
  passes=(--passes 5)
  repeats=(--repeats 5)
  sweep=(--passes 3)
fi

step tests-gpu-parity 90 "$bin/gpu_parity" "${parity[@]}"
step tests-gpu-detect 60 "$bin/gpu_detect" --nocapture
step tests-lib-gpu 60 "$bin/veridoc-lib-tests" gpu::
step gen-w1 60 "$b" --gen-w1 "$work/w1" "${w1[@]}"
step g1 90 "$b" --workload g1 --device both --w1-dir "$work/w1" "${g1[@]}" "${threads[@]}" \
  --json "$work/g1.json"
step w1 90 "$b" --workload w1 --device all --w1-dir "$work/w1" "${passes[@]}" "${threads[@]}" \
  --json "$work/w1.json"
step verify 90 "$b" --suite verify "${repeats[@]}" "${threads[@]}" --overhead-pairs 0 \
  --out "$work/verify-report" \
  --json "$work/verify.json"
step sweep 150 "$b" --workload sweep --device both --w1-dir "$work/w1" "${sweep[@]}" \
  "${threads[@]}" --json "$work/sweep.json"

q=()
[ "$quick" = 1 ] && q=(--quick)
if ! timeout -k 5 "$reserve" "$b" --gpu-check-summary "$work" --out "$out" "${q[@]}" \
  >"$work/summary.log" 2>&1; then
  log "summary failed (see summary.log); writing the steps alone"
  {
    printf '{"schema_version": 1, "summary_failed": true, "steps": ['
    sep=
    while IFS=$'\t' read -r n s secs lim _; do
      printf '%s{"name": "%s", "status": "%s", "seconds": %s, "timeout_s": %s}' \
        "$sep" "$n" "$s" "$secs" "$lim"
      sep=', '
    done <"$work/steps.tsv"
    printf ']}\n'
  } >"$out/gpu-check.json"
  {
    echo "# veridoc GPU check (summary failed)"
    echo
    echo "| step | status | seconds | limit s |"
    echo "|---|---|---:|---:|"
    while IFS=$'\t' read -r n s secs lim _; do echo "| $n | $s | $secs | $lim |"; done \
      <"$work/steps.tsv"
  } >"$out/gpu-check.md"
fi
cp "$work/steps.tsv" "$out/steps.tsv"
tar -czf "$out/gpu-check-logs.tar.gz" -C "$work" --exclude=./bin --exclude=./w1 --exclude=./xdg .
log "done: $out/gpu-check.json, gpu-check.md, steps.tsv, gpu-check-logs.tar.gz"
cat "$out/gpu-check.md"
rm -rf "$work"
failed=$(grep -vc $'\tok\t' "$out/steps.tsv")
[ "$failed" -eq 0 ] || log "$failed step(s) not ok"
exit $((failed > 0))
