"""The SAM-family mask decoder rewritten for a batch of point prompts on one image.

`SamBackend` decodes automatic mask generation's grid points a batch at a time (8 a call on
ONNX Runtime). transformers' mask decoder, written for any prompt, copies the image
embedding (and SAM 2's high-resolution features) once per prompt and runs every projection
of the image side on every copy. `PromptBatchDecoder` computes the same function with the
same weights (SAM and SAM 2/2.1, multimask point prompts, no mask input), laid out for the
batch:

- The image side is shared until it first differs: the first block's token-to-image keys and
  values and its image-to-token queries are projected once per call, not once per prompt.
- Where the image side differs per prompt, the attention is reassociated so that the 4096
  image tokens are multiplied with (heads x tokens) columns instead of being projected to
  the attention width and back (`_tokens_to_image`, `_image_to_tokens`): for a head h,
  ``softmax(q_h (X W_k,h + b_k)^T) (X W_v,h + b_v)`` equals
  ``softmax((q_h W_k,h) X^T) X W_v,h + b_v`` (the dropped ``q_h . b_k`` is the same for
  every key, and softmax weights sum to one); the image-to-token side is the transpose.
- The upscaling runs in token layout, one output offset at a time (`_masks`): a 2x2
  stride-2 transposed convolution is four matrix products, one per (row, column) offset,
  so no per-prompt tensor is transposed, and each offset's upscaled activations go straight
  into the masks' dot product with the hypernetwork's output. A call's largest activations
  are then a sixteenth of the upscaled image's (less memory per call, fewer pages to fault
  in, more of them in cache). SAM 2's high-resolution features are put in that order once
  per image (`image_inputs`), and the three masks are put in raster order at the end, by
  one 4x4 pixel shuffle. The unused single-mask token is not decoded.
- The predicted IoUs come before the upscaling, so only the prompts with a candidate above
  `iou_floor` are upscaled: automatic mask generation would drop the others' masks.

The result equals transformers' to float rounding: the tests pin it against transformers'
module, and `onnx_sam` checks every export against transformers' forward pass. Exported to
ONNX for the `onnx` backend; the `torch` backend keeps transformers' module, the reference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional

__all__ = ["PromptBatchDecoder", "image_inputs"]


def _heads(attention: Any) -> tuple[int, int]:
    heads = int(attention.num_attention_heads)
    return heads, attention.q_proj.out_features // heads


def _out_proj(attention: Any) -> Any:
    return attention.o_proj if hasattr(attention, "o_proj") else attention.out_proj


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(P, T, H*d) -> (P, H, T, d)."""
    p, t, _ = x.shape
    return x.reshape(p, t, heads, -1).transpose(1, 2)


def _tokens_to_image(
    attention: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, shared: bool
) -> torch.Tensor:
    """The prompt tokens (1, P, T, C) attend to the image tokens: (1, N, C) when `shared`,
    else (P, N, C). Returns (1, P, T, C)."""
    heads, dim = _heads(attention)
    _, p, t, c = query.shape
    q = _split(attention.q_proj(query[0]), heads) * (dim**-0.5)  # (P, H, T, d)
    if shared:  # project the image side once
        k = _split(attention.k_proj(key), heads)  # (1, H, N, d)
        v = _split(attention.v_proj(value), heads)
        out = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v  # (P, H, T, d)
    else:  # reassociate around the projections
        w_k = attention.k_proj.weight.reshape(heads, dim, c)
        w_v = attention.v_proj.weight.reshape(heads, dim, c)
        qk = (q @ w_k).reshape(p, heads * t, c)
        weights = torch.softmax(qk @ key.transpose(-1, -2), dim=-1)  # (P, H*T, N)
        mixed = (weights @ value).reshape(p, heads, t, c)
        out = mixed @ w_v.transpose(-1, -2) + attention.v_proj.bias.reshape(heads, 1, dim)
    return _out_proj(attention)(out.transpose(1, 2).reshape(1, p, t, heads * dim))


