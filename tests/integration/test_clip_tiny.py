"""The CLIP-family embedder on real transformers code with random weights: tiny-clip as the
registry builds it, plus small Chinese-CLIP and SigLIP 2 checkpoints built here (with
locally written vocabularies), all saved with save_pretrained and loaded by `load_clip`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from seglens.core.query import TEMPLATES
from seglens.models.clip import ClipEmbedder, load_clip
from seglens.models.device import DeviceConfig
from seglens.models.protocols import ImageTextEmbedder
from seglens.models.tiny import build_tiny_clip

CPU = DeviceConfig(device="cpu", dtype="float32")


def _crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [24, 40, 57, 96]
    return [rng.integers(0, 256, size=(sizes[i % 4], sizes[i % 4], 3), dtype=np.uint8) for i in range(n)]


def _build_tiny_chinese_clip(path: Path) -> None:
    import torch
    from transformers import BertTokenizer, ChineseCLIPConfig, ChineseCLIPModel
    from transformers.models.chinese_clip.image_processing_pil_chinese_clip import (
        ChineseCLIPImageProcessorPil,
    )

    torch.manual_seed(0)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list("abcdefghijklmnopqrstuvwxyz") + list("一只猫狗的照片红色汽车")
    (path / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5's BertTokenizer takes the vocabulary as `vocab` (a path or a dict).
    tokenizer = BertTokenizer(vocab=str(path / "vocab.txt"))
    config = ChineseCLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 16,
        },
        projection_dim=16,
    )
    ChineseCLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    # Keep only vocab.txt + tokenizer_config.json, the layout of the hub's Chinese-CLIP
    # checkpoints, so that loading builds the WordPiece tokenizer from the vocabulary.
    (path / "tokenizer.json").unlink()
    ChineseCLIPImageProcessorPil(
        size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)


def _build_tiny_siglip(path: Path, version: int) -> None:
    """SigLIP 2 NaFlex (``version=2``, model_type siglip2) or SigLIP (``version=1``, model_type
    siglip, the layout of SigLIP 2's fixed-resolution checkpoints), byte-level vocabulary."""
    import torch
    from transformers import Siglip2Config, Siglip2Model, SiglipConfig, SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
    from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil
    from transformers.models.siglip2.tokenization_siglip2 import Siglip2Tokenizer

    torch.manual_seed(0)
    # Special tokens plus the 256 byte-fallback tokens: every text tokenizes, byte by byte.
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    tokenizer = Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=64)
    config_class, model_class = (Siglip2Config, Siglip2Model) if version == 2 else (SiglipConfig, SiglipModel)
    vision_size = {"num_patches": 16} if version == 2 else {"image_size": 32}
    config = config_class(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "patch_size": 8,
            **vision_size,
        },
    )
    model = model_class(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if version == 2:
        Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16).save_pretrained(path)
    else:
        SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny-clip"
    build_tiny_clip(path)
    return path


@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_dir: Path) -> ClipEmbedder:
    return load_clip(tiny_clip_dir, CPU)


@pytest.fixture(scope="module")
def tiny_chinese_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipEmbedder:
    path = tmp_path_factory.mktemp("models") / "tiny-chinese-clip"
    _build_tiny_chinese_clip(path)
    return load_clip(path, CPU, model_id="tiny-chinese-clip")


@pytest.fixture(scope="module")
def tiny_siglip2(tmp_path_factory: pytest.TempPathFactory) -> ClipEmbedder:
    path = tmp_path_factory.mktemp("models") / "tiny-siglip2"
    _build_tiny_siglip(path, version=2)
    return load_clip(path, CPU, meaningless=True)


@pytest.fixture(scope="module")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny-siglip"
    _build_tiny_siglip(path, version=1)
    return path


def _assert_unit_rows(embeddings: np.ndarray, n: int, dim: int) -> None:
    assert embeddings.shape == (n, dim)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_load_clip_reports_tiny_clip_attributes(tiny_clip: ClipEmbedder):
    assert isinstance(tiny_clip, ImageTextEmbedder)
    assert tiny_clip.model_id == "tiny-clip"
    assert tiny_clip.meaningless  # the SEGLENS_RANDOM_WEIGHTS marker says so
    assert tiny_clip.score_kind == "softmax"
    assert tiny_clip.language == "en"
    assert tiny_clip.dim == 32
    assert tiny_clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)  # CLIP's initial value
    assert tiny_clip.logit_bias == 0.0
    assert tiny_clip.text_max_length == 77


