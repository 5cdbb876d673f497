# One entry point for operators, developers and CI. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
CATALOGUE ?= catalogue/core-services.yaml
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-16)

.PHONY: help setup test lint unit rules docs render bench clean

help:
	@echo "make setup        create $(VENV) and install the pinned Python dependencies"
	@echo "make render       set up, then render STACK=$(STACK) offline into out/$(STACK)/"
	@echo "make test         linters and the test suite (needs promtool: apt-get install prometheus)"
	@echo "make rules        write rule files and promtool proofs of $(CATALOGUE) to out/rules/"
	@echo "make docs         regenerate docs/slo-catalogue.md and docs/slos.md"
	@echo "make bench        run the benchmarks under bench/"

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

lint: setup
	$(PY) -m ruff check slo components tests tools bench __main__.py
	$(PY) -m mypy

unit: setup
	$(PY) -m pytest -n 2 -p no:cacheprovider tests

test: lint unit

render: setup
	$(PY) tools/render.py --stack $(STACK)

rules: setup
	$(PY) -m slo rules $(CATALOGUE) -o out/rules

docs: setup
	$(PY) -m slo docs > docs/slo-catalogue.md
	$(PY) -m slo docs --slos $(CATALOGUE) --stack Pulumi.dev.yaml --stack Pulumi.prod.yaml > docs/slos.md

bench: setup
	$(PY) bench/rules_bench.py
	$(PY) bench/eval_cost.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
