"""The functions the assistant's model may call, as plain JSON schemas."""

from __future__ import annotations

from seglens.llm.client import ToolSpec

__all__ = ["SUGGEST_PARAMETERS", "SUGGEST_PARAMETERS_NAME"]

SUGGEST_PARAMETERS_NAME = "suggest_parameters"

SUGGEST_PARAMETERS = ToolSpec(
    name=SUGGEST_PARAMETERS_NAME,
    description=(
        "Propose new SegLens settings that the user can apply with one click. Include only the "
        "fields that should change, ground the reason in the numbers of the context, and call "
        "it at most once or twice per answer."
    ),
    parameters={
        "type": "object",
        "properties": {
            "threshold": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Matching threshold: minimum keyword probability for a region to match.",
            },
            "merge_threshold": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Mask IoU above which overlapping matches of one keyword merge (lower merges more).",
            },
            "points_per_side": {
                "type": "integer",
                "minimum": 1,
                "maximum": 128,
                "description": "SAM point grid per side (re-runs mask generation; fewer is faster).",
            },
            "keywords": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": 32,
                "description": "The complete new keyword list (exclusions written -word).",
            },
            "reason": {"type": "string", "description": "One or two sentences citing the numbers."},
        },
        "required": ["reason"],
        "additionalProperties": False,
    },
)
