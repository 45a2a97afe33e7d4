# mirl: the two commands are `make study` (set up, run the quickstart study, build the reports)
# and `make test` (set up, run the whole test suite).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test study reports clean-reports

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	./scripts/setup.sh
	touch $(STAMP)

test: setup
	$(PYTHON) -m pytest -q

study: setup
	$(PYTHON) -m mirl lottery --preset quickstart
	$(PYTHON) -m mirl report --preset quickstart

clean-reports:
	rm -rf reports/*.html reports/*.ipynb reports/index.json reports/*/
