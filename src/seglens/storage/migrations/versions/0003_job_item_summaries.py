"""A compact summary of each done job image's result, for the assistant
(``job_item_summaries``, one row per done image, its own table so that reading or adding
one never touches the megabytes of ``job_items.result``).

No backfill: images finished before this revision get their summary the first time the
assistant needs it (computed from the stored result, then stored).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_item_summaries",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("image_id", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("timings_ms", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id", "image_id"],
            ["job_items.job_id", "job_items.image_id"],
            name=op.f("fk_job_item_summaries_job_id_job_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "image_id", name=op.f("pk_job_item_summaries")),
    )


def downgrade() -> None:
    op.drop_table("job_item_summaries")
