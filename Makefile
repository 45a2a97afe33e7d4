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
# branches (66 trainings; 2026-12-07 as two 1-thread processes, what mirl lottery now chooses on 2
# free cores: 2 h 19 min, about 40 min of it beside a test run); reports in reports/evidence/.
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
# dense_same_size at 28% and 11.5% of the trainable parameters (2 rounds of 77%), 2 seeds, for
# tiny at 1x and 4x the budget and small at 1x; the cells are notebooks/scaling.yaml's. Budget: 150
# steps per node (the quickstart recipe at 10 epochs); 14 trainings per cell (2 seeds x (3 main +
# 2 levels x 2 branches)). Dry-run bill (2026-12-07, 2 cores shared with a test run, 1 thread):
#   tiny 1x:   2,100 steps x 381 ms  = 0.22 h
#   tiny 4x:   8,400 steps x 381 ms  = 0.89 h
#   small 1x:  2,100 steps x 1926 ms = 1.12 h          -> 2.2 h training when the cores are busy;
# on 2 quiet cores tiny runs 240 ms per step (docs/benchmarks.md: 90 s per 375-step node), so
# about 0.63 x that, 1.4 h, plus evaluation (about 10 s a node). It fits 2 hours by cutting the
# quickstart's 375 steps to 150 and the evidence preset's 3 seeds to 2. Resumable: finished nodes
# are reused, an interrupted one resumes. Reports in reports/scaling/.
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
