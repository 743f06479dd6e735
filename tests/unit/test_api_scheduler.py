"""The scheduler on its own: priorities of threads, the interactive gate, shutdown."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from fakes import HeldRequests, ScriptedQueue
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


def test_a_stream_of_interactive_requests_never_at_zero_does_not_starve_the_batch():
    """Requests overlap (a new one starts before the oldest ends), so the count of
    requests in flight never falls to zero; the batch must still get its next image."""
    first_started, first_release, second_started = threading.Event(), threading.Event(), threading.Event()
    seen_in_flight: list[int] = []

    def process(_claimed):
        if not first_started.is_set():
            first_started.set()
            first_release.wait(30)
        else:
            seen_in_flight.append(scheduler.interactive_in_flight)
            second_started.set()

    scheduler = Scheduler(ScriptedQueue(2), process, workers=1)  # type: ignore[arg-type]
    requests = HeldRequests(scheduler)
    scheduler.start()
    try:
        assert first_started.wait(30)
        requests.begin()  # arrives while the first image is in flight
        first_release.set()
        # The stream: each step starts a request, then ends the oldest. Steps wait for the
        # worker's progress (the event), not for a time: the batch needs only a few.
        for _ in range(600):
            requests.begin()
            requests.end_oldest()
            assert scheduler.interactive_in_flight >= 1
            if second_started.wait(0.05):
                break
        assert second_started.is_set(), "the batch starved behind a stream of interactive requests"
        assert seen_in_flight and seen_in_flight[0] >= 1  # it ran beside a newer request
    finally:
        requests.end_all()
        first_release.set()
        assert scheduler.stop(5.0)


def test_a_worker_waits_for_the_interactive_requests_already_in_flight():
    """Interactive first: an image does not start while a request that was in flight
    when the worker became free is still open."""
    at_gate, started = threading.Event(), threading.Event()
    open_when_started: list[bool] = []

    def ready(_timeout):
        at_gate.set()
        return True

    def process(_claimed):
        open_when_started.append(bool(requests.open))
        started.set()

    scheduler = Scheduler(ScriptedQueue(1), process, workers=1, ready=ready)  # type: ignore[arg-type]
    requests = HeldRequests(scheduler)
    requests.begin()
    scheduler.start()
    try:
        assert at_gate.wait(30)
        assert not started.is_set()
        requests.end_all()
        assert started.wait(30)
        assert open_when_started == [False]
    finally:
        requests.end_all()
        assert scheduler.stop(5.0)
