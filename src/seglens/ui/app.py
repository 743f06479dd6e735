"""The web UI: a Gradio Blocks app with two modules (Image Segmentation, AI Assistant),
English and Simplified Chinese text, and a header that says which back end it talks to.

`build_ui(api_url)` builds it; `mount_ui(app, api_url)` mounts it at ``/ui`` on a FastAPI
app (``seglens serve``); `create_ui_app(api_url)` is a FastAPI app with only the UI
(``seglens ui --api-url URL``). The UI talks to the back end only through `ApiClient`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from seglens.ui.assistant import AssistantUI
from seglens.ui.camera import CAPTURE_JS, STREAM_EVERY_S, CameraHandlers
from seglens.ui.client import ApiClient, ApiError
from seglens.ui.context import UiContext
from seglens.ui.guard import protect_ui
from seglens.ui.i18n import EN, LANGUAGES, Translator, pick_language, t
from seglens.ui.jobs import JobHandlers
from seglens.ui.logs import LogHandlers, translate_charts
from seglens.ui.persist import SessionKeeper, browser_state, parse_snapshot
from seglens.ui.results import Renderer, compose_query
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import Session
from seglens.ui.uploads import UploadedFiles
from seglens.ui.viewer import ViewerData
from seglens.ui.views import notice_html, warning_html

__all__ = ["CSS", "UI_PATH", "build_ui", "create_ui_app", "mount_ui", "redirect_home"]

UI_PATH = "/ui"

CSS = """
#sl-header {align-items: center; gap: 18px;}
#lang {flex-grow: 0;}
#pad {max-width: 190px; margin: 0 auto;}
#pad-caption {font-size: .8rem; text-align: center;}
#sl-header h1 {margin: 0; font-size: 1.5rem;}
.sl-tiny {background: #b91c1c; color: #fff; padding: 6px 12px; border-radius: 6px; font-weight: 600;}
.sl-notice {padding: 6px 12px; border-radius: 6px; margin: 2px 0;}
/* Notices time out (the next action or health check replaces them sooner). */
.sl-notice.sl-info {animation: sl-fade .4s ease-in 10s forwards;}
.sl-notice.sl-error {animation: sl-fade .4s ease-in 45s forwards;}
@keyframes sl-fade {to {opacity: 0; height: 0; padding: 0; margin: 0; border-width: 0; overflow: hidden;}}
.sl-error {background: #fef2f2; color: #991b1b; border: 1px solid #fecaca;}
.sl-info {background: #eff6ff; color: #1e3a8a; border: 1px solid #bfdbfe;}
.sl-bar {height: 14px; background: #e5e7eb; border-radius: 7px; overflow: hidden;}
.sl-fill {height: 100%; background: #2563eb; transition: width .3s;}
.sl-fill.sl-completed {background: #16a34a;}
.sl-fill.sl-cancelled, .sl-fill.sl-interrupted {background: #f59e0b;}
.sl-fill.sl-failed {background: #dc2626;}
.sl-progress-text {font-size: .9rem; margin-top: 4px;}
#backend-status {font-size: .85rem; opacity: .8;}
#nav > .tab-wrapper button {font-size: 1.05rem; font-weight: 600;}
.sl-suggestion {border: 1px solid #d1d5db; border-radius: 8px; padding: 8px 10px; margin: 4px 0;}
.sl-suggestion b {color: #1d4ed8;}
/* The loop: the viewer stays on screen beside the controls while the left column scrolls. */
/* Gradio's container hides overflow, which would make it the sticky column's scroll box;
   clip instead (no scroll box). */
.gradio-container {overflow: clip !important;}
@media (min-width: 900px) {
  #seg-right {position: sticky; top: 4px; align-self: flex-start; max-height: calc(100vh - 8px); overflow-y: auto;}
}
"""


# Programmatic slider / radio changes (the pad, a reopened job, an applied suggestion) fire
# no DOM input event: repaint the viewer from the front end, with no request.
REPAINT_JS = "() => { window.__slViewer && window.__slViewer.repaint(); }"
# After Start, bring the results into view.
SHOW_RESULTS_JS = "() => { document.querySelector('#seg-viewer')?.scrollIntoView({block: 'nearest'}); }"


@dataclass
class _Parts:
    """Everything the wiring functions share."""

    client: ApiClient
    ctx: UiContext
    tr: Translator
    ui: SegmentationLayout
    session: Any
    notice: Any
    tiny: Any
    status: Any
    language: Any
    assistant: AssistantUI
    renderer: Renderer
    jobs: JobHandlers
    logs: LogHandlers
    camera: CameraHandlers
    keeper: SessionKeeper
    saved: Any  # the gr.BrowserState the session is kept in (ui/persist.py)


def build_ui(
    api_url: str,
    *,
    token: str | None = None,
    client: ApiClient | None = None,
    scratch: Path | None = None,
    profiles: list[str] | None = None,
) -> gr.Blocks:
    """The whole UI for the back end at `api_url` (its root, e.g. ``http://127.0.0.1:8000``).
    `profiles` fills the Advanced dropdown (default: asked from the back end, which runs
    one profile; every page load asks again)."""
    client = client or ApiClient(api_url, token=token)
    ctx = UiContext.create(client, scratch)
    profiles = profiles if profiles is not None else _profiles(client)
    tr = Translator()
    with gr.Blocks(title="SegLens", fill_width=True) as demo:
        ctx.uploads = UploadedFiles.of(demo)
        session = gr.State(Session())
        saved = browser_state(api_url)
        language, tiny, status, notice = _build_header(tr)
        with gr.Tabs(elem_id="nav"):
            nav_seg = tr.label(gr.Tab(t("en", "nav_seg"), id="seg", elem_id="nav-seg"), "nav_seg")
            with nav_seg:
                ui = SegmentationLayout(
                    tr, profiles, session=session, viewer_data=ViewerData(client, compose_query)
                )
            nav_assistant = tr.label(
                gr.Tab(t("en", "nav_assistant"), id="assistant", elem_id="nav-assistant"), "nav_assistant"
            )
            with nav_assistant:
                assistant = AssistantUI(ctx, tr, ui, notice)
                assistant.build_module()
        with ui.side:
            assistant.build_panel()
        renderer = Renderer(ctx, ui, notice)
        jobs = JobHandlers(ctx, ui, renderer, notice)
        parts = _Parts(
            client=client,
            ctx=ctx,
            tr=tr,
            ui=ui,
            session=session,
            notice=notice,
            tiny=tiny,
            status=status,
            language=language,
            assistant=assistant,
            renderer=renderer,
            jobs=jobs,
            logs=LogHandlers(ctx, ui, jobs, notice),
            camera=CameraHandlers(ctx, ui, jobs, renderer, notice),
            keeper=SessionKeeper(ctx, ui, jobs, notice),
            saved=saved,
        )
        translate_charts(tr, ui)
        _wire_header(parts, demo, nav_assistant)
        _wire_batch(parts)
        _wire_camera(parts)
        _wire_job(parts)
        _wire_results(parts)
        _wire_logs(parts)
        assistant.wire(session, renderer, ui.inputs())
    demo.queue(default_concurrency_limit=16)
    return demo


def _build_header(tr: Translator) -> tuple[Any, Any, Any, Any]:
    """Title, language switch (on the left: notices pop up on the right), tiny-model
    warning, back end status and the notice line."""
    with gr.Row(elem_id="sl-header"):
        gr.Markdown(f"# {t('en', 'title')}", elem_id="sl-title", scale=0, min_width=140)
        language = gr.Radio(
            [(name, code) for code, name in LANGUAGES.items()],
            value="en",
            show_label=False,
            container=False,
            elem_id="lang",
            scale=0,
            min_width=200,
        )
        tr.value(gr.Markdown(t("en", "subtitle"), elem_id="sl-subtitle"), "subtitle")
    tiny = gr.HTML("", elem_id="tiny-warning")
    status = gr.Markdown("", elem_id="backend-status")
    notice = gr.HTML(notice_html(""), elem_id="notice")
    return language, tiny, status, notice


def _health_check(p: _Parts) -> Any:
    """`check_health(session, with_notice=False)`: the header line and banner; with
    `with_notice`, the notice agrees with them (a back end that went away says so, one that
    came back clears that notice)."""
    ui, client, ctx, tiny, status, notice = p.ui, p.client, p.ctx, p.tiny, p.status, p.notice

    def check_health(session: Session, with_notice: bool = False) -> dict[Any, Any]:
        lang = session.lang
        try:
            health = client.health()
        except ApiError as error:
            text = ctx.describe(error, session)
            out: dict[Any, Any] = {
                status: t(lang, "backend_status_down", url=client.base_url),
                tiny: warning_html(text),
            }
            return {**out, notice: notice_html(text)} if with_notice else out
        if "profile" not in health:
            # /health answers everyone, with only status and version without the token.
            return {status: "", tiny: warning_html(t(lang, "needs_token", url=client.base_url))}
        session.meaningless = bool(health.get("meaningless"))
        session.warning = health.get("warning")
        session.profile = health.get("profile")
        profile = health.get("profile")
        state = str(health.get("status"))
        line = t(
            lang,
            "backend_ok",
            profile=profile,
            device=" ".join(str(health.get(k)) for k in ("device", "backend") if health.get(k)),
            status=t(lang, f"health_{state}") if f"health_{state}" in EN else state,
        )
        out = {
            status: f"{line}{loading_line(lang, health)} · `{client.base_url}`",
            tiny: warning_html(t(lang, "tiny_banner") if session.meaningless else health.get("warning")),
            ui.profile: gr.update(choices=[profile], value=profile) if profile else gr.skip(),
        }
        if with_notice and session.backend_down:
            out[notice] = notice_html("")
        session.backend_down = False
        return out

    return check_health


def _wire_header(p: _Parts, demo: gr.Blocks, nav_assistant: Any) -> None:
    """Language, back end health, and the session kept in the browser (ui/persist.py)."""
    ui, status, tiny, language, keeper = p.ui, p.status, p.tiny, p.language, p.keeper
    header_line = _health_check(p)

    def check_health(session: Session) -> dict[Any, Any]:
        """The timer's refresh: header, banner and the notice agreeing with them."""
        return header_line(session, with_notice=True)

    def on_load(session: Session, stored: Any, request: gr.Request) -> dict[Any, Any]:
        """The saved session comes back; ``?lang=`` beats the saved language, which
        beats the browser's."""
        snap = parse_snapshot(stored)
        asked = request.query_params.get("lang") if request else None
        lang = snap.lang if snap.lang and not asked else None
        lang = lang or pick_language(asked, request.headers.get("accept-language") if request else None)
        session.lang = lang
        out = header_line(session)
        if lang != "en":
            out[language] = lang
        return {**out, **keeper.restore(session, snap)}

    def set_language(session: Session, lang: str) -> dict[Any, Any]:
        session.lang = lang if lang in LANGUAGES else "en"
        out: dict[Any, Any] = p.tr.updates(session.lang)
        extra: dict[Any, Any] = {**header_line(session), **p.jobs.batch_outputs(session)}
        extra[ui.progress] = _progress(session)
        if session.results:
            extra[ui.results] = p.renderer.gallery(session)
        extra.update(p.renderer.view_outputs(session))
        extra.update(p.assistant.relabel(session))
        return merge_updates(out, extra)

    assistant, session = p.assistant, p.session
    header_outputs = [status, tiny, language, ui.profile]
    conversations = [assistant.status, assistant.panel_status, assistant.conversations]
    demo.load(on_load, [session, p.saved], [*header_outputs, *keeper.restore_outputs]).then(
        assistant.refresh, [session], conversations
    ).then(**_follow_args(p))
    nav_assistant.select(assistant.refresh, [session], conversations)
    gr.Timer(3.0).tick(  # the status line follows model downloads
        check_health,
        [session],
        [status, tiny, ui.profile, p.notice],
        show_progress="hidden",
    )
    language_outputs = [
        *p.tr.components,
        *header_outputs,
        ui.batch,
        ui.batch_table,
        ui.start,
        ui.stop,
        ui.resume,
        ui.progress,
        ui.results,
        ui.view,
        ui.regions,
        *assistant.relabel_outputs,
    ]
    language.change(set_language, [session, language], language_outputs, show_progress="hidden")
    # What the browser keeps: saved at every change that matters.
    gr.on(
        [
            *(c.change for c in (*_remembered(p)[2:], language)),
            ui.batch.change,
            ui.progress.change,
            ui.regions.change,
        ],
        keeper.remember,
        _remembered(p),
        [p.saved],
        trigger_mode="always_last",
        show_progress="hidden",
    )


def _remembered(p: _Parts) -> list[Any]:
    """The inputs of `SessionKeeper.remember`, in its order."""
    ui = p.ui
    return [p.session, p.language, *ui.kept_controls]


def _wire_batch(p: _Parts) -> None:
    ui, jobs, session = p.ui, p.jobs, p.session
    batch_outputs = [ui.batch, ui.batch_table, ui.start, ui.stop, ui.resume, p.notice]
    upload_args = {
        "fn": jobs.upload,
        "inputs": [session, ui.upload],
        "outputs": [*batch_outputs, ui.upload, ui.retry_upload],
        "concurrency_limit": None,
    }
    ui.upload.upload(**upload_args)
    ui.retry_upload.click(**upload_args)
    ui.batch.select(jobs.select_upload, [session], None)
    ui.remove.click(jobs.remove, [session], batch_outputs)
    ui.clear_images.click(jobs.clear, [session], batch_outputs)


def _wire_camera(p: _Parts) -> None:
    ui, camera = p.ui, p.camera
    ui.camera.stream(
        camera.on_frame,
        {ui.camera, ui.live, *ui.inputs()},
        [ui.live_view, ui.fps],
        stream_every=STREAM_EVERY_S,
        concurrency_limit=None,
        show_progress="hidden",
    )
    ui.live.change(camera.toggle_live, [ui.live, p.session], [ui.fps])
    batch_outputs = [ui.batch, ui.batch_table, ui.start, ui.stop, ui.resume, p.notice]
    ui.capture.click(camera.capture, [p.session, ui.frame_data], batch_outputs, js=CAPTURE_JS)


def _job_outputs(p: _Parts) -> list[Any]:
    ui = p.ui
    return [ui.progress, ui.results, ui.view, ui.regions, ui.start, ui.stop, ui.resume, p.notice]


def _follow_args(p: _Parts) -> dict[str, Any]:
    return {
        "fn": p.jobs.follow,
        "inputs": p.ui.inputs(),
        "outputs": _job_outputs(p),
        "concurrency_limit": None,
        "show_progress": "hidden",
    }


def _wire_job(p: _Parts) -> None:
    ui, jobs, session = p.ui, p.jobs, p.session
    outputs = _job_outputs(p)
    ui.start.click(jobs.start, ui.inputs(), outputs, concurrency_limit=None).then(**_follow_args(p))
    ui.start.click(fn=None, js=SHOW_RESULTS_JS)
    ui.stop.click(jobs.stop, [session], outputs, concurrency_limit=None)
    ui.resume.click(jobs.resume, [session], outputs, concurrency_limit=None).then(**_follow_args(p))
    ui.export.click(jobs.export, jobs.export_inputs(), [ui.export_file, p.notice])
    # The download panel says what it would export; a link made for other settings goes.
    gr.on(
        [
            ui.keywords.change,
            ui.exclude.change,
            ui.mode.change,
            ui.threshold.change,
            ui.merge.change,
            ui.alpha.change,
            ui.merge_strategy.change,
            ui.export_format.change,
            ui.progress.change,
        ],
        jobs.export_summary,
        jobs.export_inputs(),
        [ui.export_settings, ui.export_file],
        trigger_mode="always_last",
        show_progress="hidden",
    )


def _wire_results(p: _Parts) -> None:
    """The viewer repaints itself on every control change (no request); the pad, the
    region list and the gallery follow once the controls settle."""
    ui, renderer, session, notice = p.ui, p.renderer, p.session, p.notice
    gr.on(
        [ui.threshold.change, ui.merge.change, ui.alpha.change, ui.mode.change, ui.merge_strategy.change],
        fn=None,
        js=REPAINT_JS,
    )
    refresh_outputs = [ui.pad, ui.view, ui.regions, ui.results, notice]
    refresh_args = {
        "fn": renderer.refresh,
        "inputs": ui.inputs(),
        "outputs": refresh_outputs,
        "trigger_mode": "always_last",
        "show_progress": "hidden",
    }
    # A custom event of the viewer (viewer.js `controlsMoved`): the controls or the keywords
    # (Enter) changed and then rested; the viewer itself repainted at once.
    ui.view.settled(**refresh_args)
    ui.pad.select(renderer.click_pad, None, [ui.threshold, ui.merge]).then(
        renderer.refresh, ui.inputs(), refresh_outputs, show_progress="hidden"
    )
    ui.results.select(renderer.select_result, ui.inputs(), [ui.view, ui.regions, notice]).then(
        p.logs.details,
        [session],
        [ui.details_title, ui.log_table, ui.scores_chart, ui.timings_chart, notice],
    ).then(p.keeper.remember, _remembered(p), [p.saved])
    ui.view.click(renderer.click_view, [session, ui.point_mode], [ui.view, ui.regions, notice])
    ui.clear_points.click(renderer.clear_points, [session], [ui.view, ui.regions])


def _wire_logs(p: _Parts) -> None:
    ui, logs, session, notice = p.ui, p.logs, p.session, p.notice
    details_outputs = [ui.details_title, ui.log_table, ui.scores_chart, ui.timings_chart, notice]
    ui.tab_details.select(logs.details, [session], details_outputs)
    stats_outputs = [
        ui.stats_summary,
        ui.stats_stages,
        ui.stats_keywords,
        ui.stats_stage_chart,
        ui.stats_keyword_chart,
        ui.stats_time_chart,
        notice,
    ]
    ui.tab_stats.select(logs.stats, [session], stats_outputs)
    history_inputs = [session, ui.history_keyword, ui.history_kind]
    history_outputs = [ui.history_table, notice]
    ui.tab_history.select(logs.history, history_inputs, history_outputs)
    ui.history_refresh.click(logs.history, history_inputs, history_outputs)
    ui.history_keyword.submit(logs.history, history_inputs, history_outputs)
    ui.history_kind.change(logs.history, history_inputs, history_outputs)
    ui.history_table.select(logs.pick_history, [session], None)
    ui.history_export.click(logs.export, history_inputs, [ui.history_file, notice])
    ui.history_clear.click(logs.clear, history_inputs, history_outputs)
    reopen_outputs = [
        *ui.kept_controls,
        ui.result_tabs,
        ui.results,
        ui.view,
        ui.regions,
        notice,
    ]
    ui.history_reopen.click(logs.reopen, [session], reopen_outputs).then(**_follow_args(p))


def merge_updates(first: dict[Any, Any], second: dict[Any, Any]) -> dict[Any, Any]:
    """Both sets of outputs; where both change one component, one update with both
    changes (a new value from `second` joins the new label from `first`)."""
    out = dict(first)
    for key, value in second.items():
        before = out.get(key)
        if isinstance(before, dict) and before.get("__type__") == "update":
            if isinstance(value, dict) and value.get("__type__") == "update":
                out[key] = {**before, **value}
            else:
                out[key] = {**before, "value": value}
        else:
            out[key] = value
    return out


def _progress(session: Session) -> str:
    from seglens.ui.views import progress_html

    return progress_html(session.job, session.lang)


def _profiles(client: ApiClient) -> list[str]:
    """The back end's profile (one server runs one profile) for the Advanced dropdown."""
    try:
        profile = client.health().get("profile")
    except ApiError:
        return []
    return [profile] if profile else []


def _auth(token: str | None) -> Any:
    if not token:
        return None

    def check(_username: str, password: str) -> bool:
        return hmac.compare_digest(password.encode(), token.encode())

    return check


def mount_ui(
    app: FastAPI,
    api_url: str,
    *,
    token: str | None = None,
    path: str = UI_PATH,
    scratch: Path | None = None,
    profiles: list[str] | None = None,
) -> FastAPI:
    """Mount the UI on `app` at `path`. With a token, the UI asks for it as the password
    (any user name), since it can do everything the API can, and every route under `path`
    but the login page needs that login (`seglens.ui.guard`). Appends to
    ``app.state.on_stop`` the callables a server runs when it starts to stop."""
    demo = build_ui(api_url, token=token, scratch=scratch, profiles=profiles)
    mounted = gr.mount_gradio_app(
        app,
        demo,
        path=path,
        auth=_auth(token),
        footer_links=["settings"],
        css=CSS,
        theme=gr.themes.Soft(primary_hue="blue"),
        ssr_mode=False,
        allowed_paths=[],
    )
    # Gradio checks that every file a browser names as an input (a gr.File, the camera's
    # gr.Image, a chat message's file) was uploaded to it, but only once the Blocks "has
    # launched", which `launch()` records and `mount_gradio_app` does not: mounted, any
    # path on the disk was copied into the cache and handed to the handler. Record it.
    demo.has_launched = True
    gradio_app = protect_ui(mounted, path, token)
    # Gradio's heartbeat streams end when its stop event is set, which only `Blocks.close`
    # does; the server sets it as soon as it starts to stop (`seglens.api.server`), so an
    # open browser tab no longer holds a shutdown for the whole grace period.
    stop_event = getattr(gradio_app, "stop_event", None)
    if stop_event is not None:
        hooks = getattr(mounted.state, "on_stop", None)
        if not isinstance(hooks, list):
            hooks = mounted.state.on_stop = []
        hooks.append(stop_event.set)
    return mounted


def loading_line(lang: str, health: dict[str, Any]) -> str:
    """The status line's part about models on their way in (from ``/health``'s
    `loading`), e.g. " · downloading sam2.1-hiera-tiny 12.0/38.9 MB", or why they failed."""
    if health.get("status") == "error" and health.get("load_error"):
        return " · " + t(lang, "backend_load_error", error=health["load_error"])
    parts = []
    for model in health.get("loading") or []:
        done, total = model.get("bytes_done") or 0, model.get("bytes_total")
        size = (
            f" {done / 1e6:.1f}/{total / 1e6:.1f} MB" if model.get("phase") == "downloading" and total else ""
        )
        parts.append(t(lang, f"model_{model.get('phase', 'loading')}", name=model.get("name")) + size)
    return "".join(f" · {part}" for part in parts)


def redirect_home(app: FastAPI, path: str = UI_PATH) -> None:
    """Make ``/`` redirect to the UI (replacing the API's redirect to ``/docs``)."""
    from starlette.requests import Request
    from starlette.routing import Route

    app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, Route) and r.path == "/")]

    async def home(request: Request) -> RedirectResponse:
        # Keep the query (``/?lang=zh`` opens the UI in Chinese).
        query = request.url.query
        return RedirectResponse(f"{path}?{query}" if query else path)

    # Routes match in order: put the redirect before the mounts, which catch everything.
    app.router.routes.insert(0, Route("/", home, include_in_schema=False))


def create_ui_app(api_url: str, *, token: str | None = None, scratch: Path | None = None) -> FastAPI:
    """A FastAPI app serving only the UI (at ``/ui``; ``/`` redirects there)."""
    app = FastAPI(title="SegLens UI", docs_url=None, redoc_url=None, openapi_url=None)
    mount_ui(app, api_url, token=token, scratch=scratch)
    redirect_home(app)
    return app
