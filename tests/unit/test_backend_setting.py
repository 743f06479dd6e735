"""The inference backend setting (issue 14): SEGLENS_BACKEND validation, what a pipeline
reports, and `/health` carrying it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fakes import FakeProposer, OracleEmbedder
from seglens.services.segment.pipeline import Pipeline
from seglens.settings import Settings
from server_support import API, harness


def test_backend_setting_takes_known_names_only(monkeypatch):
    monkeypatch.setenv("SEGLENS_BACKEND", "onnx")
    assert Settings().backend == "onnx"
    monkeypatch.delenv("SEGLENS_BACKEND")
    assert Settings().backend == "auto"
    with pytest.raises(ValidationError):
        Settings(backend="tensorrt")


def test_pipeline_reports_its_models_backends():
    proposer, embedder = FakeProposer([]), OracleEmbedder()
    pipe = Pipeline(proposer, embedder)
    assert pipe.backend == "torch"  # models that say nothing run on PyTorch
    proposer.backend_name = embedder.backend_name = "onnx"
    assert pipe.backend == "onnx"
    embedder.backend_name = "torch"  # e.g. one export fell back
    assert pipe.backend == "onnx+torch"


def test_health_reports_the_backend(tmp_path):
    proposer, embedder = FakeProposer([]), OracleEmbedder()
    proposer.backend_name = embedder.backend_name = "onnx"
    with harness(tmp_path, factory=lambda s: Pipeline(proposer, embedder, profile=s.profile)) as h:
        body = h.client.get(f"{API}/health").json()
    assert body["backend"] == "onnx"


def test_from_profile_refuses_an_unknown_backend_before_loading(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        Pipeline.from_profile("tiny", data_dir=tmp_path, backend="tensorrt")
    assert not (tmp_path / "models").exists()  # nothing was built or loaded
