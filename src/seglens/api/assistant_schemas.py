"""Request and response bodies of the assistant routes (``/api/v1/assistant/...``).

The chat itself answers with server-sent events (see `seglens.api.routes.assistant`);
their `data` are the event dicts of `seglens.services.assistant.chat`, whose suggestion shape is
`SuggestionOut` here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, model_validator

from seglens.api.schemas import ImageId, JobParamsIn, JobParamsOut, Page, QuerySettings, QueryText, _In, _Out

__all__ = [
    "AdviceOut",
    "AssistantContextIn",
    "AssistantStatusOut",
    "ChatIn",
    "ClearedOut",
    "ConversationDetailOut",
    "ConversationOut",
    "ConversationPage",
    "MessageOut",
    "ScreenContextOut",
    "SuggestionOut",
    "TranslateIn",
    "TranslationOut",
]

JobId = Annotated[str, Field(min_length=1, max_length=64)]
ConversationId = Annotated[str, Field(min_length=1, max_length=64)]
Keyword = Annotated[str, Field(min_length=1, max_length=80)]


class AssistantStatusOut(_Out):
    llm_on: bool = Field(description="False: the offline advisor answers every question.")
    reason: str | None = Field(description="Why the LLM is off (None when it is on).")
    base_url: str = Field(description="The LLM server, without credentials or query string.")
    model: str


class AssistantContextIn(_In):
    """What the user is looking at: a job (`job_id`), or an image with the query and
    settings on screen (`image_id` + `query` + `params`), not both. A job's own query and
    params describe its results, so for a job `query` and `params` are not used."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["job_id", "image_id"],
                "properties": {"job_id": {"type": "string"}, "image_id": {"type": "string"}},
            },
            "if": {"required": ["image_id"], "properties": {"image_id": {"type": "string"}}},
            "then": {"required": ["query"], "properties": {"query": {"type": "string"}}},
        }
    )

    job_id: JobId | None = None
    image_id: ImageId | None = None
    query: QueryText | None = Field(default=None, description="Required with `image_id`.")
    params: JobParamsIn = Field(default_factory=JobParamsIn)

    @model_validator(mode="after")
    def _one_subject(self) -> AssistantContextIn:
        if self.job_id is not None and self.image_id is not None:
            raise ValueError("give job_id or image_id, not both")
        if self.image_id is not None and self.query is None:
            raise ValueError("query is required with image_id")
        return self


class ChatIn(_In):
    message: Annotated[str, Field(min_length=1, max_length=4000)]
    conversation_id: ConversationId | None = Field(
        default=None, description="Continue this conversation; omit to start a new one."
    )
    context: AssistantContextIn | None = None
    lang: Literal["en", "zh"] | None = Field(
        default=None,
        description="The UI's language: the offline advisor answers in it (a question with Chinese "
        "characters is answered in Chinese anyway) and the LLM is asked to.",
    )


class SuggestionOut(_Out):
    """A proposed change of settings; fields left null stay as they are."""

    reason: str
    rule: str = Field(description="The advisor rule that made it, or `llm`.")
    confidence: float
    source: Literal["advisor", "llm"]
    threshold: float | None = None
    merge_threshold: float | None = None
    points_per_side: int | None = None
    keywords: list[str] | None = None
    profile: str | None = Field(
        default=None, description="Advice only: switching models means a new job, the user's call."
    )
    ignored: list[str] = Field(default_factory=list, description="Fields the LLM sent that were invalid.")
    applicable: bool = Field(
        default=False,
        description="True when Apply changes a control (threshold, merging, points per side, keywords); "
        "false for advice only (e.g. a profile), which the UI labels as such and offers no Apply for.",
    )

    @model_validator(mode="before")
    @classmethod
    def _applicable(cls, data: Any) -> Any:
        # Suggestions stored before `applicable` existed: derive it from the settings.
        if isinstance(data, dict) and "applicable" not in data:
            fields = ("threshold", "merge_threshold", "points_per_side", "keywords")
            data = {**data, "applicable": any(data.get(name) is not None for name in fields)}
        return data


