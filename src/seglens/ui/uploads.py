"""The only files the UI ever reads from disk: the ones Gradio received through its own
upload route (``POST <ui>/gradio_api/upload``) in this process.

A file input reaches a handler as a path, and that path comes from the browser: a
scripted client can send ``{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}``
instead of uploading anything. So a path is read only when

- Gradio's upload route wrote it (it is in the Blocks' set of received uploads), and
- it still resolves, symlinks followed, to a regular file inside Gradio's upload folder, and
- it is opened without following a symlink.

Anything else (an absolute path elsewhere, ``..``, a symlink, a directory such as the data
dir, a file Gradio cached for display) is refused with `NotUploadedError`, whose message
says nothing about the path: not whether it exists, not what it is. This holds whether
the UI is mounted on the API app or runs on its own (``seglens ui``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["NotUploadedError", "UploadedFiles"]


class NotUploadedError(Exception):
    """A path that was not received through this UI's upload route (or no longer is a
    plain file there). The message is the same whatever the path was."""

    def __init__(self) -> None:
        super().__init__("only files uploaded through this page can be added")


def _default_folder() -> str:
    from gradio.utils import get_upload_folder

    return str(get_upload_folder())


class UploadedFiles:
    """Reads files Gradio received; refuses every other path.

    `received` returns the paths Gradio's upload route wrote (``Blocks.upload_file_set``);
    `folder` returns Gradio's upload folder (``GRADIO_TEMP_DIR`` or ``<tmp>/gradio``)."""

    def __init__(
        self,
        received: Callable[[], Collection[str]] = frozenset,
        folder: Callable[[], str] = _default_folder,
    ) -> None:
        self._received = received
        self._folder = folder

    @classmethod
    def of(cls, blocks: Any) -> UploadedFiles:
        """The uploads of a Gradio `Blocks` (none at all when this Gradio keeps no record,
        so that an unknown Gradio version fails closed)."""
        return cls(lambda: getattr(blocks, "upload_file_set", None) or frozenset())

    def read(self, path: object) -> bytes:
        """The bytes of an uploaded file; `NotUploadedError` for any other path."""
        if not isinstance(path, str) or not path or "\0" in path:
            raise NotUploadedError()
        candidate = os.path.abspath(path)
        if candidate not in {os.path.abspath(p) for p in list(self._received())}:
            raise NotUploadedError()
        root = os.path.realpath(self._folder())
        real = os.path.realpath(candidate)
        if os.path.commonpath([root, real]) != root or real == root:
            raise NotUploadedError()
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(candidate, flags)
        except OSError:
            raise NotUploadedError() from None
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        if not regular:
            os.close(fd)
            raise NotUploadedError()
        with os.fdopen(fd, "rb") as handle:
            return handle.read()
