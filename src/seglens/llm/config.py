"""Where the LLM lives and how patiently to talk to it, built once from `Settings`."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

from seglens.llm.errors import redact_url
from seglens.settings import Settings

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "HOSTED_HOSTS", "LLMConfig"]

DEFAULT_BASE_URL = "https://api.deepseek.com"
DEFAULT_MODEL = "deepseek-chat"
# Hosted endpoints refuse every request without a key, so without one the LLM counts as
# off; any other URL (Ollama, vLLM, llama.cpp on a LAN) may run without a key.
HOSTED_HOSTS = frozenset({"api.deepseek.com", "api.openai.com"})
_SECRET_NAME = re.compile(r"(?i)key|token|secret|sig|auth|pass")


@dataclass(frozen=True)
class LLMConfig:
    """Connection settings of one OpenAI-compatible chat-completions server.

    - `base_url`: e.g. ``https://api.deepseek.com`` or ``http://127.0.0.1:11434/v1``
    - `api_key`: a `SecretStr` (its repr is masked); None for keyless local servers
    - `timeout_s`: limit for the answer to start and for each later chunk, seconds > 0
    - `connect_timeout_s`: limit for the TCP/TLS connection, seconds > 0
    - `max_retries`: further attempts after a 429 or 5xx, >= 0
    - `retry_base_delay_s`, `retry_max_delay_s`: exponential back-off ``base * 2**n``
      capped at the max; a longer Retry-After ends the retries
    - `enabled`: False keeps the assistant offline whatever else is set
    """

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key: SecretStr | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_retries: int = 3
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 30.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"LLM base URL must start with http:// or https://, got {redact_url(self.base_url)!r}"
            )
        if not self.model.strip():
            raise ValueError("LLM model name must not be empty")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("LLM timeouts must be > 0 seconds")
        if self.max_retries < 0:
            raise ValueError("LLM max_retries must be >= 0")
        if self.retry_base_delay_s < 0 or self.retry_max_delay_s < 0:
            raise ValueError("LLM retry delays must be >= 0 seconds")

    def __repr__(self) -> str:
        key = "set" if self.api_key is not None else "none"
        return (
            f"LLMConfig(base_url={self.display_url!r}, model={self.model!r}, api_key={key}, "
            f"timeout_s={self.timeout_s:g}, max_retries={self.max_retries}, enabled={self.enabled})"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        """`SEGLENS_LLM_*` settings; ``SEGLENS_LLM_API_KEY`` wins over ``DEEPSEEK_API_KEY``;
        an empty key counts as none."""
        key = settings.llm_api_key or settings.deepseek_api_key
        if key is not None and not key.get_secret_value().strip():
            key = None
        return cls(
            base_url=settings.llm_base_url.strip(),
            model=settings.llm_model.strip(),
            api_key=key,
            timeout_s=settings.llm_timeout_s,
            connect_timeout_s=settings.llm_connect_timeout_s,
            max_retries=settings.llm_max_retries,
            retry_base_delay_s=settings.llm_retry_base_delay_s,
            retry_max_delay_s=settings.llm_retry_max_delay_s,
            enabled=settings.llm_enabled,
        )

    @property
    def host(self) -> str:
        return (urlsplit(self.base_url).hostname or "").lower()

    @property
    def key_required(self) -> bool:
        """True for hosted endpoints that refuse keyless requests."""
        return self.host in HOSTED_HOSTS

    @property
    def off_reason(self) -> str | None:
        """Why the LLM is off, in one sentence for the user; None when it is configured."""
        if not self.enabled:
            return "the LLM is switched off (SEGLENS_LLM_ENABLED=false)"
        if self.api_key is None and self.key_required:
            return (
                f"no API key is configured for {self.host} (set SEGLENS_LLM_API_KEY or "
                "DEEPSEEK_API_KEY, or point SEGLENS_LLM_BASE_URL at a local OpenAI-compatible server)"
            )
        return None

    @property
    def configured(self) -> bool:
        return self.off_reason is None

    @property
    def display_url(self) -> str:
        """The base URL without credentials or query string, safe to show."""
        return redact_url(self.base_url)

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never leave in a message: the key, and the password (also
        as its Basic header) and key-like query values of the base URL."""
        found = [self.api_key.get_secret_value()] if self.api_key is not None else []
        parts = urlsplit(self.base_url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password)}"
            found.append(base64.b64encode(pair.encode()).decode())  # as sent in a Basic header
        found += [v for k, v in parse_qsl(parts.query) if _SECRET_NAME.search(k)]
        return tuple(found)
