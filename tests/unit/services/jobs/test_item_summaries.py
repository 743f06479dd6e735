"""Job images carry a compact stored summary, so the assistant's job context never decodes
the stored masks: written when an image finishes, read by the context, computed and
stored once for images finished before summaries existed (migration 0003)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import event

import seglens.services.jobs.types as jobs_types
from seglens.core.exports import ImageRecord
from seglens.core.query import parse_query
from seglens.services.assistant.screen_context import ScreenContext, build_context
from seglens.services.jobs.summary import (
    SUMMARY_VERSION,
    ImageSummary,
    SummarisedImage,
    summarise_item,
    summarise_result,
    usable_summary,
)
from seglens.services.jobs.types import JobParams, item_image_record
from seglens.storage.db import MIGRATIONS_DIR, Database
from seglens.storage.jobs_repo import JobRepository
from seglens.storage.tables import Base
from server_support import Harness, harness
from synthetic_results import match_of, query_result


def _finished_job(h: Harness) -> str:
    ids = h.upload(1, 2, 3)
    job = h.create_job(ids, "red, yellow, blue", threshold=0.4)
    assert h.wait_for(job["id"])["status"] == "completed"
    return str(job["id"])


def _context_from_results(h: Harness, job_id: str) -> ScreenContext:
    """The job's context the old way: every stored result decoded, masks included."""
    jobs = h.runtime.jobs
    job = jobs.get(job_id)
    items = list(jobs.iter_items(job_id))
    names = h.runtime.images.find_many([i.image_id for i in items])
    records = [item_image_record(i, job, names.get(i.image_id)) for i in items]
    params = job.params
    return build_context(records, query=parse_query(job.query), params=params.query_params(), scope="job")


