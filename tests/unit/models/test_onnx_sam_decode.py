"""`OnnxSamRuntime.decode` splits a batch of prompts into decoder calls, in order, has the
graph write its outputs into the arrays it returns, and gives the decoder session's pooled
activations back on the last call only (a fake session at the seam records what it was
asked and writes where it was told)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from seglens.models.onnx_sam import OnnxSamRuntime

SHRINK = "memory.enable_memory_arena_shrinkage"


class FakeBinding:
    def __init__(self) -> None:
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: dict[str, np.ndarray] = {}

    def bind_cpu_input(self, name, array):
        self.inputs[name] = array

    def bind_output(self, name, device, device_id, dtype, shape, pointer):
        assert (device, device_id, dtype) == ("cpu", 0, np.float32)
        buffer = (ctypes.c_float * int(np.prod(shape))).from_address(pointer)
        self.outputs[name] = np.frombuffer(buffer, np.float32).reshape(shape)


class FakeDecoder:
    """Writes prompt x's point coordinate into its masks and first IoU."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, str]] = []
        self.floors: list[float] = []

    def io_binding(self):
        return FakeBinding()

    def run_with_iobinding(self, binding, options=None):
        points = binding.inputs["points"]
        self.calls.append((points.copy(), options.get_run_config_entry(SHRINK) if options else ""))
        self.floors.append(float(binding.inputs["iou_floor"][0]))
        x = points[0, :, 0, 0]
        binding.outputs["masks"][...] = x[:, None, None, None]
        binding.outputs["iou"][...] = x[:, None]
        binding.outputs = {}


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


def test_decode_passes_the_iou_floor():
    fake = FakeDecoder()
    runtime = OnnxSamRuntime(None, fake, levels=1, input_hw=(64, 64))
    points, labels = torch.zeros(1, 9, 1, 2), torch.ones(1, 9, 1, dtype=torch.int64)
    runtime.decode(torch.zeros(1, 4, 2, 2), points, labels)
    runtime.decode(torch.zeros(1, 4, 2, 2), points, labels, 0.25)
    assert fake.floors == [float("-inf")] * 2 + [0.25] * 2
