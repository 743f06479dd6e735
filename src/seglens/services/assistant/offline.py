"""The offline advisor's answer to a question: focused on what was asked, in the user's
language, with the numbers of the screen.

`offline_paragraphs` composes the answer: the keywords the question names (or, for a
question about a setting, every keyword) with their best score, the image holding it,
the threshold that would include it and how many images or matches that changes; the
setting the question is about; the screen's summary only when nothing more focused was
said and an earlier answer did not already show it; the advisor's suggestions; and the
guide section that fits the question (see `rank_sections`). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from seglens.services.assistant.advisor import (
    NEAR_MISS_MARGIN,
    KeywordStats,
    ScreenContext,
    Suggestion,
    floor_2dp,
)
from seglens.services.assistant.guide import BUILTIN_GUIDE_ZH, GuideSection, guide_excerpt, rank_sections
from seglens.services.assistant.i18n import quote, say

__all__ = [
    "FAR_BELOW_MARGIN",
    "MAX_FOCUS_KEYWORDS",
    "best_where",
    "describe_context",
    "focus_lines",
    "offline_paragraphs",
]

FAR_BELOW_MARGIN = 0.2  # a best score this far under the threshold: lowering it would add noise
MAX_FOCUS_KEYWORDS = 6


def _mentioned(context: ScreenContext, question: str) -> list[KeywordStats]:
    lowered = question.lower()
    return [s for s in context.keyword_stats if s.keyword.lower() in lowered]


def _keyword_line(stats: KeywordStats, ctx: ScreenContext, lang: str) -> str:
    kw = quote(lang, stats.keyword)
    threshold = f"{ctx.threshold:.2f}"
    if stats.best_score is None:
        return say(lang, "focus_no_regions", kw=kw)
    where = best_where(stats, ctx, lang)
    best = f"{stats.best_score:.3f}"
    if stats.matches == 0:
        needed = floor_2dp(stats.best_score)
        if stats.best_score < ctx.threshold - FAR_BELOW_MARGIN:
            return say(
                lang, "focus_far", kw=kw, threshold=threshold, best=best, where=where, needed=f"{needed:.2f}"
            )
        images = max(1, sum(v >= needed for v in stats.best_below))
        return say(
            lang,
            "focus_none",
            kw=kw,
            threshold=threshold,
            best=best,
            where=where,
            needed=f"{needed:.2f}",
            images=say(lang, "image_one") if images == 1 else say(lang, "images_n", n=images),
        )
    lowest = ", ".join(f"{v:.3f}" for v in stats.lowest_matches)
    text = say(
        lang,
        "focus_some",
        kw=kw,
        matches=stats.matches,
        matched=stats.images_matched,
        done=ctx.images_done,
        threshold=threshold,
        best=best,
        where=where,
        lowest=lowest,
    )
    if stats.best_below and stats.best_below[0] >= ctx.threshold - NEAR_MISS_MARGIN * 2:
        text += say(
            lang,
            "focus_missing",
            missed=", ".join(f"{v:.3f}" for v in stats.best_below),
            needed=f"{floor_2dp(stats.best_below[0]):.2f}",
        )
    higher = min(1.0, math.ceil(round(ctx.threshold * 10 + 0.5, 6)) / 10)
    left = stats.matches_at_or_above(higher)
    if left is not None and higher > ctx.threshold and left < stats.matches:
        text += say(lang, "focus_keep", higher=f"{higher:.2f}", left=left)
    return text


def focus_lines(context: ScreenContext, question: str, topic: str | None, lang: str) -> list[str]:
    """Lines about what `question` asks: the keywords it names; for a question about the
    threshold, also every keyword (at most six); the current value of the setting of
    `topic` (``threshold``, ``merging``, ``points``, ``profiles``)."""
    ctx = context
    lines: list[str] = []
    if topic == "threshold":
        lines.append(say(lang, "threshold_now", threshold=f"{ctx.threshold:.2f}"))
    elif topic == "merging":
        lines.append(say(lang, "merge_now", merge=f"{ctx.merge_threshold:.2f}"))
    elif topic == "points" and ctx.points_per_side is not None:
        masks_ms = ctx.mask_generation_ms
        if masks_ms is not None:
            lines.append(
                say(lang, "points_now", points=ctx.points_per_side, seconds=f"{masks_ms / 1000:.1f}")
            )
        else:
            lines.append(say(lang, "points_now_no_time", points=ctx.points_per_side))
    elif topic == "profiles" and ctx.profile:
        lines.append(
            say(
                lang,
                "profile_now",
                profile=ctx.profile,
                embedder=ctx.embedder or "?",
                language=ctx.embedder_language or "?",
            )
        )
    named = _mentioned(ctx, question)
    if not named and topic == "threshold":
        named = list(ctx.keyword_stats)
    lines.extend("- " + _keyword_line(s, ctx, lang) for s in named[:MAX_FOCUS_KEYWORDS])
    return lines


def _section(guide: str, question: str, lang: str) -> GuideSection | None:
    return guide_excerpt(BUILTIN_GUIDE_ZH if lang == "zh" else guide, question)


def offline_paragraphs(
    question: str,
    context: ScreenContext | None,
    facts: Sequence[Suggestion],
    *,
    guide: str,
    lang: str,
    lead: str,
    earlier_answers: Sequence[str] = (),
) -> list[str]:
    """The offline answer as Markdown paragraphs, in `lang` (``en`` or ``zh``), opening
    with `lead` (why the advisor answers). `earlier_answers` are the conversation's
    previous assistant messages: the screen summary is not repeated when one of them
    already showed it."""
    paragraphs = [f"_{lead}_"]
    ranked = rank_sections(BUILTIN_GUIDE_ZH if lang == "zh" else guide, question)
    topic = next((section.topic for score, section in ranked if section.topic and score >= 1.5), None)
    if context is not None:
        focus = focus_lines(context, question, topic, lang)
        summary = describe_context(context, lang)
        if focus:
            paragraphs.append("\n".join(focus))
        elif not any(summary in answer for answer in earlier_answers):
            paragraphs.append(summary)
        if facts:
            lines = [f"{i}. {s.reason}" for i, s in enumerate(facts, start=1)]
            paragraphs.append(say(lang, "suggestions") + "\n" + "\n".join(lines))
        elif not focus:
            paragraphs.append(say(lang, "nothing_to_change"))
    else:
        paragraphs.append(say(lang, "no_context"))
    section = _section(guide, question, lang)
    if section is not None:
        body = section.text.split("\n", 1)[1].strip() if section.text.startswith("#") else section.text
        paragraphs.append(f"{say(lang, 'from_guide', title=section.title)}\n\n{body}")
    return paragraphs


# -- plain-language account -----------------------------------------------------------
def describe_context(context: ScreenContext, lang: str = "en") -> str:
    """A few lines saying what was found per keyword, with the numbers, in `lang`
    (Markdown). Images are named by file name."""
    ctx = context
    lines: list[str] = []
    where = say(lang, "where_one") if ctx.images_total == 1 else say(lang, "where_many", n=ctx.images_total)
    if ctx.images_total == 1 and ctx.subject_name:
        where += f" {ctx.subject_name}"
    if ctx.images_total == 1 and ctx.largest_image_hw:
        where += say(lang, "where_px", w=ctx.largest_image_hw[1], h=ctx.largest_image_hw[0])
    if ctx.scope == "job" and ctx.images_done != ctx.images_total:
        where += say(lang, "where_progress", done=ctx.images_done, failed=ctx.images_failed)
    query = ", ".join([*ctx.keywords, *(f"-{e}" for e in ctx.exclusions)]) or say(lang, "no_query")
    setup = say(
        lang,
        "setup",
        threshold=f"{ctx.threshold:.2f}",
        merge=f"{ctx.merge_threshold:.2f}",
        mode=say(lang, f"mode_{ctx.params.mode}"),
    )
    if ctx.profile:
        setup += say(lang, "setup_profile", profile=ctx.profile)
    if ctx.device:
        setup += say(lang, "setup_device", device=ctx.device)
    lines.append(say(lang, "looking_at", where=where, query=query, setup=setup))
    if ctx.meaningless:
        lines.append(say(lang, "tiny_warning"))
    if ctx.images_done:
        lines.append(
            say(
                lang,
                "images_match",
                matched=ctx.images_matched,
                done=ctx.images_done,
                why=_why_unmatched(ctx, lang),
                regions=f"{ctx.regions_mean:.0f}",
            )
        )
    lines.extend("- " + _describe_keyword(stats, ctx, lang) for stats in ctx.keyword_stats)
    lines.extend(f"- {say(lang, 'excluded', word=w, count=n)}" for w, n in ctx.exclusion_hits.items())
    masks_ms = ctx.mask_generation_ms
    if masks_ms is not None:
        embed = ctx.timings_ms.get("embed_regions")
        extra = say(lang, "embed_time", seconds=f"{embed / 1000:.1f}") if embed is not None else ""
        lines.append(say(lang, "mask_time", seconds=f"{masks_ms / 1000:.1f}", embed=extra))
    elif ctx.cache_hit_images:
        lines.append(say(lang, "from_cache"))
    return "\n".join(lines)


def _why_unmatched(ctx: ScreenContext, lang: str) -> str:
    """Why images do not match, in brackets (empty when they all do): the exclusions that
    hit, the keywords `mode=all` misses, or the threshold nothing reached."""
    if ctx.images_matched >= ctx.images_done:
        return ""
    reasons = [say(lang, "why_excluded", n=n, word=word) for word, n in ctx.exclusion_hits.items()]
    if ctx.params.mode == "all":
        absent = [s.keyword for s in ctx.keyword_stats if s.images_matched < ctx.images_done]
        if absent:
            reasons.append(say(lang, "why_all", keywords=", ".join(absent)))
    if not reasons:
        reasons.append(say(lang, "why_threshold", threshold=f"{ctx.threshold:.2f}"))
    return say(lang, "why_open") + say(lang, "why_sep").join(reasons) + say(lang, "why_close")


def best_where(stats: KeywordStats, ctx: ScreenContext, lang: str) -> str:
    """`` in <file>`` for the image holding the keyword's best score, when there are
    several images to tell apart."""
    if ctx.images_done > 1 and stats.best_image:
        return say(lang, "kw_in_file", file=stats.best_image)
    return ""


def _describe_keyword(stats: KeywordStats, ctx: ScreenContext, lang: str) -> str:
    if stats.best_score is None:
        return say(lang, "kw_no_regions", kw=stats.keyword)
    where = best_where(stats, ctx, lang)
    if stats.matches == 0:
        return say(
            lang,
            "kw_no_match",
            kw=stats.keyword,
            best=f"{stats.best_score:.3f}",
            where=where,
            threshold=f"{ctx.threshold:.2f}",
        )
    images = (
        say(lang, "kw_in_images", matched=stats.images_matched, done=ctx.images_done)
        if ctx.images_done > 1
        else ""
    )
    text = say(
        lang,
        "kw_matches",
        kw=stats.keyword,
        matches=stats.matches,
        images=images,
        best=f"{stats.best_score:.3f}",
        where=where,
    )
    if stats.matches > 1:
        text += say(lang, "kw_lowest", lowest=_scores(stats.lowest_matches))
    if stats.best_below:
        text += say(lang, "kw_missed", missed=_scores(stats.best_below))
    return text + ("。" if lang == "zh" else ".")


def _scores(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)