def _forbid_reading_results(monkeypatch: pytest.MonkeyPatch, h: Harness) -> list[str]:
    """Make every way to the stored results fail; returns the SQL run from now on."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the stored results (masks) were read")

    monkeypatch.setattr(h.runtime.jobs, "iter_items", refuse)
    monkeypatch.setattr(jobs_types, "result_to_query_result", refuse)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(h.runtime.db.engine, "before_cursor_execute", record)
    return statements


def _same_numbers(got: ScreenContext, want: ScreenContext) -> None:
    assert got.keyword_stats == want.keyword_stats
    for name in ("images_done", "images_failed", "images_matched", "regions_mean", "regions_max"):
        assert getattr(got, name) == getattr(want, name), name
    assert (got.largest_image_hw, got.exclusion_hits, got.cache_hit_images) == (
        want.largest_image_hw,
        want.exclusion_hits,
        want.cache_hit_images,
    )


def test_a_finished_job_image_stores_its_summary_with_its_result(tmp_path):
    with harness(tmp_path) as h:
        job_id = _finished_job(h)
        job = h.runtime.jobs.get(job_id)
        rows = h.runtime.jobs.item_summaries(job_id)
        items = {i.image_id: i for i in h.runtime.jobs.iter_items(job_id)}
    assert [r.status for r in rows] == ["done", "done", "done"]
    for row in rows:
        assert row.summary is not None and row.summary["version"] == SUMMARY_VERSION
        assert set(row.summary["keywords"]) == {"red", "yellow", "blue"}
        assert row.summary["threshold"] == 0.4
        assert row.summary == summarise_item(items[row.image_id].result, job.query, job.params)
        assert row.timings_ms == items[row.image_id].timings_ms and row.timings_ms
    assert any(row.summary["matched"].get("red", {}).get("matches") for row in rows)


def test_the_job_context_reads_the_summaries_and_never_the_stored_masks(tmp_path, monkeypatch):
    with harness(tmp_path) as h:
        job_id = _finished_job(h)
        want = _context_from_results(h, job_id)
        statements = _forbid_reading_results(monkeypatch, h)
        got = h.runtime.assistant.contexts.for_job(job_id)
    _same_numbers(got, want)
    assert any("job_item_summaries" in sql for sql in statements)
    assert not any("job_items.result" in sql for sql in statements)
    red = got.stats_for("red")
    assert red is not None and red.matches > 0 and red.best_image is not None
    assert red.best_image.startswith("scene-")


def test_images_done_before_summaries_get_theirs_computed_once_then_stored(tmp_path, monkeypatch):
    with harness(tmp_path) as h:
        job_id = _finished_job(h)
        want = _context_from_results(h, job_id)
        with sqlite3.connect(h.settings.data_dir / "seglens.db") as db:  # as before revision 0003
            db.execute("DELETE FROM job_item_summaries WHERE job_id = ?", (job_id,))
        contexts = h.runtime.assistant.contexts
        first = contexts.for_job(job_id)  # computed from the stored results
        stored = [r.summary for r in h.runtime.jobs.item_summaries(job_id)]
        contexts._cache.clear()
        _forbid_reading_results(monkeypatch, h)
        second = contexts.for_job(job_id)  # from the summaries stored by the first build
    assert all(s is not None and s["version"] == SUMMARY_VERSION for s in stored)
    _same_numbers(first, want)
    _same_numbers(second, want)


def test_a_summary_from_another_threshold_or_version_is_not_used():
    result = query_result(("dog", "cat"), [match_of("dog", 0.55), match_of("dog", 0.93)], {"cat": 0.2})
    stored = summarise_result(result, threshold=0.5).to_dict()
    assert usable_summary(stored, ("dog", "cat"), 0.5) == ImageSummary.from_dict(stored)
    assert usable_summary(stored, ("dog", "cat"), 0.4) is None
    assert usable_summary(stored, ("dog", "bird"), 0.5) is None
    assert usable_summary({**stored, "version": SUMMARY_VERSION + 1}, ("dog",), 0.5) is None
    assert usable_summary({"version": SUMMARY_VERSION, "keywords": 3}, ("dog",), 0.5) is None
    assert usable_summary(None, ("dog",), 0.5) is None


def test_a_context_from_stored_summaries_equals_one_from_the_results():
    results = [
        query_result(
            ("dog", "cat"), [match_of("dog", 0.55), match_of("dog", 0.93, (2, 2, 12, 12))], {"cat": 0.2}
        ),
        query_result(("dog", "cat"), [match_of("dog", 0.71), match_of("cat", 0.51)], excluded_by=("hat",)),
        query_result(("dog", "cat"), [], {"dog": 0.3, "cat": 0.1}, regions=0),
    ]
    records = [ImageRecord(f"{n}.jpg", result=r, cache_hits={"regions": True}) for n, r in enumerate(results)]
    records.append(ImageRecord("bad.jpg", error="unreadable", error_code="image_unreadable"))
    query, params = results[0].query, results[0].params
    summarised = [
        SummarisedImage(r.file_name, error=r.error, error_code=r.error_code)
        if r.result is None
        else SummarisedImage(
            r.file_name,
            ImageSummary.from_dict(
                json.loads(
                    json.dumps(
                        summarise_item(_stored(r), "dog, cat", JobParams.from_dict({"threshold": 0.5}))
                    )
                )
            ),
        )
        for r in records
    ]
    want = build_context(records, query=query, params=params)
    got = build_context(summarised, query=query, params=params)
    assert got.keyword_stats == want.keyword_stats and got.keyword_stats[0].overlapping_pairs == 1
    assert got.failures == want.failures and got.exclusion_hits == want.exclusion_hits
    assert (got.images_done, got.images_matched, got.regions_mean) == (
        3,
        want.images_matched,
        want.regions_mean,
    )
    assert got.cache_hit_images == want.cache_hit_images == 3


def _stored(record: ImageRecord) -> dict[str, Any]:
    assert record.result is not None
    stored = record.result.to_dict()
    height, width = record.result.image_size_hw
    stored.update(image={"height": height, "width": width}, cache_hits=dict(record.cache_hits))
    return stored


def _upgrade_to(db: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_the_migration_adds_summaries_to_an_existing_database_and_keeps_its_results(tmp_path):
    path = tmp_path / "seglens.db"
    db = Database(path)
    _upgrade_to(db, "0002")  # a database from before summaries
    db.dispose()
    result = {
        "num_regions": 1,
        "matches": [],
        "best_scores": {"red": 0.2},
        "image": {"height": 3, "width": 4},
    }
    now = "2026-11-01 10:00:00.000000"
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO images VALUES (?, ?, 'a.png', 'PNG', 4, 3, 10, ?)", ("a" * 64, "a" * 64, now)
        )
        raw.execute(
            "INSERT INTO jobs (id, status, query, keywords, params, profile, models, meaningless, priority,"
            " total, done, failed, skipped, matches, interruptions, created_at, updated_at)"
            " VALUES ('j1', 'completed', 'red', '|red|', '{}', NULL, '{}', 0, 0, 1, 1, 0, 0, 0, 0, ?, ?)",
            (now, now),
        )
        raw.execute(
            "INSERT INTO job_items (job_id, image_id, position, status, attempts, result)"
            " VALUES ('j1', ?, 0, 'done', 1, ?)",
            ("a" * 64, json.dumps(result)),
        )
    db = Database(path)
    db.migrate()
    with db.engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    jobs = JobRepository(db)
    before = jobs.item_summaries("j1")
    stored = jobs.store_summaries("j1", {"a" * 64: ({"version": SUMMARY_VERSION}, {"match": 2.5})})
    after = jobs.item_summaries("j1")
    item = jobs.item("j1", "a" * 64)
    deleted = jobs.delete("j1")
    db.dispose()
    assert differences == []
    assert [(r.status, r.summary) for r in before] == [("done", None)] and stored == 1
    assert [(r.summary, r.timings_ms) for r in after] == [({"version": SUMMARY_VERSION}, {"match": 2.5})]
    assert item is not None and item.result == result
    assert deleted
