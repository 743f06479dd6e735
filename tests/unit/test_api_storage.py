"""The SQL store under the API: schema migrations, WAL, and the queue's exactly-once writes."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from seglens.core.types import JobParams
from seglens.storage.db import Database
from seglens.storage.images_repo import ImageRepository
from seglens.storage.jobs_repo import JobRepository, NewJob
from seglens.storage.records import StoredImage
from seglens.storage.tables import Base, utcnow


def _db(tmp_path, images=3):
    db = Database(tmp_path / "seglens.db")
    db.migrate()
    repo = ImageRepository(db)
    ids = []
    for n in range(images):
        image_id = f"{n:064x}"
        repo.add(StoredImage(image_id, f"{n:064x}", f"{n}.png", "PNG", 4, 3, 10, utcnow()))
        ids.append(image_id)
    jobs = JobRepository(db)
    jobs.create(NewJob("j1", "red", ("red",), JobParams(), None, False, tuple(ids)))
    return db, jobs, ids


def test_migrations_create_exactly_the_orm_schema_in_wal_mode(tmp_path):
    db = Database(tmp_path / "seglens.db")
    db.migrate()
    db.migrate()  # idempotent
    with db.engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
        journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    assert differences == []
    assert journal == "wal" and foreign_keys == 1


def test_a_result_is_written_once_and_counted_once(tmp_path):
    _, jobs, ids = _db(tmp_path)
    claimed = jobs.claim_next("j1")
    assert claimed is not None and claimed.item.image_id == ids[0] and claimed.job.status == "running"
    first = jobs.finish_item("j1", ids[0], ok=True, result={"matches": []}, match_count=2)
    second = jobs.finish_item("j1", ids[0], ok=True, result={"matches": ["again"]}, match_count=2)
    assert first is not None and (first.done, first.matches) == (1, 2)
    assert second is None
    assert jobs.item("j1", ids[0]).result == {"matches": []}
    assert jobs.get("j1").done == 1


def test_a_result_arriving_after_cancel_or_interruption_is_discarded(tmp_path):
    _, jobs, ids = _db(tmp_path)
    jobs.claim_next("j1")
    jobs.cancel("j1")
    assert jobs.finish_item("j1", ids[0], ok=True, result={}) is None
    jobs.resume("j1")
    jobs.claim_next("j1")
    assert jobs.interrupt_running("test") == ["j1"]
    assert jobs.finish_item("j1", ids[0], ok=True, result={}) is None
    job = jobs.get("j1")
    assert (job.status, job.done, job.interruptions) == ("interrupted", 0, 1)
    assert [i.status for i in jobs.iter_items("j1")] == ["pending"] * 3


def test_the_last_result_completes_the_job(tmp_path):
    _, jobs, ids = _db(tmp_path, images=2)
    for image_id in ids:
        assert jobs.claim_next("j1").item.image_id == image_id
        job = jobs.finish_item("j1", image_id, ok=image_id == ids[0], error="x", error_code="y")
    assert job.status == "completed" and (job.done, job.failed) == (1, 1) and job.finished_at
    assert jobs.claim_next("j1") is None
    assert jobs.queue_depth() == 0
