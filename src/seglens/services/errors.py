"""Errors the use cases raise (defined in `seglens.errors`, under `SegLensError`). Each
carries a stable machine `code` and a human message; the HTTP layer maps the class to a
status code, the CLI to an exit code.

`invalid_input(code)` is the one way a use case turns a `ValueError` of a lower layer
(a core type refusing a value, `parse_query`) into `InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from seglens.errors import (
    Busy,
    Conflict,
    InvalidInput,
    InvalidUpload,
    ModelsUnavailable,
    NotFound,
    QueueFull,
    ServiceError,
)

__all__ = [
    "Busy",
    "Conflict",
    "InvalidInput",
    "InvalidUpload",
    "ModelsUnavailable",
    "NotFound",
    "QueueFull",
    "ServiceError",
    "invalid_input",
]


@contextmanager
def invalid_input(code: str) -> Iterator[None]:
    """Re-raise a `ValueError` of the block as ``InvalidInput(code, str(error))``, without
    the chained traceback (the message is the whole story for a client)."""
    try:
        yield
    except ValueError as error:
        raise InvalidInput(code, str(error)) from None
