"""Worker threads that run the job queue, fairly, behind interactive requests.

Scheduling rules:

- the unit of work is one image of one job; a worker claims it in the database (state
  ``running``), processes it, and commits its result;
- among the jobs with pending images, one-image jobs (priority 1) go first; within a
  priority, the job served least recently goes next, so concurrent batches advance
  round-robin, one image each;
- interactive requests (``/query``, ``/prompt``, ``/search``) go first, but a batch never
  starves: before a worker starts an image it waits for the interactive requests that
  are in flight *at that moment* to end, and for none that arrive while it waits. So the
  requests in flight when a worker becomes free all run before its next image starts,
  and under a stream of requests that never leaves the count at zero the worker still
  starts it once the requests it found have ended: the batch's wait between two images
  is bounded by the longest of those requests, whatever the load (a request arriving
  while the worker waits may run beside the image it then starts);
- a batch keeps a reserved share of its pace (`batch_share`, ``SEGLENS_BATCH_SHARE``).
  With share *s* and *u* the recent time of an image run without interactive load (until
  one has: the fastest image since the queue was last empty, or a 5 s guess), an
  image's *budget* is ``u / (s * workers)``: each image is due one budget after the
  previous one ended (the first, one budget after it started). A finished image moves the
  due time on by one budget, kept within one budget of the present (a sliding window of
  about two images: a batch that ran ahead banks at most one image, one that fell far
  behind owes at most one). While an image is overdue the batch is *behind*: the worker
  does not wait for interactive requests before its next image, its thread returns to the
  request threads' CPU priority (where the OS lets a process raise a thread's priority
  again: root, ``CAP_SYS_NICE`` or ``RLIMIT_NICE``; elsewhere it stays niced), and
  interactive requests run one at a time, in arrival order, the others waiting at the
  gate. Once the image is overdue by its budget less *u* (ageing), no new interactive
  request starts until it ends: from then on it shares the machine only with the
  requests already running. So a batch that stays behind still ends an image about
  every budget (one budget after the last one ended, it has had *u* alone), which is
  the reserved share of its unloaded pace, less what other processes and the requests
  already running take. A request's wait at the gate is bounded by the
  image in flight. On pace none of this applies: the worker yields and runs ``nice``
  steps lower as above. Share 0 turns the reserve off (interactive first, whatever the
  batch's pace); so does an executor whose images run elsewhere
  (`yield_to_interactive` False: holding requests back frees nothing here);
- `stop` lets in-flight images finish (up to a grace period) and starts nothing new.

The models are shared by all workers (the pipeline runs one call at a time per model:
mask generation and the embedder can overlap), so more than one worker mostly overlaps
decoding, matching and database writes with model work.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from seglens.services.errors import Busy
from seglens.storage.jobs_repo import ClaimedItem, JobRepository

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    """`process(claimed)` handles one claimed image and must not raise; `ready(timeout)`
    says whether the models are loaded (workers wait until they are). With
    `yield_to_interactive` False, interactive requests do not hold batch work back.
    `batch_share` (0 to 1) is the fraction of its unloaded pace a batch keeps under
    interactive load (module docstring); `clock` (monotonic seconds) is for tests."""

    def __init__(
        self,
        jobs: JobRepository,
        process: Callable[[ClaimedItem], None],
        *,
        workers: int = 1,
        max_interactive: int = 8,
        ready: Callable[[float], bool] = lambda _timeout: True,
        idle_poll_s: float = 2.0,
        nice: int = 0,
        yield_to_interactive: bool = True,
        batch_share: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if not 0.0 <= batch_share <= 1.0:
            raise ValueError(f"batch_share must be between 0 and 1, got {batch_share}")
        self._jobs = jobs
        self._process = process
        self._ready = ready
        self.workers = workers
        self.max_interactive = max_interactive
        self._idle_poll_s = idle_poll_s
        self.nice = nice
        # False when images run elsewhere (Ray actors): holding them back frees nothing here.
        self.yield_to_interactive = yield_to_interactive
        self._cond = threading.Condition()
        self._pick_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._interactive = 0
        # Interactive requests are numbered as they enter; a worker about to start an image
        # waits only while one numbered at or below the last number issued then is open.
        self._issued = 0
        self._open: set[int] = set()
        self._in_flight = 0
        self._wakeups = 0
        self._tick = 0
        self._served: dict[str, int] = {}
        self._mean_item_s: float | None = None
        # The reserved pace (module docstring): when the next image is due (None while
        # no batch runs), the recent image time without load, and the fastest one seen.
        self.batch_share = batch_share
        self._clock = clock
        self._due: float | None = None
        self._solo_item_s: float | None = None
        self._fastest_item_s: float | None = None
        self._running = 0  # interactive requests past the gate
        self._waiting: set[int] = set()  # tickets held at the gate while the batch is behind
        self._workers_tid: list[tuple[int, int]] = []  # (native id, base priority)
        self._boosted = False
        self._boost_refused = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"seglens-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace_s: float) -> bool:
        """Start no new image; wait up to `grace_s` for in-flight ones. True when every
        worker has finished, False when some image was still in flight (abandoned)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + grace_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wake(self) -> None:
        """Tell idle workers that new work may be waiting."""
        with self._cond:
            self._wakeups += 1
            self._cond.notify_all()

    # -- interactive priority ---------------------------------------------------------------
    @contextmanager
    def interactive(self) -> Iterator[None]:
        """Run the block ahead of batch work: a worker about to start an image waits until
        this block ends if it was already running when the worker began waiting (see the
        module docstring). While a batch is behind its reserved pace, the block first
        waits its turn (one at a time, or until the image in flight ends once the batch
        is far behind); a request waiting counts as in flight. Raises `Busy` when
        `max_interactive` interactive requests are already in flight. Not re-entrant:
        a block must not open another one (it would wait for itself while a batch is
        behind)."""
        with self._cond:
            if self._interactive >= self.max_interactive:
                raise Busy(
                    "too_many_requests",
                    f"{self._interactive} interactive requests are in flight; try again shortly",
                    1,
                )
            self._interactive += 1
            self._issued += 1
            ticket = self._issued
            self._open.add(ticket)
            try:
                self._pass_gate(ticket)
            except BaseException:
                self._interactive -= 1
                self._open.discard(ticket)
                self._cond.notify_all()
                raise
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._interactive -= 1
                self._running -= 1
                self._open.discard(ticket)
                self._cond.notify_all()

    def _pass_gate(self, ticket: int) -> None:
        """Wait (holding `_cond`) while the batch is behind its pace and another request
        runs or waits ahead of this one (one at a time, in ticket order), or at all while
        it is a whole budget behind."""
        if not self._behind():
            return
        self._boost(True)
        self._waiting.add(ticket)
        try:
            while (
                self._behind()
                and (self._far_behind() or self._running > 0 or ticket != min(self._waiting))
                and not self._stopping.is_set()
            ):
                self._cond.wait(0.5)
        finally:
            self._waiting.discard(ticket)
            self._cond.notify_all()

    # -- introspection ----------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def interactive_in_flight(self) -> int:
        return self._interactive

    @property
    def interactive_waiting(self) -> int:
        """Interactive requests held at the gate while a batch is behind its pace."""
        return len(self._waiting)

    @property
    def batch_behind(self) -> bool:
        """Whether a batch is behind its reserved pace while an image is in flight
        (interactive requests then wait their turn)."""
        with self._cond:
            return self._behind()

    def estimate_wait_s(self, images: int) -> float:
        """Rough time to get through `images` images at the recent pace."""
        per_image = self._mean_item_s if self._mean_item_s is not None else 5.0
        return images * per_image / self.workers

    # -- the worker loop ----------------------------------------------------------------------
    def _claim(self) -> ClaimedItem | None:
        with self._pick_lock:
            candidates = self._jobs.runnable()
            if len(self._served) > 4 * len(candidates) + 64:
                live = {job_id for job_id, _ in candidates}
                self._served = {k: v for k, v in self._served.items() if k in live}
            # Stable sort: among jobs never served, the oldest first.
            ordered = sorted(candidates, key=lambda c: (-c[1], self._served.get(c[0], -1)))
            for job_id, _priority in ordered:
                claimed = self._jobs.claim_next(job_id)
                if claimed is not None:
                    self._tick += 1
                    self._served[job_id] = self._tick
                    return claimed
            return None

    def _lower_priority(self) -> None:
        """Run this worker thread (and the torch threads it starts) `nice` steps below
        the request threads, so the CPU goes to interactive requests first. Linux only:
        elsewhere `setpriority` on a thread id is not per thread, so it is skipped."""
        if self.nice <= 0 or not sys.platform.startswith("linux"):
            return
        try:
            thread = threading.get_native_id()
            # Relative to the thread's own priority: a server started under `nice` keeps
            # its workers below its request threads.
            base = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, base + self.nice))
        except OSError as error:
            log.warning("could not lower the worker's priority", extra={"fields": {"error": str(error)}})
            return
        with self._cond:
            self._workers_tid.append((thread, base))
            if self._boosted:
                self._set_priorities(boosted=True)

    def _boost(self, on: bool) -> None:
        """Enter (True) or leave the boost of a batch behind its pace; holding `_cond`."""
        if on != self._boosted:
            self._boosted = on
            self._set_priorities(boosted=on)

    def _set_priorities(self, *, boosted: bool) -> None:
        for thread, base in self._workers_tid:
            try:
                os.setpriority(os.PRIO_PROCESS, thread, base if boosted else min(19, base + self.nice))
            except OSError as error:  # raising a priority needs CAP_SYS_NICE or RLIMIT_NICE
                if not self._boost_refused:
                    self._boost_refused = True
                    log.info(
                        "a batch behind its pace keeps its worker's lower CPU priority (the OS "
                        "refused to raise it); interactive requests still run one at a time",
                        extra={"fields": {"error": str(error)}},
                    )

    # -- the reserved pace ----------------------------------------------------------------
    def _pacing(self) -> bool:
        return self.batch_share > 0 and self.yield_to_interactive

    def _overdue(self) -> bool:
        return self._pacing() and self._due is not None and self._clock() >= self._due

    def _behind(self) -> bool:
        """Overdue while an image is in flight (requests can free CPU for it)."""
        return self._in_flight > 0 and self._overdue()

    def _far_behind(self) -> bool:
        """Overdue by a budget less an unloaded image: no new interactive request starts
        until the image in flight ends."""
        if self._due is None:
            return False
        return self._clock() >= self._due + max(0.0, self._budget_s() - self._unloaded_s())

    def _unloaded_s(self) -> float:
        """The recent time of an image without interactive load; until one has run so,
        the fastest image since the queue was last empty, or a guess of 5 s."""
        return max(self._solo_item_s or self._fastest_item_s or 5.0, 1e-3)

    def _budget_s(self) -> float:
        """Seconds an image may take at the reserved pace."""
        return self._unloaded_s() / (self.batch_share * self.workers)

    def _note_image(self, elapsed: float, *, solo: bool) -> None:
        """Account a finished image (holding `_cond`): its time, and the pace's due time."""
        if solo:
            previous = self._solo_item_s
            self._solo_item_s = elapsed if previous is None else 0.8 * previous + 0.2 * elapsed
        if self._fastest_item_s is None or elapsed < self._fastest_item_s:
            self._fastest_item_s = elapsed
        if self._due is not None and self._pacing():
            budget, now = self._budget_s(), self._clock()
            self._due = min(max(self._due, now - budget) + budget, now + budget)
        if not self._overdue():
            self._boost(False)

    def _yield_to_interactive(self) -> None:
        """Wait (holding `_cond`) until the interactive requests in flight now have
        ended; requests admitted meanwhile do not extend the wait."""
        barrier = self._issued
        while (
            self.yield_to_interactive
            and self._open
            and min(self._open) <= barrier
            and not self._overdue()
            and not self._stopping.is_set()
        ):
            self._cond.wait(0.5)

    def _run_image(self, claimed: ClaimedItem) -> None:
        with self._cond:
            started = self._clock()
            issued, quiet = self._issued, self._interactive == 0
            if self._due is None and self._pacing():
                self._due = started + self._budget_s()
        self._process(claimed)
        with self._cond:
            elapsed = self._clock() - started
            previous = self._mean_item_s
            self._mean_item_s = elapsed if previous is None else 0.8 * previous + 0.2 * elapsed
            self._note_image(elapsed, solo=quiet and self._issued == issued)
            self._cond.notify_all()

    def _run(self) -> None:
        self._lower_priority()
        while not self._stopping.is_set():
            if not self._ready(1.0):
                self._stopping.wait(1.0)
                continue
            with self._cond:
                self._yield_to_interactive()
                if self._stopping.is_set():
                    return
                wakeups = self._wakeups
                self._in_flight += 1
                if self._overdue():
                    self._boost(True)
            claimed = None
            try:
                claimed = self._claim()
                if claimed is not None:
                    self._run_image(claimed)
            except Exception:
                log.exception("worker error")  # the loop must survive anything
                self._stopping.wait(1.0)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()
            if claimed is None:
                with self._cond:
                    # No batch: the pace (and its fallback image time) starts again.
                    self._due = self._fastest_item_s = None
                    self._boost(False)
                    if self._wakeups == wakeups and not self._stopping.is_set():
                        self._cond.wait(self._idle_poll_s)
