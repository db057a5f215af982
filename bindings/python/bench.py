"""Benchmark (not a test): the Ray path against the `veridoc verify` binary, the Python call
against the Rust API per batch, and Ray with 1 and 2 raylets, on the same photos.

    fixtures/pyenv/bin/python bindings/python/bench.py --veridoc target/release/veridoc \\
        [--photos 240] [--rounds 3] [--batch 32]

Configurations run interleaved (round-robin, `--rounds` times) so that a noisy, shared
machine slows them alike; each prints one JSON line, and the medians come last.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # everything on 127.0.0.1

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "tests"))
from photos import make_photos, sources_in  # noqa: E402

import veridoc  # noqa: E402


def binary(args, listing, models):
    """`veridoc verify` over every photo: the process's wall time and the summary's."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [args.veridoc, "verify", "--device", "cpu", "--threads", "2", "--no-cache", "--quiet",
         "--fail-on", "never", "--models", models, "--jsonl", "-", "--files-from", listing],
        check=True, capture_output=True, text=True,
    ).stdout
    wall = time.perf_counter() - t0
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    return {"process_s": wall, "run_s": summary["wall_ms"] / 1000}


def python_api(args, photos, models):
    """Engine.verify in batches of --batch (engine built and warmed up first, cache off)."""
    e = veridoc.Engine(device="cpu", threads=2, models=models, memory_cache_bytes=0)
    e.verify(photos[:2])
    t0 = time.perf_counter()
    for i in range(0, len(photos), args.batch):
        e.verify(photos[i:i + args.batch])
    return {"run_s": time.perf_counter() - t0}


def ray_job(args, photos, models, raylets):
    """verify_dataset on a fresh local cluster: a head with 0 CPUs + `raylets` raylets; one
    2-thread actor on one raylet, one 1-thread actor per raylet on two."""
    import ray
    from ray.cluster_utils import Cluster

    import veridoc.ray

    node = {"node_ip_address": "127.0.0.1", "include_dashboard": False,
            "object_store_memory": 80 << 20}
    c = Cluster(initialize_head=True, head_node_args=dict(node, num_cpus=0))
    try:
        for _ in range(raylets):
            c.add_node(num_cpus=3, **node)
        c.wait_for_nodes(timeout=120)
        ray.init(address=c.address, log_to_driver=False, logging_level="WARNING")
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        with tempfile.TemporaryDirectory() as out:
            rows = [(f"id-{i}", p) for i, p in enumerate(photos)]
            per = 2 // raylets
            t0 = time.perf_counter()
            veridoc.ray.verify_dataset(rows, out + "/sink", workers=(raylets, raylets),
                                       batch_size=args.batch, cpus_per_worker=per,
                                       threads=per, models=models)
            return {"run_s": time.perf_counter() - t0}
    finally:
        ray.shutdown()
        c.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--veridoc", required=True, help="the veridoc binary")
    ap.add_argument("--photos", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    root = HERE.parents[1]
    fixtures = pathlib.Path(os.environ.get("VERIDOC_FIXTURES", root / "fixtures"))
    models = str(fixtures / "models")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="vdbench-"))
    photos = make_photos(sources_in(fixtures / "photos"), tmp / "photos", args.photos)
    listing = tmp / "list.txt"
    listing.write_text("".join(p + "\n" for p in photos))
    configs = {
        "binary": lambda: binary(args, str(listing), models),
        "python": lambda: python_api(args, photos, models),
        "ray-1-raylet": lambda: ray_job(args, photos, models, 1),
        "ray-2-raylets": lambda: ray_job(args, photos, models, 2),
    }
    results = {k: [] for k in configs}
    names = list(configs)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            res = configs[name]()
            res["photos_per_s"] = len(photos) / res["run_s"]
            results[name].append(res)
            print(json.dumps({"round": r, "config": name, **res}), flush=True)
    batches = -(-len(photos) // args.batch)
    for name, rs in results.items():
        med = statistics.median(x["photos_per_s"] for x in rs)
        lo, hi = min(x["photos_per_s"] for x in rs), max(x["photos_per_s"] for x in rs)
        per_batch = statistics.median(x["run_s"] for x in rs) / batches * 1000
        print(f"{name:14s} {med:6.1f} photos/s (range {lo:.1f}-{hi:.1f}), "
              f"{per_batch:.0f} ms per batch of {args.batch}")


if __name__ == "__main__":
    main()
