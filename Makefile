# Two commands set everything up from a fresh clone: `make demo` and `make test`.
# Both create .venv and install the pinned dependencies on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install demo test test-slow bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wow-gym demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(VENV)/bin/wow-gym bench sim

clean:
	rm -rf $(VENV) build dist *.egg-info
