"""The Gradio web UI. It talks to the back end only through the public HTTP API
(`seglens.ui.client.ApiClient`), so it runs mounted on ``seglens serve`` at ``/ui`` or on
its own against a remote back end (``seglens ui --api-url URL``)."""

from seglens.ui.app import UI_PATH, build_ui, create_ui_app, mount_ui
from seglens.ui.client import ApiClient, ApiError

__all__ = ["UI_PATH", "ApiClient", "ApiError", "build_ui", "create_ui_app", "mount_ui"]
