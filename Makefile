# The two commands of the quick start: `make serve` and `make test`. Both create .venv and install into it
# when pyproject.toml or constraints.txt changed (a stamp file makes the second run instant).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
PORT ?= 8000
HOST ?= 127.0.0.1

# Measured on 2-core CPUs: OpenMP's busy-wait policy makes decode ~10x slower (see README, GPU notes).
export OMP_WAIT_POLICY ?= PASSIVE
# presidio's email/URL recognizers use tldextract, which tries the network first without this.
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export HF_HUB_OFFLINE ?= 1

.PHONY: install serve test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/pip install --disable-pip-version-check -c constraints.txt torch==2.13.0 >$(VENV)/install.log 2>&1 \
		&& $(BIN)/pip install --disable-pip-version-check -c constraints.txt -e '.[dev,postgres,otel]' >>$(VENV)/install.log 2>&1 \
		|| { grep -v "is ignored: it is neither" $(VENV)/install.log | tail -40; exit 1; }
	@rm -f $(VENV)/.installed-*
	@touch $@

serve: $(STAMP)
	GUARD_PROFILE=dev $(BIN)/guard models build-dev
	GUARD_PROFILE=dev $(BIN)/guard db upgrade
	GUARD_PROFILE=dev $(BIN)/guard serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check guard tests migrations benchmarks
	$(BIN)/ruff format --check guard tests migrations benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/guard models build-dev
	$(BIN)/guard policy validate policies
	GUARD_PROFILE=dev $(BIN)/guard policy test policies/tests --policy-dir policies
	$(BIN)/pytest

# Engine throughput/latency (a: pipeline, b: static batches, c: transformers CB, d: guard), the HTTP-level effect and
# the policy checks' latency/throughput, the audit writer, and audit completeness under 2 minutes of load;
# tables on stdout, JSON in benchmarks/results/. ~35 min on 2 cores; `$(BIN)/python benchmarks/engine.py --quick` is 3.
# The bench extra (gguf) writes llama.cpp's model for engine.py's system (e), skipped unless llama.cpp is built
# (benchmarks/llamacpp_build.sh).
bench: $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[bench]'
	GUARD_PROFILE=dev $(BIN)/guard models build-dev
	$(BIN)/python benchmarks/model.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/gateway.py
	$(BIN)/python benchmarks/checks.py
	$(BIN)/python benchmarks/audit.py
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
