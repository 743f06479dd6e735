import json

import pytest

from seglens.models import registry
from seglens.models.device import select_device
from seglens.models.hub import ModelNotAvailableError, resolve_model
from seglens.models.registry import ModelSpec, Profile, get_model, get_profile, list_models, list_profiles

REQUIRED = {
    "sam-vit-base",
    "sam-vit-large",
    "sam-vit-huge",
    "sam2.1-hiera-tiny",
    "sam2.1-hiera-small",
    "sam2.1-hiera-base-plus",
    "sam2.1-hiera-large",
    "clip-vit-b32",
    "clip-vit-l14",
    "siglip2-base",
    "chinese-clip-base",
}


def test_catalog_has_the_required_models_with_pinned_revisions():
    names = {m.name for m in list_models()}
    assert names >= REQUIRED
    for name in REQUIRED:
        spec = get_model(name)
        assert spec.repo_id and spec.revision and len(spec.revision) == 40
    assert {p.name for p in list_profiles()} >= {"cpu-fast", "gpu-quality", "zh", "tiny"}
    assert get_profile("zh").embedder == "chinese-clip-base"
    assert get_profile("tiny").meaningless


def test_register_model_refuses_a_duplicate_name():
    spec = get_model("tiny-sam")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model(spec)


def test_entry_point_plugins_register_models_and_profiles(monkeypatch):
    spec = ModelSpec("plugin-sam", "proposer", "sam", "seglens.models.sam:load_sam", builder="x:y")
    profile = Profile("plugin-profile", "plugin-sam", "tiny-clip", "from a plugin")

    class FakeEntryPoint:
        name = "plugin"

        def load(self):
            return lambda: [spec, profile]

    monkeypatch.setattr(
        registry, "entry_points", lambda group: [FakeEntryPoint()] if group == "seglens.models" else []
    )
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)
    try:
        assert get_model("plugin-sam") is spec
        assert get_profile("plugin-profile") is profile
    finally:
        registry._MODELS.pop("plugin-sam", None)
        registry._PROFILES.pop("plugin-profile", None)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="known models"):
        get_model("sam-vit-gigantic")
    with pytest.raises(KeyError, match="known profiles"):
        get_profile("fastest")


def test_select_device_on_cpu_and_bad_choices():
    config = select_device("cpu", "auto")
    assert (config.device, config.dtype) == ("cpu", "float32")
    assert select_device(None, "bf16").dtype == "bfloat16"
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        select_device("cpu", "int3")


def test_local_directory_resolves_by_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip2"}))
    resolved = resolve_model(str(tmp_path), tmp_path / "models")
    assert resolved.kind == "embedder" and resolved.loader.endswith(":load_clip")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="unsupported model_type"):
        resolve_model(str(tmp_path), tmp_path / "models")


def test_offline_missing_model_error_names_model_cache_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model("clip-vit-l14", tmp_path / "models", allow_download=True)
    message = str(info.value)
    assert "clip-vit-l14" in message and str(tmp_path / "hub") in message
    assert "seglens models pull clip-vit-l14" in message


