"""Run a query over many image files and write the result files (CLI ``segment``).

Output directory layout::

    overlays/<stem>.png          highlighted matches
    cutouts/<stem>/<n>-<kw>.png  transparent cut-outs (optional)
    annotations.coco.json        COCO instance segmentation, RLE masks, scores
    report.json                  per image: size, regions, matches, timings, cache hits
    report.csv                   one row per match
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seglens._version import __version__
from seglens.core.exports import ImageRecord, coco_document, csv_text, match_rows, report_entry
from seglens.core.images import ImageError
from seglens.core.query import parse_query
from seglens.core.types import DEFAULT_ALPHA, GenerationParams, QueryParams, check_alpha
from seglens.services.segment.pipeline import TINY_BANNER, Pipeline

__all__ = [
    "IMAGE_SUFFIXES",
    "RunSummary",
    "collect_inputs",
    "cutout_file_name",
    "output_stems",
    "run_info",
    "run_query_over_files",
    "write_outputs",
]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class RunSummary:
    records: list[ImageRecord] = field(default_factory=list)
    out_dir: Path | None = None
    elapsed_ms: float = 0.0

    @property
    def failed(self) -> list[ImageRecord]:
        return [r for r in self.records if r.error]


def collect_inputs(arguments: Sequence[str | Path]) -> list[Path]:
    """Expand directories (recursively, image suffixes only) and keep explicit files as
    given, whatever their suffix: content decides whether they are images."""
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            files.append(path)
    return files


def cutout_file_name(n: int, keyword: str) -> str:
    """``<n>-<keyword>.png``: the file name of an image's n-th cut-out (from 1)."""
    safe = re.sub(r"[^\w-]+", "_", keyword)[:40]
    return f"{n:03d}-{safe}.png"


def output_stems(paths: Iterable[Path]) -> list[str]:
    """The overlay file stem of each input, in order: the same list `run_query_over_files`
    uses, so a batch writes the same files as ``seglens segment``."""
    used: set[str] = set()
    return [_unique_stem(path, used) for path in paths]


def _unique_stem(path: Path, used: set[str]) -> str:
    stem = re.sub(r"[^\w.-]+", "_", path.stem)[:100] or "image"
    candidate, n = stem, 2
    while candidate in used:
        candidate, n = f"{stem}-{n}", n + 1
    used.add(candidate)
    return candidate


def run_query_over_files(
    pipeline: Pipeline,
    files: Iterable[Path],
    query: str,
    params: QueryParams,
    out_dir: Path,
    *,
    alpha: float = DEFAULT_ALPHA,
    generation: GenerationParams | None = None,
    cutouts: bool = False,
    on_progress: Callable[[ImageRecord], None] | None = None,
) -> RunSummary:
    """Segment and query each file; a bad file is recorded with its error and the run goes on."""
    parsed = parse_query(query)
    check_alpha(alpha)
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "overlays").mkdir(exist_ok=True)
    summary = RunSummary(out_dir=out_dir)
    used: set[str] = set()
    for path in files:
        stem = _unique_stem(path, used)
        record = ImageRecord(file_name=str(path))
        try:
            segmentation = pipeline.segment(pipeline.load(path), generation)
            result = pipeline.match(segmentation, parsed, params)
            tick = time.perf_counter()
            overlay = pipeline.render(segmentation, result, alpha=alpha)
            overlay.save(out_dir / "overlays" / f"{stem}.png")
            if cutouts and result.matches:
                folder = out_dir / "cutouts" / stem
                folder.mkdir(parents=True, exist_ok=True)
                for n, (match, image) in enumerate(pipeline.cutouts(segmentation, result), start=1):
                    image.save(folder / cutout_file_name(n, match.keyword))
            timings = dict(segmentation.timings_ms)
            timings["match"] = result.elapsed_ms
            timings["render"] = (time.perf_counter() - tick) * 1000
            timings["total"] = timings.get("total", 0.0) + timings["match"] + timings["render"]
            record.info = segmentation.image
            record.result = result
            record.timings_ms = timings
            record.cache_hits = segmentation.cache_hits
        except ImageError as error:
            record.error, record.error_code = str(error), error.code
        except (ValueError, RuntimeError, MemoryError) as error:
            record.error, record.error_code = (
                f"{path}: {type(error).__name__}: {error}",
                "processing_failed",
            )
        summary.records.append(record)
        if on_progress:
            on_progress(record)
    summary.elapsed_ms = (time.perf_counter() - started) * 1000
    _write_outputs(
        pipeline, summary, parsed.keywords, query, params, alpha, generation or pipeline.generation
    )
    return summary


def _write_outputs(
    pipeline: Pipeline,
    summary: RunSummary,
    keywords: Sequence[str],
    query: str,
    params: QueryParams,
    alpha: float,
    generation: GenerationParams,
) -> None:
    info = run_info(
        profile=pipeline.profile,
        models=pipeline.model_ids(),
        meaningless=pipeline.meaningless,
        query=query,
        params=params,
        alpha=alpha,
        generation=generation,
    )
    info["backend"] = pipeline.backend
    write_outputs(summary, keywords, info)


def run_info(
    *,
    profile: str | None,
    models: dict[str, str],
    meaningless: bool,
    query: str,
    params: QueryParams,
    alpha: float,
    generation: GenerationParams,
) -> dict[str, Any]:
    """The provenance a run's COCO ``info`` and ``report.json`` carry."""
    info: dict[str, Any] = {
        "seglens_version": __version__,
        "profile": profile,
        "models": models,
        "meaningless": meaningless,
        "query": query,
        "query_params": asdict(params),
        "alpha": alpha,
        "generation_params": asdict(generation),
    }
    if meaningless:
        info["warning"] = TINY_BANNER
    return info


def write_outputs(summary: RunSummary, keywords: Sequence[str], info: dict[str, Any]) -> None:
    """Write ``annotations.coco.json``, ``report.json`` and ``report.csv`` of `summary`'s
    records (in order) into ``summary.out_dir``; `info` comes from `run_info`."""
    assert summary.out_dir is not None
    coco = coco_document(summary.records, keywords, info)
    (summary.out_dir / "annotations.coco.json").write_text(json.dumps(coco))
    processed = [r for r in summary.records if r.result is not None]
    report = {
        **info,
        "summary": {
            "images": len(summary.records),
            "processed": len(processed),
            "failed": len(summary.failed),
            "matched": sum(1 for r in processed if r.result and r.result.image_matched),
            "elapsed_ms": round(summary.elapsed_ms, 2),
        },
        "images": [report_entry(r) for r in summary.records],
    }
    (summary.out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (summary.out_dir / "report.csv").write_text(csv_text(match_rows(summary.records)))
