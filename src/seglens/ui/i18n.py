"""Interface text in English and Simplified Chinese.

Translation happens on the server: every translated component is registered with its key
(`Translator.label`, `.value`, ...) and switching the language sends one update per
component, so nothing typed, uploaded or computed is lost. `t(lang, key, **fields)` is for
text built by handlers (notices, progress, tables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seglens.ui.i18n_extra import EXTRA_EN, EXTRA_ZH, STAGES_ZH

__all__ = ["LANGUAGES", "TEXT", "Translator", "pick_language", "stage_name", "t"]

LANGUAGES = {"en": "English", "zh": "中文"}

EN: dict[str, str] = {
    "title": "SegLens",
    "subtitle": "Find things in images by words: Segment Anything regions scored by CLIP.",
    "language": "Language",
    "nav_seg": "Image Segmentation",
    "nav_assistant": "AI Assistant",
    # sources
    "sources": "Images",
    "src_upload": "Upload",
    "src_camera": "Camera",
    "upload_files": "Drop images here or click to choose (many at once)",
    "retry_upload": "Upload the files above again",
    "batch": "Batch",
    "batch_table": "Image info",
    "remove_image": "Remove selected image",
    "clear_images": "Remove all",
    "camera": "Camera: allow access for the preview; Record streams frames to the live overlay",
    "capture": "Capture frame into the batch",
    "live": "Live overlay (newest frame whenever the previous one is done)",
    "live_view": "Live overlay",
    "fps_idle": "Live overlay off",
    "fps": "{fps:.2f} frames/s processed · {dropped} stale frames dropped",
    "camera_no_frame": "No camera frame yet: start the camera first.",
    "captured": "Captured frame added to the batch: {name}",
    # query
    "query_box": "Keywords",
    "keywords": "Keywords (comma-separated; -word excludes)",
    "keywords_ph": "cat, dog, -grass",
    "examples": "Examples",
    "translate": "Translate keywords to English (assistant)",
    "translated": "Keywords translated: {before} → {after} (edit them if needed).",
    "not_translated": "Keywords kept as they are: {note}",
    "mode": "Mode",
    "mode_any": "any keyword",
    "mode_all": "all keywords",
    "exclude": "Exclude (comma-separated)",
    "exclude_ph": "grass, sky",
    "controls": "Control panel",
    "threshold": "Matching threshold",
    "threshold_info": "Minimum probability that a region is the keyword",
    "merge": "Region-merging threshold",
    "merge_info": "Mask overlap above which matches merge (1 = never)",
    "alpha": "Overlay transparency",
    "alpha_info": "Opacity of the highlighted regions",
    "pad": "Click: matching → / merging ↑",
    "advanced": "Advanced (generation settings: a new job recomputes)",
    "profile": "Profile",
    "pps": "Points per side (0 = the profile's default)",
    "start": "Start",
    "stop": "Stop",
    "resume": "Resume",
    # progress
    "progress_idle": "No job yet: upload images, type keywords, press Start.",
    "progress": "{status}: {done} of {total} done · {failed} failed · {skipped} skipped",
    "status_queued": "Queued",
    "status_running": "Running",
    "status_completed": "Completed",
    "status_failed": "Failed",
    "status_cancelled": "Stopped",
    "status_interrupted": "Interrupted",
    # results
    "tab_results": "Results",
    "tab_details": "Image details",
    "tab_stats": "Batch statistics",
    "tab_history": "History",
    "results_gallery": "Results (select one to open it large)",
    "result_view": "Selected result: click to add a point",
    "point_mode": "A click adds",
    "point_pos": "positive point (include)",
    "point_neg": "negative point (exclude)",
    "point_hint": "Shift+click adds a negative point whatever the toggle says.",
    "clear_points": "Clear points",
    "regions": "Regions",
    "col_keyword": "keyword",
    "col_score": "score",
    "col_area": "area (px)",
    "col_box": "box (x0, y0, x1, y1)",
    "refined": "refined (click)",
    "downloads": "Downloads",
    "export_format": "Format",
    "fmt_coco": "COCO JSON",
    "fmt_masks": "Mask PNGs (zip)",
    "fmt_overlays": "Overlays (zip)",
    "fmt_csv": "CSV",
    "export": "Prepare download",
    "export_file": "Download",
    "export_file_named": "Download: {name}",
    "export_uses": (
        "Downloads use what is on screen: «{query}» · matching threshold {threshold:.2f} · "
        "merging {merge:.2f} · {mode} · transparency {alpha:.2f}"
    ),
    "caption_matches": "{n} matches",
    "caption_failed": "failed: {reason}",
    "caption_skipped": "skipped",
    # details
    "details_pick": "Select a result to see its log.",
    "log_table": "Level 1 log",
    "col_field": "field",
    "col_value": "value",
    "scores_chart": "Region scores per keyword",
    "timings_chart": "Stage timings (ms)",
    "col_region": "region",
    "col_stage": "stage",
    "col_ms": "ms",
    "below_threshold": "best, below threshold",
    # stats
    "stats_summary": "Summary",
    "stats_stages": "Stages (ms)",
    "stats_keywords": "Keywords",
    "stats_stage_chart": "Mean time per stage (ms)",
    "stats_keyword_chart": "Matches per keyword",
    "stats_time_chart": "Time per image (ms)",
    "stats_none": "Run or reopen a job to see its statistics.",
    "col_count": "count",
    "col_mean": "mean",
    "col_p50": "p50",
    "col_p95": "p95",
    "col_max": "max",
    "col_matches": "matches",
    "col_images": "images",
    "col_best": "best score",
    "col_image": "image",
    "col_total_ms": "total ms",
    "stats_line": (
        "**{status}** · {done}/{total} done · {failed} failed · {skipped} skipped · "
        "{ipm} images/min · busy {busy:.1f} s · retried {retried}"
    ),
    "stats_errors": "Errors: {errors}",
    # history
    "history_keyword": "Filter by keyword",
    "history_kind": "Kind",
    "kind_all": "everything",
    "kind_job": "jobs",
    "kind_query": "queries",
    "kind_prompt": "clicks",
    "kind_search": "searches",
    "history_refresh": "Refresh",
    "history_table": "History (select a row, then Reopen)",
    "history_reopen": "Reopen selected job",
    "history_clear": "Clear history",
    "history_export": "Export CSV",
    "col_time": "time",
    "col_kind": "kind",
    "col_query": "query",
    "col_status": "status",
    "col_duration": "duration (ms)",
    "col_ref": "id",
    "history_pick_job": "Select a job row first.",
    "history_cleared": "History cleared: {n} entries removed.",
    "reopened": "Reopened job {job}.",
    # notices
    "backend_down": "The back end at {url} cannot be reached. Your images and settings are kept; try again once it is up.",
    "backend_ok": "Back end: {profile} on {device} · {status}",
    "backend_status_down": "Back end: cannot be reached at {url}",
    "backend_loading": "The models are still loading; requests wait for them.",
    "backend_load_error": "the models could not be loaded: {error}",
    "model_checking": "checking {name} on the hub",
    "model_downloading": "downloading {name}",
    "model_building": "building {name}",
    "model_loading": "loading {name}",
    "queue_full": "The queue is full: try again in about {seconds} s. Nothing was lost.",
    "busy": "The server is busy: try again in a moment.",
    "api_error": "{message}",
    "rejected": "{name} was not added: {message}",
    "not_uploaded": "A file was not added: only files uploaded through this page can be added.",
    "needs_token": "The back end at {url} needs a token: start the UI with SEGLENS_API_TOKEN (or --token).",
    "uploaded": "{n} image(s) added.",
    "no_images": "Add at least one image first.",
    "no_keywords": "Type at least one keyword first.",
    "bad_keywords": "Keywords: {message}",
    "no_job": "There is no job to stop or resume.",
    "nothing_selected": "Select an image in the batch first.",
    "select_result": "Select a result first.",
    "images_gone": "{n} image(s) of your last session are no longer on the server.",
    # assistant
    "assistant": "Assistant",
    "assistant_status_on": "LLM on: {model} at {base_url}",
    "assistant_status_off": "LLM off ({reason}): the offline advisor answers from the numbers on screen.",
    "assistant_unavailable": "The assistant is not available on this back end yet.",
    "chat": "Conversation",
    "chat_input": "Ask about your results, the thresholds or how to use SegLens",
    "send": "Send",
    "new_chat": "New conversation",
    "conversations": "Conversations",
    "open_conversation": "Open",
    "delete_conversation": "Delete",
    "clear_conversations": "Delete all",
    "export_conversation": "Export (Markdown)",
    "example_questions": "Example questions",
    "ex_q1": "Why did nothing match? What threshold should I use?",
    "ex_q2": "Explain the results of this image.",
    "ex_q3": "How do I resume a stopped batch?",
    "ex_q4": "Translate my keywords to English.",
    "suggestions": "Suggestions",
    "apply": "Apply suggestion",
    "apply_n": "Apply #{n}",
    "suggestion_none": "No suggestion yet.",
    "applied": "Applied: {what}",
    "advise": "Suggest settings",
    "panel_ask": "Ask about what is on screen",
    "llm_error": "The language model failed ({message}); the offline advisor answered instead.",
    "context_line": "Context: {context}",
    # -- result viewer (repaints in the browser) --
    "viewer_legend": "legend",
    "viewer_labels": "labels",
    "viewer_contours": "contours",
    "viewer_matches": "matches",
    "viewer_image_matched": "the image matches",
    "viewer_image_unmatched": "the image does not match",
    "merge_strategy": "Merging",
    "merge_strategy_info": "Overlapping matches of one keyword: keep the best, or fuse them into one",
    "strategy_nms": "keep best",
    "strategy_union": "fuse",
}

ZH: dict[str, str] = {
    "title": "SegLens",
    "subtitle": "用文字在图像中找东西：Segment Anything 分割区域，CLIP 打分。",
    "language": "语言",
    "nav_seg": "图像分割",
    "nav_assistant": "AI 助手",
    "sources": "图像",
    "src_upload": "上传",
    "src_camera": "摄像头",
    "upload_files": "把图像拖到这里或点击选择（可多选）",
    "retry_upload": "重新上传上面的文件",
    "batch": "批次",
    "batch_table": "图像信息",
    "remove_image": "移除选中的图像",
    "clear_images": "全部移除",
    "camera": "摄像头：允许访问即可预览；点击录制把画面送去实时叠加",
    "capture": "抓取当前帧加入批次",
    "live": "实时叠加（上一帧处理完即处理最新一帧）",
    "live_view": "实时叠加",
    "fps_idle": "实时叠加已关闭",
    "fps": "已处理 {fps:.2f} 帧/秒 · 丢弃过期帧 {dropped} 个",
    "camera_no_frame": "还没有摄像头画面：请先启动摄像头。",
    "captured": "已把抓取的帧加入批次：{name}",
    "query_box": "关键词",
    "keywords": "关键词（逗号分隔；-词 表示排除）",
    "keywords_ph": "猫, 狗, -草地",
    "examples": "示例",
    "translate": "把关键词翻译成英文（助手）",
    "translated": "关键词已翻译：{before} → {after}（可以再修改）。",
    "not_translated": "关键词保持不变：{note}",
    "mode": "模式",
    "mode_any": "任一关键词",
    "mode_all": "全部关键词",
    "exclude": "排除（逗号分隔）",
    "exclude_ph": "草地, 天空",
    "controls": "控制面板",
    "threshold": "匹配阈值",
    "threshold_info": "区域属于该关键词的最低概率",
    "merge": "区域合并阈值",
    "merge_info": "掩码重叠超过此值时合并（1 = 不合并）",
    "alpha": "叠加透明度",
    "alpha_info": "高亮区域的不透明度",
    "pad": "点击：匹配 → / 合并 ↑",
    "advanced": "高级（生成设置：新任务会重新计算）",
    "profile": "模型配置",
    "pps": "每边采样点数（0 = 配置默认值）",
    "start": "开始",
    "stop": "停止",
    "resume": "继续",
    "progress_idle": "还没有任务：上传图像、输入关键词，然后点击开始。",
    # The status is a word of its own ("已完成"): the numbers must not repeat it.
    "progress": "{status} · 进度 {done}/{total} · 失败 {failed} · 跳过 {skipped}",
    "status_queued": "排队中",
    "status_running": "运行中",
    "status_completed": "已完成",
    "status_failed": "失败",
    "status_cancelled": "已停止",
    "status_interrupted": "已中断",
    "tab_results": "结果",
    "tab_details": "图像详情",
    "tab_stats": "批次统计",
    "tab_history": "历史记录",
    "results_gallery": "结果（选择一项放大查看）",
    "result_view": "选中的结果：点击添加提示点",
    "point_mode": "点击添加",
    "point_pos": "正向点（包含）",
    "point_neg": "负向点（排除）",
    "point_hint": "按住 Shift 点击总是添加负向点。",
    "clear_points": "清除提示点",
    "regions": "区域",
    "col_keyword": "关键词",
    "col_score": "得分",
    "col_area": "面积（像素）",
    "col_box": "边框 (x0, y0, x1, y1)",
    "refined": "点击细化",
    "downloads": "下载",
    "export_format": "格式",
    "fmt_coco": "COCO JSON",
    "fmt_masks": "掩码 PNG（zip）",
    "fmt_overlays": "叠加图（zip）",
    "fmt_csv": "CSV",
    "export": "准备下载",
    "export_file": "下载",
    "export_file_named": "下载：{name}",
    "export_uses": "下载内容与屏幕一致：«{query}» · 匹配阈值 {threshold:.2f} · 合并阈值 {merge:.2f} · {mode} · 透明度 {alpha:.2f}",
    "caption_matches": "{n} 个匹配",
    "caption_failed": "失败：{reason}",
    "caption_skipped": "已跳过",
    "details_pick": "选择一个结果以查看其日志。",
    "log_table": "一级日志",
    "col_field": "字段",
    "col_value": "值",
    "scores_chart": "各关键词的区域得分",
    "timings_chart": "各阶段耗时（毫秒）",
    "col_region": "区域",
    "col_stage": "阶段",
    "col_ms": "毫秒",
    "below_threshold": "最佳，低于阈值",
    "stats_summary": "摘要",
    "stats_stages": "阶段（毫秒）",
    "stats_keywords": "关键词",
    "stats_stage_chart": "各阶段平均耗时（毫秒）",
    "stats_keyword_chart": "各关键词匹配数",
    "stats_time_chart": "每张图像耗时（毫秒）",
    "stats_none": "运行或重新打开一个任务以查看统计。",
    "col_count": "次数",
    "col_mean": "平均",
    "col_p50": "p50",
    "col_p95": "p95",
    "col_max": "最大",
    "col_matches": "匹配数",
    "col_images": "图像数",
    "col_best": "最高得分",
    "col_image": "图像",
    "col_total_ms": "总毫秒",
    "stats_line": (
        "**{status}** · 进度 {done}/{total} · 失败 {failed} · 跳过 {skipped} · "
        "{ipm} 张/分钟 · 计算 {busy:.1f} 秒 · 重试 {retried}"
    ),
    "stats_errors": "错误：{errors}",
    "history_keyword": "按关键词筛选",
    "history_kind": "类型",
    "kind_all": "全部",
    "kind_job": "任务",
    "kind_query": "查询",
    "kind_prompt": "点击",
    "kind_search": "搜索",
    "history_refresh": "刷新",
    "history_table": "历史记录（选择一行后点击重新打开）",
    "history_reopen": "重新打开选中的任务",
    "history_clear": "清空历史",
    "history_export": "导出 CSV",
    "col_time": "时间",
    "col_kind": "类型",
    "col_query": "查询",
    "col_status": "状态",
    "col_duration": "耗时（毫秒）",
    "col_ref": "编号",
    "history_pick_job": "请先选择一行任务。",
    "history_cleared": "历史已清空：删除了 {n} 条。",
    "reopened": "已重新打开任务 {job}。",
    "backend_down": "无法连接后端 {url}。图像和设置都已保留；后端恢复后再试。",
    "backend_ok": "后端：{profile}，设备 {device} · {status}",
    "backend_status_down": "后端：无法连接 {url}",
    "backend_loading": "模型仍在加载；请求会等待加载完成。",
    "backend_load_error": "模型无法加载：{error}",
    "model_checking": "正在向模型库查询 {name}",
    "model_downloading": "正在下载 {name}",
    "model_building": "正在构建 {name}",
    "model_loading": "正在加载 {name}",
    "queue_full": "队列已满：请约 {seconds} 秒后再试。没有丢失任何内容。",
    "busy": "服务器繁忙：请稍后再试。",
    "api_error": "{message}",
    "rejected": "{name} 未加入：{message}",
    "not_uploaded": "有文件未加入：只能加入通过本页面上传的文件。",
    "needs_token": "后端 {url} 需要令牌：请用 SEGLENS_API_TOKEN（或 --token）启动界面。",
    "uploaded": "已加入 {n} 张图像。",
    "no_images": "请先添加至少一张图像。",
    "no_keywords": "请先输入至少一个关键词。",
    "bad_keywords": "关键词有误：{message}",
    "no_job": "没有可以停止或继续的任务。",
    "nothing_selected": "请先在批次中选择一张图像。",
    "select_result": "请先选择一个结果。",
    "images_gone": "上次会话中有 {n} 张图像已不在服务器上。",
    "assistant": "助手",
    "assistant_status_on": "大模型已开启：{model}（{base_url}）",
    "assistant_status_off": "大模型未开启（{reason}）：由离线顾问根据屏幕上的数字回答。",
    "assistant_unavailable": "此后端暂不提供助手。",
    "chat": "对话",
    "chat_input": "询问结果、阈值或 SegLens 的用法",
    "send": "发送",
    "new_chat": "新对话",
    "conversations": "对话列表",
    "open_conversation": "打开",
    "delete_conversation": "删除",
    "clear_conversations": "全部删除",
    "export_conversation": "导出（Markdown）",
    "example_questions": "示例问题",
    "ex_q1": "为什么什么都没匹配上？阈值应该设多少？",
    "ex_q2": "解释一下这张图像的结果。",
    "ex_q3": "如何继续一个已停止的批次？",
    "ex_q4": "把我的关键词翻译成英文。",
    "suggestions": "建议",
    "apply": "应用建议",
    "apply_n": "应用 #{n}",
    "suggestion_none": "暂无建议。",
    "applied": "已应用：{what}",
    "advise": "建议参数",
    "panel_ask": "就屏幕上的内容提问",
    "llm_error": "大模型出错（{message}）；已由离线顾问回答。",
    "context_line": "上下文：{context}",
    # -- result viewer (repaints in the browser) --
    "viewer_legend": "图例",
    "viewer_labels": "标签",
    "viewer_contours": "轮廓",
    "viewer_matches": "匹配",
    "viewer_image_matched": "图像匹配",
    "viewer_image_unmatched": "图像不匹配",
    "merge_strategy": "合并方式",
    "merge_strategy_info": "同一关键词的重叠匹配：保留最佳，或融合为一个",
    "strategy_nms": "保留最佳",
    "strategy_union": "融合",
}

EN.update(EXTRA_EN)
ZH.update(EXTRA_ZH)
TEXT: dict[str, dict[str, str]] = {"en": EN, "zh": ZH}


def stage_name(lang: str, name: str) -> str:
    """A pipeline stage or cache name (``mask_decoder``, ``region_embeddings``) as shown:
    the identifier in English, a word in Chinese."""
    return STAGES_ZH.get(name, name) if lang == "zh" else name


def t(lang: str, key: str, **fields: Any) -> str:
    """The text for `key` in `lang` (English when missing), formatted with `fields`."""
    table = TEXT.get(lang, EN)
    template = table.get(key) or EN.get(key) or key
    return template.format(**fields) if fields else template


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=zh`` wins; else the first supported language in Accept-Language; else en."""
    if query_lang:
        code = query_lang.lower().split("-")[0]
        if code in TEXT:
            return code
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in TEXT:
            return code
    return "en"