def test_model_loads_in_several_threads_run_one_at_a_time(monkeypatch, tmp_path):
    """from_pretrained swaps process-wide functions while it runs; two loads interleaved
    in two threads can leave them swapped for good, so loads must not overlap."""
    import threading
    import time
    from types import SimpleNamespace

    from seglens.models import loading

    inside, most = [0], [0]
    guard = threading.Lock()

    def slow_loader(path, device, *, model_id, meaningless):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        with guard:
            inside[0] -= 1
        return model_id

    # kind "test": no protocol check on what the loader returns
    resolved = SimpleNamespace(
        kind="test",
        name="m",
        spec=None,
        needs_torch=False,
        loader="x:y",
        path=tmp_path,
        model_id="m",
        meaningless=True,
    )
    monkeypatch.setattr(loading, "resolve_model", lambda *a, **k: resolved)
    monkeypatch.setattr(loading, "resolve_callable", lambda name: slow_loader)
    threads = [
        threading.Thread(target=loading.load_model, args=("m", tmp_path), kwargs={"device": "cpu"})
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_a_locally_built_model_is_rebuilt_when_its_recipe_changes(tmp_path, monkeypatch):
    """Builder models carry the recipe (`revision`) they were built by; another recipe
    rebuilds the directory and changes the model id that cache keys use."""
    from dataclasses import replace

    from seglens.models import hub

    builds = []

    def builder(path):
        builds.append(path)
        (path / "config.json").write_text(json.dumps({"model_type": "clip", "build": len(builds)}))

    monkeypatch.setattr(hub, "resolve_callable", lambda name: builder)
    v1 = replace(get_model("tiny-clip"), revision="seed1234")
    v2 = replace(v1, revision="seed1234-v2")
    monkeypatch.setattr(hub, "get_model", lambda name: {"v1": v1, "v2": v2}[name])

    ids = [resolve_model(name, tmp_path).model_id for name in ("v1", "v1", "v2")]
    assert len(builds) == 2
    assert json.loads((tmp_path / "tiny-clip" / "config.json").read_text())["build"] == 2
    assert ids == ["tiny-clip@tiny-clip-seed1234"] * 2 + ["tiny-clip@tiny-clip-seed1234-v2"]
    assert resolve_model("v2", tmp_path).meaningless
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-clip"]  # no leftovers


# -- the plugin API as documented ----------------------------------------------------------
def test_a_spec_must_say_where_its_weights_come_from():
    from seglens.models.registry import InvalidModelSpec

    with pytest.raises(InvalidModelSpec, match="say where the weights come from"):
        ModelSpec("orphan", "proposer", "x", "pkg.mod:load")
    with pytest.raises(InvalidModelSpec, match="pinned 40-hex commit"):
        ModelSpec("floating", "embedder", "x", "pkg.mod:load", "owner/repo", "main")
    with pytest.raises(InvalidModelSpec, match="not both"):
        ModelSpec("both", "embedder", "x", "pkg.mod:load", "owner/repo", builder="pkg.mod:build")
    with pytest.raises(InvalidModelSpec, match="dotted 'module:function'"):
        ModelSpec("bad-loader", "embedder", "x", "pkg.mod.load", needs_weights=False)
    with pytest.raises(InvalidModelSpec, match="kind must be"):
        ModelSpec("bad-kind", "segmenter", "x", "pkg.mod:load", needs_weights=False)  # type: ignore[arg-type]
    assert ModelSpec("free", "proposer", "x", "pkg.mod:load", needs_weights=False).source == "none"


def test_a_plugin_that_fails_to_register_is_named_when_its_model_is_asked_for(monkeypatch):
    from seglens.models.registry import ModelNotAvailableError

    class BrokenEntryPoint:
        name = "broken-plugin"

        def load(self):
            return lambda: [ModelSpec("half-made", "proposer", "x", "pkg.mod:load")]

    monkeypatch.setattr(registry, "entry_points", lambda group: [BrokenEntryPoint()])
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)
    monkeypatch.setattr(registry, "_PLUGIN_ERRORS", {})
    with pytest.raises(
        ModelNotAvailableError, match=r"broken-plugin: InvalidModelSpec.*say where the weights"
    ):
        get_model("half-made")
    assert "broken-plugin" in registry.plugin_errors()


def test_loaders_get_the_documented_arguments_and_what_they_declare(tmp_path):
    from seglens.models.device import DeviceConfig
    from seglens.models.loading import call_loader
    from seglens.models.registry import LoadContext

    device = DeviceConfig("cpu", "float32")
    context = LoadContext("m", "m@1", False)
    assert call_loader(lambda path, device: (path, device), tmp_path, device, context) == (tmp_path, device)
    assert call_loader(lambda path, device, *, context: context, tmp_path, device, context) is context
    assert call_loader(
        lambda p, d, *, model_id, meaningless: (model_id, meaningless), None, device, context
    ) == (
        "m@1",
        False,
    )
    assert set(call_loader(lambda p, d, **kw: kw, None, device, context)) == {
        "context",
        "model_id",
        "meaningless",
    }


