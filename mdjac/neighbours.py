"""Neighbour pairs within a cutoff.

:func:`neighbour_pairs` is the one used in production (a cell list compiled by numba, periodic or
not); it returns every pair ``i < j`` with minimum-image distance strictly below the cutoff, never
fewer, already sorted row-major (what the Jacobian's row-major assembly wants, so no sort follows).
:func:`brute_force_pairs` (all N^2 distances) and :func:`ckdtree_pairs` (scipy) are independent
references, used by the tests (with vesin's cell list, a third) to show that no pair is dropped.
"""
import numba
import numpy as np
from scipy.spatial import cKDTree

from .space import box_vectors, face_distances, is_triclinic, minimum_image, wrap_positions


def pair_keys(i, j, n):
    """One int64 key per unordered pair: min(i, j) * n + max(i, j), for atoms 0..n-1.

    Keys sort pairs row-major (by the smaller index, then the larger) and make set operations on
    pair lists (exclusions, uniqueness) one-dimensional. :func:`pairs_of_keys` inverts it.
    """
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    return np.minimum(i, j) * n + np.maximum(i, j)


def pairs_of_keys(keys, n):
    """(P, 2) int64 pairs (i, j), i <= j, of keys made by :func:`pair_keys` with the same ``n``."""
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack([keys // n, keys % n], axis=1)


def excluded_mask(keys, excluded_keys):
    """Boolean mask (P,): which pair keys (P,) int64 are among ``excluded_keys`` (sorted, unique).

    Keys of a neighbour list come sorted (row-major pairs): then each excluded key is looked up by
    bisection, O(E log P), instead of sorting both lists (np.isin).
    """
    if len(keys) < 2 or np.all(keys[1:] > keys[:-1]):
        at = np.searchsorted(keys, excluded_keys)
        found = at < len(keys)
        found[found] = keys[at[found]] == excluded_keys[found]
        mask = np.zeros(len(keys), dtype=bool)
        mask[at[found]] = True
        return mask
    return np.isin(keys, excluded_keys)


def _canonical(i, j):
    """Pairs as a sorted, unique (P, 2) int64 array with i < j: see :func:`_canonical_rows`."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    n = int(max(i.max(), j.max())) + 1 if len(i) else 1
    return _canonical_rows(n, i, j)


@numba.njit(cache=True, nogil=True)
def _canonical_rows(n, i, j):
    """Pairs (i, j) (P,) int64 each, any order and orientation, as (U, 2) int64 with i < j, sorted
    row-major, repeats and self-pairs dropped. A counting sort by the smaller index, then an
    insertion sort within each row (rows are short: tens of pairs).
    """
    count = np.zeros(n + 1, np.int64)
    for p in range(len(i)):
        if i[p] != j[p]:
            count[min(i[p], j[p]) + 1] += 1
    for a in range(n):
        count[a + 1] += count[a]
    start = count[:-1].copy()
    cols = np.empty(count[n], np.int64)
    for p in range(len(i)):
        if i[p] != j[p]:
            lo = min(i[p], j[p])
            cols[start[lo]] = max(i[p], j[p])
            start[lo] += 1
    out = np.empty((count[n], 2), np.int64)
    m = 0
    for a in range(n):
        row = cols[count[a]:count[a + 1]]
        _insertion_sort(row)
        for k in range(len(row)):
            if k == 0 or row[k] != row[k - 1]:
                out[m, 0] = a
                out[m, 1] = row[k]
                m += 1
    return out[:m].copy()


@numba.njit(cache=True, nogil=True, inline="always")
def _insertion_sort(a):
    """Sort the 1-D array ``a`` in place (short rows of a neighbour list: tens of entries, often in runs)."""
    for k in range(1, len(a)):
        v = a[k]
        q = k - 1
        while q >= 0 and a[q] > v:
            a[q + 1] = a[q]
            q -= 1
        a[q + 1] = v


@numba.njit(cache=True, nogil=True)
def is_canonical(pairs):
    """True if ``pairs`` (P, 2) int64 are i < j, sorted row-major and unique (what :func:`_canonical` returns)."""
    for p in range(pairs.shape[0]):
        if pairs[p, 0] >= pairs[p, 1]:
            return False
        if p and (pairs[p, 0] < pairs[p - 1, 0] or (pairs[p, 0] == pairs[p - 1, 0] and pairs[p, 1] <= pairs[p - 1, 1])):
            return False
    return True


def neighbour_pairs(positions, cutoff, box=None):
    """All pairs closer than ``cutoff``.

    positions: (N, 3) nm; cutoff: nm; box: None, (3,) edges nm or (3, 3) reduced box vectors
    (mdjac.space; cutoff <= half the smallest face distance, checked by the caller).
    Returns (P, 2) int64, ``i < j``, sorted row-major: a cell list (:func:`_cell_list_pairs`).
    A triclinic box is cut into cells along its fractional coordinates, n_k = floor(h_k / cutoff)
    along axis k (h_k the distance between the faces opposite vector k), so each cell's face
    distances are at least the cutoff and every pair within it lies in neighbouring cells.
    """
    x = np.ascontiguousarray(positions, dtype=np.float64)
    if len(x) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if box is None:
        low = x.min(axis=0)
        extent = x.max(axis=0) - low
        x = x - low
        cells = np.maximum(1, np.floor(extent / cutoff)).astype(np.int64)
        while np.prod(cells.astype(float)) > 8 * len(x) + 1000:   # a sparse cloud: fewer, larger cells
            cells = np.maximum(1, cells // 2)
        edges = np.where(extent > 0, extent, 1.0) / cells
        periodic, where, vectors = False, x, np.zeros((3, 3))
    elif is_triclinic(box):
        x, where = wrap_positions(x, box)
        cells = np.maximum(1, np.floor(face_distances(box) / cutoff)).astype(np.int64)
        edges = 1.0 / cells
        periodic, vectors = True, np.ascontiguousarray(box, dtype=np.float64)
    else:
        box = np.asarray(box, dtype=np.float64)
        x = x - box * np.floor(x / box)
        cells = np.maximum(1, np.floor(box / cutoff)).astype(np.int64)
        edges = box / cells
        periodic, where, vectors = True, x, np.diag(box)
    return _cell_list_pairs(x, np.ascontiguousarray(where), float(cutoff), vectors, periodic, cells, edges)


@numba.njit(cache=True, nogil=True)
def _cell_list_pairs(x, where, cutoff, vectors, periodic, cells, edges):
    """Pairs i < j with |d| < cutoff, sorted row-major, by a cell list.

    x: (N, 3) float64 nm, inside the cell (periodic) or in [0, extent] (open); where: (N, 3) the
    coordinates cells are cut along (x itself, or the fractional coordinates in [0, 1) of a
    triclinic box); cells (3,) int64 cells per axis, each ``edges`` (3,) long in those coordinates,
    so that every pair lies in neighbouring cells; vectors (3, 3) the box vectors (rows, nm; zeros
    when open). In a periodic box d is the minimum image: the image shift (a box vector) of a
    neighbouring cell across the boundary when there are 3 cells or more along that axis, and
    rounding (mdjac.space's order: c, b, a) when fewer (then the neighbouring cells repeat, and
    each is visited once). Each row (the j > i of one i) is sorted by insertion, as its cells hand
    it out in runs.
    """
    n = x.shape[0]
    ncell = cells[0] * cells[1] * cells[2]
    cell = np.empty(n, np.int64)
    for a in range(n):
        c = 0
        for e in range(3):
            k = min(max(int(where[a, e] / edges[e]), 0), cells[e] - 1)
            c = c * cells[e] + k
        cell[a] = c
    start = np.zeros(ncell + 1, np.int64)          # atoms sorted by cell, by index within a cell
    for a in range(n):
        start[cell[a] + 1] += 1
    for c in range(ncell):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    atoms = np.empty(n, np.int64)
    xs = np.empty((n, 3))                          # positions in cell order
    for a in range(n):
        t = fill[cell[a]]
        atoms[t] = a
        xs[t, 0], xs[t, 1], xs[t, 2] = x[a, 0], x[a, 1], x[a, 2]
        fill[cell[a]] += 1
    near = np.empty((3, 3), np.int64)              # distinct neighbouring cells along each edge
    shift = np.zeros((3, 3, 3))                    # and the image shift (nm, a 3-vector) added to x_j - x_i
    count = np.zeros(3, np.int64)
    rounding = np.zeros(3, np.bool_)
    for e in range(3):
        rounding[e] = periodic and cells[e] < 3
    any_rounding = rounding[0] or rounding[1] or rounding[2]
    cut2 = cutoff * cutoff
    out = np.empty((max(16, 64 * n), 2), np.int64)
    row = np.empty(64, np.int64)
    m = 0
    for i in range(n):
        c = cell[i]
        own = (c // (cells[1] * cells[2]), (c // cells[2]) % cells[1], c % cells[2])
        for e in range(3):
            count[e] = 0
            for step in (-1, 0, 1):
                k = own[e] + step
                s = 0.0
                if periodic:
                    if k < 0:
                        k += cells[e]
                        s = -1.0
                    elif k >= cells[e]:
                        k -= cells[e]
                        s = 1.0
                elif k < 0 or k >= cells[e]:
                    continue
                seen = False
                for q in range(count[e]):
                    seen = seen or near[e, q] == k
                if not seen:
                    near[e, count[e]] = k
                    for c in range(3):
                        shift[e, count[e], c] = 0.0 if rounding[e] else s * vectors[e, c]
                    count[e] += 1
        length = 0
        x0, x1, x2 = x[i, 0], x[i, 1], x[i, 2]
        for q0 in range(count[0]):
            for q1 in range(count[1]):
                for q2 in range(count[2]):
                    other = (near[0, q0] * cells[1] + near[1, q1]) * cells[2] + near[2, q2]
                    s0 = shift[0, q0, 0] + shift[1, q1, 0] + shift[2, q2, 0] - x0
                    s1 = shift[0, q0, 1] + shift[1, q1, 1] + shift[2, q2, 1] - x1
                    s2 = shift[0, q0, 2] + shift[1, q1, 2] + shift[2, q2, 2] - x2
                    if length + start[other + 1] - start[other] > len(row):
                        bigger = np.empty(2 * len(row) + start[other + 1] - start[other], np.int64)
                        bigger[:length] = row[:length]
                        row = bigger
                    for t in range(start[other], start[other + 1]):
                        d0, d1, d2 = xs[t, 0] + s0, xs[t, 1] + s1, xs[t, 2] + s2
                        if any_rounding:
                            if rounding[2]:
                                w = np.rint(d2 / vectors[2, 2])
                                d0 -= vectors[2, 0] * w
                                d1 -= vectors[2, 1] * w
                                d2 -= vectors[2, 2] * w
                            if rounding[1]:
                                w = np.rint(d1 / vectors[1, 1])
                                d0 -= vectors[1, 0] * w
                                d1 -= vectors[1, 1] * w
                            if rounding[0]:
                                d0 -= vectors[0, 0] * np.rint(d0 / vectors[0, 0])
                        j = atoms[t]
                        row[length] = j                # kept only if it counts (no branch)
                        length += (j > i) & (d0 * d0 + d1 * d1 + d2 * d2 < cut2)
        _insertion_sort(row[:length])
        if m + length > len(out):
            bigger = np.empty((2 * (m + length), 2), np.int64)
            bigger[:m] = out[:m]
            out = bigger
        for k in range(length):
            out[m + k, 0] = i
            out[m + k, 1] = row[k]
        m += length
    return out[:m].copy()


def brute_force_pairs(positions, cutoff, box=None):
    """Reference: all N^2 minimum-image distances. Same contract as :func:`neighbour_pairs`."""
    x = np.asarray(positions, dtype=np.float64)
    i, j = np.triu_indices(len(x), k=1)
    d = minimum_image(x[j] - x[i], box)
    keep = np.einsum("pk,pk->p", d, d) < cutoff * cutoff
    return _canonical(i[keep], j[keep])


def ckdtree_pairs(positions, cutoff, box=None):
    """Reference: scipy's cKDTree (periodic through ``boxsize``). Same contract as :func:`neighbour_pairs`."""
    x = np.asarray(positions, dtype=np.float64)
    if box is not None:
        x = x - box * np.floor(x / box)
        x = np.where(x >= box, 0.0, x)  # cKDTree wants 0 <= x < L
    tree = cKDTree(x, boxsize=None if box is None else box)
    pairs = tree.query_pairs(np.nextafter(cutoff, 0), output_type="ndarray")
    return _canonical(pairs[:, 0], pairs[:, 1]) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def minimum_image_components(e0, e1, e2, vectors):
    """The minimum image (e0, e1, e2) nm of one displacement, compiled: mdjac.space's order c, b, a,
    along each box vector (rows of ``vectors`` (3, 3) nm, reduced lower triangular; the diagonal of
    an orthorhombic box) whose diagonal entry is positive (zeros: open, left as it is)."""
    if vectors[2, 2] > 0:
        t = np.rint(e2 / vectors[2, 2])
        e0 -= vectors[2, 0] * t
        e1 -= vectors[2, 1] * t
        e2 -= vectors[2, 2] * t
    if vectors[1, 1] > 0:
        t = np.rint(e1 / vectors[1, 1])
        e0 -= vectors[1, 0] * t
        e1 -= vectors[1, 1] * t
    if vectors[0, 0] > 0:
        e0 -= vectors[0, 0] * np.rint(e0 / vectors[0, 0])
    return e0, e1, e2


@numba.njit(cache=True, nogil=True)
def is_tilted(vectors):
    """Whether box vectors (3, 3) have an off-diagonal entry: a triclinic box (False: orthorhombic or open)."""
    return vectors[1, 0] != 0.0 or vectors[2, 0] != 0.0 or vectors[2, 1] != 0.0


@numba.njit(cache=True, nogil=True)
def axis_image(e, edge, inverse):
    """The minimum image of one component e (nm) along an axis of an untilted box: e - L rint(e / L)
    for an edge L > 0 (0: open, e as it is), with e / L taken as e times ``inverse`` = 1 / L (the
    loops compute it once: a product, not a division, per pair and axis; the same image for any pair
    closer than L / 2). The three components are independent, so the compiler vectorises them; the
    general order c, b, a of :func:`minimum_image_components` chains the three roundings and made an
    orthorhombic box's pair loops slower (benchmarks/probe_pair_geometry_forms.py)."""
    if edge > 0:
        e -= edge * np.rint(e * inverse)
    return e


@numba.njit(cache=True, nogil=True)
def inverse_edges(vectors):
    """(1 / L_a, 1 / L_b, 1 / L_c) of box vectors (3, 3) nm, 0 for an open axis (a zero edge): what
    :func:`pair_image` takes, computed once per loop."""
    return (1.0 / vectors[0, 0] if vectors[0, 0] > 0 else 0.0, 1.0 / vectors[1, 1] if vectors[1, 1] > 0 else 0.0,
            1.0 / vectors[2, 2] if vectors[2, 2] > 0 else 0.0)


@numba.njit(cache=True, nogil=True, inline="always")
def pair_image(x, i, j, vectors, inverse, tilted):
    """The minimum image (e0, e1, e2) nm of x_j - x_i, positions x (N, 3) nm: OpenMM's order c, b, a
    (:func:`minimum_image_components`) in a ``tilted`` box (:func:`is_tilted` of ``vectors``), else
    axis by axis (:func:`axis_image`, ``inverse`` from :func:`inverse_edges`; an open box's zero
    vectors leave it as it is)."""
    if tilted:
        return minimum_image_components(x[j, 0] - x[i, 0], x[j, 1] - x[i, 1], x[j, 2] - x[i, 2], vectors)
    return (axis_image(x[j, 0] - x[i, 0], vectors[0, 0], inverse[0]),
            axis_image(x[j, 1] - x[i, 1], vectors[1, 1], inverse[1]),
            axis_image(x[j, 2] - x[i, 2], vectors[2, 2], inverse[2]))


@numba.njit(cache=True, nogil=True)
def _within(x, pairs, vectors, cutoff2, out):
    """Copy the pairs closer than sqrt(cutoff2) into out (P, 2) in their order; return how many."""
    tilted, inverse = is_tilted(vectors), inverse_edges(vectors)
    k = 0
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        e0, e1, e2 = pair_image(x, i, j, vectors, inverse, tilted)
        out[k, 0], out[k, 1] = i, j             # kept only if it counts (no branch)
        k += e0 * e0 + e1 * e1 + e2 * e2 < cutoff2
    return k


def pairs_within(x, pairs, box, cutoff):
    """The pairs (P, 2) int64 closer than ``cutoff`` (nm) at positions x (N, 3) float64 nm, minimum
    image in ``box`` (None, (3,) or (3, 3) nm), in their order, in one compiled pass."""
    out = np.empty_like(pairs)
    return out[:_within(x, pairs, np.zeros((3, 3)) if box is None else box_vectors(box), float(cutoff) ** 2, out)]


@numba.njit(cache=True, nogil=True)
def _without(pairs, excluded_keys, n, out):
    e, k, previous = 0, 0, -1
    for p in range(pairs.shape[0]):
        key = pairs[p, 0] * n + pairs[p, 1]
        if key <= previous:
            return -1                       # not sorted row-major: the caller falls back
        previous = key
        while e < excluded_keys.shape[0] and excluded_keys[e] < key:
            e += 1
        out[k, 0], out[k, 1] = pairs[p, 0], pairs[p, 1]     # kept only if it counts (no branch)
        k += e == excluded_keys.shape[0] or excluded_keys[e] != key
    return k


def pairs_without(pairs, excluded_keys, n):
    """The pairs (P, 2) int64 whose keys (:func:`pair_keys`) are not among ``excluded_keys``
    (sorted, unique), in their order: one merge pass when the pairs are sorted row-major with
    i < j (neighbour lists), :func:`excluded_mask` otherwise."""
    pairs = np.ascontiguousarray(pairs, dtype=np.int64)
    out = np.empty_like(pairs)
    k = _without(pairs, np.asarray(excluded_keys, dtype=np.int64), n, out) if len(pairs) else 0
    if k < 0:
        return pairs[~excluded_mask(pair_keys(pairs[:, 0], pairs[:, 1], n), excluded_keys)]
    return out[:k]


class VerletList:
    """Neighbour pairs within ``cutoff`` from a list kept across frames (a Verlet list with a skin).

    A list built with a skin holds every pair closer than ``cutoff + skin`` at the positions it
    was built from. While no atom has moved more than skin/2 since (minimum image), every pair
    now closer than the cutoff is in it (|r_now| >= |r_then| - skin), so the pairs are found by
    filtering its distances; otherwise it is rebuilt.

    The skin is spent only where it pays. The first list is searched at the cutoff itself (kept
    as long as the positions do not change at all). A rebuild adds the skin when no atom moved
    more than skin/2 since the previous call: frames that close (MD steps) will reuse the list.
    Frames further apart (saved trajectory frames, often) would not reuse it, and a skin would
    only make the search and the list larger, so the rebuild is at the cutoff again. A skin that
    would take ``cutoff + skin`` over half the smallest box edge (face distance, triclinic) is cut down to fit.

    Same contract as :func:`neighbour_pairs`: (P, 2) int64, i < j, sorted row-major. The same
    positions and box again (a frame's forces, then its Jacobian) get the very same array again, so
    that what terms derive from it can be kept (mdjac.terms.base.PairTerm.instances).
    ``builds`` counts the searches; ``skin_used`` is the skin (nm) of the list in hand.
    """

    def __init__(self, cutoff, skin=0.1):
        self.cutoff, self.skin = float(cutoff), float(skin)
        self._reference = self._box = self._candidates = self._previous = None
        self._last = self._last_box = None
        self.skin_used = 0.0
        self.builds = 0

    def pairs(self, positions, box=None):
        """Pairs closer than the cutoff at ``positions`` (N, 3) nm in ``box`` (None, (3,) or (3, 3) nm)."""
        x = np.asarray(positions, dtype=np.float64)
        if (self._last is not None and self._previous.shape == x.shape and np.array_equal(x, self._previous)
                and (box is None) == (self._last_box is None) and (box is None or np.array_equal(box, self._last_box))):
            return self._last
        if not self._valid(x, box):
            skin = 0.0
            if self._close_to_previous(x, box):
                skin = self.skin if box is None else max(0.0, min(self.skin, 0.5 * float(np.min(face_distances(box))) - self.cutoff))
            self._candidates = neighbour_pairs(x, self.cutoff + skin, box)
            self._reference, self._box, self.skin_used = x.copy(), None if box is None else np.array(box), skin
            self.builds += 1
        self._previous = x.copy()
        self._last_box = None if box is None else np.array(box, dtype=np.float64)
        if self.skin_used == 0.0:    # built at the cutoff from these very positions
            self._last = self._candidates
        else:
            self._last = pairs_within(x, self._candidates, self._last_box, self.cutoff)
        return self._last

    def _same_frame(self, x, box, reference):
        return (reference is not None and reference.shape == x.shape and (box is None) == (self._box is None)
                and (box is None or np.array_equal(box, self._box)))

    def _max_move2(self, x, box, reference):
        moved = minimum_image(x - reference, box)
        return float(np.max(np.einsum("ij,ij->i", moved, moved), initial=0.0))

    def _valid(self, x, box):
        """The list in hand holds every pair now within the cutoff: no atom moved more than skin_used / 2."""
        if not self._same_frame(x, box, self._reference):
            return False
        return self._max_move2(x, box, self._reference) <= (0.5 * self.skin_used) ** 2

    def _close_to_previous(self, x, box):
        """No atom moved more than skin / 2 since the previous call (a skinned list would be reused)."""
        if not self._same_frame(x, box, self._previous):
            return False
        return self._max_move2(x, box, self._previous) <= (0.5 * self.skin) ** 2