def test_embed_images_returns_unit_rows(tiny_clip: ClipEmbedder):
    _assert_unit_rows(tiny_clip.embed_images(_crops(5)), 5, 32)


def test_embed_images_is_deterministic(tiny_clip: ClipEmbedder):
    crops = _crops(3)
    np.testing.assert_array_equal(tiny_clip.embed_images(crops), tiny_clip.embed_images(crops))


def test_embed_images_does_not_depend_on_batch_size(tiny_clip: ClipEmbedder):
    crops = _crops(7, seed=1)
    batched = tiny_clip.embed_images(crops)
    tiny_clip.image_batch_size = 1
    try:
        single = tiny_clip.embed_images(crops)
    finally:
        tiny_clip.image_batch_size = 32
    np.testing.assert_allclose(single, batched, atol=1e-5)


def test_embed_images_accepts_a_stacked_array(tiny_clip: ClipEmbedder):
    stack = np.stack(_crops(4, seed=2)[:1] * 3)
    out = tiny_clip.embed_images(stack)
    _assert_unit_rows(out, 3, 32)
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)


def test_embed_images_and_texts_return_empty_for_no_input(tiny_clip: ClipEmbedder):
    assert tiny_clip.embed_images([]).shape == (0, 32)
    assert tiny_clip.embed_texts([]).shape == (0, 32)
    assert tiny_clip.embed_texts([]).dtype == np.float32


def test_embed_texts_returns_unit_rows_that_differ_by_text(tiny_clip: ClipEmbedder):
    texts = ["a photo of a cat", "a photo of a dog", "a red car"]
    out = tiny_clip.embed_texts(texts)
    _assert_unit_rows(out, 3, 32)
    assert not np.allclose(out[0], out[1])
    np.testing.assert_array_equal(out, tiny_clip.embed_texts(texts))


