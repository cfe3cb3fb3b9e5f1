# Two commands for a fresh machine with Python >= 3.10 and pip: `make demo` and `make test`.
PYTHON_SYSTEM ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --disable-pip-version-check -q -c constraints.txt
PYTEST_ARGS ?=
# configs/demo.py reads and writes runs/demo.
DEMO_DIR := runs/demo

.PHONY: install install-test demo test test-all clean

$(PY):
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q --upgrade pip

# The fvd extra (I3D weights for FVD, ~50 MB) is part of the default install: eval scores FVD.
# Stamps refresh the environment whenever pyproject.toml or the pins change.
$(VENV)/.installed: $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) -e '.[fvd]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The main job: synthetic street data -> train configs/demo.py -> label->video mp4s in runs/demo.
demo: install
	$(PY) -m input_pipeline.synthetic --domain street --out $(DEMO_DIR)/data --sequences 16 \
	  --test_sequences 3 --frames 24 --size 64x32 --seed 0
	$(PY) -m input_pipeline.validate --layout street --label_nc 35 $(DEMO_DIR)/data
	$(PY) train.py --config configs/demo.py --workdir $(DEMO_DIR)
	$(PY) eval.py --config configs/demo.py --workdir $(DEMO_DIR)
	$(PY) -m vid2vid_jax.tools.label_baseline --config configs/demo.py --workdir $(DEMO_DIR)
	@ls $(DEMO_DIR)/*.mp4

# The default suite (<= 10 minutes on 2 CPU cores): everything but `slow` and `gpu` tests.
# Two xdist workers (one per core; test files stay whole so module fixtures are shared).
test: install-test
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

# Adds the `slow` tests; `gpu` tests run by hand on a GPU machine: pytest -m gpu.
test-all: install-test
	$(PY) -m pytest -n 2 --dist loadfile -m 'not gpu' --durations=15 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
