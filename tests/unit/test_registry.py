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
        kind="test", name="m", spec=None, needs_torch=False, loader="x:y", path=tmp_path, model_id="m", meaningless=True
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
