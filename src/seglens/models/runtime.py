"""Inference backends: PyTorch eager (``torch``) or ONNX Runtime (``onnx``), and ``auto``.

With the ``onnx`` backend a loaded model's hot forward passes (the SAM-family image encoder
and point-prompt mask decoder, CLIP's image tower and its text tower, the shared-prefix
path included) are exported once to ONNX files in the models directory, and run through
ONNX Runtime sessions from then on; the PyTorch weights those passes used are then
released (the SAM-family prompt encoder and mask decoder are kept, for box and
multi-point prompts). The export is keyed by model id (which carries the revision), ONNX
Runtime version and this module's export recipe, so a new runtime or a new checkpoint
exports again and nothing else does. Each export is checked against the PyTorch forward
pass on a sample input before it is used; an export or a check that fails leaves that
model on PyTorch, with one warning line.

`loading.attach_backend` (the model loader) attaches them; the model classes only ask whether a
runtime is attached (`SamBackend.runtime`, `ClipEmbedder.runtime`).
"""

from __future__ import annotations

import functools
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
    "export_module",
    "onnxruntime_version",
    "release_weights",
    "resolve_backend",
    "session",
    "shrink_arena",
    "trim_heap",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")

# Bump when an export wrapper or the file layout changes: every cached export is then
# made again. 2: weights in a separate ``<part>.data`` file (memory-mapped by ONNX Runtime)
# and the CLIP text tower as one suffix graph (`clip_prefix.suffix_module`). 3: the mask
# decoder from `prompt_batch.PromptBatchDecoder`. 4: its upscaling one output offset at a time.
# 5: its IoU floor (only the prompts above it are upscaled).
EXPORT_RECIPE = 5


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


# ONNX Runtime session settings (docs/benchmarks.md, backend section, has the measurements).
# - The CPU memory arena keeps the largest activations ever seen allocated for the
#   session's life (cpu-fast, one encode + 64 prompts: peak 3.2 GB with it, 2.0 GB without).
#   The mask decoder is the exception (`session(arena=True)`): it gives its pool back after
#   each batch of prompts (`shrink_arena`, `trim_heap`), and pooling within the batch saves
#   a page fault per fresh page (`onnx_sam.DECODER_CHUNK`).
# - Pre-packing (a packed copy of the matmul weights) stays on: with the weights in an
#   external data file it does not keep a second copy, and without it the kernels are slower.
#   CLIP's image tower is the exception (`session(prepack=False)`, see
#   `onnx_clip.IMAGE_TOWER_PREPACK`).
# - glibc's allocator is left as it is. Rejected, cpu-fast end to end (fresh processes, back
#   to back): a fixed low mmap/trim threshold (mallopt) that hands freed buffers back to the
#   system, 67.0 s at 128 KiB and 58.9 s at 8 MiB vs 33.8 s without (peak 1696 / 1798 vs
#   1898 MB); a fixed high one (mmap 128 MiB, trim 256 MiB) that reuses the activation
#   buffers instead of mapping them afresh, 6% faster on ONNX Runtime (24.2 vs 25.6 s) and
#   14% on PyTorch (34.3 vs 40.0 s) for 18-25% more peak RSS (1986 vs 1684 MB; 1851 vs
#   1482 MB).
# Module-level so that the benchmark can measure the alternatives.
SESSION_SETTINGS: dict[str, Any] = {
    "enable_cpu_mem_arena": False,
    "enable_mem_pattern": True,
    "disable_prepacking": False,
    "optimization": "all",  # "basic", "extended", "all"
}


def session(path: Path, prepack: bool = True, arena: bool = False) -> Any:
    """An ONNX Runtime CPU session on `path` with `SESSION_SETTINGS` and as many intra-op
    threads as PyTorch uses (the cores it was given). `prepack=False` keeps this session
    from pre-packing its weights: it then reads them from the memory-mapped data file, whose
    pages count only once touched and stay reclaimable, like PyTorch's safetensors.
    `arena=True` pools the session's activations between runs (fresh pages from the OS cost
    a page fault each); its caller then gives them back with `shrink_arena()`'s options on a run."""
    import onnxruntime as ort
    import torch

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    settings = SESSION_SETTINGS
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[str(settings["optimization"])]
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = arena or bool(settings["enable_cpu_mem_arena"])
    options.enable_mem_pattern = bool(settings["enable_mem_pattern"])
    if settings["disable_prepacking"] or not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def shrink_arena() -> Any:
    """Run options that give a session's pooled activations back to the OS at the end of
    the run (for a session opened with ``arena=True``)."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def trim_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc's ``malloc_trim``; elsewhere
    nothing). ONNX Runtime's pooled activations, once freed, mostly land on the heap:
    glibc serves allocations up to 32 MB from it once such blocks have been freed, and keeps
    what is freed there."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


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
    missing (written to a temporary name, then renamed, so a crash leaves no half file).
    The weights are moved to ``<part>.data`` beside it: ONNX Runtime memory-maps such a
    file instead of copying the weights out of the graph, so a session holds one copy of
    its weights, not two (measured: CLIP B/32 image tower, +607 MB resident with the
    weights inside the graph, +355 MB from the data file)."""

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
        _externalise(partial, target)
        self.exported.append(part)
        log.info(
            "exported to ONNX",
            extra={
                "fields": {"model": self.model_id, "part": part, "seconds": time.perf_counter() - started}
            },
        )
        return target


def _externalise(source: Path, target: Path) -> None:
    """Write the graph in `source` to `target` with its weights in ``<target stem>.data``
    (the graph file, renamed last, exists only once the data is complete); removes
    `source`."""
    import onnx

    data = target.with_suffix(".data")
    data.unlink(missing_ok=True)
    staging = target.with_name(target.stem + ".staging.onnx")
    graph = onnx.load(str(source))
    onnx.save_model(
        graph,
        str(staging),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    del graph
    staging.replace(target)
    source.unlink(missing_ok=True)
