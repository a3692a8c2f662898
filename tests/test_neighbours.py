"""The neighbour list never drops (or invents) a pair: mdjac's cell list against brute force, cKDTree and vesin."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mdjac.neighbours import _canonical, brute_force_pairs, ckdtree_pairs, neighbour_pairs


def vesin_pairs(x, cutoff, box):
    """Reference: vesin's cell list (another library's), put in canonical order."""
    import vesin

    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    if box is None:
        i, j = nl.compute(points=x, box=np.zeros((3, 3)), periodic=False, quantities="ij")
    else:
        i, j = nl.compute(points=x - box * np.floor(x / box), box=np.diag(box), periodic=True, quantities="ij")
    return _canonical(i, j) if len(i) else np.zeros((0, 2), dtype=np.int64)


def all_four(x, cutoff, box):
    """mdjac's pairs, then the references: brute force, cKDTree and vesin."""
    return (neighbour_pairs(x, cutoff, box), brute_force_pairs(x, cutoff, box), ckdtree_pairs(x, cutoff, box),
            vesin_pairs(x, cutoff, box))


def numpy_reference(x, cutoff, box):
    """The contract written out once more, with explicit loops over images (no minimum-image rounding)."""
    n = len(x)
    out = []
    shifts = [np.zeros(3)] if box is None else [box * np.array(s) for s in np.ndindex(3, 3, 3)]
    shifts = shifts if box is None else [s - box for s in shifts]  # -1, 0, +1 in each direction
    for i in range(n):
        for j in range(i + 1, n):
            d = x[j] - x[i]
            if box is not None:
                d = d - box * np.floor(d / box + 0.5)  # into [-L/2, L/2), then check neighbouring images
            r = min(np.linalg.norm(d + s) for s in shifts)
            if r < cutoff:
                out.append((i, j))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def assert_same(a, b):
    assert a.dtype == np.int64 and a.shape[1:] == (2,)
    assert np.all(a[:, 0] < a[:, 1])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("periodic", [False, True])
def test_random_system_matches_references(periodic):
    rng = np.random.default_rng(21 + periodic)
    box = np.array([3.0, 2.5, 2.8]) if periodic else None
    n, cutoff = 300, 1.0
    # open: a cloud; periodic: atoms spread over [-L, 2L) so many sit outside the primary box
    x = rng.uniform(0, 3, (n, 3)) if box is None else rng.uniform(-1, 2, (n, 3)) * box
    nl, bf, kd, vs = all_four(x, cutoff, box)
    assert len(nl) > 1000
    assert_same(nl, bf)
    assert_same(nl, kd)
    assert_same(nl, vs)
    if periodic:  # pairs across the boundary are there
        raw = np.linalg.norm(x[nl[:, 1]] - x[nl[:, 0]], axis=1)
        assert np.sum(raw > cutoff) > 100


def test_small_systems_match_explicit_images():
    rng = np.random.default_rng(4)
    for box in (None, np.array([1.5, 1.2, 1.8])):
        x = rng.uniform(-1.5, 3, (40, 3))
        ref = numpy_reference(x, 0.55, box)
        assert len(ref) > 0
        assert_same(neighbour_pairs(x, 0.55, box), ref)


@pytest.mark.parametrize("periodic", [False, True])
def test_pairs_near_the_cutoff(periodic):
    """Pairs at cutoff - 1e-9 are kept, at cutoff + 1e-9 dropped, including across the boundary."""
    cutoff = 0.7
    box = np.array([2.0, 2.0, 2.0]) if periodic else None
    eps = 1e-9
    base = np.array([[0.3, 0.4, 0.5], [1.3, 1.2, 1.0]])
    if periodic:  # partners reached only through the x boundary
        partners = [base[0] - np.array([cutoff - eps, 0, 0]) + np.array([2.0, 0, 0]),
                    base[1] + np.array([0, cutoff + eps, 0]) + np.array([0, -2.0, 0])]
    else:
        partners = [base[0] + np.array([cutoff - eps, 0, 0]), base[1] + np.array([0, cutoff + eps, 0])]
    x = np.concatenate([base, np.array(partners)])
    nl, bf, kd, vs = all_four(x, cutoff, box)
    assert_same(nl, np.array([[0, 2]]))
    assert_same(bf, nl)
    assert_same(kd, nl)
    assert_same(vs, nl)


def test_degenerate_sizes():
    for n in (0, 1):
        x = np.zeros((n, 3))
        assert neighbour_pairs(x, 0.5).shape == (0, 2)
        assert brute_force_pairs(x, 0.5).shape == (0, 2)
    x = np.array([[0.0, 0, 0], [5.0, 0, 0]])
    assert neighbour_pairs(x, 0.5).shape == (0, 2)
    assert ckdtree_pairs(x, 0.5).shape == (0, 2)


@st.composite
def systems(draw):
    n = draw(st.integers(2, 80))
    periodic = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    if periodic:
        box = np.array([draw(st.floats(1.0, 4.0)) for _ in range(3)])
        cutoff = draw(st.floats(0.05, 0.5)) * float(box.min())
        spread = draw(st.sampled_from([1.0, 3.0]))  # 3: atoms up to one box outside on each side
        x = (rng.uniform(0, 1, (n, 3)) * spread - (spread - 1) / 2) * box
    else:
        box = None
        cutoff = draw(st.floats(0.05, 2.0))
        x = rng.uniform(-2, 2, (n, 3))
    if draw(st.booleans()) and n >= 2:  # plant a pair just inside the cutoff
        d = rng.normal(size=3)
        x[1] = x[0] + (cutoff * (1 - 1e-7)) * d / np.linalg.norm(d)
    return x, cutoff, box


