"""What every UI handler shares: the API client, a scratch directory for the pictures the
browser is shown, and the translation of API errors into readable notices."""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from seglens.ui.client import ApiClient, ApiError
from seglens.ui.i18n import t
from seglens.ui.state import ImageEntry, Session
from seglens.ui.uploads import UploadedFiles

__all__ = ["UiContext"]


@dataclass
class UiContext:
    """`uploads` reads the files the browser uploaded (and nothing else); `build_ui` sets it
    to the Blocks' own record of uploads. The default refuses every path."""

    client: ApiClient
    scratch: Path
    uploads: UploadedFiles = field(default_factory=UploadedFiles)

    @classmethod
    def create(cls, client: ApiClient, scratch: Path | None = None) -> UiContext:
        root = scratch or Path(tempfile.mkdtemp(prefix="seglens-ui-"))
        root.mkdir(parents=True, exist_ok=True)
        return cls(client, root)

    # -- files shown to the browser -----------------------------------------------------
    def save(self, kind: str, data: bytes, suffix: str) -> str:
        """Write `data` under a content-addressed name; returns the path."""
        digest = hashlib.sha256(data).hexdigest()[:32]
        folder = self.scratch / kind
        folder.mkdir(exist_ok=True)
        path = folder / f"{digest}{suffix}"
        if not path.exists():
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return str(path)

    def save_picture(self, kind: str, picture: Image.Image) -> str:
        buffer = io.BytesIO()
        picture.save(buffer, "PNG", compress_level=1)
        return self.save(kind, buffer.getvalue(), ".png")

    def save_download(self, filename: str, data: bytes) -> str:
        """A download under its own name, in a folder of its own (names may repeat)."""
        folder = self.scratch / "downloads" / hashlib.sha256(data).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(filename).name
        path.write_bytes(data)
        return str(path)

    def image_entry(self, image: dict[str, Any]) -> ImageEntry:
        """Fetch the thumbnail once and describe the uploaded image."""
        thumb = self.client.thumbnail(image["id"])
        return ImageEntry(
            id=image["id"],
            filename=image["filename"],
            width=int(image["width"]),
            height=int(image["height"]),
            format=str(image["format"]),
            bytes=int(image["bytes"]),
            thumb_path=self.save("thumbs", thumb, ".jpg"),
        )

    # -- errors -------------------------------------------------------------------------
    def describe(self, error: ApiError, session: Session) -> str:
        """A sentence for the user, in the session's language."""
        lang = session.lang
        if error.code in ("backend_unavailable", "backend_timeout"):
            session.backend_down = True  # the health check clears the notice when it is back
            return t(lang, "backend_down", url=self.client.base_url)
        if error.code == "queue_full":
            seconds = round(error.retry_after_s) if error.retry_after_s else 30
            return t(lang, "queue_full", seconds=seconds)
        if error.code == "too_many_requests":
            return t(lang, "busy")
        if error.code == "models_loading":
            return t(lang, "backend_loading")
        return t(lang, "api_error", message=error.message)
