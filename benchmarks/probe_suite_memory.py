"""A pytest plugin that measures the test suite (it is not part of it).

Per test: its wall time (setup, call and teardown), the test process's resident memory after it and
its peak (VmHWM, reset before each test), the peak of the waited-for children (RUSAGE_CHILDREN; a
child forked from a large process counts the pages it shared before exec), a sampled peak of the
whole process tree (psutil, every 0.2 s) and the load average. At the end of the session: the
process's and the tree's peaks, CPU seconds of the process and of its children, the wall time.
One JSON line each, in ``$MEMPROBE_OUT.<pid>.jsonl``.

Run (each half of ``make test`` writes its own file):
    PYTHONPATH=benchmarks PYTEST_ADDOPTS="-p probe_suite_memory --durations=60" MEMPROBE_OUT=/tmp/suite make test
benchmarks/test-suite-timing.txt holds the figures of the suite before and after the test tier.
"""
import json
import os
import resource
import threading
import time

import psutil
import pytest

MB = 2 ** 20
_process = psutil.Process()
_peaks = {"session": 0, "test": 0}
_state = {"running": True, "file": None, "start": 0.0}


def _tree_rss():
    """Resident bytes of this process and all its descendants now."""
    total = _process.memory_info().rss
    for child in _process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def _sample():
    while _state["running"]:
        try:
            rss = _tree_rss()
        except psutil.Error:
            rss = 0
        for key in _peaks:
            _peaks[key] = max(_peaks[key], rss)
        time.sleep(0.2)


def _peak_rss_kb():
    """VmHWM of this process (kB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    return 0


def _write(record):
    _state["file"].write(json.dumps(record) + "\n")
    _state["file"].flush()


def pytest_sessionstart(session):
    _state["file"] = open(os.environ.get("MEMPROBE_OUT", "/tmp/memprobe") + f".{os.getpid()}.jsonl", "w")
    _state["start"] = time.time()
    threading.Thread(target=_sample, daemon=True).start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")                     # resets VmHWM to the current resident size
    except OSError:
        pass
    _peaks["test"] = 0
    load = os.getloadavg()[0]
    start = time.time()
    yield
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    _write(dict(test=item.nodeid, wall=round(time.time() - start, 2), self_hwm_mb=round(_peak_rss_kb() / 1024),
                self_rss_after_mb=round(_process.memory_info().rss / MB), children_maxrss_mb=round(children.ru_maxrss / 1024),
                tree_peak_mb=round(_peaks["test"] / MB), load1=round((load + os.getloadavg()[0]) / 2, 2)))


def pytest_sessionfinish(session):
    _state["running"] = False
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    _write(dict(summary=True, self_maxrss_mb=round(own.ru_maxrss / 1024), children_maxrss_mb=round(children.ru_maxrss / 1024),
                tree_peak_mb=round(_peaks["session"] / MB), loadavg=os.getloadavg(),
                session_wall=round(time.time() - _state["start"], 1), cpu_self=round(own.ru_utime + own.ru_stime),
                cpu_children=round(children.ru_utime + children.ru_stime)))
    _state["file"].close()
