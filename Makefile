# mirl: the two commands are `make study` (set up, run the quickstart study, build the reports)
# and `make test` (set up, run the whole test suite).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test study evidence evidence-rewind scaling scaling-gpu reports clean-reports

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
# branches (66 trainings; 2026-12-07 on a fresh clone as two 1-thread processes, what mirl lottery
# chooses on 2 free cores: 1 h 42 min with setup and reports, docs/benchmarks.md); reports in reports/evidence/.
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

# The scaling grid (issue 32; docs/lottery.md, "The scaling grid"): the ticket, random re-init and
# dense_same_size at 28% and 11.5% of the trainable parameters (2 rounds of 77%), 3 seeds, for
# tiny at 1x and 4x the budget and small at 1x; the cells are notebooks/scaling.yaml's. Budget: 150
# steps per node (the quickstart recipe at 10 epochs); 21 trainings per cell (3 seeds x (3 main +
# 2 levels x 2 branches)). Measured on the 2-core VM (2026-12-07, two 1-thread processes, what
# --launcher auto chose; docs/findings.md "Where the claim holds"): seeds 0-1 then seed 2,
#   tiny 1x:   2 seeds about 20 min (beside other work, paused once), seed 2 5 min
#   tiny 4x:   2 seeds 23 min, seed 2 13.5 min
#   small 1x:  2 seeds 28 min, seed 2 15 min          -> about 1 h 45 min in all; notebook 06 6 s.
# Resumable: finished nodes are reused, an interrupted one resumes. Reports in reports/scaling/.
scaling: setup
	$(PYTHON) -m mirl lottery --preset scaling
	$(PYTHON) -m mirl lottery --preset scaling --set steps_scale=4
	$(PYTHON) -m mirl lottery --preset scaling --set model=small
	$(PYTHON) -m mirl report --params notebooks/scaling.yaml --out reports/scaling

# The same grid on a GPU with the published budget per round (120 epochs of the published data):
# small and paper widths. Prints the bills only (docs/lottery.md); train with the same commands
# without --dry-run and --set data=/data/datasets.
scaling-gpu: setup
	$(PYTHON) -m mirl lottery --preset scaling-gpu --dry-run
	$(PYTHON) -m mirl lottery --preset scaling-gpu --set model=paper --dry-run

clean-reports:
	rm -rf reports/*.html reports/*.ipynb reports/index.json reports/*/
