"""Where model weights come from: a local directory, a locally built tiny model, or the
Hugging Face hub cache at a pinned revision. Missing weights while offline raise one
`ModelNotAvailableError` that names the model, where it looked and what fixes it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from seglens.models.registry import ModelSpec, get_model, loader_for_model_type, resolve_callable

__all__ = [
    "BUILD_STAMP",
    "ModelNotAvailableError",
    "ResolvedModel",
    "build_stamp",
    "hub_offline",
    "pull_model",
    "resolve_model",
]

BUILD_STAMP = "SEGLENS_TINY"  # the recipe a locally built model directory was made by


class ModelNotAvailableError(RuntimeError):
    """Weights for a model are not on this machine and cannot be downloaded now."""


class ResolvedModel:
    """A model name or directory resolved to a directory of `from_pretrained` files."""

    def __init__(self, name: str, path: Path, spec: ModelSpec | None, loader: str, kind: str):
        self.name = name
        self.path = path
        self.spec = spec
        self.loader = loader
        self.kind = kind

    @property
    def meaningless(self) -> bool:
        if self.spec is not None:
            return self.spec.meaningless
        return (self.path / BUILD_STAMP).exists()

    @property
    def model_id(self) -> str:
        """Stable identity for cache keys: name@revision, or the directory's config hash."""
        if self.spec is not None and self.spec.revision and self.spec.builder is None:
            return f"{self.spec.name}@{self.spec.revision[:12]}"
        marker = self.path / BUILD_STAMP
        if marker.exists():
            return f"{self.name}@{marker.read_text().strip()}"
        import hashlib

        digest = hashlib.sha256((self.path / "config.json").read_bytes()).hexdigest()[:12]
        return f"{self.name}@{digest}"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_model(name_or_path: str, models_dir: Path, *, allow_download: bool = False) -> ResolvedModel:
    """Turn a registered name or a directory into a `ResolvedModel`.

    - an existing directory with a ``config.json``: used as is (its ``model_type`` picks the
      loader);
    - a registered model with a builder (tiny): built under `models_dir` on first use;
    - a registered hub model: looked up in the hub cache at its pinned revision, downloaded
      only when `allow_download` is true and the hub is not offline.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        config_path = candidate / "config.json"
        if not config_path.exists():
            raise ModelNotAvailableError(f"{candidate} has no config.json: not a model directory")
        model_type = json.loads(config_path.read_text()).get("model_type", "")
        kind, loader = loader_for_model_type(model_type)
        return ResolvedModel(candidate.name, candidate.resolve(), None, loader, kind)
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise ModelNotAvailableError(f"model directory {name_or_path!r} does not exist")

    spec = get_model(name_or_path)
    if spec.builder is not None:
        path = models_dir / spec.name
        if not (path / "config.json").exists() or _stamp_of(path) != build_stamp(spec):
            _build_locally(spec, path)
        return ResolvedModel(spec.name, path, spec, spec.loader, spec.kind)
    return ResolvedModel(spec.name, _hub_snapshot(spec, allow_download), spec, spec.loader, spec.kind)


def build_stamp(spec: ModelSpec) -> str:
    """What a locally built model's `BUILD_STAMP` file says: name and recipe."""
    return f"{spec.name}-{spec.revision}" if spec.revision else spec.name


def _stamp_of(path: Path) -> str | None:
    try:
        return (path / BUILD_STAMP).read_text().strip()
    except OSError:
        return None


def _build_locally(spec: ModelSpec, path: Path) -> None:
    """Build into a sibling temp dir, stamp it, and rename it into place, so a crash or a
    concurrent builder never leaves a half-written model; a stale build is replaced."""
    assert spec.builder is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=path.parent))
    stale = path.parent / f".{spec.name}-stale-{os.getpid()}"
    try:
        resolve_callable(spec.builder)(tmp)
        (tmp / BUILD_STAMP).write_text(build_stamp(spec) + "\n")
        if path.exists() and _stamp_of(path) != build_stamp(spec):
            path.rename(stale)
        try:
            tmp.rename(path)
        except OSError:
            if _stamp_of(path) != build_stamp(spec):  # not a concurrent builder's result
                raise
    finally:
        for leftover in (tmp, stale):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def _hub_snapshot(spec: ModelSpec, allow_download: bool) -> Path:
    from huggingface_hub import snapshot_download

    assert spec.repo_id is not None
    try:
        return Path(
            snapshot_download(
                spec.repo_id,
                revision=spec.revision,
                allow_patterns=list(spec.allow_patterns),
                local_files_only=True,
            )
        )
    except Exception as local_error:
        if not allow_download or hub_offline():
            raise _not_available(spec, local_error) from None
    return pull_model(spec.name)


def _not_available(spec: ModelSpec, cause: Exception | None = None) -> ModelNotAvailableError:
    why = "HF_HUB_OFFLINE=1 is set" if hub_offline() else "downloads are off for this call"
    return ModelNotAvailableError(
        f"model {spec.name!r} ({spec.repo_id}@{(spec.revision or 'main')[:12]}) is not on this "
        f"machine: looked in the Hugging Face cache {_hub_cache_dir()} and {why}. "
        f"Fix: run `seglens models pull {spec.name}` on a machine with network access (or "
        f"copy the cache there), or pass a local directory holding the model's "
        f"from_pretrained files instead of the name."
    )


def pull_model(name: str) -> Path:
    """Download a registered model's pinned revision into the hub cache, with a progress
    bar. Raises `ModelNotAvailableError` with the reason when it cannot."""
    from huggingface_hub import snapshot_download

    spec = get_model(name)
    if spec.builder is not None:
        raise ModelNotAvailableError(f"model {name!r} is built locally on first use; nothing to pull")
    if hub_offline():
        raise _not_available(spec)
    assert spec.repo_id is not None
    try:
        return Path(
            snapshot_download(spec.repo_id, revision=spec.revision, allow_patterns=list(spec.allow_patterns))
        )
    except Exception as error:
        raise ModelNotAvailableError(
            f"could not download model {name!r} from {spec.repo_id}@{(spec.revision or 'main')[:12]}: "
            f"{type(error).__name__}: {error}. Check the network, HF_ENDPOINT and HF_TOKEN, or "
            f"pass a local directory holding the model's files."
        ) from None
