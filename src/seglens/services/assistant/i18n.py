"""The assistant's own words in each UI language: the offline advisor's reasons, its
plain-language account of the screen and the offline answer's frame.

Every sentence is a template written for its language (``en``, ``zh``), filled with the
numbers of the screen; nothing is machine-translated at run time. `say` formats one;
`language_of` picks the answer's language from the UI's and the question's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

__all__ = ["LANGUAGES", "Lang", "join", "language_of", "quote", "say"]

Lang = Literal["en", "zh"]
LANGUAGES: tuple[Lang, ...] = ("en", "zh")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

_EN: dict[str, str] = {
    # advisor rules
    "all_failed": "All {failed} processed images failed, so there is nothing to tune. First error: "
    "{file}: {message}{code}. Check the inputs: image files (JPEG, PNG, WebP, BMP, TIFF, GIF) within "
    "the size limits, not corrupted, and readable.",
    "some_failed": "{failed} of {total} images failed{codes}, e.g. {file}: {message}. The numbers here "
    "cover the others.",
    "tiny_profile": "The tiny profile has random weights: its masks and scores are meaningless (random), "
    "so no threshold can make them right. Start a new job with a real profile such as {profile} for "
    "results that mean something.",
    "no_keywords": "Type what to find, separated by commas (e.g. 'cat, dog'); write -word to exclude.",
    "language_mismatch": "{words} {verb} not in a language the embedder{embedder} reads (it reads English "
    "only), so the scores are noise. Translate to English (the assistant does this when the LLM is on), "
    "or start a new job with the {profile} profile ({model}).",
    "raise_threshold": "Raise the threshold to {target}: {parts}. Weak matches like these are usually "
    "wrong; the stronger ones stay.",
    "raise_part": "{kw} has {matches} matches and {barely} of them score under {edge}, barely above the "
    "threshold (lowest {lowest}){remain}",
    "raise_remain": "; {left} would remain",
    "lower_threshold": "Lower the threshold to {target}: {parts}. Check the new matches: they are the least "
    "certain ones.",
    "lower_part_none": "{kw} has no match, but its best score {scores} is just under the threshold {threshold}",
    "lower_part_some": "{kw} is missing in {missed} of {done} images, but its best scores there ({scores}) "
    "are just under the threshold {threshold}",
    "lower_merge": "Lower the merging threshold to {target}: {parts}, most likely the same object found "
    "several times. Matches overlapping more than {target} then merge ({how}).",
    "merge_part": "{kw} has {pairs} pairs of overlapping matches (mask IoU {low} to {high})",
    "merge_nms": "keeping the best",
    "merge_union": "into one mask",
    "fewer_points": "Use {target} points per side instead of {points}: mask generation takes {seconds} s per "
    "image on the CPU{size}, and the point grid sets that cost (about {factor}x less decoder work). This "
    "re-runs mask generation once; later queries come from the cache. Small objects may be missed.",
    "fewer_points_size": " for large images ({mp} MP on average)",
    "rephrase": "Nothing comes near the threshold {threshold} for {parts}: the embedder does not connect "
    "the word with any region. Try a more common word or a synonym, describe what it looks like, or use "
    "a stronger embedder (gpu-quality: CLIP ViT-L/14). If the object is really absent, this is the right "
    "answer.",
    "rephrase_part": "{kw} at best {best}",
    # the account of the screen
    "where_one": "1 image",
    "where_many": "{n} images",
    "where_px": " ({w}x{h} px)",
    "where_progress": " ({done} done, {failed} failed)",
    "no_query": "(no keywords)",
    "setup": "threshold {threshold}, merging {merge}, mode {mode}",
    "setup_profile": ", profile {profile}",
    "setup_device": " on {device}",
    "looking_at": 'Looking at {where} with the query "{query}" ({setup}).',
    "tiny_warning": "**Tiny profile: random weights, the results below are meaningless.**",
    "images_match": "{matched} of {done} images match{why}; {regions} candidate regions per image on average.",
    "why_excluded": "{n} excluded by -{word}",
    "why_all": "mode all needs every keyword and {keywords} is missing in some",
    "why_threshold": "no region reaches the threshold {threshold}",
    "mode_any": "any",
    "mode_all": "all",
    "why_open": " (",
    "why_sep": "; ",
    "why_close": ")",
    "kw_no_regions": "{kw}: no regions to score.",
    "kw_no_match": "{kw}: no match; best score {best}{where} (threshold {threshold}).",
    "kw_matches": "{kw}: {matches} matches{images}, best {best}{where}",
    "kw_in_images": " in {matched} of {done} images",
    "kw_in_file": " in {file}",
    "kw_lowest": ", lowest {lowest}",
    "kw_missed": "; best where it missed {missed}",
    "excluded": "-{word} excluded {count} image(s).",
    "mask_time": "Mask generation took {seconds} s per image{embed}.",
    "embed_time": ", region embedding {seconds} s",
    "from_cache": "Regions and embeddings came from the cache.",
    # the offline answer
    "llm_off": "The AI assistant is off: {reason}. The built-in advisor answers.",
    "llm_failed": "The LLM could not answer: {message} The built-in advisor answers instead.",
    "no_context": "Open an image or a job to get advice grounded in its numbers.",
    "suggestions": "Suggestions:",
    "nothing_to_change": "The advisor has nothing to change: the results fit the settings.",
    "from_guide": "From the user guide ({title}):",
    "focus_none": "{kw}: no region reaches the threshold {threshold}. Its best score is {best}{where}. A "
    "threshold of {needed} would include it: {images} would then match at least once.",
    "focus_far": "{kw}: no region reaches the threshold {threshold}; its best score is only {best}{where}, "
    "far below. Lowering the threshold to {needed} would mostly add wrong matches: rephrase it instead.",
    "focus_some": "{kw}: {matches} matches in {matched} of {done} images (threshold {threshold}), best {best}"
    "{where}, lowest {lowest}.",
    "focus_missing": " Where it is missing, the best score is {missed}; a threshold of {needed} would "
    "include the best of those.",
    "focus_keep": " At {higher}, {left} of the matches would remain.",
    "focus_no_regions": "{kw}: the images have no regions to score.",
    "images_n": "{n} images",
    "image_one": "1 image",
    "threshold_now": "The threshold is {threshold} (a region matches when its probability is at least that).",
    "merge_now": "The merging threshold is {merge}: matches of one keyword whose masks overlap more than "
    "that (IoU) are merged.",
    "points_now": "Points per side: {points}; mask generation takes {seconds} s per image.",
    "points_now_no_time": "Points per side: {points}.",
    "profile_now": "Profile {profile}, embedder {embedder} (reads {language}).",
}

_ZH: dict[str, str] = {
    "all_failed": "已处理的 {failed} 张图片全部失败，没有可调的参数。第一个错误：{file}：{message}{code}。"
    "请检查输入：图片格式（JPEG、PNG、WebP、BMP、TIFF、GIF）、大小是否超限、文件是否损坏、能否读取。",
    "some_failed": "{total} 张图片中有 {failed} 张失败{codes}，例如 {file}：{message}。这里的数字只统计其余图片。",
    "tiny_profile": "tiny 配置使用随机权重：它的掩码和分数没有意义（随机），任何阈值都无法让结果变正确。"
    "请用真实的配置（例如 {profile}）新建任务，才能得到有意义的结果。",
    "no_keywords": "请输入要查找的内容，用逗号分隔（例如“猫, 狗”）；写 -词 表示排除。",
    "language_mismatch": "{words} 不是嵌入模型{embedder}能读懂的语言（它只读英文），所以分数只是噪声。"
    "请翻译成英文（开启 LLM 时助手可以代劳），或用 {profile} 配置（{model}）新建任务。",
    "raise_threshold": "把阈值提高到 {target}：{parts}。这样的弱匹配通常是错的；较强的匹配会保留。",
    "raise_part": "{kw} 有 {matches} 个匹配，其中 {barely} 个得分低于 {edge}，只是勉强超过阈值（最低 {lowest}）{remain}",
    "raise_remain": "；提高后剩余 {left} 个",
    "lower_threshold": "把阈值降低到 {target}：{parts}。请检查新增的匹配：它们是最不确定的。",
    "lower_part_none": "{kw} 没有匹配，但最高分 {scores} 仅略低于阈值 {threshold}",
    "lower_part_some": "{kw} 在 {done} 张图片中有 {missed} 张缺失，但这些图片中的最高分（{scores}）仅略低于阈值 {threshold}",
    "lower_merge": "把合并阈值降低到 {target}：{parts}，很可能是同一个物体被找到了多次。"
    "重叠超过 {target} 的匹配随后会合并（{how}）。",
    "merge_part": "{kw} 有 {pairs} 对互相重叠的匹配（掩码 IoU {low} 到 {high}）",
    "merge_nms": "保留得分最高的",
    "merge_union": "合并为一个掩码",
    "fewer_points": "每边采样点数用 {target} 代替 {points}：在 CPU 上每张图片生成掩码需要 {seconds} 秒{size}，"
    "这个开销由点阵决定（解码工作约减少 {factor} 倍）。这会重新生成一次掩码，之后的查询走缓存。小物体可能会漏掉。",
    "fewer_points_size": "（图片较大，平均 {mp} 百万像素）",
    "rephrase": "{parts}，离阈值 {threshold} 很远：嵌入模型没有把这个词和任何区域联系起来。"
    "试试更常用的词或同义词，描述它的样子，或使用更强的嵌入模型（gpu-quality：CLIP ViT-L/14）。"
    "如果图中确实没有这个物体，这就是正确答案。",
    "rephrase_part": "{kw} 最高只有 {best}",
    "where_one": "1 张图片",
    "where_many": "{n} 张图片",
    "where_px": "（{w}x{h} 像素）",
    "where_progress": "（完成 {done} 张，失败 {failed} 张）",
    "no_query": "（没有关键词）",
    "setup": "阈值 {threshold}，合并阈值 {merge}，模式 {mode}",
    "setup_profile": "，配置 {profile}",
    "setup_device": "，设备 {device}",
    "looking_at": "当前查看 {where}，查询“{query}”（{setup}）。",
    "tiny_warning": "**tiny 配置：随机权重，下面的结果没有意义。**",
    "images_match": "{done} 张图片中有 {matched} 张匹配{why}；平均每张图片 {regions} 个候选区域。",
    "why_excluded": "{n} 张被排除词 -{word} 排除",
    "why_all": "模式“全部”要求每个关键词都出现，而 {keywords} 在部分图片中缺失",
    "why_threshold": "没有区域达到阈值 {threshold}",
    "mode_any": "任一",
    "mode_all": "全部",
    "why_open": "（",
    "why_sep": "；",
    "why_close": "）",
    "kw_no_regions": "{kw}：没有可评分的区域。",
    "kw_no_match": "{kw}：没有匹配；最高分 {best}{where}（阈值 {threshold}）。",
    "kw_matches": "{kw}：{matches} 个匹配{images}，最高 {best}{where}",
    "kw_in_images": "，分布在 {done} 张中的 {matched} 张",
    "kw_in_file": "（{file}）",
    "kw_lowest": "，最低 {lowest}",
    "kw_missed": "；缺失图片中的最高分 {missed}",
    "excluded": "-{word} 排除了 {count} 张图片。",
    "mask_time": "每张图片生成掩码用时 {seconds} 秒{embed}。",
    "embed_time": "，区域嵌入 {seconds} 秒",
    "from_cache": "区域和嵌入来自缓存。",
    "llm_off": "AI 助手未开启（原因：{reason}）。由内置顾问回答。",
    "llm_failed": "LLM 无法回答：{message} 改由内置顾问回答。",
    "no_context": "请打开一张图片或一个任务，以便根据其中的数字给出建议。",
    "suggestions": "建议：",
    "nothing_to_change": "顾问没有需要修改的设置：结果与当前设置相符。",
    "from_guide": "用户指南（{title}）：",
    "focus_none": "{kw}：没有区域达到阈值 {threshold}。它的最高分是 {best}{where}。阈值设为 {needed} 就能包含它："
    "届时 {images}至少会有一个匹配。",
    "focus_far": "{kw}：没有区域达到阈值 {threshold}；它的最高分只有 {best}{where}，差距很大。"
    "把阈值降到 {needed} 主要会增加错误匹配：请换个说法。",
    "focus_some": "{kw}：在 {done} 张图片中的 {matched} 张里有 {matches} 个匹配（阈值 {threshold}），"
    "最高 {best}{where}，最低 {lowest}。",
    "focus_missing": "在缺失它的图片中最高分是 {missed}；阈值设为 {needed} 可以包含其中最高的那个。",
    "focus_keep": "阈值为 {higher} 时，会剩下 {left} 个匹配。",
    "focus_no_regions": "{kw}：图片中没有可评分的区域。",
    "images_n": "{n} 张图片",
    "image_one": "1 张图片",
    "threshold_now": "当前阈值是 {threshold}（区域的概率不低于它才算匹配）。",
    "merge_now": "当前合并阈值是 {merge}：同一关键词的匹配，掩码重叠（IoU）超过它就会合并。",
    "points_now": "每边采样点数：{points}；每张图片生成掩码用时 {seconds} 秒。",
    "points_now_no_time": "每边采样点数：{points}。",
    "profile_now": "配置 {profile}，嵌入模型 {embedder}（读 {language}）。",
}

_CATALOGUE: dict[str, dict[str, str]] = {"en": _EN, "zh": _ZH}


def say(lang: str, key: str, **fields: object) -> str:
    """The `key` template of `lang` (English for an unknown language) filled with
    `fields`; raises KeyError for an unknown key."""
    table = _CATALOGUE.get(lang, _EN)
    return table[key].format(**fields)


def quote(lang: str, word: str) -> str:
    return f"“{word}”" if lang == "zh" else f"'{word}'"


def join(lang: str, parts: Iterable[str]) -> str:
    return ("；" if lang == "zh" else "; ").join(parts)


def language_of(question: str, ui_lang: str | None) -> Lang:
    """``zh`` when the UI is in Chinese or the question has Chinese characters, else
    ``en``."""
    if ui_lang == "zh" or _HAN.search(question):
        return "zh"
    return "en"
