"""Credentials out of every log line, whichever logger wrote it.

`redact(text)` replaces with ``***``:

- the user-info of a URL (``http://user:KEY@host`` → ``http://***@host``);
- the value of a query parameter with a secret's name (``?api_key=KEY``, ``&token=``,
  ``access_token``, ``key``, ``secret``, ``password``, ``signature``...);
- the credential of an ``Authorization`` / ``Proxy-Authorization`` value, and any
  ``Bearer <token>`` or ``Basic <base64>`` (an upstream that echoes the header back);
- ``sk-...`` style API keys;
- every literal secret it was given (the server's token, the LLM key, a password or
  key in the LLM base URL), at least 4 characters long.

`RedactingFormatter` applies it to the whole formatted record (message, extra fields
and traceback alike), so one formatter on the root handler covers httpx, uvicorn,
gradio and our own loggers. It works on plain text and on JSON lines (escaped quotes).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["SECRET_QUERY_NAMES", "RedactingFormatter", "redact", "secrets_of_url"]

MASK = "***"
SECRET_QUERY_NAMES = (
    "api[_-]?key",
    "apikey",
    "key",
    "access[_-]?key",
    "secret",
    "client[_-]?secret",
    "token",
    "access[_-]?token",
    "refresh[_-]?token",
    "id[_-]?token",
    "auth",
    "password",
    "passwd",
    "pwd",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
_Q = r"(?:\\?[\"'])?"


def _credential(match: re.Match[str]) -> str:
    """``Bearer xyz`` / ``Basic xyz`` masked when xyz looks like a credential (a digit, a
    symbol or an inner capital), so that prose such as "basic settings" stays readable."""
    value = match.group(2)
    looks_random = any(c.isdigit() or c in "._~+/=-" for c in value) or any(c.isupper() for c in value[1:])
    return match.group(1) + MASK if looks_random else match.group(0)  # an optional quote, JSON-escaped or not


_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # scheme://user:password@host and scheme://token@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@\"'<>\\]+@"), r"\1" + MASK + "@"),
    # ?api_key=... &token=... (the value runs to the next separator)
    (
        re.compile(r"(?i)([?&;](?:" + "|".join(SECRET_QUERY_NAMES) + r")=)[^&;#\s\"'<>\\]+"),
        r"\1" + MASK,
    ),
    # Authorization: <scheme> <credential>, as a header line, a dict or JSON
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization" + _Q + r"\s*[:=]\s*" + _Q + r"\s*)"
            r"(?:(bearer|basic|digest|token|negotiate)\s+)?[^\s\"',}\\]+"
        ),
        lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + MASK,
    ),
    (re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=\-]{4,})"), lambda m: _credential(m)),
    (re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/]{4,}={0,2})"), lambda m: _credential(m)),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), MASK),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with credentials replaced by ``***`` (see the module docstring)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def secrets_of_url(url: str) -> list[str]:
    """The credentials a URL carries: its password and the values of query parameters
    with a secret's name (raw and percent-decoded)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    # The user name is masked by the URL pattern, not as a literal: "admin" or "user"
    # would blank out every such word in every log line.
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    names = re.compile(r"(?i)^(?:" + "|".join(SECRET_QUERY_NAMES) + r")$")
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if names.match(name):
            found.append(value)
    for piece in parts.query.split("&"):
        name, _, value = piece.partition("=")
        if value and names.match(unquote(name)):
            found.append(value)
    return found


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then `redact`s the whole line."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record), self.secrets)
