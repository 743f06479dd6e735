"""Configuration, built once from ``SEGLENS_*`` environment variables and injected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from seglens.core.images import DEFAULT_MAX_PIXELS
from seglens.core.types import GenerationParams

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
    # What runs the models' forward passes: "torch", "onnx" (ONNX Runtime, CPU; exported
    # once into models/.onnx) or "auto" (onnx on a CPU when onnxruntime is installed).
    backend: Literal["auto", "torch", "onnx"] = "auto"
    allow_download: bool = True

    host: str = "127.0.0.1"
    port: int = 8000
    api_token: SecretStr | None = None
    # JSON list or comma-separated: SEGLENS_CORS_ORIGINS=http://localhost:3000,https://x.org
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auto_resume: bool = True
    workers: int = 0
    max_queue: int = 10_000
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_files_per_upload: int = 500
    # The server (docs/api.md has the table). `workers` 0 picks 1 on CPU, 2 on CUDA;
    # `max_queue` counts images waiting across all jobs.
    max_interactive: int = 8
    # Batch workers run this many nice steps below request threads (Linux; 0 = same).
    worker_nice: int = 10
    # The fraction of its unloaded pace a batch keeps under interactive load (0 = none
    # reserved: interactive first, whatever the batch's pace). Behind it, the batch is
    # boosted and interactive requests run one at a time (services/scheduler.py).
    batch_share: float = Field(default=0.5, ge=0.0, le=1.0)
    max_job_images: int = 10_000
    # Mask generation cost grows with the square of the grid: a guard against requests
    # that would keep a CPU busy for minutes.
    max_points_per_side: int = Field(default=64, ge=1, le=GenerationParams.POINTS_PER_SIDE_MAX)
    max_request_bytes: int = 512 * 1024 * 1024
    thumbnail_px: int = 256
    # Disk budget of the cached SAM image embeddings (they spare an encoder pass on the
    # first click of an image; 4-16 MB each); the least recently used go first. 0: none kept.
    image_embedding_cache_mb: int = Field(default=2048, ge=0)
    shutdown_grace_s: float = 10.0
    models_wait_s: float = 30.0
    sse_interval_s: float = 0.5
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"

    # Where batch images run (docs/scaling.md): "local", threads of this process sharing
    # its models, or "ray", actors holding the models on a Ray cluster.
    executor: Literal["local", "ray"] = "local"
    # Empty: a private Ray started on this machine (loopback only); "auto": the cluster
    # `ray start` made on this machine; "host:6379" or "ray://host:10001": a remote one.
    ray_address: str = ""
    # Model-holding actors; 0 picks one per GPU of the cluster, else one per
    # `ray_cpus_per_worker` CPUs. `ray_gpus_per_worker` None means 1 when the cluster
    # has GPUs. `ray_tasks_per_worker` images are in flight per actor (one computing,
    # the next one arriving), and an image whose worker dies is sent to another one up
    # to `ray_max_retries` times. `ray_num_cpus` caps a private local Ray (0 = all).
    ray_workers: int = Field(default=0, ge=0)
    ray_cpus_per_worker: float = Field(default=1.0, gt=0)
    ray_gpus_per_worker: float | None = Field(default=None, ge=0)
    ray_tasks_per_worker: int = Field(default=2, ge=1)
    ray_max_retries: int = Field(default=3, ge=0)
    ray_num_cpus: int = Field(default=0, ge=0)
    # A directory mounted at the same path on this machine and every Ray worker: images
    # stored under it travel as paths instead of through Ray's object store.
    shared_dir: Path | None = None

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
    # Chats and keyword translations waiting on the LLM at once (each holds a server
    # thread); more are answered 429.
    llm_max_concurrent: int = 8

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
