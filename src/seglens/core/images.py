"""Image ingest: decode by content (never by file name), apply EXIF orientation, convert to
RGB, enforce size limits, hash the pixels."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from seglens.core.types import ImageInfo
from seglens.errors import ImageError

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ImageError",
    "LoadedImage",
    "load_image",
    "pixels_sha256",
]

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO")
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class LoadedImage:
    """Decoded pixels, (H, W, 3) uint8 RGB, and their `ImageInfo`."""

    pixels: np.ndarray
    info: ImageInfo


def pixels_sha256(pixels: np.ndarray) -> str:
    """The hex sha256 of `pixels` with their shape and dtype: the same picture in another file
    format gives the same hash, the same bytes in another shape do not."""
    digest = hashlib.sha256()
    digest.update(f"{pixels.shape}|{pixels.dtype}".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 / max(float(array.max()), 1.0)
        return Image.fromarray((array * scale).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _decode(data: bytes, name: str, max_pixels: int) -> tuple[Image.Image, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "unknown"
            if fmt not in ALLOWED_FORMATS:
                raise ImageError(
                    f"{name}: {fmt} images are not supported (use JPEG, PNG, WebP, BMP, TIFF or GIF)",
                    "unsupported_format",
                )
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: {width}x{height} is {width * height:,} pixels, more than the limit of {max_pixels:,}",
                    "too_many_pixels",
                )
            if width < 1 or height < 1:
                raise ImageError(f"{name}: image has no pixels", "invalid_image")
            image.seek(0)
            image.load()
            oriented: Image.Image = ImageOps.exif_transpose(image) or image
            return _to_rgb(oriented), fmt
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            f"{name}: not an image (content is not JPEG, PNG, WebP, BMP, TIFF or GIF)",
            "not_an_image",
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name}: image declares too many pixels (decompression bomb guard)", "too_many_pixels"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{name}: image is corrupt or truncated ({error})", "corrupt_image") from None


def load_image(
    source: str | Path | bytes | Image.Image | np.ndarray,
    *,
    filename: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedImage:
    """Decode a path, raw bytes, a PIL image or an (H, W, 3|4) / (H, W) uint8 array.

    Raises `ImageError` (a ValueError) with a one-line message naming the input for a
    missing, unreadable, non-image, corrupt, oversized (bytes or pixels) file.
    """
    fmt: str | None = None
    size_bytes: int | None = None
    if isinstance(source, str | Path):
        path = Path(source)
        name = filename or path.name
        if not path.is_file():
            raise ImageError(f"{path}: no such file", "not_found")
        size_bytes = path.stat().st_size
        if size_bytes > max_bytes:
            raise ImageError(
                f"{name}: file is {size_bytes:,} bytes, more than the limit of {max_bytes:,}",
                "too_large",
            )
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ImageError(f"{path}: cannot read ({error.strerror or error})", "unreadable") from None
        image, fmt = _decode(data, name, max_pixels)
    elif isinstance(source, bytes | bytearray):
        name = filename or "upload"
        size_bytes = len(source)
        if size_bytes == 0:
            raise ImageError(f"{name}: file is empty", "empty_file")
        if size_bytes > max_bytes:
            raise ImageError(
                f"{name}: file is {size_bytes:,} bytes, more than the limit of {max_bytes:,}",
                "too_large",
            )
        image, fmt = _decode(bytes(source), name, max_pixels)
    elif isinstance(source, Image.Image):
        name = filename or "image"
        if source.width * source.height > max_pixels:
            raise ImageError(
                f"{name}: {source.width}x{source.height} is more than {max_pixels:,} pixels",
                "too_many_pixels",
            )
        fmt = source.format
        image = _to_rgb(ImageOps.exif_transpose(source) or source)
    elif isinstance(source, np.ndarray):
        name = filename or "array"
        array = source
        if array.dtype != np.uint8:
            raise ImageError(f"{name}: arrays must be uint8, got {array.dtype}", "invalid_image")
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
            raise ImageError(f"{name}: expected (H, W, 3) or (H, W, 4), got {source.shape}", "invalid_image")
        if array.shape[0] * array.shape[1] > max_pixels:
            raise ImageError(f"{name}: more than {max_pixels:,} pixels", "too_many_pixels")
        image = _to_rgb(Image.fromarray(array))
    else:
        raise ImageError(f"unsupported image source type {type(source).__name__}", "invalid_image")

    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"{name}: could not convert to RGB", "invalid_image")
    pixels = np.ascontiguousarray(pixels)
    info = ImageInfo(
        sha256=pixels_sha256(pixels),
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        format=fmt,
        bytes=size_bytes,
        filename=filename or (name if name not in ("image", "array", "upload") else None),
    )
    return LoadedImage(pixels=pixels, info=info)
