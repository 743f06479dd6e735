"""Suggestion cards: Apply only where it changes a control; advice-only cards say so;
the context line names the image by file name."""

from __future__ import annotations

from types import SimpleNamespace

from seglens.ui.assistant import AssistantUI
from seglens.ui.assistant_cards import applicable, context_line_text, suggestion_cards
from seglens.ui.state import ResultEntry, Session

THRESHOLD = {"reason": "lower it", "rule": "lower_threshold", "threshold": 0.43, "applicable": True}
PROFILE = {"reason": "random weights", "rule": "tiny_profile", "profile": "cpu-fast", "applicable": False}


def _ui() -> AssistantUI:
    seg = SimpleNamespace(
        threshold="threshold", merge="merge", points_per_side="points", keywords="keywords", exclude="exclude"
    )
    ui = AssistantUI(ctx=None, tr=None, seg=seg, notice="notice")  # type: ignore[arg-type]
    ui.panel = SimpleNamespace(apply=[])  # type: ignore[assignment]
    ui.main = SimpleNamespace(apply=[])  # type: ignore[assignment]
    return ui


def test_advice_only_cards_are_labelled_and_applicable_ones_are_not() -> None:
    html = suggestion_cards([THRESHOLD, PROFILE], "en", "chat")
    assert (
        'data-index="1" data-applicable="true"' in html and 'data-index="2" data-applicable="false"' in html
    )
    assert html.count("Advice only") == 1
    assert "仅供参考" in suggestion_cards([PROFILE], "zh", "panel")


def test_suggestions_stored_before_the_flag_are_judged_by_their_settings() -> None:
    assert applicable({"threshold": 0.4}) and applicable({"keywords": ["cat"]})
    assert not applicable({"profile": "zh"}) and not applicable({"keywords": []})


def test_apply_on_advice_changes_no_control_and_says_so() -> None:
    ui = _ui()
    session = Session(panel_suggestions=[THRESHOLD, PROFILE])
    applied = ui.apply(ui.panel, 0, session)
    advice = ui.apply(ui.panel, 1, session)
    assert applied["threshold"] == 0.43
    assert set(advice) == {"notice"} and "advice only: nothing was changed" in advice["notice"]


def test_the_context_line_names_the_image_by_file_name() -> None:
    session = Session(results={"15d43fe4df00": ResultEntry("15d43fe4df00", "IMG_4021.jpg", 0, "done")})
    context = {
        "image_id": "15d43fe4df00",
        "query": "cat",
        "params": {"threshold": 0.5, "merge_threshold": 0.7},
    }
    line = context_line_text(session, context)
    assert line.startswith("image IMG_4021.jpg · cat") and "15d43fe4df" not in line
