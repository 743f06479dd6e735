"""Typed job data: `ItemOutcome` from `compute_outcome`, the core types' own
serialisers (and the stored JSON they keep), `JobRecord.params` typed, `BatchRunner`
complete at construction."""

from __future__ import annotations

import json

import pytest

from fakes import FakeProposer, OracleEmbedder, shapes_scene
from seglens.core.images import load_image
from seglens.core.query import parse_query
from seglens.core.types import JobParams, Match, QueryParams, QueryResult
from seglens.errors import BatchBusy, ImageError, ModelNotAvailableError
from seglens.services.jobs.worker import ItemOutcome, RenderSpec, compute_outcome
from seglens.services.segment.pipeline import Pipeline
from seglens.storage.cache import ArtifactCache


@pytest.fixture
def pipeline(tmp_path):
    _, masks = shapes_scene()
    return Pipeline(FakeProposer(list(masks.values())), OracleEmbedder(), cache=ArtifactCache(tmp_path / "c"))


def _load():
    image, _ = shapes_scene()
    return load_image(image)


def test_compute_outcome_returns_a_typed_outcome_with_the_stored_result_and_files(pipeline):
    outcome = compute_outcome(pipeline, _load, "red, blue", JobParams(), RenderSpec(cutouts=True))
    assert isinstance(outcome, ItemOutcome) and outcome.ok and outcome.error is None
    assert outcome.match_count == 2 and outcome.models == pipeline.model_ids()
    assert list(outcome.result) == [
        "num_regions",
        "image_matched",
        "missing_keywords",
        "excluded_by",
        "best_scores",
        "matches",
        "image",
        "cache_hits",
        "warnings",
    ]
    assert {"decode", "segment", "match", "render"} <= set(outcome.timings_ms)
    assert outcome.files is not None and outcome.files.overlay_png.startswith(b"\x89PNG")
    assert sorted(name.split("-", 1)[1] for name, _ in outcome.files.cutouts) == ["blue.png", "red.png"]
    json.dumps(outcome.result)  # stored as JSON as it is


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (ImageError("a.png: not an image", "not_an_image"), "not_an_image", "a.png: not an image"),
        (
            ModelNotAvailableError("sam is missing"),
            "model_not_available",
            "ModelNotAvailableError: sam is missing",
        ),
        (RuntimeError("CUDA out of memory"), "processing_failed", "RuntimeError: CUDA out of memory"),
    ],
)
def test_a_failure_takes_the_code_of_its_error_class(pipeline, error, code, message):
    def load():
        raise error

    outcome = compute_outcome(pipeline, load, "red", JobParams())
    assert not outcome.ok and outcome.result is None and outcome.files is None
    assert (outcome.error_code, outcome.error) == (code, message)
    assert outcome.models == pipeline.model_ids()


def _match():
    return Match(
        keyword="cat",
        score=0.91,
        cosine=0.31,
        rle={"size": [4, 6], "counts": "abc"},
        bbox_xyxy=(1.0, 2.0, 3.0, 4.0),
        area=6,
        region_indices=(4, 7),
    )


def test_match_and_query_result_serialise_to_the_stored_form_and_back():
    match = _match()
    assert match.to_dict() == {
        "keyword": "cat",
        "score": 0.91,
        "cosine": 0.31,
        "bbox_xyxy": [1.0, 2.0, 3.0, 4.0],
        "area": 6,
        "region_indices": [4, 7],
        "rle": {"size": [4, 6], "counts": "abc"},
    }
    assert Match.from_dict(match.to_dict()) == match
    result = QueryResult(
        query=parse_query("cat"),
        params=QueryParams(threshold=0.3),
        image_size_hw=(4, 6),
        num_regions=9,
        matches=(match,),
        image_matched=True,
        best_scores={"cat": 0.91},
    )
    data = result.to_dict()
    assert list(data) == [
        "num_regions",
        "image_matched",
        "missing_keywords",
        "excluded_by",
        "best_scores",
        "matches",
    ]
    back = QueryResult.from_dict(data, query=result.query, params=result.params, image_size_hw=(4, 6))
    assert back == result


def test_the_api_shows_a_match_as_stored():
    from seglens.api.views import match_out

    assert match_out(_match()).model_dump() == _match().to_dict()


def test_job_params_are_stored_flat_and_read_back_typed(tmp_path):
    from seglens.storage.db import Database
    from seglens.storage.jobs_repo import JobRepository, NewJob

    db = Database(tmp_path / "seglens.db")
    db.migrate()
    params = JobParams(QueryParams(threshold=0.3, mode="all"), points_per_side=16, alpha=0.25)
    JobRepository(db).create(NewJob("j1", "red", ("red",), params, "tiny", True, ()))
    job = JobRepository(db).get("j1")
    assert job is not None and job.params == params
    with db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT params FROM jobs").scalar()
    assert json.loads(stored) == {
        "threshold": 0.3,
        "merge_threshold": 0.7,
        "mode": "all",
        "merge_strategy": "nms",
        "points_per_side": 16,
        "alpha": 0.25,
        "profile": None,
    }
    db.dispose()


def test_a_batch_runner_is_complete_at_construction_and_a_second_one_is_refused(tmp_path, pipeline):
    from seglens.services.jobs.headless import BatchRunner
    from seglens.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", workers=1, profile="fake")
    with BatchRunner(settings, tmp_path / "out", pipeline_factory=lambda _s: pipeline) as runner:
        assert runner.jobs is not None and runner.scheduler is not None and runner.executor is not None
        with pytest.raises(BatchBusy):
            BatchRunner(settings, tmp_path / "out", pipeline_factory=lambda _s: pipeline)
    with BatchRunner(settings, tmp_path / "out", pipeline_factory=lambda _s: pipeline) as again:
        assert again.jobs.page(limit=1, offset=0)[1] == 0
