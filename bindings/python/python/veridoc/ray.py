"""Batch verification on a Ray cluster: ``verify_dataset``.

A manifest of ``(id, uri)`` rows goes through ``Dataset.map_batches`` with an actor pool; each
actor builds one :class:`veridoc.Engine` and keeps it (thread pool, GPU context and models
stay warm) for every batch it gets. Only URIs go in and small reports come out (the report
JSON is a few KB per photo): pixels never cross the object store. Reports land in a Parquet
sink.

Resumability: with ``cache_dir`` on storage every node sees, each report is stored in
veridoc's content-addressed result cache (key: the photo's content, the profile, the models
and the engine build) as soon as its batch is done, so a re-run of an interrupted job, or a
batch retried after an actor died, does no detector work for photos already verified.

Requires ``ray[data]`` and ``pyarrow`` (``pip install veridoc[ray]``).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from ._veridoc import Engine, SpecError

__all__ = ["CpuReservationError", "verify_dataset", "read_stats", "REPORT_COLUMNS"]

#: The sink's columns, in order.
REPORT_COLUMNS = (
    "id",
    "uri",
    "verdict",
    "failed",
    "faces",
    "device",
    "cached",
    "error",
    "report",
)


class CpuReservationError(SpecError):
    """The actors would reserve every CPU of the cluster.

    Ray Data's read and write tasks then never get a CPU and the job hangs without a word (a
    known Ray issue), so the configuration is refused before anything starts. Lower
    ``workers`` or ``cpus_per_worker``, or add CPUs.
    """

    code = "invalid_spec"


class _Verifier:
    """One actor: one long-lived engine, called once per batch."""

    def __init__(
        self,
        profile: Any,
        engine_kwargs: Dict[str, Any],
        stats_dir: Optional[str],
        die_after_batches: Optional[int],
        die_marker: Optional[str],
    ) -> None:
        self.profile = profile
        self.engine = Engine(**engine_kwargs)
        self.stats_path = (
            os.path.join(stats_dir, f"{os.getpid()}-{uuid.uuid4().hex}.json") if stats_dir else None
        )
        self.batches = 0
        self.rows = 0
        self.die_after_batches = die_after_batches
        self.die_marker = die_marker

    def __call__(self, batch):
        import pyarrow as pa

        ids = [str(v) for v in batch.column("id").to_pylist()]
        uris = [str(v) for v in batch.column("uri").to_pylist()]
        reports = self.engine.verify(uris, profile=self.profile)
        self.batches += 1
        self.rows += len(reports)
        self._write_stats()
        self._maybe_die()
        return pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "uri": pa.array(uris, pa.string()),
                "verdict": pa.array([r["verdict"] for r in reports], pa.string()),
                "failed": pa.array([r["failed"] for r in reports], pa.list_(pa.string())),
                "faces": pa.array([r["faces"] for r in reports], pa.int32()),
                "device": pa.array([r["device"] for r in reports], pa.string()),
                "cached": pa.array([r["cached"] for r in reports], pa.bool_()),
                "error": pa.array([r["error"] for r in reports], pa.string()),
                "report": pa.array([r["report"] for r in reports], pa.string()),
            }
        )

    def _write_stats(self) -> None:
        """This actor's counters, replaced atomically after every batch (see read_stats)."""
        if not self.stats_path:
            return
        s = dict(self.engine.stats())
        s.update(pid=os.getpid(), batches=self.batches, rows=self.rows)
        gpu = self.engine.gpu
        s["gpu"] = gpu["name"] if gpu else None
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(s, f)
        os.replace(tmp, self.stats_path)

    def _maybe_die(self) -> None:
        # fault injection for the tests: the first actor to reach the count dies once, after
        # its batch was computed and cached but before the batch is returned
        if self.die_after_batches is None or self.batches < self.die_after_batches:
            return
        try:
            fd = os.open(self.die_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)


def read_stats(stats_dir: str) -> Dict[str, Any]:
    """Sums the counters the actors of ``verify_dataset(..., stats_dir=...)`` wrote.

    Returns ``detector_photos`` (photos run through the face detector: a report served from
    the result cache does not count), ``rows`` (rows the actors verified, retries included),
    ``batches``, ``actors`` and the set of ``gpus`` (adapter names) the actors used.
    """
    total: Dict[str, Any] = {"detector_photos": 0, "rows": 0, "batches": 0, "actors": 0, "gpus": set()}
    if not os.path.isdir(stats_dir):
        return total
    for name in sorted(os.listdir(stats_dir)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(stats_dir, name)) as f:
                s = json.load(f)
        except (OSError, ValueError):
            continue
        total["actors"] += 1
        for k in ("detector_photos", "rows", "batches"):
            total[k] += int(s.get(k, 0))
        total["gpus"].add(s.get("gpu"))
    return total


def _read_manifest(manifest: Union[str, Sequence[Tuple[str, str]]]):
    import ray.data

    if not isinstance(manifest, (str, os.PathLike)):
        rows = [{"id": str(i), "uri": str(u)} for i, u in manifest]
        return ray.data.from_items(rows)
    path = os.fspath(manifest)
    if path.endswith(".parquet") or os.path.isdir(path):
        return ray.data.read_parquet(path, columns=["id", "uri"])
    return ray.data.read_text(path).map_batches(_parse_lines, batch_format="pyarrow")


