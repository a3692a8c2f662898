"""Ewald electrostatics (mdjac.longrange.ewald) against independent references.

* OpenMM's NonbondedForce with the Ewald method (Reference platform, double precision) at the
  same error tolerance: energy and forces to 1e-9 relative, on the catalogue's periodic SPC/E water
  box (3,000 atoms) and on small systems with scaled 1-4 exceptions, net charge and an
  orthorhombic box; a coarser k grid is shown to miss (the comparison can fail);
* float64 central differences of OpenMM's forces: columns of the structured Jacobian (its matvec,
  long-range part included) to 1e-6 relative;
* the dense strategy (the article's identity mask over the whole potential as one function of all
  positions) on a small box: the structured Jacobian to 1e-10;
* the hand-derived block-diagonal formula of the reciprocal Hessian (a reference written here);
* brute-force numpy sums over the full k cube for the reciprocal energy.
"""
import math

import numpy as np
import pytest
import scipy.sparse.linalg

import mdjac
from mdjac import terms
from mdjac.analysis.modes import LANCZOS_TOL
from mdjac.longrange import ewald
from mdjac import long_range_jacobian
from mdjac.jacobian import ForceJacobian
from mdjac.numerical import central_difference_columns

from helpers import SPCE_CHARGES, atoms_away_from_cutoff, read_without_mindspore, rel, small_waters, water_exclusions

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402
from openmm_reference import charges_energy_forces, openmm_context  # noqa: E402



# ----------------------------------------------------------------------------- systems and the OpenMM reference
def water_box_arrays(system):
    """The catalogue's water box (the ``water_box`` fixture): positions (3000, 3) nm, SPC/E charges,
    intramolecular exclusions, box (3,) nm."""
    x, box = np.asarray(system.positions, dtype=np.float64), np.asarray(system.box, dtype=np.float64)
    n_waters = len(x) // 3
    return x, np.tile(SPCE_CHARGES, n_waters), water_exclusions(n_waters), box


# ----------------------------------------------------------------------------- the water box against OpenMM
@pytest.fixture(scope="module")
def water(water_box):
    x, charges, exclusions, box = water_box_arrays(water_box)
    cutoff, tolerance = 1.0, 5e-4
    pot = mdjac.Potential(ewald.ewald_terms(charges, cutoff, box, exclusions=exclusions, tolerance=tolerance), box=box)
    context = openmm_context(charges, exclusions, box, cutoff, tolerance)
    return pot, x, context


@pytest.fixture(scope="module")
def water_jacobian(water):
    """The structured force Jacobian of the 3,000-atom box (computed once for the module)."""
    pot, x = water[:2]
    return pot.force_jacobian(x)


@pytest.mark.slow
def test_water_box_energy_and_forces_equal_openmm(water):
    pot, x, context = water
    e_ref, f_ref = charges_energy_forces(context, x)
    e, f = pot.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-9, (e, e_ref)
    assert rel(f, f_ref) < 1e-9


@pytest.mark.slow
def test_parameters_are_openmms_a_coarser_grid_misses(water, water_box):
    """The same tolerance gives OpenMM's alpha and k grid: one k shell less is far off at 1e-9."""
    pot, x, context = water
    reciprocal = pot.long_range_terms[0]
    assert reciprocal.alpha == pytest.approx(math.sqrt(-math.log(1e-3)) / 1.0, rel=1e-15)
    e_ref, _ = charges_energy_forces(context, x)
    coarse_terms = ewald.ewald_terms(reciprocal.charges, 1.0, pot.box, exclusions=water_box_arrays(water_box)[2],
                                     alpha=reciprocal.alpha, kmax=reciprocal.kmax - 1)
    e_coarse = mdjac.Potential(coarse_terms, box=pot.box).energy(x)
    assert abs(e_coarse - e_ref) / abs(e_ref) > 1e-7


