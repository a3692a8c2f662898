"""The fast paths against the general ones and against independent references.

* the radial route for pair terms (phi', phi'' by AD of the energy of r, blocks built in their
  stored order) against the general per-term replication (``Potential.radial = False``) and
  float64 finite differences on a periodic liquid (test_terms compares the routes for every pair
  term, test_potential on a system with every kind of term);
* ``kernel.elementwise_derivatives`` against the closed-form phi', phi'' of Lennard-Jones;
* ``assembly.radial_jacobian_rows`` (pattern, blocks h = phi'' uu^T + (phi'/r)(I - uu^T), row sums)
  and ``add_symmetric_blocks`` against ``assemble_blocks`` (a full sort) and the formula written out;
* ``assembly.merge_pair_keys`` + ``assembly.jacobian_rows`` (radial pairs and other terms' blocks
  merged into one pattern before it is written) against ``assemble_blocks``;
* ``VerletList`` against brute force along a random walk, open, rectangular and triclinic; ``pairs_within`` and
  ``pairs_without`` against brute force and ``excluded_mask``; pair terms' kept instances against
  a fresh potential along a walk.
"""
import numpy as np
import pytest

import mdjac
from mdjac import kernel, terms
from mdjac import assembly
from mdjac.jacobian import add_symmetric_blocks, assemble_blocks, upper_blocks
from mdjac.strategies.replicate import canonical_pairs
from mdjac.neighbours import VerletList, brute_force_pairs, excluded_mask, pair_keys, pairs_within, pairs_without

from helpers import both_routes

#: A triclinic box in OpenMM's reduced form (rows a, b, c, nm), its faces 1.87 to 2.0 nm apart.
SHEARED = np.array([[2.4, 0.0, 0.0], [0.8, 2.2, 0.0], [-1.1, 0.9, 2.0]])


def liquid(n=160, density=60.0, cutoff=0.55, seed=3):
    """A periodic two-type LJ + DSF liquid (jittered lattice): positions float64, Potential."""
    rng = np.random.default_rng(seed)
    edge = (n / density) ** (1 / 3)
    m = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    x = (grid[rng.choice(len(grid), n, replace=False)] + 0.5) * (edge / m) + rng.normal(scale=0.02, size=(n, 3))
    types = np.arange(n) % 2
    pot = mdjac.Potential([terms.LennardJones([0.25, 0.2], [0.6, 0.4], types, cutoff=cutoff),
                           terms.Coulomb(np.where(types == 0, 0.4, -0.4), cutoff=cutoff, method="dsf", alpha=2.0)],
                          box=[edge] * 3)
    return pot, x


def test_periodic_liquid_against_finite_differences(fd):
    pot, x = liquid()
    J = pot.force_jacobian(x)
    cols = np.array([0, 17, 101, 159])
    ref = fd.jacobian(pot, x, columns=cols)
    assert fd.rel_err(J.to_dense()[:, :, cols, :], ref) <= 1e-6
    (J1, _, f1), (J0, _, f0) = both_routes(pot, x)
    assert fd.rel_err(J1.blocks, J0.blocks) <= 1e-12 and fd.rel_err(f1, f0) <= 1e-12
    # translation invariance, which the diagonal is built from, holds for the whole matrix
    assert np.abs(J.to_dense().sum(axis=2)).max() <= 1e-9 * np.abs(J.blocks).max()


