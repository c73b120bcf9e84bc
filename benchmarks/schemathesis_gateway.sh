#!/usr/bin/env bash
# The full schemathesis run over the gateway's OpenAPI (issue 10, item 4): coverage phase + 40 generated
# cases per operation (> 1,000 requests, ~2,000 here), asserting no 5xx and the one error shape.
# `make test` runs the same test with 5 cases per operation and no coverage phase.
set -euo pipefail
cd "$(dirname "$0")/.."
BLINDSPOT_SCHEMATHESIS_FULL=1 BLINDSPOT_SCHEMATHESIS_EXAMPLES="${EXAMPLES:-40}" \
  .venv/bin/pytest -q -s -p no:cacheprovider -W ignore tests/integration/gateway/test_schemathesis.py "$@"
