# The two commands a newcomer needs: `make demo` and `make test`. Each sets itself up.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ANONYMETER := .venv-anonymeter/.installed
DEMO_DIR ?= demo-event

.PHONY: demo test bench lint format clean setup

$(STAMP): requirements.lock pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh python

# anonymeter's own environment (its pins conflict with ours): the twin release gate runs it.
# After .venv, whose uv installs it.
$(ANONYMETER): synthetic/anonymeter-requirements.lock | $(STAMP)
	scripts/bootstrap.sh anonymeter

setup: $(STAMP) $(ANONYMETER)

demo: $(STAMP) $(ANONYMETER)
	scripts/bootstrap.sh hub
	@# an existing demo event that chose the docker backend needs an engine (root: installed)
	@if grep -qs 'backend: *docker' $(DEMO_DIR)/event.yaml; then scripts/bootstrap.sh docker; fi
	$(BIN)/hackgap demo $(DEMO_DIR)

test: $(STAMP) $(ANONYMETER)
	scripts/bootstrap.sh system docker hub
	$(BIN)/python -m pytest

bench: $(STAMP) $(ANONYMETER)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-anonymeter $(DEMO_DIR) .pytest_cache
