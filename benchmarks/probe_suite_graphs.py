"""A pytest plugin that counts the test process's compiled graphs per test (it is not part of the suite).

Per test: wall time, CPU seconds of the test process and of its waited-for children, and the change
of mdjac.compile_cache.STATS (graphs stored, loaded, compiled uncached) in the test process; one
JSON line each, appended to ``$COMPILECOUNT_OUT``. CPU seconds are steadier than wall time on a
loaded machine. benchmarks/test-suite-shared-graphs.txt holds a before/after comparison.

Run (one half of ``make test``, cold store):
    rm -rf .pytest_cache/mdjac-compile
    PYTHONPATH=benchmarks COMPILECOUNT_OUT=/tmp/slow.jsonl .venv/bin/python -m pytest -q -m slow -p probe_suite_graphs
"""
import json
import os
import resource
import time

import pytest


def _cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    from mdjac import compile_cache
    before = dict(compile_cache.STATS)
    t0, (s0, c0) = time.time(), _cpu()
    yield
    s1, c1 = _cpu()
    after = dict(compile_cache.STATS)
    with open(os.environ["COMPILECOUNT_OUT"], "a") as f:
        f.write(json.dumps({"test": item.nodeid, "wall": round(time.time() - t0, 2), "cpu": round(s1 - s0, 2),
                            "cpu_children": round(c1 - c0, 2),
                            "graphs": {k: after[k] - before[k] for k in after},
                            "load": os.getloadavg()[0]}) + "\n")
