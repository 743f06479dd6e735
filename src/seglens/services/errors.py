"""Errors the use cases raise. Each carries a stable machine `code` and a human message;
the HTTP layer maps the class to a status code, the CLI to an exit code."""

from __future__ import annotations

__all__ = [
    "Busy",
    "Conflict",
    "InvalidInput",
    "InvalidUpload",
    "ModelsUnavailable",
    "NotFound",
    "QueueFull",
    "ServiceError",
]


class ServiceError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(ServiceError):
    """An id that names nothing (unknown image, job or image of a job)."""


class InvalidInput(ServiceError):
    """Well-formed but unusable input: an empty query, a prompt outside the image."""


class Conflict(ServiceError):
    """The request does not fit the resource's state (resume a running job)."""


class QueueFull(ServiceError):
    """Too much work is waiting; try again after `retry_after_s` seconds."""

    def __init__(self, code: str, message: str, retry_after_s: int):
        super().__init__(code, message)
        self.retry_after_s = max(1, int(retry_after_s))


class Busy(QueueFull):
    """Too many interactive requests are in flight at once."""


class ModelsUnavailable(ServiceError):
    """The models are still loading (`retry_after_s` set) or failed to load (None)."""

    def __init__(self, code: str, message: str, retry_after_s: int | None = None):
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


class InvalidUpload(ServiceError):
    """An uploaded file that is not a usable image; `code` says why (``empty_file``,
    ``too_large``, ``too_many_pixels``, ``not_an_image``, ``unsupported_format``,
    ``corrupt_image``, ``invalid_image``, ``invalid_filename``)."""
