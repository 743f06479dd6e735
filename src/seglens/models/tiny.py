"""Locally built models with random weights and a fixed seed.

`tiny-*` use small configs: they exist so tests, CI and offline demos exercise the real
transformers code paths (save_pretrained, then the same from_pretrained loader as real
weights) without a network. `random-*` use the real architectures' sizes for benchmarks.
Their outputs mean nothing; each directory carries a ``SEGLENS_RANDOM_WEIGHTS`` marker so
every screen can say so, also when it is loaded by directory (`seglens.models.hub` adds a
``SEGLENS_BUILD`` stamp naming the recipe, so a directory built by an older recipe is
rebuilt).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "build_random_clip_vit_b32",
    "build_random_sam2_hiera_tiny",
    "build_random_sam_vit_base",
    "build_tiny_clip",
    "build_tiny_sam",
    "build_tiny_sam2",
]

SEED = 1234
_MARKER = "SEGLENS_RANDOM_WEIGHTS"  # = seglens.models.hub.RANDOM_WEIGHTS_MARKER


def _seeded() -> None:
    import torch

    torch.manual_seed(SEED)


def _finish(model: Any, path: Path, label: str) -> None:
    """Save the model and mark the directory as random weights (the loaders read the
    marker; `seglens.models.hub` rewrites it with the recipe's stamp)."""
    model.save_pretrained(path)
    (path / _MARKER).write_text(f"{label}-seed{SEED}\n")


def _sam_processor_config(path: Path, size: int, mask_size: int) -> None:
    # The checkpoint's own preprocessing settings, as the hub checkpoints ship them.
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    SamImageProcessorPil(
        size={"longest_edge": size},
        pad_size={"height": size, "width": size},
        mask_size={"longest_edge": mask_size},
        mask_pad_size={"height": mask_size, "width": mask_size},
    ).save_pretrained(path)


def _sam2_processor_config(path: Path, size: int, mask_size: int) -> None:
    # Sam2ImageProcessor needs torchvision; write its config file directly so that the
    # directory looks like a hub checkpoint either way.
    config = {
        "image_processor_type": "Sam2ImageProcessorFast",
        "size": {"height": size, "width": size},
        "mask_size": {"height": mask_size, "width": mask_size},
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "rescale_factor": 1 / 255,
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
        "resample": 2,
    }
    (path / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def build_tiny_sam(path: Path) -> None:
    """SAM with a 2-layer, 32-wide ViT on 256 px inputs (about 0.2 M parameters)."""
    from transformers import (
        SamConfig,
        SamMaskDecoderConfig,
        SamModel,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    _seeded()
    vision = SamVisionConfig(
        hidden_size=32,
        output_channels=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=256,
        patch_size=16,
        window_size=4,
        global_attn_indexes=[1],
        num_pos_feats=16,
        mlp_dim=64,
    )
    prompt = SamPromptEncoderConfig(hidden_size=32, image_size=256, patch_size=16)
    decoder = SamMaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32)
    config = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    _finish(SamModel(config), path, "tiny-sam")
    _sam_processor_config(path, 256, 64)


def build_random_sam_vit_base(path: Path) -> None:
    """SAM ViT-B at its real size, random weights (benchmarks)."""
    from transformers import SamConfig, SamModel

    _seeded()
    _finish(SamModel(SamConfig()), path, "random-sam-vit-base")
    _sam_processor_config(path, 1024, 256)


def build_tiny_sam2(path: Path) -> None:
    """SAM 2 with a 4-stage, 8-to-64-wide Hiera on 256 px inputs."""
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    _seeded()
    backbone = Sam2HieraDetConfig(
        hidden_size=8,
        image_size=[256, 256],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[4, 4],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]],
        fpn_hidden_size=32,
    )
    prompt = Sam2PromptEncoderConfig(hidden_size=32, image_size=256, patch_size=16)
    decoder = Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32)
    config = Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    _finish(Sam2Model(config), path, "tiny-sam2")
    _sam2_processor_config(path, 256, 64)


def build_random_sam2_hiera_tiny(path: Path) -> None:
    """SAM 2.1 Hiera-T at its real size (the default Sam2Config), random weights."""
    from transformers import Sam2Config, Sam2Model

    _seeded()
    _finish(Sam2Model(Sam2Config()), path, "random-sam2.1-hiera-tiny")
    _sam2_processor_config(path, 1024, 256)


def _byte_level_tokenizer(path: Path, model_max_length: int) -> None:
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (alone and word-final) and
    no merges: every text tokenizes, one token per byte, with no downloaded vocabulary."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)
    tokenizer.save_pretrained(path)


def _clip_processor(path: Path, size: int) -> None:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    ).save_pretrained(path)


def build_tiny_clip(path: Path) -> None:
    """CLIP with 2-layer, 32-wide towers, 32 px images and a byte-level tokenizer."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    _seeded()
    text = CLIPTextConfig(
        vocab_size=520,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    _finish(CLIPModel(config), path, "tiny-clip")
    _byte_level_tokenizer(path, 77)
    _clip_processor(path, 32)


def clip_bpe_merges_file() -> Path | None:
    """CLIP's real BPE merges, from open_clip's wheel if it is installed (the benchmarks
    install it with ``--no-deps`` for this one file; it is never imported), else None."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bpe_simple_vocab_16e6.txt.gz"
        if candidate.exists():
            return candidate
    return None


def _clip_bpe_tokenizer(path: Path, merges_gz: Path) -> None:
    """CLIP's own tokenizer (49,408 tokens), built the way OpenAI's CLIP builds its vocabulary
    from the merges: byte symbols, the same with ``</w>``, one token per merge, two specials."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    with gzip.open(merges_gz, "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file, merges_file = Path(scratch) / "vocab.json", Path(scratch) / "merges.txt"
        vocab_file.write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77).save_pretrained(path)


def build_random_clip_vit_b32(path: Path) -> None:
    """CLIP ViT-B/32 at its real size (the default CLIPConfig), random weights, and CLIP's
    own BPE tokenizer rebuilt from the merges in open_clip's wheel (`clip_bpe_merges_file`),
    so the text tower sees sequences of the real length."""
    from transformers import CLIPConfig, CLIPModel

    merges = clip_bpe_merges_file()
    if merges is None:
        raise RuntimeError(
            "random-clip-vit-b32 needs CLIP's BPE merges from open_clip's wheel: "
            "pip install --no-deps open_clip_torch (make venv does this)"
        )
    _seeded()
    config = CLIPConfig(text_config={"bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407})
    _finish(CLIPModel(config), path, "random-clip-vit-b32")
    _clip_bpe_tokenizer(path, merges)
    _clip_processor(path, 224)
