"""Periodic boxes (mdjac.space): OpenMM's reduced triclinic form, its minimum image against explicit
images, face distances and volumes against geometry, and a triclinic potential against finite differences."""
import numpy as np
import pytest

import mdjac
from mdjac import terms
from mdjac.space import box_volume, check_box, face_distances, minimum_image, reduced_box

D = 3.0
OCTAHEDRON = np.array([[D, 0, 0], [D / 3, 2 * np.sqrt(2) * D / 3, 0], [-D / 3, np.sqrt(2) * D / 3, np.sqrt(6) * D / 3]])
DODECAHEDRON = np.array([[D, 0, 0], [0, D, 0], [D / 2, D / 2, np.sqrt(2) * D / 2]])
#: tilts at the very edges of the reduced form: b_x = a_x / 2, c_x = -a_x / 2, c_y = b_y / 2
EDGES = np.array([[D, 0, 0], [D / 2, 2.2, 0], [-D / 2, 1.1, 2.6]])


def shortest_images(d, vectors, reach=2):
    """(P, 3): for each displacement, moved into the cell, the shortest of d + n_a a + n_b b + n_c c, |n| <= reach."""
    d = d - np.floor(d @ np.linalg.inv(vectors)) @ vectors
    shifts = np.array(list(np.ndindex(*(2 * reach + 1,) * 3))) - reach
    images = d[:, None, :] + (shifts @ vectors)[None]
    best = np.argmin(np.einsum("psk,psk->ps", images, images), axis=1)
    return images[np.arange(len(d)), best]


def test_reduction_keeps_the_lattice_and_meets_openmms_conditions():
    rng = np.random.default_rng(5)
    for _ in range(50):
        a, by, cz = rng.uniform(1, 4, 3)
        raw = np.array([[a, 0, 0], [rng.uniform(-3, 3) * a, by, 0], [rng.uniform(-3, 3) * a, rng.uniform(-3, 3) * by, cz]])
        red = check_box(raw)
        assert red.shape == (3, 3)
        assert abs(red[1, 0]) <= a / 2 and abs(red[2, 0]) <= a / 2 and abs(red[2, 1]) <= by / 2
        change = red @ np.linalg.inv(raw)          # an integer matrix of determinant 1: the same lattice
        np.testing.assert_allclose(change, np.round(change), atol=1e-9)
        assert round(np.linalg.det(change)) == 1
        assert box_volume(red) == pytest.approx(a * by * cz, rel=1e-14)


def test_edge_tilts_are_kept_and_diagonal_boxes_are_edges():
    np.testing.assert_array_equal(check_box(EDGES), EDGES)
    np.testing.assert_array_equal(reduced_box(EDGES), EDGES)
    edges = check_box(np.diag([2.0, 3.0, 4.0]))
    assert edges.shape == (3,) and edges.tolist() == [2.0, 3.0, 4.0]


@pytest.mark.parametrize("vectors", [OCTAHEDRON, DODECAHEDRON, EDGES], ids=["octahedron", "dodecahedron", "edges"])
def test_face_distances_and_volume(vectors):
    vectors = check_box(vectors)
    h = face_distances(vectors)
    for k in range(3):   # the distance of vector k's tip from the plane of the other two
        normal = np.cross(vectors[(k + 1) % 3], vectors[(k + 2) % 3])
        assert h[k] == pytest.approx(abs(vectors[k] @ normal) / np.linalg.norm(normal), rel=1e-13)
    assert box_volume(vectors) == pytest.approx(abs(np.linalg.det(vectors)), rel=1e-13)
    if vectors is OCTAHEDRON:
        np.testing.assert_allclose(h, np.sqrt(2 / 3) * D, rtol=1e-13)


@pytest.mark.parametrize("vectors", [OCTAHEDRON, DODECAHEDRON, EDGES], ids=["octahedron", "dodecahedron", "edges"])
def test_minimum_image_is_the_shortest_image_within_half_the_face_distance(vectors):
    """OpenMM's c, b, a rounding gives the shortest image of every displacement shorter than half
    the smallest face distance, from anywhere in the lattice (far displacements included)."""
    vectors = check_box(vectors)
    rng = np.random.default_rng(11)
    d = rng.uniform(-3, 3, (20000, 3)) @ vectors
    wrapped = minimum_image(d, vectors)
    shortest = shortest_images(d, vectors)
    lattice = (wrapped - d) @ np.linalg.inv(vectors)               # shifts by whole box vectors only
    np.testing.assert_allclose(lattice, np.round(lattice), atol=1e-9)
    near = np.linalg.norm(shortest, axis=1) < 0.5 * face_distances(vectors).min()
    assert near.sum() > 1000
    np.testing.assert_allclose(wrapped[near], shortest[near], atol=1e-12)


def triclinic_liquid(vectors, n=90, seed=2):
    """n Lennard-Jones atoms with charges scattered in the box, no two closer than 0.25 nm (minimum image)."""
    rng = np.random.default_rng(seed)
    x = []
    while len(x) < n:
        p = rng.uniform(0, 1, 3) @ vectors
        if all(np.linalg.norm(minimum_image(p - q, vectors)) > 0.25 for q in x):
            x.append(p)
    return np.array(x)


def test_triclinic_potential_is_periodic_and_matches_finite_differences(fd):
    """Lennard-Jones and shifted-force Coulomb in an octahedron: moving atoms by box vectors changes
    nothing; forces and Jacobian agree with central differences; float64 throughout."""
    vectors = check_box(OCTAHEDRON * 0.6)
    x = triclinic_liquid(vectors, n=45)
    n = len(x)
    charges = np.where(np.arange(n) % 2, 0.4, -0.4)
    pot = mdjac.Potential([terms.LennardJones([0.3], [0.6], np.zeros(n, int), cutoff=0.7),
                           terms.DampedShiftedForceCoulomb(charges, alpha=2.0, cutoff=0.7)], box=vectors)
    e, f = pot.energy_and_forces(x)
    shifted = x + np.random.default_rng(1).integers(-2, 3, (n, 3)) @ vectors
    e2, f2 = pot.energy_and_forces(shifted)
    assert e2 == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(f2, f, atol=1e-9 * np.abs(f).max())
    assert fd.rel_err(f, fd.forces(pot, x)) < 1e-7
    atoms = [3, 40]
    dense = pot.force_jacobian(x).to_dense()
    ref = fd.jacobian(pot, x, columns=atoms)
    assert fd.rel_err(dense[:, :, atoms, :], ref) < 1e-6
