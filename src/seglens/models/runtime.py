"""Inference backends: PyTorch eager (``torch``) or ONNX Runtime (``onnx``), and ``auto``.

A loaded model always keeps its PyTorch modules. With the ``onnx`` backend its hot
forward passes (the SAM-family image encoder and point-prompt mask decoder, CLIP's image
and text towers) are exported once to ONNX files in the models directory, and run through
ONNX Runtime sessions from then on. The export is keyed by model id (which carries the
revision), ONNX Runtime version and this module's export recipe, so a new runtime or a new
checkpoint exports again and nothing else does. Each export is checked against the
PyTorch forward pass on a sample input before it is used; an export or a check that fails
leaves that model on PyTorch, with one warning line.

`attach_backend` is what the model loader calls; the model classes only ask whether a
runtime is attached (`SamBackend.runtime`, `ClipEmbedder.runtime`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "BACKENDS",
    "EXPORT_RECIPE",
    "ExportCache",
    "attach_backend",
    "export_module",
    "onnxruntime_version",
    "release_weights",
    "resolve_backend",
    "session",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")

# Bump when an export wrapper changes: every cached export is then made again.
EXPORT_RECIPE = 1


def onnxruntime_version() -> str | None:
    """The installed ONNX Runtime's version, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def resolve_backend(backend: str | None, device: str) -> str:
    """``torch`` or ``onnx`` for `backend` (``auto``/None, ``torch``, ``onnx``) on
    `device` (a torch device string). ``auto`` picks ONNX Runtime on a CPU when it is
    installed, else PyTorch (always on CUDA and MPS, where PyTorch's kernels win).
    Raises ValueError for an unknown name, or for ``onnx`` on a non-CPU device or
    without onnxruntime installed."""
    wanted = (backend or "auto").strip().lower()
    if wanted not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    on_cpu = device == "cpu"
    if wanted == "auto":
        return "onnx" if on_cpu and onnxruntime_version() is not None else "torch"
    if wanted == "onnx":
        if not on_cpu:
            raise ValueError(f"backend 'onnx' runs on the CPU only, not on {device!r}")
        if onnxruntime_version() is None:
            raise ValueError("backend 'onnx' needs onnxruntime: pip install 'seglens[onnx]'")
    return wanted


def session(path: Path) -> Any:
    """An ONNX Runtime CPU session on `path` with all graph optimisations and as many
    intra-op threads as PyTorch uses (the cores it was given)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_module(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
) -> None:
    """`torch.onnx.export` with the TorchScript-based exporter (opset 17): on torch 2.13
    it exports these transformers models where the dynamo-based exporter needs extra
    packages and minutes more. Its deprecation warnings are silenced."""
    import torch

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )


def release_weights(module: Any) -> None:
    """Free a PyTorch module's weights once an ONNX session holds its own copy, so that
    the two copies are not both kept in memory. The module cannot run afterwards."""
    if module is None:
        return
    import torch

    for child in module.modules():
        for name, parameter in list(child.named_parameters(recurse=False)):
            child._parameters[name] = torch.nn.Parameter(
                torch.empty(0, dtype=parameter.dtype), requires_grad=False
            )


class ExportCache:
    """Where one model's exported graphs live: ``<models_dir>/.onnx/<model>/<key>/``,
    key = hash of (model id, ONNX Runtime version, export recipe). `get(part, export)`
    returns the path of ``<part>.onnx``, calling ``export(tmp_path)`` first when it is
    missing (written to a temporary name, then renamed, so a crash leaves no half file)."""

    def __init__(self, models_dir: Path, model_id: str):
        version = onnxruntime_version() or "none"
        key = hashlib.sha256(f"{model_id}|ort-{version}|recipe-{EXPORT_RECIPE}".encode()).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.split("@")[0])[:80] or "model"
        self.directory = Path(models_dir) / ".onnx" / safe / key
        self.model_id = model_id
        self.exported: list[str] = []  # parts exported by this process (not found cached)

    def get(self, part: str, export: Callable[[Path], None]) -> Path:
        target = self.directory / f"{part}.onnx"
        if target.exists():
            return target
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "model.json").write_text(
            json.dumps({"model_id": self.model_id, "onnxruntime": onnxruntime_version()})
        )
        partial = self.directory / f"{part}.partial.onnx"
        log.info(
            "exporting to ONNX once (first use; cached afterwards)",
            extra={"fields": {"model": self.model_id, "part": part, "directory": str(self.directory)}},
        )
        started = time.perf_counter()
        export(partial)
        partial.replace(target)
        self.exported.append(part)
        log.info(
            "exported to ONNX",
            extra={
                "fields": {"model": self.model_id, "part": part, "seconds": time.perf_counter() - started}
            },
        )
        return target


def attach_backend(model: Any, backend: str, device: str, models_dir: Path) -> str:
    """Give a loaded model (`SamBackend` or `ClipEmbedder`) the resolved `backend`
    (see `resolve_backend`) and return the one it runs on: ``onnx`` when its graphs were
    exported (or found cached) and passed the parity check, else ``torch``. Never raises
    for a failed export: the model stays on PyTorch and one warning line says why."""
    chosen = resolve_backend(backend, device)
    model.backend_name = "torch"
    if chosen == "torch":
        return "torch"
    from seglens.models.clip import ClipEmbedder
    from seglens.models.sam import SamBackend

    cache = ExportCache(models_dir, str(getattr(model, "model_id", "model")))
    try:
        if isinstance(model, SamBackend):
            from seglens.models.onnx_sam import OnnxSamRuntime

            model.runtime = OnnxSamRuntime.build(model, cache)
        elif isinstance(model, ClipEmbedder):
            from seglens.models.onnx_clip import OnnxClipRuntime

            model.runtime = OnnxClipRuntime.build(model, cache)
        else:
            raise TypeError(f"{type(model).__name__} has no ONNX export")
    except Exception as exc:
        log.warning(
            "ONNX export failed, running on PyTorch",
            extra={"fields": {"model": cache.model_id, "error": f"{type(exc).__name__}: {exc}"[:500]}},
        )
        return "torch"
    model.backend_name = "onnx"
    return "onnx"
