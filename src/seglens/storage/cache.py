"""Content-addressed cache of the expensive stages, in the data directory.

Layout (``<root>`` is ``<data_dir>/cache``)::

    regions/<sha[:2]>/<sha>/<regions_key>.json           SAM regions (RLE) + arrays
    region-embeddings/<sha[:2]>/<sha>/<regions_key>-<embed_key>.npy
    image-embeddings/<sha[:2]>/<sha>/<proposer_key>.npz  for click/box prompts
    text-embeddings/<embed_key>/<text_key>.npy

Keys are short sha256 digests of the model ids and the parameters that change the
result, so a new model or new generation parameters never read stale entries. Writes go
to a temporary file and are renamed into place: readers never see half a file.

Image embeddings are large (4 MB for SAM ViT-B, about 16 MB for SAM 2.1 with its
high-resolution features) and only spare one encoder pass on the first click of an
image, so they live under a byte budget: past it the least recently used are deleted
(a click on such an image encodes it again). Everything else is small and kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from seglens.core.types import CocoRle, Regions
from seglens.storage.atomic import atomic_write

__all__ = ["ArtifactCache", "digest"]

_FORMAT = 1


def digest(*parts: Any) -> str:
    """16-hex sha256 of the JSON of `parts` (sorted keys)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ArtifactCache:
    """File cache rooted at `root`; every method is safe to call from several threads."""

    def __init__(self, root: Path, image_embeddings_max_bytes: int | None = None):
        """`image_embeddings_max_bytes`: the budget of the image embeddings (None: no
        limit; 0: never written to disk)."""
        self.root = Path(root)
        self.image_embeddings_max_bytes = image_embeddings_max_bytes
        self._budget_lock = threading.Lock()
        self._image_embedding_bytes: int | None = None  # running total, scanned on first use

    def _image_dir(self, kind: str, sha: str) -> Path:
        return self.root / kind / sha[:2] / sha

    # -- regions -----------------------------------------------------------------------
    def regions_path(self, sha: str, regions_key: str) -> Path:
        """Where the regions of image `sha` under `regions_key` (proposer id + generation
        params) are kept (a JSON file)."""
        return self._image_dir("regions", sha) / f"{regions_key}.json"

    def load_regions(self, sha: str, regions_key: str) -> Regions | None:
        """The cached regions, or None when missing, unreadable or written in another format."""
        path = self.regions_path(sha, regions_key)
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if data.get("format") != _FORMAT:
            return None
        n = len(data["rles"])
        return Regions(
            image_size_hw=(int(data["image_size_hw"][0]), int(data["image_size_hw"][1])),
            rles=tuple(CocoRle(size=r["size"], counts=r["counts"]) for r in data["rles"]),
            boxes_xyxy=np.asarray(data["boxes_xyxy"], np.float32).reshape(n, 4),
            areas=np.asarray(data["areas"], np.int64).reshape(n),
            predicted_iou=np.asarray(data["predicted_iou"], np.float32).reshape(n),
            stability=np.asarray(data["stability"], np.float32).reshape(n),
            points_xy=np.asarray(data["points_xy"], np.float32).reshape(n, 2),
        )

    def save_regions(self, sha: str, regions_key: str, regions: Regions, meta: dict[str, Any]) -> None:
        """Cache `regions` with `meta` (what produced them) as JSON, atomically."""
        data = {
            "format": _FORMAT,
            "meta": meta,
            "image_size_hw": list(regions.image_size_hw),
            "rles": [dict(r) for r in regions.rles],
            "boxes_xyxy": regions.boxes_xyxy.tolist(),
            "areas": regions.areas.tolist(),
            "predicted_iou": regions.predicted_iou.tolist(),
            "stability": regions.stability.tolist(),
            "points_xy": regions.points_xy.tolist(),
        }
        payload = json.dumps(data, separators=(",", ":")).encode()
        atomic_write(self.regions_path(sha, regions_key), lambda h: h.write(payload))

    # -- arrays -----------------------------------------------------------------------
    def region_embeddings_path(self, sha: str, regions_key: str, embed_key: str) -> Path:
        """Where the region embeddings of those regions under embedder key `embed_key` are kept
        (a .npy file)."""
        return self._image_dir("region-embeddings", sha) / f"{regions_key}-{embed_key}.npy"

    def load_array(self, path: Path) -> np.ndarray | None:
        """The array at `path`, or None when missing or unreadable (pickles are refused)."""
        try:
            return np.load(path, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None

    def save_array(self, path: Path, array: np.ndarray) -> None:
        """Write `array` to `path` as .npy, atomically."""
        atomic_write(path, lambda h: np.save(h, array, allow_pickle=False))

    def text_embedding_path(self, embed_key: str, text: str) -> Path:
        """Where the embedding of `text` under embedder key `embed_key` is kept (a .npy file
        named by the text's hash)."""
        return self.root / "text-embeddings" / embed_key / f"{digest(text)}.npy"

    def image_embedding_path(self, sha: str, proposer_key: str) -> Path:
        """Where the image embedding of image `sha` under proposer key `proposer_key` is kept
        (a .npz file)."""
        return self._image_dir("image-embeddings", sha) / f"{proposer_key}.npz"

    def load_arrays(self, path: Path) -> dict[str, np.ndarray] | None:
        """The named arrays of the .npz at `path`, or None when missing or unreadable."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (FileNotFoundError, ValueError, OSError):
            return None

    def save_arrays(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        """Write the named `arrays` to `path` as .npz, atomically."""
        atomic_write(path, lambda h: np.savez(h, **arrays))  # type: ignore[arg-type]

    def load_image_embedding(self, sha: str, proposer_key: str) -> dict[str, np.ndarray] | None:
        """The cached image embedding's arrays, or None; a hit marks it recently used (evicted
        last)."""
        path = self.image_embedding_path(sha, proposer_key)
        arrays = self.load_arrays(path)
        if arrays is not None:
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: evicted last
        return arrays

    def save_image_embedding(self, sha: str, proposer_key: str, arrays: dict[str, np.ndarray]) -> None:
        """Keep an image embedding on disk within the budget (oldest evicted first)."""
        budget = self.image_embeddings_max_bytes
        size = sum(int(a.nbytes) for a in arrays.values())
        if budget is not None and size > budget:
            return
        path = self.image_embedding_path(sha, proposer_key)
        self.save_arrays(path, arrays)
        if budget is None:
            return
        with self._budget_lock:
            if self._image_embedding_bytes is None:
                self._image_embedding_bytes = sum(size for _, size, _ in self._image_embedding_files())
            else:
                self._image_embedding_bytes += _file_size(path)
            if self._image_embedding_bytes > budget:
                self._image_embedding_bytes = self._evict_image_embeddings(budget, keep=path)

    def _image_embedding_files(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every stored image embedding."""
        files = []
        for path in (self.root / "image-embeddings").glob("*/*/*.npz"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        return files

    def _evict_image_embeddings(self, budget: int, keep: Path) -> int:
        """Delete the least recently used image embeddings until 90 % of the budget is
        left free for the next ones; returns the bytes kept. Rescans the directory, so
        other processes sharing it (Ray workers) are counted too."""
        files = sorted(self._image_embedding_files())
        total = sum(size for _, size, _ in files)
        target = int(budget * 0.9)
        for _, size, path in files:
            if total <= target:
                break
            if path == keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
        return total

    def forget_image(self, sha: str) -> None:
        """Delete every cached artifact of the image with pixel hash `sha`."""
        for kind in ("regions", "region-embeddings", "image-embeddings"):
            shutil.rmtree(self._image_dir(kind, sha), ignore_errors=True)
        with self._budget_lock:
            self._image_embedding_bytes = None  # recounted at the next save

    def regions_for_image(self, sha: str) -> list[Path]:
        """Every cached region file of image `sha`, sorted by path."""
        directory = self._image_dir("regions", sha)
        return sorted(directory.glob("*.json")) if directory.exists() else []


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
