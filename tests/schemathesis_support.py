"""A bounded schemathesis run (the CLI, every default check) against a live server.

`fuzz` writes a config that gives the path parameters real ids (so the job and image routes
are exercised past 404), gives the destructive operations ids of their own (a second job,
a third image; `DELETE /history` only entries from before 2000), runs ``schemathesis run``
with a fixed seed and returns the failures of its JSON report.

Two answers are expected of schema-valid requests beyond schemathesis' defaults, because
JSON Schema cannot describe what makes them fail (docs/api.md, "What the schema cannot
say"):

- ``POST /images``: 400/413/415 for bytes that are not a decodable image within the limits;
- ``POST /images/{image_id}/prompt``: 422 for a point outside the image (its size is data,
  not schema) or a box whose corners are not ``x0 < x1, y0 < y1``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from live_server import FINISHED, LiveServer, photos

SEED = 20261125
DEFAULT_ACCEPTED = ["2XX", "3XX", "401", "403", "404", "409", "429", "5XX"]
DATA_DEPENDENT = {
    "POST /api/v1/images": ["400", "413", "415"],
    "POST /api/v1/images/{image_id}/prompt": ["422"],
}


def prepare(server: LiveServer) -> dict[str, str]:
    """Three images and two finished jobs: ids for the config."""
    images = server.upload(photos(3, seed=5))
    jobs = []
    for _ in range(2):
        response = server.client.post(
            "/jobs", json={"image_ids": images[:2], "query": "cat, -grass", "params": {"points_per_side": 4}}
        )
        assert response.status_code == 201, response.text
        jobs.append(response.json()["id"])
    for job_id in jobs:
        server.wait(job_id, lambda j: j["status"] in FINISHED)
    return {"image": images[0], "job": jobs[0], "spare_image": images[2], "spare_job": jobs[1]}


def _config(ids: dict[str, str], token: str | None, extra: dict[str, str]) -> str:
    lines = [f'headers = {{ Authorization = "Bearer {token}" }}', ""] if token else []
    lines += [
        "[parameters]",
        f'"path.image_id" = "{ids["image"]}"',
        f'"path.job_id" = "{ids["job"]}"',
        *(f'"path.{name}" = "{value}"' for name, value in extra.items()),
        "",
    ]
    # `include-name` ("METHOD /path"): `include-path` with `include-method` matches either
    # one in schemathesis 4.32, not both.
    pinned = [
        ("DELETE /api/v1/jobs/{job_id}", f'"path.job_id" = "{ids["spare_job"]}"'),
        ("DELETE /api/v1/images/{image_id}", f'"path.image_id" = "{ids["spare_image"]}"'),
        ("DELETE /api/v1/history", '"query.until" = "2000-01-01T00:00:00Z"'),
    ]
    for name, parameter in pinned:
        lines += ["[[operations]]", f'include-name = "{name}"', f"parameters = {{ {parameter} }}", ""]
    for name, statuses in DATA_DEPENDENT.items():
        accepted = json.dumps(DEFAULT_ACCEPTED + statuses)
        lines += ["[[operations]]", f'include-name = "{name}"']
        lines += [f"checks.positive_data_acceptance.expected-statuses = {accepted}", ""]
    return "\n".join(lines)


def fuzz(
    server: LiveServer,
    ids: dict[str, str],
    workdir: Path,
    *,
    token: str | None = None,
    extra_parameters: dict[str, str] | None = None,
    max_examples: int = 5,
) -> tuple[list[dict[str, Any]], str]:
    """Run schemathesis once; returns (failures of the JSON report, the console output)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(_config(ids, token, extra_parameters or {}))
    report = workdir / "report.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{server.url}/openapi.json",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--continue-on-failure",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    output = f"{run.stdout[-12000:]}\n{run.stderr[-3000:]}\n({time.monotonic() - started:.0f} s)"
    assert report.exists(), output
    data = json.loads(report.read_text())
    return list(data["failures"]) + list(data["errors"]), output
