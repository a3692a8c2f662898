"""mdjac.compile_cache: compiled graphs kept across processes can never come back as another graph.

Every check runs fresh processes (tests/compile_cache_child.py) that compile graphs through the
kernel and compare phi'(r), phi''(r) with float64 formulas. The graphs come in pairs that take the
same inputs (shapes and dtypes) but compute different things: a Coulomb Ewald term and the Ewald
exclusion correction; a plain Coulomb + Lennard-Jones group and the same terms in the other order
(inputs (qq, sigma, eps) against (sigma, eps, qq)). MindSpore's own cache swaps them when two
processes compile them in different orders (shown here); mdjac's must not.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mdjac import compile_cache, terms

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "compile_cache_child.py"
ORDER = ["ewald:8", "exclusion:8", "coulomb+lj:8", "lj+coulomb:8", "ewald:16"]
EXACT = 1e-10          # float64 AD against the formulas: 4e-14 at worst (ewald's 1/r^2 - f' cancels)


def run_child(ops, store, script=True, **env):
    """The child's report; ``script=False`` runs it from ``python -c`` (no entry script)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MS_COMPILER_CACHE", "MDJAC_COMPILE"))}
    environ.update(PYTHONPATH=str(ROOT), GLOG_v="3", MDJAC_COMPILE_CACHE_DIR=str(store), **env)
    command = [sys.executable, str(CHILD), *ops] if script else \
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(CHILD)!r}, run_name='__main__')", *ops]
    out = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A store filled by one process that compiled ORDER, and that process's report."""
    store = tmp_path_factory.mktemp("warm") / "store"
    return store, run_child(ORDER, store)


def copy_of(store, tmp_path):
    shutil.copytree(store, tmp_path / "store")
    return tmp_path / "store"


@pytest.mark.slow
def test_first_process_compiles_and_stores_every_graph(warm):
    store, got = warm
    assert max(got["errors"].values()) < EXACT, got["errors"]
    assert got["stats"] == {"loaded": 0, "stored": len(ORDER), "uncached": 0}
    assert sorted(f"{k}.mindir" for k in got["keys"].values()) == got["stored"]
    assert len(set(got["keys"].values())) == len(ORDER)


@pytest.mark.slow
def test_second_process_in_the_opposite_order_loads_every_graph_right(warm, tmp_path):
    store, first = warm
    got = run_child(ORDER[::-1], copy_of(store, tmp_path))
    assert got["stats"] == {"loaded": len(ORDER), "stored": 0, "uncached": 0}
    assert max(got["errors"].values()) < EXACT, got["errors"]
    assert got["keys"] == first["keys"]


@pytest.mark.slow
def test_a_process_without_an_entry_script_loads_them_too(warm, tmp_path):
    """``python -c`` (and ``python -m mdjac``, whose relative import MindSpore's own scan of the entry
    script cannot follow): the graphs stored by a script's process are loaded, and right."""
    store, _ = warm
    got = run_child(ORDER[1::2] + ORDER[0::2], copy_of(store, tmp_path), script=False)
    assert got["stats"] == {"loaded": len(ORDER), "stored": 0, "uncached": 0}
    assert max(got["errors"].values()) < EXACT, got["errors"]


@pytest.mark.slow
def test_mindspore_own_cache_swaps_these_graphs_and_mdjac_steps_aside(tmp_path):
    """The witness that the pairs above are told apart by the comparisons: MindSpore's cache
    (switched on by the user) gives the second process the first one's graphs. mdjac stores nothing then."""
    env = dict(MS_COMPILER_CACHE_ENABLE="1", MS_COMPILER_CACHE_PATH=str(tmp_path / "ms"))
    first = run_child(["ewald:8", "coulomb+lj:8"], tmp_path / "store", **env)
    second = run_child(["exclusion:8", "lj+coulomb:8"], tmp_path / "store", **env)
    assert max(first["errors"].values()) < EXACT
    assert min(second["errors"].values()) > 1e-2, second["errors"]
    assert first["stored"] == second["stored"] == []
    assert second["stats"]["uncached"] == 2


@pytest.mark.slow
def test_a_wrong_file_under_a_key_would_be_seen(warm, tmp_path):
    """Swap the stored files of two keys: the loaded graphs give wrong numbers, so the checks above
    compare results of graphs really loaded from the store."""
    store, first = warm
    store = copy_of(store, tmp_path)
    a, b = (store / f"{first['keys'][op]}.mindir" for op in ("ewald:8", "exclusion:8"))
    graph_a, graph_b = a.read_bytes(), b.read_bytes()
    assert graph_a != graph_b
    a.write_bytes(graph_b)
    b.write_bytes(graph_a)
    got = run_child(["ewald:8", "exclusion:8"], store)
    assert got["stats"]["loaded"] == 2
    assert min(got["errors"].values()) > 1e-2, got["errors"]


