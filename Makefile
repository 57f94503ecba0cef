# The two README commands: `make demo` and `make test`. Both start with an idempotent `make setup`.
PY := .venv/bin/python
export SOC_DATASETS ?= $(CURDIR)/datasets
# the parity bundle made with the authors' code, kept beside the repository (README, "Parity"); tests skip without it
export SOC_PARITY_DIR ?= $(abspath $(CURDIR)/../shared/parity)

.PHONY: setup test test-all lint format demo check-cuda clean

setup:
	@bash scripts/setup.sh

## the default test suite (slow tests excluded)
test: setup
	OMP_NUM_THREADS=2 $(PY) -m pytest -m "not slow" -q

## everything, slow tests included
test-all: setup
	OMP_NUM_THREADS=2 $(PY) -m pytest -q

## formatting (black) and lint (ruff) as configured in pyproject.toml; fails on any violation
lint: setup
	$(PY) -m black --check --quiet .
	$(PY) -m ruff check --quiet .

## rewrite the files that `make lint` would reject (black, then ruff's safe fixes)
format: setup
	$(PY) -m black --quiet .
	$(PY) -m ruff check --fix --quiet .

## set up, generate SynthRVOS, train the small SOC config, evaluate J&F, render overlays (see README)
demo: setup
	OMP_NUM_THREADS=2 $(PY) tools/run_demo.py --output output/demo

## compile csrc/ with the CUDA kernel (sm_80, sm_90) into a temp dir and import it
check-cuda: setup
	@bash scripts/check_cuda_build.sh

clean:
	rm -rf build output *.egg-info soc/_C*.so