def test_elementwise_derivatives_match_closed_form():
    r = np.linspace(0.22, 0.9, 257)
    sigma, eps = np.full_like(r, 0.25), np.full_like(r, 0.7)
    lj = terms.LennardJones([0.25], [0.7], [0, 0])
    d1, d2 = kernel.elementwise_derivatives(lj.radial_energy, r, (sigma, eps))
    s6 = (sigma / r) ** 6
    np.testing.assert_allclose(d1, 4 * eps * (-12 * s6 * s6 + 6 * s6) / r, rtol=1e-12)
    np.testing.assert_allclose(d2, 4 * eps * (156 * s6 * s6 - 42 * s6) / r ** 2, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_radial_rows_equal_full_sort_and_formula(dtype):
    rng = np.random.default_rng(5)
    n = 40
    keys = np.unique(rng.integers(0, n * n, 300))
    pairs = np.stack([keys // n, keys % n], 1)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    m = len(pairs)
    d = rng.normal(size=(m, 3)).astype(dtype)
    r = np.sqrt((d.astype(np.float64) ** 2).sum(1)).astype(dtype)
    dphi, d2phi = rng.normal(size=m).astype(dtype), rng.normal(size=m).astype(dtype)
    u = d.astype(np.float64) / r[:, None]
    h = (d2phi[:, None, None] * u[:, :, None] * u[:, None, :]
         + (dphi / r)[:, None, None] * (np.eye(3) - u[:, :, None] * u[:, None, :]))
    ref_r, ref_c, ref_b = assemble_blocks(n, np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]],
                                          np.concatenate([h, h]))
    for given in (pairs, pairs[rng.permutation(m)][:, ::-1]):  # row-major, or any order and orientation
        canon = canonical_pairs(given)
        np.testing.assert_array_equal(canon, pairs)
        indptr = assembly.symmetric_row_pointers(n, canon)
        k = indptr[-1]
        rows, cols = np.empty(k, np.int64), np.empty(k, np.int64)
        blocks, rowsum = np.empty((k, 3, 3), dtype), np.zeros((n, 9))
        assembly.radial_jacobian_rows(canon, d, r, dphi, d2phi, indptr, rows, cols, blocks, rowsum)
        np.testing.assert_array_equal(rows, ref_r)
        np.testing.assert_array_equal(cols, ref_c)
        np.testing.assert_allclose(blocks, ref_b, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-4)
        off = (rows != cols)[:, None]
        np.testing.assert_allclose(rowsum, np.stack([np.bincount(rows, (blocks.reshape(-1, 9) * off)[:, e], minlength=n)
                                                     for e in range(9)], 1), rtol=0, atol=1e-10)
    with pytest.raises(mdjac.InputError, match="twice"):
        canonical_pairs(np.r_[pairs, pairs[:1, ::-1]])
    blocks = rng.normal(size=(len(rows), 3, 3))
    er, ec = rng.integers(0, n, 80), rng.integers(0, n, 80)
    er, ec = er[er != ec], ec[er != ec]
    eb = rng.normal(size=(len(er), 3, 3))
    R, C, B = add_symmetric_blocks(n, rows, cols, blocks.copy(), *upper_blocks(n, er, ec, eb))
    ref = assemble_blocks(n, np.r_[rows, er, ec], np.r_[cols, ec, er], np.concatenate([blocks, eb, eb.transpose(0, 2, 1)]))
    np.testing.assert_array_equal(R, ref[0])
    np.testing.assert_array_equal(C, ref[1])
    np.testing.assert_allclose(B, ref[2], rtol=0, atol=1e-13)


@pytest.mark.parametrize("box", [None, np.array([2.0, 2.2, 2.4]), SHEARED], ids=["open", "rectangular", "triclinic"])
def test_verlet_list_equals_brute_force_along_a_walk(box):
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 2.0, (300, 3))
    verlet = VerletList(0.6, skin=0.1)
    for _ in range(30):
        x = x + rng.normal(scale=0.012, size=x.shape)
        np.testing.assert_array_equal(verlet.pairs(x, box), brute_force_pairs(x, 0.6, box))
    assert 1 < verlet.builds < 30  # kept for some frames, rebuilt when atoms moved too far


def test_verlet_skin_is_cut_to_half_the_box():
    rng = np.random.default_rng(2)
    box = np.array([1.3, 1.3, 1.3])
    x = rng.uniform(0, 1.3, (120, 3))
    verlet = VerletList(0.6, skin=0.2)  # 0.6 + 0.2 > 0.65: the skin shrinks to 0.05
    np.testing.assert_array_equal(verlet.pairs(x, box), brute_force_pairs(x, 0.6, box))
    assert verlet.skin_used == 0.0      # a first list is searched at the cutoff
    x = x + 0.001                       # a small step: the rebuild takes the skin, cut to fit
    np.testing.assert_array_equal(verlet.pairs(x, box), brute_force_pairs(x, 0.6, box))
    assert verlet.skin_used == pytest.approx(0.05)


@pytest.mark.parametrize("box", [None, np.array([2.0, 2.2, 2.4])])
def test_verlet_list_far_apart_frames_search_without_skin(box):
    """Frames further apart than skin/2 would never reuse a list: each is searched at the cutoff."""
    rng = np.random.default_rng(5)
    verlet = VerletList(0.6, skin=0.1)
    for _ in range(4):
        x = rng.uniform(0, 2.0, (300, 3))
        np.testing.assert_array_equal(verlet.pairs(x, box), brute_force_pairs(x, 0.6, box))
        assert verlet.skin_used == 0.0
        np.testing.assert_array_equal(verlet.pairs(x, box), brute_force_pairs(x, 0.6, box))  # same frame: kept
    assert verlet.builds == 4


