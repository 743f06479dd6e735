"""Shared-prefix text encoding for CLIP's causal text tower.

Every keyword is embedded through the same prompt templates ("a photo of a {}.", "a
cropped photo of a {}.", ...). CLIP's text transformer is causal: the state of a token
depends only on the tokens before it, so the states of a template's prefix ("<start> a
photo of a") are the same whatever keyword follows. `PrefixCache` computes the keys and
values of each registered prefix once, and afterwards runs the tower on the rest of each
text only (the keyword, the full stop and the end token: 3 to 5 tokens instead of 9 to 14),
attending to the cached prefix. The result equals the plain forward pass up to float
rounding (tested), at a fraction of the cost: what a new keyword costs on a CPU.

Only OpenAI CLIP's text tower qualifies (Chinese-CLIP's BERT and SigLIP's encoder attend
both ways). `PrefixCache.attach` checks the module layout it relies on and, once, that the
cached path reproduces transformers' own forward pass on a real text; anything else keeps
the plain path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["PrefixCache", "SuffixRunner", "suffix_module", "suffix_shape"]

log = logging.getLogger(__name__)

# The cached path must reproduce transformers' forward pass this closely (cosine distance
# of unit embeddings) on its self-check, else it is switched off.
SELF_CHECK_TOLERANCE = 1e-3

# What runs the text tower on suffixes when it is not PyTorch (`PrefixCache.use_runner`):
# ``(ids (B, S) int64, offsets (B,) int64, past_keys, past_values (L, B, H, P, hd) float32,
# last (B,) int64) -> (features (B, D), keys, values (L, B, H, S, hd))`` as numpy arrays;
# the graph `suffix_module` builds.
SuffixRunner = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def _has_layout(model: Any) -> bool:
    text = getattr(model, "text_model", None)
    if getattr(getattr(model, "config", None), "model_type", None) != "clip" or text is None:
        return False
    if not hasattr(model, "text_projection") or not hasattr(text, "final_layer_norm"):
        return False
    embeddings = getattr(text, "embeddings", None)
    if not all(hasattr(embeddings, a) for a in ("token_embedding", "position_embedding")):
        return False
    layers = getattr(getattr(text, "encoder", None), "layers", None)
    if not layers:
        return False
    parts = ("layer_norm1", "layer_norm2", "mlp", "self_attn")
    attention = ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads", "head_dim")
    return all(
        all(hasattr(layer, p) for p in parts) and all(hasattr(layer.self_attn, a) for a in attention)
        for layer in layers
    )


class PrefixCache:
    """Cached text-tower states of registered prefixes. Build it with `attach`.

    `register(prefixes)` adds prefixes (plain strings such as ``"a photo of a"``);
    `split(texts)` tells which texts start with a registered prefix; `embed(rows)` returns
    their projected, un-normalised text features. Not thread-safe (the embedder's callers
    serialise model calls)."""

    def __init__(self, model: Any, tokenizer: Any, device: Any, max_length: int):
        self._model = model
        self._text = model.text_model
        self._tokenizer = tokenizer
        self._device = device
        self._max_length = max_length
        self._eos = tokenizer.eos_token_id
        self._prefixes: dict[tuple[int, ...], int] = {}  # token ids -> row in the stacks
        self._stacks: list[tuple[Any, Any]] = []  # per layer: (keys, values), (n, H, P, hd)
        self._lengths: list[int] = []
        self._runner: SuffixRunner | None = None
        self._shape = (0, 0, 0)  # layers, heads, head size
        self.checked = False

    @classmethod
    def attach(cls, model: Any, tokenizer: Any, device: Any, max_length: int) -> PrefixCache | None:
        """A cache for `model`, or None when its text tower is not CLIP's causal one."""
        if not _has_layout(model) or getattr(tokenizer, "eos_token_id", None) is None:
            return None
        return cls(model, tokenizer, device, max_length)

    def use_runner(self, runner: SuffixRunner) -> None:
        """Run the tower on suffixes (and new prefixes) through `runner` (an exported
        `suffix_module`) instead of the PyTorch modules, which may then be released."""
        self._shape = suffix_shape(self._model)
        self._runner = runner

    @property
    def prefixes(self) -> int:
        return len(self._prefixes)

    def register(self, prefixes: Sequence[str]) -> None:
        """Compute and keep the states of each new prefix."""
        import torch

        new: list[tuple[int, ...]] = []
        for prefix in prefixes:
            ids = self._ids(prefix)
            if ids and ids[-1] == self._eos:
                ids = ids[:-1]
            key = tuple(ids)
            if 0 < len(key) < self._max_length and key not in self._prefixes and key not in new:
                new.append(key)
        if not new:
            return
        with torch.inference_mode():
            states = [self._states(list(key)) for key in new]
        for key in new:
            self._prefixes[key] = len(self._lengths)
            self._lengths.append(len(key))
        width = max(self._lengths)
        stacks = []
        for layer in range(len(self._text.encoder.layers)):
            keys = [self._stacks[layer][0]] if self._stacks else []
            values = [self._stacks[layer][1]] if self._stacks else []
            keys += [s[layer][0] for s in states]
            values += [s[layer][1] for s in states]
            stacks.append((_stack(keys, width), _stack(values, width)))
        self._stacks = stacks

    def split(self, texts: Sequence[str]) -> tuple[list[int], list[tuple[int, list[int]]]]:
        """Indices of `texts` that take the cached path, each with (prefix row, token ids
        after the prefix); the others are left to the plain forward pass (no registered
        prefix, or longer than the tower takes)."""
        chosen: list[int] = []
        rows: list[tuple[int, list[int]]] = []
        if not self._prefixes:
            return chosen, rows
        # One token over the limit is enough to tell that a text is too long (and keeps the
        # tokenizer from warning about sequences longer than the model takes).
        encoded = self._tokenizer(list(texts), truncation=True, max_length=self._max_length + 1)["input_ids"]
        for index, ids in enumerate(encoded):
            if len(ids) > self._max_length or not ids or ids[-1] != self._eos:
                continue
            matching = [row for prefix, row in self._prefixes.items() if tuple(ids[: len(prefix)]) == prefix]
            if matching:
                best = max(matching, key=self._lengths.__getitem__)  # the longest prefix
                chosen.append(index)
                rows.append((best, list(ids[self._lengths[best] :])))
        return chosen, rows

    def embed(self, rows: Sequence[tuple[int, list[int]]]) -> Any:
        """(N, D) projected text features (a torch tensor) for `split`'s rows."""
        import torch

        prefix_rows = [row for row, _ in rows]
        suffixes = [ids for _, ids in rows]
        index = torch.tensor(prefix_rows, device=self._device)
        past = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self._stacks]
        lengths = [self._lengths[row] for row in prefix_rows]
        if self._runner is not None:
            past_keys = torch.stack([k for k, _ in past]).numpy()
            past_values = torch.stack([v for _, v in past]).numpy()
            features, _, _ = self._run(suffixes, lengths, past_keys, past_values)
            return torch.from_numpy(features)
        hidden, _ = self._forward(suffixes, lengths, past)
        hidden = self._text.final_layer_norm(hidden)
        last = torch.tensor([len(ids) - 1 for ids in suffixes], device=self._device)
        pooled = hidden[torch.arange(len(suffixes), device=self._device), last]
        return self._model.text_projection(pooled)

    def _states(self, ids: list[int]) -> list[tuple[Any, Any]]:
        """Per-layer keys and values (1, H, p, hd) of a prefix's tokens `ids`."""
        if self._runner is None:
            return self._forward([ids], [0], None)[1]
        import torch

        layers, heads, head_dim = self._shape
        nothing = np.zeros((layers, 1, heads, 1, head_dim), np.float32)  # masked out: offset 0
        _, keys, values = self._run([ids], [0], nothing, nothing)
        return [(torch.from_numpy(keys[n]), torch.from_numpy(values[n])) for n in range(layers)]

    def _run(
        self, suffixes: Sequence[list[int]], lengths: Sequence[int], past_keys: Any, past_values: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._runner is not None
        width = max(len(ids) for ids in suffixes)
        ids = np.asarray([tokens + [0] * (width - len(tokens)) for tokens in suffixes], np.int64)
        last = np.asarray([len(tokens) - 1 for tokens in suffixes], np.int64)
        offsets = np.asarray(lengths, np.int64)
        return self._runner(ids, offsets, past_keys, past_values, last)

    def _ids(self, text: str) -> list[int]:
        return list(self._tokenizer(text)["input_ids"])

    def _forward(
        self, suffixes: Sequence[list[int]], prefix_lengths: Sequence[int], past: list[tuple[Any, Any]] | None
    ) -> tuple[Any, list[tuple[Any, Any]]]:
        """Run the encoder layers on `suffixes` (right-padded), row r placed after a prefix
        of `prefix_lengths[r]` tokens whose per-layer keys and values are `past` (padded to
        a common width P). Returns the last hidden states (B, S, D) and the keys and values
        of the suffix tokens per layer."""
        import torch
        import torch.nn.functional as F

        text = self._text
        device = self._device
        rows, width = len(suffixes), max(len(ids) for ids in suffixes)
        padded = [tokens + [0] * (width - len(tokens)) for tokens in suffixes]  # one copy to the device
        ids = torch.tensor(padded, dtype=torch.long, device=device)
        offsets = torch.tensor(prefix_lengths, device=device).unsqueeze(1)
        last_position = text.embeddings.position_embedding.num_embeddings - 1
        positions = (offsets + torch.arange(width, device=device)).clamp(max=last_position)
        hidden = text.embeddings.token_embedding(ids) + text.embeddings.position_embedding(positions)
        cached = past[0][0].shape[2] if past else 0
        # A token sees its own prefix (not the padding after it) and the suffix up to itself.
        sees_prefix = torch.arange(cached, device=device).unsqueeze(0) < offsets  # (B, P)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        mask = torch.cat(
            [sees_prefix.unsqueeze(1).expand(rows, width, cached), causal.expand(rows, width, width)], dim=2
        ).unsqueeze(1)
        states = []
        for n, layer in enumerate(text.encoder.layers):
            attention = layer.self_attn
            heads, head_dim = attention.num_heads, attention.head_dim
            x = layer.layer_norm1(hidden)
            shape = (rows, width, heads, head_dim)
            queries = attention.q_proj(x).view(shape).transpose(1, 2)
            keys = attention.k_proj(x).view(shape).transpose(1, 2)
            values = attention.v_proj(x).view(shape).transpose(1, 2)
            states.append((keys, values))
            if past:
                keys = torch.cat([past[n][0], keys], dim=2)
                values = torch.cat([past[n][1], values], dim=2)
            attended = F.scaled_dot_product_attention(
                queries, keys, values, attn_mask=mask, scale=attention.scale
            )
            hidden = hidden + attention.out_proj(attended.transpose(1, 2).reshape(rows, width, -1))
            hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
        return hidden, states

    def self_check(self, text: str, plain: np.ndarray, cached: np.ndarray) -> bool:
        """Compare the cached path with the plain forward pass on one real text; switch
        the cache off (for good) when they disagree. Returns whether the cache stays on."""
        self.checked = True
        distance = float(1.0 - np.dot(plain, cached))
        if distance <= SELF_CHECK_TOLERANCE:
            return True
        log.warning(
            "the shared-prefix text path disagrees with the model's own forward pass; using the plain path",
            extra={"fields": {"text": text, "cosine_distance": distance}},
        )
        self._prefixes.clear()
        return False


