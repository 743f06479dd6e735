"""The cache contract: after the first segmentation, keywords, thresholds, merging and
transparency never run a model on pixels again."""

import threading

import numpy as np

from fakes import FakeProposer, OracleEmbedder, shapes_scene
from seglens.core.query import TEMPLATES
from seglens.core.types import GenerationParams
from seglens.services.segment.pipeline import Pipeline
from seglens.storage.cache import ArtifactCache


def _make(tmp_path, masks=None):
    image, shapes = shapes_scene()
    proposer = FakeProposer(list(masks or shapes.values()))
    embedder = OracleEmbedder()
    pipe = Pipeline(proposer, embedder, cache=ArtifactCache(tmp_path / "cache"))
    return pipe, proposer, embedder, image


def test_requery_with_new_keywords_thresholds_merge_and_alpha_runs_no_model_on_pixels(tmp_path):
    pipe, proposer, embedder, image = _make(tmp_path)
    first = pipe.query(image, "red", threshold=0.5)
    assert proposer.calls == ["propose"] and embedder.image_calls == 1
    for query, threshold, merge, mode in [
        ("blue, green", 0.3, 0.5, "any"),
        ("red, -green", 0.9, 0.1, "all"),
    ]:
        result = pipe.query(image, query, threshold=threshold, merge_threshold=merge, mode=mode)
        pipe.render(image, result, alpha=0.2)
        pipe.render(image, result, alpha=0.9)
    assert proposer.calls == ["propose"]
    assert embedder.image_calls == 1
    assert first.matches[0].keyword == "red"


def test_segment_reports_cache_hits_and_timings(tmp_path):
    pipe, _, _, image = _make(tmp_path)
    cold = pipe.segment(image)
    warm = pipe.segment(image)
    assert cold.cache_hits == {"regions": False, "region_embeddings": False}
    assert warm.cache_hits == {"regions": True, "region_embeddings": True}
    assert {"ingest", "embed_regions", "total"} <= set(cold.timings_ms)


def test_a_new_process_reads_regions_and_embeddings_from_disk(tmp_path):
    pipe, _, _, image = _make(tmp_path)
    pipe.segment(image)
    again, proposer, embedder, _ = _make(tmp_path)
    segmentation = again.segment(image)
    assert segmentation.cache_hits == {"regions": True, "region_embeddings": True}
    assert proposer.calls == [] and embedder.image_calls == 0
    assert len(list((tmp_path / "cache" / "regions").rglob("*.json"))) == 1


def test_new_generation_params_run_the_proposer_again(tmp_path):
    pipe, proposer, _, image = _make(tmp_path)
    pipe.segment(image)
    pipe.segment(image, GenerationParams(points_per_side=8))
    assert proposer.calls == ["propose", "propose"]


def test_points_per_batch_is_not_part_of_the_cache_key(tmp_path):
    pipe, proposer, _, image = _make(tmp_path)
    pipe.segment(image, GenerationParams(points_per_batch=16))
    pipe.segment(image, GenerationParams(points_per_batch=128))
    assert proposer.calls == ["propose"]


def test_same_pixels_in_another_container_share_the_cache(tmp_path):
    from PIL import Image

    pipe, proposer, _, image = _make(tmp_path)
    pipe.segment(image)
    pipe.segment(Image.fromarray(image))
    png = tmp_path / "x.png"
    Image.fromarray(image).save(png)
    pipe.segment(png)
    assert proposer.calls == ["propose"]


def test_prompt_reuses_the_embedding_from_segmentation(tmp_path):
    pipe, proposer, _, image = _make(tmp_path)
    pipe.segment(image)
    result = pipe.prompt(image, points=[[30, 30, 1]])
    assert proposer.calls == ["propose", "prompt"]
    assert result.area > 0
    # A new process reads the image embedding from disk instead of encoding again.
    again, proposer2, _, _ = _make(tmp_path)
    again.prompt(image, box=[10, 10, 40, 40])
    assert proposer2.calls == ["prompt"]


def test_image_without_regions_queries_cleanly():
    image, _ = shapes_scene()
    pipe = Pipeline(FakeProposer([]), OracleEmbedder(), cache=None)
    result = pipe.query(image, "red")
    assert result.num_regions == 0 and result.matches == () and not result.image_matched
    assert pipe.render(image, result).size == (image.shape[1], image.shape[0])


