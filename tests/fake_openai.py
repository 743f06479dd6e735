"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol.

Scripted per test: queue `Reply` objects and each ``POST .../chat/completions`` takes the
next one (or `FakeOpenAI.default` when the queue is empty). A reply is rendered as an SSE
stream (``data: {...}\\n\\n`` chunks, then ``data: [DONE]``) when the request asked for
``"stream": true`` and as one JSON completion otherwise. Faults: an HTTP status with an
error body (optionally echoing the request's Authorization header), a Retry-After header,
a delay before the answer, a stall in the middle of a stream, a malformed chunk, an error
event, a stream cut off mid-way (clean EOF, or a broken chunked body).

Every request is recorded (method, path, lower-cased headers, raw and decoded body).

    with FakeOpenAI() as server:
        server.enqueue(Reply.http_error(429, headers={"Retry-After": "0"}), Reply.text("Hello"))
        ... LLMConfig(base_url=server.base_url, ...) ...
        assert server.requests[-1].body["model"] == "deepseek-chat"
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "RecordedRequest", "Reply"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: Any

    @property
    def text(self) -> str:
        return self.raw_body.decode("utf-8", "replace")

    @property
    def system_prompt(self) -> str:
        """The concatenated system messages of a chat request ('' if none)."""
        messages = self.body.get("messages", []) if isinstance(self.body, dict) else []
        return "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")


@dataclass(frozen=True)
class Reply:
    """One scripted answer; build it with the class methods."""

    status: int = 200
    content: tuple[str, ...] = ()
    tool_calls: tuple[tuple[str, str], ...] = ()
    tool_pieces: int = 3
    finish_reason: str | None = None
    error_body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    echo_auth: bool = False
    delay_s: float = 0.0
    stall_after: int | None = None
    stall_s: float = 0.0
    malformed_after: int | None = None
    error_event_after: int | None = None
    cut_after: int | None = None
    chunked: bool = False
    raw_body: bytes | None = None

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def text(cls, text: str | list[str] | tuple[str, ...], **kwargs: Any) -> Reply:
        """A plain answer; a str is split into words so it streams in several chunks."""
        pieces = tuple(text) if not isinstance(text, str) else _split_words(text)
        return cls(content=pieces, **kwargs)

    @classmethod
    def tool_call(
        cls, name: str, arguments: dict[str, Any] | str, *, text: str = "", pieces: int = 3, **kwargs: Any
    ) -> Reply:
        """Optional text, then a streamed call of `name` with `arguments` (a dict is JSON-
        encoded; a str is sent verbatim, so it may be broken JSON) split into `pieces`."""
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        content = _split_words(text) if text else ()
        return cls(content=content, tool_calls=((name, raw),), tool_pieces=pieces, **kwargs)

    @classmethod
    def http_error(
        cls,
        code: int,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        echo_auth: bool = False,
    ) -> Reply:
        """An HTTP error with an OpenAI-style body; `echo_auth` copies the request's
        Authorization header into the message (as careless proxies do)."""
        body = {"error": {"message": message or f"fake error {code}", "type": "fake_error", "code": code}}
        return cls(status=code, error_body=body, headers=tuple((headers or {}).items()), echo_auth=echo_auth)

    @classmethod
    def completion(cls, content: str) -> Reply:
        """A non-streamed answer (also streamable: one chunk)."""
        return cls(content=(content,))

    def delayed(self, seconds: float) -> Reply:
        """This reply, sent after `seconds` of silence (use past the client's timeout)."""
        return replace(self, delay_s=seconds)

    def stalled(self, after_chunks: int, seconds: float) -> Reply:
        """This stream, going silent for `seconds` after `after_chunks` chunks."""
        return replace(self, stall_after=after_chunks, stall_s=seconds)

    def malformed(self, after_chunks: int = 1) -> Reply:
        """This stream with a chunk that is not JSON after `after_chunks` good ones."""
        return replace(self, malformed_after=after_chunks)

    def error_event(self, after_chunks: int = 1) -> Reply:
        """This stream with a ``{"error": ...}`` event after `after_chunks` chunks."""
        return replace(self, error_event_after=after_chunks)

    def cut(self, after_chunks: int = 1, *, chunked: bool = False) -> Reply:
        """This stream, cut off after `after_chunks` chunks: no finish reason, no [DONE].
        ``chunked=True`` breaks the chunked transfer encoding too (the client sees an
        incomplete body instead of a clean end)."""
        return replace(self, cut_after=after_chunks, chunked=chunked)


