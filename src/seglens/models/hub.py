"""Where model weights come from: a local directory, a locally built model, nothing (a
model that needs no weights), or the Hugging Face hub cache at a pinned revision.

Downloads ask the hub once, with a short timeout, for the revision's file list
(``GET {HF_ENDPOINT}/api/models/{repo}/revision/{commit}?blobs=true``) before
`huggingface_hub.snapshot_download` runs, so a hub that does not answer fails within
seconds with the fix instead of retrying for minutes. Progress goes to stderr (one bar per
model) and to `seglens.models.progress.LOADS` (the server's ``/health`` details). Every
failure raises `ModelNotAvailableError` naming the model, where SegLens looked and what
fixes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglens.models.progress import LOADS
from seglens.models.registry import (
    ModelNotAvailableError,
    ModelSpec,
    get_model,
    loader_for_model_type,
    resolve_callable,
)

__all__ = [
    "BUILD_STAMP",
    "RANDOM_WEIGHTS_MARKER",
    "HubRevision",
    "ModelNotAvailableError",
    "ResolvedModel",
    "build_stamp",
    "cached_snapshot",
    "check_available",
    "fetch_revision",
    "hub_cache_dir",
    "hub_endpoint",
    "hub_offline",
    "hub_timeout_s",
    "pull_model",
    "resolve_model",
]

BUILD_STAMP = "SEGLENS_BUILD"  # which recipe a locally built directory was made by
RANDOM_WEIGHTS_MARKER = "SEGLENS_RANDOM_WEIGHTS"  # its weights are random: outputs mean nothing
_LEGACY_TINY_MARKER = "SEGLENS_TINY"  # both at once, in directories built before 0.2


class ResolvedModel:
    """A model name or directory resolved to what its loader needs. `path` is None for a
    model that needs no weights."""

    def __init__(
        self,
        name: str,
        path: Path | None,
        spec: ModelSpec | None,
        loader: str,
        kind: str,
        needs_torch: bool = True,
    ):
        self.name = name
        self.path = path
        self.spec = spec
        self.loader = loader
        self.kind = kind
        self.needs_torch = needs_torch

    @property
    def meaningless(self) -> bool:
        """From the spec; for a directory, whether it carries the random-weights marker."""
        if self.spec is not None:
            return self.spec.meaningless
        if self.path is None:
            return False
        return (self.path / RANDOM_WEIGHTS_MARKER).exists() or (self.path / _LEGACY_TINY_MARKER).exists()

    @property
    def model_id(self) -> str:
        """Stable identity for cache keys: name@revision, name@build recipe, or the
        directory's config hash."""
        spec = self.spec
        if spec is not None and spec.source == "hub" and spec.revision:
            return f"{spec.name}@{spec.revision[:12]}"
        if (spec is not None and spec.source == "none") or self.path is None:
            return f"{self.name}@{(spec.revision if spec else None) or 'no-weights'}"
        stamp = _stamp_of(self.path)
        if stamp:
            return f"{self.name}@{stamp}"
        digest = hashlib.sha256((self.path / "config.json").read_bytes()).hexdigest()[:12]
        return f"{self.name}@{digest}"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_timeout_s() -> float:
    """Seconds to wait for the hub to answer (``HF_HUB_ETAG_TIMEOUT``, default 5)."""
    try:
        return max(0.5, float(os.environ.get("HF_HUB_ETAG_TIMEOUT", "5")))
    except ValueError:
        return 5.0


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_model(name_or_path: str, models_dir: Path, *, allow_download: bool = False) -> ResolvedModel:
    """Turn a registered name or a directory into a `ResolvedModel`.

    - an existing directory with a ``config.json``: used as is (its ``model_type`` picks the
      loader, `seglens.models.registry.register_model_type` adds more);
    - a registered model with a builder: built under `models_dir` on first use;
    - a registered model that needs no weights: nothing to fetch;
    - a registered hub model: looked up in the hub cache at its pinned revision, downloaded
      only when `allow_download` is true and the hub is not offline.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        config_path = candidate / "config.json"
        if not config_path.exists():
            raise ModelNotAvailableError(f"{candidate} has no config.json: not a model directory")
        model_type = json.loads(config_path.read_text()).get("model_type", "")
        entry = loader_for_model_type(model_type)
        return ResolvedModel(
            candidate.name, candidate.resolve(), None, entry.loader, entry.kind, entry.needs_torch
        )
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise ModelNotAvailableError(f"model directory {name_or_path!r} does not exist")

    spec = get_model(name_or_path)
    if spec.source == "none":
        return ResolvedModel(spec.name, None, spec, spec.loader, spec.kind, spec.needs_torch)
    if spec.source == "built":
        path = models_dir / spec.name
        if not (path / "config.json").exists() or _stamp_of(path) != build_stamp(spec):
            _build_locally(spec, path)
        return ResolvedModel(spec.name, path, spec, spec.loader, spec.kind, spec.needs_torch)
    path = _hub_snapshot(spec, allow_download)
    return ResolvedModel(spec.name, path, spec, spec.loader, spec.kind, spec.needs_torch)


def build_stamp(spec: ModelSpec) -> str:
    """What a locally built model's `BUILD_STAMP` file says: name and recipe."""
    return f"{spec.name}-{spec.revision}" if spec.revision else spec.name