def _image_to_tokens(
    attention: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, shared: bool
) -> torch.Tensor:
    """The image tokens, (1, N, C) when `shared`, else (P, N, C), attend to the prompt
    tokens (1, P, T, C). Returns (P, N, C)."""
    heads, dim = _heads(attention)
    _, p, t, c = key.shape
    n = query.shape[1]
    scale = dim**-0.5
    k = _split(attention.k_proj(key[0]), heads)  # (P, H, T, d)
    v = _split(attention.v_proj(value[0]), heads)
    if shared:  # project the image side once
        q = _split(attention.q_proj(query), heads) * scale  # (1, H, N, d)
        scores = (q @ k.transpose(-1, -2)).transpose(1, 2)  # (P, N, H, T)
    else:
        w_q = attention.q_proj.weight.reshape(heads, dim, c)
        folded = (k @ w_q).reshape(p, heads * t, c) * scale
        bias = (k @ attention.q_proj.bias.reshape(heads, dim, 1)).reshape(p, 1, heads * t) * scale
        scores = (query @ folded.transpose(-1, -2) + bias).reshape(p, n, heads, t)
    weights = torch.softmax(scores, dim=-1).reshape(p, n, heads * t)
    out_proj = _out_proj(attention)
    w_o = out_proj.weight.reshape(c, heads, dim).transpose(0, 1)  # (H, C, d)
    # Each head's weights sum to one, so the output bias is spread over the H heads' rows.
    mixed = v @ w_o.transpose(-1, -2) + out_proj.bias / heads  # (P, H, T, C)
    return weights @ mixed.reshape(p, heads * t, c)


def _two_way(
    transformer: Any, tokens: torch.Tensor, image: torch.Tensor, position: torch.Tensor
) -> tuple[Any, Any]:
    """transformers' two-way transformer on (1, P, T, C) tokens and a shared (1, N, C) image;
    returns the tokens and the per-prompt image (P, N, C)."""
    queries, keys = tokens, image
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(query=queries, key=queries, value=queries)[0]
        else:
            query = queries + tokens
            queries = queries + layer.self_attn(query=query, key=query, value=queries)[0]
        queries = layer.layer_norm1(queries)
        shared = keys is image  # the first block: every prompt sees the same image
        placed = keys + position  # the image side's queries and keys in this block
        attended = _tokens_to_image(layer.cross_attn_token_to_image, queries + tokens, placed, keys, shared)
        queries = layer.layer_norm2(queries + attended)
        queries = layer.layer_norm3(queries + layer.mlp(queries))
        attended = _image_to_tokens(
            layer.cross_attn_image_to_token, placed, queries + tokens, queries, shared
        )
        keys = layer.layer_norm4(keys + attended)
    final = transformer.final_attn_token_to_image
    queries = queries + _tokens_to_image(final, queries + tokens, keys + position, keys, keys is image)
    return transformer.layer_norm_final_attn(queries), keys


def _offsets(conv: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A 2x2 stride-2 transposed convolution as four (C_in, C_out) matrices and biases, one
    per output offset (row offset, column offset), in that order."""
    return [(conv.weight[:, :, a, b], conv.bias) for a in range(2) for b in range(2)]


def _blocked(features: torch.Tensor, h: int, w: int, levels: int) -> torch.Tensor:
    """(1, C, h*2^levels, w*2^levels) features as (4^levels, h*w, C): a (row, column) offset
    pair per level, coarser first, then the (h, w) grid of the image embedding."""
    c = features.shape[1]
    x = features.reshape(c, h, *([2] * levels), w, *([2] * levels))
    order: list[int] = []
    for i in range(1, levels + 1):
        order += [1 + i, 2 + levels + i]
    return x.permute(*order, 1, 2 + levels, 0).reshape(4**levels, h * w, c)


def _masks(
    decoder: Any, image: torch.Tensor, high_res: list[torch.Tensor], hyper: torch.Tensor, hw: tuple[int, int]
) -> Any:
    """The decoder's upscaling of the per-prompt image (P, N, C) and the masks' dot product
    with `hyper` (P, M, C/8), one output offset at a time, then the masks (P, M, 4h, 4w)
    in raster order for an (h, w) image embedding. Each offset's activations are a
    sixteenth of the upscaled image's, so a call's working memory stays small whatever
    the batch. `high_res` holds SAM 2's two levels as `image_inputs` gives them."""
    norm = decoder.upscale_layer_norm
    act = decoder.activation
    coarse, fine = _offsets(decoder.upscale_conv1), _offsets(decoder.upscale_conv2)
    pieces: dict[tuple[int, int], torch.Tensor] = {}
    for i, (w1, b1) in enumerate(coarse):
        x = image @ w1 + (high_res[0][i] + b1 if high_res else b1)
        x = act(functional.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps))
        for j, (w2, b2) in enumerate(fine):
            y = act(x @ w2 + (high_res[1][4 * i + j] + b2 if high_res else b2))
            pieces[(i, j)] = hyper @ y.transpose(-1, -2)  # (P, M, N)
    # Offsets (a, b) then (a2, b2) put pixel (y, x)'s value at row 4y + 2a + a2, column
    # 4x + 2b + b2: a 4x4 pixel shuffle whose channels run over (2a + a2, 2b + b2).
    order = [
        (2 * a + b, 2 * a2 + b2) for a in range(2) for a2 in range(2) for b in range(2) for b2 in range(2)
    ]
    p, m, _ = hyper.shape
    stacked = torch.stack([pieces[key] for key in order], dim=2).reshape(p * m, 16, *hw)
    return functional.pixel_shuffle(stacked, 4).reshape(p, m, 4 * hw[0], 4 * hw[1])


