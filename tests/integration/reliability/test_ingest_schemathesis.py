"""Property-based API fuzzing (schemathesis) over the ingest service's own OpenAPI: no input gives a 5xx.

The app runs for real (uvicorn, Postgres, SeaweedFS, Redis broker DB 15 with its own key prefix) and every
request carries valid internal headers, so the generated bodies, paths and queries reach the handlers.
Cases per operation: ``BLINDSPOT_SCHEMATHESIS_EXAMPLES`` (default 8, ~150 requests, < 60 s in ``make test``);
``benchmarks/reliability_schemathesis_ingest.sh`` adds the coverage phase and 60 per operation
(> 1,000 requests). Every 4xx has the house error shape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from services.ingest.main import create_app
from shared.internal_auth import internal_headers
from shared.settings import S3Settings
from tests.integration.reliability.servers import ingest_settings, new_workspace, serve_ingest

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("BLINDSPOT_SCHEMATHESIS_EXAMPLES", "8"))
FULL = os.environ.get("BLINDSPOT_SCHEMATHESIS_FULL") == "1"
config = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": FULL}}})
schema = schemathesis.openapi.from_dict(create_app().openapi(), config=config).exclude(
    path_regex=r"^/(healthz|readyz)$"
)
CALLS: list[int] = []


@pytest.fixture(scope="module")
def ingest_url(db_url: str, s3_settings: S3Settings) -> Iterator[str]:
    with serve_ingest(ingest_settings(db_url, s3_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def fuzz_headers(db_url: str) -> dict[str, str]:
    return internal_headers(new_workspace(db_url, "fuzz-ingest"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: Any, ingest_url: str, fuzz_headers: dict[str, str]) -> None:
    response = case.call(base_url=ingest_url, headers=fuzz_headers, timeout=60)
    CALLS.append(response.status_code)
    assert response.status_code < 500, (
        case.method,
        case.formatted_path,
        response.status_code,
        response.text[:500],
    )
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error", "detail"}, body


def test_zz_case_count() -> None:
    """How many generated requests ran (the 1,000-case goal is the benchmarks/ script)."""
    print(f"schemathesis ingest: {len(CALLS)} generated requests, statuses {sorted(set(CALLS))}")
    if CALLS:
        assert len(CALLS) >= (1000 if FULL else EXAMPLES)
