"""A chat-completions client for any OpenAI-compatible server, on the official `openai` SDK.

`LLMClient.stream_chat` yields `TextChunk`s as the answer streams in, then the finished
`ToolCall`s, then one `StreamEnd`; `LLMClient.complete` returns a whole (non-streamed)
answer. Every failure is an `LLMError` subclass with a stable code and a scrubbed message
(see `seglens.llm.errors`).

Retries are ours, not the SDK's (the SDK runs with ``max_retries=0``): a 429 or 5xx while
opening a request is retried up to `LLMConfig.max_retries` times with exponential back-off
``base * 2**n`` capped at `retry_max_delay_s`, and a Retry-After (or retry-after-ms) header
is honoured; one longer than `retry_max_delay_s` ends the retries at once. Timeouts and
refused connections are not retried, so an unreachable server falls back quickly. Once an
answer has started streaming nothing is retried (the user has already seen part of it).
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from seglens.llm.config import LLMConfig
from seglens.llm.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMError,
    LLMNotConfiguredError,
    LLMRateLimitedError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    LLMUnreachableError,
    scrub,
)

if TYPE_CHECKING:
    import openai

__all__ = ["LLMClient", "LLMMessage", "StreamEnd", "StreamItem", "TextChunk", "ToolCall", "ToolSpec"]

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
# Sent instead of no key, so the SDK never falls back to OPENAI_API_KEY from the
# environment (which belongs to another service) and keyless local servers still work.
_NO_KEY = "no-key"


@dataclass(frozen=True)
class LLMMessage:
    """One chat message sent to the model."""

    role: Role
    content: str


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: `parameters` is a JSON schema object."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True)
class TextChunk:
    """A piece of the answer's text, in order."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call. `arguments` is the decoded JSON object, or None when the model
    sent something that is not a JSON object (then `error` says why); `raw_arguments` is
    the text as received."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    error: str | None = None


@dataclass(frozen=True)
class StreamEnd:
    """The answer is complete; `finish_reason` as the server gave it (``stop``,
    ``tool_calls``, ``length``...)."""

    finish_reason: str


StreamItem = TextChunk | ToolCall | StreamEnd


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)

    def build(self, index: int, secrets: Sequence[str] = ()) -> ToolCall:
        raw = "".join(self.pieces)
        for secret in secrets:
            if len(secret) >= 4:
                raw = raw.replace(secret, "***")
        arguments: dict[str, Any] | None = None
        error: str | None = None
        try:
            decoded = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            error = f"arguments are not valid JSON ({exc.msg} at character {exc.pos})"
        else:
            if isinstance(decoded, dict):
                arguments = decoded
            else:
                error = "arguments are not a JSON object"
        return ToolCall(self.id or f"call_{index}", self.name, arguments, raw, error)


def _split_base_url(url: str, *, keyed: bool) -> tuple[str, dict[str, str], dict[str, str]]:
    """The SDK's base URL without user-info or query string, the query as default query
    parameters (sent on every request, after the path), and the headers to add.

    The SDK appends ``chat/completions`` to the base URL's text, so a query string in it
    ended up before the path (``...?api_key=KEYchat/completions``); and httpx turned
    user-info into a Basic Authorization header that replaced the Bearer key. Now the
    API key, when one is set, is always the credential (``Bearer``); user-info is sent as
    HTTP Basic only when no key is set (a proxy that wants a password)."""
    parts = urlsplit(url)
    headers: dict[str, str] = {}
    if (parts.username or parts.password) and not keyed:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), query, headers


