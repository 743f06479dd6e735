"""The stored form of one image's result of a job (`JobParams`, the job's settings, is a
core type: `seglens.core.types`).

A job's result for one image is stored as a JSON dict (``job_items.result``)::

    {"num_regions": 87, "image_matched": true,
     "missing_keywords": [], "excluded_by": [], "best_scores": {"cat": 0.91},
     "matches": [{"keyword": "cat", "score": 0.91, "cosine": 0.31,
                  "bbox_xyxy": [x0, y0, x1, y1], "area": 1234, "region_indices": [4],
                  "rle": {"size": [h, w], "counts": "..."}}],
     "image": {"width": 640, "height": 480, "pixels_sha256": "..."},
     "cache_hits": {"regions": false, "region_embeddings": false},
     "warnings": ["..."]}

Its query part is `QueryResult.to_dict()`; `result_to_query_result` turns it back into
the core `QueryResult`, and `item_image_record` a whole stored image of a job into the
core `ImageRecord` (exports, the assistant's screen context).
"""

from __future__ import annotations

from typing import Any

from seglens.core.exports import ImageRecord
from seglens.core.query import parse_query
from seglens.core.types import ImageInfo, JobParams, QueryResult
from seglens.storage.records import JobItemRecord, JobRecord, StoredImage

__all__ = ["JobParams", "item_image_record", "result_to_query_result"]


def result_to_query_result(stored: dict[str, Any], query: str, params: JobParams) -> QueryResult:
    """The core `QueryResult` of a stored result (for COCO, CSV and overlay exports)."""
    image = stored.get("image", {})
    return QueryResult.from_dict(
        stored,
        query=parse_query(query),
        params=params.matching,
        image_size_hw=(int(image.get("height", 0)), int(image.get("width", 0))),
    )


def item_image_record(item: JobItemRecord, job: JobRecord, image: StoredImage | None) -> ImageRecord:
    """One image of a job as the core `ImageRecord`: `result` (a `QueryResult`) when the
    image is done, `error` and `error_code` when it failed; an image not processed
    (pending, running, skipped) has no result and the error ``image not processed
    (<status>)``. `timings_ms` are the stored per-stage timings; `file_name` is the name it
    was uploaded under (the image id when the image is gone)."""
    record = ImageRecord(file_name=image.filename if image else item.image_id)
    record.error, record.error_code = item.error, item.error_code
    record.timings_ms = {k: float(v) for k, v in (item.timings_ms or {}).items()}
    if item.status != "done":
        record.error = record.error or f"image not processed ({item.status})"
    if item.result is not None and image is not None:
        record.info = ImageInfo(
            sha256=item.result.get("image", {}).get("pixels_sha256", image.pixels_sha256),
            width=image.width,
            height=image.height,
            format=image.format,
            bytes=image.bytes,
            filename=image.filename,
        )
        record.result = result_to_query_result(item.result, job.query, job.params)
        record.cache_hits = dict(item.result.get("cache_hits", {}))
    return record
