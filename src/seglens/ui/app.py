"""The web UI: a Gradio Blocks app with two modules (Image Segmentation, AI Assistant),
English and Simplified Chinese text, and a header that says which back end it talks to.

`build_ui(api_url)` builds it; `mount_ui(app, api_url)` mounts it at ``/ui`` on a FastAPI
app (``seglens serve``); `create_ui_app(api_url)` is a FastAPI app with only the UI
(``seglens ui --api-url URL``). The UI talks to the back end only through `ApiClient`.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from seglens.ui.assistant import AssistantUI
from seglens.ui.camera import CAPTURE_JS, STREAM_EVERY_S, CameraHandlers
from seglens.ui.client import ApiClient, ApiError
from seglens.ui.context import UiContext
from seglens.ui.i18n import LANGUAGES, Translator, pick_language, t
from seglens.ui.jobs import JobHandlers
from seglens.ui.logs import LogHandlers
from seglens.ui.results import Renderer
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import Session
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
"""

# Shift+click on the large view adds a negative point: remember the modifier of the last
# pointer press, read by the click handler's front-end step.
HEAD = """
<script>
window.__slShift = false;
document.addEventListener('pointerdown', (e) => { window.__slShift = e.shiftKey; }, true);
</script>
"""
SHIFT_JS = "(session, mode) => [session, window.__slShift ? '0' : mode]"


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
        session = gr.State(Session())
        # The language switch sits on the left: notices pop up on the right.
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

        with gr.Tabs(elem_id="nav") as nav:
            nav_seg = tr.label(gr.Tab(t("en", "nav_seg"), id="seg", elem_id="nav-seg"), "nav_seg")
            with nav_seg:
                ui = SegmentationLayout(tr, profiles)
            nav_assistant = tr.label(
                gr.Tab(t("en", "nav_assistant"), id="assistant", elem_id="nav-assistant"), "nav_assistant"
            )
            with nav_assistant:
                assistant = AssistantUI(ctx, tr, ui, notice)
                assistant.build_module()
        with ui.side:
            assistant.build_panel()
        health_timer = gr.Timer(10.0)

        renderer = Renderer(ctx, ui, notice)
        jobs = JobHandlers(ctx, ui, renderer, notice)
        logs = LogHandlers(ctx, ui, jobs, notice)
        camera = CameraHandlers(ctx, ui, jobs, renderer, notice)
        controls = [ui.keywords, ui.exclude, ui.mode, ui.threshold, ui.merge, ui.alpha]
        job_outputs = [ui.progress, ui.results, ui.view, ui.regions, ui.start, ui.stop, ui.resume, notice]

        # -- header: language and back end health -----------------------------------------
        def check_health(session: Session) -> dict[Any, Any]:
            try:
                health = client.health()
            except ApiError as error:
                return {
                    status: "",
                    tiny: warning_html(ctx.describe(error, session)),
                }
            session.meaningless = bool(health.get("meaningless"))
            session.warning = health.get("warning")
            session.profile = health.get("profile")
            profile = health.get("profile")
            line = t(
                session.lang,
                "backend_ok",
                profile=health.get("profile"),
                device=" ".join(str(health.get(k)) for k in ("device", "backend") if health.get(k)),
                status=health.get("status"),
            )
            return {
                status: f"{line} · `{client.base_url}`",
                tiny: warning_html(health.get("warning")),
                ui.profile: gr.update(choices=[profile], value=profile) if profile else gr.skip(),
            }

        def on_load(session: Session, request: gr.Request) -> dict[Any, Any]:
            lang = pick_language(
                request.query_params.get("lang") if request else None,
                request.headers.get("accept-language") if request else None,
            )
            session.lang = lang
            out = check_health(session)
            if lang != "en":
                out[language] = lang
            return out

        def set_language(session: Session, lang: str) -> dict[Any, Any]:
            session.lang = lang if lang in LANGUAGES else "en"
            out: dict[Any, Any] = tr.updates(session.lang)
            extra: dict[Any, Any] = {**check_health(session), **jobs.batch_outputs(session)}
            extra[ui.progress] = _progress(session)
            if session.results:
                extra[ui.results] = renderer.gallery(session)
            extra.update(renderer.view_outputs(session))
            extra.update(assistant.relabel(session))
            return merge_updates(out, extra)

        header_outputs = [status, tiny, language, ui.profile]
        demo.load(on_load, [session], header_outputs).then(
            assistant.refresh, [session], [assistant.status, assistant.panel_status, assistant.conversations]
        )
        nav_assistant.select(
            assistant.refresh, [session], [assistant.status, assistant.panel_status, assistant.conversations]
        )
        health_timer.tick(check_health, [session], [status, tiny, ui.profile], show_progress="hidden")
        language.change(
            set_language,
            [session, language],
            [
                *tr.components,
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
            ],
            show_progress="hidden",
        )

        # -- batch ---------------------------------------------------------------------------
        batch_outputs = [ui.batch, ui.batch_table, ui.start, ui.stop, ui.resume, notice]
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

        # -- camera ----------------------------------------------------------------------------
        ui.camera.stream(
            camera.on_frame,
            [ui.camera, ui.live, session, *controls, ui.points_per_side],
            [ui.live_view, ui.fps],
            stream_every=STREAM_EVERY_S,
            concurrency_limit=None,
            show_progress="hidden",
        )
        ui.live.change(camera.toggle_live, [ui.live, session], [ui.fps])
        ui.capture.click(camera.capture, [session, ui.frame_data], batch_outputs, js=CAPTURE_JS)

        # -- job ------------------------------------------------------------------------------
        follow_args = {
            "fn": jobs.follow,
            "inputs": [session, *controls],
            "outputs": job_outputs,
            "concurrency_limit": None,
            "show_progress": "hidden",
        }
        ui.start.click(
            jobs.start,
            [session, *controls, ui.points_per_side, ui.profile],
            job_outputs,
            concurrency_limit=None,
        ).then(**follow_args)
        ui.stop.click(jobs.stop, [session], job_outputs, concurrency_limit=None)
        ui.resume.click(jobs.resume, [session], job_outputs, concurrency_limit=None).then(**follow_args)
        ui.export.click(jobs.export, [session, ui.export_format], [ui.export_file, notice])

        # -- results from cache ---------------------------------------------------------------
        gr.on(
            [
                ui.threshold.change,
                ui.merge.change,
                ui.alpha.change,
                ui.mode.change,
                ui.keywords.submit,
                ui.exclude.submit,
            ],
            renderer.rerender,
            [session, *controls],
            [ui.pad, ui.view, ui.regions, ui.results, notice],
            trigger_mode="always_last",
            show_progress="hidden",
        )
        ui.pad.select(renderer.click_pad, None, [ui.threshold, ui.merge])
        ui.results.select(renderer.select_result, [session, *controls], [ui.view, ui.regions, notice]).then(
            logs.details,
            [session],
            [ui.details_title, ui.log_table, ui.scores_chart, ui.timings_chart, notice],
        )
        ui.view.select(
            renderer.click_view, [session, ui.point_mode], [ui.view, ui.regions, notice], js=SHIFT_JS
        )
        ui.clear_points.click(renderer.clear_points, [session], [ui.view, ui.regions])

        # -- logs -----------------------------------------------------------------------------
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
        ui.history_reopen.click(
            logs.reopen,
            [session],
            [
                ui.keywords,
                ui.exclude,
                ui.mode,
                ui.threshold,
                ui.merge,
                ui.alpha,
                ui.points_per_side,
                ui.result_tabs,
                ui.results,
                ui.view,
                ui.regions,
                notice,
            ],
        ).then(**follow_args)

        assistant.wire(session, renderer, controls)
        _ = nav
    demo.queue(default_concurrency_limit=16)
    return demo


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
    (any user name), since it can do everything the API can."""
    demo = build_ui(api_url, token=token, scratch=scratch, profiles=profiles)
    return gr.mount_gradio_app(
        app,
        demo,
        path=path,
        auth=_auth(token),
        footer_links=["settings"],
        css=CSS,
        head=HEAD,
        theme=gr.themes.Soft(primary_hue="blue"),
        ssr_mode=False,
        allowed_paths=[],
    )


def redirect_home(app: FastAPI, path: str = UI_PATH) -> None:
    """Make ``/`` redirect to the UI (replacing the API's redirect to ``/docs``)."""
    from starlette.requests import Request
    from starlette.routing import Route

    app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, Route) and r.path == "/")]

    async def home(_request: Request) -> RedirectResponse:
        return RedirectResponse(path)

    # Routes match in order: put the redirect before the mounts, which catch everything.
    app.router.routes.insert(0, Route("/", home, include_in_schema=False))


def create_ui_app(api_url: str, *, token: str | None = None, scratch: Path | None = None) -> FastAPI:
    """A FastAPI app serving only the UI (at ``/ui``; ``/`` redirects there)."""
    app = FastAPI(title="SegLens UI", docs_url=None, redoc_url=None, openapi_url=None)
    mount_ui(app, api_url, token=token, scratch=scratch)
    redirect_home(app)
    return app
