"""Command line: ``seglens segment``, ``seglens batch``, ``seglens models list|pull``,
``seglens serve``, ``seglens ui``, ``seglens doctor``.

Exit codes: 0 success; 1 some inputs failed (each named on one line, the rest processed);
2 bad usage; 3 a model is not available.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from seglens._version import __version__
from seglens.core.types import ALPHA_RANGE, DEFAULT_ALPHA, GenerationParams, JobParams, QueryParams

if TYPE_CHECKING:
    from seglens.models.registry import Profile as ProfileSpec
    from seglens.services.segment.runs import RunSummary
    from seglens.settings import Settings
    from seglens.storage.records import JobRecord

app = typer.Typer(
    name="seglens",
    help="Find things in images by words: Segment Anything regions scored by CLIP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and download models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_MODEL = 3

# Options shared by `segment` and `batch`.
Inputs = Annotated[
    list[str],
    typer.Argument(metavar="IMAGE_OR_DIR", help="Image files and/or directories (searched recursively)."),
]
Query = Annotated[
    str, typer.Option("--query", "-q", metavar="KEYWORDS", help='Keywords, e.g. "cat, dog, -grass".')
]
# The query settings: defaults and limits are core `QueryParams`'s (None: its default).
_QUERY = QueryParams()
Threshold = Annotated[
    float | None,
    typer.Option(
        min=QueryParams.THRESHOLD_RANGE[0],
        max=QueryParams.THRESHOLD_RANGE[1],
        show_default=str(_QUERY.threshold),
        help="Matching threshold (keyword probability).",
    ),
]
Merge = Annotated[
    float | None,
    typer.Option(
        min=QueryParams.MERGE_THRESHOLD_RANGE[0],
        max=QueryParams.MERGE_THRESHOLD_RANGE[1],
        show_default=str(_QUERY.merge_threshold),
        help="Region-merging threshold (mask IoU; 1 = no merging).",
    ),
]
MergeStrategy = Annotated[
    str | None,
    typer.Option(
        show_default=_QUERY.merge_strategy,
        help=f"{' or '.join(QueryParams.MERGE_STRATEGIES)}: nms keeps the best of overlapping matches, union fuses them.",
    ),
]
Mode = Annotated[
    str | None,
    typer.Option(
        show_default=_QUERY.mode,
        help=f"{' or '.join(QueryParams.MODES)}: any: regions matching any keyword; all: image must match every keyword.",
    ),
]
Alpha = Annotated[float, typer.Option(min=ALPHA_RANGE[0], max=ALPHA_RANGE[1], help="Overlay opacity.")]
ProfileName = Annotated[
    str | None,
    typer.Option(help="Model profile (seglens models list). Default: SEGLENS_PROFILE or cpu-fast."),
]
PointsPerSide = Annotated[
    int | None,
    typer.Option(
        min=GenerationParams.POINTS_PER_SIDE_MIN,
        max=GenerationParams.POINTS_PER_SIDE_MAX,
        help="Point grid for mask generation.",
    ),
]
Device = Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Cutouts = Annotated[bool, typer.Option(help="Also write transparent PNG cut-outs of matches.")]
DataDir = Annotated[Path | None, typer.Option(help="Cache and model directory (SEGLENS_DATA_DIR).")]
Backend = Annotated[
    str | None,
    typer.Option(help="auto, torch or onnx: what runs the models (SEGLENS_BACKEND; auto: onnx on a CPU)."),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(**options: Any) -> Settings:
    """Settings from the environment with the command line's options (None: not given)."""
    from pydantic import ValidationError

    from seglens.settings import Settings

    try:
        return Settings(**{key: value for key, value in options.items() if value is not None})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'settings'}: {e['msg']}" for e in error.errors()
        )
        raise _fail(f"invalid setting (SEGLENS_* or option): {problems}", EXIT_USAGE) from None


def _query_params(
    query: str, threshold: float | None, merge: float | None, mode: str | None, merge_strategy: str | None
) -> QueryParams:
    """The query settings of the command line (None: the default); exit 2 when the query
    or a setting is invalid."""
    from seglens.core.query import parse_query

    try:
        parse_query(query)
        return _QUERY.updated(
            threshold=threshold, merge_threshold=merge, mode=mode, merge_strategy=merge_strategy
        )
    except ValueError as error:
        raise _fail(str(error), EXIT_USAGE) from None


