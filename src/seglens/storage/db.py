"""The SQLite database: engine, sessions and schema migrations.

SQLite runs in WAL mode, so readers never block the writer and the writer never blocks
readers. Write transactions start with ``BEGIN IMMEDIATE``: a transaction that reads and
then writes takes the write lock up front and waits (``busy_timeout``) instead of failing
with "database is locked" when another thread writes at the same moment.

The schema is owned by the Alembic migrations shipped in ``seglens/storage/migrations``;
`Database.migrate` upgrades a database file to the newest revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["MIGRATIONS_DIR", "Database"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_BUSY_TIMEOUT_MS = 30_000


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event decide how a transaction starts (pysqlite's own
    # implicit BEGIN would defer the write lock).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cursor.close()


def _on_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One SQLite file, shared by every thread of the process.

    `read()` and `write()` yield sessions whose objects stay usable after the block
    (``expire_on_commit=False``); `write()` commits on success and rolls back on error.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(
            f"sqlite:///{self.path}",
            connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=16,
        )
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        self._readers = sessionmaker(self.engine, expire_on_commit=False)
        self._writers = sessionmaker(
            self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (a no-op when current)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction (concurrent readers are fine)."""
        with self._readers() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction, committed on a clean exit and rolled back on an
        error; writers take turns."""
        with self._writers() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (the database file stays)."""
        self.engine.dispose()
