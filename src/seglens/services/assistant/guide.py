"""The user guide the assistant grounds how-to answers in: a short built-in guide to the
knobs (in English and Chinese) plus the user-facing pages of the project's ``docs/``, kept
short; and the retrieval of the section that fits a question.

`rank_sections` scores each section (split at Markdown headings) against the question:
topic terms of the built-in sections (English and Chinese: "threshold", "阈值",
"duplicate", "重复"...) count most, then shared word stems. `guide_excerpt` returns the
best section whole, or cut at a sentence end, never inside a word.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUILTIN_GUIDE",
    "BUILTIN_GUIDE_ZH",
    "GuideSection",
    "cut_text",
    "guide_excerpt",
    "guide_sections",
    "load_user_guide",
    "rank_sections",
]

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
    # src/seglens/services/assistant/guide.py: the package is src/seglens, the checkout
    # root two above it, recognised by its pyproject.toml (in site-packages that is just
    # lib/pythonX.Y).
    package = Path(__file__).resolve().parents[2]
    root = package.parents[1]
    if (root / "pyproject.toml").is_file():
        found.append(root / "docs")
    found.append(package / PACKAGED_DOCS)
    return found


def _default_docs_dir() -> Path | None:
    return next((d for d in _docs_dirs() if d.is_dir()), None)


def _clean(text: str) -> str:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def load_user_guide(docs_dir: Path | None = None, *, max_chars: int = 6000) -> str:
    """`BUILTIN_GUIDE` plus the user-facing ``*.md`` pages of `docs_dir` (default: the
    first of ``SEGLENS_DOCS_DIR``, the checkout's ``docs/`` and the copy packaged in the
    wheel; pages named like architecture, development, benchmarks... are skipped), each
    cut to a fair share of `max_chars` at a sentence end. No directory, or an
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
            parts.append(cut_text(text, share))
    return "\n\n".join(parts)


BUILTIN_GUIDE_ZH = """## 查询
关键词用逗号分隔，例如 `猫, 狗`；`-草地` 表示排除：草地匹配的图片不算匹配。模式 `any`：任一关键词匹配即\
图片匹配；`all`：每个关键词都匹配才算。

## 分数和阈值
每个区域对每个关键词有一个概率（在关键词和几个背景提示之间做 softmax），是绝对值而不是相对于其他区域，\
所以没有该物体的图片就没有匹配。阈值（0 到 1）是匹配所需的最低概率：调低能找到更多，但错误也更多；\
调高则更少、更可靠。修改阈值立即生效（走缓存）。

## 合并阈值
同一关键词的重叠匹配，掩码 IoU 超过合并阈值就会合并（NMS 保留最高分，union 合并掩码）。调低合并得更多；\
1.0 表示不合并。立即生效。

## 每边采样点数
Segment Anything 的采样点阵：点越多，越能找到小物体，但更耗时（在 CPU 上掩码解码器占大头）。修改它会对每张\
图片重新生成一次掩码，之后走缓存。

## 配置
cpu-fast（SAM 2.1 Hiera-T + CLIP ViT-B/32，笔记本）、gpu-quality（SAM ViT-H + CLIP ViT-L/14）、\
zh（中文关键词：Chinese-CLIP）、multilingual（SigLIP 2）、tiny（随机权重，仅用于测试和离线演示：结果没有意义）。\
缺少权重：`seglens models pull 名称`。

## 批量任务
任务会被保存，重启后仍在：排队、运行、完成、失败、取消或中断。中断的任务（服务器停止）在启动时恢复；取消是安全的，\
已完成的图片会保留。结果可导出为 COCO JSON（RLE 掩码、分数）和 CSV。
"""