@pytest.mark.slow
def test_water_box_jacobian_columns_equal_central_differences_of_openmm_forces(water, water_jacobian):
    """A sample of columns J e_j (matvec, long-range part included) against float64 central
    differences of OpenMM's forces. Columns are atoms with no pair within 1e-3 nm of the cutoff,
    so that the truncated direct space is smooth over the step."""
    pot, x, context = water
    J = water_jacobian
    assert J.long_range is not None
    smooth = atoms_away_from_cutoff(x, pot.box, 1.0, 1e-3)
    rng = np.random.default_rng(1)
    columns = rng.choice(smooth, size=4, replace=False)
    flat = (3 * columns[:, None] + np.arange(3)).ravel()
    fd = central_difference_columns(lambda y: charges_energy_forces(context, y)[1], x, flat)
    unit_vectors = np.zeros((3 * len(x), len(flat)))
    unit_vectors[flat, np.arange(len(flat))] = 1.0
    got = J.matvec(unit_vectors)
    for c in range(len(flat)):
        assert rel(got[:, c], fd[:, c]) < 1e-6, flat[c]


@pytest.mark.slow
def test_water_box_structured_parts_agree(water, water_jacobian):
    """diagonal(), matvec and a partial Jacobian of the 3,000-atom box are consistent with each other."""
    pot, x, _ = water
    J = water_jacobian
    rng = np.random.default_rng(2)
    sel = np.sort(rng.choice(len(x), size=40, replace=False))
    part = pot.force_jacobian(x, atoms=sel)
    assert part.long_range is not None and part.long_range.n == 40
    sub = part.to_dense()
    assert rel(sub, J.select(sel).to_dense()) < 1e-12
    # the partial Jacobian's columns are the full one's, restricted to the selection
    v = np.zeros((len(x), 3))
    v[sel] = rng.normal(size=(40, 3))
    full = J.matvec(v)[sel]
    assert rel(sub.reshape(120, 120) @ v[sel].ravel(), full.ravel()) < 1e-12
    assert rel(J.diagonal()[sel], np.einsum("iaib->iab", sub)) < 1e-12
    with pytest.raises(mdjac.InputError, match="short_range_only=True"):
        J.to_bsr()
    short = J.to_bsr(short_range_only=True)
    assert short.nnz == J.nnz_blocks * 9


# ----------------------------------------------------------------------------- small systems against OpenMM
@pytest.mark.parametrize("box", [(1.6, 1.6, 1.6), (1.5, 1.8, 2.1)])
def test_small_waters_equal_openmm(box):
    box = np.array(box)
    x, charges, exclusions = small_waters(27, box)
    pot = mdjac.Potential(ewald.ewald_terms(charges, 0.7, box, exclusions=exclusions, tolerance=1e-5), box=box)
    e_ref, f_ref = charges_energy_forces(openmm_context(charges, exclusions, box, 0.7, 1e-5), x)
    e, f = pot.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-9
    assert rel(f, f_ref) < 1e-9


