# Two commands do all set-up on a fresh machine (see README):
#   make demo   - create .venv, install sctransfer, run label transfer on the built-in default
#   make test   - create .venv, install sctransfer with test extras, run the test suite
# torch is installed first from TORCH_SPEC so that pip does not resolve a CUDA build by itself.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

# Data: an explicit SCTRANSFER_DATA_DIR wins; otherwise use ../shared/data when it exists;
# otherwise leave it unset so that the loaders use their user cache.
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin SCTRANSFER_DATA_DIR),undefined)
  ifneq ($(wildcard $(SHARED_DATA)),)
    SCTRANSFER_DATA_DIR := $(SHARED_DATA)
  endif
endif
ifdef SCTRANSFER_DATA_DIR
  export SCTRANSFER_DATA_DIR
endif
export MUDATA_PULL_ON_UPDATE := False
export PIP_NO_INPUT := 1

STAMP := $(VENV)/.sctransfer-installed

.PHONY: demo test docs lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install --quiet -e ".[test,bench,doc,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sctransfer label-transfer

# pytest exits 5 when it collects no tests: say so, and fail like any other failure.
test: $(STAMP)
	@echo "SCTRANSFER_DATA_DIR=$${SCTRANSFER_DATA_DIR:-<unset: user cache>}"
	@echo "$(VENV)/bin/python -m pytest $(PYTEST_ARGS)"
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -E -b html docs docs/_build/html

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(VENV)/bin/ruff format --check src tests benchmarks docs

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/label_transfer.py

clean:
	rm -rf $(VENV) docs/_build docs/generated docs/tutorials
