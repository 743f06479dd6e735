"""Device and dtype selection: cuda, then mps, then cpu, unless the caller says otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ALLOCATOR", "DeviceConfig", "quiet_transformers", "select_device", "tune_allocator"]

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


@dataclass(frozen=True)
class DeviceConfig:
    """Where models run: `device` is a torch device string, `dtype` a torch dtype name."""

    device: str
    dtype: str

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)


def select_device(device: str | None = None, dtype: str | None = None) -> DeviceConfig:
    """Pick the device (`auto` or None: cuda > mps > cpu) and dtype (`auto` or None: float32,
    except bfloat16 on a CUDA card that supports it). Raises ValueError for an unknown or
    unavailable choice."""
    import torch

    wanted = (device or "auto").lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            wanted = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            wanted = "mps"
        else:
            wanted = "cpu"
    elif wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    elif wanted == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available")
    elif not (wanted == "cpu" or wanted.startswith("cuda") or wanted == "mps"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")

    chosen = (dtype or "auto").lower()
    if chosen == "auto":
        bf16 = wanted.startswith("cuda") and torch.cuda.is_bf16_supported()
        chosen = "bfloat16" if bf16 else "float32"
    if chosen not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use auto, float32, float16 or bfloat16")
    return DeviceConfig(device=wanted, dtype=_DTYPES[chosen])


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars and info logs; SegLens reports its own
    progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


# glibc's allocator on CPU inference (`tune_allocator`). By default glibc maps every buffer
# of 32 MiB and more afresh and unmaps it on free, so each decoder batch pays page faults
# and zeroing for its activations (SAM 2.1's 8-prompt batches hold several 32-64 MiB
# tensors) and the rest sit in a heap whose mmap threshold keeps moving. With a fixed mmap
# threshold of 128 MiB such buffers come from the heap and are reused call after call, and
# the heap gives back what is free above 256 MiB. Measured, cpu-fast cold image (2 images
# in one process, run back to back): PyTorch 37.2 -> 31.5 s, ONNX Runtime 28.1 -> 19.5 s (mask
# decoder 11.9 -> 9.5 s), peak RSS +4% (torch 1756 -> 1835 MB, ONNX Runtime 1771 -> 1883 MB)
# (docs/benchmarks.md, "Inference backend"). `None` leaves glibc as it is.
ALLOCATOR: dict[str, int] | None = {"mmap_threshold": 128 << 20, "trim_threshold": 256 << 20}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_allocator_tuned = False


def tune_allocator() -> bool:
    """Apply `ALLOCATOR` to glibc's malloc, once per process, for models on the CPU (both
    backends). Returns whether it was applied: nothing happens on another C library or with
    `ALLOCATOR` None."""
    global _allocator_tuned
    if _allocator_tuned or ALLOCATOR is None:
        return _allocator_tuned
    import ctypes
    import ctypes.util
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    applied = mallopt(_M_MMAP_THRESHOLD, ALLOCATOR["mmap_threshold"]) == 1
    applied = mallopt(_M_TRIM_THRESHOLD, ALLOCATOR["trim_threshold"]) == 1 and applied
    _allocator_tuned = applied
    return applied
