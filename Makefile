# Two commands for a fresh machine with Python >= 3.10 and pip: `make demo` and `make test`.
PYTHON_SYSTEM ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --disable-pip-version-check -q -c constraints.txt
PYTEST_ARGS ?=
DEMO_DIR ?= runs/demo

.PHONY: install install-test demo test test-all clean

$(PY):
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q --upgrade pip

# Stamps refresh the environment whenever pyproject.toml or the pins change.
$(VENV)/.installed: $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The main job: synthetic street data -> train configs/demo.py -> label->video mp4s in runs/demo.
demo: install
	$(PY) -m vid2vid_jax.demo --workdir $(DEMO_DIR)

# The default suite (<= 15 minutes on 2 CPU cores): everything but `slow` and `gpu` tests.
test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

# Adds the `slow` tests; `gpu` tests run by hand on a GPU machine: pytest -m gpu.
test-all: install-test
	$(PY) -m pytest -m 'not gpu' $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
