"""The control panel's values as one object (`SegmentationLayout.read` builds it)."""

from __future__ import annotations

from dataclasses import dataclass

from seglens.core.types import QueryParams

__all__ = ["PanelControls"]


@dataclass(frozen=True)
class PanelControls:
    """What the control panel says: the keywords and exclusions boxes as typed, the query
    knobs (`QueryParams`), the overlay opacity `alpha` in [0, 1], the Advanced grid
    (None: the profile's) and profile."""

    keywords: str
    exclude: str
    params: QueryParams
    alpha: float
    points_per_side: int | None = None
    profile: str | None = None
