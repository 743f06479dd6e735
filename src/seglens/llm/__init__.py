"""LLM access for the AI assistant: one client for any OpenAI-compatible server.

Nothing here imports `openai` at import time; the SDK loads on the first request.
"""

from __future__ import annotations

from seglens.llm.client import LLMClient, LLMMessage, StreamEnd, StreamItem, TextChunk, ToolCall, ToolSpec
from seglens.llm.config import DEFAULT_BASE_URL, DEFAULT_MODEL, LLMConfig
from seglens.llm.errors import (
    LLMAuthError,
    LLMBadRequestError,
    LLMError,
    LLMNotConfiguredError,
    LLMRateLimitedError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    LLMUnreachableError,
    redact_url,
    scrub,
)
from seglens.llm.tools import SUGGEST_PARAMETERS, SUGGEST_PARAMETERS_NAME

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "SUGGEST_PARAMETERS",
    "SUGGEST_PARAMETERS_NAME",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "LLMMessage",
    "LLMNotConfiguredError",
    "LLMRateLimitedError",
    "LLMServerError",
    "LLMStreamError",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "StreamEnd",
    "StreamItem",
    "TextChunk",
    "ToolCall",
    "ToolSpec",
    "redact_url",
    "scrub",
]
