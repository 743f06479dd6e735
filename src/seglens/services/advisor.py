"""The offline advisor: deterministic rules from a `ScreenContext` to `Suggestion`s.

`advise` applies the rules and returns suggestions with the numbers that justify them;
`describe_context` gives a plain-language account of what was found. Both are pure
functions. The assistant sends the context and these suggestions to the LLM as facts, and
answers with them alone when no LLM is available. `suggestion_from_arguments` validates the
LLM's own ``suggest_parameters`` calls into the same `Suggestion` type.

The screen context itself lives in `seglens.services.screen_context` and is re-exported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from seglens.core.query import MAX_KEYWORD_CHARS, MAX_KEYWORDS
from seglens.services.screen_context import (
    BARELY_ABOVE_MARGIN,
    OVERLAP_IOU,
    Failure,
    KeywordStats,
    ScreenContext,
    build_context,
    pipeline_facts,
)

__all__ = [
    "BARELY_ABOVE_MARGIN",
    "NEAR_MISS_MARGIN",
    "OVERLAP_IOU",
    "Failure",
    "KeywordStats",
    "ScreenContext",
    "Suggestion",
    "advise",
    "build_context",
    "describe_context",
    "floor_2dp",
    "foreign_script",
    "pipeline_facts",
    "suggestion_from_arguments",
]

NEAR_MISS_MARGIN = 0.10  # a best score this close under the threshold is "just under" it
MIN_CROWD = 5  # matches of one keyword before "too many weak matches" applies
MIN_OVERLAPPING_PAIRS = 2  # overlapping pairs of one keyword before "lower merging" applies
SLOW_MASKS_MS = 10_000.0  # mean mask generation per image on a CPU that counts as slow
LARGE_IMAGE_MP = 8.0  # mean megapixels that count as large images
MIN_POINTS_PER_SIDE = 8

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NON_LATIN_LETTER = re.compile(r"[^\W\d_a-zA-Z\u00c0-\u024f]")


def floor_2dp(value: float) -> float:
    """The largest 2-decimal number <= `value` (0.437 → 0.43, 0.42 → 0.42), so a threshold
    set to it still admits a score of exactly `value`."""
    rounded = round(value, 2)
    return rounded if rounded <= value else round(rounded - 0.01, 2)


def foreign_script(keyword: str, embedder_language: str | None) -> Literal["zh", "other"] | None:
    """Whether `keyword` is written in a script the embedder cannot read: ``"zh"`` for
    Chinese characters (Han), ``"other"`` for other non-Latin letters, None when
    the embedder reads it (a ``zh`` embedder reads Han, a ``multi`` one reads everything;
    an unknown language counts as readable)."""
    if embedder_language in (None, "multi"):
        return None
    if _HAN.search(keyword):
        return None if embedder_language == "zh" else "zh"
    if _NON_LATIN_LETTER.search(keyword):
        return "other"
    return None


@dataclass(frozen=True)
class Suggestion:
    """A proposed change, with the reason in numbers.

    Fields left None stay as they are. `threshold` and `merge_threshold` in [0, 1] and
    `keywords` apply from the cache at once; `points_per_side` (1..128) re-runs mask
    generation; `profile` is advice only (switching models is the user's call).
    `rule` names the advisor rule (``llm`` for the model's own), `confidence` is in [0, 1],
    `ignored` lists fields the model sent that failed validation.
    """

    reason: str
    rule: str
    confidence: float = 0.5
    source: Literal["advisor", "llm"] = "advisor"
    threshold: float | None = None
    merge_threshold: float | None = None
    points_per_side: int | None = None
    keywords: tuple[str, ...] | None = None
    profile: str | None = None
    ignored: tuple[str, ...] = ()

    @property
    def actionable(self) -> bool:
        """True when Apply would change a setting."""
        return any(
            v is not None for v in (self.threshold, self.merge_threshold, self.points_per_side, self.keywords)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["keywords"] = list(self.keywords) if self.keywords is not None else None
        data["ignored"] = list(self.ignored)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Suggestion:
        """Rebuild a stored suggestion (the inverse of `to_dict`); values are re-validated
        like the LLM's."""
        checked = suggestion_from_arguments(data, rule=str(data.get("rule") or "llm"))
        if checked is None:
            raise ValueError("not a suggestion: it has no reason and no valid setting")
        source = "advisor" if data.get("source") == "advisor" else "llm"
        confidence = _unit(data.get("confidence"))
        return Suggestion(
            **{
                **asdict(checked),
                "source": source,
                "confidence": checked.confidence if confidence is None else confidence,
            }
        )


def _unit(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def suggestion_from_arguments(arguments: Mapping[str, Any], *, rule: str = "llm") -> Suggestion | None:
    """Validate a ``suggest_parameters`` call from the LLM into a `Suggestion`.

    Thresholds that are not numbers in [0, 1] are dropped (45 is not silently read as
    0.45); `points_per_side` is rounded and clamped to 1..128; `keywords` (a list, or one
    comma-separated string) are trimmed, de-duplicated, cut to 32 of at most 80 characters;
    `profile` must be a short name. Dropped fields are listed in `ignored`. Returns None
    when nothing valid is left (no reason and no setting).
    """
    ignored: list[str] = []
    threshold = _unit(arguments.get("threshold"))
    merge = _unit(arguments.get("merge_threshold"))
    for name, value in (("threshold", threshold), ("merge_threshold", merge)):
        if value is None and arguments.get(name) is not None:
            ignored.append(name)

    points: int | None = None
    raw_points = arguments.get("points_per_side")
    if (
        isinstance(raw_points, (int, float))
        and not isinstance(raw_points, bool)
        and math.isfinite(raw_points)
    ):
        points = min(128, max(1, round(raw_points)))
    elif raw_points is not None:
        ignored.append("points_per_side")

    keywords: tuple[str, ...] | None = None
    raw_keywords = arguments.get("keywords")
    if isinstance(raw_keywords, str):
        raw_keywords = re.split(r"[,;，；、\n]+", raw_keywords)
    if isinstance(raw_keywords, (list, tuple)):
        cleaned = [" ".join(k.split())[:MAX_KEYWORD_CHARS] for k in raw_keywords if isinstance(k, str)]
        unique = list(dict.fromkeys(k for k in cleaned if k.lstrip("-−").strip()))[:MAX_KEYWORDS]
        keywords = tuple(unique) or None
    if keywords is None and raw_keywords is not None:
        ignored.append("keywords")

    profile = arguments.get("profile")
    if profile is not None and not (isinstance(profile, str) and re.fullmatch(r"[\w.-]{1,40}", profile)):
        ignored.append("profile")
        profile = None

    reason = arguments.get("reason")
    reason = " ".join(reason.split())[:600] if isinstance(reason, str) else ""
    suggestion = Suggestion(
        reason=reason,
        rule=rule,
        confidence=0.5,
        source="llm",
        threshold=threshold,
        merge_threshold=merge,
        points_per_side=points,
        keywords=keywords,
        profile=profile,
        ignored=tuple(ignored),
    )
    return suggestion if (reason or suggestion.actionable or profile) else None


# -- the rules ------------------------------------------------------------------------
def _below_2dp(value: float) -> float:
    """The largest 2-decimal number strictly below `value`."""
    floor = floor_2dp(value)
    return floor if floor < value else round(floor - 0.01, 2)


def _quote(words: list[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def advise(context: ScreenContext) -> tuple[Suggestion, ...]:
    """The advisor's suggestions for `context`, most confident first. Deterministic.

    Rules (ids): ``all_failed``, ``some_failed``, ``tiny_profile`` (then nothing else: the
    scores mean nothing), ``no_keywords``, ``language_mismatch``, ``raise_threshold``,
    ``lower_threshold``, ``lower_merge_threshold``, ``fewer_points``, ``rephrase_keyword``.
    """
    ctx = context
    if ctx.images_done == 0 and ctx.images_failed:
        return (_all_failed(ctx),)
    found: list[Suggestion | None] = []
    if ctx.images_failed:
        found.append(_some_failed(ctx))
    if ctx.meaningless:
        found.append(_tiny_profile(ctx))
    elif not ctx.keywords:
        found.append(
            Suggestion(
                "Type what to find, separated by commas (e.g. 'cat, dog'); write -word to exclude.",
                rule="no_keywords",
                confidence=0.9,
            )
        )
    elif ctx.images_done:
        foreign = _language_mismatch(ctx)
        found.append(foreign)
        skip = {kw for kw in ctx.keywords if foreign_script(kw, ctx.embedder_language)}
        crowded = _raise_threshold(ctx)
        found.append(crowded)
        if crowded is not None:
            skip |= {s.keyword for s in ctx.keyword_stats if _is_crowded(s)}
        found.append(_lower_threshold(ctx, skip))
        found.append(_lower_merge_threshold(ctx))
        found.append(_fewer_points(ctx))
        found.append(_rephrase(ctx, skip))
    kept = [s for s in found if s is not None]
    return tuple(sorted(kept, key=lambda s: -s.confidence))


def _all_failed(ctx: ScreenContext) -> Suggestion:
    first = ctx.failures[0] if ctx.failures else Failure("?", None, "")
    code = f" ({first.code})" if first.code else ""
    return Suggestion(
        f"All {ctx.images_failed} processed images failed, so there is nothing to tune. First error: "
        f"{first.file_name}: {first.message}{code}. Check the inputs: image files (JPEG, PNG, WebP, BMP, "
        "TIFF, GIF) within the size limits, not corrupted, and readable.",
        rule="all_failed",
        confidence=1.0,
    )


def _some_failed(ctx: ScreenContext) -> Suggestion:
    codes = sorted({f.code for f in ctx.failures if f.code})
    first = ctx.failures[0] if ctx.failures else Failure("?", None, "")
    return Suggestion(
        f"{ctx.images_failed} of {ctx.images_total} images failed{' (' + ', '.join(codes) + ')' if codes else ''}, "
        f"e.g. {first.file_name}: {first.message}. The numbers here cover the others.",
        rule="some_failed",
        confidence=0.6,
    )


def _tiny_profile(ctx: ScreenContext) -> Suggestion:
    profile = "gpu-quality" if (ctx.device or "").startswith("cuda") else "cpu-fast"
    return Suggestion(
        "The tiny profile has random weights: its masks and scores are meaningless (random), so no "
        f"threshold can make them right. Use a real profile such as {profile} for results that mean something.",
        rule="tiny_profile",
        confidence=1.0,
        profile=profile,
    )


def _language_mismatch(ctx: ScreenContext) -> Suggestion | None:
    scripts = {kw: foreign_script(kw, ctx.embedder_language) for kw in (*ctx.keywords, *ctx.exclusions)}
    foreign = [kw for kw, script in scripts.items() if script]
    if not foreign:
        return None
    only_han = all(scripts[kw] == "zh" for kw in foreign)
    profile = "zh" if only_han else "multilingual"
    model = "Chinese-CLIP" if only_han else "SigLIP 2"
    embedder = f" ({ctx.embedder})" if ctx.embedder else ""
    return Suggestion(
        f"{_quote(foreign)} {'is' if len(foreign) == 1 else 'are'} not in a language the embedder{embedder} "
        f"reads (it reads English only), so {'its' if len(foreign) == 1 else 'their'} scores are noise. "
        f"Translate to English (the assistant does this when the LLM is on), or switch to the {profile} "
        f"profile ({model}).",
        rule="language_mismatch",
        confidence=0.9,
        profile=profile,
    )


def _is_crowded(stats: KeywordStats) -> bool:
    strong = stats.matches - stats.barely_above
    return stats.matches >= MIN_CROWD and stats.barely_above * 2 >= stats.matches and strong >= 1


def _raise_threshold(ctx: ScreenContext) -> Suggestion | None:
    crowded = [s for s in ctx.keyword_stats if _is_crowded(s)]
    target = min(1.0, round(ctx.threshold + BARELY_ABOVE_MARGIN, 2))
    if not crowded or target <= ctx.threshold:
        return None
    parts = [
        f"'{s.keyword}' has {s.matches} matches and {s.barely_above} of them score under "
        f"{ctx.threshold + BARELY_ABOVE_MARGIN:.2f}, barely above the threshold (lowest "
        f"{', '.join(f'{v:.3f}' for v in s.lowest_matches)})"
        for s in crowded
    ]
    return Suggestion(
        f"Raise the threshold to {target:.2f}: " + "; ".join(parts) + ". Weak matches like these are "
        "usually wrong; the stronger ones stay.",
        rule="raise_threshold",
        confidence=0.65,
        threshold=target,
    )


def _lower_threshold(ctx: ScreenContext, skip: set[str]) -> Suggestion | None:
    near: list[tuple[KeywordStats, list[float]]] = []
    for stats in ctx.keyword_stats:
        close = [v for v in stats.best_below if ctx.threshold - NEAR_MISS_MARGIN <= v < ctx.threshold]
        if close and stats.keyword not in skip:
            near.append((stats, close))
    if not near:
        return None
    target = floor_2dp(min(min(close) for _, close in near))
    parts = []
    for stats, close in near:
        scores = ", ".join(f"{v:.3f}" for v in close)
        missed = ctx.images_done - stats.images_matched
        where = (
            "has no match" if stats.matches == 0 else f"is missing in {missed} of {ctx.images_done} images"
        )
        best = f"its best scores {scores} are" if len(close) > 1 else f"its best score {scores} is"
        parts.append(f"'{stats.keyword}' {where}, but {best} just under the threshold {ctx.threshold:.2f}")
    return Suggestion(
        f"Lower the threshold to {target:.2f}: " + "; ".join(parts) + ". Check the new matches: they "
        "are the least certain ones.",
        rule="lower_threshold",
        confidence=0.85 if any(stats.matches == 0 for stats, _ in near) else 0.6,
        threshold=target,
    )


def _lower_merge_threshold(ctx: ScreenContext) -> Suggestion | None:
    overlapping = [
        s
        for s in ctx.keyword_stats
        if s.overlapping_pairs >= MIN_OVERLAPPING_PAIRS and s.overlap_iou_min is not None
    ]
    if not overlapping:
        return None
    target = max(0.05, min(_below_2dp(s.overlap_iou_min or 1.0) for s in overlapping))
    if target >= ctx.merge_threshold:
        return None
    parts = [
        f"'{s.keyword}' has {s.overlapping_pairs} pairs of overlapping matches "
        f"(mask IoU {s.overlap_iou_min:.2f} to {s.overlap_iou_max:.2f})"
        for s in overlapping
    ]
    return Suggestion(
        f"Lower the merging threshold to {target:.2f}: " + "; ".join(parts) + ", most likely the same "
        f"object found several times. Matches overlapping more than {target:.2f} then merge "
        f"({'keeping the best' if ctx.merge_strategy == 'nms' else 'into one mask'}).",
        rule="lower_merge_threshold",
        confidence=0.7,
        merge_threshold=target,
    )


def _fewer_points(ctx: ScreenContext) -> Suggestion | None:
    points, masks_ms = ctx.points_per_side, ctx.mask_generation_ms
    if ctx.device != "cpu" or points is None or points <= MIN_POINTS_PER_SIDE or masks_ms is None:
        return None
    if masks_ms < SLOW_MASKS_MS:
        return None
    target = max(MIN_POINTS_PER_SIDE, points // 2)
    large = ctx.mean_megapixels >= LARGE_IMAGE_MP
    size = f" for large images ({ctx.mean_megapixels:.0f} MP on average)" if large else ""
    return Suggestion(
        f"Use {target} points per side instead of {points}: mask generation takes {masks_ms / 1000:.1f} s "
        f"per image on the CPU{size}, and the point grid sets that cost (about {(points / target) ** 2:.0f}x "
        "less decoder work). This re-runs mask generation once; later queries come from the cache. "
        "Small objects may be missed with a coarser grid.",
        rule="fewer_points",
        confidence=0.75 if large else 0.65,
        points_per_side=target,
    )


def _rephrase(ctx: ScreenContext, skip: set[str]) -> Suggestion | None:
    far = [
        s
        for s in ctx.keyword_stats
        if s.keyword not in skip
        and s.matches == 0
        and s.best_score is not None
        and s.best_score < ctx.threshold - NEAR_MISS_MARGIN
    ]
    if not far:
        return None
    scores = "; ".join(f"'{s.keyword}' at best {s.best_score or 0.0:.3f}" for s in far)
    return Suggestion(
        f"Nothing comes near the threshold {ctx.threshold:.2f} for {scores}: the embedder does not connect "
        f"{'this word' if len(far) == 1 else 'these words'} with any region. Try a more common word or a "
        "synonym, describe what it looks like, or use a stronger embedder (gpu-quality: CLIP ViT-L/14). "
        "If the object is really absent, this is the right answer.",
        rule="rephrase_keyword",
        confidence=0.55,
    )


# -- plain-language account -----------------------------------------------------------
def describe_context(context: ScreenContext) -> str:
    """A few lines saying what was found per keyword, with the numbers (Markdown)."""
    ctx = context
    lines: list[str] = []
    where = "1 image" if ctx.images_total == 1 else f"{ctx.images_total} images"
    if ctx.images_total == 1 and ctx.largest_image_hw:
        where += f" ({ctx.largest_image_hw[1]}x{ctx.largest_image_hw[0]} px)"
    if ctx.scope == "job" and ctx.images_done != ctx.images_total:
        where += f" ({ctx.images_done} done, {ctx.images_failed} failed)"
    query = ", ".join([*ctx.keywords, *(f"-{e}" for e in ctx.exclusions)]) or "(no keywords)"
    setup = f"threshold {ctx.threshold:.2f}, merging {ctx.merge_threshold:.2f}, mode {ctx.mode}"
    if ctx.profile:
        setup += f", profile {ctx.profile}"
    if ctx.device:
        setup += f" on {ctx.device}"
    lines.append(f'Looking at {where} with the query "{query}" ({setup}).')
    if ctx.meaningless:
        lines.append("**Tiny profile: random weights, the results below are meaningless.**")
    if ctx.images_done:
        lines.append(
            f"{ctx.images_matched} of {ctx.images_done} images match; {ctx.regions_mean:.0f} candidate regions "
            "per image on average."
        )
    for stats in ctx.keyword_stats:
        lines.append("- " + _describe_keyword(stats, ctx))
    for word, count in ctx.exclusion_hits.items():
        lines.append(f"- -{word} excluded {count} image{'s' if count != 1 else ''}.")
    masks_ms = ctx.mask_generation_ms
    if masks_ms is not None:
        embed = ctx.timings_ms.get("embed_regions")
        extra = f", region embedding {embed / 1000:.1f} s" if embed is not None else ""
        lines.append(f"Mask generation took {masks_ms / 1000:.1f} s per image{extra}.")
    elif ctx.cache_hit_images:
        lines.append("Regions and embeddings came from the cache.")
    return "\n".join(lines)


def _describe_keyword(stats: KeywordStats, ctx: ScreenContext) -> str:
    if stats.best_score is None:
        return f"{stats.keyword}: no regions to score."
    if stats.matches == 0:
        return (
            f"{stats.keyword}: no match; best score {stats.best_score:.3f} (threshold {ctx.threshold:.2f})."
        )
    images = f" in {stats.images_matched} of {ctx.images_done} images" if ctx.images_done > 1 else ""
    text = f"{stats.keyword}: {stats.matches} match{'es' if stats.matches != 1 else ''}{images}, best {stats.best_score:.3f}"
    if stats.matches > 1:
        text += f", lowest {', '.join(f'{v:.3f}' for v in stats.lowest_matches)}"
    if stats.best_below:
        text += f"; best where it missed {', '.join(f'{v:.3f}' for v in stats.best_below)}"
    return text + "."
