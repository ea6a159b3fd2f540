# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-readers clean docs tools

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# niquests' urllib3-future would overwrite urllib3 itself; this keeps the two apart.
	URLLIB3_NO_OVERRIDE=1 $(PY) -m pip install --quiet --no-binary urllib3-future niquests
	$(PY) -c "import urllib3, sys; sys.exit('urllib3 was replaced by urllib3-future' if hasattr(urllib3, 'AsyncPoolManager') else 0)"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m rangeio.demo

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(PY) -m mypy

# The docs site must build without a warning (broken links, missing pages).
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir $$(mktemp -d)/rangeio-site

# nginx and zip, which the tests need: installed with apt-get when missing and run as root,
# otherwise a one-line instruction (.ci/tools, shared with .ci/run).
tools:
	.ci/tools

# pytest exits 5 when it collected nothing; that must fail, and it does (non-zero).
# The slow tests (soak, crash, demo) run too; `$(PY) -m pytest -m "not slow"` skips them.
test: tools lint typecheck docs
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/run.py

# Real third-party readers over rangeio, fsspec's http filesystem and GDAL (benchmarks/README.md).
bench-readers: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/readers/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
