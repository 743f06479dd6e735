"""Result documents: COCO instance segmentation JSON and flat CSV rows.

COCO: one image entry per processed image, keywords as categories (ids from 1 in query
order), one annotation per match with ``segmentation`` as compressed RLE, ``bbox`` as
``[x, y, w, h]``, ``area``, ``score`` and ``iscrowd: 0``; run parameters and model ids go
under ``info``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from seglens.core.types import ImageInfo, QueryResult

__all__ = ["CSV_COLUMNS", "ImageRecord", "coco_document", "csv_text", "match_rows", "report_entry"]


@dataclass
class ImageRecord:
    """One processed (or failed) image of a run."""

    file_name: str
    info: ImageInfo | None = None
    result: QueryResult | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    cache_hits: dict[str, bool] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None


def coco_document(
    records: Sequence[ImageRecord], keywords: Sequence[str], info: dict[str, Any]
) -> dict[str, Any]:
    """A COCO instance-segmentation dict for the records that succeeded."""
    categories = [{"id": i + 1, "name": kw, "supercategory": "keyword"} for i, kw in enumerate(keywords)]
    category_ids = {kw: i + 1 for i, kw in enumerate(keywords)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for record in records:
        if record.info is None or record.result is None:
            continue
        image_id = len(images) + 1
        images.append(
            {
                "id": image_id,
                "file_name": record.file_name,
                "width": record.info.width,
                "height": record.info.height,
                "sha256": record.info.sha256,
                "matched": record.result.image_matched,
            }
        )
        for match in record.result.matches:
            x0, y0, x1, y1 = match.bbox_xyxy
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_ids[match.keyword],
                    "segmentation": {
                        "size": list(match.rle["size"]),
                        "counts": match.rle["counts"],
                    },
                    "area": int(match.area),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": 0,
                    "score": round(float(match.score), 6),
                    "cosine": round(float(match.cosine), 6),
                }
            )
    full_info = {
        "description": "SegLens keyword segmentation",
        "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **info,
    }
    return {
        "info": full_info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def report_entry(record: ImageRecord) -> dict[str, Any]:
    """The per-image entry of ``report.json`` (and the level-1 log)."""
    entry: dict[str, Any] = {"file": record.file_name}
    if record.info is not None:
        entry.update(
            sha256=record.info.sha256,
            width=record.info.width,
            height=record.info.height,
            format=record.info.format,
            bytes=record.info.bytes,
        )
    if record.result is not None:
        result = record.result
        entry.update(
            regions=result.num_regions,
            matched=result.image_matched,
            missing_keywords=list(result.missing_keywords),
            excluded_by=list(result.excluded_by),
            best_scores={k: round(v, 6) for k, v in result.best_scores.items()},
            matches=[
                {
                    "keyword": m.keyword,
                    "score": round(m.score, 6),
                    "cosine": round(m.cosine, 6),
                    "bbox_xyxy": [round(v, 2) for v in m.bbox_xyxy],
                    "area": m.area,
                    "regions": list(m.region_indices),
                }
                for m in result.matches
            ],
        )
    entry["timings_ms"] = {k: round(v, 2) for k, v in record.timings_ms.items()}
    entry["cache_hits"] = dict(record.cache_hits)
    entry["error"] = record.error
    if record.error_code:
        entry["error_code"] = record.error_code
    return entry


CSV_COLUMNS = (
    "file",
    "sha256",
    "width",
    "height",
    "regions",
    "image_matched",
    "keyword",
    "score",
    "cosine",
    "x0",
    "y0",
    "x1",
    "y1",
    "area",
    "total_ms",
    "error",
)


def match_rows(records: Iterable[ImageRecord]) -> list[dict[str, Any]]:
    """One row per match; an image without matches (or with an error) gets one row with
    empty match columns, so every image appears."""
    rows: list[dict[str, Any]] = []
    for record in records:
        base: dict[str, Any] = {c: "" for c in CSV_COLUMNS}
        base["file"] = record.file_name
        base["error"] = record.error or ""
        base["total_ms"] = round(record.timings_ms.get("total", 0.0), 2) if record.timings_ms else ""
        if record.info is not None:
            base.update(sha256=record.info.sha256, width=record.info.width, height=record.info.height)
        if record.result is None or not record.result.matches:
            if record.result is not None:
                base.update(regions=record.result.num_regions, image_matched=record.result.image_matched)
            rows.append(base)
            continue
        for match in record.result.matches:
            row = dict(base)
            x0, y0, x1, y1 = match.bbox_xyxy
            row.update(
                regions=record.result.num_regions,
                image_matched=record.result.image_matched,
                keyword=match.keyword,
                score=round(match.score, 6),
                cosine=round(match.cosine, 6),
                x0=x0,
                y0=y0,
                x1=x1,
                y1=y1,
                area=match.area,
            )
            rows.append(row)
    return rows


def csv_text(rows: Iterable[dict[str, Any]], columns: Sequence[str] = CSV_COLUMNS) -> str:
    """`rows` as CSV text with a header line: one column per name of `columns`, in that order;
    keys of a row not in `columns` are ignored, missing ones left empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()
