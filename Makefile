# cnnlab: `make demo` runs the main job, `make test` the suite. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast test-zoo lint bench docs clean

setup: $(STAMP)

# Reinstall only when the package metadata changes, so a second `make setup` takes seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: setup
	$(BIN)/cnnlab compare lenet5 simple_cnn simple_resnet mini_vgg --dataset digits --out runs/demo

# One pytest worker per CPU, each test file on one worker (its module fixtures train once). The tests run torch
# on one thread each (tests/conftest.py), so a single process would leave the other cores idle.
test: setup
	$(BIN)/python -m pytest -n auto --dist loadfile

# The inner loop: everything but the tests marked slow (training for more than a few seconds, torchrun, SIGKILL,
# exporting every model).
test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -n auto --dist loadfile

# The whole zoo in every per-model loop, the big variants too (tests/zoo_sample.py): about 3 minutes more.
test-zoo: setup
	CNNLAB_BIG_MODELS=1 $(BIN)/python -m pytest -n auto --dist loadfile

# Lint and format check (configured in pyproject.toml); `ruff format src tests bench` fixes the format.
lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) runs build src/*.egg-info
