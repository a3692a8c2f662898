"""ForceJacobian and assemble_blocks as data, against a random dense symmetric reference (no MindSpore)."""
import numpy as np
import pytest
import scipy.sparse

from mdjac.errors import InputError
from mdjac.jacobian import ForceJacobian, assemble_blocks


def random_block_symmetric(rng, n, density=0.3):
    """Dense (n, 3, n, 3) symmetric matrix with a random block pattern; every diagonal block nonzero."""
    mask = rng.random((n, n)) < density
    mask = mask | mask.T | np.eye(n, dtype=bool)
    M = rng.normal(size=(3 * n, 3 * n))
    M = M + M.T
    D = M.reshape(n, 3, n, 3) * mask[:, None, :, None]
    return D, mask


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(5)
    n = 9
    D, mask = random_block_symmetric(rng, n)
    J = ForceJacobian.from_bsr(scipy.sparse.csr_matrix(D.reshape(3 * n, 3 * n)))
    return D, mask, J


def test_from_bsr_roundtrip_dense(reference):
    D, mask, J = reference
    n = len(mask)
    assert J.n_atoms == n and J.n == n and np.array_equal(J.atoms, np.arange(n))
    np.testing.assert_array_equal(J.to_dense(), D)
    assert J.nnz_blocks == mask.sum()
    assert J.dtype == np.float64


def test_to_bsr(reference):
    D, mask, J = reference
    n = len(mask)
    B = J.to_bsr()
    assert isinstance(B, scipy.sparse.bsr_matrix)
    assert B.shape == (3 * n, 3 * n) and B.blocksize == (3, 3)
    np.testing.assert_array_equal(B.toarray(), D.reshape(3 * n, 3 * n))
    # flattened index convention: atom r, component a is row 3 r + a
    r, a, c, b = 4, 2, 7, 1
    assert B.toarray()[3 * r + a, 3 * c + b] == D[r, a, c, b]


def test_diagonal_and_pattern(reference):
    D, mask, J = reference
    n = len(mask)
    np.testing.assert_array_equal(J.diagonal(), D[np.arange(n), :, np.arange(n), :])
    P = J.pattern()
    assert isinstance(P, scipy.sparse.csr_matrix) and P.dtype == bool
    np.testing.assert_array_equal(P.toarray(), mask)


def test_blocks_sorted_unique_and_element_convention(reference):
    D, mask, J = reference
    keys = J.rows * J.n + J.cols
    assert np.all(np.diff(keys) > 0)
    for k in range(J.nnz_blocks):
        np.testing.assert_array_equal(J.blocks[k], D[J.rows[k], :, J.cols[k], :])
    # symmetry survives the round trip as J_ij = J_ji^T
    lookup = {(r, c): b for r, c, b in zip(J.rows.tolist(), J.cols.tolist(), J.blocks)}
    for (r, c), b in lookup.items():
        np.testing.assert_array_equal(b, lookup[(c, r)].T)


def test_from_bsr_of_to_bsr_is_identity(reference):
    _, _, J = reference
    J2 = ForceJacobian.from_bsr(J.to_bsr())
    for attr in ("rows", "cols", "blocks", "atoms"):
        np.testing.assert_array_equal(getattr(J2, attr), getattr(J, attr))


@pytest.mark.parametrize("sel", [[0, 3, 4, 8], [7], [8, 2, 2, 5]])
def test_select_is_the_sub_blocks(reference, sel):
    D, mask, J = reference
    S = J.select(sel)
    keep = np.unique(sel)
    assert np.array_equal(S.atoms, keep) and S.n_atoms == J.n_atoms
    np.testing.assert_array_equal(S.to_dense(), D[np.ix_(keep, range(3), keep, range(3))])
    np.testing.assert_array_equal(S.pattern().toarray(), mask[np.ix_(keep, keep)])
    # select of a select, in global indices
    if len(keep) > 1:
        S2 = S.select(keep[1:])
        np.testing.assert_array_equal(S2.to_dense(), D[np.ix_(keep[1:], range(3), keep[1:], range(3))])
        with pytest.raises(InputError):
            S2.select([keep[0]])  # no longer held


def test_from_bsr_with_selection_and_n_atoms(reference):
    D, mask, _ = reference
    keep = np.array([1, 4, 6])
    sub = D[np.ix_(keep, range(3), keep, range(3))].reshape(9, 9)
    J = ForceJacobian.from_bsr(sub, n_atoms=20, atoms=keep)
    assert J.n_atoms == 20 and np.array_equal(J.atoms, keep)
    np.testing.assert_array_equal(J.to_dense().reshape(9, 9), sub)