def _parse_lines(batch):
    """Text manifest lines: ``id<TAB>uri``, ``id,uri`` or a bare ``uri`` (the id is the uri);
    blank lines and ``#`` comments are skipped."""
    import pyarrow as pa

    ids, uris = [], []
    for line in batch.column("text").to_pylist():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for sep in ("\t", ","):
            if sep in line:
                i, u = line.split(sep, 1)
                break
        else:
            i, u = line, line
        ids.append(i.strip())
        uris.append(u.strip())
    return pa.table({"id": pa.array(ids, pa.string()), "uri": pa.array(uris, pa.string())})


def verify_dataset(
    manifest: Union[str, Sequence[Tuple[str, str]]],
    out: str,
    profile: Any = "passport",
    gpus: float = 0,
    workers: Tuple[int, int] = (1, 2),
    batch_size: int = 32,
    cache_dir: Optional[str] = None,
    cache_bytes: Optional[int] = None,
    *,
    cpus_per_worker: float = 1,
    threads: Optional[int] = None,
    models: Optional[str] = None,
    rows_per_block: Optional[int] = None,
    stats_dir: Optional[str] = None,
    _die_after_batches: Optional[int] = None,
) -> Dict[str, Any]:
    """Verifies every photo of ``manifest`` on the connected Ray cluster; reports to Parquet.

    Args:
        manifest: a Parquet file or folder with ``id`` and ``uri`` columns, a text file of
            ``id<TAB>uri`` / ``id,uri`` / ``uri`` lines, or a sequence of ``(id, uri)`` pairs.
            URIs are paths every node can read.
        out: the Parquet sink's folder (columns :data:`REPORT_COLUMNS`; ``report`` is the
            full report JSON of ``docs/report.schema.json``).
        profile: a built-in profile name, a profile file path, or a profile dict.
        gpus: GPUs per actor (0: CPU actors). GPU actors open the adapter Ray assigned them
            (``CUDA_VISIBLE_DEVICES``, mapped to the Vulkan adapter by index).
        workers: ``(min, max)`` actors in the pool.
        batch_size: rows per ``map_batches`` call.
        cache_dir: veridoc's result cache folder (shared storage on a multi-node cluster);
            None: no resumability (memory cache per actor only).
        cache_bytes: the cache folder's byte cap (least recently used entries go first;
            ~3.6 KB per report). Default: veridoc's 2 GiB.
        cpus_per_worker: CPUs each actor reserves. Default 1.
        threads: the engine's threads per actor. Default: ``cpus_per_worker`` rounded up.
        models: the face models folder. Default: ``$VERIDOC_MODELS``.
        rows_per_block: manifest rows per block (a failure loses at most one block's work).
            Default: ``batch_size``.
        stats_dir: a folder where every actor keeps its counters (see :func:`read_stats`).

    Returns:
        ``{"rows", "blocks", "out", "seconds"}``.

    Raises:
        CpuReservationError: the actors would reserve every CPU (the job would hang).
        SpecError: another invalid setting.
    """
    import ray
    import ray.data

    lo, hi = workers
    if not (1 <= lo <= hi):
        raise SpecError(f"workers: need 1 <= min <= max, got {workers!r}")
    if batch_size < 1:
        raise SpecError(f"batch_size: must be at least 1, got {batch_size}")
    if not ray.is_initialized():
        ray.init()
    total_cpus = float(ray.cluster_resources().get("CPU", 0))
    reserved = hi * cpus_per_worker
    if reserved >= total_cpus:
        raise CpuReservationError(
            f"{hi} actors x {cpus_per_worker} CPUs reserve {reserved:g} of the cluster's "
            f"{total_cpus:g} CPUs, leaving none for the read and write tasks (the job would "
            "hang): lower workers or cpus_per_worker"
        )
    if gpus > 0:
        total_gpus = float(ray.cluster_resources().get("GPU", 0))
        if lo * gpus > total_gpus:
            raise SpecError(
                f"gpus: {lo} actors x {gpus:g} GPUs need more than the cluster's {total_gpus:g}"
            )
    models = models or os.environ.get("VERIDOC_MODELS")
    engine_kwargs: Dict[str, Any] = {
        "device": "gpu" if gpus > 0 else "cpu",
        "threads": threads or max(1, math.ceil(cpus_per_worker)),
        "models": models,
    }
    if gpus > 0:
        engine_kwargs["gpu"] = "cuda"
    if cache_dir is not None:
        engine_kwargs["cache_dir"] = os.fspath(cache_dir)
        engine_kwargs["cache_bytes"] = cache_bytes
    if stats_dir is not None:
        os.makedirs(stats_dir, exist_ok=True)
    if isinstance(profile, dict):
        profile = json.dumps(profile)

    start = time.monotonic()
    ds = _read_manifest(manifest)
    rows = ds.count()
    per_block = rows_per_block or batch_size
    blocks = max(1, math.ceil(rows / per_block))
    ds = ds.repartition(blocks)
    die_marker = os.path.join(stats_dir or out, ".died") if _die_after_batches else None
    reports = ds.map_batches(
        _Verifier,
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=lo, max_size=hi),
        num_cpus=cpus_per_worker,
        num_gpus=gpus if gpus > 0 else None,
        fn_constructor_kwargs={
            "profile": profile,
            "engine_kwargs": engine_kwargs,
            "stats_dir": stats_dir,
            "die_after_batches": _die_after_batches,
            "die_marker": die_marker,
        },
    )
    reports.write_parquet(out)
    return {"rows": rows, "blocks": blocks, "out": out, "seconds": time.monotonic() - start}