@settings(max_examples=40, deadline=None)
@given(systems())
def test_property_cell_list_equals_references(system):
    x, cutoff, box = system
    nl, bf, kd, vs = all_four(x, cutoff, box)
    assert_same(nl, bf)
    assert_same(nl, kd)
    assert_same(nl, vs)


@pytest.mark.parametrize("box", [None, np.array([1.5, 4.0, 2.2]), np.array([1.2, 1.3, 3.6])])
def test_cell_list_with_few_cells_or_a_sparse_cloud(box):
    """Edges of 2 or 3 cells (neighbouring cells repeat, or wrap onto each other), and an open cloud with
    one atom far away (the cell grid is coarsened instead of holding millions of empty cells)."""
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1.2, (250, 3)) * (1 if box is None else box / 1.2)
    if box is None:
        x[7] = [400.0, -300.0, 250.0]
        x[8] = x[7] + [0.3, 0.0, 0.0]
    nl, bf, kd, vs = all_four(x, 0.6, box)
    assert len(nl) > 500
    assert_same(nl, bf)
    assert_same(nl, vs)
    if box is None:
        assert [7, 8] in nl.tolist()


# ----------------------------------------------------------------------------- triclinic boxes
def image_pairs(x, cutoff, vectors, reach=2):
    """Reference for a triclinic box: the shortest of the images n_a a + n_b b + n_c c, |n| <= reach,
    for every pair, after moving it into the cell (no rounding, no reduced form used), in canonical order."""
    i, j = np.triu_indices(len(x), k=1)
    d = x[j] - x[i]
    d -= np.floor(d @ np.linalg.inv(vectors)) @ vectors
    shifts = np.array(list(np.ndindex(*(2 * reach + 1,) * 3))) - reach
    images = (shifts @ vectors)[None, :, :] + d[:, None, :]          # (P, S, 3)
    r = np.sqrt(np.min(np.einsum("psk,psk->ps", images, images), axis=1))
    keep = r < cutoff
    return _canonical(i[keep], j[keep]) if keep.any() else np.zeros((0, 2), dtype=np.int64)


def vesin_triclinic_pairs(x, cutoff, vectors):
    """vesin's cell list on the triclinic box (rows a, b, c), in canonical order."""
    import vesin
    i, j = vesin.NeighborList(cutoff=float(cutoff), full_list=False).compute(
        points=np.asarray(x, dtype=np.float64), box=np.asarray(vectors, dtype=np.float64), periodic=True, quantities="ij")
    return _canonical(i, j) if len(i) else np.zeros((0, 2), dtype=np.int64)


@st.composite
def triclinic_systems(draw):
    """A random reduced triclinic box (tilts anywhere in OpenMM's ranges, the edges of them included),
    atoms up to a box outside it, a cutoff up to half the smallest face distance."""
    from mdjac.space import box_vectors, check_box, face_distances
    edges = [draw(st.floats(1.0, 4.0)) for _ in range(3)]
    tilt = st.one_of(st.floats(-0.5, 0.5), st.sampled_from([-0.5, 0.5, 0.0]))
    bx, cx, cy = draw(tilt) * edges[0], draw(tilt) * edges[0], draw(tilt) * edges[1]
    box = check_box([[edges[0], 0, 0], [bx, edges[1], 0], [cx, cy, edges[2]]])   # (3,) edges if no tilt
    vectors = box_vectors(box)
    n = draw(st.integers(2, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.uniform(-1.0, 2.0, (n, 3)) @ vectors
    cutoff = draw(st.floats(0.05, 0.5)) * float(np.min(face_distances(box)))
    if draw(st.booleans()):  # a pair just inside the cutoff, across a boundary
        d = rng.normal(size=3)
        x[1] = x[0] + (cutoff * (1 - 1e-7)) * d / np.linalg.norm(d) + vectors[draw(st.integers(0, 2))]
    return x, cutoff, box


@settings(max_examples=60, deadline=None)
@given(triclinic_systems())
def test_property_triclinic_cell_list_equals_explicit_images(system):
    """No pair lost or doubled: the cell list on fractional coordinates equals the shortest explicit
    image of every pair, brute force through mdjac.space's minimum image, and vesin."""
    from mdjac.space import box_vectors
    x, cutoff, box = system
    nl = neighbour_pairs(x, cutoff, box)
    assert_same(nl, image_pairs(x, cutoff, box_vectors(box)))
    assert_same(nl, brute_force_pairs(x, cutoff, box))
    assert_same(nl, vesin_triclinic_pairs(x, cutoff, box_vectors(box)))


@pytest.mark.parametrize("shape", ["octahedron", "dodecahedron", "sheared"])
def test_triclinic_dense_systems_match_explicit_images(shape):
    """Many pairs, many cells (and along some axes 1 or 2): octahedron, dodecahedron, a box sheared to its limits."""
    from mdjac.space import check_box
    d = 3.0
    vectors = {"octahedron": [[d, 0, 0], [d / 3, 2 * np.sqrt(2) * d / 3, 0], [-d / 3, np.sqrt(2) * d / 3, np.sqrt(6) * d / 3]],
               "dodecahedron": [[d, 0, 0], [0, d, 0], [d / 2, d / 2, np.sqrt(2) * d / 2]],
               "sheared": [[d, 0, 0], [d / 2, 1.9, 0], [-d / 2, 0.95, 4.1]]}[shape]
    vectors = check_box(vectors)
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.5, 1.5, (250, 3)) @ vectors
    for cutoff in (0.45, 0.9):
        nl = neighbour_pairs(x, cutoff, vectors)
        assert len(nl) > 300
        assert_same(nl, image_pairs(x, cutoff, vectors))
