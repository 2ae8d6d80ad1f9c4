# One entry point per job. `make run` and `make test` do their whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: install run test test-fast lint lint-imports format bench mutation clean system-deps

install: $(VENV)/.installed ## virtualenv from the lock file, the itff package, the Kafka jars

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/itff kafka fetch
	touch $@

system-deps: ## Debian packages install and the tests drive: Java, Maven, Chromium, promtool, shellcheck
	bash deploy/system-deps.sh

run: install ## the whole bot on this machine: Kafka, receiver, consumer, scheduler, dashboard
	$(BIN)/itff up

test: system-deps install lint-imports ## the system packages first (Java and Maven for the Kafka jars), then the whole suite
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

mutation: install ## mutation scores of the core, auth and dedupe, with survivors (slow; not in `make test`)
	$(BIN)/python bench/mutation.py

clean:
	rm -rf $(VENV) var logs reports mutants .pytest_cache .mypy_cache .ruff_cache