def _profile(name: str) -> ProfileSpec:
    from seglens.models.registry import get_profile

    try:
        return get_profile(name)
    except KeyError as error:
        raise _fail(str(error).strip("'\""), EXIT_USAGE) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seglens {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """SegLens command line."""


@app.command()
def segment(
    inputs: Inputs,
    query: Query,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("seglens-out"),
    threshold: Threshold = None,
    merge: Merge = None,
    merge_strategy: MergeStrategy = None,
    alpha: Alpha = DEFAULT_ALPHA,
    mode: Mode = None,
    profile: ProfileName = None,
    proposer: Annotated[
        str | None, typer.Option(help="Override the SAM-family model (name or local directory).")
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(help="Override the CLIP-family model (name or local directory).")
    ] = None,
    points_per_side: PointsPerSide = None,
    device: Device = None,
    cutouts: Cutouts = False,
    data_dir: DataDir = None,
    backend: Backend = None,
) -> None:
    """Highlight the regions of each image that match the keywords."""
    from dataclasses import replace

    from tqdm import tqdm

    from seglens.models.hub import ModelNotAvailableError
    from seglens.services.segment.pipeline import TINY_BANNER, Pipeline
    from seglens.services.segment.runs import collect_inputs, run_query_over_files

    settings = _settings()
    query_params = _query_params(query, threshold, merge, mode, merge_strategy)
    files = collect_inputs(inputs)
    if not files:
        raise _fail("no input images found", EXIT_USAGE)
    profile_name = profile or settings.profile
    try:
        pipeline = Pipeline.from_profile(
            profile_name,
            data_dir=data_dir or settings.data_dir,
            device=device,
            proposer=proposer or settings.proposer,
            embedder=embedder or settings.embedder,
            allow_download=settings.allow_download,
            backend=backend,
        )
    except ModelNotAvailableError as error:
        raise _fail(str(error), EXIT_MODEL) from None
    except (KeyError, ValueError) as error:
        raise _fail(str(error).strip("'\""), EXIT_USAGE) from None
    if pipeline.meaningless:
        typer.echo(f"warning: {TINY_BANNER}", err=True)
    generation = pipeline.generation
    if points_per_side is not None:
        generation = replace(generation, points_per_side=points_per_side)

    bar = tqdm(total=len(files), unit="img", desc="segment", file=sys.stderr, dynamic_ncols=True)

    def progress(record: object) -> None:
        bar.update(1)
        error = getattr(record, "error", None)
        if error:
            tqdm.write(f"error: {error}", file=sys.stderr)

    try:
        summary = run_query_over_files(
            pipeline,
            files,
            query,
            query_params,
            out,
            alpha=alpha,
            generation=generation,
            cutouts=cutouts,
            on_progress=progress,
        )
    finally:
        bar.close()
    _report(summary, out)


@app.command()
def batch(
    inputs: Inputs,
    query: Query,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory (also holds the batch's state).")
    ] = Path("seglens-out"),
    executor: Annotated[
        str | None,
        typer.Option(help="local (this process) or ray (a Ray cluster). Default: SEGLENS_EXECUTOR or local."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (SEGLENS_RAY_ADDRESS); empty starts a private local Ray."),
    ] = None,
    ray_workers: Annotated[
        int | None, typer.Option(min=0, help="Ray actors holding the models; 0 picks (SEGLENS_RAY_WORKERS).")
    ] = None,
    threshold: Threshold = None,
    merge: Merge = None,
    merge_strategy: MergeStrategy = None,
    alpha: Alpha = DEFAULT_ALPHA,
    mode: Mode = None,
    profile: ProfileName = None,
    points_per_side: PointsPerSide = None,
    device: Device = None,
    cutouts: Cutouts = False,
    restart: Annotated[bool, typer.Option(help="Discard the batch state in --out and start over.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Run a large batch without the server, locally or on Ray; run it again to resume.

    Writes the same files as `seglens segment`. The batch's state (a job store) lives in
    OUT/.seglens: after Ctrl-C or a crash, the same command continues where it stopped."""
    from seglens.services.segment.pipeline import TINY_BANNER
    from seglens.services.segment.runs import collect_inputs

    settings = _settings(
        profile=profile,
        executor=executor,
        ray_address=address,
        ray_workers=ray_workers,
        device=device,
        data_dir=data_dir,
    )
    spec = _profile(settings.profile)
    matching = _query_params(query, threshold, merge, mode, merge_strategy)
    try:
        params = JobParams(matching=matching, points_per_side=points_per_side, alpha=alpha)
    except ValueError as error:
        raise _fail(str(error), EXIT_USAGE) from None
    files = collect_inputs(inputs)
    if not files:
        raise _fail("no input images found", EXIT_USAGE)
    if spec.meaningless:
        typer.echo(f"warning: {TINY_BANNER}", err=True)

    summary = _run_batch(settings, out, files, query, params, cutouts=cutouts, restart=restart)
    _report(summary, out)


def _run_batch(
    settings: Settings,
    out: Path,
    files: list[Path],
    query: str,
    params: JobParams,
    *,
    cutouts: bool,
    restart: bool,
) -> RunSummary:
    """`seglens batch` after its arguments are checked: run it with progress bars on
    stderr; exit 130 on Ctrl-C (resumable), 2 when the directory is busy or holds another
    batch, 3 when the models cannot load."""
    from tqdm import tqdm

    from seglens.errors import BatchBusy, Conflict, ExecutorUnavailable
    from seglens.services.jobs.headless import BatchRunner

    bars: list[tqdm[object]] = []  # made once the job is known (after Ray's start-up lines)

    def started(job: JobRecord) -> None:
        done = job.done + job.failed
        if done:
            typer.echo(f"resuming: {done}/{job.total} images already finished", err=True)
        bars.append(
            tqdm(total=job.total, initial=done, unit="img", desc="batch", file=sys.stderr, dynamic_ncols=True)
        )

    def progress(job: JobRecord) -> None:
        for bar in bars:
            bar.update(job.done + job.failed - bar.n)

    def failure(message: str) -> None:
        tqdm.write(f"error: {message}", file=sys.stderr)

    try:
        with BatchRunner(settings, out, cutouts=cutouts) as runner:
            result = runner.run(
                files,
                query,
                params,
                restart=restart,
                on_start=started,
                on_progress=progress,
                on_failure=failure,
            )
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same command again to continue", err=True)
        raise typer.Exit(130) from None
    except (BatchBusy, Conflict) as error:
        raise _fail(str(error), EXIT_USAGE) from None
    except ExecutorUnavailable as error:
        raise _fail(str(error), EXIT_MODEL) from None
    finally:
        _close(bars)
    return result.summary


def _report(summary: RunSummary, out: Path) -> None:
    """The run's last line; exit code 1 when some images failed (each was named already)."""
    done = len(summary.records) - len(summary.failed)
    matched = sum(1 for r in summary.records if r.result and r.result.image_matched)
    typer.echo(
        f"{done}/{len(summary.records)} images processed, {matched} matched, "
        f"{len(summary.failed)} failed; results in {out}"
    )
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _close(bars: list[Any]) -> None:
    for bar in bars:
        bar.close()


@models_app.command("list")
def models_list() -> None:
    """Show the registered models and profiles."""
    from seglens.models.registry import list_models, list_profiles

    typer.echo("MODELS")
    for spec in list_models():
        sources = {"built": "built locally", "none": "needs no weights"}
        hub = f"{spec.repo_id}@{(spec.revision or 'main')[:10]}"
        source = hub if spec.source == "hub" else sources[spec.source]
        typer.echo(f"  {spec.name:<24} {spec.kind:<9} {source:<50} {spec.description}")
    typer.echo("PROFILES")
    for p in list_profiles():
        typer.echo(f"  {p.name:<14} {p.proposer} + {p.embedder}: {p.description}")


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str], typer.Argument(metavar="NAME", help="Model or profile names from `seglens models list`.")
    ],
) -> None:
    """Download models' pinned revisions into the Hugging Face cache (progress on stderr);
    a profile name pulls its models. Run it again after an interruption to continue."""
    from seglens.models.hub import ModelNotAvailableError, pull_model
    from seglens.models.registry import get_model, get_profile

    wanted: list[str] = []
    try:
        for name in names:
            try:
                profile = get_profile(name)
                wanted += [profile.proposer, profile.embedder]
            except KeyError:
                get_model(name)
                wanted.append(name)
        for name in dict.fromkeys(wanted):
            if get_model(name).source != "hub":
                typer.echo(f"{name}: built locally on first use, nothing to download")
                continue
            typer.echo(f"{name}: {pull_model(name)}")
    except KeyError as error:
        raise _fail(str(error).strip("'\""), EXIT_USAGE) from None
    except ModelNotAvailableError as error:
        raise _fail(str(error), EXIT_MODEL) from None


@app.command()
def doctor(
    profile: Annotated[
        str | None, typer.Option(help="Check this profile (default: SEGLENS_PROFILE).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Check the setup: profile, models present or absent (with sizes), device, hub,
    data directory and free disk, assistant LLM; each problem with its fix. Exit code 1
    when something will not work."""
    from seglens.services.doctor import run_checks

    settings = _settings(profile=profile, data_dir=data_dir)
    marks = {"ok": "ok  ", "warn": "note", "fail": "FAIL"}
    checks = run_checks(settings)
    for check in checks:
        typer.echo(f"{marks[check.status]}  {check.topic:<28} {check.detail}")
        if check.fix and check.status != "ok":
            typer.echo(f"      {'':<28} fix: {check.fix}")
    failed = [c.topic for c in checks if c.status == "fail"]
    if failed:
        typer.echo(f"{len(failed)} problem(s): {', '.join(failed)}", err=True)
        raise typer.Exit(EXIT_PARTIAL)


def _check_models(settings: Settings) -> None:
    """Refuse to start within seconds when a model is missing and cannot be downloaded."""
    from seglens.models.hub import ModelNotAvailableError, check_available

    spec = _profile(settings.profile)
    names = [settings.proposer or spec.proposer, settings.embedder or spec.embedder]
    try:
        pending = check_available(names, allow_download=settings.allow_download)
    except ModelNotAvailableError as error:
        raise _fail(str(error), EXIT_MODEL) from None
    except KeyError as error:
        raise _fail(str(error).strip("'\""), EXIT_USAGE) from None
    if pending:
        typer.echo(
            f"first start of profile {settings.profile}: downloading {', '.join(pending)} "
            "(progress below and in the web UI's status line)",
            err=True,
        )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (SEGLENS_HOST, default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (SEGLENS_PORT, default 8000).")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Model profile (SEGLENS_PROFILE).")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Database, uploads, caches and models (SEGLENS_DATA_DIR).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=0, max=64, help="Batch workers; 0 picks (SEGLENS_WORKERS).")
    ] = None,
    backend: Backend = None,
    ui: Annotated[
        bool, typer.Option("--ui/--no-ui", help="Mount the web UI at /ui (/ redirects there).")
    ] = True,
) -> None:
    """Run the HTTP API (OpenAPI at /docs) with the persistent job queue and the web UI at /ui."""
    from seglens.api.server import serve as run_server

    settings = _settings(
        host=host, port=port, profile=profile, data_dir=data_dir, workers=workers, backend=backend
    )
    _check_models(settings)
    if not ui:
        run_server(settings)
        return
    from seglens.api.app import create_app
    from seglens.ui import mount_ui
    from seglens.ui.app import redirect_home

    if settings.port == 0:
        raise _fail("the web UI needs a fixed --port (or use --no-ui)", EXIT_USAGE)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    api_app = create_app(settings)
    mount_ui(api_app, _loopback_url(settings.host, settings.port), token=token, profiles=[settings.profile])
    redirect_home(api_app)
    run_server(settings, app=api_app, ui_path="/ui")


def _loopback_url(host: str, port: int) -> str:
    """How the UI mounted in the server reaches the server's own API."""
    if host in ("", "0.0.0.0", "localhost"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command("ui")
def ui_command(
    api_url: Annotated[
        str, typer.Option("--api-url", help="Root of a running SegLens back end, e.g. http://gpu-box:8000.")
    ] = "http://127.0.0.1:8000",
    host: Annotated[str, typer.Option(help="Address the UI listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port the UI listens on.")] = 7860,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SEGLENS_API_TOKEN", help="The back end's bearer token (also the UI's password)."
        ),
    ] = None,
) -> None:
    """Run only the web UI (at /ui) against a back end on this or another machine."""
    import uvicorn

    from seglens.ui import create_ui_app

    if not api_url.startswith(("http://", "https://")):
        raise _fail(f"--api-url must start with http:// or https://, got {api_url!r}", EXIT_USAGE)
    typer.echo(f"SegLens UI on http://{host}:{port}/ui, talking to {api_url}")
    from seglens.api.server import run_uvicorn

    run_uvicorn(
        uvicorn.Config(create_ui_app(api_url, token=token), host=host, port=port, log_level="warning")
    )


def main() -> None:
    app()


__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
