# One entry point per job. `make run` and `make test` do their whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: install run test test-fast lint lint-imports format bench clean system-deps

install: $(VENV)/.installed ## virtualenv from the lock file, the itff package, the Kafka jars

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/itff kafka fetch
	touch $@

system-deps: ## Debian packages the tests drive: Chromium (browser tests), promtool (rule checks)
	bash deploy/system-deps.sh

run: install ## the whole bot on this machine: Kafka, receiver, consumer, scheduler, dashboard
	$(BIN)/itff up

test: install system-deps lint-imports ## the whole suite: layer contracts, core, real Kafka, real browser
	$(BIN)/python -m pytest

test-fast: install ## the tests that need no broker, no browser, no PostgreSQL (markers `kafka`, `browser`, `postgres`)
	$(BIN)/python -m pytest -m "not kafka and not browser and not postgres"

lint-imports: install ## the layer order of bot/ and the edges (pyproject.toml [tool.importlinter])
	$(BIN)/lint-imports

lint: install lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var logs reports .pytest_cache .mypy_cache .ruff_cache