def test_embed_texts_does_not_depend_on_batch_size_or_neighbours(tiny_clip: ClipEmbedder):
    texts = ["cat", "a much longer description of a small grey cat on a sofa", "dog"]
    batched = tiny_clip.embed_texts(texts)
    singles = np.concatenate([tiny_clip.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(singles, batched, atol=1e-5)


def test_embed_texts_handles_chinese_and_overlong_text(tiny_clip: ClipEmbedder):
    out = tiny_clip.embed_texts(["一只猫", "猫" * 200, ""])
    _assert_unit_rows(out, 3, 32)
    assert not np.allclose(out[0], out[1])


def test_embed_rejects_bad_input(tiny_clip: ClipEmbedder):
    with pytest.raises(TypeError, match="single string"):
        tiny_clip.embed_texts("a cat")
    with pytest.raises(TypeError, match="expected str"):
        tiny_clip.embed_texts(["a cat", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="uint8"):
        tiny_clip.embed_images([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="shape"):
        tiny_clip.embed_images([np.zeros((8, 8), np.uint8)])
    with pytest.raises(TypeError, match="numpy array"):
        tiny_clip.embed_images(["not an image"])  # type: ignore[list-item]


def test_load_clip_rejects_missing_and_unsupported_directories(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_clip(tmp_path, CPU)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sam"}))
    with pytest.raises(ValueError, match="'sam'"):
        load_clip(tmp_path, CPU)


def test_chinese_clip_loads_with_chinese_language_and_softmax(tiny_chinese_clip: ClipEmbedder):
    assert isinstance(tiny_chinese_clip, ImageTextEmbedder)
    assert tiny_chinese_clip.model_id == "tiny-chinese-clip"
    assert not tiny_chinese_clip.meaningless  # no marker, not told
    assert tiny_chinese_clip.model_type == "chinese_clip"
    assert tiny_chinese_clip.score_kind == "softmax"
    assert tiny_chinese_clip.language == "zh"
    assert tiny_chinese_clip.logit_scale == pytest.approx(math.exp(2.6592), rel=1e-4)
    assert tiny_chinese_clip.logit_bias == 0.0
    assert tiny_chinese_clip.text_max_length == 64  # capped at the position embeddings


def test_chinese_clip_embeds_chinese_text_and_images(tiny_chinese_clip: ClipEmbedder):
    texts = ["一只猫的照片", "一只狗的照片", "红色汽车"]
    out = tiny_chinese_clip.embed_texts(texts)
    _assert_unit_rows(out, 3, 16)
    assert not np.allclose(out[0], out[1])
    singles = np.concatenate([tiny_chinese_clip.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(singles, out, atol=1e-5)
    _assert_unit_rows(tiny_chinese_clip.embed_images(_crops(3)), 3, 16)
    tokens = tiny_chinese_clip.tokenizer(["一只猫"])["input_ids"][0]
    assert tiny_chinese_clip.tokenizer.unk_token_id not in tokens


def test_siglip2_loads_with_sigmoid_scores_and_multilingual(tiny_siglip2: ClipEmbedder):
    assert isinstance(tiny_siglip2, ImageTextEmbedder)
    assert tiny_siglip2.meaningless
    assert tiny_siglip2.score_kind == "sigmoid"
    assert tiny_siglip2.language == "multi"
    assert tiny_siglip2.logit_scale == pytest.approx(10.0, rel=1e-5)
    assert tiny_siglip2.logit_bias == pytest.approx(-10.0)
    assert tiny_siglip2.text_max_length == 64
    assert tiny_siglip2.tokenizer.padding_side == "right"


def test_siglip2_pads_texts_to_64_tokens_and_embeds(tiny_siglip2: ClipEmbedder):
    encoded = tiny_siglip2.tokenizer(["a cat"], padding="max_length", max_length=64)
    assert len(encoded["input_ids"][0]) == 64
    texts = ["a photo of a cat", "一只猫", "Katze"]
    out = tiny_siglip2.embed_texts(texts)
    _assert_unit_rows(out, 3, 32)
    assert not np.allclose(out[0], out[1])
    singles = np.concatenate([tiny_siglip2.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(singles, out, atol=1e-5)


def test_siglip2_embeds_images_in_any_batch_size(tiny_siglip2: ClipEmbedder):
    crops = _crops(5, seed=3)
    batched = tiny_siglip2.embed_images(crops)
    _assert_unit_rows(batched, 5, 32)
    tiny_siglip2.image_batch_size = 2
    try:
        np.testing.assert_allclose(tiny_siglip2.embed_images(crops), batched, atol=1e-5)
    finally:
        tiny_siglip2.image_batch_size = 32


def test_siglip_loads_with_sigmoid_scores_and_language_from_vocabulary(tiny_siglip_dir: Path):
    embedder = load_clip(tiny_siglip_dir, CPU)
    assert embedder.model_type == "siglip"
    assert embedder.score_kind == "sigmoid"
    assert embedder.language == "en"  # a 261-token vocabulary is not a multilingual one
    assert embedder.logit_bias == pytest.approx(-10.0)
    _assert_unit_rows(embedder.embed_texts(["a cat", "一只猫"]), 2, 32)
    _assert_unit_rows(embedder.embed_images(_crops(2)), 2, 32)
    assert load_clip(tiny_siglip_dir, CPU, language="multi").language == "multi"


def test_clip_bpe_tokenizer_built_offline_gives_clips_own_token_ids(tmp_path):
    """The random-size CLIP's tokenizer is CLIP's real BPE, rebuilt from the merges file
    open_clip's wheel ships (the Makefile installs it without dependencies)."""
    from transformers import AutoTokenizer

    from seglens.models.tiny import _clip_bpe_tokenizer, clip_bpe_merges_file

    merges = clip_bpe_merges_file()
    assert merges is not None, "open_clip_torch (installed --no-deps by the Makefile) is missing"
    _clip_bpe_tokenizer(tmp_path, merges)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    # The ids OpenAI's CLIP gives this sentence: <start> a close - up photo of a dog . <end>
    expected = [49406, 320, 2660, 268, 705, 1125, 539, 320, 1929, 269, 49407]
    assert len(tokenizer) == 49408
    assert tokenizer("a close-up photo of a dog.")["input_ids"] == expected


# -- shared template prefixes (CLIP's causal text tower) ----------------------------------
PREFIXES = [t.split("{}")[0].rstrip() for t in TEMPLATES["en"]]


def _templated(keywords: list[str]) -> list[str]:
    return [t.format(k) for k in keywords for t in TEMPLATES["en"]]


def _tokens_through_first_layer(embedder: ClipEmbedder, texts: list[str]) -> tuple[np.ndarray, int]:
    seen = []
    layer = embedder.model.text_model.encoder.layers[0].self_attn.q_proj
    handle = layer.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[:-1].numel()))
    try:
        out = embedder.embed_texts(texts)
    finally:
        handle.remove()
    return out, sum(seen)


def test_shared_prefixes_give_the_plain_embeddings_from_fewer_tokens(tiny_clip_dir: Path):
    texts = [
        *_templated(["cat", "traffic light", "一只猫"]),
        "no template at all",
        "a photo of a " + "very " * 100 + "long cat",  # over 77 tokens: the plain path truncates it
        "a photo of a",  # the prefix alone
    ]
    plain_embedder, shared = load_clip(tiny_clip_dir, CPU), load_clip(tiny_clip_dir, CPU)
    plain, plain_tokens = _tokens_through_first_layer(plain_embedder, texts)
    shared.share_prefixes(PREFIXES)
    assert shared._prefix_cache is not None and shared._prefix_cache.prefixes == len(set(PREFIXES))
    reused, reused_tokens = _tokens_through_first_layer(shared, texts)
    np.testing.assert_allclose(reused, plain, atol=1e-5)
    chosen, _rows = shared._prefix_cache.split(texts)
    assert chosen == [*range(24), texts.index("a photo of a")]
    # The first call also runs one text the plain way (the self-check); later calls do not.
    _, again = _tokens_through_first_layer(shared, texts)
    assert again < reused_tokens < plain_tokens
    assert again < plain_tokens / 2


def test_shared_prefixes_work_one_text_at_a_time_and_after_more_prefixes(tiny_clip_dir: Path):
    plain = load_clip(tiny_clip_dir, CPU).embed_texts([*_templated(["dog"]), "a tiny dog."])
    shared = load_clip(tiny_clip_dir, CPU)
    shared.share_prefixes(PREFIXES[:2])
    first = shared.embed_texts(_templated(["dog"])[:1])
    shared.share_prefixes([*PREFIXES, "a tiny", "a photo of a"])  # new, longer and repeated prefixes
    rest = np.concatenate([shared.embed_texts([t]) for t in [*_templated(["dog"]), "a tiny dog."]])
    np.testing.assert_allclose(first[0], plain[0], atol=1e-5)
    np.testing.assert_allclose(rest, plain, atol=1e-5)


def test_a_cached_path_that_disagrees_with_the_model_is_switched_off(tiny_clip_dir: Path, caplog):
    texts = _templated(["bird"])
    plain = load_clip(tiny_clip_dir, CPU).embed_texts(texts)
    broken = load_clip(tiny_clip_dir, CPU)
    broken.share_prefixes(PREFIXES)
    cache = broken._prefix_cache
    assert cache is not None
    real_embed = cache.embed
    cache.embed = lambda rows: -real_embed(rows)  # type: ignore[method-assign]
    np.testing.assert_allclose(broken.embed_texts(texts), plain, atol=1e-5)
    assert "disagrees" in caplog.text
    assert cache.prefixes == 0 and cache.split(texts) == ([], [])


def test_only_clip_shares_prefixes(tiny_chinese_clip: ClipEmbedder, tiny_siglip2: ClipEmbedder):
    for embedder in (tiny_chinese_clip, tiny_siglip2):
        before = embedder.embed_texts(_templated(["cat"]))
        embedder.share_prefixes(PREFIXES)  # bidirectional text towers: nothing to share
        assert embedder._prefix_cache is None
        np.testing.assert_array_equal(embedder.embed_texts(_templated(["cat"])), before)
