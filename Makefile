# The two quick-start commands:  `make run`  and  `make test`.
# Both create the virtual environment on first use (.venv, pip install -e .[test]).
VENV ?= .venv
CORES ?= 2
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test test-fast lint bench clean

# --no-cache-dir: torch's CUDA wheels are ~3 GB; a cached copy would double the disk an install needs
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-cache-dir --upgrade pip
	$(VENV)/bin/pip install --quiet --no-cache-dir -e ".[test]"
	touch $@

setup: $(VENV)/.installed

## run the whole pipeline on params.yaml (the embedded default)
run: setup
	snakemake --cores $(CORES)

## the whole test suite (unit, property, end-to-end Snakemake/DVC runs)
test: setup
	pytest -n $(CORES) --dist loadfile

## unit tests only (skips the end-to-end runs)
test-fast: setup
	pytest -m "not e2e"

lint: setup
	snakemake --lint

bench: setup
	python bench/metrics.py
	python bench/prepare.py
	python bench/loader.py
	cd bench && python label_cones.py

clean:
	rm -rf results logs .snakemake data/shards
