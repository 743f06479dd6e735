"""Image upload and lookup: validate by content, store content-addressed, thumbnail once.

An upload is decoded in full before anything is stored (format sniffed from the bytes,
EXIF orientation applied, byte and pixel limits and Pillow's decompression-bomb guard
enforced by `seglens.core.images.load_image`), so a rejected file leaves no trace.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from seglens.core.images import ImageError, LoadedImage, load_image
from seglens.services.errors import Conflict, InvalidUpload, NotFound
from seglens.storage.cache import ArtifactCache
from seglens.storage.files import ImageFiles, is_image_id
from seglens.storage.images_repo import ImageRepository
from seglens.storage.records import StoredImage
from seglens.storage.tables import utcnow

__all__ = ["ImageService", "Upload", "clean_filename"]

MAX_FILENAME_CHARS = 255


def clean_filename(name: str | None) -> str:
    """The client's file name as metadata. Raises `InvalidUpload` (``invalid_filename``)
    for a name with a path in it, control characters, or more than 255 characters."""
    if not name:
        return "upload"
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidUpload(
            "invalid_filename", f"file name {name[:80]!r} contains a path; send the bare name"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidUpload("invalid_filename", "file name contains control characters")
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidUpload("invalid_filename", f"file name is longer than {MAX_FILENAME_CHARS} characters")
    return name


@dataclass(frozen=True)
class Upload:
    """One accepted file: the stored image, the name it was sent under, and whether the
    content was new."""

    image: StoredImage
    filename: str
    created: bool


class ImageService:
    """Uploads: validate and store them (content-addressed by sha256 of the bytes), read them
    back decoded (a small in-memory cache of decoded pixels), list and delete them. Errors:
    `InvalidUpload`, `NotFound`, `Conflict`."""

    def __init__(
        self,
        repo: ImageRepository,
        files: ImageFiles,
        *,
        max_bytes: int,
        max_pixels: int,
        memory_slots: int = 8,
        cache: ArtifactCache | None = None,
    ):
        self.repo = repo
        self.files = files
        self.cache = cache
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._decoded: OrderedDict[str, LoadedImage] = OrderedDict()
        self._slots = memory_slots
        self._lock = threading.Lock()

    def upload(self, data: bytes, filename: str | None) -> Upload:
        """Validate and store one file; the same bytes always get the same id. Raises
        `InvalidUpload` with the reason."""
        name = clean_filename(filename)
        try:
            loaded = load_image(data, filename=name, max_pixels=self.max_pixels, max_bytes=self.max_bytes)
        except ImageError as error:
            raise InvalidUpload(error.code, str(error)) from None
        image_id = hashlib.sha256(data).hexdigest()
        self.files.save_original(image_id, data)
        self.files.save_thumbnail(image_id, loaded.pixels)
        record = StoredImage(
            id=image_id,
            pixels_sha256=loaded.info.sha256,
            filename=name,
            format=loaded.info.format or "unknown",
            width=loaded.info.width,
            height=loaded.info.height,
            bytes=len(data),
            created_at=utcnow(),
        )
        stored, created = self.repo.add(record)
        self._remember(image_id, loaded)
        return Upload(stored, name, created)

    def get(self, image_id: str) -> StoredImage:
        """The image `image_id`; `NotFound` (``image_not_found``) for an unknown id or a string
        that is not an image id."""
        image = self.repo.get(image_id) if is_image_id(image_id) else None
        if image is None:
            raise NotFound("image_not_found", f"no image with id {image_id[:80]!r}")
        return image

    def delete(self, image_id: str) -> None:
        """Delete an upload: its record, file, thumbnail and (unless another upload has the
        same pixels) its cached regions and embeddings. An image that a job lists is kept
        (`Conflict` ``image_in_use``): the job's results and exports need it."""
        image, jobs, twins = (
            self.repo.delete_unless_in_a_job(image_id) if is_image_id(image_id) else (None, 0, False)
        )
        if image is None:
            raise NotFound("image_not_found", f"no image with id {image_id[:80]!r}")
        if jobs:
            raise Conflict(
                "image_in_use",
                f"image {image.filename!r} is part of {jobs} job(s); delete those jobs first",
            )
        with self._lock:
            self._decoded.pop(image.id, None)
        self.files.delete(image.id)
        if self.cache is not None and not twins:
            self.cache.forget_image(image.pixels_sha256)

    def page(self, *, limit: int, offset: int) -> tuple[list[StoredImage], int]:
        """Images newest first, and how many there are in all."""
        return self.repo.page(limit=limit, offset=offset)

    def find_many(self, image_ids: list[str]) -> dict[str, StoredImage]:
        """The known images among `image_ids`, by id (unknown ids are left out)."""
        return self.repo.get_many(image_ids)

    def original_path(self, image_id: str) -> Path:
        """Where the image's uploaded bytes are (the file may be gone); `NotFound` for an
        unknown image."""
        return self.files.original_path(self.get(image_id).id)

    def thumbnail_path(self, image_id: str) -> Path:
        """The thumbnail, regenerated if its file was removed."""
        image = self.get(image_id)
        path = self.files.thumbnail_path(image.id)
        if not path.exists():
            self.files.save_thumbnail(image.id, self.load(image.id).pixels)
        return path

    def load(self, image_id: str) -> LoadedImage:
        """Decoded pixels of an uploaded image (the last few stay in memory)."""
        with self._lock:
            cached = self._decoded.get(image_id)
            if cached is not None:
                self._decoded.move_to_end(image_id)
                return cached
        image = self.get(image_id)
        try:
            data = self.files.read_original(image.id)
        except FileNotFoundError:
            raise NotFound(
                "image_file_missing", f"the file of image {image.id} is missing from the data directory"
            ) from None
        loaded = load_image(
            data,
            filename=image.filename,
            max_pixels=self.max_pixels,
            max_bytes=max(self.max_bytes, len(data)),
        )
        self._remember(image.id, loaded)
        return loaded

    def _remember(self, image_id: str, loaded: LoadedImage) -> None:
        with self._lock:
            self._decoded[image_id] = loaded
            self._decoded.move_to_end(image_id)
            while len(self._decoded) > self._slots:
                self._decoded.popitem(last=False)
