"""Random-weight checkpoints for the loopback hub, built from `tests/data/hub_models.json`:
each catalog family's published config fields with their size fields shrunk, saved with
`save_pretrained` next to the tokenizer and image-processor files its hub repo ships.
Built once per transformers version and test-data version under tests/.artifacts."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "hub_models.json"
ARTIFACTS = Path(__file__).parent / ".artifacts"


def catalog_entries() -> dict[str, dict[str, Any]]:
    return json.loads(DATA.read_text())["models"]  # type: ignore[no-any-return]


def merged(published: dict[str, Any], shrunk: dict[str, Any]) -> dict[str, Any]:
    """`published` with `shrunk`'s values laid over it, nested dicts merged key by key."""
    out = copy.deepcopy(published)
    for key, value in shrunk.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _processor_and_tokenizer(family: str, path: Path, processor: dict[str, Any]) -> None:
    from seglens.models import tiny

    size = int(processor["size"])
    if family in ("sam", "sam-hq"):
        tiny._sam_processor_config(path, size, int(processor["mask_size"]))
    elif family == "sam2":
        tiny._sam2_processor_config(path, size, int(processor["mask_size"]))
    elif family == "clip":
        tiny._byte_level_tokenizer(path, 77)
        tiny._clip_processor(path, size)
    elif family == "siglip2":
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
        from transformers.models.siglip2.tokenization_siglip2 import Siglip2Tokenizer

        vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
        for byte in range(256):
            vocab[f"<0x{byte:02X}>"] = len(vocab)
        Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=64).save_pretrained(path)
        SiglipImageProcessorPil(size={"height": size, "width": size}).save_pretrained(path)
    elif family == "chinese_clip":
        from transformers import BertTokenizer
        from transformers.models.chinese_clip.image_processing_pil_chinese_clip import (
            ChineseCLIPImageProcessorPil,
        )

        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        vocab += list("abcdefghijklmnopqrstuvwxyz") + list("一只猫狗的照片红色汽车")
        (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        BertTokenizer(vocab=str(path / "vocab.txt")).save_pretrained(path)
        (path / "tokenizer.json").unlink(missing_ok=True)  # the hub repo ships vocab.txt only
        ChineseCLIPImageProcessorPil(
            size={"height": size, "width": size}, crop_size={"height": size, "width": size}
        ).save_pretrained(path)
    else:
        raise ValueError(f"no test checkpoint recipe for family {family!r}")


def build_checkpoint(entry: dict[str, Any], path: Path) -> None:
    """One repo's files: config + random weights (seed 0), tokenizer, image processor,
    and the README/.gitattributes a hub repo has (left out by SegLens' allow_patterns)."""
    import torch
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    fields = merged(entry["published"], entry["shrunk"])
    model_type = fields.pop("model_type")
    config = AutoConfig.for_model(model_type, **fields)
    path.mkdir(parents=True, exist_ok=True)
    AutoModel.from_config(config).save_pretrained(path)
    _processor_and_tokenizer(entry["family"], path, entry["processor"])
    (path / "README.md").write_text(f"# {entry['repo_id']} (SegLens test checkpoint, random weights)\n")
    (path / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")


def built_checkpoints() -> dict[str, Path]:
    """Catalog name → directory of its test checkpoint, built once per recipe."""
    import transformers

    recipe = hashlib.sha256(DATA.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:12]
    root = ARTIFACTS / f"hub-models-{transformers.__version__}-{recipe}"
    out = {}
    for name, entry in catalog_entries().items():
        path = root / name
        if not (path / "config.json").exists():
            scratch = root / f".{name}.tmp"
            shutil.rmtree(scratch, ignore_errors=True)
            build_checkpoint(entry, scratch)
            scratch.rename(path)
        out[name] = path
    return out
