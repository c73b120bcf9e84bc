#!/usr/bin/env bash
# The full schemathesis run over the ingest service's OpenAPI (issue 10, item 3): coverage phase + 60
# generated cases per operation (> 1,000 requests), asserting no 5xx and the one error shape.
# `make test` runs the same test with 8 cases per operation and no coverage phase.
set -euo pipefail
cd "$(dirname "$0")/.."
BLINDSPOT_SCHEMATHESIS_FULL=1 BLINDSPOT_SCHEMATHESIS_EXAMPLES="${EXAMPLES:-60}" \
  .venv/bin/pytest -q -s -p no:cacheprovider -W ignore tests/integration/reliability/test_ingest_schemathesis.py "$@"
