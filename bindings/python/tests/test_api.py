"""The Python API: paths, bytes, bad items, exceptions, zero-copy arrays, the GIL."""

import json
import threading
import time

import numpy as np
import pytest

import veridoc

PIPELINE = {"resize": {"mode": "stretch", "width": 64, "height": 48}, "dtype": "f32", "scale": True}


@pytest.fixture(scope="module")
def engine(models):
    return veridoc.Engine(device="cpu", models=models)


def test_verify_paths_and_bytes_agree(engine, sources):
    paths = [str(p) for p in sources[:4]]
    by_path = engine.verify(paths)
    by_bytes = engine.verify([open(p, "rb").read() for p in paths])
    named = engine.verify([("upload-1", open(paths[0], "rb").read())])
    assert [r["name"] for r in by_path] == paths
    assert [r["name"] for r in by_bytes] == [f"bytes[{i}]" for i in range(4)]
    assert named[0]["name"] == "upload-1"
    for a, b in zip(by_path, by_bytes):
        assert a["verdict"] in ("accepted", "rejected")
        assert (a["verdict"], a["failed"], a["faces"]) == (b["verdict"], b["failed"], b["faces"])
        report = json.loads(a["report"])
        assert report["verdict"] == a["verdict"] and report["failed"] == a["failed"]
        assert len(report["faces"]) == a["faces"]


def test_bad_items_never_raise_for_the_batch(engine, sources, tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = [str(sources[0]), str(tmp_path / "missing.jpg"), str(garbage), b"", str(sources[1])]
    reports = engine.verify(inputs)
    assert [r["verdict"] == "error" for r in reports] == [False, True, True, True, False]
    assert reports[1]["error"] == "not_found"
    assert reports[2]["error"] == "decode"
    assert reports[3]["error"] == "invalid_input"


def test_exceptions_by_kind(models, engine, sources):
    with pytest.raises(veridoc.SpecError) as e:
        veridoc.Engine(device="quantum")
    assert e.value.code == "invalid_spec"
    assert isinstance(e.value, veridoc.VeridocError)
    with pytest.raises(veridoc.SpecError):
        engine.verify([str(sources[0])], profile={"no_such_field": 1})
    with pytest.raises(veridoc.SpecError):
        engine.preprocess([str(sources[0])], {"resize": {"mode": "stretch", "width": 0, "height": 4}})
    with pytest.raises(veridoc.SpecError):
        engine.verify(str(sources[0]))  # one path, not a list
    with pytest.raises(veridoc.SpecError):
        engine.verify([3.5])
    with pytest.raises(veridoc.ModelError) as e:
        veridoc.Engine(device="cpu", models=None).verify([str(sources[0])])
    assert e.value.code == "model"


def test_preprocess_stacks_without_copying(engine, sources, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = [str(sources[0]), str(bad), open(sources[1], "rb").read()]
    batch, errors = engine.preprocess(inputs, PIPELINE)
    assert batch.shape == (3, 48, 64, 3) and batch.dtype == np.float32
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], veridoc.InputError) and errors[1].code == "decode"
    assert not batch[1].any(), "a failed item's row is zeros"
    assert 0.0 <= batch[0].min() and batch[0].max() <= 1.0 and batch[0].std() > 0.01
    # numpy does not own the buffer: the engine's allocation was handed over, not copied
    assert not batch.flags.owndata
    assert batch.base is not None and "numpy" not in type(batch.base).__module__
    # the same values as preprocessing one item alone
    one, _ = engine.preprocess([str(sources[0])], json.dumps(PIPELINE))
    np.testing.assert_array_equal(one[0], batch[0])
    u8, _ = engine.preprocess([str(sources[0])], {"resize": {"mode": "stretch", "width": 8, "height": 8}})
    assert u8.dtype == np.uint8 and u8.shape == (1, 8, 8, 3)


def test_gil_is_released_during_work(engine, sources):
    inputs = [str(p) for p in sources] * 3
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    start = time.perf_counter()
    t.start()
    try:
        engine.verify(inputs)
    finally:
        end = time.perf_counter()
        stop.set()
        t.join()
    during = [x for x in ticks if start < x < end]
    # a thread blocked on the GIL would tick only at the interpreter's 5 ms switch interval
    # at best, and not at all while a call held the GIL; it ticks throughout
    assert end - start > 0.2
    assert len(during) > (end - start) / 0.01, (len(during), end - start)
    gaps = np.diff(during)
    assert gaps.max() < 0.25, f"the thread stalled {gaps.max():.3f} s during the call"


def test_stats_count_detector_work_not_cache_hits(models, sources):
    e = veridoc.Engine(device="cpu", models=models)
    paths = [str(p) for p in sources[:3]]
    first = e.verify(paths)
    n = e.stats()["detector_photos"]
    assert n == 3 and not any(r["cached"] for r in first)
    again = e.verify(paths)
    assert all(r["cached"] for r in again)
    assert e.stats()["detector_photos"] == n
    assert e.stats()["cache_memory_hits"] >= 3


def test_engine_settings(models, tmp_path):
    e = veridoc.Engine(device="cpu", threads=1, cache_dir=tmp_path, cache_bytes=1 << 20, ttl_s=60, models=models)
    assert e.threads == 1 and e.device == "cpu" and e.gpu is None
    assert "veridoc.Engine" in repr(e)
    assert veridoc.SpecError.__module__ == "veridoc"
    with pytest.raises(veridoc.SpecError):
        veridoc.Engine(threads=0)
    with pytest.raises(veridoc.SpecError):
        veridoc.Engine(ttl_s=-1)
    assert isinstance(veridoc.gpu_adapters(), list)
    assert veridoc.__version__ == veridoc.VERSION
