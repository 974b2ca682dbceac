# ppl_ad developer commands. The two set-up commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install demo test test-slow validate bench bench-peers docs notebooks clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ppl-ad demo

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

validate: $(STAMP)
	$(BIN)/python benchmarks/validate_posteriordb.py --out benchmarks/results

bench: $(STAMP)
	$(BIN)/ppl-ad bench --out benchmarks/results

bench-peers: $(STAMP)
	$(PIP_INSTALL) -e '.[all,dev,bench]'
	$(BIN)/ppl-ad bench --peers --out benchmarks/results

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) build site .pytest_cache