class ContextKeywordOut(_Out):
    keyword: str
    matches: int = 0
    images_matched: int = 0
    best_score: float | None = None
    best_image: str | None = Field(
        default=None, description="The file name of the image holding the best score."
    )
    best_below: list[float] = Field(
        default_factory=list, description="Best scores of images where it did not match, highest first."
    )
    lowest_matches: list[float] = Field(default_factory=list, description="The lowest match scores.")
    barely_above: int = 0
    score_histogram: list[int] = Field(
        default_factory=list, description="Match counts per score bin of 0.1 over [0, 1] (10 bins)."
    )
    overlapping_pairs: int = 0
    overlap_iou_min: float | None = None
    overlap_iou_max: float | None = None
    max_matches_per_image: int = 0


class FailureOut(_Out):
    file_name: str
    code: str | None = None
    message: str = ""


class ScreenContextOut(QuerySettings):
    """The numbers the assistant sees (floats rounded to 3 decimals), with the query
    settings they were computed with."""

    model_config = ConfigDict(from_attributes=True)

    scope: Literal["image", "job"]
    keywords: list[str] = Field(default_factory=list)
    exclusions: list[str] = Field(default_factory=list)
    subject_id: str | None = Field(default=None, description="The image or job id.")
    subject_name: str | None = Field(default=None, description="The image's file name (image scope).")
    points_per_side: int | None = None
    profile: str | None = None
    embedder: str | None = None
    embedder_language: str | None = None
    meaningless: bool = False
    device: str | None = None
    images_total: int = 0
    images_done: int = 0
    images_matched: int = 0
    images_failed: int = 0
    regions_mean: float = 0.0
    regions_max: int = 0
    keyword_stats: list[ContextKeywordOut] = Field(default_factory=list)
    exclusion_hits: dict[str, int] = Field(default_factory=dict)
    largest_image_hw: list[int] | None = None
    mean_megapixels: float = 0.0
    timings_ms: dict[str, float] = Field(default_factory=dict, description="Per-image means per stage.")
    cache_hit_images: int = 0
    failures: list[FailureOut] = Field(default_factory=list)


class AdviceOut(_Out):
    context: ScreenContextOut
    suggestions: list[SuggestionOut]
    summary: str = Field(description="What was found, in plain language (Markdown).")


class TranslateIn(_In):
    keywords: list[Keyword] = Field(min_length=1, max_length=32, description="Exclusions keep their `-`.")
    check_all: StrictBool = Field(
        default=False, description="Let the LLM look at Latin-script keywords too (e.g. Spanish)."
    )


class TranslationOut(_Out):
    original: list[str]
    keywords: list[str] = Field(description="One per original keyword, in order; editable before use.")
    translated: list[str] = Field(description="The same as `keywords`.")
    translated_by: Literal["llm"] | None
    llm_used: bool = Field(description="True when the LLM translated.")
    changed: bool
    note: str | None = Field(description="Why nothing was translated, when it was not.")
    error_code: str | None
    embedder_language: str = Field(description="`en`, `zh` or `multi`: what the loaded embedder reads.")


class ConversationOut(_Out):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int


class ConversationPage(Page[ConversationOut]):
    pass


class ConversationContextOut(_Out):
    """What the user was looking at in the conversation's latest turn."""

    job_id: str | None = None
    image_id: str | None = None
    query: str | None = None
    params: JobParamsOut | None = None
    screen: ScreenContextOut | None = None


class MessageOut(_Out):
    id: int
    role: Literal["user", "assistant"]
    content: str
    suggestions: list[SuggestionOut]
    source: Literal["user", "llm", "advisor"]
    error_code: str | None = Field(description="Set when the LLM failed during this answer.")
    created_at: datetime


class ConversationDetailOut(ConversationOut):
    context: ConversationContextOut | None
    messages: list[MessageOut]


class ClearedOut(_Out):
    deleted: int = Field(description="How many conversations were deleted.")
