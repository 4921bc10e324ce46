# bitflip entry points. `make demo` and `make test` set everything up on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench clean data

STUBS := $(VENV)/mpy-stubs

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip>=25.1'
	$(BIN)/pip install -q -e '.[test]'
	# MicroPython's API per port, for the firmware type check (pyproject [dependency-groups])
	rm -rf $(STUBS)
	$(BIN)/pip install -q --target $(STUBS)/rp2 --group mpy-stubs-rp2
	$(BIN)/pip install -q --target $(STUBS)/esp32 --group mpy-stubs-esp32
	# bitflip.device is firmware/bitflip (setuptools package-dir): show mypy the same layout
	mkdir -p $(VENV)/mypy-path/bitflip
	ln -sfn ../../../firmware/bitflip $(VENV)/mypy-path/bitflip/device
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/bitflip train --board sim-pico --dataset digits --epochs 10

test: $(STAMP)
	$(BIN)/pytest -q

# the fast tier: everything but the tests marked slow (long end-to-end and emulator runs)
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

data: $(STAMP)
	$(BIN)/bitflip data fetch mnist
	$(BIN)/bitflip data fetch fashion

bench: $(STAMP)
	$(BIN)/bitflip bench

# every tree is formatted by `ruff format` (line length 120, pyproject.toml)
FORMATTED := host tests benchmarks firmware examples

# ruff on all four trees; mypy on the host (pyproject [tool.mypy]) and on the firmware,
# once per port against that port's MicroPython stubs (firmware/typecheck/)
lint: $(STAMP)
	$(BIN)/ruff check host tests benchmarks firmware
	$(BIN)/ruff format --check $(FORMATTED)
	$(BIN)/mypy host
	$(BIN)/python firmware/typecheck/check.py rp2
	$(BIN)/python firmware/typecheck/check.py esp32

clean:
	rm -rf $(VENV) build *.egg-info
