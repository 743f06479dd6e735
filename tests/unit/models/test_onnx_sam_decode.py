"""`OnnxSamRuntime.decode` splits a batch of prompts into decoder calls, in order, and gives
the decoder session's pooled activations back on the last call only (a fake session at the
seam records what it was asked)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from seglens.models.onnx_sam import OnnxSamRuntime

SHRINK = "memory.enable_memory_arena_shrinkage"


class FakeDecoder:
    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, str]] = []

    def run(self, _outputs, feed, options=None):
        points = feed["points"]
        self.calls.append((points.copy(), options.get_run_config_entry(SHRINK) if options else ""))
        p = points.shape[1]
        h, w = feed["image"].shape[-2:]
        masks = np.broadcast_to(points[0, :, 0, :1, None, None], (p, 3, 4 * h, 4 * w)).astype(np.float32)
        iou = np.repeat(points[0, :, 0, :1], 3, axis=1).astype(np.float32)
        return [np.ascontiguousarray(masks), iou]


@pytest.mark.parametrize("prompts", [1, 8, 19])
def test_decode_chunks_in_order_and_shrinks_once(prompts):
    fake = FakeDecoder()
    runtime = OnnxSamRuntime(None, fake, levels=1, input_hw=(64, 64))
    payload = torch.zeros(1, 4, 2, 2)
    points = torch.arange(prompts, dtype=torch.float32).reshape(1, prompts, 1, 1).repeat(1, 1, 1, 2)
    labels = torch.ones(1, prompts, 1, dtype=torch.int64)
    masks, iou = runtime.decode(payload, points, labels)
    sizes = [len(call[0][0]) for call in fake.calls]
    assert sizes == [min(8, prompts - s) for s in range(0, prompts, 8)]
    assert [call[1] for call in fake.calls] == [""] * (len(sizes) - 1) + ["cpu:0"]
    # Results come back in prompt order, whatever the chunking.
    assert masks.shape == (prompts, 3, 8, 8) and iou.shape == (prompts, 3)
    assert torch.equal(iou[:, 0], torch.arange(prompts, dtype=torch.float32))
    assert torch.equal(masks[:, 1, 5, 7], torch.arange(prompts, dtype=torch.float32))
