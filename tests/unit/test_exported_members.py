"""The public API surface is explicit and pinned (as httpx's test_exported_members.py):
adding or removing a name of `seglens.__all__` is a decision, made here too."""

from __future__ import annotations

import seglens
import seglens.errors

PUBLIC = [
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


def test_seglens_exports_exactly_the_pinned_names():
    assert seglens.__all__ == PUBLIC


def test_every_exported_name_resolves_and_is_listed_by_dir():
    for name in seglens.__all__:
        value = getattr(seglens, name)
        if name != "__version__":
            assert value.__module__.startswith("seglens."), name
            assert value.__doc__, f"{name} has no docstring"
        assert name in dir(seglens)


def test_the_version_has_one_source():
    from seglens._version import __version__

    assert seglens.__version__ == __version__


def test_every_public_error_is_a_seglens_error_documented_in_the_errors_module():
    for name in seglens.errors.__all__:
        error = getattr(seglens.errors, name)
        assert issubclass(error, seglens.errors.SegLensError), name
        assert error.__doc__ and error.code and error.code.islower(), name
        assert name in seglens.errors.__doc__, f"{name} missing from the tree in seglens.errors"