def test_assemble_blocks_sums_repeats():
    rng = np.random.default_rng(9)
    n, K = 6, 40
    rows, cols = rng.integers(0, n, K), rng.integers(0, n, K)
    rows[:5], cols[:5] = 2, 3  # a position repeated five times
    blocks = rng.normal(size=(K, 3, 3))
    r, c, b = assemble_blocks(n, rows, cols, blocks)
    ref = np.zeros((n, 3, n, 3))
    for k in range(K):
        ref[rows[k], :, cols[k], :] += blocks[k]
    got = np.zeros_like(ref)
    got[r, :, c, :] = b
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-14)
    keys = r * n + c
    assert np.all(np.diff(keys) > 0)  # sorted row-major, unique
    assert set(zip(r[r == c].tolist(), c[r == c].tolist())) == {(i, i) for i in range(n)}  # every diagonal
    np.testing.assert_allclose(b[(r == 2) & (c == 3)][0], blocks[:5].sum(0), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_assemble_blocks_given_a_diagonal_and_diagonal_rows(dtype):
    """A given diagonal and blocks at i == j (repeated, one atom twice) both land on the diagonal,
    summed, with the off-diagonal blocks summed apart; the given diagonal is left unchanged."""
    rng = np.random.default_rng(11)
    n, K = 7, 60
    rows, cols = rng.integers(0, n, K), rng.integers(0, n, K)
    rows[:6], cols[:6] = [1, 1, 1, 4, 4, 6], [1, 1, 1, 4, 4, 6]      # i == j rows, some repeated
    rows[6:9], cols[6:9] = 2, 5                                       # an off-diagonal repeat
    blocks = rng.normal(size=(K, 3, 3)).astype(dtype)
    diagonal = rng.normal(size=(n, 3, 3))
    given = diagonal.copy()
    ref = np.zeros((n, 3, n, 3))
    for i in range(n):
        ref[i, :, i, :] += diagonal[i]
    for k in range(K):
        ref[rows[k], :, cols[k], :] += blocks[k]
    r, c, b = assemble_blocks(n, rows, cols, blocks, diagonal=diagonal)
    got = np.zeros_like(ref)
    got[r, :, c, :] = b
    tol = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())
    assert b.dtype == dtype and np.all(np.diff(r * n + c) > 0)
    assert np.array_equal(r[r == c], np.arange(n))                   # each diagonal block once
    np.testing.assert_array_equal(diagonal, given)
    # the same without a given diagonal: the i == j rows alone make it
    r0, c0, b0 = assemble_blocks(n, rows, cols, blocks)
    np.testing.assert_allclose(b0[r0 == c0] + diagonal.astype(dtype), b[r == c], rtol=0, atol=tol * np.abs(ref).max())


def test_assemble_blocks_dtype_and_empty():
    r, c, b = assemble_blocks(3, np.zeros(0, int), np.zeros(0, int), np.zeros((0, 3, 3), np.float32))
    assert b.dtype == np.float32 and np.array_equal(r, [0, 1, 2]) and np.array_equal(c, [0, 1, 2]) and not b.any()
    r, c, b = assemble_blocks(2, [1, 1], [0, 0], np.ones((2, 3, 3)), dtype=np.float32)
    assert b.dtype == np.float32 and np.all(b[(r == 1) & (c == 0)] == 2)


def test_constructor_rejects_inconsistent_data():
    with pytest.raises(InputError, match="do not match"):
        ForceJacobian(3, [0, 1], [0], np.zeros((2, 3, 3)))
    with pytest.raises(InputError, match="block indices"):
        ForceJacobian(3, [0, 3], [0, 1], np.zeros((2, 3, 3)))


def test_symmetric_blocks_of_an_instance_naming_one_atom_twice():
    """upper_blocks + add_symmetric_blocks against a dense sum, with blocks whose two atoms are the
    same (an instance naming an atom twice, as CMAP's two torsions do): such a block and its
    transpose both land on the diagonal."""
    from mdjac.jacobian import add_symmetric_blocks, assemble_blocks, upper_blocks
    rng = np.random.default_rng(4)
    n = 6
    rows = rng.integers(0, n, 40)
    cols = rng.integers(0, n, 40)
    cols[:8] = rows[:8]                                  # eight blocks on the diagonal
    extra = rng.normal(size=(40, 3, 3))
    dense = np.zeros((n, 3, n, 3))
    for r, c, b in zip(rows, cols, extra):
        dense[r, :, c, :] += b
        dense[c, :, r, :] += b.T
    pattern_rows, pattern_cols, _ = assemble_blocks(n, np.array([0, 1, 2, 3]), np.array([1, 0, 3, 2]), np.zeros((4, 3, 3)))
    base = np.zeros((len(pattern_rows), 3, 3))
    keys, upper = upper_blocks(n, rows, cols, extra)
    r, c, b = add_symmetric_blocks(n, pattern_rows, pattern_cols, base, keys, upper)
    got = np.zeros((n, 3, n, 3))
    for i, j, block in zip(r, c, b):
        got[i, :, j, :] += block
    np.testing.assert_allclose(got, dense, rtol=0, atol=1e-12)
