# ppl_ad developer commands. The two set-up commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install demo test test-slow validate validate-posteriordb validate-sbc bench bench-peers bench-sampling docs notebooks clean

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

# The slow validation: every posteriordb posterior, then simulation-based calibration of the four
# standard models with every supported backend (hours on 2 cores; pass SBC_ARGS=--smoke for a quick one,
# or run on a Dask cluster with SBC_ARGS="--executor tcp://scheduler:8786").
validate: validate-posteriordb validate-sbc

validate-posteriordb: $(STAMP)
	$(BIN)/python benchmarks/validate_posteriordb.py --out benchmarks/results

validate-sbc: $(STAMP)
	$(BIN)/python benchmarks/validate_sbc.py --out benchmarks/results --docs docs $(SBC_ARGS)

bench: $(STAMP)
	$(BIN)/ppl-ad bench --out benchmarks/results

bench-peers: $(STAMP)
	$(BIN)/ppl-ad bench --peers --out benchmarks/results

# NUTS efficiency: ppl_ad's engines beside PyMC, NumPyro, BlackJAX and nutpie, cold and warm
# (about 45 minutes on 2 cores; `ppl-ad bench --sampling --peers --draws 500 --tune 500` takes about 25)
bench-sampling: $(STAMP)
	$(BIN)/ppl-ad bench --sampling --peers --out benchmarks/results

# MkDocs may not hold its config inside docs_dir, so the pages are staged under build/.
docs: export NO_MKDOCS_2_WARNING = 1
docs: $(STAMP)
	rm -rf build/docs-src && mkdir -p build/docs-src && cp docs/*.md build/docs-src/
	cp docs/*.png build/docs-src/ 2>/dev/null || true
	$(BIN)/mkdocs build --strict --quiet -f docs/mkdocs.yml

clean:
	rm -rf $(VENV) build site .pytest_cache