def test_merged_pattern_equals_full_sort():
    """Radial pairs and other terms' blocks (some on the same pairs, some not) in one pattern."""
    rng = np.random.default_rng(8)
    n = 30
    keys = np.unique(rng.integers(0, n * n, 200))
    keys = keys[keys // n < keys % n]
    extra_keys = np.unique(np.r_[keys[::5], rng.integers(0, n * n, 60)])      # shared and new pairs
    extra_keys = extra_keys[extra_keys // n < extra_keys % n]
    pairs, epairs = np.stack([keys // n, keys % n], 1), np.stack([extra_keys // n, extra_keys % n], 1)
    m = len(pairs)
    d = rng.normal(size=(m, 3))
    r = np.sqrt((d ** 2).sum(1))
    dphi, d2phi = rng.normal(size=m), rng.normal(size=m)
    extra = rng.normal(size=(len(epairs), 3, 3))       # not symmetric: J_ji is its transpose
    u = d / r[:, None]
    h = (d2phi[:, None, None] * u[:, :, None] * u[:, None, :]
         + (dphi / r)[:, None, None] * (np.eye(3) - u[:, :, None] * u[:, None, :]))
    ref = assemble_blocks(n, np.r_[pairs[:, 0], pairs[:, 1], epairs[:, 0], epairs[:, 1]],
                          np.r_[pairs[:, 1], pairs[:, 0], epairs[:, 1], epairs[:, 0]],
                          np.concatenate([h, h, extra, extra.transpose(0, 2, 1)]))
    merged, radial, where = assembly.merge_pair_keys(keys, extra_keys, n)
    np.testing.assert_array_equal(merged[:, 0] * n + merged[:, 1], np.union1d(keys, extra_keys))
    indptr = assembly.symmetric_row_pointers(n, merged)
    k = indptr[-1]
    rows, cols, blocks, rowsum = np.empty(k, np.int64), np.empty(k, np.int64), np.empty((k, 3, 3)), np.zeros((n, 9))
    assembly.jacobian_rows(merged, radial, d, r, dphi, d2phi, where, extra, indptr, rows, cols, blocks, rowsum)
    np.testing.assert_array_equal(rows, ref[0])
    np.testing.assert_array_equal(cols, ref[1])
    np.testing.assert_allclose(blocks, ref[2], rtol=0, atol=1e-13)
    radial_sum = np.zeros((n, 9))                      # the row sums are the radial blocks' only
    np.add.at(radial_sum, pairs[:, 0], h.reshape(-1, 9))
    np.add.at(radial_sum, pairs[:, 1], h.reshape(-1, 9))
    np.testing.assert_allclose(rowsum, radial_sum, rtol=0, atol=1e-13)


@pytest.mark.parametrize("box", [None, np.array([2.0, 2.2, 2.4]), SHEARED], ids=["open", "rectangular", "triclinic"])
def test_pairs_within_and_without(box):
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 2.0, (200, 3))
    wide = brute_force_pairs(x, 0.7, box)
    np.testing.assert_array_equal(pairs_within(x, wide, box, 0.5), brute_force_pairs(x, 0.5, box))
    excluded = np.unique(np.r_[pair_keys(wide[::7, 0], wide[::7, 1], 200), rng.integers(0, 200 * 200, 50)])
    expected = wide[~excluded_mask(pair_keys(wide[:, 0], wide[:, 1], 200), excluded)]
    np.testing.assert_array_equal(pairs_without(wide, excluded, 200), expected)
    shuffled = wide[rng.permutation(len(wide))]       # not row-major: the fallback
    kept = pairs_without(shuffled, excluded, 200)
    np.testing.assert_array_equal(kept, shuffled[~np.isin(pair_keys(shuffled[:, 0], shuffled[:, 1], 200), excluded)])


def test_pair_displacements_and_force_scatter_equal_numpy():
    """The compiled pair loops against numpy: minimum-image displacements and distances, and the
    scatter of pair forces against np.add.at."""
    rng = np.random.default_rng(8)
    box = np.array([2.0, 2.2, 2.4])
    x = rng.uniform(0, 2.0, (300, 3))
    pairs = brute_force_pairs(x, 0.8, box)
    dphi = rng.normal(size=len(pairs))
    d, r = np.empty((len(pairs), 3)), np.empty(len(pairs))
    assembly.pair_displacements(x, pairs, np.diag(box), d, r)
    forces = np.zeros((300, 3))
    assembly.radial_pair_forces(pairs, d, r, dphi, forces)
    e = x[pairs[:, 1]] - x[pairs[:, 0]]
    np.testing.assert_allclose(d, e - box * np.round(e / box), rtol=0, atol=1e-14)
    np.testing.assert_allclose(r, np.linalg.norm(d, axis=1), rtol=1e-15, atol=0)
    reference = np.zeros((300, 3))
    np.add.at(reference, pairs[:, 0], (dphi / r)[:, None] * d)
    np.add.at(reference, pairs[:, 1], -(dphi / r)[:, None] * d)
    np.testing.assert_allclose(forces, reference, rtol=0, atol=1e-12)


def test_kept_pair_instances_follow_the_frames():
    """A frame's pairs and parameters are kept for its Jacobian and renewed for the next frame."""
    pot, x = liquid()
    rng = np.random.default_rng(6)
    walk = [x, x + rng.normal(scale=0.01, size=x.shape), x]
    for y in walk:
        e, f = pot.energy_and_forces(y)
        fresh, _ = liquid()
        e0, f0 = fresh.energy_and_forces(y)
        assert e == e0
        np.testing.assert_array_equal(f, f0)
        np.testing.assert_array_equal(pot.force_jacobian(y).blocks, fresh.force_jacobian(y).blocks)
    config = pot.configuration(x)
    assert pot.terms[0].instances(config)[0] is pot.terms[0].instances(pot.configuration(x.copy()))[0]
