#!/usr/bin/env bash
# Builds the one-call GPU check bundle (docs/gpu-check.md) in the repository root:
#   .gpu-run/  stripped, gzipped release executables (the gpu_parity and gpu_detect tests,
#              the library's unit tests, the `bench` binary), the asset photos and face
#              models the tests and the verification step read, the entry script
#              gpu-check.sh and manifest.env;
#   .gl/       the Vulkan loader .deb (libvulkan1, amd64) for a device without one.
# Both folders are added to .git/info/exclude. The test executables come from
# `cargo test --release --no-run` (the build CI's `cargo test --release` already made, so
# after it this costs nothing but stripping and compressing), found through
# --message-format=json.
#
#   scripts/gpu-bundle.sh            # build the bundle
#   scripts/gpu-bundle.sh --no-deb   # without downloading the loader .deb
#   scripts/gpu-bundle.sh --check    # build (no .deb), then rehearse the entry script here
#                                    # with QUICK=1 and check its JSON and Markdown (CI)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
root=$PWD
deb=1
check=0
for a in "$@"; do
  case $a in
    --no-deb) deb=0 ;;
    --check) check=1 deb=0 ;;
    *) echo "usage: $0 [--no-deb] [--check]" >&2 && exit 2 ;;
  esac
done
# the device's 64 MiB for the whole working tree, minus the tracked files and a margin
limit_mib=56
bundle=$root/.gpu-run
fixtures=${VERIDOC_FIXTURES:-$root/fixtures}

exclude="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
for p in /.gpu-run/ /.gl/; do
  grep -qxF "$p" "$exclude" 2>/dev/null || echo "$p" >>"$exclude"
done

t0=$(date +%s)
msgs=$(mktemp)
trap 'rm -f "$msgs"' EXIT
# exactly CI's `cargo test --release` build (same features, so nothing is rebuilt after it);
# it also links the plain `bench` binary
cargo test --release --no-run --message-format=json >"$msgs"
# "name<TAB>executable" for the artifacts to carry (the lib's unit tests as veridoc-lib-tests)
exes=$(python3 - "$msgs" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if m["profile"]["test"] and t["kind"] == ["lib"] and t["name"] == "veridoc":
        print("veridoc-lib-tests\t" + m["executable"])
    elif m["profile"]["test"] and t["name"] in ("gpu_parity", "gpu_detect"):
        print(t["name"] + "\t" + m["executable"])
    elif t["name"] == "bench" and t["kind"] == ["bin"] and not m["profile"]["test"]:
        print("bench\t" + m["executable"])
EOF
)
[ "$(echo "$exes" | wc -l)" -eq 4 ] || {
  echo "expected 4 executables, found: $exes" >&2
  exit 1
}
t_build=$(($(date +%s) - t0))

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/fixtures/photos"
while IFS=$'\t' read -r name exe; do
  strip -o "$bundle/bin/$name" "$exe"
  gzip -6 "$bundle/bin/$name"
done <<<"$exes"
[ -d "$fixtures/models" ] && [ -d "$fixtures/photos" ] || {
  echo "no assets in $fixtures (run scripts/fetch-assets.sh)" >&2
  exit 1
}
cp -r "$fixtures/models" "$bundle/fixtures/"
cp "$fixtures"/photos/*.jpg "$fixtures"/photos/*.png "$bundle/fixtures/photos/"
touch "$bundle/fixtures/.complete-v2"
# the corpus photos the detector tests name (the whole corpus is 19 MiB), and its labels
mkdir -p "$bundle/fixtures/corpus"
cp "$fixtures/corpus/labels.json" "$bundle/fixtures/corpus/"
for f in $(grep -ho '"[A-Za-z0-9_]*\.jpg"' tests/gpu_detect.rs | tr -d '"' | sort -u); do
  [ -f "$fixtures/corpus/$f" ] && cp "$fixtures/corpus/$f" "$bundle/fixtures/corpus/"
done
cp scripts/gpu-check.sh "$bundle/gpu-check.sh"
{
  printf 'manifest_dir=%q\n' "$root"
  printf 'commit=%q\n' "$(git rev-parse HEAD)$(git diff --quiet HEAD -- src bench shaders tests || echo -dirty)"
  printf 'built=%q\n' "$(date -u +%FT%TZ)"
} >"$bundle/manifest.env"

if [ "$deb" = 1 ] && ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -qq
  (cd .gl && apt-get "${o[@]}" download libvulkan1)
fi

kib=$(du -sk "$bundle" $([ -d .gl ] && echo .gl) | awk '{s += $1} END {print s}')
echo "bundle: $((kib / 1024)) MiB in .gpu-run/ and .gl/ (limit $limit_mib MiB); cargo ${t_build}s"
du -sh "$bundle"/bin/* "$bundle/fixtures" $([ -d .gl ] && echo .gl)
[ "$kib" -le $((limit_mib * 1024)) ] || {
  echo "bundle over $limit_mib MiB" >&2
  exit 1
}

if [ "$check" = 1 ]; then
  out=$(mktemp -d)
  t1=$(date +%s)
  rc=0
  QUICK=1 OUT=$out bash "$bundle/gpu-check.sh" || rc=$?
  echo "entry script: exit $rc in $(($(date +%s) - t1)) s"
  python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
c = json.load(open(os.path.join(out, "gpu-check.json")))
names = [s["name"] for s in c["steps"]]
want = ["tests-gpu-parity", "tests-gpu-detect", "tests-lib-gpu", "gen-w1", "g1", "w1",
        "verify", "sweep"]
assert names == want, names
bad = [s for s in c["steps"] if s["status"] != "ok"]
assert not bad, bad
assert c["machine"]["adapter"] not in ("", "none"), c["machine"]
for k in ("g1", "w1", "sweep", "verify"):
    assert k in c["results"], k
paths = {r["path"] for r in c["results"]["w1"]}
assert paths == {"cpu", "gpu", "auto"}, paths
md = open(os.path.join(out, "gpu-check.md")).read()
assert md.startswith("# veridoc GPU check") and "| g1 | ok |" in md, md[:400]
assert os.path.getsize(os.path.join(out, "gpu-check-logs.tar.gz")) > 0
print("gpu-check.json and gpu-check.md: valid, every step ok")
EOF
  rm -rf "$out"
  exit "$rc"
fi
