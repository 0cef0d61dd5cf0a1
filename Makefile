# chimera_lab — the two set-up commands are `make demo` and `make test` (README).
# Both bootstrap a local virtualenv with plain `python3 -m venv` + pip; nothing else is assumed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := data/samples/btcusdt_1m_binance_20240726_20240825.csv.gz
STORE  ?= data/chimera.duckdb
RUN_ID := $(shell date -u +%Y%m%dT%H%M%SZ)

.PHONY: install demo test lint typecheck unit bench lock clean

install: $(STAMP)

# requirements.lock pins every transitive version that was tested; pyproject.toml stays the
# source of truth for what the project needs (`make lock` refreshes the pins).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/chimera data import $(SAMPLE) --symbol BTCUSDT --timeframe 1m --store $(STORE)
	$(BIN)/chimera data quality --symbol BTCUSDT --timeframe 1m --store $(STORE)
	mkdir -p data/runs/$(RUN_ID)-quickstart
	CHIMERA_STORE__URL=$(STORE) $(BIN)/papermill --log-level WARNING \
	    notebooks/00_quickstart.ipynb data/runs/$(RUN_ID)-quickstart/00_quickstart.ipynb \
	    -p output_dir data/runs/$(RUN_ID)-quickstart
	@echo "executed notebook: data/runs/$(RUN_ID)-quickstart/00_quickstart.ipynb"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check chimera_lab tests benchmarks

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: lint typecheck unit

bench: install
	$(BIN)/python benchmarks/bench_store.py

lock:
	rm -rf /tmp/chimera-lock-venv
	$(PYTHON) -m venv /tmp/chimera-lock-venv
	/tmp/chimera-lock-venv/bin/pip install --quiet -e '.[dev]'
	/tmp/chimera-lock-venv/bin/pip freeze --exclude-editable | grep -v '^chimera' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