def image_inputs(embeddings: Any) -> list[Any]:
    """The decoder graph's per-image inputs from `SamBackend.encode_pixels`'s payload (a
    tensor for SAM; SAM 2's list: two high-resolution levels, then the image embedding):
    the image embedding, then SAM 2's levels rearranged once by output offset (`_blocked`,
    coarser first). Made once per image, shared by every call."""
    tensors = list(embeddings) if isinstance(embeddings, list | tuple) else [embeddings]
    image = tensors[-1]
    h, w = image.shape[-2:]
    high_res = tensors[:-1]  # finest first
    return [image] + [_blocked(f, h, w, i + 1) for i, f in enumerate(reversed(high_res))]


class PromptBatchDecoder(nn.Module):
    """``(points (1, P, n, 2), labels (1, P, n), iou_floor (1,), *image_inputs(payload)) ->
    (masks (P, 3, 4h, 4w), iou (P, 3))``: multimask point prompts through a transformers
    SAM or SAM 2 `model`'s prompt encoder and mask decoder. The predicted IoUs come before
    the masks, so only the prompts with an IoU above `iou_floor` are upscaled (the
    upscaling is ~40% of the work); the others' masks are zeros. A floor of -inf upscales
    every prompt."""

    def __init__(self, model: Any):
        super().__init__()
        self.inner = model
        # SAM 2 puts an object-score token before the IoU token.
        self.first_token = 1 if hasattr(model.mask_decoder, "obj_score_token") else 0

    def forward(
        self,
        points: torch.Tensor,
        labels: torch.Tensor,
        iou_floor: torch.Tensor,
        image: torch.Tensor,
        *high_res: torch.Tensor,
    ) -> Any:
        model = self.inner
        decoder = model.mask_decoder
        _, c, h, w = image.shape
        sparse, dense = model.prompt_encoder(
            input_points=points, input_labels=labels, input_boxes=None, input_masks=None
        )
        names = ["obj_score_token", "iou_token", "mask_tokens"][1 - self.first_token :]
        output = torch.cat([getattr(decoder, name).weight for name in names], dim=0)
        tokens = torch.cat([output.expand(1, sparse.shape[1], -1, -1), sparse.to(output.dtype)], dim=2)
        flat = (image + dense).reshape(1, c, h * w).transpose(-1, -2)
        position = model.get_image_wide_positional_embeddings().reshape(1, c, h * w).transpose(-1, -2)
        tokens, image_out = _two_way(decoder.transformer, tokens, flat, position)
        first_mask = self.first_token + 2  # the multimask tokens (the single-mask one is skipped)
        count = decoder.num_mask_tokens - 1
        hyper = torch.stack(
            [decoder.output_hypernetworks_mlps[1 + i](tokens[0, :, first_mask + i, :]) for i in range(count)],
            dim=1,
        )  # (P, 3, C/8)
        iou = decoder.iou_prediction_head(tokens[0, :, self.first_token, :])[:, 1:]
        keep = torch.nonzero(iou.amax(dim=1) > iou_floor).reshape(-1)
        kept = _masks(decoder, image_out[keep], list(high_res), hyper[keep], (h, w))
        masks = torch.zeros(iou.shape[0], *kept.shape[1:], dtype=kept.dtype)
        masks[keep] = kept
        return masks, iou
