"""Batch progress under interactive load: a real `seglens serve` (tiny profile, CPU, one worker).

One server, fresh data directory, three phases:

1. idle batch: a `BATCH_IMAGES`-image job alone (images per second);
2. idle queries: `CLIENTS` clients sending ``/query`` (cached regions, overlay included)
   for `IDLE_QUERY_S` seconds, no batch (p50, p95);
3. load: the same clients for `LOAD_S` seconds while a second job of `BATCH_IMAGES`
   other images runs: the batch's images per second (against phase 1, target >= 0.5)
   and ``/query`` p50/p95 while it runs (against phase 2, target p95 <= 1.5x).

A client sends one query, waits for the answer, pauses `THINK_S` (a person dragging a
slider) and sends the next; on 429 (the documented ``too_many_requests`` past
``SEGLENS_MAX_INTERACTIVE``) it waits ``Retry-After`` seconds. 429s are counted apart;
any other failure is an error. Everything runs on loopback and stops by itself (the job
is cancelled at the end of the window if it has not finished). The load generator
shares the machine's cores with the server.

``BENCH_LOAD_S`` shortens or lengthens phase 3 (seconds, default 60) and
``BENCH_LOAD_BATCH_SHARE`` sets the server's ``SEGLENS_BATCH_SHARE`` (default: the
server's default), e.g. 0 for the scheduler without a reserved batch pace.

``run(results_dir)`` returns the figures (and writes ``results_dir/load-latest.json``);
``python -m benchmarks.bench_load`` prints them.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_server import _percentiles, _photos, _Server

__all__ = ["run"]

CLIENTS = 20
LOAD_S = float(os.environ.get("BENCH_LOAD_S", "60"))
BATCH_SHARE = os.environ.get("BENCH_LOAD_BATCH_SHARE")
IDLE_QUERY_S = 20.0
BATCH_IMAGES = 30
PROBES = 4
THINK_S = 0.05
_QUERY = "cat, cup"

# (started, ended, HTTP status or -1 for a transport error), monotonic seconds.
_Sample = tuple[float, float, int]


def _client(base_url: str, probes: list[str], deadline: float, seed: int, out: list[_Sample]) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=120) as client:
        while (now := time.monotonic()) < deadline:
            body = {
                "image_id": rng.choice(probes),
                "query": _QUERY,
                "threshold": round(rng.uniform(0.1, 0.5), 2),
            }
            retry_after = 0.0
            try:
                response = client.post("/query", json=body)
                status = response.status_code
                if status == 429:
                    retry_after = float(response.headers.get("Retry-After", "1"))
            except httpx.HTTPError:
                status = -1
            out.append((now, time.monotonic(), status))
            time.sleep(max(0.0, min(retry_after or THINK_S, deadline - time.monotonic())))


def _clients(server: _Server, probes: list[str], seconds: float) -> tuple[list[_Sample], threading.Event]:
    """Start the clients; returns their (shared) samples and an event set once all ended."""
    samples: list[_Sample] = []
    deadline = time.monotonic() + seconds
    base_url = f"http://127.0.0.1:{server.port}/api/v1"
    threads = [
        threading.Thread(target=_client, args=(base_url, probes, deadline, n, samples), daemon=True)
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    done = threading.Event()

    def join() -> None:
        for thread in threads:
            thread.join()
        done.set()

    threading.Thread(target=join, daemon=True).start()
    return samples, done


def _summary(
    samples: list[_Sample], start: float = float("-inf"), end: float = float("inf")
) -> dict[str, Any]:
    """Latency of the answered queries that started and ended within [start, end]."""
    inside = [s for s in samples if s[0] >= start and s[1] <= end]
    ok = [(b - a) * 1000 for a, b, status in inside if status == 200]
    return {
        **(_percentiles(ok) if ok else {"n": 0, "p50": float("nan"), "p95": float("nan")}),
        "requests": len(inside),
        "status_429": sum(1 for s in inside if s[2] == 429),
        "errors": sum(1 for s in inside if s[2] not in (200, 429)),
    }


def _idle_batch(server: _Server, ids: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    server.wait([server.submit(ids, _QUERY)])
    elapsed = time.monotonic() - started
    return {"images": len(ids), "elapsed_s": round(elapsed, 2), "images_per_s": round(len(ids) / elapsed, 3)}


def _loaded_batch(server: _Server, ids: list[str], probes: list[str]) -> dict[str, Any]:
    """The clients for `LOAD_S`; the job is submitted once they have run 2 s."""
    samples, clients_done = _clients(server, probes, LOAD_S)
    window_end = time.monotonic() + LOAD_S
    time.sleep(2.0)  # the clients reach their steady state before the batch starts
    submitted = time.monotonic()
    job = server.submit(ids, _QUERY)
    status, done = "queued", 0
    while time.monotonic() < window_end:
        answer = server.client.get(f"/jobs/{job}").json()
        status, done = answer["status"], int(answer["progress"]["done"])
        if status in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.25)
    ended = time.monotonic()
    if status not in ("completed", "failed", "cancelled"):
        server.client.post(f"/jobs/{job}/cancel")
    clients_done.wait()
    elapsed = ended - submitted
    return {
        "images": len(ids),
        "images_done": done,
        "status_at_end": status,
        "elapsed_s": round(elapsed, 2),
        "images_per_s": round(done / elapsed, 3),
        "query_during_batch": _summary(samples, submitted, ended),
        "query_whole_window": _summary(samples),
    }


def run(results_dir: Path) -> dict[str, Any]:
    """Run the three phases; returns (and saves) the figures."""
    results_dir = Path(results_dir)
    load_before = os.getloadavg()  # the machine's own load: the figures move with it
    with tempfile.TemporaryDirectory(prefix="seglens-bench-load-") as tmp:
        root = Path(tmp)
        models = root / "models"
        models.mkdir()
        server = _Server(root, models, {"SEGLENS_BATCH_SHARE": BATCH_SHARE} if BATCH_SHARE else None)
        try:
            probes = server.upload(_photos(PROBES, seed=99))
            idle_ids = server.upload(_photos(BATCH_IMAGES, seed=1))
            load_ids = server.upload(_photos(BATCH_IMAGES, seed=2))
            for probe in probes:  # segment the probes once; later queries read the cache
                server.query_ms(probe)
            idle_batch = _idle_batch(server, idle_ids)
            idle_samples, idle_done = _clients(server, probes, IDLE_QUERY_S)
            idle_done.wait()
            idle_query = _summary(idle_samples)
            loaded = _loaded_batch(server, load_ids, probes)
        finally:
            server.close()
    during = loaded["query_during_batch"]
    report: dict[str, Any] = {
        "setup": f"real `seglens serve`, tiny profile (random weights), CPU, 1 worker; {CLIENTS} `/query` "
        f"clients ({THINK_S * 1000:.0f} ms pause, Retry-After honoured) on {PROBES} cached images; "
        f"{BATCH_IMAGES}-image batches; {LOAD_S:.0f} s under load; "
        f"SEGLENS_BATCH_SHARE {BATCH_SHARE or 'default'}",
        "machine_load_average_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
        "idle_batch": idle_batch,
        "idle_query": idle_query,
        "loaded": loaded,
        "batch_throughput_ratio": round(loaded["images_per_s"] / idle_batch["images_per_s"], 3),
        "query_p50_ratio": round(during["p50"] / idle_query["p50"], 3),
        "query_p95_ratio": round(during["p95"] / idle_query["p95"], 3),
        "errors": idle_query["errors"] + loaded["query_whole_window"]["errors"],
        "targets": {"batch_throughput_ratio": ">= 0.5", "query_p95_ratio": "<= 1.5", "errors": "0"},
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "load-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).resolve().parent / "results"), indent=2))
