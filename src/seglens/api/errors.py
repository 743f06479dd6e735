"""Every error is JSON: ``{"error": {"code": "...", "message": "...", "details": [...]}}``.

`code` is stable and machine-readable; `message` is one human sentence. Service errors
map to HTTP statuses here and nowhere else.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from seglens.api.schemas import ErrorResponse
from seglens.services.errors import (
    Busy,
    Conflict,
    InvalidInput,
    InvalidUpload,
    ModelsUnavailable,
    NotFound,
    QueueFull,
    ServiceError,
)

__all__ = ["UPLOAD_STATUS", "ApiError", "error_response", "install_error_handlers", "responses"]

log = logging.getLogger("seglens.api")

# Why an upload was refused → status: 413 too big, 415 not a supported image, 400 broken.
UPLOAD_STATUS = {
    "too_large": 413,
    "too_many_pixels": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
    "empty_file": 400,
    "corrupt_image": 400,
    "invalid_image": 400,
    "invalid_filename": 400,
    "too_many_files": 400,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP error raised by the API layer itself (auth, request size, bad form data)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _service_status(error: ServiceError) -> tuple[int, dict[str, str] | None]:
    if isinstance(error, NotFound):
        return 404, None
    if isinstance(error, InvalidUpload):
        return UPLOAD_STATUS.get(error.code, 400), None
    if isinstance(error, InvalidInput):
        return 422, None
    if isinstance(error, Conflict):
        return 409, None
    if isinstance(error, QueueFull | Busy):
        return 429, {"Retry-After": str(error.retry_after_s)}
    if isinstance(error, ModelsUnavailable):
        headers = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s else None
        return 503, headers
    return 400, None


def _validation_message(errors: list[dict[str, Any]]) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid value')}{more}"


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(m.upper() for m in operations)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(_request: Request, error: ServiceError) -> JSONResponse:
        status, headers = _service_status(error)
        return error_response(status, error.code, error.message, headers=headers)

    @app.exception_handler(ApiError)
    async def _api(_request: Request, error: ApiError) -> JSONResponse:
        return error_response(
            error.status, error.code, error.message, headers=error.headers, details=error.details
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in error.errors()
        ]
        return error_response(422, "validation_error", _validation_message(problems), details=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
        headers = getattr(error, "headers", None)
        if error.status_code == 405:
            # Starlette names only the first route matching the path; list every method.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request.app, request.url.path))}
        return error_response(error.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "the server failed to handle the request; see its log")


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries documenting the error body for `statuses`."""
    descriptions = {
        400: "Bad request",
        401: "Missing or wrong bearer token",
        404: "Unknown id",
        409: "Not possible in the resource's current state",
        413: "Too large",
        415: "Not a supported image",
        422: "Invalid parameters",
        429: "Queue full or too many requests; see Retry-After",
        503: "Models loading (see Retry-After) or unavailable",
    }
    return {s: {"model": ErrorResponse, "description": descriptions.get(s, "Error")} for s in statuses}