def _retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asks us to wait (retry-after-ms, retry-after seconds or date)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _server_message(body: object) -> str:
    """The human part of an error body (``{"message": ...}`` or ``{"error": {...}}``)."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            if isinstance(message, str):
                return message
        elif isinstance(inner, str):
            return inner
        message = body.get("message")
        if isinstance(message, str):
            return message
        return json.dumps(body)[:300]
    return str(body) if body is not None else ""


class _StreamScrubber:
    """Replaces the secrets in streamed text even when one is split across chunks: the end
    of the text that could be the start of a secret waits for the next chunk."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = [s for s in secrets if len(s) >= 4]
        self.buffer = ""

    def feed(self, text: str) -> str:
        if not self.secrets:
            return text
        self.buffer += text
        for secret in self.secrets:
            self.buffer = self.buffer.replace(secret, "***")
        hold = 0
        for secret in self.secrets:
            for size in range(min(len(secret) - 1, len(self.buffer)), hold, -1):
                if self.buffer.endswith(secret[:size]):
                    hold = size
                    break
        cut = len(self.buffer) - hold
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class LLMClient:
    """Talks to one OpenAI-compatible server. Thread-safe; create once and share.

    Constructing it needs no network and no `openai` import; the SDK client is built on
    first use. Calls on a client whose config is not `configured` raise
    `LLMNotConfiguredError`.
    """

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._sdk: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LLMClient(base_url={self.config.display_url!r}, model={self.config.model!r})"

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections; the client can still be used afterwards."""
        with self._lock:
            sdk, self._sdk = self._sdk, None
        if sdk is not None:
            sdk.close()

    # -- public calls -----------------------------------------------------------------
    def stream_chat(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Generator[StreamItem, None, None]:
        """Stream one answer: `TextChunk`s, then every `ToolCall`, then one `StreamEnd`.

        Raises (while iterating) an `LLMError`: `LLMAuthError`, `LLMTimeoutError`,
        `LLMUnreachableError`, `LLMRateLimitedError`, `LLMServerError`, `LLMStreamError`
        (malformed chunk, or the stream ended without a finish reason),
        `LLMBadRequestError`, `LLMNotConfiguredError`. Closing the iterator early closes
        the HTTP response.
        """
        request = self._request(messages, tools=tools, temperature=temperature, max_tokens=max_tokens)
        stream = self._open(dict(request, stream=True))
        yield from self._iterate(stream)

    def complete(
        self,
        messages: Sequence[LLMMessage],
        *,
        json_mode: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """One whole answer's text. `json_mode` asks for a JSON object
        (``response_format={"type": "json_object"}``); the caller still validates it.
        Raises the same `LLMError`s as `stream_chat`."""
        request = self._request(messages, tools=(), temperature=temperature, max_tokens=max_tokens)
        if json_mode:
            request["response_format"] = {"type": "json_object"}
        completion = self._open(request)
        failure: LLMError | None = None
        try:
            content = completion.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            failure = LLMStreamError("The LLM server's answer was malformed.", detail="no choices[0].message")
            content = None
        if failure is not None:
            raise failure
        if not isinstance(content, str):
            return ""
        scrubber = _StreamScrubber(self.config.secrets())
        return scrubber.feed(content) + scrubber.flush()

    # -- internals --------------------------------------------------------------------
    def _request(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[ToolSpec],
        temperature: float | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        if not self.config.configured:
            raise LLMNotConfiguredError(f"The AI assistant is off: {self.config.off_reason}.")
        if not messages:
            raise ValueError("messages must not be empty")
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if tools:
            request["tools"] = [tool.to_openai() for tool in tools]
        if temperature is not None:
            request["temperature"] = temperature
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        return request

    def _client(self) -> openai.OpenAI:
        with self._lock:
            if self._sdk is None:
                try:
                    import openai
                except ImportError:
                    raise LLMNotConfiguredError(
                        "The AI assistant is off: the openai package is not installed "
                        "(pip install 'seglens[server]')."
                    ) from None
                cfg = self.config
                key = cfg.api_key.get_secret_value() if cfg.api_key is not None else _NO_KEY
                base_url, query, headers = _split_base_url(cfg.base_url, keyed=cfg.api_key is not None)
                self._sdk = openai.OpenAI(
                    api_key=key,
                    base_url=base_url,
                    default_query=query or None,
                    default_headers=headers or None,
                    timeout=openai.Timeout(cfg.timeout_s, connect=min(cfg.connect_timeout_s, cfg.timeout_s)),
                    max_retries=0,
                )
            return self._sdk

    def _open(self, request: dict[str, Any]) -> Any:
        """Send `request`, retrying 429 and 5xx; returns the SDK's Stream or completion."""
        import openai

        cfg = self.config
        attempt = 0
        while True:
            started = time.perf_counter()
            log.info("LLM request to %s (model %s, attempt %d)", cfg.display_url, cfg.model, attempt + 1)
            retry_after: float | None = None
            retry = False
            try:
                return self._client().chat.completions.create(**request)
            except openai.APIStatusError as exc:
                status = exc.status_code
                retry = status == 429 or status >= 500
                retry_after = _retry_after_s(exc.response.headers)
                failure = self._status_error(status, exc.body, retries=attempt)
            except openai.APITimeoutError:
                failure = self._timeout_error()
            except openai.APIConnectionError:
                failure = LLMUnreachableError(
                    f"Cannot reach the LLM server at {cfg.display_url}. Check SEGLENS_LLM_BASE_URL "
                    "and that the server is running."
                )
            except (openai.APIError, ValueError) as exc:
                # A 200 whose body is not a completion, or an SDK-side refusal.
                failure = LLMStreamError(
                    "The LLM server's answer was malformed.",
                    detail=scrub(f"{type(exc).__name__}: {exc}", cfg.secrets()),
                )
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.warning("LLM request failed after %.0f ms: %s (%s)", elapsed_ms, failure.code, failure.detail)
            if retry and attempt < cfg.max_retries:
                delay = min(cfg.retry_max_delay_s, cfg.retry_base_delay_s * 2**attempt)
                if retry_after is not None:
                    if retry_after > cfg.retry_max_delay_s:
                        raise self._status_error(
                            failure.status or 429, None, retries=attempt, wait_s=retry_after
                        )
                    delay = max(delay, retry_after)
                log.info("LLM retry %d of %d in %.2f s", attempt + 1, cfg.max_retries, delay)
                self._sleep(delay)
                attempt += 1
                continue
            raise failure

    def _timeout_error(self, *, mid_stream: bool = False) -> LLMTimeoutError:
        what = "stopped sending its answer for more than" if mid_stream else "did not answer within"
        return LLMTimeoutError(
            f"The LLM server at {self.config.display_url} {what} {self.config.timeout_s:g} s. "
            "Try again, or raise SEGLENS_LLM_TIMEOUT_S."
        )

    def _status_error(
        self, status: int, body: object, *, retries: int, wait_s: float | None = None
    ) -> LLMError:
        cfg = self.config
        detail = scrub(_server_message(body), cfg.secrets())[:200]
        tries = f"after {retries} {'retry' if retries == 1 else 'retries'}" if retries else "at once"
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "refused access with this API key"
            return LLMAuthError(
                f"The LLM server {what} (HTTP {status}). Check SEGLENS_LLM_API_KEY (or DEEPSEEK_API_KEY) "
                f"and that the key may use model {cfg.model!r}.",
                status=status,
                detail=detail,
            )
        if status == 429:
            wait = f", and asks to wait {wait_s:.0f} s" if wait_s is not None else f", still {tries}"
            return LLMRateLimitedError(
                f"The LLM server is rate-limiting requests (HTTP 429){wait}. Wait a minute and try again.",
                status=status,
                detail=detail,
            )
        if status >= 500:
            return LLMServerError(
                f"The LLM server failed (HTTP {status}) {tries}. Try again later.",
                status=status,
                detail=detail,
            )
        if status == 404:
            return LLMBadRequestError(
                f"The LLM server answered HTTP 404: check SEGLENS_LLM_MODEL ({cfg.model!r}) and "
                f"SEGLENS_LLM_BASE_URL ({cfg.display_url}; OpenAI-compatible servers often end in /v1).",
                status=status,
                detail=detail,
            )
        said = f": {detail}" if detail else ""
        return LLMBadRequestError(
            f"The LLM server refused the request (HTTP {status}){said}", status=status, detail=detail
        )

    def _iterate(self, stream: Any) -> Iterator[StreamItem]:
        import openai

        secrets = self.config.secrets()
        # A server (or a proxy) that echoes the request must not put the key on screen.
        text_filter = _StreamScrubber(secrets)
        calls: dict[int, _PartialCall] = {}
        finish: str | None = None
        failure: LLMError | None = None
        try:
            for chunk in stream:
                for choice in getattr(chunk, "choices", None) or ():
                    if (getattr(choice, "index", 0) or 0) != 0:
                        continue
                    delta = getattr(choice, "delta", None)
                    content = getattr(delta, "content", None)
                    if isinstance(content, str) and content:
                        visible = text_filter.feed(content)
                        if visible:
                            yield TextChunk(visible)
                    for piece in getattr(delta, "tool_calls", None) or ():
                        partial = calls.setdefault(int(getattr(piece, "index", 0) or 0), _PartialCall())
                        partial.id = partial.id or (getattr(piece, "id", None) or "")
                        function = getattr(piece, "function", None)
                        name = getattr(function, "name", None)
                        if isinstance(name, str) and name and not partial.name:
                            partial.name = name
                        arguments = getattr(function, "arguments", None)
                        if isinstance(arguments, str):
                            partial.pieces.append(arguments)
                    reason = getattr(choice, "finish_reason", None)
                    if isinstance(reason, str) and reason:
                        finish = reason
        except openai.APITimeoutError:
            failure = self._timeout_error(mid_stream=True)
        except openai.APIConnectionError as exc:
            failure = LLMStreamError(
                "The LLM server's answer stream broke off before the end. Try again.",
                detail=scrub(f"{type(exc).__name__}: {exc}", secrets),
            )
        except openai.APIError as exc:
            failure = LLMServerError(
                "The LLM server reported an error in the middle of its answer. Try again later.",
                detail=scrub(_server_message(exc.body) or exc.message, secrets),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            failure = LLMStreamError(
                "The LLM server sent a malformed answer stream (a chunk that is not valid JSON).",
                detail=scrub(f"{type(exc).__name__}: {exc}", secrets),
            )
        finally:
            stream.close()
        if failure is None and finish is None:
            failure = LLMStreamError(
                "The LLM server's answer stream ended before the answer was complete. Try again.",
                detail="no finish_reason before the end of the stream",
            )
        rest = text_filter.flush()
        if rest:
            yield TextChunk(rest)
        if failure is not None:
            log.warning("LLM stream failed: %s (%s)", failure.code, failure.detail)
            raise failure
        for index in sorted(calls):
            yield calls[index].build(index, secrets)
        yield StreamEnd(finish or "stop")
