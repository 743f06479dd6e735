"""Device and dtype selection: cuda, then mps, then cpu, unless the caller says otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DeviceConfig", "quiet_transformers", "select_device"]

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