def test_exceptions_and_net_charge_equal_openmm():
    """Scaled 1-4 pairs as OpenMM handles them: chargeProd / r plus the full-charge erf correction;
    random, non-neutral charges."""
    box = np.array([1.6, 1.7, 1.8])
    x, _, exclusions = small_waters(20, box, seed=3)
    rng = np.random.default_rng(4)
    charges = rng.uniform(-0.9, 0.9, size=len(x))
    # exception pairs: atoms of neighbouring molecules closer than 0.45 nm without wrapping
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    i, j = np.triu_indices(len(x), k=1)
    near = (d[i, j] < 0.45) & (i // 3 != j // 3)
    pairs = np.stack([i[near], j[near]], 1)[:25]
    products = 0.5 * charges[pairs[:, 0]] * charges[pairs[:, 1]] * rng.uniform(0.5, 1.5, size=len(pairs))
    context = openmm_context(charges, exclusions, box, 0.75, 1e-4, exceptions=[(a, b, c) for (a, b), c in zip(pairs, products)])
    e_ref, f_ref = charges_energy_forces(context, x)
    pot = mdjac.Potential(ewald.ewald_terms(charges, 0.75, box, exclusions=exclusions, exceptions=(pairs, products),
                                            tolerance=1e-4), box=box)
    e, f = pot.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-9
    assert rel(f, f_ref) < 1e-9


# ----------------------------------------------------------------------------- the Jacobian on a small box
@pytest.fixture(scope="module")
def small():
    box = np.array([1.5, 1.5, 1.5])
    x, charges, exclusions = small_waters(27, box, seed=5)
    bonds = terms.HarmonicBond(exclusions[exclusions[:, 1] - exclusions[:, 0] == 1][::1], k=3e5, r0=0.1)
    pot = mdjac.Potential([bonds] + ewald.ewald_terms(charges, 0.7, box, exclusions=exclusions, tolerance=5e-4), box=box)
    return pot, x


@pytest.fixture(scope="module")
def small_dense(small):
    """The dense strategy's Jacobian of the small box (the article's identity mask over the whole
    potential), the reference of several tests: computed once, as each call compiles anew."""
    pot, x = small
    return pot.force_jacobian(x, strategy="dense")


def test_structured_jacobian_equals_dense_strategy(small, small_dense):
    pot, x = small
    J = pot.force_jacobian(x)
    dense = small_dense
    assert J.long_range is not None and dense.long_range is None
    ref = dense.to_dense()
    assert rel(J.to_dense(), ref) < 1e-10
    assert rel(J.diagonal(), dense.diagonal()) < 1e-10
    v = np.random.default_rng(6).normal(size=(len(x), 3))
    assert rel(J.matvec(v).ravel(), ref.reshape(3 * len(x), -1) @ v.ravel()) < 1e-10
    op = J.as_linear_operator()
    assert rel(op @ v.ravel(), ref.reshape(3 * len(x), -1) @ v.ravel()) < 1e-10
    # to_bsr() of a small structured Jacobian includes the long-range part (dense within the BSR)
    assert rel(J.to_bsr().toarray(), ref.reshape(3 * len(x), -1)) < 1e-10
    sel = [0, 5, 17, 40, 80]
    assert rel(pot.force_jacobian(x, atoms=sel).to_dense(), dense.select(sel).to_dense()) < 1e-10


def test_structured_jacobian_equals_central_differences(small, fd):
    pot, x = small
    J = pot.force_jacobian(x).to_dense()
    cols = [0, 13, 44]
    assert fd.rel_err(J[:, :, cols, :], fd.jacobian(pot, x, columns=cols)) < 1e-6


def test_low_rank_matvec_in_blocks_kept_or_rebuilt_equals_dense(small, small_dense, monkeypatch):
    """The long-range matvec on m vectors at once, in blocks of a few wave vectors, with the factors
    kept or rebuilt at each use, equals the dense strategy's matrix times the vectors."""
    pot, x = small
    J = pot.force_jacobian(x)
    ref = small_dense.to_dense().reshape(3 * len(x), -1)
    V = np.random.default_rng(7).normal(size=(3 * len(x), 4))
    monkeypatch.setattr(long_range_jacobian, "MATVEC_BLOCK_BYTES", 8 * len(x) * 5)       # 16 wave vectors a block
    for cache_bytes in (0, None):
        J.long_range.cache_bytes, J.long_range._cache = cache_bytes, None
        assert rel(J.matvec(V), ref @ V) < 1e-10
        assert J.long_range.cached_bytes == (0 if cache_bytes == 0 else J.long_range.factor_bytes)


def test_reciprocal_block_diagonal_equals_hand_formula(small):
    """B_ii = sum_k 2 w_k q_i (C_k d2cos + S_k d2sin) = -sum_k 2 w_k q_i (C_k cos + S_k sin) k k^T (reference)."""
    pot, x = small
    rec = pot.long_range_terms[0]
    k, w = rec.kvectors_and_weights(pot.box)
    theta = x @ k.T
    c, s = rec.charges @ np.cos(theta), rec.charges @ np.sin(theta)
    ref = -np.einsum("ik,ka,kb->iab", 2 * w * rec.charges[:, None] * (c * np.cos(theta) + s * np.sin(theta)), k, k)
    atoms = np.arange(len(x))
    assert rel(rec.hessian_diagonal(pot.configuration(x), atoms), ref) < 1e-12
    # and the factors: g_k[i] = -q_i sin(k.r_i) k, h_k[i] = q_i cos(k.r_i) k
    g, h = rec.jacobian_part(pot.configuration(x), atoms).factors()
    assert rel(g, -(rec.charges[:, None] * np.sin(theta)).T[:, :, None] * k[:, None, :]) < 1e-12
    assert rel(h, (rec.charges[:, None] * np.cos(theta)).T[:, :, None] * k[:, None, :]) < 1e-12


def test_reciprocal_energy_is_half_the_full_k_cube(small):
    """OpenMM's half space with weights w_k equals half the sum over the whole cube |n_a| < kmax_a (numpy)."""
    pot, x = small
    rec = pot.long_range_terms[0]
    kmax = rec.kmax
    n = np.stack(np.meshgrid(*[np.arange(1 - m, m) for m in kmax], indexing="ij"), -1).reshape(-1, 3)
    n = n[np.any(n != 0, axis=1)]
    k = 2 * np.pi * n / pot.box
    k2 = (k * k).sum(1)
    rho = (rec.charges * np.exp(1j * (x @ k.T)).T).sum(1)
    e_full = 0.5 * np.sum(4 * np.pi * rec.coulomb_constant / np.prod(pot.box) * np.exp(-k2 / (4 * rec.alpha ** 2)) / k2
                          * np.abs(rho) ** 2)
    e, _ = rec.energy_and_forces(pot.configuration(x))
    assert (e - rec.constant_energy(pot.box)) == pytest.approx(e_full, rel=1e-12)
    assert len(rec.numbers) == len(n) // 2


def test_float32_positions_compute_in_float32(small):
    pot, x = small
    J32 = pot.force_jacobian(x.astype(np.float32))
    J64 = pot.force_jacobian(x)
    assert J32.dtype == np.float32 and J32.long_range.dtype == np.float32
    assert rel(J32.to_dense(), J64.to_dense()) < 1e-4
    v = np.random.default_rng(8).normal(size=(len(x), 3))
    assert rel(J32.matvec(v), J64.matvec(v)) < 1e-4


def test_lowest_modes_by_lanczos_equal_dense(small, small_dense):
    pot, x = small
    masses = np.tile([15.9994, 1.008, 1.008], len(x) // 3)
    J = pot.force_jacobian(x)
    lanczos = mdjac.normal_modes(J, masses, positions=x, project="periodic", k=6, method="sparse")
    dense = mdjac.normal_modes(small_dense, masses, positions=x, project="periodic", k=6)
    assert np.allclose(lanczos.eigenvalues, dense.eigenvalues, rtol=LANCZOS_TOL, atol=1e-6 * np.abs(dense.eigenvalues).max())


# ----------------------------------------------------------------------------- bad input
def test_bad_input():
    q = np.array([1.0, -1.0])
    with pytest.raises(mdjac.InputError, match="periodic box"):
        ewald.ewald_parameters(5e-4, 1.0, None)
    with pytest.raises(mdjac.InputError, match="tolerance"):
        ewald.ewald_parameters(0.0, 1.0, [3, 3, 3])
    with pytest.raises(mdjac.InputError, match="kmax"):
        ewald.EwaldReciprocal(q, alpha=3.0, kmax=[0, 3, 3])
    with pytest.raises(mdjac.InputError, match="not both"):
        ewald.EwaldReciprocal(q, alpha=3.0, kmax=[3, 3, 3], tolerance=5e-4, cutoff=1.0, box=[3, 3, 3])
    pot = mdjac.Potential([ewald.EwaldReciprocal(q, alpha=3.0, kmax=[3, 3, 3])])
    with pytest.raises(mdjac.InputError, match="no periodic box"):
        pot.energy(np.zeros((2, 3)))
    with pytest.raises(mdjac.InputError, match="explicit pairs"):
        terms.Coulomb(q, charge_products=[1.0])
    J = ForceJacobian(2, [0, 1], [0, 1], np.zeros((2, 3, 3)))
    with pytest.raises(mdjac.InputError, match="shape"):
        J.matvec(np.zeros(5))


def test_two_long_range_terms_add():
    """Two long-range terms (as LJ-PME's two meshes): energies, forces and Jacobians are the sums of each alone;
    the Jacobian's long-range part is their sum (PartSum), a diagonal and a matvec included."""
    x = np.array([[0.1, 0.2, 0.3], [0.9, 1.1, 0.4], [1.6, 0.3, 2.2]])
    box = [3.0, 3.0, 3.0]
    first = ewald.EwaldReciprocal(np.array([0.5, -0.3, -0.2]), alpha=3.0, kmax=[4, 4, 4])
    second = ewald.EwaldReciprocal(np.array([0.2, 0.1, -0.3]), alpha=2.0, kmax=[3, 3, 3])
    both, one, other = (mdjac.Potential(t, box=box) for t in ([first, second], [first], [second]))
    assert both.energy(x) == pytest.approx(one.energy(x) + other.energy(x), rel=1e-12)
    assert np.allclose(both.forces(x), one.forces(x) + other.forces(x), rtol=1e-12, atol=1e-12)
    J = both.force_jacobian(x)
    parts = one.force_jacobian(x).to_dense() + other.force_jacobian(x).to_dense()
    assert np.allclose(J.to_dense(), parts, rtol=1e-12, atol=1e-10)
    assert np.allclose(J.diagonal(), np.einsum("iaib->iab", parts), rtol=1e-12, atol=1e-10)
    assert len(J.long_range.parts) == 2


# ----------------------------------------------------------------------------- H5MD
def test_h5md_stores_what_rebuilds_the_long_range_part(small, tmp_path):
    """Two frames (NPT: the box changes) written in float64 read back as the same whole Jacobians;
    the long-range recipe is a few kB; h5py alone sees it; a frame without the part is refused."""
    import h5py

    from mdjac.io.h5md_writer import H5MDWriter

    pot, x = small
    path = tmp_path / "ewald.h5md"
    boxes = [pot.box, pot.box * 1.01]
    frames = [x, x * 1.01 + 0.002]
    written = []
    with H5MDWriter(path, len(x), periodic=True, dtype=np.float64) as writer:
        for step, (y, box) in enumerate(zip(frames, boxes)):
            J = pot.force_jacobian(y, box=box)
            written.append(J.to_dense())
            writer.append(step, 0.1 * step, y, box=box, forces=pot.forces(y, box=box), jacobian=J)
        with pytest.raises(mdjac.InputError, match="every frame's Jacobian needs one"):
            writer.append(2, 0.2, x, box=pot.box, forces=pot.forces(x), jacobian=J.short_range())
    with mdjac.open_trajectory(str(path)) as traj:
        for k in range(2):
            back = traj[k].jacobian
            assert back.long_range is not None
            assert np.max(np.abs(back.to_dense() - written[k])) <= 1e-12 * np.max(np.abs(written[k]))
    with h5py.File(path, "r") as f:
        lr = f["particles/trajectory/force_jacobian/long_range"]
        assert lr.attrs["kind"] == "ewald-reciprocal-1"
        assert lr.attrs["kmax"].tolist() == pot.long_range_terms[0].kmax.tolist()
        stored = lr["charges"].id.get_storage_size() + 8 * 6
        assert stored < 4096
        # docs/h5md.md's numpy-alone J_lr v, from the file's recipe and frame 1's positions and box
        kmax, alpha, f_const, q = lr.attrs["kmax"], lr.attrs["alpha"], lr.attrs["coulomb_constant"], lr["charges"][()]
        r = f["particles/trajectory/position/value"][1]
        L = f["particles/trajectory/box/edges/value"][1]
    grid = np.stack(np.meshgrid(np.arange(0, kmax[0]), np.arange(1 - kmax[1], kmax[1]), np.arange(1 - kmax[2], kmax[2]),
                                indexing="ij"), -1).reshape(-1, 3)
    n = grid[(grid[:, 0] > 0) | ((grid[:, 0] == 0) & (grid[:, 1] > 0)) | ((grid[:, 0] == 0) & (grid[:, 1] == 0) & (grid[:, 2] > 0))]
    k = 2 * np.pi * n / L
    w = 4 * np.pi * f_const / np.prod(L) * np.exp(-(k * k).sum(1) / (4 * alpha ** 2)) / (k * k).sum(1)
    theta = r @ k.T
    g, h = -q[:, None] * np.sin(theta), q[:, None] * np.cos(theta)
    v = np.random.default_rng(7).normal(size=r.shape)
    kv = v @ k.T
    jlr_v = -2 * ((g * (w * (g * kv).sum(0))) @ k + (h * (w * (h * kv).sum(0))) @ k)
    J1 = pot.force_jacobian(frames[1], box=boxes[1])
    assert rel(J1.long_range.matvec(v), jlr_v) < 1e-12


def test_reading_an_ewald_jacobian_needs_no_mindspore(small, tmp_path):
    """mdjac.io opens an H5MD file holding an Ewald Jacobian and reads it, long-range part included,
    in a fresh process that never imports MindSpore (the part is data: mdjac.long_range_jacobian)."""
    from mdjac.io.h5md_writer import H5MDWriter

    pot, x = small
    path = tmp_path / "ewald.h5md"
    J = pot.force_jacobian(x)
    with H5MDWriter(path, len(x), periodic=True, dtype=np.float64) as writer:
        writer.append(0, 0.0, x, box=pot.box, forces=pot.forces(x), jacobian=J)
    got = read_without_mindspore(path, "J.nnz_blocks, J.long_range.n, len(J.long_range.kvectors), J.long_range.kind")
    assert got == [str(J.nnz_blocks), str(len(x)), str(len(J.long_range.kvectors)), "ewald-reciprocal-1"]


def test_mdjac_modes_reads_the_whole_jacobian_from_a_file(small, small_dense, tmp_path, capsys):
    """``mdjac modes`` on an H5MD file with a long-range part: the lowest modes of the whole
    Jacobian (rebuilt from the file), equal to those of the dense strategy's Jacobian."""
    from mdjac.cli import main
    from mdjac.io.h5md_writer import H5MDWriter

    pot, x = small
    masses = np.tile([15.9994, 1.008, 1.008], len(x) // 3)
    path = tmp_path / "modes.h5md"
    with H5MDWriter(path, len(x), masses=masses, periodic=True, dtype=np.float64) as writer:
        writer.append(0, 0.0, x, box=pot.box, forces=pot.forces(x), jacobian=pot.force_jacobian(x))
    assert main(["info", str(path)]) == 0
    assert "long range       Ewald reciprocal sum (kmax [5, 5, 5]" in capsys.readouterr().out
    assert main(["modes", str(path), "-k", "4"]) == 0
    table = capsys.readouterr().out
    printed = [float(line.split()[1]) for line in table.splitlines()[3:7]]
    ref = mdjac.normal_modes(small_dense, masses, positions=x, project="periodic", k=4)
    assert np.allclose(printed, ref.frequencies, atol=2e-3)
