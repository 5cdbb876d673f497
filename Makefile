# One entry point for operators, developers and CI. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
CATALOGUE ?= catalogue/core-services.yaml
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-16)
SCAN_VENV ?= .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.installed-$(shell sha256sum requirements-scan.txt | cut -c1-16)
TOOLS ?= $(HOME)/.cache/slo-canary-tools
ACTIONLINT_VERSION := v1.7.12
GO_TOOLCHAIN := $(shell sed -n 's/^GO_TOOLCHAIN=//p' e2e/tools/build.sh)
ACTIONLINT := $(TOOLS)/actionlint-$(ACTIONLINT_VERSION)-$(GO_TOOLCHAIN)/actionlint
# The Prometheus everything is proven on: built from its Go module by e2e/tools/build.sh.
E2E_TOOLS_CACHE ?= $(HOME)/.cache/slo-canary-e2e
PROMETHEUS_VERSION := $(shell sed -n 's/^PROMETHEUS_VERSION=\([^ ]*\).*/\1/p' e2e/tools/build.sh)
PROMETHEUS_DIR := $(E2E_TOOLS_CACHE)/prometheus-$(PROMETHEUS_VERSION)-$(GO_TOOLCHAIN)
WITH_PROMETHEUS := PATH="$(PROMETHEUS_DIR):$$PATH"
# Thanos (sidecar, query, rule) for `make fleet` only, built the same way into the same cache.
THANOS_VERSION := $(shell sed -n 's/^THANOS_VERSION=\([^ ]*\).*/\1/p' e2e/tools/build.sh)
THANOS_DIR := $(E2E_TOOLS_CACHE)/thanos-$(THANOS_VERSION)-$(GO_TOOLCHAIN)
# A directory holding Prometheus 2.x `prometheus` and `promtool` (Debian's package) for `make compat`.
COMPAT_PROMETHEUS_DIR ?= /usr/bin
COMPAT_TESTS := tests/test_promtool.py tests/test_judge_promql.py tests/test_canary_judgement.py tests/test_tune.py tests/test_query_kind.py tests/test_sloth_equivalence.py

.PHONY: help setup test lint unit scan rules docs render bench prometheus sloth compat e2e-tools e2e thanos fleet vulncheck clean

help:
	@echo "make setup        create $(VENV) and install the pinned Python dependencies"
	@echo "make render       set up, then render STACK=$(STACK) offline into out/$(STACK)/"
	@echo "make test         linters and the test suite (builds Prometheus $(PROMETHEUS_VERSION) on first use)"
	@echo "make compat       rule files, proofs and queries on Prometheus 2.x from $(COMPAT_PROMETHEUS_DIR)"
	@echo "make scan         checkov policies on the rendered dev and prod manifests"
	@echo "make rules        write rule files and promtool proofs of $(CATALOGUE) to out/rules/"
	@echo "make docs         regenerate docs/slo-catalogue.md, docs/slos.md and docs/stack-config.md"
	@echo "make bench        run the benchmarks under bench/"
	@echo "make e2e-tools    build the local cluster tools from Go modules (cached by version)"
	@echo "make e2e          end-to-end scenarios on a local KWOK cluster with Argo Rollouts"
	@echo "make fleet        fleet SLOs on two Prometheus 3 clusters, Thanos sidecars, Query and Ruler"
	@echo "make vulncheck    known vulnerabilities (Go vulnerability database) in the Go binaries built here"

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

$(SCAN_STAMP): requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	rm -f $(SCAN_VENV)/.installed-* && touch $@

# actionlint from its Go module (its PyPI wrapper downloads a release binary at install time).
$(ACTIONLINT):
	@echo "building actionlint $(ACTIONLINT_VERSION) into $(dir $@)"
	GOBIN=$(dir $@) GOFLAGS=-mod=mod GOTOOLCHAIN=$(GO_TOOLCHAIN) \
	  go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

lint: setup $(ACTIONLINT)
	$(PY) -m ruff check slo delivery components tests tools bench e2e __main__.py
	$(PY) -m mypy
	$(ACTIONLINT)

scan: setup $(SCAN_STAMP)
	$(PY) tools/scan.py --checkov $(SCAN_VENV)/bin/checkov

# Prometheus server and promtool from the Go module (10-25 minutes cold, cached by version).
prometheus: $(PROMETHEUS_DIR)/.complete

$(PROMETHEUS_DIR)/.complete:
	bash e2e/tools/build.sh prometheus >/dev/null

# Sloth v0.16.0 from its Go module, for the tests that compare imported SLOs with Sloth's own
# rules (a few minutes cold, in the Go module and build caches the other tools share).
sloth:
	bash bench/peers/build_sloth.sh >/dev/null

unit: setup prometheus sloth
	$(WITH_PROMETHEUS) $(PY) -m pytest -n 2 -p no:cacheprovider --durations=15 tests

compat: setup sloth
	@test -x $(COMPAT_PROMETHEUS_DIR)/promtool && test -x $(COMPAT_PROMETHEUS_DIR)/prometheus || \
	  { echo "make compat: no Prometheus 2.x in COMPAT_PROMETHEUS_DIR=$(COMPAT_PROMETHEUS_DIR) (Debian: apt-get install prometheus)"; exit 1; }
	PATH="$(COMPAT_PROMETHEUS_DIR):$$PATH" $(PY) -m pytest -n 2 -p no:cacheprovider --durations=15 $(COMPAT_TESTS)

test: lint unit scan

render: setup
	$(PY) tools/render.py --stack $(STACK)

rules: setup
	$(PY) -m slo rules $(CATALOGUE) -o out/rules

OC_SERVICES := orchestrator agent-runner api-gateway

docs: setup
	$(PY) -m slo docs > docs/slo-catalogue.md
	$(PY) -m delivery docs --slos $(CATALOGUE) --stack Pulumi.dev.yaml --stack Pulumi.prod.yaml > docs/slos.md
	$(PY) -m delivery docs --stack-reference > docs/stack-config.md
	for s in $(OC_SERVICES); do $(PY) -m delivery docs --oc $$s --stack Pulumi.prod.yaml > docs/oc-prod-$$s.svg; done

bench: setup prometheus
	$(WITH_PROMETHEUS) $(PY) bench/canary_judgement.py
	$(WITH_PROMETHEUS) $(PY) bench/rules_bench.py
	$(WITH_PROMETHEUS) $(PY) bench/eval_cost.py
	$(WITH_PROMETHEUS) $(PY) bench/gate_query_cost.py

e2e-tools:
	bash e2e/tools/build.sh

e2e: setup e2e-tools
	$(PY) -m pytest -p no:cacheprovider --durations=10 e2e --ignore=e2e/fleet

thanos: $(THANOS_DIR)/.complete

$(THANOS_DIR)/.complete:
	bash e2e/tools/build.sh thanos >/dev/null

fleet: setup prometheus thanos
	PATH="$(PROMETHEUS_DIR):$(THANOS_DIR):$$PATH" $(PY) -m pytest -p no:cacheprovider e2e/fleet

# govulncheck on every Go binary of e2e-tools and on actionlint; pinned scanner and database snapshot
# from the Go module proxy, cached in $(TOOLS). Accepted findings: tools/vulncheck-accepted.json.
vulncheck: e2e-tools thanos $(ACTIONLINT)
	python3 tools/vulncheck.py --tools-cache $(TOOLS) --also $(ACTIONLINT)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
