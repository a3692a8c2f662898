"""mdjac.process_memory: what the ``mdjac`` program does to its process's memory, seen from outside.

Each case runs in a fresh interpreter (the settings are process-wide): the kernel's own count of
minor page faults shows whether a freed 128 MB array's pages are served again without faults, and
numpy's own switch (which returns the advice in force) shows its huge-page advice.
"""
import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, resource, sys
import mdjac.process_memory as p
result = p.keep_freed_memory() if sys.argv[1] == "first" else None   # as the mdjac program: before numpy
import numpy as np
import numpy.core.multiarray as m
result = p.keep_freed_memory() if result is None else result         # as a Dask worker: numpy imported
a = np.ones(2 ** 24); del a                       # 128 MB, freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(2 ** 24)                              # the same size again
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps(dict(result=result, faults=faults, advice=bool(m._set_madvise_hugepage(False)))))
"""


def probe(order="first", **env):
    base = {k: v for k, v in os.environ.items() if k not in ("MDJAC_KEEP_MEMORY", "NUMPY_MADVISE_HUGEPAGE")}
    out = subprocess.run([sys.executable, "-c", PROBE, order], env=dict(base, **env), check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("order", ["first", "after numpy"])
def test_freed_memory_is_served_again_without_page_faults(order):
    kept = probe(order)
    assert kept["result"] == {"glibc": True, "numpy_huge_page_advice": False} and kept["advice"] is False
    assert kept["faults"] < 1000, kept                  # 32,768 pages of 4 kB touched again, no fault


def test_mdjac_keep_memory_0_leaves_the_process_as_it_is():
    default = probe(MDJAC_KEEP_MEMORY="0", NUMPY_MADVISE_HUGEPAGE="0")   # 4 kB pages, so every page counts
    assert default["result"] == {} and default["faults"] > 30000, default
    assert probe(MDJAC_KEEP_MEMORY="0")["advice"] is True           # numpy's default advice, untouched


def test_the_mdjac_program_keeps_its_freed_memory(monkeypatch):
    """``mdjac`` (cli.run) sets it before it runs the command."""
    from mdjac import cli
    from mdjac.io import h5md_layout

    calls = []
    monkeypatch.setattr(h5md_layout, "ABANDONED_BATCHES", 0)   # else run() ends this process (os._exit)
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("kept"))
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 0)
    try:
        cli.run()
    except SystemExit as end:
        assert end.code == 0
    assert calls == ["kept", "main"]
