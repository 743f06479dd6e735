"""The scheduler on its own: priorities of threads, the interactive gate, shutdown."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from seglens.services.errors import Busy
from seglens.services.scheduler import Scheduler
from seglens.storage.jobs_repo import ClaimedItem


class _OneItemQueue:
    """Stands in for the job repository: hands out one item, then nothing."""

    def __init__(self):
        self.items = [("job", 0)]

    def runnable(self):
        return list(self.items)

    def claim_next(self, job_id):
        if not self.items:
            return None
        self.items.clear()
        return ClaimedItem(job=None, item=None)  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux only")
def test_workers_run_below_request_threads_in_cpu_priority():
    seen = []
    done = threading.Event()

    def process(_claimed):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        done.set()

    base = os.getpriority(os.PRIO_PROCESS, 0)
    scheduler = Scheduler(_OneItemQueue(), process, workers=1, nice=5)  # type: ignore[arg-type]
    scheduler.start()
    assert done.wait(30)
    assert scheduler.stop(5.0)
    assert seen == [min(19, base + 5)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # this thread untouched


def test_stop_reports_an_image_still_in_flight_after_the_grace_period():
    inside, release = threading.Event(), threading.Event()

    def process(_claimed):
        inside.set()
        release.wait(30)

    scheduler = Scheduler(_OneItemQueue(), process, workers=1)  # type: ignore[arg-type]
    scheduler.start()
    assert inside.wait(30)
    assert scheduler.stop(0.05) is False and scheduler.stopping
    release.set()


def test_the_interactive_gate_refuses_past_its_limit_and_reopens():
    scheduler = Scheduler(_OneItemQueue(), lambda _c: None, workers=1, max_interactive=1)  # type: ignore[arg-type]
    with scheduler.interactive():
        assert scheduler.interactive_in_flight == 1
        with pytest.raises(Busy) as refused, scheduler.interactive():
            pass
    assert refused.value.retry_after_s == 1 and refused.value.code == "too_many_requests"
    with scheduler.interactive():
        assert scheduler.interactive_in_flight == 1
    assert scheduler.interactive_in_flight == 0