def _stamp_of(path: Path) -> str | None:
    for marker in (BUILD_STAMP, _LEGACY_TINY_MARKER):
        try:
            return (path / marker).read_text().strip()
        except OSError:
            continue
    return None


def _build_locally(spec: ModelSpec, path: Path) -> None:
    """Build into a sibling temp dir, stamp it, and rename it into place, so a crash or a
    concurrent builder never leaves a half-written model; a stale build is replaced."""
    if spec.builder is None:
        raise ModelNotAvailableError(f"model {spec.name!r} has no builder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=path.parent))
    stale = path.parent / f".{spec.name}-stale-{os.getpid()}"
    LOADS.begin(spec.name, "building")
    try:
        resolve_callable(spec.builder)(tmp)
        (tmp / BUILD_STAMP).write_text(build_stamp(spec) + "\n")
        if spec.meaningless:
            (tmp / RANDOM_WEIGHTS_MARKER).write_text("random weights: outputs mean nothing\n")
        if path.exists() and _stamp_of(path) != build_stamp(spec):
            path.rename(stale)
        try:
            tmp.rename(path)
        except OSError:
            if _stamp_of(path) != build_stamp(spec):  # not a concurrent builder's result
                raise
    finally:
        LOADS.finish(spec.name)
        for leftover in (tmp, stale):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def _spec_label(spec: ModelSpec) -> str:
    return f"{spec.repo_id}@{(spec.revision or 'main')[:12]}"


def cached_snapshot(spec: ModelSpec) -> Path | None:
    """The complete snapshot of a hub model in the local cache, or None (no network)."""
    from huggingface_hub import snapshot_download

    if spec.repo_id is None:
        return None
    try:
        return Path(
            snapshot_download(
                spec.repo_id,
                revision=spec.revision,
                allow_patterns=list(spec.allow_patterns),
                local_files_only=True,
            )
        )
    except Exception:
        return None


def _hub_snapshot(spec: ModelSpec, allow_download: bool) -> Path:
    cached = cached_snapshot(spec)
    if cached is not None:
        return cached
    if not allow_download or hub_offline():
        raise _not_available(spec)
    return pull_model(spec.name)


def _not_available(spec: ModelSpec) -> ModelNotAvailableError:
    why = "HF_HUB_OFFLINE=1 is set" if hub_offline() else "downloads are off (SEGLENS_ALLOW_DOWNLOAD=0)"
    return ModelNotAvailableError(
        f"model {spec.name!r} ({_spec_label(spec)}) is not on this machine: looked in the "
        f"Hugging Face cache {hub_cache_dir()} and {why}. Fix: unset HF_HUB_OFFLINE to download "
        f"it on first use, or run `seglens models pull {spec.name}` on a machine with network "
        f"access (and copy the cache here), or pass a local directory holding the model's "
        f"from_pretrained files instead of the name; `seglens doctor` checks the setup."
    )


@dataclass(frozen=True)
class HubRevision:
    """A repo at a commit as the hub lists it: `files` maps path → size in bytes."""

    repo_id: str
    sha: str
    files: dict[str, int]


def fetch_revision(spec: ModelSpec, timeout_s: float | None = None) -> HubRevision:
    """Ask the hub for the spec's pinned revision and its files, waiting at most
    `timeout_s` (`hub_timeout_s()`); raises `ModelNotAvailableError` with the fix when the
    hub does not answer, or the repo or the revision does not exist there."""
    from huggingface_hub.utils import build_hf_headers

    if spec.repo_id is None:
        raise ModelNotAvailableError(f"model {spec.name!r} is not a hub model")
    timeout = hub_timeout_s() if timeout_s is None else timeout_s
    if not hub_endpoint().startswith(("http://", "https://")):
        raise ModelNotAvailableError(
            f"HF_ENDPOINT must start with http:// or https://, got {hub_endpoint()!r}"
        )
    url = f"{hub_endpoint()}/api/models/{spec.repo_id}/revision/{spec.revision or 'main'}?blobs=true"
    request = urllib.request.Request(url, headers=build_hf_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise _hub_refused(spec, error.code, error.headers.get("X-Error-Code")) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ModelNotAvailableError(
            f"cannot download model {spec.name!r} ({_spec_label(spec)}): the Hugging Face hub at "
            f"{hub_endpoint()} did not answer within {timeout:g} s ({reason}). Fix: check the "
            f"network (or HTTPS_PROXY, or HF_ENDPOINT for a mirror) and try again; on a machine "
            f"without network, run `seglens models pull {spec.name}` elsewhere and copy the "
            f"Hugging Face cache ({hub_cache_dir()}), or try the offline demo profile: "
            f"SEGLENS_PROFILE=tiny (random weights, results mean nothing)."
        ) from None
    files = {
        str(item["rfilename"]): int(item.get("size") or 0)
        for item in body.get("siblings") or []
        if isinstance(item, dict) and "rfilename" in item
    }
    return HubRevision(spec.repo_id, str(body.get("sha") or spec.revision), files)


def _hub_refused(spec: ModelSpec, status: int, code: str | None) -> ModelNotAvailableError:
    if code == "RevisionNotFound":
        problem = (
            f"the hub has no revision {spec.revision} of {spec.repo_id}. Fix: this SegLens pins a "
            "revision that the repo no longer has; upgrade SegLens, or pass a local directory"
        )
    elif code in ("RepoNotFound", "GatedRepo") or status in (401, 403, 404):
        problem = (
            f"the hub answered {status} for {spec.repo_id}: the repo does not exist or needs a login. "
            "Fix: set HF_TOKEN (or run `hf auth login`) and accept the model's terms on its hub page"
        )
    else:
        problem = f"the hub at {hub_endpoint()} answered HTTP {status}. Fix: try again later"
    return ModelNotAvailableError(f"cannot download model {spec.name!r} ({_spec_label(spec)}): {problem}.")


def _progress_class(name: str, bar: Any) -> type[Any]:
    """A tqdm class for `snapshot_download` that shows nothing itself and forwards the
    bytes written (its "Reconstructing" bar) to `bar` and to `LOADS`."""
    from tqdm.auto import tqdm

    class _Forwarding(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            self._counts_bytes = str(kwargs.get("desc", "")).startswith("Reconstruct")
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._counts_bytes and n:
                bar.update(int(n))
                LOADS.add_bytes(name, int(n))
            return super().update(n)

    return _Forwarding


def pull_model(name: str, *, quiet: bool = False) -> Path:
    """Download a registered model's pinned revision into the hub cache, with a progress
    bar on stderr (unless `quiet`); a complete cached copy is returned without network.
    Files already in the cache are kept, so pulling again after an interruption fetches
    only what is missing. Raises `ModelNotAvailableError` with the reason and the fix."""
    from tqdm.auto import tqdm

    spec = get_model(name)
    if spec.source == "built":
        raise ModelNotAvailableError(f"model {name!r} is built locally on first use; nothing to pull")
    if spec.source == "none":
        raise ModelNotAvailableError(f"model {name!r} needs no weights; nothing to pull")
    cached = cached_snapshot(spec)
    if cached is not None:
        return cached
    if hub_offline():
        raise _not_available(spec)
    from huggingface_hub.utils import filter_repo_objects

    LOADS.begin(name, "checking")
    try:
        revision = fetch_revision(spec)
        wanted = list(filter_repo_objects(revision.files, allow_patterns=list(spec.allow_patterns)))
        total = sum(revision.files[path] for path in wanted)
        LOADS.begin(name, "downloading", total)
        if not quiet:
            print(
                f"downloading model {name} ({_spec_label(spec)}, {len(wanted)} files, "
                f"{total / 1e6:.1f} MB) from {hub_endpoint()} into {hub_cache_dir()}",
                file=sys.stderr,
                flush=True,
            )
        bar = tqdm(
            total=total, desc=name, unit="B", unit_scale=True, file=sys.stderr, disable=quiet, mininterval=0.5
        )
        try:
            path = _download(spec, _progress_class(name, bar))
        finally:
            bar.close()
    finally:
        LOADS.finish(name)
    return path


def _download(spec: ModelSpec, progress_class: type[Any]) -> Path:
    from huggingface_hub import errors, snapshot_download

    # One line per HTTP request would drown the progress bar in the server's log.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if spec.repo_id is None:
        raise ModelNotAvailableError(f"model {spec.name!r} is not a hub model")
    try:
        return Path(
            snapshot_download(
                spec.repo_id,
                revision=spec.revision,
                allow_patterns=list(spec.allow_patterns),
                etag_timeout=hub_timeout_s(),
                tqdm_class=progress_class,
                max_workers=4,
            )
        )
    except errors.RevisionNotFoundError:
        raise _hub_refused(spec, 404, "RevisionNotFound") from None
    except errors.RemoteEntryNotFoundError as error:
        raise ModelNotAvailableError(
            f"cannot download model {spec.name!r} ({_spec_label(spec)}): the hub lists a file it "
            f"then does not serve ({error.response.url}). Fix: try again later; if it persists the "
            f"repo is broken at this revision: pass a local directory instead."
        ) from None
    except errors.RepositoryNotFoundError as error:
        raise _hub_refused(spec, error.response.status_code, "RepoNotFound") from None
    except Exception as error:
        raise ModelNotAvailableError(
            f"the download of model {spec.name!r} ({_spec_label(spec)}) from {hub_endpoint()} "
            f"stopped: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
            f"Files already downloaded are kept: run `seglens models pull {spec.name}` again to "
            f"fetch the rest. Check the network (or HTTPS_PROXY / HF_ENDPOINT) and HF_TOKEN."
        ) from None


def check_available(names: list[str], *, allow_download: bool = True) -> list[str]:
    """Before a server starts: raise `ModelNotAvailableError` within seconds for a hub
    model that is not cached and cannot be downloaded now (offline, or the hub does not
    answer, or its revision is gone). Returns the names that will be downloaded on first
    use. Directories and local builds are not checked here."""
    to_download = []
    for name in names:
        if Path(name).expanduser().is_dir() or os.sep in name:
            continue
        spec = get_model(name)
        if spec.source != "hub" or cached_snapshot(spec) is not None:
            continue
        if not allow_download or hub_offline():
            raise _not_available(spec)
        fetch_revision(spec)
        to_download.append(name)
    return to_download
