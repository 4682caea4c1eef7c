PYTHON ?= python

.PHONY: install test bench

install:
	$(PYTHON) -m pip install torch==2.13.0 && $(PYTHON) -m pip install -e ".[test]"

test:
	$(PYTHON) -m pytest

bench:
	for b in benchmarks/bench_*.py; do $(PYTHON) $$b || exit 1; done
