"""Typed LLM failures, each with one stable code and one user-facing message.

Every exception here carries only text that went through `scrub`: the API key (and
anything that looks like a bearer token or an ``sk-`` key) is replaced by ``***`` before
it can reach a message, a repr, a log line or a traceback. The SDK's own exception is never
chained (``__cause__`` and ``__context__`` stay empty), because a server may echo the
request's Authorization header in its error body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMError",
    "LLMNotConfiguredError",
    "LLMRateLimitedError",
    "LLMServerError",
    "LLMStreamError",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "redact_url",
    "scrub",
]

_TOKEN_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s'\",}]+"),
)
_MAX_DETAIL_CHARS = 300


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret in `secrets` (and bearer tokens, ``sk-`` keys and
    ``api_key=...`` values) replaced by ``***``. Secrets shorter than 4 characters are
    left alone so that a one-letter "key" does not blank out every word."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def redact_url(url: str) -> str:
    """`url` without user-info (``https://user:pass@host`` → ``https://***@host``) and
    without its query string, which some proxies use for keys."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class LLMError(Exception):
    """Base of every LLM failure.

    - `code`: stable machine-readable id (``llm_auth_failed``, ``llm_timeout``, ...)
    - `message`: one sentence for the user, already scrubbed
    - `status`: the HTTP status when the server answered, else None
    - `detail`: a short scrubbed technical detail for logs (may be empty)
    - `retryable`: whether trying again later may help
    """

    code = "llm_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
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
