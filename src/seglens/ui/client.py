"""The UI's only way to the back end: the public HTTP API under ``/api/v1``, over httpx.

Every method returns the decoded JSON body (shapes in docs/api.md and ``/docs``) or raises
`ApiError`: ``status`` is the HTTP status (0 when the server could not be reached),
``code`` the API's stable error code (``backend_unavailable`` for connection problems),
``message`` one human sentence, ``retry_after_s`` from ``Retry-After`` when given.
Nothing here knows about Gradio, so the client is usable (and tested) on its own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["API_PREFIX", "ApiClient", "ApiError", "SseEvent", "iter_sse"]

API_PREFIX = "/api/v1"
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
# One line per request at INFO would drown the server's own logs when the UI is mounted.
logging.getLogger("httpx").setLevel(logging.WARNING)
Json = dict[str, Any]


class ApiError(Exception):
    """A failed API call, with the back end's code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        details: list[Json] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.details = details or []

    @property
    def unreachable(self) -> bool:
        return self.code == "backend_unavailable"


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: its name (``message`` when unnamed) and decoded JSON data."""

    event: str
    data: Any


def iter_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Parse ``text/event-stream`` lines into events; comments (heartbeats) are skipped.
    Data that is not JSON comes through as the raw string."""
    name = "message"
    data_lines: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data_lines:
                text = "\n".join(data_lines)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield SseEvent(name, payload)
            name, data_lines = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data_lines.append(value)
    if data_lines:
        text = "\n".join(data_lines)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        yield SseEvent(name, payload)


def _seg(value: object) -> str:
    """`value` as one URL path segment, or a 404 `ApiError` when it is not a plain id
    (letters, digits, ``._-``, not starting with a dot). Ids can come from the browser (a
    table row, a picked conversation); the server decodes ``%2F`` before routing, so
    quoting would not stop one from naming another route: refusing does."""
    text = str(value)
    if not _ID.fullmatch(text):
        raise ApiError(404, "not_found", "no such item")
    return text


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_from(response: httpx.Response) -> ApiError:
    code, message, details = f"http_{response.status_code}", response.reason_phrase or "error", None
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        details = error.get("details")
    except ValueError:
        text = response.text.strip()
        if text:
            message = text[:300]
    return ApiError(
        response.status_code, code, message, retry_after_s=_retry_after(response), details=details
    )


