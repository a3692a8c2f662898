"""mdjac.kernel: the masked-grad primitive, per-term Hessians, colouring and decompression.

References: the article's example Jacobian built by hand in numpy (and checked by numpy finite
differences), hand-derived Hessians of simple energies, and brute-force checks of the colouring.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import mindspore as ms
from mindspore import ops

from mdjac import kernel
from mdjac.neighbours import brute_force_pairs


# ----------------------------------------------------------------------------- the article's example
X_ART = np.array([1.0, 2.0, 3.0])
Y_ART = np.array([[1.0], [2.0], [3.0]])
INDEX_ART = np.array([0, 2, 1])


def article_numpy(x):
    """f(x)_i = y[index_i] * x[index_i], in numpy."""
    return Y_ART[INDEX_ART, 0] * x[INDEX_ART]


def article_expected():
    """The Jacobian by hand: row i has one entry, y[index_i], at column index_i."""
    J = np.zeros((3, 3))
    J[np.arange(3), INDEX_ART] = Y_ART[INDEX_ART, 0]
    return J


def article_batched(X, y, index):
    """MindSpore f on copies X (C, 3) -> (C, 3); copy c's outputs depend only on copy c."""
    return ops.gather(y, index, 0)[:, 0] * ops.gather(X, index, 1)


def article_single(x, y, index):
    """MindSpore f on one x (3,) -> (3,)."""
    return ops.gather(y, index, 0)[:, 0] * ops.gather(x, index, 0)