@pytest.mark.slow
def test_foreign_compiles_and_a_miscounted_index_give_right_graphs(warm, tmp_path):
    """A jit function that is not mdjac's compiles between mdjac's, and mdjac's count of
    MindSpore's index is pushed off by one either way: nothing wrong is loaded (the staged file
    is at an index MindSpore does not use; it recompiles)."""
    store, _ = warm
    got = run_child(["userjit", "ewald:8", "bump", "exclusion:8", "userjit", "unbump", "coulomb+lj:8",
                     "lj+coulomb:8"], copy_of(store, tmp_path))
    assert max(got["errors"].values()) < EXACT, got["errors"]
    assert got["stats"]["loaded"] == 1            # ewald:8; after the miscount MindSpore loads nothing more
    got = run_child(["ewald:8", "unbump", "exclusion:8", "lj+coulomb:8"], copy_of(store, tmp_path / "b"))
    assert max(got["errors"].values()) < EXACT, got["errors"]
    assert got["stats"]["loaded"] == 1


@pytest.mark.slow
def test_corrupt_stored_files_are_recompiled(warm, tmp_path):
    store = copy_of(warm[0], tmp_path)
    for i, path in enumerate(sorted(store.iterdir())):
        data = path.read_bytes()
        path.write_bytes(b"not a graph" if i % 2 else data[: len(data) // 2])
    got = run_child(ORDER, store)
    assert max(got["errors"].values()) < EXACT, got["errors"]
    assert got["stats"]["loaded"] == 0


@pytest.mark.slow
def test_switched_off(tmp_path):
    got = run_child(["ewald:8", "exclusion:8"], tmp_path / "store", MDJAC_COMPILE_CACHE="0")
    assert max(got["errors"].values()) < EXACT
    assert got["stored"] == [] and got["stats"] == {"loaded": 0, "stored": 0, "uncached": 2}


# ----------------------------------------------------------------------------- keys, in this process
SIGNATURE = (((8,), "Float64"), ((8,), "Float64"), ((8,), "Float64"))
CHARGES = np.array([0.5, -0.5, 0.3, -0.3])


def key(fn, signature=SIGNATURE, kind="elementwise_derivatives"):
    return compile_cache.graph_key(kind, fn, signature)


def test_key_names_the_function_its_constants_and_its_inputs():
    ewald = terms.Coulomb(CHARGES, cutoff=1.0, method="ewald", alpha=3.0)
    assert key(ewald.radial_energy) == key(terms.Coulomb(CHARGES.copy(), cutoff=1.0, method="ewald", alpha=3.0).radial_energy)
    others = [terms.Coulomb(CHARGES, cutoff=1.0, method="dsf", alpha=3.0).radial_energy,
              terms.Coulomb(CHARGES, cutoff=1.0, method="ewald", alpha=3.5).radial_energy,
              terms.Coulomb(CHARGES, cutoff=1.1, method="ewald", alpha=3.0).radial_energy,
              terms.Coulomb(CHARGES * 2, cutoff=1.0, method="ewald", alpha=3.0).radial_energy,
              terms.EwaldExclusion(CHARGES, [[0, 1]], alpha=3.0).radial_energy]
    keys = {key(ewald.radial_energy)} | {key(f) for f in others}
    keys |= {key(ewald.radial_energy, SIGNATURE[:2] + (((8,), "Float32"),)),
             key(ewald.radial_energy, (((16,), "Float64"),) * 3),
             key(ewald.radial_energy, kind="energy_and_gradient")}
    assert None not in keys and len(keys) == len(others) + 4


def test_key_follows_a_changed_class_attribute(monkeypatch):
    ewald = terms.Coulomb(CHARGES, cutoff=1.0, method="ewald", alpha=3.0)
    before = key(ewald.radial_energy)
    monkeypatch.setattr(type(ewald), "radial", False, raising=False)
    assert key(ewald.radial_energy) != before


def test_functions_from_outside_mdjac_are_not_cached():
    def outside(r, qq):
        return qq / r
    assert key(outside) is None
    term = terms.Coulomb(CHARGES, cutoff=1.0)
    for unknown in (outside, np.ma.masked_array([1.0, 2.0], mask=[0, 1]), [1.0, 2.0].copy, object()):
        term.extra = unknown                 # an attribute the graph might read
        assert key(term.radial_energy) is None, unknown
    term.extra = np.array([1.0, 2.0])
    assert key(term.radial_energy) is not None


def test_staging_of_killed_processes_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(compile_cache.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = 2 * 3600
    dirs = {name: tmp_path / name for name in (f"mdjac-compile-{dead.stdout.strip()}-a", f"mdjac-compile-{os.getpid()}-b",
                                                f"mdjac-compile-{dead.stdout.strip()}-recent", "mdjac-compile-other")}
    for name, path in dirs.items():
        (path / "rank_0").mkdir(parents=True)
        if "recent" not in name:
            os.utime(path, (path.stat().st_atime - old, path.stat().st_mtime - old))
    compile_cache._remove_stale_staging()
    assert [p.exists() for p in dirs.values()] == [False, True, True, True]
