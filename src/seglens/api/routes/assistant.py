"""The AI assistant: status, chat (server-sent events), conversations, advice, translation.

Chat event stream (``POST /assistant/chat``), one SSE message per event::

    event: conversation            first, always: {"conversation_id": "..."}
    event: text                    {"type": "text", "text": "..."}            (0..n)
    event: suggestion              {"type": "suggestion", "suggestion": {...}} (0..n)
    event: error                   {"type": "error", "code", "message", "fallback"} (0..1)
    event: done                    last, always: {"type": "done", "source", "reply",
                                                  "conversation_id"}

`data` is the event's ``to_dict()`` from `seglens.services.assistant.chat` as one line of JSON.
Everything that can be refused (bad body, unknown conversation, job or image, too many
chats at once, models not loaded for an image context) is refused with a JSON error
before the stream starts; once it has started, LLM failures are `error` events followed by
the offline advisor's answer, never an HTTP error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from seglens.api.assistant_schemas import (
    AdviceOut,
    AssistantContextIn,
    AssistantStatusOut,
    ChatIn,
    ClearedOut,
    ConversationContextOut,
    ConversationDetailOut,
    ConversationOut,
    ConversationPage,
    MessageOut,
    ScreenContextOut,
    SuggestionOut,
    TranslateIn,
    TranslationOut,
)
from seglens.api.deps import AssistantDep, ConversationsDep
from seglens.api.errors import responses
from seglens.api.schemas import GRID_LIMIT_MARK, QUERY_TEXT_SCHEMA
from seglens.core.query import MAX_QUERY_CHARS
from seglens.core.types import GenerationParams, QueryParams
from seglens.services.assistant.chat import DoneEvent
from seglens.services.assistant.context import ContextRequest
from seglens.services.assistant.service import ChatTurn
from seglens.services.errors import InvalidInput, invalid_input
from seglens.services.jobs.types import JobParams
from seglens.storage.conversations_repo import ConversationRecord, MessageRecord

__all__ = ["EVENT_TYPES", "router"]

router = APIRouter(prefix="/assistant", tags=["assistant"])

EVENT_TYPES = ("conversation", "text", "suggestion", "error", "done")
ConversationIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The conversation id.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
_UNIT: dict[str, Any] = {"ge": 0.0, "le": 1.0}
_DEFAULTS = QueryParams()

_SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "enum": list(EVENT_TYPES)},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                    },
                }
            }
        },
        "description": 'Server-sent events: `conversation` first (`{"conversation_id"}`), then '
        "`text` deltas and `suggestion`s, at most one `error` (the LLM failed; the offline "
        'advisor answers next), and `done` last (`{"type", "source", "reply", '
        '"conversation_id"}`). `data` is one line of JSON.',
    },
    **responses(400, 404, 422, 429, 503),
}


def _context(body: AssistantContextIn | None) -> ContextRequest | None:
    if body is None:
        return None
    with invalid_input("invalid_context"):
        params = body.params.job_params()
        return ContextRequest(job_id=body.job_id, image_id=body.image_id, query=body.query, params=params)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


HEARTBEAT_S = 15.0


async def _events(turn: ChatTurn) -> AsyncIterator[str]:
    """The turn's events as SSE; a comment line every `HEARTBEAT_S` while the LLM is
    silent (a slow first token), so proxies do not close an idle-looking stream."""
    step: asyncio.Future[Any] | None = None
    try:
        yield _sse("conversation", {"conversation_id": turn.conversation_id})
        while True:
            if step is None:
                # The assistant blocks on the LLM: each step runs in a worker thread.
                step = asyncio.ensure_future(run_in_threadpool(next, turn.events, None))
            done, _ = await asyncio.wait({step}, timeout=HEARTBEAT_S)
            if not done:
                yield ": keep-alive\n\n"
                continue
            event, step = step.result(), None
            if event is None:
                return
            data = event.to_dict()
            if isinstance(event, DoneEvent):
                data["conversation_id"] = turn.conversation_id
            yield _sse(event.type, data)
    finally:
        # Also when the client went away: let the step in flight end (the iterator cannot
        # be closed while a thread is inside it), then stop the LLM stream, free the slot.
        with anyio.CancelScope(shield=True):
            if step is not None:
                with contextlib.suppress(Exception):
                    await step
            await run_in_threadpool(turn.close)


@router.get("/status", summary="Whether the LLM is on, and if not why")
def read_assistant_status(assistant: AssistantDep) -> AssistantStatusOut:
    """Reads the settings only; never contacts the LLM. The key is never shown."""
    return AssistantStatusOut.model_validate(assistant.status().to_dict())


@router.post(
    "/chat",
    summary="Ask the assistant; the answer streams as server-sent events",
    response_class=StreamingResponse,
    responses=_SSE_RESPONSES,
)
def chat(assistant: AssistantDep, body: ChatIn) -> StreamingResponse:
    """With `context`, the answer is grounded in the numbers of that job or image (an image
    query runs from the cache first, like `POST /query`). Without an LLM, or when it
    fails, the offline advisor answers and says so. The question and the answer are stored
    in the conversation (a new one unless `conversation_id` is given)."""
    turn = assistant.start_chat(
        body.message, conversation_id=body.conversation_id, context=_context(body.context), lang=body.lang
    )
    return StreamingResponse(
        _events(turn),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/advice",
    summary="The offline advisor's suggestions for a job or an image (no LLM)",
    responses=responses(404, 422, 429, 503),
    openapi_extra={"x-exclusive-query": {"job_id": [], "image_id": ["query"]}},
)
def read_advice(
    assistant: AssistantDep,
    job_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    image_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    query: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="With image_id.",
            json_schema_extra=QUERY_TEXT_SCHEMA,
        ),
    ] = None,
    threshold: Annotated[float, Query(**_UNIT)] = _DEFAULTS.threshold,
    merge_threshold: Annotated[float, Query(**_UNIT)] = _DEFAULTS.merge_threshold,
    mode: Literal["any", "all"] = _DEFAULTS.mode,
    merge_strategy: Literal["nms", "union"] = _DEFAULTS.merge_strategy,
    points_per_side: Annotated[
        int | None,
        Query(
            ge=GenerationParams.POINTS_PER_SIDE_MIN,
            le=GenerationParams.POINTS_PER_SIDE_MAX,
            json_schema_extra=GRID_LIMIT_MARK,
        ),
    ] = None,
    lang: Literal["en", "zh"] = "en",
) -> AdviceOut:
    """Give `job_id`, or `image_id` with `query` and the settings on screen. The same
    suggestions the chat would show, with the context they come from, written in `lang`.
    The settings default to the core `QueryParams` defaults. A repeated call for the same
    screen (job progress, or image, query and settings) is served from a cache."""
    if (job_id is None) == (image_id is None):
        raise InvalidInput("invalid_context", "give job_id, or image_id with query (one of them)")
    if image_id is not None and query is None:
        raise InvalidInput("invalid_context", "query is required with image_id")
    params = JobParams(
        matching=QueryParams(threshold, merge_threshold, mode, merge_strategy),
        points_per_side=points_per_side,
    )
    request = ContextRequest(job_id=job_id, image_id=image_id, query=query, params=params)
    advice = assistant.advice(request, lang)
    return AdviceOut(
        context=ScreenContextOut.model_validate(advice.context.to_dict()),
        suggestions=[SuggestionOut.model_validate(s.to_dict()) for s in advice.suggestions],
        summary=advice.summary,
    )


@router.post(
    "/translate",
    summary="Translate keywords the loaded embedder cannot read into English",
    responses=responses(400, 422, 429),
)
def translate_keywords(assistant: AssistantDep, body: TranslateIn) -> TranslationOut:
    """Only keywords in a script the embedder cannot read go to the LLM (all of them with
    `check_all`); a `zh` or `multi` embedder reads them as they are. Without an LLM, or
    when it fails, the keywords come back unchanged with a `note`."""
    translation, language = assistant.translate(body.keywords, check_all=body.check_all)
    data = translation.to_dict()
    return TranslationOut(
        **data,
        translated=data["keywords"],
        llm_used=translation.translated_by == "llm",
        embedder_language=language,
    )


# -- conversations -----------------------------------------------------------------------
def _conversation_out(record: ConversationRecord) -> ConversationOut:
    return ConversationOut(
        id=record.id,
        title=record.title,
        created_at=record.created_at,
        updated_at=record.updated_at,
        message_count=record.message_count,
    )


def _message_out(record: MessageRecord) -> MessageOut:
    return MessageOut(
        id=record.id,
        role=record.role,  # type: ignore[arg-type]
        content=record.content,
        suggestions=[SuggestionOut.model_validate(s) for s in record.suggestions],
        source=record.source,  # type: ignore[arg-type]
        error_code=record.error_code,
        created_at=record.created_at,
    )


@router.get("/conversations", summary="Conversations, most recently active first", responses=responses(422))
def list_conversations(
    conversations: ConversationsDep, limit: Limit = 50, offset: Offset = 0
) -> ConversationPage:
    items, total = conversations.page(limit=limit, offset=offset)
    return ConversationPage(
        items=[_conversation_out(c) for c in items], total=total, limit=limit, offset=offset
    )


@router.get(
    "/conversations/{conversation_id}",
    summary="A conversation with its messages",
    responses=responses(404, 422),
)
def read_conversation(
    conversations: ConversationsDep, conversation_id: ConversationIdPath
) -> ConversationDetailOut:
    record = conversations.get(conversation_id)
    messages = conversations.messages(conversation_id)
    return ConversationDetailOut(
        **_conversation_out(record).model_dump(),
        context=ConversationContextOut.model_validate(record.context) if record.context else None,
        messages=[_message_out(m) for m in messages],
    )


@router.delete(
    "/conversations/{conversation_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a conversation",
    responses=responses(404, 422),
)
def delete_conversation(conversations: ConversationsDep, conversation_id: ConversationIdPath) -> Response:
    conversations.delete(conversation_id)
    return Response(status_code=204)


@router.delete("/conversations", summary="Delete every conversation")
def clear_conversations(conversations: ConversationsDep) -> ClearedOut:
    return ClearedOut(deleted=conversations.clear())


@router.get(
    "/conversations/{conversation_id}/export",
    summary="Download a conversation as JSON or Markdown",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/markdown": {"schema": {"type": "string"}},
            },
            "description": "The conversation, as an attachment",
        },
        **responses(404, 422),
    },
)
def export_conversation(
    conversations: ConversationsDep,
    conversation_id: ConversationIdPath,
    format: Annotated[Literal["json", "md"], Query()] = "json",
) -> Response:
    export = conversations.export(conversation_id, format)
    return Response(
        export.content or b"",
        media_type=export.media_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
