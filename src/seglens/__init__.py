"""SegLens: find things in images by words.

Segment Anything regions scored against keywords by CLIP-family models, with a cache that
makes every re-query instant. The Python API::

    import seglens
    pipe = seglens.Pipeline.from_profile("cpu-fast")
    result = pipe.query("photo.jpg", "cat, dog", threshold=0.5)
    pipe.render("photo.jpg", result, alpha=0.5).save("overlay.png")

Every error SegLens raises on purpose is a `seglens.SegLensError` with a stable `code`
(the whole tree: `seglens.errors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seglens._version import __version__

__all__ = [
    "GenerationParams",
    "ImageError",
    "JobParams",
    "Match",
    "ModelNotAvailableError",
    "Pipeline",
    "QueryParams",
    "QueryResult",
    "Regions",
    "SegLensError",
    "Segmentation",
    "__version__",
]

if TYPE_CHECKING:
    from seglens.core.types import GenerationParams, JobParams, Match, QueryParams, QueryResult, Regions
    from seglens.errors import ImageError, ModelNotAvailableError, SegLensError
    from seglens.services.segment.pipeline import Pipeline, Segmentation

_LAZY = {
    "Pipeline": "seglens.services.segment.pipeline",
    "Segmentation": "seglens.services.segment.pipeline",
    "GenerationParams": "seglens.core.types",
    "JobParams": "seglens.core.types",
    "Match": "seglens.core.types",
    "QueryParams": "seglens.core.types",
    "QueryResult": "seglens.core.types",
    "Regions": "seglens.core.types",
    "SegLensError": "seglens.errors",
    "ImageError": "seglens.errors",
    "ModelNotAvailableError": "seglens.errors",
}


def __getattr__(name: str) -> Any:
    # Importing seglens stays cheap: torch and transformers load only with a model.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seglens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
