# mirl: the two commands are `make study` (set up, run the quickstart study, build the reports)
# and `make test` (set up, run the whole test suite).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test study evidence reports clean-reports

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	./scripts/setup.sh
	touch $(STAMP)

test: setup
	$(PYTHON) -m pytest -q

study: setup
	$(PYTHON) -m mirl lottery --preset quickstart
	$(PYTHON) -m mirl report --preset quickstart

# The evidence study (docs/findings.md): the quickstart study with 3 replicates (seeds 0-2), each
# run as the ticket, random re-init and random pruning; reports in reports/evidence/. It reuses
# what `make study` ran (seed 0's ticket and random re-init) and trains 16 more levels.
evidence: setup
	$(PYTHON) -m mirl lottery --preset quickstart --set replicates=3
	$(PYTHON) -m mirl lottery --preset quickstart --set replicates=3 control=random_reinit
	$(PYTHON) -m mirl lottery --preset quickstart --set replicates=3 control=random_prune
	$(PYTHON) -m mirl report --params notebooks/evidence.yaml --out reports/evidence

clean-reports:
	rm -rf reports/*.html reports/*.ipynb reports/index.json reports/*/
