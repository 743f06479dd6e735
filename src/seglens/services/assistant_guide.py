"""The user guide the assistant grounds how-to answers in: a short built-in guide to the
knobs plus the user-facing pages of the project's ``docs/``, kept short."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["BUILTIN_GUIDE", "guide_excerpt", "load_user_guide"]

BUILTIN_GUIDE = """## Query
Keywords separated by commas, e.g. `cat, dog`; `-grass` excludes: an image where grass matches \
does not match. Mode `any`: an image matches if any keyword matches; `all`: only if every \
keyword does.

## Scores and threshold
Each region gets a probability per keyword (a softmax over the keywords and a few background \
prompts), absolute rather than relative to the other regions, so an image without the thing \
has no match. The threshold (0 to 1) is the least probability that matches: lower finds more, \
with more mistakes; higher finds fewer, surer matches. Changing it is instant (cached).

## Merging threshold
Overlapping matches of one keyword whose mask IoU is above it merge (NMS keeps the best, \
union fuses the masks). Lower merges more; 1.0 merges nothing. Instant.

## Points per side
The Segment Anything point grid: more points find smaller objects but cost time (on a CPU the \
mask decoder over the grid dominates). Changing it re-runs mask generation once per image; \
after that it is cached.

## Profiles
cpu-fast (SAM 2.1 Hiera-T + CLIP ViT-B/32, laptops), gpu-quality (SAM ViT-H + CLIP ViT-L/14), \
zh (Chinese keywords: Chinese-CLIP), multilingual (SigLIP 2), tiny (random weights for tests \
and offline demos: results are meaningless). Missing weights: `seglens models pull NAME`.

## Batch jobs
Jobs are stored and survive restarts: queued, running, completed, failed, cancelled or \
interrupted. An interrupted job (the server stopped) resumes on start-up; cancelling is safe \
and keeps finished images. Results export as COCO JSON (RLE masks, scores) and CSV.
"""

# Pages for developers, not users, stay out of the prompt.
_INTERNAL = (
    "architecture",
    "develop",
    "contributing",
    "design",
    "adr",
    "internal",
    "changelog",
    "benchmark",
    "release",
)
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "how",
        "what",
        "why",
        "can",
        "does",
        "did",
        "this",
        "that",
        "from",
        "are",
        "was",
        "you",
        "your",
        "into",
        "there",
        "their",
        "about",
        "when",
        "which",
        "would",
        "should",
        "could",
        "have",
        "has",
        "not",
        "but",
        "all",
        "any",
        "use",
        "using",
        "get",
        "set",
    ]
)


# Where an installed wheel keeps a copy of the checkout's docs/*.md (setup.py copies them).
PACKAGED_DOCS = "_docs"


def _docs_dirs() -> list[Path]:
    """Candidate docs directories, best first: ``SEGLENS_DOCS_DIR``; the checkout's
    ``docs/`` when running from a source tree (an editable install); the copy packaged
    in the wheel under ``seglens/_docs``."""
    found = []
    configured = os.environ.get("SEGLENS_DOCS_DIR", "").strip()
    if configured:
        found.append(Path(configured).expanduser())
    # src/seglens/services/assistant_guide.py → the checkout root, recognised by its
    # pyproject.toml (in site-packages, parents[3] is just lib/pythonX.Y).
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file():
        found.append(root / "docs")
    found.append(Path(__file__).resolve().parents[1] / PACKAGED_DOCS)
    return found


def _default_docs_dir() -> Path | None:
    return next((d for d in _docs_dirs() if d.is_dir()), None)


def _clean(text: str) -> str:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "\n…"


def load_user_guide(docs_dir: Path | None = None, *, max_chars: int = 6000) -> str:
    """`BUILTIN_GUIDE` plus the user-facing ``*.md`` pages of `docs_dir` (default: the
    first of ``SEGLENS_DOCS_DIR``, the checkout's ``docs/`` and the copy packaged in the
    wheel; pages named like architecture, development, benchmarks... are skipped), each
    cut to a fair share of `max_chars` at a paragraph break. No directory, or an
    unreadable one, just gives the built-in guide."""
    guide = BUILTIN_GUIDE.strip()
    directory = docs_dir if docs_dir is not None else _default_docs_dir()
    if directory is None or not directory.is_dir():
        return guide
    try:
        listed = sorted(directory.glob("*.md"))
    except OSError:
        return guide
    pages = [p for p in listed if not any(word in p.stem.lower() for word in _INTERNAL)]
    budget = max_chars - len(guide)
    if not pages or budget < 400:
        return guide
    share = budget // len(pages)
    parts = [guide]
    for page in pages:
        try:
            text = _clean(page.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            parts.append(_truncate(text, share))
    return "\n\n".join(parts)


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]{3,}|[\u4e00-\u9fff]", text.lower())
    return {w[:5] for w in words if w not in _STOP}


def guide_excerpt(guide: str, question: str, *, max_chars: int = 700) -> str | None:
    """The guide section (split at Markdown headings) sharing the most words with
    `question`, cut to `max_chars`; None when none shares at least two words."""
    wanted = _stems(question)
    if not wanted:
        return None
    sections = [s.strip() for s in re.split(r"\n(?=#{1,4} )", guide) if s.strip()]
    scored = [(len(wanted & _stems(section)), -index, section) for index, section in enumerate(sections)]
    if not scored:
        return None
    score, _, best = max(scored)
    if score < 2:
        return None
    return _truncate(best, max_chars)
