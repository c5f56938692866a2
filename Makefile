# Two commands on a fresh machine with Python 3.11:
#   make run    set up .venv from requirements.lock (hashed), then run the bot on ./config.yaml
#   make test   set up .venv from requirements-dev.lock (hashed), run the static checks, then the tests
# The locks are compiled from requirements.txt / requirements-dev.txt by `make lock` (uv, pinned below).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform linux --quiet

.PHONY: run once demo test test-fast check bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	touch $@

$(VENV)/.dev: requirements.lock requirements-dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/python bot.py run

once: $(VENV)/.runtime
	$(BIN)/python bot.py once

demo: $(VENV)/.runtime
	$(BIN)/python bot.py demo

check: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# More workers than cores: most of the suite waits (on servers, processes, pacing), not
# computes. --maxschedchunk 1 hands tests out one at a time, so the slow ones (sorted first)
# spread over the workers. The tests marked alone measure real time under a load of their own:
# they run afterwards, by themselves.
TEST_WORKERS ?= 4
PYTEST_PARALLEL := -n $(TEST_WORKERS) --maxschedchunk 1
# The unit tier waits more than it computes (pacing, polls, leases), and starts no PostgreSQL per
# worker: a fifth worker saves about 2.5 s there (24.3 s against 26.9 s: means of 3 and 5 runs).
TEST_FAST_WORKERS ?= 5
# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE): each
# worker would otherwise compile the package and rewrite every test module again, about two
# seconds of CPU apiece. __pycache__ is ignored by git.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

test: check
	$(PYTEST) -q $(PYTEST_PARALLEL) -m "not alone"
	$(PYTEST) -q -m alone

# The unit tier: no process started, no PostgreSQL (the marks in pytest.ini).
test-fast: $(VENV)/.dev
	$(PYTEST) -q -n $(TEST_FAST_WORKERS) --maxschedchunk 1 -m "not system and not postgres"

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_match.py
	$(BIN)/python benchmarks/eval_match.py

# Needs the package registry; uv runs from its own throw-away venv.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet uv==$(UV_VERSION)
	.venv-lock/bin/uv pip compile requirements.txt -o requirements.lock $(LOCK_FLAGS) \
		--custom-compile-command "make lock"
	.venv-lock/bin/uv pip compile requirements-dev.txt -o requirements-dev.lock $(LOCK_FLAGS) \
		--custom-compile-command "make lock"
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .venv-lock build *.egg-info
