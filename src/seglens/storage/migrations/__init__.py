"""Alembic migrations of the SegLens database (run by `seglens.storage.db.Database.migrate`)."""
