"""Alembic environment: upgrades the connection handed over in ``config.attributes``.

Run programmatically by `seglens.storage.db.Database.migrate`; there is no alembic.ini.
New revisions: ``alembic -x db=PATH revision --autogenerate -m "..."`` with
``script_location`` pointing here, or write them by hand; keep one change per revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from seglens.storage.tables import Base

target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("db")
    if not url:
        raise SystemExit("pass the database with: alembic -x db=sqlite:///path/to/seglens.db ...")
    with create_engine(url).connect() as standalone:
        _run(standalone)
        standalone.commit()
