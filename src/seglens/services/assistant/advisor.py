"""The offline advisor: deterministic rules from a `ScreenContext` to `Suggestion`s.

`advise` applies the rules and returns suggestions with the numbers that justify them;
`seglens.services.assistant.offline.describe_context` gives a plain-language account of
what was found. Both are pure functions. The assistant sends the context and these suggestions to the LLM as facts, and
answers with them alone when no LLM is available. `suggestion_from_arguments` validates the
LLM's own ``suggest_parameters`` calls into the same `Suggestion` type.

The screen context itself lives in `seglens.services.assistant.screen_context` and is re-exported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from seglens.core.query import MAX_KEYWORD_CHARS, MAX_KEYWORDS
from seglens.services.assistant.i18n import join, quote, say
from seglens.services.assistant.screen_context import (
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
    generation; `profile` is advice only: the UI labels it so and offers no Apply (switching
    models means a new job, the user's call); `applicable` says whether Apply changes
    the controls.
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
        data["applicable"] = self.actionable
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


def _scores(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def advise(context: ScreenContext, lang: str = "en") -> tuple[Suggestion, ...]:
    """The advisor's suggestions for `context`, most confident first, their reasons
    written in `lang` (``en`` or ``zh``). Deterministic.

    Rules (ids): ``all_failed``, ``some_failed``, ``tiny_profile`` (then nothing else: the
    scores mean nothing), ``no_keywords``, ``language_mismatch``, ``raise_threshold``,
    ``lower_threshold``, ``lower_merge_threshold``, ``fewer_points``, ``rephrase_keyword``.
    """
    ctx = context
    if ctx.images_done == 0 and ctx.images_failed:
        return (_all_failed(ctx, lang),)
    found: list[Suggestion | None] = []
    if ctx.images_failed:
        found.append(_some_failed(ctx, lang))
    if ctx.meaningless:
        found.append(_tiny_profile(ctx, lang))
    elif not ctx.keywords:
        found.append(Suggestion(say(lang, "no_keywords"), rule="no_keywords", confidence=0.9))
    elif ctx.images_done:
        foreign = _language_mismatch(ctx, lang)
        found.append(foreign)
        skip = {kw for kw in ctx.keywords if foreign_script(kw, ctx.embedder_language)}
        crowded = _raise_threshold(ctx, lang)
        found.append(crowded)
        if crowded is not None:
            skip |= {s.keyword for s in ctx.keyword_stats if _is_crowded(s)}
        found.append(_lower_threshold(ctx, skip, lang))
        found.append(_lower_merge_threshold(ctx, lang))
        found.append(_fewer_points(ctx, lang))
        found.append(_rephrase(ctx, skip, lang))
    kept = [s for s in found if s is not None]
    return tuple(sorted(kept, key=lambda s: -s.confidence))


def _all_failed(ctx: ScreenContext, lang: str) -> Suggestion:
    first = ctx.failures[0] if ctx.failures else Failure("?", None, "")
    code = f" ({first.code})" if first.code else ""
    text = say(
        lang, "all_failed", failed=ctx.images_failed, file=first.file_name, message=first.message, code=code
    )
    return Suggestion(text, rule="all_failed", confidence=1.0)


def _some_failed(ctx: ScreenContext, lang: str) -> Suggestion:
    codes = sorted({f.code for f in ctx.failures if f.code})
    first = ctx.failures[0] if ctx.failures else Failure("?", None, "")
    text = say(
        lang,
        "some_failed",
        failed=ctx.images_failed,
        total=ctx.images_total,
        codes=f" ({', '.join(codes)})" if codes else "",
        file=first.file_name,
        message=first.message,
    )
    return Suggestion(text, rule="some_failed", confidence=0.6)


def _tiny_profile(ctx: ScreenContext, lang: str) -> Suggestion:
    profile = "gpu-quality" if (ctx.device or "").startswith("cuda") else "cpu-fast"
    return Suggestion(
        say(lang, "tiny_profile", profile=profile), rule="tiny_profile", confidence=1.0, profile=profile
    )


def _language_mismatch(ctx: ScreenContext, lang: str) -> Suggestion | None:
    scripts = {kw: foreign_script(kw, ctx.embedder_language) for kw in (*ctx.keywords, *ctx.exclusions)}
    foreign = [kw for kw, script in scripts.items() if script]
    if not foreign:
        return None
    only_han = all(scripts[kw] == "zh" for kw in foreign)
    profile = "zh" if only_han else "multilingual"
    text = say(
        lang,
        "language_mismatch",
        words=", ".join(quote(lang, w) for w in foreign),
        verb="is" if len(foreign) == 1 else "are",
        embedder=f" ({ctx.embedder})" if ctx.embedder else "",
        profile=profile,
        model="Chinese-CLIP" if only_han else "SigLIP 2",
    )
    return Suggestion(text, rule="language_mismatch", confidence=0.9, profile=profile)


def _is_crowded(stats: KeywordStats) -> bool:
    strong = stats.matches - stats.barely_above
    return stats.matches >= MIN_CROWD and stats.barely_above * 2 >= stats.matches and strong >= 1


def _raise_threshold(ctx: ScreenContext, lang: str) -> Suggestion | None:
    crowded = [s for s in ctx.keyword_stats if _is_crowded(s)]
    target = min(1.0, round(ctx.threshold + BARELY_ABOVE_MARGIN, 2))
    if not crowded or target <= ctx.threshold:
        return None
    parts = []
    for s in crowded:
        left = s.matches_at_or_above(target)
        parts.append(
            say(
                lang,
                "raise_part",
                kw=quote(lang, s.keyword),
                matches=s.matches,
                barely=s.barely_above,
                edge=f"{ctx.threshold + BARELY_ABOVE_MARGIN:.2f}",
                lowest=_scores(s.lowest_matches),
                remain=say(lang, "raise_remain", left=left) if left is not None else "",
            )
        )
    text = say(lang, "raise_threshold", target=f"{target:.2f}", parts=join(lang, parts))
    return Suggestion(text, rule="raise_threshold", confidence=0.65, threshold=target)


def _lower_threshold(ctx: ScreenContext, skip: set[str], lang: str) -> Suggestion | None:
    near: list[tuple[KeywordStats, list[float]]] = []
    for stats in ctx.keyword_stats:
        close = [v for v in stats.best_below if ctx.threshold - NEAR_MISS_MARGIN <= v < ctx.threshold]
        if close and stats.keyword not in skip:
            near.append((stats, close))
    if not near:
        return None
    target = floor_2dp(min(min(close) for _, close in near))
    parts = [
        say(
            lang,
            "lower_part_none" if stats.matches == 0 else "lower_part_some",
            kw=quote(lang, stats.keyword),
            scores=_scores(close),
            threshold=f"{ctx.threshold:.2f}",
            missed=ctx.images_done - stats.images_matched,
            done=ctx.images_done,
        )
        for stats, close in near
    ]
    return Suggestion(
        say(lang, "lower_threshold", target=f"{target:.2f}", parts=join(lang, parts)),
        rule="lower_threshold",
        confidence=0.85 if any(stats.matches == 0 for stats, _ in near) else 0.6,
        threshold=target,
    )


def _lower_merge_threshold(ctx: ScreenContext, lang: str) -> Suggestion | None:
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
        say(
            lang,
            "merge_part",
            kw=quote(lang, s.keyword),
            pairs=s.overlapping_pairs,
            low=f"{s.overlap_iou_min:.2f}",
            high=f"{s.overlap_iou_max:.2f}",
        )
        for s in overlapping
    ]
    how = say(lang, "merge_nms" if ctx.params.merge_strategy == "nms" else "merge_union")
    return Suggestion(
        say(lang, "lower_merge", target=f"{target:.2f}", parts=join(lang, parts), how=how),
        rule="lower_merge_threshold",
        confidence=0.7,
        merge_threshold=target,
    )


def _fewer_points(ctx: ScreenContext, lang: str) -> Suggestion | None:
    points, masks_ms = ctx.points_per_side, ctx.mask_generation_ms
    if ctx.device != "cpu" or points is None or points <= MIN_POINTS_PER_SIDE or masks_ms is None:
        return None
    if masks_ms < SLOW_MASKS_MS:
        return None
    target = max(MIN_POINTS_PER_SIDE, points // 2)
    large = ctx.mean_megapixels >= LARGE_IMAGE_MP
    text = say(
        lang,
        "fewer_points",
        target=target,
        points=points,
        seconds=f"{masks_ms / 1000:.1f}",
        size=say(lang, "fewer_points_size", mp=f"{ctx.mean_megapixels:.0f}") if large else "",
        factor=f"{(points / target) ** 2:.0f}",
    )
    return Suggestion(text, rule="fewer_points", confidence=0.75 if large else 0.65, points_per_side=target)


def _rephrase(ctx: ScreenContext, skip: set[str], lang: str) -> Suggestion | None:
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
    parts = join(
        lang,
        (
            say(lang, "rephrase_part", kw=quote(lang, s.keyword), best=f"{s.best_score or 0.0:.3f}")
            for s in far
        ),
    )
    return Suggestion(
        say(lang, "rephrase", threshold=f"{ctx.threshold:.2f}", parts=parts),
        rule="rephrase_keyword",
        confidence=0.55,
    )
