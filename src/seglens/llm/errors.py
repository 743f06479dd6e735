"""Typed LLM failures, each with one stable code and one user-facing message (the classes
are defined in `seglens.errors`, under `SegLensError`), and the scrubbing of secrets.

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

from seglens.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMError,
    LLMNotConfiguredError,
    LLMRateLimitedError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    LLMUnreachableError,
)

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
