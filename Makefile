# hiersmooth: `make demo` runs the main job, `make test` the whole suite. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
# PyTorch is installed only when missing, so a CUDA build you already have is kept; override e.g. TORCH=torch==2.5.1
TORCH  ?= torch==2.13.0
SHARED ?= $(if $(HIERSMOOTH_SHARED),$(HIERSMOOTH_SHARED),../shared)
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test demo bench gpu-check docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,docs,mnist,pointclouds]"
	touch $(STAMP)

# the linter first (ruff: pyproject.toml's rule set, lines up to 120), then the suite
test: setup
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

demo: setup
	HIERSMOOTH_SHARED=$(SHARED) $(BIN)/python -m hiersmooth.demo

bench: setup
	$(BIN)/python benchmarks/certify_reference_votes.py
	HIERSMOOTH_SHARED=$(SHARED) $(BIN)/python benchmarks/smoothing_overhead.py
	HIERSMOOTH_SHARED=$(SHARED) $(BIN)/python benchmarks/cora_end_to_end.py
	HIERSMOOTH_SHARED=$(SHARED) $(BIN)/python benchmarks/distributed_speedup.py

# what only a GPU run can check, in under 4 minutes (benchmarks/gpu_check.py; DEVICE=cpu: the small CPU checks)
DEVICE ?= cuda
gpu-check: setup
	HIERSMOOTH_SHARED=$(SHARED) $(BIN)/python benchmarks/gpu_check.py --device $(DEVICE)

# the documentation site (mkdocs.yml, docs/) into site/; --strict: any warning (a broken link, a docstring griffe
# cannot parse, a module that does not exist) fails it
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) out .pytest_cache
