"""Type stubs of the extension module (re-exported by ``veridoc``)."""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np

VERSION: str
BUILD_ID: str

#: A path, the bytes of an encoded image, or a ``(name, bytes)`` pair.
InputLike = Union[str, os.PathLike, bytes, Tuple[str, bytes]]

class VeridocError(Exception):
    """Base of veridoc's exceptions."""

    #: veridoc's stable error code (``invalid_spec``, ``decode``, ``not_found``, ...).
    code: str
    #: The input the error concerns, for per-item errors.
    input: Optional[str]

class SpecError(VeridocError):
    """A pipeline spec, profile or engine setting is invalid (code ``invalid_spec``)."""

class InputError(VeridocError):
    """An input is unusable: missing, unreadable, corrupt or unsupported."""

class LimitError(VeridocError):
    """A size, pixel, time or memory limit was exceeded (``busy`` may succeed later)."""

class GpuError(VeridocError):
    """The GPU path failed, or the requested GPU is absent."""

class ModelError(VeridocError):
    """The face models are missing or malformed."""

class CacheError(VeridocError):
    """A result cache entry or directory problem."""

class Report(TypedDict):
    """One photo's verification result."""

    #: The input's name: its path as given, ``bytes[i]``, or the name of a ``(name, bytes)`` pair.
    name: str
    #: ``accepted``, ``rejected`` or ``error``.
    verdict: str
    #: Names of the failed checks.
    failed: List[str]
    #: Faces found.
    faces: int
    #: Where the networks ran: ``cpu`` or ``gpu``.
    device: str
    #: Served from the result cache.
    cached: bool
    #: The stable error code when ``verdict == "error"``, else None.
    error: Optional[str]
    #: The full report (``docs/report.schema.json``) as JSON.
    report: str

class GpuAdapter(TypedDict):
    name: str
    backend: str
    device_type: str
    driver: str
    pci_bus_id: str
    is_software: bool

class Engine:
    """A verification and preprocessing engine: build once, reuse for every batch.

    Every call releases the GIL for all of its work; one engine may be shared by threads.

    Args:
        device: ``auto`` (the scheduler picks CPU or GPU per batch), ``cpu`` or ``gpu``.
        gpu: which GPU: ``auto``, ``software``, an index, ``pci:BUS``, ``name:TEXT``, or
            ``cuda`` (the first id of ``CUDA_VISIBLE_DEVICES``). Default: ``$VERIDOC_GPU``,
            else ``auto``. An absent GPU raises :class:`GpuError` naming the adapters.
        threads: the CPU pool's threads. Default: one per core.
        cache_dir: a folder for the persistent result cache (``cache_dir/results``) and the
            scheduler's calibration. Default: none (memory cache only, nothing persisted).
        cache_bytes: the disk cache's byte cap. Default: 2 GiB.
        ttl_s: time to live of disk cache entries, seconds. Default: 24 h.
        models: face-api's model folder (needed by :meth:`verify`). Default: ``$VERIDOC_MODELS``.
        memory_cache_bytes: the memory cache's byte budget. Default: 256 MiB.

    Raises:
        SpecError: an invalid setting. GpuError: the requested GPU is absent.
    """

    def __init__(
        self,
        device: str = "auto",
        gpu: Optional[str] = None,
        threads: Optional[int] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        cache_bytes: Optional[int] = None,
        ttl_s: Optional[float] = None,
        models: Optional[Union[str, os.PathLike]] = None,
        memory_cache_bytes: Optional[int] = None,
    ) -> None: ...
    def verify(
        self,
        inputs: Sequence[InputLike],
        profile: Optional[Union[str, os.PathLike, Dict[str, Any]]] = None,
    ) -> List[Report]:
        """Verifies each input against ``profile`` (a built-in name such as ``passport``, the
        default; a JSON/TOML file; or a dict). One report per input, in order; a bad input
        gets ``verdict == "error"`` and never raises.

        Raises:
            SpecError: invalid profile or inputs list. ModelError: no face models.
        """
    def preprocess(
        self, inputs: Sequence[InputLike], pipeline: Union[str, Dict[str, Any]]
    ) -> Tuple[np.ndarray, List[Optional[VeridocError]]]:
        """Runs veridoc's pipeline spec (a dict or JSON string, e.g.
        ``{"resize": {"mode": "stretch", "width": 224, "height": 224}, "dtype": "f32"}``) on
        each input. Returns one stacked ``(N, ...)`` array that owns the engine's buffer (no
        copy into numpy) and, per input, None or the exception describing its failure (its
        row is zeros). JPEGs decode at full resolution unless the spec asks for
        shrink-on-load: ``{"decode": {"shrink": "balanced"}}`` (or ``"fast"``; default
        ``"exact"``, docs/cli.md).

        Raises:
            SpecError: invalid pipeline; outputs of different shapes (use a fixed size).
        """
    def stats(self) -> Dict[str, int]:
        """``detector_photos`` (photos run through the face detector; cache hits do not
        count) and the result cache's hit and miss counters."""
    @property
    def threads(self) -> int: ...
    @property
    def gpu(self) -> Optional[GpuAdapter]: ...
    @property
    def device(self) -> str: ...

def gpu_adapters() -> List[GpuAdapter]:
    """The GPU adapters this process can open, in selection order (empty in a CPU-only
    build)."""
