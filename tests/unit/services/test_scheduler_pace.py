"""The scheduler's reserved batch pace (`batch_share`), with a fake clock and fake work.

The clock moves only when a test moves it, so "behind its pace" is decided by the test,
never by how fast the machine is; every wait is on a condition (an event or a counter)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

import pytest

from fakes import HeldRequests, ScriptedQueue
from seglens.services.scheduler import Scheduler

WAIT_S = 30.0  # generous: the machine running the tests may be busy


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Images:
    """Fake image work: image 1 takes 1 s of the fake clock with no request in flight (the
    unloaded time); later ones block until the test releases them."""

    def __init__(self, clock: _Clock):
        self.clock = clock
        self.started = [threading.Event() for _ in range(16)]
        self.release = [threading.Event() for _ in range(16)]
        self.open_requests_at_start: list[int] = []
        self.priorities: list[int] = []
        self.count = 0

    def __call__(self, _claimed) -> None:
        n = self.count
        self.count += 1
        self.open_requests_at_start.append(self.scheduler.interactive_in_flight)
        if sys.platform.startswith("linux"):
            self.priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.started[n].set()
        if n == 0:
            self.clock.now += 1.0
        else:
            assert self.release[n].wait(WAIT_S)

    scheduler: Scheduler


def _scheduler(images: _Images, clock: _Clock, count: int, share: float, **kwargs) -> Scheduler:
    scheduler = Scheduler(
        ScriptedQueue(count),  # type: ignore[arg-type]
        images,
        workers=1,
        batch_share=share,
        clock=clock,
        **kwargs,
    )
    images.scheduler = scheduler
    return scheduler


def _until(condition: Callable[[], bool]) -> bool:
    """Wait for `condition` (polled on an event's timeout, never a fixed sleep)."""
    tick = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        if condition():
            return True
        tick.wait(0.01)
    return condition()


def test_a_batch_keeps_its_reserved_pace_while_requests_never_stop():
    """Share 0.5 and a 1 s unloaded image: each image is due 2 s after the previous one.
    Interactive work never stops (a request stays open throughout); whenever an image is
    overdue, the next starts at once beside it, instead of waiting for it to end."""
    clock = _Clock()
    images = _Images(clock)
    scheduler = _scheduler(images, clock, count=6, share=0.5)
    requests = HeldRequests(scheduler)
    scheduler.start()
    try:
        assert images.started[1].wait(WAIT_S)
        requests.begin()
        for n in range(1, 6):
            assert images.started[n].wait(WAIT_S), f"image {n} waited behind the request"
            # This image runs over two budgets late: still behind once it ends.
            clock.now += 5.0
            assert _until(lambda: scheduler.batch_behind)
            images.release[n].set()
        assert _until(lambda: images.count == 6 and scheduler.in_flight == 0)
        # Images 2-6 each started while a request was open (the old gate waited for it).
        assert all(count >= 1 for count in images.open_requests_at_start[2:])
    finally:
        for event in images.release:
            event.set()
        requests.end_all()
        assert scheduler.stop(5.0)


def test_behind_its_pace_requests_run_one_at_a_time_then_none_start_then_all_again_on_pace():
    """Share 0.5, 1 s unloaded image: image 2 is due at 3 s, with a 2 s budget; from
    4 s (a budget less an unloaded image late) it runs alone."""
    clock = _Clock()
    images = _Images(clock)
    scheduler = _scheduler(images, clock, count=4, share=0.5)
    requests = HeldRequests(scheduler)
    scheduler.start()
    entered: list[str] = []

    def late(name: str) -> threading.Thread:
        def run() -> None:
            with scheduler.interactive():
                entered.append(name)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    try:
        assert images.started[1].wait(WAIT_S)
        # On pace: requests are not held back, however many run.
        requests.begin()
        requests.begin()
        assert scheduler.interactive_in_flight == 2 and not scheduler.batch_behind
        clock.now = 3.5  # image 2 overdue
        assert scheduler.batch_behind
        first = late("first")
        assert _until(lambda: scheduler.interactive_waiting == 1)
        second = late("second")
        assert _until(lambda: scheduler.interactive_waiting == 2)
        assert entered == []
        requests.end_all()  # none running: the waiting ones run, one at a time, in order
        first.join(WAIT_S)
        second.join(WAIT_S)
        assert entered == ["first", "second"]
        requests.begin()  # one runs; the next waits for it
        third = late("third")
        assert _until(lambda: scheduler.interactive_waiting == 1)
        clock.now = 5.5  # late enough to run alone: no request starts, even with none running
        requests.end_all()
        assert scheduler.interactive_waiting == 1 and entered == ["first", "second"]
        # Image 2 ends far behind: image 3 starts at once, and requests run one at a time.
        images.release[1].set()
        assert images.started[2].wait(WAIT_S)
        third.join(WAIT_S)
        assert entered == ["first", "second", "third"]
        assert scheduler.batch_behind
        # Image 3 ends within its budget: back on pace, nothing is held back.
        clock.now += 0.5
        images.release[2].set()
        assert images.started[3].wait(WAIT_S)
        assert not scheduler.batch_behind
        requests.begin()
        requests.begin()
        assert scheduler.interactive_in_flight == 2 and scheduler.interactive_waiting == 0
    finally:
        for event in images.release:
            event.set()
        requests.end_all()
        assert scheduler.stop(5.0)


def test_without_load_a_reserved_share_changes_nothing():
    """No request at all: every image runs at once, none is ever behind, the worker keeps
    its lower priority, and the gate never holds a request."""
    clock = _Clock()
    done = threading.Event()
    seen: list[tuple[bool, int]] = []
    base = os.getpriority(os.PRIO_PROCESS, 0) if sys.platform.startswith("linux") else 0

    def process(_claimed) -> None:
        clock.now += 1.0  # on pace: 1 s per image against a 2 s budget
        linux = sys.platform.startswith("linux")
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if linux else 0
        seen.append((scheduler.batch_behind, nice))
        if len(seen) == 5:
            done.set()

    scheduler = Scheduler(ScriptedQueue(5), process, workers=1, nice=5, batch_share=0.5, clock=clock)  # type: ignore[arg-type]
    scheduler.start()
    try:
        assert done.wait(WAIT_S)
        assert [behind for behind, _ in seen] == [False] * 5
        if sys.platform.startswith("linux"):
            assert {nice for _, nice in seen} == {min(19, base + 5)}
        with scheduler.interactive():
            assert scheduler.interactive_waiting == 0
    finally:
        assert scheduler.stop(5.0)


def test_share_zero_keeps_interactive_first_however_late_the_batch():
    clock = _Clock()
    images = _Images(clock)
    scheduler = _scheduler(images, clock, count=3, share=0.0)
    requests = HeldRequests(scheduler)
    scheduler.start()
    try:
        assert images.started[1].wait(WAIT_S)
        requests.begin()
        clock.now += 1000.0
        assert not scheduler.batch_behind
        images.release[1].set()
        assert _until(lambda: scheduler.in_flight == 0)
        assert not images.started[2].is_set()  # waits for the request it found
        requests.end_all()
        assert images.started[2].wait(WAIT_S)
    finally:
        for event in images.release:
            event.set()
        requests.end_all()
        assert scheduler.stop(5.0)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="raising a thread's priority again needs root (or CAP_SYS_NICE)",
)
def test_a_batch_behind_its_pace_runs_at_the_request_threads_priority_then_lower_again():
    clock = _Clock()
    images = _Images(clock)
    scheduler = _scheduler(images, clock, count=4, share=0.5, nice=5)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    scheduler.start()
    try:
        assert images.started[1].wait(WAIT_S)
        clock.now += 10.0  # image 2 overdue: image 3 starts boosted
        images.release[1].set()
        assert images.started[2].wait(WAIT_S)
        clock.now += 0.5  # image 3 ends well within its budget: image 4 back to nice
        images.release[2].set()
        assert images.started[3].wait(WAIT_S)
        assert images.priorities == [min(19, base + 5), min(19, base + 5), base, min(19, base + 5)]
    finally:
        for event in images.release:
            event.set()
        assert scheduler.stop(5.0)


def test_the_share_is_a_setting_from_the_environment_checked_and_passed_to_the_scheduler(
    monkeypatch, tmp_path
):
    from pydantic import ValidationError

    from seglens.services.runtime import Runtime
    from seglens.settings import Settings

    monkeypatch.setenv("SEGLENS_BATCH_SHARE", "0.25")
    assert Settings().batch_share == 0.25
    monkeypatch.delenv("SEGLENS_BATCH_SHARE")
    assert Settings().batch_share == 0.5
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError):
            Settings(batch_share=bad)
        with pytest.raises(ValueError, match="batch_share"):
            Scheduler(ScriptedQueue(0), lambda _c: None, batch_share=bad)  # type: ignore[arg-type]
    runtime = Runtime(Settings(data_dir=tmp_path, batch_share=0.3))
    try:
        assert runtime.scheduler.batch_share == 0.3
    finally:
        runtime.db.dispose()
