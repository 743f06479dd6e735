"""The HTTP/1.1 connection: uvicorn's h11 protocol with clear answers to oversized heads.

uvicorn's h11 parser gives up once a request's head (request line plus headers) passes
`MAX_HEAD_BYTES` without ending, answers a bare 400 and closes the socket while the
client is still sending, so the client usually sees "connection reset" instead of any
answer. Here the answer is 414 (URI Too Long) when the request line alone is that long,
431 (Request Header Fields Too Large) otherwise, with a short JSON error like every other;
and the connection reads and drops what the client still sends for up to `LINGER_S`
seconds before it closes ("lingering close"), so that the answer is read, not reset.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["LINGER_S", "MAX_HEAD_BYTES", "SegLensH11Protocol"]

MAX_HEAD_BYTES = 16 * 1024  # h11's default limit; a 2 MB URL never reaches the app
LINGER_S = 2.0

log = logging.getLogger("seglens.access")


def _body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class SegLensH11Protocol(H11Protocol):
    """`H11Protocol` answering 414/431 to a head over `MAX_HEAD_BYTES`, then lingering."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lingering = False

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the answer is out; what the client still sends is dropped
        super().data_received(data)

    def handle_events(self) -> None:
        if self.conn.their_state is not h11.IDLE:  # a body, or a connection being closed
            super().handle_events()
            return
        try:
            pending, _ = self.conn.trailing_data
        except Exception:  # an h11 without trailing_data: keep uvicorn's behaviour
            super().handle_events()
            return
        if len(pending) > MAX_HEAD_BYTES:
            # h11 limits only a head still incomplete; one that arrives whole in a single
            # read could be any size. The same limit for both.
            end = pending.find(b"\r\n\r\n")
            end = pending.find(b"\n\n") if end < 0 else end
            if end < 0 or end > MAX_HEAD_BYTES:
                self._refuse_head(pending)
                return
        super().handle_events()

    def _refuse_head(self, pending: bytes) -> None:
        line_end = pending.find(b"\n")
        if 0 <= line_end <= MAX_HEAD_BYTES:
            status, reason, code = 431, b"Request Header Fields Too Large", "headers_too_large"
            message = f"the request's headers are longer than the limit of {MAX_HEAD_BYTES:,} bytes"
        else:
            status, reason, code = 414, b"URI Too Long", "uri_too_long"
            message = (
                f"the request line (method, path and query string) is longer than the limit of "
                f"{MAX_HEAD_BYTES:,} bytes; send long input in a request body"
            )
        body = _body(code, message)
        head = (
            f"HTTP/1.1 {status} ".encode()
            + reason
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
        )
        log.info("request", extra={"fields": {"method": None, "path": None, "status": status}})
        self._lingering = True
        self._unset_keepalive_if_required()
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
