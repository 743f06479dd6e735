"""The AI Assistant module (chat with streaming answers, example questions, conversation
list) and the compact assistant panel beside the segmentation results.

Both speak to ``/api/v1/assistant/...`` only and ask for answers in the UI's language.
A suggestion that changes a control (thresholds, keywords, points per side) has an Apply
button that sets the control panel and re-queries from the cache at once; a suggestion
that is advice only (a profile: switching models means a new job) is labelled so and has
no Apply button. When the LLM fails, the back end says so in an ``error`` event and the offline
advisor answers; the UI shows both and stays usable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import pandas as pd

from seglens.ui.assistant_cards import applicable, context_line_text, say, suggestion_cards
from seglens.ui.client import ApiError
from seglens.ui.context import UiContext
from seglens.ui.i18n import Translator, t
from seglens.ui.results import Renderer, compose_query
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import Session
from seglens.ui.views import MAX_SUGGESTIONS, describe_suggestion, notice_html

__all__ = ["AssistantUI"]

EXAMPLE_KEYS = ("ex_q1", "ex_q2", "ex_q3", "ex_q4")


class _ChatWidgets:
    """The pieces one chat surface is made of (the module and the panel each have one)."""

    def __init__(self, prefix: str, chatbot: Any, box: Any, send: Any, suggestions: Any, apply: list[Any]):
        self.prefix = prefix
        self.chatbot = chatbot
        self.box = box
        self.send = send
        self.suggestions = suggestions
        self.apply = apply


class AssistantUI:
    def __init__(self, ctx: UiContext, tr: Translator, seg: SegmentationLayout, notice: Any) -> None:
        self.ctx = ctx
        self.tr = tr
        self.seg = seg
        self.notice = notice

    # -- layout --------------------------------------------------------------------------
    def build_module(self) -> None:
        tr, en = self.tr, "en"
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                self.status = gr.Markdown("", elem_id="assistant-status")
                chatbot = tr.label(
                    gr.Chatbot(label=t(en, "chat"), elem_id="chat", height=420, buttons=["copy"]), "chat"
                )
                with gr.Row():
                    box = tr.label(
                        gr.Textbox(label=t(en, "chat_input"), elem_id="chat-input", scale=5, max_lines=4),
                        "chat_input",
                    )
                    send = tr.value(
                        gr.Button(t(en, "send"), variant="primary", elem_id="chat-send", scale=1), "send"
                    )
                self.examples_title = tr.value(gr.Markdown(t(en, "example_questions")), "example_questions")
                with gr.Row():
                    self.example_buttons = [
                        tr.value(gr.Button(t(en, key), size="sm", elem_id=f"chat-example-{i}"), key)
                        for i, key in enumerate(EXAMPLE_KEYS, start=1)
                    ]
                self.suggestions_title = tr.value(gr.Markdown(t(en, "suggestions")), "suggestions")
                suggestions = gr.HTML(suggestion_cards([], en, "chat"), elem_id="chat-suggestions")
                with gr.Row():
                    apply = [
                        gr.Button(t(en, "apply_n", n=i), size="sm", visible=False, elem_id=f"chat-apply-{i}")
                        for i in range(1, MAX_SUGGESTIONS + 1)
                    ]
                self.context_line = gr.Markdown("", elem_id="chat-context")
            with gr.Column(scale=2, min_width=260):
                self.conversations = tr.label(
                    gr.Dataframe(
                        label=t(en, "conversations"),
                        interactive=False,
                        elem_id="conversations",
                        max_height=360,
                        wrap=True,
                    ),
                    "conversations",
                )
                with gr.Row():
                    self.new = tr.value(
                        gr.Button(t(en, "new_chat"), size="sm", elem_id="chat-new"), "new_chat"
                    )
                    self.open = tr.value(
                        gr.Button(t(en, "open_conversation"), size="sm", elem_id="chat-open"),
                        "open_conversation",
                    )
                with gr.Row():
                    self.delete = tr.value(
                        gr.Button(t(en, "delete_conversation"), size="sm", elem_id="chat-delete"),
                        "delete_conversation",
                    )
                    self.clear = tr.value(
                        gr.Button(
                            t(en, "clear_conversations"), size="sm", variant="stop", elem_id="chat-clear"
                        ),
                        "clear_conversations",
                    )
                self.export = tr.value(
                    gr.Button(t(en, "export_conversation"), size="sm", elem_id="chat-export"),
                    "export_conversation",
                )
                self.export_file = gr.File(interactive=False, elem_id="chat-file", visible=False)
        self.main = _ChatWidgets("chat", chatbot, box, send, suggestions, apply)
        self.picked: Any = None

    def build_panel(self) -> None:
        tr, en = self.tr, "en"
        self.panel_title = tr.value(gr.Markdown(f"### {t(en, 'assistant')}"), "assistant")
        self.panel_status = gr.Markdown("", elem_id="panel-status")
        self.advise_button = tr.value(gr.Button(t(en, "advise"), size="sm", elem_id="panel-advise"), "advise")
        chatbot = gr.Chatbot(elem_id="panel-chat", height=240, show_label=False, buttons=[])
        box = tr.label(gr.Textbox(label=t(en, "panel_ask"), elem_id="panel-input", max_lines=3), "panel_ask")
        send = tr.value(gr.Button(t(en, "send"), size="sm", elem_id="panel-send"), "send")
        suggestions = gr.HTML(suggestion_cards([], en, "panel"), elem_id="panel-suggestions")
        apply = [
            gr.Button(t(en, "apply_n", n=i), size="sm", visible=False, elem_id=f"panel-apply-{i}")
            for i in range(1, MAX_SUGGESTIONS + 1)
        ]
        self.panel = _ChatWidgets("panel", chatbot, box, send, suggestions, apply)

    # -- language ------------------------------------------------------------------------
    @property
    def relabel_outputs(self) -> list[Any]:
        return [
            self.status,
            self.panel_status,
            self.main.suggestions,
            self.panel.suggestions,
            *self.main.apply,
            *self.panel.apply,
        ]

    def relabel(self, session: Session) -> dict[Any, Any]:
        out = self.status_outputs(session)
        out.update(self._suggestion_outputs(session, self.main, session.suggestions))
        out.update(self._suggestion_outputs(session, self.panel, session.panel_suggestions))
        return out

    # -- status and context ---------------------------------------------------------------------
    def status_outputs(self, session: Session) -> dict[Any, Any]:
        try:
            status = self.ctx.client.assistant_status()
        except ApiError as error:
            text = (
                t(session.lang, "assistant_unavailable")
                if error.status in (404, 405)
                else self.ctx.describe(error, session)
            )
            return {self.status: text, self.panel_status: text}
        if status.get("llm_on"):
            text = t(
                session.lang,
                "assistant_status_on",
                model=status.get("model"),
                base_url=status.get("base_url"),
            )
        else:
            text = t(session.lang, "assistant_status_off", reason=status.get("reason") or "off")
        return {self.status: text, self.panel_status: text}

    @staticmethod
    def screen_context(
        session: Session, keywords: str, exclude: str, mode: str, threshold: float, merge: float
    ) -> dict[str, Any] | None:
        """What the user is looking at: the image shown large with the query and knobs on
        screen, else the session's job."""
        params: dict[str, Any] = {
            "threshold": float(threshold),
            "merge_threshold": float(merge),
            "mode": mode or "any",
            "points_per_side": session.job_points_per_side,
        }
        query = compose_query(keywords, exclude) or (session.job or {}).get("query", "")
        if session.view is not None and query:
            return {"image_id": session.view.image_id, "query": query, "params": params}
        if session.job_id:
            return {"job_id": session.job_id}
        return None

    # -- chat ------------------------------------------------------------------------------
    def _suggestion_outputs(
        self, session: Session, w: _ChatWidgets, suggestions: list[dict[str, Any]]
    ) -> dict[Any, Any]:
        out: dict[Any, Any] = {w.suggestions: suggestion_cards(suggestions, session.lang, w.prefix)}
        for i, button in enumerate(w.apply):
            visible = i < len(suggestions) and applicable(suggestions[i])
            out[button] = gr.update(visible=visible, value=t(session.lang, "apply_n", n=i + 1))
        return out

    def _store(self, session: Session, w: _ChatWidgets, suggestions: list[dict[str, Any]]) -> None:
        if w is self.main:
            session.suggestions = suggestions
        else:
            session.panel_suggestions = suggestions

    def chat(
        self,
        w: _ChatWidgets,
        session: Session,
        message: str,
        history: list[dict[str, Any]] | None,
        keywords: str,
        exclude: str,
        mode: str,
        threshold: float,
        merge: float,
    ) -> Iterator[dict[Any, Any]]:
        message = (message or "").strip()
        if not message:
            yield {}
            return
        lang = session.lang
        history = [
            *(history or []),
            {"role": "user", "content": message},
            {"role": "assistant", "content": "…"},
        ]
        suggestions: list[dict[str, Any]] = []
        yield {w.chatbot: history, w.box: ""}
        context = self.screen_context(session, keywords, exclude, mode, threshold, merge)
        conversation = session.conversation_id if w is self.main else None
        answer = ""
        try:
            events = self.ctx.client.assistant_chat(
                message, conversation_id=conversation, context=context, lang=lang
            )
            for event in events:
                data = event.data if isinstance(event.data, dict) else {}
                if event.event == "conversation" and w is self.main:
                    session.conversation_id = data.get("conversation_id")
                elif event.event == "text":
                    answer += str(data.get("text", ""))
                    history[-1] = {"role": "assistant", "content": answer}
                    yield {w.chatbot: history}
                elif event.event == "suggestion" and isinstance(data.get("suggestion"), dict):
                    suggestions.append(data["suggestion"])
                    self._store(session, w, suggestions)
                    yield self._suggestion_outputs(session, w, suggestions)
                elif event.event == "error":
                    text = t(lang, "llm_error", message=data.get("message", data.get("code", "?")))
                    history.insert(len(history) - 1, {"role": "assistant", "content": f"⚠ {text}"})
                    gr.Warning(text)
                    yield {w.chatbot: history}
                elif event.event == "done":
                    reply = data.get("reply") or {}
                    if not answer and reply.get("content"):
                        answer = str(reply["content"])
                    if not suggestions and reply.get("suggestions"):
                        suggestions = list(reply["suggestions"])
                        self._store(session, w, suggestions)
        except ApiError as error:
            text = self.ctx.describe(error, session)
            gr.Warning(text)
            answer = answer or f"⚠ {text}"
        history[-1] = {"role": "assistant", "content": answer or "…"}
        out = {w.chatbot: history, **self._suggestion_outputs(session, w, suggestions)}
        if w is self.main:
            out[self.conversations] = self._conversation_table(session)
            out[self.context_line] = t(lang, "context_line", context=context_line_text(session, context))
        yield out

    def advise(
        self,
        session: Session,
        history: list[dict[str, Any]] | None,
        keywords: str,
        exclude: str,
        mode: str,
        threshold: float,
        merge: float,
    ) -> dict[Any, Any]:
        """The offline advisor's suggestions for what is on screen (no LLM, instant)."""
        w = self.panel
        context = self.screen_context(session, keywords, exclude, mode, threshold, merge)
        if context is None:
            return {self.notice: notice_html(t(session.lang, "select_result"), "info")}
        params: dict[str, Any] = {"job_id": context.get("job_id"), "lang": session.lang}
        if "image_id" in context:
            params = {
                "image_id": context["image_id"],
                "query": context["query"],
                "lang": session.lang,
                **context["params"],
            }
        try:
            advice = self.ctx.client.advice(**params)
        except ApiError as error:
            text = self.ctx.describe(error, session)
            gr.Warning(text)
            return {self.notice: notice_html(text)}
        suggestions = list(advice.get("suggestions", []))
        self._store(session, w, suggestions)
        summary = str(advice.get("summary") or "")  # in session.lang, written by the server
        history = [*(history or []), {"role": "assistant", "content": summary or "—"}]
        return {
            w.chatbot: history,
            **self._suggestion_outputs(session, w, suggestions),
            self.notice: notice_html(""),
        }

    def apply(self, w: _ChatWidgets, index: int, session: Session) -> dict[Any, Any]:
        """Set the controls a suggestion names; the caller chains a re-render from cache."""
        suggestions = session.suggestions if w is self.main else session.panel_suggestions
        if not 0 <= index < len(suggestions):
            return {}
        s = suggestions[index]
        if not applicable(s):
            text = say(session.lang, "not_applied", n=index + 1, what=describe_suggestion(s))
            gr.Info(text)
            return {self.notice: notice_html(text, "info")}
        out: dict[Any, Any] = {}
        if s.get("threshold") is not None:
            out[self.seg.threshold] = float(s["threshold"])
        if s.get("merge_threshold") is not None:
            out[self.seg.merge] = float(s["merge_threshold"])
        if s.get("points_per_side") is not None:
            out[self.seg.points_per_side] = int(s["points_per_side"])
        if s.get("keywords"):
            out[self.seg.keywords] = ", ".join(str(k) for k in s["keywords"])
            out[self.seg.exclude] = ""
        text = t(session.lang, "applied", what=describe_suggestion(s, session.lang))
        gr.Info(text)
        out[self.notice] = notice_html(text, "info")
        return out

    def translate(self, session: Session, keywords: str, exclude: str) -> dict[Any, Any]:
        """Keywords the embedder cannot read, translated to English by the assistant; the
        result lands in the keywords boxes, where it can be edited before use."""
        terms = [p for p in compose_query(keywords, exclude).split(", ") if p]
        if not terms:
            return {self.notice: notice_html(t(session.lang, "no_keywords"), "info")}
        try:
            answer = self.ctx.client.translate(terms)
        except ApiError as error:
            text = self.ctx.describe(error, session)
            gr.Warning(text)
            return {self.notice: notice_html(text)}
        translated = [str(k) for k in answer.get("keywords", terms)]
        if not answer.get("changed"):
            note = str(answer.get("note") or "—")
            return {self.notice: notice_html(t(session.lang, "not_translated", note=note), "info")}
        words = [k for k in translated if not k.startswith("-")]
        excluded = [k[1:] for k in translated if k.startswith("-")]
        text = t(session.lang, "translated", before=", ".join(terms), after=", ".join(translated))
        return {
            self.seg.keywords: ", ".join(words),
            self.seg.exclude: ", ".join(excluded),
            self.notice: notice_html(text, "info"),
        }

    # -- conversations -------------------------------------------------------------------------
    def _conversation_table(self, session: Session) -> pd.DataFrame:
        columns = [t(session.lang, "col_query"), "#", t(session.lang, "col_time"), t(session.lang, "col_ref")]
        try:
            page = self.ctx.client.conversations(limit=100)
        except ApiError:
            return pd.DataFrame([], columns=columns)
        rows = [
            [
                c.get("title", ""),
                c.get("message_count", 0),
                str(c.get("updated_at", ""))[:19].replace("T", " "),
                c["id"],
            ]
            for c in page.get("items", [])
        ]
        return pd.DataFrame(rows, columns=columns)

    def refresh(self, session: Session) -> dict[Any, Any]:
        return {**self.status_outputs(session), self.conversations: self._conversation_table(session)}

    def pick(self, session: Session, evt: gr.SelectData) -> None:
        row = evt.row_value or []
        session.history_pick = ("conversation", str(row[3])) if len(row) >= 4 else None

    def _picked(self, session: Session) -> str | None:
        pick = session.history_pick
        return pick[1] if pick and pick[0] == "conversation" else session.conversation_id

    def new_chat(self, session: Session) -> dict[Any, Any]:
        session.conversation_id = None
        session.suggestions = []
        return {self.main.chatbot: [], **self._suggestion_outputs(session, self.main, [])}

    def open_conversation(self, session: Session) -> dict[Any, Any]:
        conversation_id = self._picked(session)
        if not conversation_id:
            return {}
        try:
            detail = self.ctx.client.conversation(conversation_id)
        except ApiError as error:
            return {self.notice: notice_html(self.ctx.describe(error, session))}
        session.conversation_id = conversation_id
        history = [{"role": m["role"], "content": m["content"]} for m in detail.get("messages", [])]
        last = [m for m in detail.get("messages", []) if m["role"] == "assistant"]
        session.suggestions = list(last[-1].get("suggestions", [])) if last else []
        return {
            self.main.chatbot: history,
            **self._suggestion_outputs(session, self.main, session.suggestions),
        }

    def delete_conversation(self, session: Session) -> dict[Any, Any]:
        conversation_id = self._picked(session)
        if conversation_id:
            try:
                self.ctx.client.delete_conversation(conversation_id)
            except ApiError as error:
                return {self.notice: notice_html(self.ctx.describe(error, session))}
            if session.conversation_id == conversation_id:
                session.conversation_id = None
        session.history_pick = None
        return {self.conversations: self._conversation_table(session)}

    def clear_conversations(self, session: Session) -> dict[Any, Any]:
        try:
            self.ctx.client.clear_conversations()
        except ApiError as error:
            return {self.notice: notice_html(self.ctx.describe(error, session))}
        session.conversation_id = None
        return {self.conversations: self._conversation_table(session), self.main.chatbot: []}

    def export_conversation(self, session: Session) -> dict[Any, Any]:
        conversation_id = self._picked(session)
        if not conversation_id:
            return {}
        try:
            name, data = self.ctx.client.export_conversation(conversation_id, "md")
        except ApiError as error:
            return {self.notice: notice_html(self.ctx.describe(error, session))}
        return {self.export_file: gr.update(value=self.ctx.save_download(name, data), visible=True)}

    # -- wiring ----------------------------------------------------------------------------
    def wire(self, session: Any, renderer: Renderer, controls: set[Any]) -> None:
        seg = self.seg
        chat_inputs = [seg.keywords, seg.exclude, seg.mode, seg.threshold, seg.merge]
        rerender_outputs = [seg.pad, seg.view, seg.regions, seg.results, self.notice]
        for w in (self.main, self.panel):
            chat_outputs = [w.chatbot, w.box, w.suggestions, *w.apply, self.conversations, self.context_line]

            def run(
                s: Session,
                m: str,
                h: Any,
                k: str,
                e: str,
                mo: str,
                th: float,
                me: float,
                _w: _ChatWidgets = w,
            ) -> Iterator[dict[Any, Any]]:
                yield from self.chat(_w, s, m, h, k, e, mo, th, me)

            args = {"fn": run, "outputs": chat_outputs, "concurrency_limit": None, "show_progress": "hidden"}
            w.send.click(inputs=[session, w.box, w.chatbot, *chat_inputs], **args)
            w.box.submit(inputs=[session, w.box, w.chatbot, *chat_inputs], **args)
            if w is self.main:
                for button in self.example_buttons:
                    button.click(inputs=[session, button, w.chatbot, *chat_inputs], **args)
            for i, button in enumerate(w.apply):

                def do_apply(s: Session, _w: _ChatWidgets = w, _i: int = i) -> dict[Any, Any]:
                    return self.apply(_w, _i, s)

                button.click(
                    do_apply,
                    [session],
                    [seg.threshold, seg.merge, seg.points_per_side, seg.keywords, seg.exclude, self.notice],
                ).then(renderer.refresh, controls, rerender_outputs, show_progress="hidden")
        self.advise_button.click(
            self.advise,
            [session, self.panel.chatbot, *chat_inputs],
            [self.panel.chatbot, self.panel.suggestions, *self.panel.apply, self.notice],
        )
        seg.translate.click(
            self.translate, [session, seg.keywords, seg.exclude], [seg.keywords, seg.exclude, self.notice]
        )
        conv_outputs = [self.status, self.panel_status, self.conversations]
        self.tab_select_outputs = conv_outputs
        self.conversations.select(self.pick, [session], None)
        self.new.click(self.new_chat, [session], [self.main.chatbot, self.main.suggestions, *self.main.apply])
        self.open.click(
            self.open_conversation,
            [session],
            [self.main.chatbot, self.main.suggestions, *self.main.apply, self.notice],
        )
        self.delete.click(self.delete_conversation, [session], [self.conversations, self.notice])
        self.clear.click(
            self.clear_conversations, [session], [self.conversations, self.main.chatbot, self.notice]
        )
        self.export.click(self.export_conversation, [session], [self.export_file, self.notice])
