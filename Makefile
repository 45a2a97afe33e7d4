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

# The evidence study (docs/findings.md): the quickstart recipe down to 7.8% of trainable
# parameters, 3 replicates (seeds 0-2), each run as the ticket, random re-init and random pruning
# (30 levels, about 45 minutes on 2 quiet cores); reports in reports/evidence/. Finished runs are reused.
evidence: setup
	$(PYTHON) -m mirl lottery --preset evidence
	$(PYTHON) -m mirl lottery --preset evidence --set control=random_reinit
	$(PYTHON) -m mirl lottery --preset evidence --set control=random_prune
	$(PYTHON) -m mirl report --params notebooks/evidence.yaml --out reports/evidence

clean-reports:
	rm -rf reports/*.html reports/*.ipynb reports/index.json reports/*/
