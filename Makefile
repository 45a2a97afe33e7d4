# mirl: the two commands are `make study` (set up, run the quickstart study, build the reports)
# and `make test` (set up, run the whole test suite).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test study evidence evidence-rewind reports clean-reports

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	./scripts/setup.sh
	touch $(STAMP)

test: setup
	$(PYTHON) -m pytest -q

study: setup
	$(PYTHON) -m mirl lottery --preset quickstart
	$(PYTHON) -m mirl report --preset quickstart

# The evidence study (docs/findings.md): the quickstart recipe pruned to 3.1% of the prunable
# weights, 3 replicates (seeds 0-2), each level with random re-init, random pruning and stability
# branches (66 trainings: 1 h 48 min on 2 cores, 2026-12-06); reports in reports/evidence/.
# Finished nodes are reused, an interrupted one resumes.
evidence: setup
	$(PYTHON) -m mirl lottery --preset evidence
	$(PYTHON) -m mirl report --params notebooks/evidence.yaml --out reports/evidence

# Its rewinding sibling (survivors restart from the weights after 40 of the dense level's 375 steps,
# about 10%); notebook 02 sets reset's and rewinding's barriers side by side (reports/evidence-rewind/).
# Not run yet: 66 more trainings with nothing to reuse, about 2 hours on 2 cores.
evidence-rewind: setup
	$(PYTHON) -m mirl lottery --preset evidence
	$(PYTHON) -m mirl lottery --preset evidence --set reset=rewind rewind_steps=40
	$(PYTHON) -m mirl report --preset evidence --notebooks 02 --set 'compare=[{reset: rewind, rewind_steps: 40}]' --out reports/evidence-rewind

clean-reports:
	rm -rf reports/*.html reports/*.ipynb reports/index.json reports/*/
