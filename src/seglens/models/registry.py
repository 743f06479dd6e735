"""The model registry: plain data mapping names to specs, and profiles naming tested pairs.

Third parties add models with `register_model` / `register_profile`, or ship an entry point
in the group ``seglens.models`` whose object is a zero-argument callable returning an
iterable of `ModelSpec` and `Profile` (it may also call the register functions itself)::

    [project.entry-points."seglens.models"]
    my_models = "my_package.seglens_plugin:models"

A spec's `loader` is a dotted ``module:function`` taking ``(path, DeviceConfig)`` and
returning a `RegionProposer` or an `ImageTextEmbedder`; nothing is imported until a model
is loaded.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from seglens.core.types import GenerationParams

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelSpec",
    "Profile",
    "get_model",
    "get_profile",
    "list_models",
    "list_profiles",
    "loader_for_model_type",
    "profile_is_meaningless",
    "register_model",
    "register_profile",
    "resolve_callable",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "seglens.models"
ModelKind = Literal["proposer", "embedder"]


@dataclass(frozen=True)
class ModelSpec:
    """One named model. `repo_id` + `revision` (a pinned commit) say where its weights live
    on the Hugging Face hub; a spec with a `builder` is built locally instead (``tiny``),
    and its `revision` names the build recipe: a directory built by another recipe is
    rebuilt, and cache keys change with it."""

    name: str
    kind: ModelKind
    family: str
    loader: str
    repo_id: str | None = None
    revision: str | None = None
    builder: str | None = None
    description: str = ""
    params_m: float | None = None
    license: str = ""
    language: str = "en"
    meaningless: bool = False
    allow_patterns: tuple[str, ...] = (
        "*.json",
        "*.safetensors",
        "*.txt",
        "*.model",
        "*.tiktoken",
    )


@dataclass(frozen=True)
class Profile:
    """A tested pair of models plus generation defaults for it."""

    name: str
    proposer: str
    embedder: str
    description: str
    generation: GenerationParams = field(default_factory=GenerationParams)
    meaningless: bool = False


_MODELS: dict[str, ModelSpec] = {}
_PROFILES: dict[str, Profile] = {}
_PLUGINS_LOADED = False

# config.json "model_type" → loader, so any local directory of a known architecture loads.
_MODEL_TYPE_LOADERS: dict[str, tuple[ModelKind, str]] = {
    "sam": ("proposer", "seglens.models.sam:load_sam"),
    "sam_hq": ("proposer", "seglens.models.sam:load_sam"),
    "sam2": ("proposer", "seglens.models.sam:load_sam2"),
    "clip": ("embedder", "seglens.models.clip:load_clip"),
    "chinese_clip": ("embedder", "seglens.models.clip:load_clip"),
    "siglip": ("embedder", "seglens.models.clip:load_clip"),
    "siglip2": ("embedder", "seglens.models.clip:load_clip"),
}


def register_model(spec: ModelSpec, *, replace: bool = False) -> None:
    """Add a model to the registry; a second spec of the same name needs ``replace=True``."""
    if spec.name in _MODELS and not replace:
        raise ValueError(f"model {spec.name!r} is already registered")
    _MODELS[spec.name] = spec


def register_profile(profile: Profile, *, replace: bool = False) -> None:
    if profile.name in _PROFILES and not replace:
        raise ValueError(f"profile {profile.name!r} is already registered")
    _PROFILES[profile.name] = profile


def loader_for_model_type(model_type: str) -> tuple[ModelKind, str]:
    try:
        return _MODEL_TYPE_LOADERS[model_type]
    except KeyError:
        known = ", ".join(sorted(_MODEL_TYPE_LOADERS))
        raise ValueError(f"unsupported model_type {model_type!r} (known: {known})") from None


def resolve_callable(dotted: str) -> Callable[..., Any]:
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from seglens.models import catalog  # noqa: F401  (registers the built-in models)

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            produced = ep.load()()
        except Exception:
            log.exception("seglens.models entry point %r failed to load", ep.name)
            continue
        for item in produced or ():
            _register_any(item)


def _register_any(item: object) -> None:
    if isinstance(item, ModelSpec):
        register_model(item, replace=True)
    elif isinstance(item, Profile):
        register_profile(item, replace=True)
    else:
        raise TypeError(f"entry point returned {type(item).__name__}, expected ModelSpec/Profile")


def list_models(kind: ModelKind | None = None) -> list[ModelSpec]:
    _load_plugins()
    return [m for m in _MODELS.values() if kind is None or m.kind == kind]


def list_profiles() -> list[Profile]:
    _load_plugins()
    return list(_PROFILES.values())


def get_model(name: str) -> ModelSpec:
    _load_plugins()
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(sorted(_MODELS))
        raise KeyError(f"unknown model {name!r}; known models: {known}") from None


def get_profile(name: str) -> Profile:
    _load_plugins()
    try:
        return _PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(_PROFILES))
        raise KeyError(f"unknown profile {name!r}; known profiles: {known}") from None


def profile_is_meaningless(name: str) -> bool:
    """Whether a profile's results are meaningless (random weights); unknown names are not."""
    try:
        return get_profile(name).meaningless
    except KeyError:
        return False


def register_all(items: Iterable[ModelSpec | Profile]) -> None:
    for item in items:
        _register_any(item)