def test_article_reference_is_right():
    """The hand-built expectation equals numpy central differences and the article's matrix."""
    h = 1e-6
    fd = np.stack([(article_numpy(X_ART + h * e) - article_numpy(X_ART - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(article_expected(), fd, atol=1e-8)
    assert article_expected().tolist() == [[1, 0, 0], [0, 0, 3], [0, 2, 0]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_article_example_identity_colouring(dtype):
    R = kernel.row_compressed_jacobian(article_batched, X_ART.astype(dtype), np.arange(3), 3,
                                       args=(Y_ART.astype(dtype), INDEX_ART))
    assert R.dtype == dtype
    np.testing.assert_array_equal(R, article_expected())


def test_article_example_unbatched():
    R = kernel.row_compressed_jacobian(article_single, X_ART, np.arange(3), 3, args=(Y_ART, INDEX_ART), batched=False)
    np.testing.assert_array_equal(R, article_expected())


def test_compression_sums_rows_of_a_colour():
    """Two output rows in one copy come back summed: R[c] = sum of Jacobian rows coloured c."""
    colours = np.array([0, 1, 0])
    R = kernel.row_compressed_jacobian(article_batched, X_ART, colours, 2, args=(Y_ART, INDEX_ART), cache=False)
    J = article_expected()
    np.testing.assert_array_equal(R, np.stack([J[0] + J[2], J[1]]))


# ----------------------------------------------------------------------------- per-term replication
def quadratic_sine_energy(q, A, s):
    """E_m = 1/2 qf^T A_m qf + sum(s_m * sin(qf)), qf = q_m flattened (c*3,)."""
    qf = q.reshape(q.shape[:-2] + (-1,))
    Aq = (A * qf.expand_dims(-2)).sum(-1)
    return 0.5 * (qf * Aq).sum(-1) + (s * ops.sin(qf)).sum(-1)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_term_hessians_match_hand_derivation(dtype, tol):
    rng = np.random.default_rng(3)
    m, c = 5, 3
    q = rng.normal(size=(m, c, 3))
    A = rng.normal(size=(m, 3 * c, 3 * c))
    s = rng.normal(size=(m, 3 * c))
    H = kernel.term_hessians(quadratic_sine_energy, q.astype(dtype), (A.astype(dtype), s.astype(dtype)))
    assert H.shape == (m, c, 3, c, 3) and H.dtype == dtype
    qf = q.reshape(m, -1)
    ref = 0.5 * (A + A.transpose(0, 2, 1))
    ref[:, np.arange(3 * c), np.arange(3 * c)] += -s * np.sin(qf)
    got = H.reshape(m, 3 * c, 3 * c)
    assert np.max(np.abs(got - ref)) <= tol * np.max(np.abs(ref))


# ----------------------------------------------------------------------------- colouring and decompression
def pair_cos_energy(X, pairs, c, w, a):
    """E = sum_p c_p |d_p|^4 / 4 + sum_i w_i cos(a . x_i) on copies X (C, N, 3) -> (C,)."""
    d = ops.gather(X, pairs[:, 1], 1) - ops.gather(X, pairs[:, 0], 1)
    dd = (d * d).sum(-1)
    return (0.25 * c * dd * dd).sum(-1) + (w * ops.cos((X * a).sum(-1))).sum(-1)


def pair_cos_hessian(x, pairs, c, w, a):
    """Hand-derived dense Hessian (N, 3, N, 3) of :func:`pair_cos_energy`."""
    n = len(x)
    H = np.zeros((n, 3, n, 3))
    for p, (i, j) in enumerate(pairs):
        d = x[j] - x[i]
        K = c[p] * (d @ d * np.eye(3) + 2 * np.outer(d, d))
        H[i, :, i] += K
        H[j, :, j] += K
        H[i, :, j] -= K
        H[j, :, i] -= K
    for i in range(n):
        H[i, :, i] += -w[i] * np.cos(a @ x[i]) * np.outer(a, a)
    return H


def test_coloured_hessian_blocks_decompress_exactly():
    rng = np.random.default_rng(11)
    n = 14
    x = rng.uniform(0, 2, (n, 3))
    pairs = brute_force_pairs(x, 0.9)
    assert len(pairs) > n // 2
    c, w, a = rng.uniform(1, 3, len(pairs)), rng.uniform(-2, 2, n), np.array([0.7, -1.1, 0.4])
    colours = kernel.distance2_colouring(n, pairs)
    assert colours.max() + 1 < n  # a real compression, not the identity
    rows, cols, blocks = kernel.coloured_hessian_blocks(
        kernel.instance_gradient_of(pair_cos_energy), x, pairs, colours,
        args=(pairs.astype(np.int32), c, w, a), batched=True, cache=False)
    H = pair_cos_hessian(x, pairs, c, w, a)
    got = np.zeros_like(H)
    got[rows, :, cols, :] = blocks
    assert np.max(np.abs(got - H)) <= 1e-12 * np.max(np.abs(H))


def check_distance2(n, pairs, colours):
    """Brute force: two atoms of one colour are neither adjacent nor share a neighbour."""
    A = np.zeros((n, n), dtype=np.int64)
    A[pairs[:, 0], pairs[:, 1]] = A[pairs[:, 1], pairs[:, 0]] = 1
    conflict = (A + A @ A) > 0
    np.fill_diagonal(conflict, False)
    same = colours[:, None] == colours[None, :]
    np.fill_diagonal(same, False)
    bad = np.argwhere(same & conflict)
    assert len(bad) == 0, f"atoms {bad[0].tolist()} share colour {colours[bad[0][0]]} but are within distance 2"
    return A


def lattice(m):
    return np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(float)


def test_distance2_colouring_on_lattice_is_valid_and_bounded():
    counts = {}
    for m in (4, 8):
        x = lattice(m)
        pairs = brute_force_pairs(x, 1.1)  # the 6 nearest neighbours
        colours = kernel.distance2_colouring(len(x), pairs)
        assert colours.shape == (len(x),) and colours.min() == 0
        A = check_distance2(len(x), pairs, colours)
        counts[len(x)] = int(colours.max()) + 1
        # lower bound: an atom and its neighbours are pairwise within distance 2
        assert counts[len(x)] >= A.sum(1).max() + 1
        # greedy upper bound: at most (atoms within distance 2) colours
        assert counts[len(x)] <= ((A + A @ A + np.eye(len(x), dtype=int)) > 0).sum(1).max()
    assert abs(counts[64] - counts[512]) <= 4, counts
    assert counts[512] <= 25, counts


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), density=st.floats(0.0, 0.4), seed=st.integers(0, 2 ** 32 - 1))
def test_distance2_colouring_random_graphs(n, density, seed):
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, k=1)
    keep = rng.random(len(i)) < density
    pairs = np.stack([i[keep], j[keep]], 1)
    colours = kernel.distance2_colouring(n, pairs)
    assert colours.shape == (n,) and np.all(colours >= 0)
    check_distance2(n, pairs, colours)


# ----------------------------------------------------------------------------- one compiled function per content
def coulomb_lj_derivatives(r, qq, sigma, eps):
    """phi'(r), phi''(r) of qq/r + 4 eps ((s/r)^12 - (s/r)^6), by hand (float64)."""
    s6 = (sigma / r) ** 6
    return (-qq / r ** 2 + 4 * eps * (-12 * s6 * s6 + 6 * s6) / r,
            2 * qq / r ** 3 + 4 * eps * (156 * s6 * s6 - 42 * s6) / r ** 2)


def test_equal_functions_share_one_compiled_function_and_unequal_ones_do_not():
    """A term group rebuilt from new, equal terms gets the compiled function of the first (no second
    compile), and it computes the second group's derivatives from the second group's parameters; groups
    that differ in what the graph computes (term order, a damped form, its alpha) get their own."""
    from mdjac import compile_cache, terms
    from mdjac.potential import TermGroup
    charges = np.array([0.5, -0.5, 0.3, -0.3])

    def group(order=(0, 1), **coulomb):
        made = (terms.Coulomb(charges.copy(), cutoff=1.0, **coulomb),
                terms.LennardJones([0.3], [0.5], np.zeros(4, int), cutoff=1.0))
        counts = [len(t.pair_params(np.array([0]), np.array([1]))) for t in made]
        return TermGroup(tuple(made[k] for k in order), tuple(counts[k] for k in order))

    first, again = group(), group()
    assert first.radial_energy != again.radial_energy        # two objects: the identity cache alone compiles twice
    kind = "elementwise_derivatives"
    assert kernel._compiled(first.radial_energy, kind) is kernel._compiled(again.radial_energy, kind)
    others = [group((1, 0)), group(method="dsf", alpha=3.0), group(method="ewald", alpha=3.0),
              group(method="ewald", alpha=3.5)]
    compiled = {id(kernel._compiled(g.radial_energy, kind)) for g in [first] + others}
    assert len(compiled) == len(others) + 1

    rng = np.random.default_rng(5)
    r = np.linspace(0.3, 0.9, 8)
    runs = []
    for g in (first, again):
        qq, sigma, eps = rng.uniform(-100, 100, 8), rng.uniform(0.25, 0.35, 8), rng.uniform(0.2, 1.0, 8)
        before = dict(compile_cache.STATS)
        got = kernel.elementwise_derivatives(g.radial_energy, r, (qq, sigma, eps))
        runs.append(sum(compile_cache.STATS.values()) - sum(before.values()))
        for d, ref in zip(got, coulomb_lj_derivatives(r, qq, sigma, eps)):
            assert np.max(np.abs(d - ref)) <= 1e-12 * np.max(np.abs(ref))
    assert runs == [1, 0]                  # the first group's call compiled (or loaded) its graph; the second none
    reversed_group = others[0]
    qq, sigma, eps = rng.uniform(-100, 100, 8), rng.uniform(0.25, 0.35, 8), rng.uniform(0.2, 1.0, 8)
    got = kernel.elementwise_derivatives(reversed_group.radial_energy, r, (sigma, eps, qq))   # same shapes, another graph
    for d, ref in zip(got, coulomb_lj_derivatives(r, qq, sigma, eps)):
        assert np.max(np.abs(d - ref)) <= 1e-12 * np.max(np.abs(ref))