def test_image_embeddings_stay_within_their_disk_budget_least_recently_used_first(tmp_path):
    import os

    import numpy as np

    mb = np.zeros(2**18, np.float32)  # 1 MiB
    cache = ArtifactCache(tmp_path, image_embeddings_max_bytes=7 * 2**19)
    shas = [f"{i:02d}" * 32 for i in range(5)]
    for i, sha in enumerate(shas[:3]):
        cache.save_image_embedding(sha, "k", {"e": mb})
        os.utime(cache.image_embedding_path(sha, "k"), (1000 + i, 1000 + i))
    assert cache.load_image_embedding(shas[0], "k") is not None  # used: now the newest
    cache.save_image_embedding(shas[3], "k", {"e": mb})  # over budget: the oldest unused goes
    assert cache.load_image_embedding(shas[1], "k") is None
    assert all(cache.load_image_embedding(s, "k") is not None for s in (shas[0], shas[2], shas[3]))
    # Another cache object on the same directory (another process) counts what is there.
    other = ArtifactCache(tmp_path, image_embeddings_max_bytes=7 * 2**19)
    other.save_image_embedding(shas[4], "k", {"e": mb})
    stored = list((tmp_path / "image-embeddings").glob("*/*/*.npz"))
    assert len(stored) == 3 and cache.image_embedding_path(shas[4], "k") in stored
    # A budget of 0 keeps none on disk; the pipeline still answers prompts from memory.
    none = ArtifactCache(tmp_path / "none", image_embeddings_max_bytes=0)
    none.save_image_embedding(shas[0], "k", {"e": mb})
    assert not (tmp_path / "none").exists()


def test_prompt_after_the_embedding_was_evicted_encodes_the_image_again(tmp_path):
    image, shapes = shapes_scene()
    proposer = FakeProposer(list(shapes.values()))
    pipe = Pipeline(proposer, OracleEmbedder(), cache=ArtifactCache(tmp_path, image_embeddings_max_bytes=0))
    pipe.segment(image)
    fresh_proposer = FakeProposer(list(shapes.values()))
    fresh = Pipeline(
        fresh_proposer, OracleEmbedder(), cache=ArtifactCache(tmp_path, image_embeddings_max_bytes=0)
    )
    assert fresh.prompt(image, points=[[30, 30, 1]]).area > 0
    assert fresh_proposer.calls == ["encode", "prompt"]


class _PrefixSharingEmbedder(OracleEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.shared: list[list[str]] = []

    def share_prefixes(self, prefixes):
        self.shared.append(list(prefixes))


def test_the_template_text_before_the_keyword_is_offered_to_the_embedder_once():
    embedder = _PrefixSharingEmbedder()
    pipe = Pipeline(FakeProposer([]), embedder)
    pipe.keyword_embeddings(["red"])
    pipe.keyword_embeddings(["blue", "green"])
    assert embedder.shared == [[t.split("{}")[0].rstrip() for t in TEMPLATES["en"]]]
    assert "a photo of a" in embedder.shared[0] and "a cropped photo of a" in embedder.shared[0]


def test_a_new_keyword_does_not_wait_for_mask_generation_in_another_thread():
    entered, release = threading.Event(), threading.Event()

    class SlowProposer(FakeProposer):
        def propose(self, image, params):
            entered.set()
            release.wait(10)
            return super().propose(image, params)

    image, shapes = shapes_scene()
    pipe = Pipeline(SlowProposer(list(shapes.values())), OracleEmbedder())
    batch = threading.Thread(target=pipe.segment, args=(image,))
    batch.start()
    try:
        assert entered.wait(10)
        answered = threading.Event()
        query = threading.Thread(target=lambda: (pipe.keyword_embeddings(["red"]), answered.set()))
        query.start()
        assert answered.wait(10), "the text tower waited for mask generation"
    finally:
        release.set()
        batch.join(10)
    assert not batch.is_alive()


def test_regions_are_embedded_a_batch_at_a_time_with_the_same_result(tmp_path):
    image, shapes = shapes_scene()
    whole = Pipeline(FakeProposer(list(shapes.values())), OracleEmbedder()).segment(image)
    embedder = OracleEmbedder()
    embedder.image_batch_size = 2  # type: ignore[attr-defined]
    batched = Pipeline(FakeProposer(list(shapes.values())), embedder).segment(image)
    assert embedder.image_calls == 2  # three regions: 2 + 1
    np.testing.assert_array_equal(batched.region_embeddings, whole.region_embeddings)
