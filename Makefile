# Two commands on a fresh clone with only Python >= 3.11 present:
#   make serve   install what serving needs into .venv if needed (no dev tools), then run the gateway on
#                127.0.0.1:8000, on the database every mcp-gateway command finds (--db, MCP_GATEWAY_DB, else
#                ~/.local/share/mcp-gateway/mcp-gateway.db)
#   make test    install if needed (the dev extras, Chromium for the browser tests, PostgreSQL for the suite's
#                second run), then ruff, mypy --strict, pytest (every database test on SQLite and on PostgreSQL),
#                the MCP conformance suite and the TypeScript tracking SDK's tests

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
SDK := packages/mcp-gateway-tracking
# The tracking SDK is a dependency of the gateway (a path in this repo, installed as a copy by `pip install -e .`);
# installed again in editable mode so that edits to it are live like the gateway's own.
SDK_EDITABLE := $(BIN)/python -m pip install --quiet --no-deps -e ./$(SDK)

.PHONY: serve test lint typecheck chromium postgres pytest conformance ts-sdk bench clean

# Serving needs the package and its dependencies only; the dev extras (pytest, ruff, mypy, schemathesis, ...)
# come with the first target that needs them, so `make test` after `make serve` adds them.
$(STAMP): pyproject.toml $(SDK)/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(SDK_EDITABLE)
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(SDK_EDITABLE)
	@touch $(DEV_STAMP)

serve: $(STAMP)
	$(BIN)/mcp-gateway serve $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BENCH_STAMP)  # mypy checks bench/ too, which imports duckdb
	$(BIN)/mypy

chromium:
	bash scripts/install_chromium.sh

postgres:  # the server binaries; the tests start their own server on a free loopback port
	bash scripts/install_postgres.sh

# Two workers (pytest-xdist), each with its own PostgreSQL server: the suite mostly waits on sockets and child
# processes, so two workers on CI's two cores take about half the time of one.
pytest: $(DEV_STAMP) chromium postgres
	$(BIN)/pytest -q -n 2

conformance: $(DEV_STAMP)
	bash scripts/conformance.sh

ts-sdk: $(STAMP)  # the TypeScript tracking SDK: tsc build, node --test, one test against a real gateway
	bash scripts/ts_sdk.sh

test: lint typecheck pytest conformance ts-sdk

$(BENCH_STAMP): $(DEV_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(SDK_EDITABLE)
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/mcp_throughput.py
	$(BIN)/python bench/tracking_overhead.py
	$(BIN)/python bench/otel_overhead.py
	$(BIN)/python bench/ingest_rate.py
	$(BIN)/python bench/track_rate.py
	$(BIN)/python bench/analytics_questions.py

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache \
		packages/mcp-tracking-ts/node_modules packages/mcp-tracking-ts/dist packages/mcp-tracking-ts/.test-build
