"""Uploaded image files and their thumbnails, content-addressed in the data directory.

Layout (``<root>`` is the data directory)::

    images/<id[:2]>/<id>                  the uploaded bytes, unchanged
    thumbnails/<id[:2]>/<id>-<px>.jpg     EXIF-oriented RGB, longest side <px>

`id` is the sha256 of the file's bytes (64 lower-case hex digits) and is the only thing
that ever becomes part of a path: client file names are metadata. Writes go to a temporary
file renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from seglens.storage.atomic import atomic_write

__all__ = ["ImageFiles", "is_image_id"]

_ID = re.compile(r"^[0-9a-f]{64}$")


def is_image_id(value: str) -> bool:
    """Whether `value` has the form of an image id (64 lowercase hex digits: a sha256)."""
    return bool(_ID.match(value))


class ImageFiles:
    """Originals and thumbnails under `root`; `thumbnail_px` is the thumbnails' longest side."""

    def __init__(self, root: Path, thumbnail_px: int = 256):
        if thumbnail_px < 16:
            raise ValueError(f"thumbnail_px must be at least 16, got {thumbnail_px}")
        self.root = Path(root)
        self.thumbnail_px = thumbnail_px

    def _checked(self, image_id: str) -> str:
        if not is_image_id(image_id):
            raise ValueError(f"not an image id: {image_id[:80]!r}")
        return image_id

    def original_path(self, image_id: str) -> Path:
        """Where image `image_id`'s uploaded bytes are kept; ValueError for a string that is
        not an image id."""
        image_id = self._checked(image_id)
        return self.root / "images" / image_id[:2] / image_id

    def thumbnail_path(self, image_id: str) -> Path:
        """Where its thumbnail at `thumbnail_px` is kept (JPEG); ValueError for a string that
        is not an image id."""
        image_id = self._checked(image_id)
        return self.root / "thumbnails" / image_id[:2] / f"{image_id}-{self.thumbnail_px}.jpg"

    def save_original(self, image_id: str, data: bytes) -> Path:
        """Store the uploaded bytes unless they are there already (content-addressed),
        atomically; returns the path."""
        path = self.original_path(image_id)
        if not path.exists():
            atomic_write(path, data)
        return path

    def delete(self, image_id: str) -> None:
        """Remove the original and its thumbnail (missing files are fine)."""
        self.original_path(image_id).unlink(missing_ok=True)
        self.thumbnail_path(image_id).unlink(missing_ok=True)

    def read_original(self, image_id: str) -> bytes:
        """The uploaded bytes; FileNotFoundError when the file is gone."""
        return self.original_path(image_id).read_bytes()

    def save_thumbnail(self, image_id: str, pixels: np.ndarray) -> Path:
        """Write the thumbnail of (H, W, 3) uint8 RGB `pixels` unless it exists."""
        path = self.thumbnail_path(image_id)
        if not path.exists():
            image = Image.fromarray(pixels, "RGB")
            image.thumbnail(
                (self.thumbnail_px, self.thumbnail_px), Image.Resampling.LANCZOS, reducing_gap=3.0
            )
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=85, optimize=True)
            atomic_write(path, buffer.getvalue())
        return path
