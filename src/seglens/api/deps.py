"""Dependencies injected into route handlers with ``Annotated[..., Depends(...)]``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from seglens.api.errors import ApiError
from seglens.api.security import UNAUTHORIZED_MESSAGE, token_matches
from seglens.services.assistant.conversations import ConversationService
from seglens.services.assistant.service import AssistantService
from seglens.services.history import HistoryService
from seglens.services.jobs.reports import JobReports
from seglens.services.jobs.service import JobService
from seglens.services.runtime import Runtime
from seglens.services.segment.images import ImageService
from seglens.services.segment.interactive import InteractiveService
from seglens.services.segment.search import SearchService
from seglens.services.segment.viewdata import ViewDataService
from seglens.settings import Settings

__all__ = [
    "AssistantDep",
    "ConversationsDep",
    "HistoryDep",
    "ImagesDep",
    "InteractiveDep",
    "JobsDep",
    "ReportsDep",
    "RuntimeDep",
    "SearchDep",
    "SettingsDep",
    "ViewDataDep",
    "require_token",
]

_bearer = HTTPBearer(auto_error=False, description="Set when the server has SEGLENS_API_TOKEN.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


def require_token(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <SEGLENS_API_TOKEN>``
    (when a token is configured). Compared in constant time."""
    expected = runtime.settings.api_token
    if expected is None:
        return
    given = f"Bearer {credentials.credentials}" if credentials is not None else None
    if not token_matches(given, expected):
        raise ApiError(401, "unauthorized", UNAUTHORIZED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


def _images(runtime: RuntimeDep) -> ImageService:
    return runtime.images


def _jobs(runtime: RuntimeDep) -> JobService:
    return runtime.jobs


def _reports(runtime: RuntimeDep) -> JobReports:
    return runtime.reports


def _interactive(runtime: RuntimeDep) -> InteractiveService:
    return runtime.interactive


def _view_data(runtime: RuntimeDep) -> ViewDataService:
    return runtime.view_data


def _search(runtime: RuntimeDep) -> SearchService:
    return runtime.search


def _history(runtime: RuntimeDep) -> HistoryService:
    return runtime.history


def _assistant(runtime: RuntimeDep) -> AssistantService:
    return runtime.assistant


def _conversations(runtime: RuntimeDep) -> ConversationService:
    return runtime.conversations


SettingsDep = Annotated[Settings, Depends(get_settings)]
ImagesDep = Annotated[ImageService, Depends(_images)]
JobsDep = Annotated[JobService, Depends(_jobs)]
ReportsDep = Annotated[JobReports, Depends(_reports)]
InteractiveDep = Annotated[InteractiveService, Depends(_interactive)]
SearchDep = Annotated[SearchService, Depends(_search)]
ViewDataDep = Annotated[ViewDataService, Depends(_view_data)]
HistoryDep = Annotated[HistoryService, Depends(_history)]
AssistantDep = Annotated[AssistantService, Depends(_assistant)]
ConversationsDep = Annotated[ConversationService, Depends(_conversations)]