def _split_words(text: str) -> tuple[str, ...]:
    words = text.split(" ")
    return tuple(w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words))


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def _stream_events(reply: Reply, model: str) -> list[str]:
    events = [_chunk(model, {"role": "assistant", "content": ""})]
    events += [_chunk(model, {"content": piece}) for piece in reply.content]
    for index, (name, raw) in enumerate(reply.tool_calls):
        head = {
            "index": index,
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append(_chunk(model, {"tool_calls": [head]}))
        size = max(1, -(-len(raw) // max(1, reply.tool_pieces)))
        for start in range(0, len(raw), size):
            piece = {"index": index, "function": {"arguments": raw[start : start + size]}}
            events.append(_chunk(model, {"tool_calls": [piece]}))
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    events.append(_chunk(model, {}, finish))
    return events


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.content) or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": raw}}
            for i, (name, raw) in enumerate(reply.tool_calls)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop"),
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._record(b"")
        self._send_json(404, {"error": {"message": "not found", "type": "fake_error"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = self._record(raw)
        if not self.path.partition("?")[0].rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "fake_error"}})
            return
        fake = self.server.fake
        reply = fake.next_reply()
        body = request.body if isinstance(request.body, dict) else {}
        model = str(body.get("model", "fake-model"))
        try:
            if reply.delay_s and fake.stopping.wait(reply.delay_s):
                return
            if reply.status != 200:
                self._send_error(reply, request)
            elif body.get("stream"):
                self._send_stream(reply, model)
            elif reply.raw_body is not None:
                self._send_bytes(200, reply.raw_body, "application/json")
            else:
                self._send_json(200, _completion(reply, model))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- helpers ----------------------------------------------------------------------
    def _record(self, raw: bytes) -> RecordedRequest:
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=raw,
            body=decoded,
        )
        self.server.fake.record(request)
        return request

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def _send_json(self, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_error(self, reply: Reply, request: RecordedRequest) -> None:
        body = json.loads(json.dumps(reply.error_body))
        if reply.echo_auth and isinstance(body, dict) and isinstance(body.get("error"), dict):
            auth = request.headers.get("authorization", "")
            body["error"]["message"] += f" (request had Authorization: {auth}; raw key {auth.split(' ')[-1]})"
        self._send_json(reply.status, body, reply.headers)

    def _send_stream(self, reply: Reply, model: str) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True

        def write(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            if reply.chunked:
                data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
            self.wfile.write(data)
            self.wfile.flush()

        for sent, event in enumerate(_stream_events(reply, model)):
            if sent == reply.cut_after:
                return  # no finish chunk, no [DONE], no chunked terminator
            if sent == reply.malformed_after:
                write('{"id": "chatcmpl-fake", "choices": [ {"delta": ')
            if sent == reply.error_event_after:
                write(json.dumps({"error": {"message": "fake overload in the middle of the stream"}}))
            if sent == reply.stall_after and fake.stopping.wait(reply.stall_s):
                return
            write(event)
        write("[DONE]")
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


@dataclass
class FakeOpenAI:
    """The server; a context manager. `base_url` ends in ``/v1`` like vLLM's and Ollama's."""

    default: Reply = field(default_factory=lambda: Reply.text("OK"))
    requests: list[RecordedRequest] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [
                r for r in self.requests if r.path.partition("?")[0].rstrip("/").endswith("/chat/completions")
            ]
