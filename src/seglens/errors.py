"""Every exception SegLens raises on purpose, in one place.

Each carries a stable, machine-readable `code` (``snake_case``) and a `message`, one human
sentence. Catch `SegLensError` for all of them; the HTTP layer maps a class to a status
code (`seglens.api.errors`), the CLI to an exit code. Classes whose older form derived
from `ValueError` or `RuntimeError` still do, so code that catches those keeps working.

::

    SegLensError                         code
    ├── ImageError (ValueError)          not_an_image, too_large, corrupt_image, ... (invalid_image)
    ├── ModelNotAvailableError (RuntimeError)  model_not_available
    ├── InvalidModelSpec (ValueError)    invalid_model_spec
    ├── TransitionError                  invalid_transition (`status`: the job's state)
    ├── BatchBusy (RuntimeError)         batch_busy
    ├── ExecutorUnavailable (RuntimeError)  executor_unavailable
    ├── ServiceError                     given by the raiser (e.g. ``invalid_query``)
    │   ├── NotFound                     404
    │   ├── InvalidInput                 422
    │   ├── InvalidUpload                413 / 415 / 400 by code
    │   ├── Conflict                     409
    │   ├── QueueFull                    429 (`retry_after_s`)
    │   │   └── Busy                     429
    │   └── ModelsUnavailable            503 (`retry_after_s` while loading)
    └── LLMError                         llm_error (`status`, `detail`, `retryable`)
        ├── LLMNotConfiguredError        llm_not_configured
        ├── LLMAuthError                 llm_auth_failed
        ├── LLMTimeoutError              llm_timeout
        ├── LLMUnreachableError          llm_unreachable
        ├── LLMRateLimitedError          llm_rate_limited
        ├── LLMServerError               llm_server_error
        ├── LLMStreamError               llm_broken_stream
        └── LLMBadRequestError           llm_bad_request

The classes are also importable from where they are raised (`seglens.core.images`,
`seglens.models.registry`, `seglens.services.errors`, `seglens.llm`, ...). This module
imports nothing from SegLens, so every layer may use it. Errors pickle with their fields
(a Ray actor's error reaches the driver whole).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BatchBusy",
    "Busy",
    "Conflict",
    "ExecutorUnavailable",
    "ImageError",
    "InvalidInput",
    "InvalidModelSpec",
    "InvalidUpload",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMError",
    "LLMNotConfiguredError",
    "LLMRateLimitedError",
    "LLMServerError",
    "LLMStreamError",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "ModelNotAvailableError",
    "ModelsUnavailable",
    "NotFound",
    "QueueFull",
    "SegLensError",
    "ServiceError",
    "TransitionError",
]


def _restore(cls: type[SegLensError], args: tuple[Any, ...], state: dict[str, Any]) -> SegLensError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class SegLensError(Exception):
    """The root: `code` (stable, machine-readable; the class's `code` unless given) and
    `message` (one human sentence, also ``str(error)``)."""

    code: str = "seglens_error"

    def __init__(self, message: str = "", *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments; rebuild from the fields instead.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class ImageError(SegLensError, ValueError):
    """An input that is not a usable image; `code` says why (``empty_file``,
    ``too_large``, ``too_many_pixels``, ``not_an_image``, ``unsupported_format``,
    ``corrupt_image``, ``unreadable``, ``invalid_image``)."""

    code = "invalid_image"

    def __init__(self, message: str, code: str = "invalid_image"):
        super().__init__(message, code=code)


class ModelNotAvailableError(SegLensError, RuntimeError):
    """A model cannot be used on this machine now: its weights are missing and cannot be
    downloaded, or its plugin failed to load. The message names the model, where SegLens
    looked and the command or setting that fixes it (the CLI exits with code 3)."""

    code = "model_not_available"


class InvalidModelSpec(SegLensError, ValueError):
    """A `ModelSpec` or `Profile` that breaks the registry's rules (the message says which)."""

    code = "invalid_model_spec"


class TransitionError(SegLensError):
    """A job cannot make the requested transition from its current `status`."""

    code = "invalid_transition"

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


class BatchBusy(SegLensError, RuntimeError):
    """Another batch is running in the same output directory."""

    code = "batch_busy"


class ExecutorUnavailable(SegLensError, RuntimeError):
    """The executor cannot start (Ray missing or unreachable, workers that cannot load
    the models); the message says why and what to do."""

    code = "executor_unavailable"


class ServiceError(SegLensError):
    """An error of a use case; the raiser names the `code` (``ServiceError(code,
    message)``), the class says what kind it is (the HTTP status)."""

    code = "service_error"

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code)


class NotFound(ServiceError):
    """An id that names nothing (unknown image, job or image of a job)."""


class InvalidInput(ServiceError):
    """Well-formed but unusable input: an empty query, a prompt outside the image
    (`seglens.services.errors.invalid_input` turns a `ValueError` into one)."""


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


_MAX_DETAIL_CHARS = 300


class LLMError(SegLensError):
    """Base of every LLM failure (`seglens.llm`).

    - `code`: stable machine-readable id (``llm_auth_failed``, ``llm_timeout``, ...)
    - `message`: one sentence for the user, already scrubbed of secrets
    - `status`: the HTTP status when the server answered, else None
    - `detail`: a short scrubbed technical detail for logs (may be empty)
    - `retryable`: whether trying again later may help
    """

    code = "llm_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail[:_MAX_DETAIL_CHARS]

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"

    def to_dict(self) -> dict[str, str | int | None]:
        """``{"code", "message", "status"}`` for an API response or an event."""
        return {"code": self.code, "message": self.message, "status": self.status}


class LLMNotConfiguredError(LLMError):
    """No LLM is set up (no key for a hosted endpoint, or ``SEGLENS_LLM_ENABLED=false``)."""

    code = "llm_not_configured"


class LLMAuthError(LLMError):
    """401/403: the key is wrong, expired or lacks access."""

    code = "llm_auth_failed"


class LLMTimeoutError(LLMError):
    """No answer (or no next chunk) within the timeout."""

    code = "llm_timeout"
    retryable = True


class LLMUnreachableError(LLMError):
    """Connection refused, DNS failure, TLS failure: nothing answered at the URL."""

    code = "llm_unreachable"
    retryable = True


class LLMRateLimitedError(LLMError):
    """429 after every retry (or a Retry-After longer than we are willing to wait)."""

    code = "llm_rate_limited"
    retryable = True


class LLMServerError(LLMError):
    """5xx after every retry, or an error event in the middle of a stream."""

    code = "llm_server_error"
    retryable = True


class LLMStreamError(LLMError):
    """The answer stream was malformed (a chunk that is not JSON) or broke off before its
    end."""

    code = "llm_broken_stream"
    retryable = True


class LLMBadRequestError(LLMError):
    """Another 4xx: wrong model name, wrong URL path, a feature the server lacks."""

    code = "llm_bad_request"
