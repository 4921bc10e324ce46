# bitflip entry points. `make demo` and `make test` set everything up on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean data

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/bitflip train --board sim-pico --dataset digits --epochs 10

test: $(STAMP)
	$(BIN)/pytest -q

data: $(STAMP)
	$(BIN)/bitflip data fetch mnist
	$(BIN)/bitflip data fetch fashion

bench: $(STAMP)
	$(BIN)/bitflip bench

lint: $(STAMP)
	$(BIN)/ruff check host tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
