"""Typed records the SQL store returns: plain frozen dataclasses, no ORM objects.

States:

- job: ``queued → running → completed | failed | cancelled | interrupted``; an
  interrupted, cancelled or failed job goes back to ``queued`` when resumed.
- image of a job: ``pending → running → done | failed | skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from seglens.core.types import JobParams
from seglens.errors import TransitionError

__all__ = [
    "ACTIVE_JOB_STATES",
    "FINISHED_JOB_STATES",
    "HistoryEntry",
    "ItemState",
    "JobEvent",
    "JobItemRecord",
    "JobRecord",
    "JobState",
    "StoredImage",
    "TransitionError",
    "keywords_key",
]

JobState = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]
ItemState = Literal["pending", "running", "done", "failed", "skipped"]
ACTIVE_JOB_STATES: tuple[JobState, ...] = ("queued", "running")
FINISHED_JOB_STATES: tuple[JobState, ...] = ("completed", "failed", "cancelled")


def keywords_key(keywords: tuple[str, ...] | list[str]) -> str:
    """``("Cat", "dog")`` → ``"|cat|dog|"``: the form keyword filters match against."""
    return "|" + "|".join(k.casefold() for k in keywords) + "|" if keywords else ""


@dataclass(frozen=True)
class StoredImage:
    """An uploaded file: `id` is the sha256 of its bytes, `pixels_sha256` the hash of its
    decoded pixels (the key of the pipeline's caches)."""

    id: str
    pixels_sha256: str
    filename: str
    format: str
    width: int
    height: int
    bytes: int
    created_at: datetime


@dataclass(frozen=True)
class JobRecord:
    """A job as stored; `params` is stored as ``JobParams.to_dict()`` (JSON)."""

    id: str
    status: JobState
    query: str
    params: JobParams
    profile: str | None
    models: dict[str, Any]
    meaningless: bool
    priority: int
    total: int
    done: int
    failed: int
    skipped: int
    matches: int
    interruptions: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def remaining(self) -> int:
        """Images not yet done, failed or skipped (pending or in flight)."""
        return self.total - self.done - self.failed - self.skipped


@dataclass(frozen=True)
class JobItemRecord:
    """One image of a job; `result` and `timings_ms` are set once, when it is done."""

    job_id: str
    image_id: str
    position: int
    status: ItemState
    attempts: int
    result: dict[str, Any] | None
    timings_ms: dict[str, float] | None
    error: str | None
    error_code: str | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's timeline: when, what (`kind`: ``created``, ``started``,
    ``cancelled``, ...) and an optional message."""

    at: datetime
    kind: str
    message: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """A job or an interactive request, as listed by the history log (level 3).

    `ref` is the job id for jobs and the interaction's number for the others."""

    kind: Literal["job", "query", "prompt", "search"]
    ref: str
    created_at: datetime
    query: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"
    image_count: int = 0
    match_count: int = 0
    duration_ms: float | None = None
    image_id: str | None = None
