# The two quick-start commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VC := $(VENV)/bin/vc
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export STREAMLIT_BROWSER_GATHER_USAGE_STATS := false

.PHONY: install run test lint bench demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build: anything that later depends on torch must not pull a CUDA one.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VC) db migrate
	$(VC) demo --if-missing
	$(VC) up

demo: install
	$(VC) demo

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(VENV)/bin/pytest -q -ra

bench: install
	$(PY) bench/ingest.py
	$(PY) bench/views.py
	$(PY) bench/parse_ingest.py
	$(PY) bench/anomaly_nab.py
	$(PY) bench/forecast_backtest.py
	$(PY) bench/time_to_detect.py
	$(PY) bench/ssh_poll.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
