# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PACKAGE_DIRS := $(sort $(wildcard packages/*))
# core-ops first: every domain package depends on it.
ORDERED := packages/core-ops $(filter-out packages/core-ops,$(PACKAGE_DIRS))
STAMP := $(VENV)/.convsuite-installed
BENCHMARKS := packages/core-ops/benchmarks/peak.py $(sort $(wildcard packages/*/benchmarks/bench_*.py)) benchmarks/bench_precision.py

.PHONY: demo test bench lint clean

$(STAMP): Makefile $(addsuffix /pyproject.toml,$(PACKAGE_DIRS))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (torch CPU build first, then every package with its test extras)"
	@$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.*"
	@$(PY) -m pip install -q --disable-pip-version-check $(foreach p,$(ORDERED),-e "$(p)[test]")
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convsuite-demo --out demo-output

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	@for script in $(BENCHMARKS); do echo "== $$script"; OMP_NUM_THREADS=2 PYTHONPATH=shared $(PY) $$script || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check packages tests shared conftest.py
	$(VENV)/bin/ruff format --check packages tests shared conftest.py

clean:
	rm -rf $(VENV) demo-output
