"""Pure presentation helpers: API JSON → captions, tables, chart frames, HTML, pictures.

No Gradio and no HTTP here, so all of it is unit-testable. Tables and charts are pandas
DataFrames; column names are already translated.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from seglens.core.masks import decode_rle
from seglens.ui.i18n import EN, TEXT, stage_name, t
from seglens.ui.state import ImageEntry, ResultEntry

__all__ = [
    "MAX_SUGGESTIONS",
    "batch_caption",
    "batch_table",
    "context_text",
    "describe_suggestion",
    "draw_refinement",
    "history_table",
    "human_bytes",
    "image_log_table",
    "notice_html",
    "progress_html",
    "region_table",
    "result_caption",
    "scores_frame",
    "stats_frames",
    "suggestion_html",
    "threshold_pad",
    "timings_frame",
    "warning_html",
]

# Totals are sums of the other stages: a bar for them would dwarf the parts.
_STAGES_HIDDEN = {"total", "segment"}
TOP_REGIONS_PER_KEYWORD = 5


def human_bytes(size: int) -> str:
    """1234567 → '1.2 MB' (decimal units, as file managers show them)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def batch_caption(entry: ImageEntry) -> str:
    return f"{entry.filename} · {entry.width}×{entry.height} · {entry.format} · {human_bytes(entry.bytes)}"


def batch_table(images: Sequence[ImageEntry], lang: str) -> pd.DataFrame:
    columns = [t(lang, "col_image"), "W×H", t(lang, "export_format"), t(lang, "col_size")]
    rows = [[e.filename, f"{e.width}×{e.height}", e.format, human_bytes(e.bytes)] for e in images]
    return pd.DataFrame(rows, columns=columns)


def result_caption(entry: ResultEntry, lang: str) -> str:
    if entry.status == "failed":
        return f"{entry.filename} · {t(lang, 'caption_failed', reason=entry.error or '?')}"
    if entry.status == "skipped":
        return f"{entry.filename} · {t(lang, 'caption_skipped')}"
    return f"{entry.filename} · {t(lang, 'caption_matches', n=entry.matches)}"


def progress_html(job: Mapping[str, Any] | None, lang: str) -> str:
    """A progress bar whose data attributes carry the numbers (the browser tests read them)."""
    if not job:
        return f'<div id="progress-box" data-status="none" data-done="0" data-total="0">{html.escape(t(lang, "progress_idle"))}</div>'
    progress = job["progress"]
    total = max(int(progress["total"]), 0)
    finished = int(progress["done"]) + int(progress["failed"]) + int(progress["skipped"])
    # The bar shows work done: images skipped by Stop are not (1 of 4 then Stop is 25 %).
    processed = int(progress["done"]) + int(progress["failed"])
    percent = 100.0 * processed / total if total else 0.0
    status = str(job["status"])
    text = t(
        lang,
        "progress",
        status=t(lang, f"status_{status}"),
        done=progress["done"],
        total=total,
        failed=progress["failed"],
        skipped=progress["skipped"],
    )
    return (
        f'<div id="progress-box" data-status="{html.escape(status)}" data-done="{progress["done"]}" '
        f'data-finished="{finished}" data-total="{total}" data-job="{html.escape(str(job["id"]))}">'
        f'<div class="sl-bar"><div class="sl-fill sl-{html.escape(status)}" style="width:{percent:.1f}%"></div></div>'
        f'<div class="sl-progress-text">{html.escape(text)}</div></div>'
    )


def warning_html(warning: str | None) -> str:
    if not warning:
        return ""
    return f'<div class="sl-tiny" id="tiny-banner">⚠ {html.escape(warning)}</div>'


def notice_html(text: str, kind: str = "error") -> str:
    if not text:
        return '<div id="notice-box" data-kind="none"></div>'
    return f'<div id="notice-box" class="sl-notice sl-{kind}" data-kind="{kind}">{html.escape(text)}</div>'


def region_table(
    matches: Sequence[Mapping[str, Any]], refined: Sequence[Mapping[str, Any]], lang: str
) -> pd.DataFrame:
    columns = [t(lang, "col_keyword"), t(lang, "col_score"), t(lang, "col_area"), t(lang, "col_box")]
    # Refined masks first: they are what the user just clicked.
    rows: list[list[Any]] = []
    for r in refined:
        rows.append([t(lang, "refined"), round(float(r["score"]), 3), int(r["area"]), _box(r["bbox_xyxy"])])
    for m in matches:
        rows.append([m["keyword"], round(float(m["score"]), 3), int(m["area"]), _box(m["bbox_xyxy"])])
    return pd.DataFrame(rows, columns=columns)


