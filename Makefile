# Blindspot developer commands. `make demo` and `make test` work on a fresh machine with Python 3.11.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck stack-up stack-down clean browser coco-aot


$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

install: $(UV)
	$(UV) sync --frozen --all-groups
	@$(PY) -c "import shared, services, blindspot" && echo "installed into $(VENV)"

# The COCO engine's kernels compiled ahead of time (shared/metrics/coco_native.py): `blindspot eval coco`
# then starts without numba (~0.7 s less); without it the same kernels run through numba's JIT.
coco-aot: install
	$(PY) -c "from shared.metrics.coco_native import build_aot; print(build_aot())"

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck:
	$(VENV)/bin/mypy shared services blindspot

# Debian's chromium for the browser tests (tests/e2e); they skip, saying why, where it cannot be installed.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } || \
	  echo "chromium not installed: browser tests will be skipped"

test: install browser coco-aot
	$(VENV)/bin/blindspot stack deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy shared services blindspot
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/blindspot stack up
	$(VENV)/bin/blindspot demo

stack-up: install
	$(VENV)/bin/blindspot stack up

stack-down:
	$(VENV)/bin/blindspot stack down

clean:
	rm -rf .stack .pytest_cache .mypy_cache .ruff_cache
