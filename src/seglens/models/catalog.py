"""Built-in models and profiles. Revisions are pinned hub commits (main, as of 2026)."""

from __future__ import annotations

from seglens.core.types import GenerationParams
from seglens.models.registry import ModelSpec, Profile, register_all

SAM = "seglens.models.sam:load_sam"
SAM2 = "seglens.models.sam:load_sam2"
CLIP = "seglens.models.clip:load_clip"

MODELS = [
    ModelSpec("sam-vit-base", "proposer", "sam", SAM, "facebook/sam-vit-base",
              "70c1a07f894ebb5b307fd9eaaee97b9dfc16068f",
              description="Segment Anything ViT-B", params_m=94, license="apache-2.0"),
    ModelSpec("sam-vit-large", "proposer", "sam", SAM, "facebook/sam-vit-large",
              "6851e0441005b0fb96f2cc4dfac472f3d1b14af1",
              description="Segment Anything ViT-L", params_m=312, license="apache-2.0"),
    ModelSpec("sam-vit-huge", "proposer", "sam", SAM, "facebook/sam-vit-huge",
              "87aecf0df4ce6b30cd7de76e87673c49644bdf67",
              description="Segment Anything ViT-H", params_m=641, license="apache-2.0"),
    ModelSpec("sam-hq-vit-huge", "proposer", "sam-hq", SAM, "syscv-community/sam-hq-vit-huge",
              "9d9d53502fbf666297e7eb3804f64137f930055e",
              description="SAM-HQ ViT-H (sharper boundaries)", params_m=641, license="apache-2.0"),
    ModelSpec("sam2.1-hiera-tiny", "proposer", "sam2", SAM2, "facebook/sam2.1-hiera-tiny",
              "de431c4043854a71d8101e17995dfe596bf101a5",
              description="SAM 2.1 Hiera-T", params_m=39, license="apache-2.0"),
    ModelSpec("sam2.1-hiera-small", "proposer", "sam2", SAM2, "facebook/sam2.1-hiera-small",
              "ee5bba1d82bb8749febdf90f45e84b687142ba03",
              description="SAM 2.1 Hiera-S", params_m=46, license="apache-2.0"),
    ModelSpec("sam2.1-hiera-base-plus", "proposer", "sam2", SAM2,
              "facebook/sam2.1-hiera-base-plus", "b7320756a13354e7530a63935656d35b2f91a290",
              description="SAM 2.1 Hiera-B+", params_m=81, license="apache-2.0"),
    ModelSpec("sam2.1-hiera-large", "proposer", "sam2", SAM2, "facebook/sam2.1-hiera-large",
              "665f8e2ad61cf5f53d65644ff27c8ee525124610",
              description="SAM 2.1 Hiera-L", params_m=224, license="apache-2.0"),
    ModelSpec("clip-vit-b32", "embedder", "clip", CLIP, "openai/clip-vit-base-patch32",
              "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268",
              description="OpenAI CLIP ViT-B/32", params_m=151, license="mit"),
    ModelSpec("clip-vit-l14", "embedder", "clip", CLIP, "openai/clip-vit-large-patch14",
              "32bd64288804d66eefd0ccbe215aa642df71cc41",
              description="OpenAI CLIP ViT-L/14", params_m=428, license="mit"),
    ModelSpec("siglip2-base", "embedder", "siglip2", CLIP, "google/siglip2-base-patch16-224",
              "75de2d55ec2d0b4efc50b3e9ad70dba96a7b2fa2",
              description="SigLIP 2 base, 224 px (multilingual)", params_m=375,
              license="apache-2.0", language="multi"),
    ModelSpec("chinese-clip-base", "embedder", "chinese_clip", CLIP,
              "OFA-Sys/chinese-clip-vit-base-patch16", "36e679e65c2a2fead755ae21162091293ad37834",
              description="Chinese-CLIP ViT-B/16 (Chinese keywords)", params_m=188,
              license="apache-2.0", language="zh"),
    ModelSpec("tiny-sam", "proposer", "sam", SAM, builder="seglens.models.tiny:build_tiny_sam",
              description="TINY: random weights, small SAM config. Masks are meaningless.",
              params_m=0.2, license="apache-2.0", meaningless=True),
    ModelSpec("tiny-sam2", "proposer", "sam2", SAM2,
              builder="seglens.models.tiny:build_tiny_sam2",
              description="TINY: random weights, small SAM 2 config. Masks are meaningless.",
              params_m=0.3, license="apache-2.0", meaningless=True),
    ModelSpec("tiny-clip", "embedder", "clip", CLIP, builder="seglens.models.tiny:build_tiny_clip",
              description="TINY: random weights, small CLIP config. Scores are meaningless.",
              params_m=0.2, license="apache-2.0", meaningless=True),
]

PROFILES = [
    Profile("cpu-fast", "sam2.1-hiera-tiny", "clip-vit-b32",
            "Laptop CPU: SAM 2.1 Hiera-T + CLIP ViT-B/32, 16x16 point grid",
            GenerationParams(points_per_side=16)),
    Profile("gpu-quality", "sam-vit-huge", "clip-vit-l14",
            "GPU: SAM ViT-H + CLIP ViT-L/14, 32x32 point grid",
            GenerationParams(points_per_side=32, points_per_batch=128)),
    Profile("zh", "sam2.1-hiera-tiny", "chinese-clip-base",
            "Chinese keywords: SAM 2.1 Hiera-T + Chinese-CLIP ViT-B/16",
            GenerationParams(points_per_side=16)),
    Profile("multilingual", "sam2.1-hiera-small", "siglip2-base",
            "Many languages: SAM 2.1 Hiera-S + SigLIP 2 base",
            GenerationParams(points_per_side=16)),
    # Random weights cannot pass SAM's quality filters, so tiny keeps every candidate.
    Profile("tiny", "tiny-sam", "tiny-clip",
            "TINY: random weights for tests and offline demos; results are meaningless",
            GenerationParams(points_per_side=8, pred_iou_thresh=0.0,
                             stability_score_thresh=0.0, min_region_area=0),
            meaningless=True),
]

register_all([*MODELS, *PROFILES])
