"""Images: upload (one or many files), info, original file, thumbnail.

Upload status codes: **200** when at least one file was accepted, with one entry per file
in request order (``status`` ``created``, ``exists`` or ``rejected``, the latter with an
``error``); when every file is rejected, the error body of the first rejection's status
(400, 413 or 415) with each file's problem in ``error.details``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from seglens.api.deps import ImagesDep, SettingsDep
from seglens.api.errors import UPLOAD_STATUS, ApiError, responses
from seglens.api.schemas import ErrorBody, ImageOut, Page, UploadOut, UploadResultOut
from seglens.api.views import image_out
from seglens.services.errors import InvalidUpload

__all__ = ["router"]

router = APIRouter(tags=["images"])

ImageIdPath = Annotated[str, Path(min_length=1, max_length=128, description="The image id (sha256).")]
_MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
}
_CHUNK = 1024 * 1024


class ImagePage(Page[ImageOut]):
    pass


async def _read_capped(upload: UploadFile, limit: int) -> bytes | None:
    """The file's bytes, or None once it passes `limit` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/images",
    summary="Upload images (multipart field `files`)",
    responses=responses(400, 413, 415, 422),
)
async def create_images(
    request: Request,
    images: ImagesDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(min_length=1, description="One or more image files.")],
) -> UploadOut:
    """Formats are recognised by content (JPEG, PNG, WebP, BMP, TIFF, GIF first frame);
    EXIF orientation is applied; client file names are metadata only. The same bytes
    always get the same id."""
    if len(files) > settings.max_files_per_upload:
        raise ApiError(
            400,
            "too_many_files",
            f"at most {settings.max_files_per_upload} files per upload, got {len(files)}",
        )
    root = request.scope.get("root_path", "")
    results: list[UploadResultOut] = []
    for index, upload in enumerate(files):
        name = upload.filename or "upload"
        try:
            data = await _read_capped(upload, settings.max_upload_bytes)
            if data is None:
                raise InvalidUpload(
                    "too_large",
                    f"{name}: file is larger than the limit of {settings.max_upload_bytes:,} bytes",
                )
            stored = await run_in_threadpool(images.upload, data, upload.filename)
        except InvalidUpload as error:
            body = ErrorBody(code=error.code, message=error.message)
            results.append(UploadResultOut(index=index, filename=name[:255], status="rejected", error=body))
            continue
        finally:
            await upload.close()
        results.append(
            UploadResultOut(
                index=index,
                filename=stored.filename,
                status="created" if stored.created else "exists",
                image=image_out(stored.image, root),
            )
        )
    rejected = [r for r in results if r.error is not None]
    if results and len(rejected) == len(results):
        first = rejected[0].error
        assert first is not None
        details = [
            {"index": r.index, "filename": r.filename, **r.error.model_dump()} for r in rejected if r.error
        ]
        raise ApiError(UPLOAD_STATUS.get(first.code, 400), first.code, first.message, details=details)
    return UploadOut(files=results, accepted=len(results) - len(rejected), rejected=len(rejected))


@router.get("/images", summary="Uploaded images, newest first", responses=responses(422))
def list_images(
    request: Request,
    images: ImagesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ImagePage:
    items, total = images.page(limit=limit, offset=offset)
    root = request.scope.get("root_path", "")
    return ImagePage(items=[image_out(i, root) for i in items], total=total, limit=limit, offset=offset)


@router.get("/images/{image_id}", summary="Image info", responses=responses(404, 422))
def read_image(request: Request, images: ImagesDep, image_id: ImageIdPath) -> ImageOut:
    return image_out(images.get(image_id), request.scope.get("root_path", ""))


@router.get(
    "/images/{image_id}/file",
    summary="The original file, as uploaded",
    response_class=FileResponse,
    responses={
        200: {"content": {t: {} for t in sorted(set(_MEDIA_TYPES.values()))}, "description": "The file"},
        **responses(404, 422),
    },
)
def read_image_file(images: ImagesDep, image_id: ImageIdPath) -> FileResponse:
    image = images.get(image_id)
    return FileResponse(
        images.original_path(image.id),
        media_type=_MEDIA_TYPES.get(image.format, "application/octet-stream"),
        filename=image.filename,
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )


@router.get(
    "/images/{image_id}/thumbnail",
    summary="A JPEG thumbnail (longest side SEGLENS_THUMBNAIL_PX)",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The thumbnail"}, **responses(404, 422)},
)
def read_image_thumbnail(images: ImagesDep, image_id: ImageIdPath) -> FileResponse:
    return FileResponse(
        images.thumbnail_path(image_id),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )


@router.delete(
    "/images/{image_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an image, its file, thumbnail and cached regions and embeddings",
    responses=responses(404, 409, 422),
)
def delete_image(images: ImagesDep, image_id: ImageIdPath) -> Response:
    """An image that a job lists answers 409 ``image_in_use``: delete the job first.
    History entries keep their text but no longer open the image."""
    images.delete(image_id)
    return Response(status_code=204)