class ApiClient:
    """A synchronous client for one SegLens back end.

    `base_url` is the server root (``http://127.0.0.1:8000``); `token` is sent as a bearer
    token when the server has SEGLENS_API_TOKEN. Thread-safe (one httpx pool)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                0, "backend_timeout", f"the back end at {self.base_url} did not answer in time"
            ) from None
        except httpx.TransportError as error:
            raise ApiError(
                0, "backend_unavailable", f"the back end at {self.base_url} cannot be reached ({error})"
            ) from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code, "bad_response", "the back end sent something that is not JSON"
            ) from None

    def _stream(self, method: str, path: str, **kwargs: Any) -> Iterator[SseEvent]:
        """Events of an SSE response until the server closes it."""
        timeout = httpx.Timeout(5.0, read=None)
        try:
            with self._http.stream(method, path, timeout=timeout, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                yield from iter_sse(response.iter_lines())
        except httpx.TransportError as error:
            raise ApiError(
                0, "backend_unavailable", f"the connection to {self.base_url} broke ({error})"
            ) from None

    # -- health and images -----------------------------------------------------------------
    def health(self) -> Json:
        return self._json("GET", "/health")

    def upload(self, files: Sequence[tuple[str, bytes]]) -> Json:
        """POST /images. When every file is rejected the API answers with an error; this
        turns that into the same shape as a partial success, so callers handle one shape:
        ``{"files": [...], "accepted": n, "rejected": m}``."""
        parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
        try:
            return self._json("POST", "/images", files=parts)
        except ApiError as error:
            if error.details and error.status in (400, 413, 415):
                rejected = [
                    {
                        "index": d.get("index", i),
                        "filename": d.get("filename", ""),
                        "status": "rejected",
                        "image": None,
                        "error": {"code": d.get("code", error.code), "message": d.get("message", "")},
                    }
                    for i, d in enumerate(error.details)
                ]
                return {"files": rejected, "accepted": 0, "rejected": len(rejected)}
            raise

    def image(self, image_id: str) -> Json:
        return self._json("GET", f"/images/{_seg(image_id)}")

    def thumbnail(self, image_id: str) -> bytes:
        return self._send("GET", f"/images/{_seg(image_id)}/thumbnail").content

    def image_file(self, image_id: str) -> bytes:
        return self._send("GET", f"/images/{_seg(image_id)}/file").content

    # -- jobs ----------------------------------------------------------------------------
    def create_job(self, image_ids: Sequence[str], query: str, params: Mapping[str, Any]) -> Json:
        body = {"image_ids": list(image_ids), "query": query, "params": dict(params)}
        return self._json("POST", "/jobs", json=body)

    def job(self, job_id: str) -> Json:
        return self._json("GET", f"/jobs/{_seg(job_id)}")

    def jobs(self, *, limit: int = 50, status: str | None = None) -> Json:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._json("GET", "/jobs", params=params)

    def cancel_job(self, job_id: str) -> Json:
        return self._json("POST", f"/jobs/{_seg(job_id)}/cancel")

    def resume_job(self, job_id: str) -> Json:
        return self._json("POST", f"/jobs/{_seg(job_id)}/resume")

    def delete_image(self, image_id: str) -> None:
        self._send("DELETE", f"/images/{_seg(image_id)}")

    def delete_job(self, job_id: str) -> None:
        self._send("DELETE", f"/jobs/{_seg(job_id)}")

    def job_events(self, job_id: str) -> Iterator[SseEvent]:
        """``progress`` events with the job, then ``end`` once it is finished."""
        return self._stream("GET", f"/jobs/{_seg(job_id)}/events")

    def results(self, job_id: str, *, status: str | None = None, limit: int = 1000, offset: int = 0) -> Json:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._json("GET", f"/jobs/{_seg(job_id)}/results", params=params)

    def image_log(self, job_id: str, image_id: str) -> Json:
        return self._json("GET", f"/jobs/{_seg(job_id)}/images/{_seg(image_id)}/log")

    def stats(self, job_id: str) -> Json:
        return self._json("GET", f"/jobs/{_seg(job_id)}/stats")

    def export(
        self, job_id: str, fmt: str, *, query: str | None = None, **settings: Any
    ) -> tuple[str, bytes]:
        """(file name, bytes) of ``coco``, ``csv``, ``masks`` or ``overlays`` for `query`
        and `settings` (``threshold``, ``merge_threshold``, ``mode``, ``merge_strategy``,
        ``alpha``); None means the job's own."""
        params = _drop_none({"format": fmt, "query": query or None, **settings})
        response = self._send("GET", f"/jobs/{_seg(job_id)}/export", params=params)
        return _filename(response, f"seglens-{job_id[:8]}-{fmt}"), response.content

    # -- interactive ---------------------------------------------------------------------
    def query(self, image_id: str, query: str, **params: Any) -> Json:
        body = {"image_id": image_id, "query": query, **{k: v for k, v in params.items() if v is not None}}
        return self._json("POST", "/query", json=body)

    def prompt(
        self, image_id: str, points: Sequence[Sequence[float]], boxes: Sequence[Sequence[float]] = ()
    ) -> Json:
        body = {"points": [list(p) for p in points], "boxes": [list(b) for b in boxes]}
        return self._json("POST", f"/images/{_seg(image_id)}/prompt", json=body)

    def regions(
        self,
        image_id: str,
        *,
        query: str | None = None,
        masks: bool = True,
        max_side_px: int = 1024,
        points_per_side: int | None = None,
    ) -> Json:
        """``GET /images/{id}/regions``: the client-side viewer's data."""
        params = _drop_none(
            {
                "query": query or None,
                "masks": "true" if masks else "false",
                "max_side_px": max_side_px,
                "points_per_side": points_per_side,
            }
        )
        return self._json("GET", f"/images/{image_id}/regions", params=params)

    def search(self, query: str, *, limit: int = 50, threshold: float = 0.0) -> Json:
        params = {"query": query, "limit": limit, "threshold": threshold}
        return self._json("GET", "/search", params=params)

    # -- history -------------------------------------------------------------------------
    def history(
        self, *, keyword: str | None = None, kind: str | None = None, limit: int = 200, offset: int = 0
    ) -> Json:
        params = _drop_none(
            {"keyword": keyword or None, "kind": kind or None, "limit": limit, "offset": offset}
        )
        return self._json("GET", "/history", params=params)

    def history_csv(self, *, keyword: str | None = None, kind: str | None = None) -> bytes:
        params = _drop_none({"keyword": keyword or None, "kind": kind or None})
        return self._send("GET", "/history/export", params=params).content

    def clear_history(self, *, keyword: str | None = None, kind: str | None = None) -> Json:
        params = _drop_none({"keyword": keyword or None, "kind": kind or None})
        return self._json("DELETE", "/history", params=params)

    # -- assistant -----------------------------------------------------------------------
    def assistant_status(self) -> Json:
        return self._json("GET", "/assistant/status")

    def assistant_chat(
        self,
        message: str,
        *,
        conversation_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        lang: str | None = None,
    ) -> Iterator[SseEvent]:
        """``conversation``, then ``text`` deltas, ``suggestion``s, maybe ``error``, then ``done``;
        the offline advisor answers in `lang` (``en``, ``zh``)."""
        body: Json = {"message": message}
        if lang in ("en", "zh"):
            body["lang"] = lang
        if conversation_id:
            body["conversation_id"] = conversation_id
        if context:
            body["context"] = dict(context)
        return self._stream("POST", "/assistant/chat", json=body)

    def advice(self, **params: Any) -> Json:
        return self._json("GET", "/assistant/advice", params=_drop_none(params))

    def translate(self, keywords: Sequence[str]) -> Json:
        return self._json("POST", "/assistant/translate", json={"keywords": list(keywords)})

    def conversations(self, *, limit: int = 50, offset: int = 0) -> Json:
        params = {"limit": limit, "offset": offset}
        return self._json("GET", "/assistant/conversations", params=params)

    def conversation(self, conversation_id: str) -> Json:
        return self._json("GET", f"/assistant/conversations/{_seg(conversation_id)}")

    def delete_conversation(self, conversation_id: str) -> None:
        self._send("DELETE", f"/assistant/conversations/{_seg(conversation_id)}")

    def clear_conversations(self) -> None:
        self._send("DELETE", "/assistant/conversations")

    def export_conversation(self, conversation_id: str, fmt: str = "md") -> tuple[str, bytes]:
        response = self._send(
            "GET", f"/assistant/conversations/{_seg(conversation_id)}/export", params={"format": fmt}
        )
        return _filename(response, f"conversation-{conversation_id[:8]}.{fmt}"), response.content


def _drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _filename(response: httpx.Response, default: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    marker = 'filename="'
    if marker in disposition:
        name = disposition.split(marker, 1)[1].split('"', 1)[0]
        if name and "/" not in name and "\\" not in name:
            return name
    return default
