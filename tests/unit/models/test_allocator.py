"""`device.tune_allocator`: glibc's malloc thresholds for CPU inference, set once per process
when a model is loaded on the CPU, and left alone when switched off."""

from __future__ import annotations

import ctypes
import platform

import pytest

from seglens.models import device, loading

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@pytest.fixture
def calls(monkeypatch):
    """Record mallopt calls instead of making them (the test process keeps its allocator)."""
    seen: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            seen.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(device, "_allocator_tuned", False)
    return seen


def test_sets_both_thresholds_once(calls):
    assert device.tune_allocator() is True
    assert device.tune_allocator() is True
    assert sorted(calls) == sorted(
        [(-3, device.ALLOCATOR["mmap_threshold"]), (-1, device.ALLOCATOR["trim_threshold"])]
    )


def test_switched_off_leaves_malloc_alone(calls, monkeypatch):
    monkeypatch.setattr(device, "ALLOCATOR", None)
    assert device.tune_allocator() is False
    assert calls == []


def test_a_refused_setting_is_reported(monkeypatch):
    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            return 0

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(device, "_allocator_tuned", False)
    assert device.tune_allocator() is False


def test_loading_on_the_cpu_tunes_it(calls, models_dir):
    loading.load_model("tiny-clip", models_dir, device="cpu", dtype="float32")
    assert len(calls) == 2
