"""veridoc.ray on a local multi-raylet cluster (a head with 0 CPUs + 2 worker raylets, real
processes, everything on 127.0.0.1). Every job runs in its own driver process
(ray_driver.py) under a timeout; the cluster is shut down whatever happens."""

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

# Ray resolves 127.0.0.1 to the machine's address unless its "local only" mode is on: keep
# every raylet, GCS and driver on the loopback interface (read when ray is first imported)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

import veridoc
import veridoc.ray

DRIVER = os.path.join(os.path.dirname(__file__), "ray_driver.py")
JOB_TIMEOUT = 300  # s, per driver process
NODE = {"node_ip_address": "127.0.0.1", "include_dashboard": False, "object_store_memory": 80 << 20}
WORKER_CPUS = 3  # logical: 2 actors x 1 CPU leave a CPU for reads and writes after a node is lost


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # a short private temp dir (Ray's socket paths must stay under 107 bytes), so that this
    # cluster never meets another one on the machine
    tmp = tempfile.mkdtemp(prefix="vdray-", dir="/tmp")
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tmp
    node = dict(NODE)
    c = Cluster(initialize_head=True, head_node_args=dict(node, num_cpus=0))
    try:
        for _ in range(2):
            c.add_node(num_cpus=WORKER_CPUS, **node)
        c.wait_for_nodes(timeout=120)
        c.node_args = node
        yield c
    finally:
        c.shutdown()
        if old is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, photo_set):
    """The photos as a text manifest (id<TAB>path) and as Parquet."""
    d = tmp_path_factory.mktemp("manifest")
    ids = [f"id-{i:04d}" for i in range(len(photo_set))]
    text = d / "manifest.tsv"
    text.write_text("# id\tpath\n" + "".join(f"{i}\t{p}\n" for i, p in zip(ids, photo_set)))
    parquet = d / "manifest.parquet"
    pq.write_table(pa.table({"id": ids, "uri": photo_set}), parquet)
    return {"text": str(text), "parquet": str(parquet), "ids": ids, "uris": photo_set}


def normal(report_json):
    """A report without what legitimately differs between runs (timings, cache flag)."""
    r = json.loads(report_json)
    r.pop("timings", None)
    r.pop("cached", None)
    return r


@pytest.fixture(scope="module")
def reference(models, manifest):
    """The single-process result: one engine in this process, no cache, CPU path."""
    e = veridoc.Engine(device="cpu", models=models, memory_cache_bytes=0)
    return {r["name"]: r for r in e.verify(manifest["uris"])}


