"""Configuration, built once from ``SEGLENS_*`` environment variables and injected."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_data_dir"]


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "seglens"


class Settings(BaseSettings):
    """Every knob of the CLI and the server. Secrets are `SecretStr`: they never print."""

    model_config = SettingsConfigDict(env_prefix="SEGLENS_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    profile: str = "cpu-fast"
    proposer: str | None = None
    embedder: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    allow_download: bool = True

    host: str = "127.0.0.1"
    port: int = 8000
    api_token: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=list)
    auto_resume: bool = True
    workers: int = 0
    max_queue: int = 10_000
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_files_per_upload: int = 500

    # The AI assistant's LLM (docs/assistant.md). Any OpenAI-compatible server works.
    llm_enabled: bool = True
    llm_base_url: str = "https://api.deepseek.com"
    llm_api_key: SecretStr | None = None
    # DEEPSEEK_API_KEY (no prefix) is read too; SEGLENS_LLM_API_KEY wins when both are set.
    deepseek_api_key: SecretStr | None = Field(default=None, validation_alias="DEEPSEEK_API_KEY")
    llm_model: str = "deepseek-chat"
    llm_timeout_s: float = 60.0
    llm_connect_timeout_s: float = 10.0
    llm_max_retries: int = 3
    llm_retry_base_delay_s: float = 0.5
    llm_retry_max_delay_s: float = 30.0

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