def _box(box: Sequence[float]) -> str:
    return ", ".join(str(round(float(v))) for v in box)


def image_log_table(log: Mapping[str, Any], lang: str) -> pd.DataFrame:
    """The level-1 log as field/value rows, field names and values in `lang`."""
    rows: list[tuple[str, str]] = [
        (t(lang, "log_image"), str(log.get("filename") or log["image_id"])),
        (t(lang, "log_status"), t(lang, f"item_{log['status']}")),
        (t(lang, "log_size"), f"{log.get('width')}×{log.get('height')}"),
        (t(lang, "log_regions"), str(log.get("num_regions"))),
        (t(lang, "log_attempts"), str(log.get("attempts"))),
    ]
    for keyword, count in sorted(log.get("matches_per_keyword", {}).items()):
        rows.append((t(lang, "log_matches", keyword=keyword), str(count)))
    for keyword, score in sorted(log.get("best_scores", {}).items()):
        rows.append((t(lang, "log_best", keyword=keyword), f"{float(score):.3f}"))
    for stage, ms in log.get("timings_ms", {}).items():
        rows.append(
            (t(lang, "log_time", stage=stage_name(lang, stage)), f"{float(ms):.1f} {t(lang, 'col_ms')}")
        )
    for cache, hit in log.get("cache_hits", {}).items():
        rows.append(
            (t(lang, "log_cache", cache=stage_name(lang, cache)), t(lang, "log_hit" if hit else "log_miss"))
        )
    for warning in log.get("warnings", []):
        rows.append((t(lang, "log_warning"), server_text(str(warning), lang)))
    if log.get("error"):
        rows.append((t(lang, "log_error"), f"{log['error']['code']}: {log['error']['message']}"))
    if log.get("started_at"):
        rows.append((t(lang, "log_started"), str(log["started_at"])))
    if log.get("finished_at"):
        rows.append((t(lang, "log_finished"), str(log["finished_at"])))
    return pd.DataFrame(rows, columns=[t(lang, "col_field"), t(lang, "col_value")])


def server_text(text: str, lang: str) -> str:
    """A sentence the server writes in English, in `lang` when the UI knows it (the tiny
    profile's warning, "no regions"); other text as it came."""
    if text.startswith("TINY MODEL"):
        return t(lang, "tiny_banner")
    if text == EN["warning_no_regions"]:
        return t(lang, "warning_no_regions")
    return text


def scores_frame(
    matches: Sequence[Mapping[str, Any]], best_scores: Mapping[str, float], lang: str
) -> pd.DataFrame:
    """One bar per matched region (``keyword #n``, the best `TOP_REGIONS_PER_KEYWORD` of
    each keyword) and, for a keyword without a match, one bar with its best score below the
    threshold."""
    rows: list[tuple[str, float, str]] = []
    seen: dict[str, int] = {}
    for m in sorted(matches, key=lambda m: (m["keyword"], -float(m["score"]))):
        keyword = str(m["keyword"])
        seen[keyword] = seen.get(keyword, 0) + 1
        if seen[keyword] <= TOP_REGIONS_PER_KEYWORD:
            rows.append((f"{keyword} #{seen[keyword]}", round(float(m["score"]), 4), keyword))
    for keyword, score in sorted(best_scores.items()):
        if keyword not in seen:
            rows.append((f"{keyword} ({t(lang, 'below_threshold')})", round(float(score), 4), keyword))
    return pd.DataFrame(rows, columns=["region", "score", "keyword"])


def timings_frame(timings_ms: Mapping[str, float], lang: str = "en") -> pd.DataFrame:
    """One bar per stage in pipeline order (the order the server reports them in)."""
    rows = [
        (stage_name(lang, stage), round(float(ms), 1))
        for stage, ms in timings_ms.items()
        if stage not in _STAGES_HIDDEN
    ]
    return pd.DataFrame(rows, columns=["stage", "ms"])