def env(models):
    e = dict(os.environ, VERIDOC_MODELS=models, RAY_DEDUP_LOGS="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    e.pop("VERIDOC_GPU", None)
    return e


def start_job(cluster, models, manifest, out, **kwargs):
    return subprocess.Popen(
        [sys.executable, DRIVER, cluster.address, manifest, str(out), json.dumps(kwargs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(models),
        start_new_session=True,
    )


def finish(p, timeout=JOB_TIMEOUT):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"the Ray job did not finish in {timeout} s\n{err[-4000:]}")
    lines = [l for l in out.splitlines() if l.startswith("{")]
    assert lines, f"driver exit {p.returncode}, no summary\n{err[-4000:]}"
    return p.returncode, json.loads(lines[-1]), err


def run_job(cluster, models, manifest, out, **kwargs):
    rc, summary, err = finish(start_job(cluster, models, manifest, out, **kwargs))
    assert rc == 0, f"{summary}\n{err[-4000:]}"
    return summary


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def sink(out):
    t = pq.read_table(out)
    assert t.column_names == list(veridoc.ray.REPORT_COLUMNS)
    return t.to_pylist()


def assert_exactly_once(rows, manifest):
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate rows in the sink"
    assert sorted(ids) == sorted(manifest["ids"])


def test_refuses_actors_that_reserve_every_cpu(cluster, models, manifest, tmp_path):
    rc, summary, _ = finish(
        start_job(cluster, models, manifest["text"], tmp_path / "out", workers=[2 * WORKER_CPUS] * 2),
        timeout=120,
    )
    assert rc == 2 and summary["error"] == "CpuReservationError", summary
    assert summary["code"] == "invalid_spec"
    assert not (tmp_path / "out").exists()


def test_every_photo_once_equal_to_single_process(cluster, models, manifest, reference, tmp_path):
    n = len(manifest["ids"])
    s = run_job(cluster, models, manifest["text"], tmp_path / "out", workers=[2, 2], batch_size=16,
                cache_dir=str(tmp_path / "cache"), stats_dir=str(tmp_path / "stats"))
    assert s["rows"] == n and s["blocks"] == math.ceil(n / 16) > 1
    rows = sink(tmp_path / "out")
    assert_exactly_once(rows, manifest)
    by_id = dict(zip(manifest["ids"], manifest["uris"]))
    for r in rows:
        ref = reference[by_id[r["id"]]]
        assert r["uri"] == by_id[r["id"]]
        assert (r["verdict"], r["failed"], r["faces"], r["error"]) == (
            ref["verdict"], ref["failed"], ref["faces"], ref["error"]), r["id"]
        assert normal(r["report"]) == normal(ref["report"]), r["id"]
    assert all(r["error"] is None for r in rows)
    stats = veridoc.ray.read_stats(str(tmp_path / "stats"))
    assert stats["actors"] == 2 and stats["detector_photos"] == n and stats["rows"] == n


def test_actor_dies_after_a_batch_retry_comes_from_cache(cluster, models, manifest, tmp_path):
    n, batch = len(manifest["ids"]), 16
    stats_dir = tmp_path / "stats"
    run_job(cluster, models, manifest["parquet"], tmp_path / "out", workers=[1, 1], batch_size=batch,
            cache_dir=str(tmp_path / "cache"), stats_dir=str(stats_dir), _die_after_batches=2)
    assert (stats_dir / ".died").exists(), "the fault was not injected"
    rows = sink(tmp_path / "out")
    assert_exactly_once(rows, manifest)
    stats = veridoc.ray.read_stats(str(stats_dir))
    assert stats["actors"] >= 2, "the actor was not restarted"
    # the batch computed by the dead actor was verified again by its successor, from the
    # cache: no photo went through the detector twice
    assert stats["rows"] > n
    assert stats["detector_photos"] == n
    cached = sum(r["cached"] for r in rows)
    assert 1 <= cached <= stats["rows"] - n


def test_abort_at_half_and_rerun_does_only_the_rest(cluster, models, manifest, tmp_path):
    n = len(manifest["ids"])
    cache = str(tmp_path / "cache")
    s1, s2 = tmp_path / "stats1", tmp_path / "stats2"
    p = start_job(cluster, models, manifest["text"], tmp_path / "out1", workers=[2, 2], batch_size=8,
                  cache_dir=cache, stats_dir=str(s1))
    try:
        wait_for(lambda: veridoc.ray.read_stats(str(s1))["rows"] >= n // 2 or p.poll() is not None,
                 JOB_TIMEOUT, "half of the photos")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
    time.sleep(2)  # the cluster kills the dead driver's actors
    run_job(cluster, models, manifest["text"], tmp_path / "out2", workers=[2, 2], batch_size=8,
            cache_dir=cache, stats_dir=str(s2))
    first = veridoc.ray.read_stats(str(s1))["detector_photos"]
    assert n // 4 <= first < n, f"the abort did not land mid-job ({first} of {n})"
    rows = sink(tmp_path / "out2")
    assert_exactly_once(rows, manifest)
    detected = veridoc.ray.read_stats(str(s2))["detector_photos"]
    hits = sum(r["cached"] for r in rows)
    assert detected + hits == n
    assert detected <= n - first
    assert hits >= first


def test_worker_node_removed_mid_job(cluster, models, manifest, tmp_path):
    stats_dir = tmp_path / "stats"
    victim = next(iter(cluster.worker_nodes))
    p = start_job(cluster, models, manifest["parquet"], tmp_path / "out", workers=[2, 2], batch_size=8,
                  cache_dir=str(tmp_path / "cache"), stats_dir=str(stats_dir))
    try:
        wait_for(lambda: veridoc.ray.read_stats(str(stats_dir))["rows"] >= len(manifest["ids"]) // 4
                 or p.poll() is not None, JOB_TIMEOUT, "a quarter of the photos")
        assert p.poll() is None, "the job ended before the node could be removed"
        cluster.remove_node(victim, allow_graceful=False)
        finish(p)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
        cluster.add_node(num_cpus=WORKER_CPUS, **cluster.node_args)
        cluster.wait_for_nodes(timeout=120)
    assert p.returncode == 0
    assert_exactly_once(sink(tmp_path / "out"), manifest)


def test_gpu_actors_on_a_logical_gpu_agree_with_cpu(cluster, models, manifest, reference, tmp_path):
    adapters = veridoc.gpu_adapters()
    if not adapters:
        msg = "no GPU adapter (lavapipe) in this build or machine"
        if os.environ.get("VERIDOC_REQUIRE_GPU") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    few = manifest["uris"][:12]
    m = tmp_path / "few.tsv"
    m.write_text("".join(f"{i}\t{u}\n" for i, u in enumerate(few)))
    node = cluster.add_node(num_cpus=2, num_gpus=1, **cluster.node_args)
    try:
        cluster.wait_for_nodes(timeout=120)
        run_job(cluster, models, str(m), tmp_path / "out", gpus=1, workers=[1, 1], batch_size=6,
                stats_dir=str(tmp_path / "stats"))
    finally:
        cluster.remove_node(node)
    rows = sink(tmp_path / "out")
    assert sorted(r["uri"] for r in rows) == sorted(few)
    stats = veridoc.ray.read_stats(str(tmp_path / "stats"))
    # CUDA_VISIBLE_DEVICES=0 from Ray maps to the first adapter in veridoc's order
    assert stats["gpus"] == {adapters[0]["name"]}
    for r in rows:
        ref = reference[r["uri"]]
        assert r["device"] == "gpu"
        assert (r["verdict"], r["failed"], r["faces"]) == (ref["verdict"], ref["failed"], ref["faces"]), r["uri"]
