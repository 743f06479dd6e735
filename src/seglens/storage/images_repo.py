"""Uploaded images in the database (the files themselves live in `seglens.storage.files`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from seglens.storage.db import Database
from seglens.storage.records import StoredImage
from seglens.storage.tables import ImageRow, JobItemRow

__all__ = ["ImageRepository"]

_CHUNK = 500  # SQLite's bound-parameter limit is far above this


def _image(row: ImageRow) -> StoredImage:
    return StoredImage(
        id=row.id,
        pixels_sha256=row.pixels_sha256,
        filename=row.filename,
        format=row.format,
        width=row.width,
        height=row.height,
        bytes=row.bytes,
        created_at=row.created_at,
    )


class ImageRepository:
    """Uploaded images' records in the database; safe to share between threads."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, image: StoredImage) -> tuple[StoredImage, bool]:
        """Insert unless an image with this id exists; returns the stored record and
        whether it is new. The first upload's filename is kept."""
        with self.db.write() as session:
            existing = session.get(ImageRow, image.id)
            if existing is not None:
                return _image(existing), False
            row = ImageRow(
                id=image.id,
                pixels_sha256=image.pixels_sha256,
                filename=image.filename,
                format=image.format,
                width=image.width,
                height=image.height,
                bytes=image.bytes,
                created_at=image.created_at,
            )
            session.add(row)
            return image, True

    def add_many(self, images: Sequence[StoredImage]) -> int:
        """Insert the images whose ids are not stored yet, in one transaction (headless
        batches register thousands of files at once). Returns how many were new."""
        added = 0
        with self.db.write() as session:
            for start in range(0, len(images), _CHUNK):
                chunk = images[start : start + _CHUNK]
                known = set(
                    session.scalars(select(ImageRow.id).where(ImageRow.id.in_([i.id for i in chunk])))
                )
                for image in chunk:
                    if image.id in known:
                        continue
                    known.add(image.id)
                    session.add(
                        ImageRow(
                            id=image.id,
                            pixels_sha256=image.pixels_sha256,
                            filename=image.filename,
                            format=image.format,
                            width=image.width,
                            height=image.height,
                            bytes=image.bytes,
                            created_at=image.created_at,
                        )
                    )
                    added += 1
        return added

    def get(self, image_id: str) -> StoredImage | None:
        """The image `image_id`, or None."""
        with self.db.read() as session:
            row = session.get(ImageRow, image_id)
            return _image(row) if row else None

    def page(self, *, limit: int, offset: int) -> tuple[list[StoredImage], int]:
        """Newest first."""
        with self.db.read() as session:
            rows = session.scalars(
                select(ImageRow).order_by(ImageRow.created_at.desc(), ImageRow.id).limit(limit).offset(offset)
            ).all()
            total = session.scalar(select(func.count()).select_from(ImageRow))
            return [_image(r) for r in rows], int(total or 0)

    def get_many(self, image_ids: Sequence[str]) -> dict[str, StoredImage]:
        """The images of `image_ids` that exist, by id (read in chunks, so any number of ids
        works)."""
        found: dict[str, StoredImage] = {}
        with self.db.read() as session:
            for start in range(0, len(image_ids), _CHUNK):
                chunk = list(image_ids[start : start + _CHUNK])
                found.update(
                    (r.id, _image(r)) for r in session.scalars(select(ImageRow).where(ImageRow.id.in_(chunk)))
                )
        return found

    def by_pixels(self, pixel_hashes: Sequence[str]) -> dict[str, StoredImage]:
        """pixels_sha256 → one uploaded image with those pixels (the oldest)."""
        found: dict[str, StoredImage] = {}
        with self.db.read() as session:
            for start in range(0, len(pixel_hashes), _CHUNK):
                chunk = list(pixel_hashes[start : start + _CHUNK])
                rows = session.scalars(
                    select(ImageRow)
                    .where(ImageRow.pixels_sha256.in_(chunk))
                    .order_by(ImageRow.created_at.desc())
                )
                found.update((r.pixels_sha256, _image(r)) for r in rows)
        return found

    def delete_unless_in_a_job(self, image_id: str) -> tuple[StoredImage | None, int, bool]:
        """Delete the image's row unless a job lists it, in one transaction. Returns
        (the image or None if unknown, how many jobs list it, whether another stored image
        has the same pixels)."""
        with self.db.write() as session:
            row = session.get(ImageRow, image_id)
            if row is None:
                return None, 0, False
            image = _image(row)
            jobs = int(
                session.scalar(
                    select(func.count(func.distinct(JobItemRow.job_id))).where(
                        JobItemRow.image_id == image_id
                    )
                )
                or 0
            )
            if jobs:
                return image, jobs, True
            twins = session.scalar(
                select(func.count())
                .select_from(ImageRow)
                .where(ImageRow.pixels_sha256 == row.pixels_sha256, ImageRow.id != image_id)
            )
            session.delete(row)
            return image, 0, bool(twins)