@dataclass(frozen=True)
class _Entry:
    component: Any
    build: Callable[[str], dict[str, Any]]


class Translator:
    """Remembers which component shows which text, and builds the updates for a language."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def add(self, component: Any, build: Callable[[str], dict[str, Any]]) -> Any:
        self._entries.append(_Entry(component, build))
        return component

    def label(self, component: Any, key: str, info: str | None = None) -> Any:
        def build(lang: str) -> dict[str, Any]:
            update = {"label": t(lang, key)}
            if info:
                update["info"] = t(lang, info)
            return update

        return self.add(component, build)

    def value(self, component: Any, key: str) -> Any:
        return self.add(component, lambda lang: {"value": t(lang, key)})

    def placeholder(self, component: Any, key: str, placeholder: str) -> Any:
        return self.add(component, lambda lang: {"label": t(lang, key), "placeholder": t(lang, placeholder)})

    def choices(
        self, component: Any, key: str, options: list[tuple[str, str]], info: str | None = None
    ) -> Any:
        """A radio or dropdown whose option labels (and `info` line) are translated; values
        stay."""

        def build(lang: str) -> dict[str, Any]:
            update: dict[str, Any] = {"label": t(lang, key), "choices": [(t(lang, k), v) for k, v in options]}
            if info:
                update["info"] = t(lang, info)
            return update

        return self.add(component, build)

    @property
    def components(self) -> list[Any]:
        return list(dict.fromkeys(e.component for e in self._entries))

    def updates(self, lang: str) -> dict[Any, Any]:
        """One update per component (a component registered twice gets both changes)."""
        import gradio as gr

        merged: dict[Any, dict[str, Any]] = {}
        for e in self._entries:
            merged.setdefault(e.component, {}).update(e.build(lang))
        return {component: gr.update(**update) for component, update in merged.items()}
