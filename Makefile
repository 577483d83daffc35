# Two commands on a fresh machine: `make demo` (main job on the embedded default) and `make test`.
# Both create the virtual environment first if it is missing. torch is pinned to the local CPU wheel
# and installed before anything that depends on it (otherwise pip pulls a multi-GB CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test env clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,serve,distributed]'
	touch $@

env: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/actionpose demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