def test_a_loader_that_returns_no_proposer_is_a_clear_error(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from seglens.models import loading

    resolved = SimpleNamespace(
        kind="proposer",
        name="m",
        spec=None,
        needs_torch=False,
        loader="x:y",
        path=None,
        model_id="m",
        meaningless=False,
    )
    monkeypatch.setattr(loading, "resolve_model", lambda *a, **k: resolved)
    monkeypatch.setattr(loading, "resolve_callable", lambda name: lambda path, device: object())
    with pytest.raises(TypeError, match=r"not a RegionProposer .*missing: .*model_id.*propose"):
        loading.load_model("m", tmp_path)


def test_plugins_register_a_loader_for_their_model_type(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_MODEL_TYPE_LOADERS", dict(registry._MODEL_TYPE_LOADERS))
    registry.register_model_type("toy", "embedder", "toy_pkg:load", needs_torch=False)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy"}))
    resolved = resolve_model(str(tmp_path), tmp_path / "models")
    assert (resolved.kind, resolved.loader, resolved.needs_torch) == ("embedder", "toy_pkg:load", False)
    with pytest.raises(ValueError, match="already has a loader"):
        registry.register_model_type("toy", "proposer", "other:load")


def test_a_model_without_weights_resolves_to_no_path(tmp_path, monkeypatch):
    spec = ModelSpec("free", "proposer", "x", "pkg.mod:load", needs_weights=False, needs_torch=False)
    monkeypatch.setitem(registry._MODELS, "free", spec)
    resolved = resolve_model("free", tmp_path)
    assert resolved.path is None and resolved.model_id == "free@no-weights" and not resolved.meaningless
    assert not list(tmp_path.iterdir())  # nothing built, nothing written


def test_built_locally_is_not_the_same_as_random_weights(tmp_path):
    from seglens.models.hub import BUILD_STAMP, RANDOM_WEIGHTS_MARKER

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (tmp_path / BUILD_STAMP).write_text("my-model-v3\n")
    resolved = resolve_model(str(tmp_path), tmp_path / "models")
    assert not resolved.meaningless and resolved.model_id == f"{tmp_path.name}@my-model-v3"
    (tmp_path / RANDOM_WEIGHTS_MARKER).write_text("random\n")
    assert resolve_model(str(tmp_path), tmp_path / "models").meaningless


def test_pull_refuses_offline_with_the_fix(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    from seglens.models.hub import pull_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotAvailableError, match="unset HF_HUB_OFFLINE"):
        pull_model("clip-vit-b32")
    with pytest.raises(ModelNotAvailableError, match="built locally"):
        pull_model("tiny-clip")


def test_doctor_names_each_problem_with_its_fix(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants
    from typer.testing import CliRunner

    from seglens.cli import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SEGLENS_LLM_API_KEY", "")
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    result = CliRunner().invoke(
        app, ["doctor", "--profile", "cpu-fast", "--data-dir", str(tmp_path / "data")]
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    absent = next(i for i, line in enumerate(lines) if "proposer sam2.1-hiera-tiny" in line)
    assert lines[absent].startswith("FAIL") and "absent" in lines[absent]
    assert "fix: `seglens models pull sam2.1-hiera-tiny` on a machine with network" in lines[absent + 1]
    assert any(line.startswith("FAIL") and "offline (HF_HUB_OFFLINE=1)" in line for line in lines)
    assert any("device" in line and "cpu" in line for line in lines)
    assert any("data dir" in line and "GiB free" in line for line in lines)
    assert any("assistant LLM" in line for line in lines)
