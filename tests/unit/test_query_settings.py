"""The query settings are declared once: core `QueryParams` owns the fields, defaults and
limits; every other layer takes them from there (issue 10.1)."""

from __future__ import annotations

import ast
import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from seglens.api.assistant_schemas import ScreenContextOut
from seglens.api.schemas import JobParamsIn, JobParamsOut, QueryIn, QuerySettings
from seglens.core.images import DEFAULT_MAX_PIXELS
from seglens.core.types import DEFAULT_ALPHA, GenerationParams, QueryParams
from seglens.services.jobs.types import JobParams
from seglens.services.segment.pipeline import Pipeline
from seglens.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src" / "seglens"
CORE = QueryParams()
QUERY_FIELDS = [f.name for f in fields(QueryParams)]
# A literal equal to one of these defaults, given to a parameter or field of that name, is
# a copy of the declaration.
DEFAULTS = {name: getattr(CORE, name) for name in QUERY_FIELDS} | {"alpha": DEFAULT_ALPHA}


def _copies(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        pairs: list[tuple[str, ast.expr | None]] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positional = node.args.posonlyargs + node.args.args
            pairs += zip(
                [a.arg for a in positional[len(positional) - len(node.args.defaults) :]],
                node.args.defaults,
                strict=True,
            )
            pairs += [(a.arg, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = node.value
            if isinstance(value, ast.Call):  # Field(default=...)
                value = next((k.value for k in value.keywords if k.arg == "default"), None)
            pairs.append((node.target.id, value))
        for name, value in pairs:
            if name in DEFAULTS and isinstance(value, ast.Constant) and value.value == DEFAULTS[name]:
                found.append(f"{path.relative_to(SRC)}:{value.lineno} {name}={value.value!r}")
    return found


def test_no_layer_declares_a_query_default_again():
    """Walks every module: the only `threshold = 0.5` (etc.) is core `QueryParams`'s."""
    copies = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if "migrations" not in rel:
            copies += [c for c in _copies(path) if not c.startswith("core/types.py")]
    assert copies == []


def test_no_module_writes_the_pixel_or_grid_limits_again():
    """40,000,000 pixels is core `DEFAULT_MAX_PIXELS`; the grid's 1..128 is core
    `GenerationParams.POINTS_PER_SIDE_MIN/MAX` (128 elsewhere: image id lengths, colours)."""
    copies = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if rel in ("core/images.py", "core/types.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
                continue
            line = _line(f"{rel}:{node.lineno}")
            if node.value == DEFAULT_MAX_PIXELS or (
                node.value == GenerationParams.POINTS_PER_SIDE_MAX
                and "points_per_side" in line
                and "points_per_batch=128" not in line
            ):
                copies.append(f"{rel}:{node.lineno}")
    assert copies == []


def _line(ref: str) -> str:
    rel, number = ref.rsplit(":", 1)
    return (SRC / rel).read_text().splitlines()[int(number) - 1]


@pytest.mark.parametrize("schema", [QuerySettings, JobParamsIn, JobParamsOut, QueryIn, ScreenContextOut])
def test_every_api_schema_carries_the_core_fields_defaults_and_limits(schema):
    assert issubclass(schema, QuerySettings)
    properties = schema.model_json_schema(mode="validation")["properties"]
    for name in QUERY_FIELDS:
        assert schema.model_fields[name].default == getattr(CORE, name)
    assert (
        properties["threshold"]["minimum"],
        properties["threshold"]["maximum"],
    ) == QueryParams.THRESHOLD_RANGE
    assert tuple(properties["mode"]["enum"]) == QueryParams.MODES
    assert tuple(properties["merge_strategy"]["enum"]) == QueryParams.MERGE_STRATEGIES


def test_job_params_contain_core_query_params_and_store_them_flat():
    params = JobParams.from_dict({"threshold": 0.25, "mode": "all", "points_per_side": 8, "alpha": 0.3})
    assert params.matching == QueryParams(threshold=0.25, mode="all")
    assert params.to_dict() == {
        "threshold": 0.25,
        "merge_threshold": CORE.merge_threshold,
        "mode": "all",
        "merge_strategy": CORE.merge_strategy,
        "points_per_side": 8,
        "alpha": 0.3,
        "profile": None,
    }
    assert JobParams().matching == CORE and JobParams().alpha == DEFAULT_ALPHA
    assert JobParamsIn().job_params() == JobParams()


def test_the_python_api_and_the_settings_default_to_core():
    signature = inspect.signature(Pipeline.query)
    assert not set(QUERY_FIELDS) & set(signature.parameters)
    assert Settings.model_fields["max_pixels"].default == DEFAULT_MAX_PIXELS
    assert Settings.model_fields["max_points_per_side"].default <= GenerationParams.POINTS_PER_SIDE_MAX


def test_query_params_limits_are_plain_data_for_front_ends():
    limits = QueryParams.limits()
    assert limits["threshold"] == {"default": CORE.threshold, "minimum": 0.0, "maximum": 1.0}
    assert limits["mode"] == {"default": "any", "choices": ["any", "all"]}
    assert set(limits) == set(QUERY_FIELDS)


def test_query_params_updated_refuses_unknown_and_out_of_range_settings():
    assert CORE.updated(threshold=0.2, mode=None) == QueryParams(threshold=0.2)
    with pytest.raises(ValueError, match="unknown query setting"):
        CORE.updated(treshold=0.2)
    with pytest.raises(ValueError, match="threshold must be"):
        CORE.updated(threshold=1.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-q", "cat\x00"], "control character U+0000"),
        (["-q", "cat", "--mode", "some"], "mode must be one of any, all"),
        (["-q", "cat", "--merge-strategy", "fuse"], "merge_strategy must be one of nms, union"),
    ],
)
def test_cli_refuses_a_bad_query_or_setting_with_exit_code_2(tmp_path, options, message):
    from typer.testing import CliRunner

    from seglens.cli import app

    for command in ("segment", "batch"):
        result = CliRunner().invoke(app, [command, str(tmp_path / "x.jpg"), *options, "-o", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert message in result.output
