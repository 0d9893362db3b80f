# liploc_ros developer entry points. A fresh clone needs only `make demo` and `make test`:
# both create .venv and install everything on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.liploc-installed
PYTEST_ARGS ?=

.PHONY: demo test lint format bench clean-venv

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch comes as the registry build that torchvision (needed by timm) imports with.
	$(PY) -m pip install --quiet --progress-bar off -e ".[ros,dev]"
	$(PY) -c "import torch, timm, faiss, rosbags, rclpy; print('liploc_ros: venv ready, torch', torch.__version__)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/liploc demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
