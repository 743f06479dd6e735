"""The plain data of the model registry: `ModelSpec` (one named model) and `Profile` (a
tested pair of models), validated at construction (`InvalidModelSpec`). The registry
(`seglens.models.registry`) holds them by name; the built-in ones are
`seglens.models.catalog`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from seglens.core.types import GenerationParams
from seglens.errors import InvalidModelSpec

__all__ = ["DOTTED", "KINDS", "ModelKind", "ModelSpec", "Profile"]

ModelKind = Literal["proposer", "embedder"]
KINDS = ("proposer", "embedder")
DOTTED = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelSpec:
    """One named model. `repo_id` + `revision` (a pinned 40-hex commit) say where its
    weights live on the Hugging Face hub; a spec with a `builder` is built locally instead
    (``tiny``), and its `revision` names the build recipe: a directory built by another
    recipe is rebuilt, and cache keys change with it. ``needs_weights=False`` marks a model
    with nothing to fetch (its loader gets ``path=None``). `meaningless` says its outputs
    mean nothing (random weights); `needs_torch=False` lets it load without torch."""

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
    needs_weights: bool = True
    needs_torch: bool = True

    def __post_init__(self) -> None:
        problems = _spec_problems(self)
        if problems:
            raise InvalidModelSpec(f"model spec {self.name!r} is invalid: " + "; ".join(problems))

    @property
    def source(self) -> Literal["hub", "built", "none"]:
        """Where the weights come from: the hub, a local build, or nowhere (none needed)."""
        if self.repo_id is not None:
            return "hub"
        return "built" if self.builder is not None else "none"


def _spec_problems(spec: ModelSpec) -> list[str]:
    problems = []
    if not spec.name or not spec.name.strip() or "/" in spec.name or spec.name.startswith("."):
        problems.append("name must be a non-empty word without '/' (it is also a directory name)")
    if spec.kind not in KINDS:
        problems.append(f"kind must be 'proposer' or 'embedder', got {spec.kind!r}")
    if not isinstance(spec.loader, str) or not DOTTED.match(spec.loader):
        problems.append(f"loader must be a dotted 'module:function', got {spec.loader!r}")
    sources = [s for s, given in (("repo_id", spec.repo_id), ("builder", spec.builder)) if given]
    if spec.needs_weights and not sources:
        problems.append(
            "say where the weights come from: repo_id (+ a pinned revision), builder "
            "('module:function' that writes the directory), or needs_weights=False"
        )
    if not spec.needs_weights and sources:
        problems.append(f"needs_weights=False but {' and '.join(sources)} given")
    if len(sources) == 2:
        problems.append("give repo_id or builder, not both")
    if spec.builder is not None and not DOTTED.match(spec.builder):
        problems.append(f"builder must be a dotted 'module:function', got {spec.builder!r}")
    if spec.repo_id is not None and spec.repo_id.count("/") != 1:
        problems.append(f"repo_id must be 'owner/name', got {spec.repo_id!r}")
    if spec.repo_id is not None and spec.revision is not None and not _COMMIT.match(spec.revision):
        problems.append(f"revision must be a pinned 40-hex commit, got {spec.revision!r}")
    return problems


@dataclass(frozen=True)
class Profile:
    """A tested pair of models plus generation defaults for it."""

    name: str
    proposer: str
    embedder: str
    description: str
    generation: GenerationParams = field(default_factory=GenerationParams)
    meaningless: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.proposer or not self.embedder:
            raise InvalidModelSpec(f"profile {self.name!r} needs a name, a proposer and an embedder")