def _stack(tensors: list[Any], width: int) -> Any:
    """Concatenate (1|n, H, p, hd) tensors along the first axis, right-padding p to `width`."""
    import torch
    import torch.nn.functional as F

    return torch.cat([F.pad(t, (0, 0, 0, width - t.shape[2])) for t in tensors], dim=0)


def suffix_shape(model: Any) -> tuple[int, int, int]:
    """(layers, heads, head size) of a CLIP model's text tower."""
    layers = model.text_model.encoder.layers
    attention = layers[0].self_attn
    return len(layers), int(attention.num_heads), int(attention.head_dim)


def suffix_module(model: Any) -> Any:
    """CLIP's text tower on suffixes after cached prefixes, as a module on plain tensors
    (for export): ``forward(ids, offsets, past_keys, past_values, last)`` with the shapes
    of `SuffixRunner`, returning ``(features, keys, values)``. It computes what
    `PrefixCache` computes with PyTorch (a row whose offset is 0 sees no prefix)."""
    import torch
    import torch.nn.functional as F

    class Suffix(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, ids: Any, offsets: Any, past_keys: Any, past_values: Any, last: Any) -> Any:
            text = self.inner.text_model
            rows, width = ids.shape[0], ids.shape[1]
            cached = past_keys.shape[3]
            offsets = offsets.unsqueeze(1)
            last_position = text.embeddings.position_embedding.num_embeddings - 1
            positions = (offsets + torch.arange(width)).clamp(max=last_position)
            hidden = text.embeddings.token_embedding(ids) + text.embeddings.position_embedding(positions)
            sees_prefix = torch.arange(cached).unsqueeze(0) < offsets
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            mask = torch.cat(
                [sees_prefix.unsqueeze(1).expand(rows, width, cached), causal.expand(rows, width, width)],
                dim=2,
            ).unsqueeze(1)
            new_keys, new_values = [], []
            for n, layer in enumerate(text.encoder.layers):
                attention = layer.self_attn
                x = layer.layer_norm1(hidden)
                shape = (rows, width, attention.num_heads, attention.head_dim)
                queries = attention.q_proj(x).view(shape).transpose(1, 2)
                keys = attention.k_proj(x).view(shape).transpose(1, 2)
                values = attention.v_proj(x).view(shape).transpose(1, 2)
                new_keys.append(keys)
                new_values.append(values)
                attended = F.scaled_dot_product_attention(
                    queries,
                    torch.cat([past_keys[n], keys], dim=2),
                    torch.cat([past_values[n], values], dim=2),
                    attn_mask=mask,
                    scale=attention.scale,
                )
                hidden = hidden + attention.out_proj(attended.transpose(1, 2).reshape(rows, width, -1))
                hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
            hidden = text.final_layer_norm(hidden)
            pooled = hidden[torch.arange(rows), last]
            features = self.inner.text_projection(pooled)
            return features, torch.stack(new_keys), torch.stack(new_values)

    return Suffix(model).eval()