def stats_frames(stats: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """Summary markdown, stage table, keyword table and the chart frames of level 2."""
    progress = stats["progress"]
    ipm = stats.get("images_per_minute")
    summary = t(
        lang,
        "stats_line",
        status=t(lang, f"status_{stats['status']}"),
        done=progress["done"],
        total=progress["total"],
        failed=progress["failed"],
        skipped=progress["skipped"],
        ipm="–" if ipm is None else f"{float(ipm):.1f}",
        busy=float(stats.get("busy_s") or 0.0),
        retried=stats.get("retried", 0),
    )
    if stats.get("errors"):
        errors = ", ".join(f"{code} × {n}" for code, n in stats["errors"].items())
        summary += "\n\n" + t(lang, "stats_errors", errors=errors)
    if stats.get("warning"):
        summary += f"\n\n⚠ {server_text(str(stats['warning']), lang)}"
    stage_columns = [
        t(lang, "col_stage"),
        t(lang, "col_count"),
        t(lang, "col_mean"),
        t(lang, "col_p50"),
        t(lang, "col_p95"),
        t(lang, "col_max"),
    ]
    stages = pd.DataFrame(
        [
            [
                stage_name(lang, name),
                s["count"],
                round(s["mean_ms"], 1),
                round(s["p50_ms"], 1),
                round(s["p95_ms"], 1),
                round(s["max_ms"], 1),
            ]
            for name, s in stats.get("stages", {}).items()
        ],
        columns=stage_columns,
    )
    keyword_columns = [
        t(lang, "col_keyword"),
        t(lang, "col_matches"),
        t(lang, "col_images"),
        t(lang, "col_best"),
    ]
    keywords = pd.DataFrame(
        [
            [name, k["matches"], k["images"], round(float(k["best_score"]), 3)]
            for name, k in stats.get("keywords", {}).items()
        ],
        columns=keyword_columns,
    )
    stage_chart = pd.DataFrame(
        [
            (stage_name(lang, name), round(s["mean_ms"], 1))
            for name, s in stats.get("stages", {}).items()
            if name not in _STAGES_HIDDEN
        ],
        columns=["stage", "ms"],
    )
    keyword_chart = pd.DataFrame(
        [(name, int(k["matches"])) for name, k in stats.get("keywords", {}).items()],
        columns=["keyword", "matches"],
    )
    return {
        "summary": summary,
        "stages": stages,
        "keywords": keywords,
        "stage_chart": stage_chart,
        "keyword_chart": keyword_chart,
    }


def per_image_frame(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Total time per finished image, in job order (the batch-statistics line chart)."""
    rows = [
        (int(r["position"]) + 1, round(float(r["timings_ms"]["total"]), 1), str(r.get("filename") or ""))
        for r in results
        if r.get("timings_ms", {}).get("total") is not None
    ]
    return pd.DataFrame(rows, columns=["image", "ms", "file"])


def history_table(items: Sequence[Mapping[str, Any]], lang: str) -> pd.DataFrame:
    columns = [
        t(lang, "col_time"),
        t(lang, "col_kind"),
        t(lang, "col_query"),
        t(lang, "col_status"),
        t(lang, "col_images"),
        t(lang, "col_matches"),
        t(lang, "col_duration"),
        t(lang, "col_ref"),
    ]
    rows = []
    for e in items:
        when = str(e["created_at"]).replace("T", " ")[:19]
        duration = "" if e.get("duration_ms") is None else f"{float(e['duration_ms']):.0f}"
        kind = t(lang, f"hist_{e['kind']}") if f"hist_{e['kind']}" in EN else str(e["kind"])
        status = t(lang, f"status_{e['status']}") if f"status_{e['status']}" in EN else str(e["status"])
        rows.append([when, kind, e["query"], status, e["image_count"], e["match_count"], duration, e["ref"]])
    return pd.DataFrame(rows, columns=columns)


def threshold_pad(threshold: float, merge_threshold: float, size: int = 160) -> Image.Image:
    """The two-dimensional control: x is the matching threshold (0 → 1, left to right), y
    the merging threshold (0 at the bottom, 1 at the top); a dot marks the current pair."""
    image = Image.new("RGB", (size, size), (246, 247, 250))
    draw = ImageDraw.Draw(image)
    for i in range(1, 10):
        c = round(i * size / 10)
        shade = (214, 218, 226) if i != 5 else (190, 196, 208)
        draw.line([(c, 0), (c, size)], fill=shade)
        draw.line([(0, c), (size, c)], fill=shade)
    x = threshold * (size - 1)
    y = (1.0 - merge_threshold) * (size - 1)
    draw.line([(x, 0), (x, size)], fill=(249, 115, 22), width=1)
    draw.line([(0, y), (size, y)], fill=(59, 130, 246), width=1)
    draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(17, 24, 39), outline=(255, 255, 255), width=2)
    return image


def pad_values(x: float, y: float, size: int = 160) -> tuple[float, float]:
    """A click on the pad (pixels) → (threshold, merge_threshold), rounded to 0.01."""
    threshold = min(max(x / (size - 1), 0.0), 1.0)
    merge = min(max(1.0 - y / (size - 1), 0.0), 1.0)
    return round(threshold, 2), round(merge, 2)


def draw_refinement(
    overlay_png: bytes | Image.Image,
    masks: Sequence[Mapping[str, Any]],
    points: Sequence[tuple[float, float, int]],
    image_size_wh: tuple[int, int],
) -> Image.Image:
    """The overlay with the refined masks (cyan, outlined) and the clicked points (green
    +, red −) drawn on it. Masks and points are in image pixels; the overlay may be smaller."""
    base = overlay_png if isinstance(overlay_png, Image.Image) else Image.open(io.BytesIO(overlay_png))
    picture = base.convert("RGB")
    ow, oh = picture.size
    sx, sy = ow / image_size_wh[0], oh / image_size_wh[1]
    array = np.asarray(picture).copy()
    for m in masks:
        mask = decode_rle(m["rle"])
        if mask.shape != (oh, ow):
            mask = (
                np.asarray(
                    Image.fromarray(mask.astype(np.uint8) * 255).resize((ow, oh), Image.Resampling.NEAREST)
                )
                > 0
            )
        color = np.array([0, 220, 255], dtype=np.float32)
        array[mask] = (0.45 * array[mask] + 0.55 * color).astype(np.uint8)
        edge = mask & ~_erode(mask)
        array[edge] = (0, 120, 255)
    picture = Image.fromarray(array)
    draw = ImageDraw.Draw(picture)
    r = max(4, round(min(ow, oh) / 80))
    for x, y, label in points:
        cx, cy = x * sx, y * sy
        fill = (34, 197, 94) if label == 1 else (239, 68, 68)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=(255, 255, 255), width=2)
        draw.line([(cx - r / 2, cy), (cx + r / 2, cy)], fill=(255, 255, 255), width=2)
        if label == 1:
            draw.line([(cx, cy - r / 2), (cx, cy + r / 2)], fill=(255, 255, 255), width=2)
    return picture


def _erode(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


# -- assistant ---------------------------------------------------------------------------
MAX_SUGGESTIONS = 3


def describe_suggestion(s: dict[str, Any], lang: str = "en") -> str:
    parts = []
    if s.get("threshold") is not None:
        parts.append(t(lang, "sug_threshold", value=float(s["threshold"])))
    if s.get("merge_threshold") is not None:
        parts.append(t(lang, "sug_merge", value=float(s["merge_threshold"])))
    if s.get("points_per_side") is not None:
        parts.append(t(lang, "sug_pps", value=int(s["points_per_side"])))
    if s.get("keywords"):
        parts.append(t(lang, "sug_keywords", value=", ".join(str(k) for k in s["keywords"])))
    if s.get("profile"):
        parts.append(t(lang, "sug_profile", value=s["profile"]))
    return "; ".join(parts) or "—"


def suggestion_reason(s: Mapping[str, Any], lang: str) -> str:
    """The reason in `lang`: the advisor's rules have their own text in Chinese (the server
    writes English); an LLM's reason is shown as it wrote it."""
    rule = f"rule_{s.get('rule', '')}"
    if lang != "en" and s.get("source") == "advisor" and rule in TEXT.get(lang, {}):
        return t(lang, rule)
    return str(s.get("reason", ""))


def suggestion_html(suggestions: list[dict[str, Any]], lang: str, prefix: str) -> str:
    """Numbered suggestion cards; each number matches an Apply button."""
    if not suggestions:
        return f'<div id="{prefix}-suggestion-list" data-count="0"><i>{html.escape(t(lang, "suggestion_none"))}</i></div>'
    cards = []
    for i, s in enumerate(suggestions[:MAX_SUGGESTIONS], start=1):
        source = t(lang, "source_advisor" if s.get("source") == "advisor" else "source_llm")
        line = html.escape(f"{source} · {float(s.get('confidence', 0)):.2f}")
        cards.append(
            f'<div class="sl-suggestion" data-index="{i}" data-rule="{html.escape(str(s.get("rule", "")))}">'
            f"<b>#{i} {html.escape(describe_suggestion(s, lang))}</b>"
            f"<br>{html.escape(suggestion_reason(s, lang))}<br><small>{line}</small></div>"
        )
    return f'<div id="{prefix}-suggestion-list" data-count="{len(suggestions)}">{"".join(cards)}</div>'


def context_text(context: dict[str, Any] | None, lang: str = "en") -> str:
    if not context:
        return "—"
    if "image_id" in context:
        params = context["params"]
        return t(
            lang,
            "ctx_image",
            image=context["image_id"][:10],
            query=context["query"],
            threshold=params["threshold"],
            merge=params["merge_threshold"],
        )
    return t(lang, "ctx_job", job=context["job_id"][:10])
