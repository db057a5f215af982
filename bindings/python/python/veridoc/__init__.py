"""veridoc: identity-photo verification (decode, resize, normalize, face checks) on CPU or GPU.

One :class:`Engine` per process holds the thread pool, the GPU context, the face models and
the result cache; build it once and reuse it for every batch. Every call releases the GIL for
all of its work.

>>> import veridoc
>>> engine = veridoc.Engine(models="fixtures/models")          # doctest: +SKIP
>>> reports = engine.verify(["photo.jpg", open("b.jpg", "rb").read()])  # doctest: +SKIP
>>> batch, errors = engine.preprocess(["photo.jpg"], {"resize": {...}})  # doctest: +SKIP

Errors: a bad spec, profile or setting raises a :class:`VeridocError` subclass
(:class:`SpecError`, ...); a bad item never raises for the whole batch (its report has
``verdict == "error"`` and ``error`` set to the stable code, or its slot in ``errors`` holds
the exception object).
"""

from ._veridoc import (
    BUILD_ID,
    VERSION,
    CacheError,
    Engine,
    GpuError,
    InputError,
    LimitError,
    ModelError,
    SpecError,
    VeridocError,
    gpu_adapters,
)

__version__ = VERSION

__all__ = [
    "BUILD_ID",
    "VERSION",
    "CacheError",
    "Engine",
    "GpuError",
    "InputError",
    "LimitError",
    "ModelError",
    "SpecError",
    "VeridocError",
    "gpu_adapters",
]
