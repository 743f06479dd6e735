"""seglens.llm without a server: configuration, scrubbing, retry-after parsing, tool calls."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import time

import pytest
from pydantic import SecretStr

from seglens.llm import (
    SUGGEST_PARAMETERS,
    LLMAuthError,
    LLMClient,
    LLMConfig,
    LLMMessage,
    LLMNotConfiguredError,
    redact_url,
    scrub,
)
from seglens.llm.client import _PartialCall, _retry_after_s, _server_message, _StreamScrubber
from seglens.settings import Settings

KEY = "seglens-unit-key-4c1d9"


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEEPSEEK_API_KEY", "SEGLENS_LLM_API_KEY", "SEGLENS_LLM_BASE_URL", "SEGLENS_LLM_ENABLED"):
        monkeypatch.delenv(name, raising=False)


def test_scrub_removes_the_key_and_token_shapes() -> None:
    text = (
        f"bad key {KEY}; header Authorization: Bearer abc.def-123; other sk-live-0123456789; api_key=hunter22"
    )
    cleaned = scrub(text, [KEY])
    assert KEY not in cleaned and "abc.def-123" not in cleaned
    assert "sk-live-0123456789" not in cleaned and "hunter22" not in cleaned
    assert cleaned.startswith("bad key ***")


def test_scrub_leaves_tiny_secrets_alone() -> None:
    assert scrub("a cat", ["a"]) == "a cat"


def test_redact_url_hides_credentials_and_query() -> None:
    assert redact_url("https://user:pw@llm.example/v1?key=abc") == "https://***@llm.example/v1"
    assert redact_url("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1"


def test_config_defaults_to_deepseek_and_is_off_without_a_key() -> None:
    config = LLMConfig.from_settings(Settings())
    assert (config.base_url, config.model) == ("https://api.deepseek.com", "deepseek-chat")
    assert not config.configured
    assert config.off_reason is not None and "SEGLENS_LLM_API_KEY" in config.off_reason


def test_config_reads_deepseek_api_key_and_prefers_the_seglens_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "deepseek-env-key")
    assert LLMConfig.from_settings(Settings()).secrets() == ("deepseek-env-key",)
    monkeypatch.setenv("SEGLENS_LLM_API_KEY", "seglens-env-key")
    config = LLMConfig.from_settings(Settings())
    assert config.secrets() == ("seglens-env-key",) and config.configured


def test_config_treats_an_empty_key_as_none() -> None:
    assert LLMConfig.from_settings(Settings(llm_api_key="  ")).api_key is None


def test_config_local_server_needs_no_key() -> None:
    config = LLMConfig.from_settings(Settings(llm_base_url="http://127.0.0.1:11434/v1", llm_model="llama3.2"))
    assert config.configured and config.api_key is None and not config.key_required


def test_config_can_be_switched_off() -> None:
    config = LLMConfig.from_settings(Settings(llm_api_key=KEY, llm_enabled=False))
    assert not config.configured and "SEGLENS_LLM_ENABLED" in (config.off_reason or "")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://x"},
        {"model": " "},
        {"timeout_s": 0},
        {"max_retries": -1},
        {"retry_base_delay_s": -1},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LLMConfig(**kwargs)  # type: ignore[arg-type]


def test_config_and_client_reprs_hide_the_key() -> None:
    config = LLMConfig(base_url="https://u:pw-secret@api.example/v1", api_key=SecretStr(KEY))
    client = LLMClient(config)
    for text in (repr(config), str(config), repr(client)):
        assert KEY not in text and "pw-secret" not in text
    assert "pw-secret" in config.secrets()


def test_client_without_configuration_raises_not_configured_without_network() -> None:
    client = LLMClient(LLMConfig())
    with pytest.raises(LLMNotConfiguredError) as caught:
        list(client.stream_chat([LLMMessage("user", "hi")]))
    assert caught.value.code == "llm_not_configured"
    assert "DEEPSEEK_API_KEY" in caught.value.message


def test_errors_are_readable_and_serialisable() -> None:
    error = LLMAuthError("The key was rejected.", status=401, detail="x" * 1000)
    assert str(error) == "The key was rejected."
    assert error.to_dict() == {"code": "llm_auth_failed", "message": "The key was rejected.", "status": 401}
    assert len(error.detail) <= 300 and "llm_auth_failed" in repr(error)


def test_retry_after_parsing() -> None:
    assert _retry_after_s({"retry-after": "2"}) == 2.0
    assert _retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after_s({"retry-after": "soon"}) is None
    assert _retry_after_s({}) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (_retry_after_s({"retry-after": date}) or 0) <= 31


def test_server_message_finds_the_human_part() -> None:
    assert _server_message({"error": {"message": "Insufficient Balance"}}) == "Insufficient Balance"
    assert _server_message({"message": "bad model"}) == "bad model"
    assert _server_message("plain") == "plain"
    assert _server_message(None) == ""


def test_partial_tool_call_decodes_or_explains() -> None:
    good = _PartialCall("c1", "suggest_parameters", ['{"thresh', 'old": 0.4}']).build(0)
    assert good.arguments == {"threshold": 0.4} and good.error is None
    broken = _PartialCall("", "suggest_parameters", ['{"threshold": ']).build(2)
    assert broken.arguments is None and broken.id == "call_2" and "not valid JSON" in (broken.error or "")
    listed = _PartialCall("c", "f", ["[1, 2]"]).build(0)
    assert listed.arguments is None and "not a JSON object" in (listed.error or "")


def test_suggest_parameters_schema_lists_the_knobs() -> None:
    schema = SUGGEST_PARAMETERS.to_openai()
    properties = schema["function"]["parameters"]["properties"]
    assert set(properties) == {"threshold", "merge_threshold", "points_per_side", "keywords", "reason"}
    assert schema["function"]["name"] == "suggest_parameters"


def test_importing_seglens_llm_does_not_import_openai() -> None:
    code = "import sys, seglens.llm, seglens.services.assistant.chat; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stream_scrubber_catches_a_key_split_across_chunks_and_holds_back_little() -> None:
    scrubber = _StreamScrubber([KEY])
    assert scrubber.feed("plain text ") == "plain text "  # nothing that could start the key
    out = [scrubber.feed(piece) for piece in ("key: seg", "lens-unit", "-key-4c1d9 done")]
    assert out[0] == "key: " and "".join(out) + scrubber.flush() == "key: *** done"
    assert _StreamScrubber([]).feed(KEY) == KEY
