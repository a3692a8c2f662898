# Two commands do all the set-up from a fresh clone:
#   make run    creates .venv (pinned set in requirements.lock), then the main job: MindSPONGE MD of the
#               default system with Jacobians into out/run.h5md (replaced on each run), and a summary
#   make test   creates .venv if needed, then runs the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench env clean

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	mkdir -p out
	$(VENV)/bin/mdjac run --output out/run.h5md --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_jacobian.py

clean:
	rm -rf $(VENV) out
