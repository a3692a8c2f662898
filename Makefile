# Two commands do all the set-up from a fresh clone:
#   make run    creates .venv (pinned set in requirements.lock, and requirements-test.lock: packages whose data
#               files the tests read, installed without their dependencies), then the main job: MindSPONGE MD of the
#               default system with Jacobians into out/run.h5md (replaced on each run), and a summary
#   make test   creates .venv if needed, then runs the test suite: the tests not marked slow, then the
#               slow ones, each half in processes of its own (MindSpore keeps the memory of every graph
#               it compiles until its process ends); both halves run, and either failing fails (a half
#               with no test selected, pytest's exit code 5, e.g. under PYTEST_ADDOPTS=-k, passes).
#               The first half runs on two worker processes (pytest-xdist, TEST_WORKERS), a test file
#               at a time per worker, so that a module's fixtures are built once: both cores work. The
#               slow half runs the same way, but for the Dask tests (tests/test_cluster.py), which run after
#               it in a process of their own: beside another worker their clusters took the suite's peak
#               memory over 8 GB (benchmarks/test-suite-timing-2026-12-03.txt)
#   make test-fast  the first half only (the edit loop)
#   make bench-peers  mdjac against JAX and matscipy (their own .venv-peers, made by make peers-env)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_WORKERS ?= -n 2 --dist loadfile
CLUSTER_TESTS := tests/test_cluster.py

.PHONY: run test test-fast bench env clean peers-env bench-peers

env: $(STAMP)

$(STAMP): requirements.lock requirements-test.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -r requirements-test.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	mkdir -p out
	$(VENV)/bin/mdjac run --output out/run.h5md --overwrite

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(TEST_WORKERS); fast=$$?; \
	$(PY) -m pytest -q -m slow $(TEST_WORKERS) --ignore=$(CLUSTER_TESTS); slow=$$?; \
	$(PY) -m pytest -q -m slow $(CLUSTER_TESTS); cluster=$$?; \
	for code in $$fast $$slow $$cluster; do [ $$code -eq 0 ] || [ $$code -eq 5 ] || exit $$code; done

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(TEST_WORKERS) || [ $$? -eq 5 ]

bench: $(STAMP)
	$(PY) benchmarks/bench_jacobian.py

# The peers (JAX, matscipy) need numpy 2, which .venv cannot hold: a venv of their own.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

peers-env: $(PEERS_STAMP)

$(PEERS_STAMP): benchmarks/requirements-peers.lock
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-peers.lock
	touch $(PEERS_STAMP)

bench-peers: $(STAMP) $(PEERS_STAMP)
	$(PY) benchmarks/bench_peers.py

clean:
	rm -rf $(VENV) $(PEERS_VENV) out
