# The commands a user types. Each one sets up what it needs, once.
# PYTHON picks the interpreter that creates the environment: make lab PYTHON=python3.11
VENV ?= .venv
PYTHON ?= python3
CELL_TIMEOUT ?= 600
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
CPU_TORCH_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: lab test run zh data benchmark memory lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Without an NVIDIA GPU on Linux, torch comes from its CPU-only index (about 0.2 GB instead of 5.9 GB)
# where that index can be reached; requirements.txt then finds it installed.
$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	@if [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then \
		if $(BIN)/python -c "import urllib.request; urllib.request.urlopen('$(CPU_TORCH_INDEX)/torch/', timeout=10)" \
			2>/dev/null; then \
			echo "No NVIDIA GPU here: installing the CPU-only torch from $(CPU_TORCH_INDEX)."; \
			$(BIN)/python -m pip install --index-url $(CPU_TORCH_INDEX) $$(grep -E '^torch(vision)?==' requirements.txt); \
		else \
			echo "No NVIDIA GPU here, but $(CPU_TORCH_INDEX) cannot be reached: torch comes from PyPI, CUDA libraries included."; \
		fi; \
	fi
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

data: $(STAMP)
	$(BIN)/python -m actlab data

lab: data
	$(BIN)/jupyter lab --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir=notebooks

test: data $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	ACTLAB_QUICK=1 $(BIN)/pytest

run: data
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=$(CELL_TIMEOUT) \
		--ExecutePreprocessor.record_timing=False notebooks/*.ipynb
	$(BIN)/jupyter nbconvert --to notebook --inplace --CoalesceStreamsPreprocessor.enabled=True notebooks/*.ipynb
	$(BIN)/python -m actlab.lab.edition

zh: $(STAMP)
	$(BIN)/python -m actlab.lab.edition

benchmark: data
	$(BIN)/python benchmarks/epoch_speed.py
	$(BIN)/python benchmarks/contention.py
	$(BIN)/python benchmarks/widget_response.py
	$(BIN)/python benchmarks/run_all.py

memory: data
	$(BIN)/python benchmarks/notebook_memory.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
