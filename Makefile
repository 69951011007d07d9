# Two commands on a fresh clone with only Python >= 3.11 present:
#   make serve   install into .venv if needed, then run the gateway on 127.0.0.1:8000, on the database every
#                mcp-gateway command finds (--db, MCP_GATEWAY_DB, else ~/.local/share/mcp-gateway/mcp-gateway.db)
#   make test    install if needed (Chromium for the browser tests, PostgreSQL for the suite's second run), then
#                ruff, mypy --strict, pytest (every database test on SQLite and on PostgreSQL) and the MCP
#                conformance suite

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
SDK := packages/mcp-gateway-tracking
# The tracking SDK is a dependency of the gateway (a path in this repo, installed as a copy by `pip install -e .`);
# installed again in editable mode so that edits to it are live like the gateway's own.
SDK_EDITABLE := $(BIN)/python -m pip install --quiet --no-deps -e ./$(SDK)

.PHONY: serve test lint typecheck chromium postgres pytest conformance bench clean

$(STAMP): pyproject.toml $(SDK)/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(SDK_EDITABLE)
	@touch $(STAMP)

serve: $(STAMP)
	$(BIN)/mcp-gateway serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BENCH_STAMP)  # mypy checks bench/ too, which imports duckdb
	$(BIN)/mypy

chromium:
	bash scripts/install_chromium.sh

postgres:  # the server binaries; the tests start their own server on a free loopback port
	bash scripts/install_postgres.sh

pytest: $(STAMP) chromium postgres
	$(BIN)/pytest -q

conformance: $(STAMP)
	bash scripts/conformance.sh

test: lint typecheck pytest conformance

$(BENCH_STAMP): $(STAMP) pyproject.toml
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
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
