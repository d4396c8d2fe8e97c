# Two commands matter: `make run` serves hookline (SQLite adapter, ./data/hookline.db), `make test` runs the tests.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml sdk/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet -e ./sdk
	touch $(STAMP)

.PHONY: install run test lint openapi bench bench-quick

install: $(STAMP)

run: $(STAMP)
	exec $(BIN)/hookline serve --host $${HOST:-127.0.0.1} --port $${PORT:-8080}

test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app tests bench sdk examples
	$(BIN)/ruff format --check app tests bench sdk examples
	$(BIN)/mypy --strict app
	$(BIN)/mypy --strict sdk/hookline

openapi: $(STAMP)
	$(BIN)/hookline openapi
