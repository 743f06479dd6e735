"""The model registry: plain data mapping names to specs, and profiles naming tested pairs.

Third parties add models with `register_model` / `register_profile`, or ship an entry point
in the group ``seglens.models`` whose object is a zero-argument callable returning an
iterable of `ModelSpec` and `Profile` (it may also call the register functions itself)::

    [project.entry-points."seglens.models"]
    my_models = "my_package.seglens_plugin:models"

A spec's `loader` is a dotted ``module:function`` called as ``loader(path, device)``:
`path` is the model's directory (None for a spec with ``needs_weights=False``) and
`device` a `seglens.models.device.DeviceConfig`. A loader that declares a keyword
parameter ``context`` also gets a `LoadContext` (the model's name, its stable `model_id`
for cache keys, whether its weights are random, its spec). It returns a `RegionProposer`
or an `ImageTextEmbedder` (`seglens.models.protocols`). Nothing of it is imported until a
model is loaded, and a spec with ``needs_torch=False`` is loaded without importing torch
or transformers.

Where a spec's weights come from (exactly one): ``repo_id`` + ``revision`` (the Hugging
Face hub, a pinned commit), ``builder`` (a ``module:function`` writing the directory
locally on first use), or ``needs_weights=False`` (nothing to fetch). A spec that breaks
these rules raises `InvalidModelSpec` when it is made, so a plugin fails at registration
with the reason, never later.

`register_model_type` maps a ``config.json`` ``model_type`` to a loader, so a local
directory of that architecture works wherever a model name does (``--proposer DIR``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from seglens.errors import InvalidModelSpec, ModelNotAvailableError
from seglens.models.catalog import BUILTIN_MODELS, BUILTIN_PROFILES
from seglens.models.specs import DOTTED, KINDS, ModelKind, ModelSpec, Profile

__all__ = [
    "ENTRY_POINT_GROUP",
    "InvalidModelSpec",
    "LoadContext",
    "ModelNotAvailableError",
    "ModelSpec",
    "ModelTypeLoader",
    "Profile",
    "get_model",
    "get_profile",
    "list_models",
    "list_profiles",
    "loader_for_model_type",
    "plugin_errors",
    "profile_is_meaningless",
    "register_model",
    "register_model_type",
    "register_profile",
    "resolve_callable",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "seglens.models"


@dataclass(frozen=True)
class LoadContext:
    """What a loader may want besides the directory and the device: the model's `name`,
    its stable `model_id` (name@revision or a content hash: cache keys use it), whether its
    outputs are `meaningless` (random weights), and its `spec` (None for a directory)."""

    name: str
    model_id: str
    meaningless: bool
    spec: ModelSpec | None = None
    path: Path | None = None


@dataclass(frozen=True)
class ModelTypeLoader:
    """How a local directory whose ``config.json`` says `model_type` is loaded."""

    model_type: str
    kind: ModelKind
    loader: str
    needs_torch: bool = True


_MODELS: dict[str, ModelSpec] = {}
_PROFILES: dict[str, Profile] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_PLUGINS_LOADED = False

# config.json "model_type" → loader, so any local directory of a known architecture loads.
_SAM, _SAM2, _CLIP = (
    "seglens.models.sam:load_sam",
    "seglens.models.sam:load_sam2",
    "seglens.models.clip:load_clip",
)
_MODEL_TYPE_LOADERS: dict[str, ModelTypeLoader] = {
    t.model_type: t
    for t in (
        ModelTypeLoader("sam", "proposer", _SAM),
        ModelTypeLoader("sam_hq", "proposer", _SAM),
        ModelTypeLoader("sam2", "proposer", _SAM2),
        ModelTypeLoader("clip", "embedder", _CLIP),
        ModelTypeLoader("chinese_clip", "embedder", _CLIP),
        ModelTypeLoader("siglip", "embedder", _CLIP),
        ModelTypeLoader("siglip2", "embedder", _CLIP),
    )
}


def register_model(spec: ModelSpec, *, replace: bool = False) -> None:
    """Add a model to the registry; a second spec of the same name needs ``replace=True``."""
    if not isinstance(spec, ModelSpec):
        raise InvalidModelSpec(f"register_model takes a ModelSpec, got {type(spec).__name__}")
    if spec.name in _MODELS and not replace:
        raise ValueError(f"model {spec.name!r} is already registered")
    _MODELS[spec.name] = spec


def register_profile(profile: Profile, *, replace: bool = False) -> None:
    """Add `profile` under its name; ValueError when the name is taken (unless `replace`),
    `InvalidModelSpec` for anything but a `Profile`."""
    if not isinstance(profile, Profile):
        raise InvalidModelSpec(f"register_profile takes a Profile, got {type(profile).__name__}")
    if profile.name in _PROFILES and not replace:
        raise ValueError(f"profile {profile.name!r} is already registered")
    _PROFILES[profile.name] = profile


def register_model_type(
    model_type: str, kind: ModelKind, loader: str, *, needs_torch: bool = True, replace: bool = False
) -> None:
    """Load local directories whose ``config.json`` says ``"model_type": model_type`` with
    `loader` (same contract as `ModelSpec.loader`)."""
    entry = ModelTypeLoader(model_type, kind, loader, needs_torch)
    if kind not in KINDS or not DOTTED.match(loader) or not model_type:
        raise InvalidModelSpec(f"invalid model type loader {entry}")
    if model_type in _MODEL_TYPE_LOADERS and not replace and _MODEL_TYPE_LOADERS[model_type] != entry:
        raise ValueError(f"model_type {model_type!r} already has a loader")
    _MODEL_TYPE_LOADERS[model_type] = entry


def loader_for_model_type(model_type: str) -> ModelTypeLoader:
    """The loader registered for a ``config.json`` ``model_type``; ValueError if none."""
    _load_plugins()
    try:
        return _MODEL_TYPE_LOADERS[model_type]
    except KeyError:
        known = ", ".join(sorted(_MODEL_TYPE_LOADERS))
        raise ValueError(
            f"unsupported model_type {model_type!r} (known: {known}; plugins add more with "
            "seglens.models.registry.register_model_type)"
        ) from None


def resolve_callable(dotted: str) -> Callable[..., Any]:
    """The object a dotted ``module:attribute`` path names, importing the module
    (ImportError or AttributeError when it names nothing)."""
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    register_all([*BUILTIN_MODELS, *BUILTIN_PROFILES])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            produced = ep.load()()
            for item in produced or ():
                _register_any(item)
        except Exception as error:
            _PLUGIN_ERRORS[ep.name] = f"{type(error).__name__}: {error}"
            log.error("seglens.models entry point %r failed to load: %s", ep.name, _PLUGIN_ERRORS[ep.name])


def plugin_errors() -> dict[str, str]:
    """Entry point name → why it failed to load (empty when every plugin loaded)."""
    _load_plugins()
    return dict(_PLUGIN_ERRORS)


def _register_any(item: object) -> None:
    if isinstance(item, ModelSpec):
        register_model(item, replace=True)
    elif isinstance(item, Profile):
        register_profile(item, replace=True)
    else:
        raise InvalidModelSpec(f"entry point returned {type(item).__name__}, expected ModelSpec/Profile")


def list_models(kind: ModelKind | None = None) -> list[ModelSpec]:
    """The registered models (built-in, then plugins), of one `kind` or all."""
    _load_plugins()
    return [m for m in _MODELS.values() if kind is None or m.kind == kind]


def list_profiles() -> list[Profile]:
    """The registered profiles (built-in, then plugins)."""
    _load_plugins()
    return list(_PROFILES.values())


def _unknown(what: str, name: str, known: Iterable[str]) -> Exception:
    message = f"unknown {what} {name!r}; known {what}s: {', '.join(sorted(known))}"
    if _PLUGIN_ERRORS:
        failed = "; ".join(f"{ep}: {why}" for ep, why in sorted(_PLUGIN_ERRORS.items()))
        return ModelNotAvailableError(f"{message}. Plugins that failed to load: {failed}")
    return KeyError(message)


def get_model(name: str) -> ModelSpec:
    """The spec registered as `name`. KeyError for an unknown name, or
    `ModelNotAvailableError` when a plugin failed to load (it may have been the one)."""
    _load_plugins()
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown("model", name, _MODELS) from None


def get_profile(name: str) -> Profile:
    """The profile called `name`. KeyError naming the known ones for an unknown name, or
    `ModelNotAvailableError` when a plugin failed to load (it may have been the one)."""
    _load_plugins()
    try:
        return _PROFILES[name]
    except KeyError:
        raise _unknown("profile", name, _PROFILES) from None


def profile_is_meaningless(name: str) -> bool:
    """Whether a profile's results are meaningless (random weights); unknown names are not."""
    try:
        return get_profile(name).meaningless
    except (KeyError, ModelNotAvailableError):
        return False


def register_all(items: Iterable[ModelSpec | Profile]) -> None:
    """Register each `ModelSpec` and `Profile` of `items`, replacing those of the same name;
    raises `InvalidModelSpec` for anything else."""
    for item in items:
        _register_any(item)
