# ppl_ad developer commands. The two set-up commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install demo test test-slow validate bench bench-peers bench-sampling docs notebooks clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e '.[all,dev,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ppl-ad demo

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) docs

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

validate: $(STAMP)
	$(BIN)/python benchmarks/validate_posteriordb.py --out benchmarks/results

bench: $(STAMP)
	$(BIN)/ppl-ad bench --out benchmarks/results

bench-peers: $(STAMP)
	$(BIN)/ppl-ad bench --peers --out benchmarks/results

# NUTS efficiency per backend with PyMC and NumPyro beside it (about 15 minutes on 2 cores)
bench-sampling: $(STAMP)
	$(BIN)/ppl-ad bench --sampling --peers --out benchmarks/results

# MkDocs may not hold its config inside docs_dir, so the pages are staged under build/.
docs: export NO_MKDOCS_2_WARNING = 1
docs: $(STAMP)
	rm -rf build/docs-src && mkdir -p build/docs-src && cp docs/*.md build/docs-src/
	$(BIN)/mkdocs build --strict --quiet -f docs/mkdocs.yml

clean:
	rm -rf $(VENV) build site .pytest_cache
