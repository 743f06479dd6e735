"""The OpenAPI schema tells the truth: schemathesis (every default check) against a real
`seglens serve` without a token, with real image and job ids (issue 9.5). The same run
with a token is in test_server_live.py, against that module's server."""

from __future__ import annotations

import httpx
import pytest

from live_server import running_server
from schemathesis_support import fuzz, prepare

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    with running_server(
        tmp_path_factory.mktemp("openapi-fuzz"), models_dir, SEGLENS_MAX_POINTS_PER_SIDE="8"
    ) as live:
        yield live


def test_schema_declares_no_bearer_scheme_and_the_servers_grid_limit(server):
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert "securitySchemes" not in schema.get("components", {})
    grid = schema["components"]["schemas"]["JobParamsIn"]["properties"]["points_per_side"]["anyOf"][0]
    assert grid["maximum"] == 8


def test_schemathesis_finds_nothing_without_a_token(server, tmp_path):
    failures, output = fuzz(server, prepare(server), tmp_path)
    assert failures == [], output
    assert [line for line in server.log_lines() if '"status": 5' in line] == []
