# The README's two commands: `make demo` (embedded default: SQLite + local storage, seeded, URL printed) and
# `make test` (SQLite and PostgreSQL). Both install into .venv themselves.
VENV ?= .venv
PYTHON ?= python3
ARGS ?=
PYTEST_ARGS ?=

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

.PHONY: demo test bench-search
demo: $(VENV)/.installed
	$(VENV)/bin/opendata demo $(ARGS)

test:
	VENV=$(VENV) bash tests/run.sh $(PYTEST_ARGS)

bench-search: $(VENV)/.installed
	$(VENV)/bin/python bench/search.py $(ARGS)
