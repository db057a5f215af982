"""Shared fixtures: the fetched assets, and a few hundred distinct photos made from them."""

import os
import pathlib

import pytest
from photos import make_photos, sources_in

ROOT = pathlib.Path(__file__).resolve().parents[3]
FIXTURES = pathlib.Path(os.environ.get("VERIDOC_FIXTURES", ROOT / "fixtures"))
MODELS = FIXTURES / "models"
SOURCES = FIXTURES / "photos"

#: Photos made for the Ray tests (distinct content, so distinct cache keys).
PHOTOS = int(os.environ.get("VERIDOC_PY_PHOTOS", "240"))


def _require_assets():
    if not (MODELS / "tiny_face_detector_model-weights_manifest.json").is_file():
        msg = f"face models missing in {MODELS} (run scripts/setup.sh)"
        if os.environ.get("VERIDOC_REQUIRE_ASSETS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def models():
    _require_assets()
    return str(MODELS)


@pytest.fixture(scope="session")
def sources():
    _require_assets()
    photos = sources_in(SOURCES)
    assert len(photos) >= 10, f"expected the fetched photos in {SOURCES}"
    return photos


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory, sources):
    """PHOTOS distinct JPEGs made from the fetched photos."""
    return make_photos(sources, tmp_path_factory.mktemp("photos"), PHOTOS)
