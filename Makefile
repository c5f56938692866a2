# Two commands on a fresh machine with Python 3.11:
#   make run    set up .venv with the pinned requirements, then run the bot on ./config.yaml
#   make test   set up .venv with the pinned dev requirements, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run once demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/python bot.py run

once: $(VENV)/.runtime
	$(BIN)/python bot.py once

demo: $(VENV)/.runtime
	$(BIN)/python bot.py demo

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_match.py
	$(BIN)/python benchmarks/eval_match.py

clean:
	rm -rf $(VENV)
