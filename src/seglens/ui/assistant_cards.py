"""The assistant's suggestion cards and context line: which suggestions Apply can apply,
advice-only cards labelled as such, images named by file name. Pure HTML/text helpers."""

from __future__ import annotations

import re
from typing import Any

from seglens.ui.state import Session
from seglens.ui.views import MAX_SUGGESTIONS, suggestion_html

__all__ = ["applicable", "context_line_text", "say", "suggestion_cards"]

# The assistant panel's own words (the shared catalogue is ui/i18n.py).
_WORDS: dict[str, dict[str, str]] = {
    "advice_only": {"en": "Advice only: nothing to apply", "zh": "仅供参考：没有可应用的设置"},
    "not_applied": {
        "en": "#{n} is advice only: nothing was changed. {what}",
        "zh": "第 {n} 条仅供参考：没有修改任何设置。{what}",
    },
    "image": {"en": "image", "zh": "图片"},
    "job": {"en": "job", "zh": "任务"},
    "threshold": {"en": "threshold", "zh": "阈值"},
    "merge": {"en": "merge", "zh": "合并"},
}


def say(lang: str, key: str, **fields: Any) -> str:
    """The panel's own `key` text in `lang` (English for another language)."""
    table = _WORDS[key]
    return table.get(lang, table["en"]).format(**fields)


def applicable(suggestion: dict[str, Any]) -> bool:
    """Whether Apply would change a control: the server says so in ``applicable``;
    suggestions stored before that field are judged by their settings."""
    if "applicable" in suggestion:
        return bool(suggestion["applicable"])
    return any(
        suggestion.get(name) is not None for name in ("threshold", "merge_threshold", "points_per_side")
    ) or bool(suggestion.get("keywords"))


def suggestion_cards(suggestions: list[dict[str, Any]], lang: str, prefix: str) -> str:
    """The numbered cards (`suggestion_html`), each advice-only card marked
    ``data-applicable="false"`` and labelled as advice."""
    html = suggestion_html(suggestions, lang, prefix)
    label = f'<i class="sl-advice-only">{say(lang, "advice_only")}</i><br>'
    for i, s in enumerate(suggestions[:MAX_SUGGESTIONS], start=1):
        card = re.compile(rf'(<div class="sl-suggestion" data-index="{i}")([^>]*>)')
        if applicable(s):
            html = card.sub(r'\1 data-applicable="true"\2', html, count=1)
        else:
            html = card.sub(
                lambda m: f'{m.group(1)} data-applicable="false"{m.group(2)}{label}', html, count=1
            )
    return html


def context_line_text(session: Session, context: dict[str, Any] | None) -> str:
    """What the assistant looked at, naming the image by its file name."""
    if not context:
        return "—"
    lang = session.lang
    if "image_id" in context:
        entry = session.results.get(context["image_id"])
        name = entry.filename if entry is not None else None
        if name is None:
            name = next((i.filename for i in session.images if i.id == context["image_id"]), None)
        params = context["params"]
        return (
            f"{say(lang, 'image')} {name or context['image_id'][:10] + '…'} · {context['query']} · "
            f"{say(lang, 'threshold')} {params['threshold']:.2f} · {say(lang, 'merge')} "
            f"{params['merge_threshold']:.2f}"
        )
    return f"{say(lang, 'job')} {context['job_id'][:10]}…"