# Topic terms of the built-in sections (lower case; English stems match word starts,
# Chinese terms match anywhere). The first heading word names the section in both guides.
_TOPICS: dict[str, tuple[str, ...]] = {
    "query": (
        "keyword",
        "query",
        "comma",
        "exclud",
        "mode",
        "search for",
        "several words",
        "both",
        "关键词",
        "排除",
        "查询",
        "模式",
        "逗号",
        "同时",
    ),
    "threshold": (
        "threshold",
        "score",
        "probabilit",
        "not found",
        "isn't found",
        "is not found",
        "missing",
        "find more",
        "fewer",
        "too many",
        "confiden",
        "false positive",
        "wrong match",
        "no match",
        "阈值",
        "分数",
        "找不到",
        "没找到",
        "没有找到",
        "概率",
        "漏",
        "太多",
        "误",
        "置信",
    ),
    "merging": (
        "merg",
        "merging threshold",
        "merge threshold",
        "overlap",
        "duplicat",
        "twice",
        "same object",
        "several times",
        "iou",
        "nms",
        "union",
        "合并",
        "合并阈值",
        "重叠",
        "重复",
        "两次",
        "多次",
    ),
    "points": (
        "points per side",
        "point grid",
        "points",
        "grid",
        "small object",
        "tiny object",
        "slow",
        "speed",
        "faster",
        "fast",
        "mask generation",
        "takes long",
        "采样点",
        "点数",
        "小物体",
        "慢",
        "速度",
        "加快",
        "掩码生成",
    ),
    "profiles": (
        "profile",
        "model",
        "gpu",
        "cpu",
        "tiny",
        "chinese",
        "chinese keyword",
        "language",
        "weights",
        "download",
        "pull",
        "clip",
        "siglip",
        "配置",
        "模型",
        "中文",
        "中文关键词",
        "权重",
        "下载",
        "语言",
    ),
    "jobs": (
        "job",
        "batch",
        "queue",
        "resume",
        "cancel",
        "interrupt",
        "export",
        "coco",
        "csv",
        "restart",
        "任务",
        "批量",
        "队列",
        "导出",
        "取消",
        "恢复",
        "中断",
        "重启",
    ),
}
_HEADINGS: dict[str, str] = {
    "query": "query",
    "查询": "query",
    "scores and threshold": "threshold",
    "分数和阈值": "threshold",
    "merging threshold": "merging",
    "合并阈值": "merging",
    "points per side": "points",
    "每边采样点数": "points",
    "profiles": "profiles",
    "配置": "profiles",
    "batch jobs": "jobs",
    "批量任务": "jobs",
}


@dataclass(frozen=True)
class GuideSection:
    """One section of the guide: its heading (without ``#``), its text (heading
    included) and, for a built-in section, its topic id (``threshold``, ``merging``...)."""

    title: str
    text: str
    topic: str | None = None


def guide_sections(guide: str) -> list[GuideSection]:
    """`guide` split at Markdown headings (levels 1 to 4), in order; text before the first
    heading is a section titled ``""``."""
    sections = []
    for chunk in re.split(r"\n(?=#{1,4} )", "\n" + guide):
        text = chunk.strip()
        if not text:
            continue
        first = text.splitlines()[0]
        title = first.lstrip("#").strip() if first.startswith("#") else ""
        sections.append(GuideSection(title, text, _HEADINGS.get(title.lower())))
    return sections


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]{3,}|[\u4e00-\u9fff]", text.lower())
    return {w[:5] for w in words if w not in _STOP}


def _term_hit(term: str, question: str) -> bool:
    if re.search(r"[\u4e00-\u9fff]", term):
        return term in question
    return re.search(r"(?<![a-z])" + re.escape(term), question) is not None


def rank_sections(guide: str, question: str) -> list[tuple[float, GuideSection]]:
    """The sections of `guide` that share anything with `question`, best first, with
    their scores: 3 per topic term of the section found in the question, 2 per word stem
    shared with the heading, and the shared stems of the body over the square root of its
    size. Ties keep the guide's order."""
    lowered = " ".join(question.lower().split())
    wanted = _stems(lowered)
    ranked = []
    for index, section in enumerate(guide_sections(guide)):
        terms = _TOPICS.get(section.topic or "", ())
        score = 3.0 * sum(_term_hit(term, lowered) for term in terms)
        score += 2.0 * len(wanted & _stems(section.title))
        body = _stems(section.text)
        if body:
            score += len(wanted & body) / math.sqrt(len(body))
        if score > 0:
            ranked.append((score, -index, section))
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [(score, section) for score, _, section in ranked]


def cut_text(text: str, limit: int) -> str:
    """`text` whole if it fits, else its longest start ending a sentence or a paragraph
    within `limit` characters (a word boundary at worst): never inside a word."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in re.finditer(r"(?:[.!?。！？](?=\s|$)|[。！？]|\n\n)", head)]
    if ends and ends[-1] > limit // 3:
        return head[: ends[-1]].rstrip()
    space = head.rfind(" ")
    return head[: space if space > limit // 3 else limit].rstrip()


def guide_excerpt(guide: str, question: str, *, max_chars: int = 900) -> GuideSection | None:
    """The section of `guide` that fits `question` best (see `rank_sections`), its text
    cut to `max_chars` at a sentence end; None when nothing scores at least 1.5 (one
    topic term, or a shared heading word, is enough)."""
    ranked = rank_sections(guide, question)
    if not ranked or ranked[0][0] < 1.5:
        return None
    section = ranked[0][1]
    return GuideSection(section.title, cut_text(section.text, max_chars), section.topic)
