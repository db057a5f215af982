"""A Ray driver for the tests and the benchmark: connects to a running cluster and runs
veridoc.ray.verify_dataset with the JSON keyword arguments given.

    python ray_driver.py ADDRESS MANIFEST OUT '{"workers": [2, 2], ...}'

Run as its own process so that the caller can bound it with a timeout and kill it (the
"abort at 50 %" test) without touching the cluster. Prints the summary as one JSON line.
"""

import json
import sys

import ray

import veridoc.ray


def main():
    address, manifest, out, kwargs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if "workers" in kwargs:
        kwargs["workers"] = tuple(kwargs["workers"])
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    try:
        summary = veridoc.ray.verify_dataset(manifest, out, **kwargs)
    except veridoc.VeridocError as e:
        print(json.dumps({"error": type(e).__name__, "code": getattr(e, "code", None), "message": str(e)}))
        sys.exit(2)
    finally:
        ray.shutdown()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
