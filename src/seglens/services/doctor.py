"""``seglens doctor``: what a user needs to know when SegLens does not work, each problem
with its fix. Every check is cheap (the hub is asked once, with a short timeout) and none
changes anything."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from seglens.settings import Settings

__all__ = ["Check", "run_checks"]

_MIN_FREE_BYTES = 2 * 2**30


@dataclass(frozen=True)
class Check:
    """One line of the report: `status` ``ok``, ``warn`` (works, but note it) or ``fail``
    (will not work); `fix` says what to do when it is not ok."""

    topic: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str = ""


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())  # follows snapshot links


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _model_checks(settings: Settings) -> tuple[list[Check], list[str]]:
    """Profile and models: present (with size) or absent (with the command that fetches it).
    Also returns the hub models that are missing."""
    from seglens.models.hub import cached_snapshot, hub_offline
    from seglens.models.registry import ModelNotAvailableError, get_model, get_profile, plugin_errors

    checks: list[Check] = []
    missing: list[str] = []
    try:
        profile = get_profile(settings.profile)
    except (KeyError, ModelNotAvailableError) as error:
        fix = "pick one of `seglens models list` (SEGLENS_PROFILE or --profile)"
        return [Check("profile", "fail", str(error).strip("'\""), fix)], missing
    note = " (random weights: results mean nothing)" if profile.meaningless else ""
    checks.append(
        Check(
            "profile",
            "warn" if profile.meaningless else "ok",
            f"{profile.name}{note}",
            "for real results: SEGLENS_PROFILE=cpu-fast" if profile.meaningless else "",
        )
    )
    for role, name in (
        ("proposer", settings.proposer or profile.proposer),
        ("embedder", settings.embedder or profile.embedder),
    ):
        topic = f"{role} {name}"
        if Path(name).expanduser().is_dir():
            checks.append(Check(topic, "ok", f"local directory, {_mb(_size(Path(name).expanduser()))}"))
            continue
        try:
            spec = get_model(name)
        except (KeyError, ModelNotAvailableError) as error:
            checks.append(Check(topic, "fail", str(error).strip("'\""), "see `seglens models list`"))
            continue
        if spec.source == "none":
            checks.append(Check(topic, "ok", "needs no weights"))
        elif spec.source == "built":
            built = settings.models_dir / spec.name
            state = (
                f"built, {_mb(_size(built))}" if (built / "config.json").exists() else "built on first use"
            )
            checks.append(Check(topic, "ok", f"{state} in {settings.models_dir}"))
        else:
            snapshot = cached_snapshot(spec)
            if snapshot is not None:
                checks.append(Check(topic, "ok", f"present, {_mb(_size(snapshot))} in {snapshot}"))
            else:
                missing.append(name)
                offline = hub_offline() or not settings.allow_download
                checks.append(
                    Check(
                        topic,
                        "fail" if offline else "warn",
                        f"absent ({spec.repo_id}@{(spec.revision or 'main')[:12]}, ~{spec.params_m or '?'} M params)",
                        f"`seglens models pull {name}`"
                        + (
                            " on a machine with network, then copy the cache"
                            if offline
                            else " (or it downloads on first use)"
                        ),
                    )
                )
    for entry_point, why in plugin_errors().items():
        checks.append(Check(f"plugin {entry_point}", "fail", why, "fix or uninstall the plugin package"))
    return checks, missing


def _hub_check(missing: list[str]) -> Check:
    from seglens.models.hub import fetch_revision, hub_cache_dir, hub_endpoint, hub_offline
    from seglens.models.registry import ModelNotAvailableError, get_model, list_models

    where = f"{hub_endpoint()} (cache {hub_cache_dir()})"
    if hub_offline():
        fix = "unset HF_HUB_OFFLINE to download models" if missing else ""
        return Check("hub", "fail" if missing else "ok", f"offline (HF_HUB_OFFLINE=1), {where}", fix)
    probe = next((get_model(n) for n in missing), None) or next(
        (m for m in list_models() if m.source == "hub"), None
    )
    if probe is None:
        return Check("hub", "ok", f"no hub models registered, {where}")
    try:
        fetch_revision(probe)
    except ModelNotAvailableError as error:
        status: Literal["warn", "fail"] = "fail" if missing else "warn"
        return Check("hub", status, f"not reachable: {where}", str(error).split("Fix: ", 1)[-1])
    return Check("hub", "ok", f"reachable: {where}")


def _device_check(settings: Settings) -> Check:
    try:
        from seglens.models.device import select_device

        config = select_device(settings.device, settings.dtype)
    except (ImportError, ValueError, RuntimeError) as error:
        return Check("device", "fail", f"{settings.device}: {error}", "SEGLENS_DEVICE=cpu (or install torch)")
    detail = f"{config.device} ({config.dtype})"
    if config.device.startswith("cuda"):
        import torch

        detail += f", {torch.cuda.get_device_name(0)}"
    hint = (
        "" if config.device != "cpu" else "CPU only: use the cpu-fast profile; a CUDA GPU is 10-100x faster"
    )
    return Check("device", "ok", detail, hint)


def _disk_checks(settings: Settings) -> list[Check]:
    from seglens.models.hub import hub_cache_dir

    checks = []
    for topic, path, setting in (
        ("data dir", settings.data_dir, "SEGLENS_DATA_DIR"),
        ("model cache", Path(hub_cache_dir()), "HF_HUB_CACHE (or HF_HOME)"),
    ):
        existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
        free = shutil.disk_usage(existing).free
        writable = os.access(existing, os.W_OK)
        detail = f"{path}, {free / 2**30:.1f} GiB free" + ("" if writable else ", NOT writable")
        if not writable:
            checks.append(Check(topic, "fail", detail, f"point {setting} at a writable directory"))
        elif free < _MIN_FREE_BYTES:
            checks.append(Check(topic, "warn", detail, f"free some disk or point {setting} elsewhere"))
        else:
            checks.append(Check(topic, "ok", detail))
    return checks


def _llm_check(settings: Settings) -> Check:
    from seglens.llm.config import LLMConfig

    config = LLMConfig.from_settings(settings)
    if config.configured:
        return Check("assistant LLM", "ok", f"{config.model} at {config.display_url}")
    return Check(
        "assistant LLM",
        "warn",
        f"off: {config.off_reason}",
        "set SEGLENS_LLM_API_KEY (or DEEPSEEK_API_KEY); everything but the AI assistant works without it",
    )


def run_checks(settings: Settings, *, device: bool = True) -> list[Check]:
    """All checks, in the order a user reads them."""
    from seglens._version import __version__

    checks = [Check("seglens", "ok", f"{__version__}, Python {platform.python_version()} ({sys.executable})")]
    model_checks, missing = _model_checks(settings)
    checks += model_checks
    checks.append(_hub_check(missing))
    if device:
        checks.append(_device_check(settings))
    checks += _disk_checks(settings)
    checks.append(_llm_check(settings))
    return checks
