"""The kernel: whole Jacobians from masked ``grad`` calls.

MindSpore's ``grad`` of a vector function f: R^n -> R^m returns the sum of the rows of its
Jacobian, not the Jacobian. The article behind mdjac (reproduced by ``examples/seed_article.py``)
makes it return the Jacobian anyway: evaluate f on C stacked copies of x, multiply the outputs of
copy c by a 0/1 mask that keeps only the rows "coloured" c, sum, and take one ``grad`` with
respect to the stacked copies. Row c of the result is

    R[c] = sum over rows r with colour(r) = c of  J[r, :]        (shape of x),

because output row r depends only on copy colour(r). If no two rows of one colour share a
nonzero column, every nonzero J[r, s] stands alone in R[colour(r), s] and can be put back
(row compression of a sparse Jacobian; Curtis, Powell and Reid 1974). The article's example is
the identity colouring, C = m.

:func:`row_compressed_jacobian` is that one primitive. Everything else here is a choice of f and
of the colouring:

* per-term replication (:func:`term_hessians`): f is the gradient of a force-field term with
  respect to per-instance copies q (M, c, 3) of the coordinates each instance touches. Instances
  never share a copy, so the Hessian is block diagonal over instances and the colouring
  ``colour(m, a, i) = 3 a + i`` needs only 3c copies, whatever M: one compiled call returns every
  instance's (3c x 3c) Hessian;
* colouring (:func:`coloured_hessian_blocks`): f is the gradient of an opaque energy E(x) of all
  N atoms; atoms that share no neighbour in the interaction graph (a distance-2 colouring,
  :func:`distance2_colouring`) share a copy; 3 x colours copies;
* dense: the identity colouring of atoms (3N copies), the article's mask; a reference for tests;
* elementwise (:func:`elementwise_derivatives`): for energies whose every entry depends on one
  scalar of its own (pair energies phi(r) of the distance alone; an Ewald sum's parts q cos(theta)
  of a phase theta = k.x), f is the gradient of sum_m phi_m(s_m) with respect to the scalars s.
  Its Jacobian is diagonal (entry m depends on s_m only), so one colour holds every row: a single
  masked grad (the mask all ones) returns phi''(s_m) for every entry at once, next to phi'(s_m).
  The 3x3 blocks follow by the chain rule through s (r = |d| in mdjac.potential, theta = k.x in
  mdjac.longrange.ewald), exact bookkeeping like the chain matrix.

Second derivatives run only compiled: every function here goes through ``mindspore.jit``
(PyNative grad-of-grad is wrong or raises on this MindSpore). Inputs are float32 or float64 and
the computation stays in that dtype throughout.
"""
import functools

import numpy as np
import mindspore as ms
import scipy.sparse

from . import compile_cache

_COMPILED = {}
_BY_CONTENT = {}
_INSTANCE_GRADIENTS = {}


class _StoredGraphs:
    """A compiled function whose first call for each input signature goes through
    :mod:`mdjac.compile_cache` (the graph loaded from an earlier process, or compiled and stored)."""

    def __init__(self, fn, kind):
        self.fn, self.kind, self.compiled, self.signatures = fn, kind, _BUILDERS[kind](fn), set()

    def __call__(self, *args):
        signature = tuple((tuple(a.shape), a.dtype) for a in args)
        if signature in self.signatures:
            return self.compiled(*args)
        out = compile_cache.call_first(self.compiled, self.kind, self.fn, args)
        self.signatures.add(signature)
        return out


def _compiled(fn, kind, cache=True):
    """The compiled (``mindspore.jit``) function of ``kind`` built on ``fn``, made once per
    (fn, kind) if ``cache``, its graphs kept across processes (:mod:`mdjac.compile_cache`).

    Functions of equal content share one: a new ``fn`` whose content key
    (:func:`mdjac.compile_cache.graph_key` without input shapes: its code, the constants and
    objects it closes over, arrays by value) is that of an earlier one gets the earlier one's
    compiled function, so the same term group rebuilt by another Potential is not compiled (or
    loaded) again. A function that cannot be fingerprinted is keyed by identity alone.
    """
    if not cache:
        return _BUILDERS[kind](fn)
    key = (fn, kind)
    if key not in _COMPILED:
        content = compile_cache.graph_key(kind, fn, None)
        if content is None:
            _COMPILED[key] = _StoredGraphs(fn, kind)
        else:
            if content not in _BY_CONTENT:
                _BY_CONTENT[content] = _StoredGraphs(fn, kind)
            _COMPILED[key] = _BY_CONTENT[content]
    return _COMPILED[key]


def _build_masked_grad(fn):
    """jit: (X, mask, *args) -> grad_X sum(mask * fn(X, *args))."""
    def masked_grad(X, mask, *args):
        def masked_sum(X):
            return (fn(X, *args) * mask).sum()
        return ms.grad(masked_sum)(X)
    return ms.jit(masked_grad)


def instance_gradient_of(energy):
    """(q, *params) -> grad_q sum(energy(q, *params)).

    For energies that are sums of independent parts (instances, or copies), this is every part's
    gradient at once. Not compiled itself: it is the ``fn`` given to the masked grad.
    """
    def instance_gradient(q, *params):
        def energy_sum(q):
            return energy(q, *params).sum()
        return ms.grad(energy_sum)(q)
    return instance_gradient


def _build_energy_and_gradient(energy):
    """jit: (q, weights, *params) -> (sum of weighted energies, its gradient wrt q)."""
    def energy_and_gradient(q, weights, *params):
        def weighted_energy(q):
            return (energy(q, *params) * weights).sum()
        return ms.value_and_grad(weighted_energy)(q)
    return ms.jit(energy_and_gradient)


def _build_elementwise(energy, order):
    """jit: (s, *params) -> phi and dphi/ds, ..., up to the ``order``-th derivative (1 or 2), each of
    s's shape, of entry-wise energies phi(s). The lower orders ride along as aux outputs of the grad
    that takes the highest: one forward pass for all."""
    def first(s, *params):
        def energy_sum(s):
            phi = energy(s, *params)
            return phi.sum(), phi
        (_, phi), d1 = ms.value_and_grad(energy_sum, has_aux=True)(s)
        return phi, d1

    def second(s, *params):
        def first_sum(s):
            phi, d1 = first(s, *params)
            return d1.sum(), d1, phi
        (_, d1, phi), d2 = ms.value_and_grad(first_sum, has_aux=True)(s)
        return phi, d1, d2

    return ms.jit({1: first, 2: second}[order])


def _build_elementwise_derivatives(energy):
    """jit: (s, *params) -> (dphi/ds, d2phi/ds2) of entry-wise energies phi(s), without phi: the first
    derivative under a plain grad (:func:`instance_gradient_of`), which compiles to a faster graph than
    one carrying phi as an aux output (bit for bit the same derivatives)."""
    gradient = instance_gradient_of(energy)

    def derivatives(s, *params):
        def first_sum(s):
            d1 = gradient(s, *params)
            return d1.sum(), d1
        (_, d1), d2 = ms.value_and_grad(first_sum, has_aux=True)(s)
        return d1, d2
    return ms.jit(derivatives)


_BUILDERS = {
    "masked_grad": _build_masked_grad,
    "elementwise_derivatives": _build_elementwise_derivatives,
    "elementwise_first": functools.partial(_build_elementwise, order=1),
    "elementwise_second": functools.partial(_build_elementwise, order=2),
    "energy_and_gradient": _build_energy_and_gradient,
}


def _instance_gradient(energy):
    """:func:`instance_gradient_of` ``energy``, the same function object for the same energy, so
    that the masked grad compiled on it is found in the cache on the next call."""
    if energy not in _INSTANCE_GRADIENTS:
        _INSTANCE_GRADIENTS[energy] = instance_gradient_of(energy)
    return _INSTANCE_GRADIENTS[energy]


def _tensor(a, dtype=None):
    """A MindSpore tensor on the memory of ``a`` (made contiguous, in ``dtype`` if given): no copy."""
    a = np.ascontiguousarray(a if dtype is None else np.asarray(a, dtype=dtype))
    return ms.Tensor.from_numpy(a)


def row_compressed_jacobian(fn, x, colours, n_copies, args=(), batched=True, cache=True):
    """Row-compressed Jacobian of ``fn`` at ``x`` by masked ``grad`` (the article's trick).

    fn: MindSpore function. If ``batched``, fn maps copies X (n_copies, *x.shape) to outputs
    (n_copies, *colours.shape), output copy c depending only on input copy c; otherwise fn maps
    x (*x.shape) to (*colours.shape) and the copies are evaluated one at a time.
    x: ndarray (float32 or float64). colours: int array, the copy each output row is assigned to.
    args: extra ndarrays passed to fn unchanged (parameters). cache: keep the compiled function
    for the next call with the same fn (False for one-off functions).
    Returns R (n_copies, *x.shape): R[c] = sum of the Jacobian rows coloured c.
    """
    dtype = np.asarray(x).dtype
    colours = np.asarray(colours)
    onehot = (colours[None, ...] == np.arange(n_copies).reshape((-1,) + (1,) * colours.ndim)).astype(dtype)
    targs = [_tensor(a) for a in args]
    grad = _compiled(fn, "masked_grad", cache)
    if batched:
        X = np.broadcast_to(x, (n_copies,) + np.shape(x))
        return grad(_tensor(X, dtype), _tensor(onehot), *targs).asnumpy()
    xt = _tensor(x, dtype)
    return np.stack([grad(xt, _tensor(onehot[c]), *targs).asnumpy() for c in range(n_copies)])


def term_hessians(energy, q, params):
    """Hessians of every instance of a term, by per-term replication.

    energy: MindSpore function (q, *params) -> (..., M) per-instance energies (kJ/mol).
    q: (M, c, 3) per-instance coordinates (nm); params: tuple of (M, ...) arrays.
    Returns H (M, c, 3, c, 3): H[m, a, i, b, j] = d2 E_m / dq_{m,a,i} dq_{m,b,j}.
    """
    m, c, _ = q.shape
    colours = np.broadcast_to((3 * np.arange(c)[:, None] + np.arange(3)[None, :]), (m, c, 3))
    R = row_compressed_jacobian(_instance_gradient(energy), q, colours, 3 * c, params)
    return R.reshape(c, 3, m, c, 3).transpose(2, 0, 1, 3, 4)


def term_energy_and_gradient(energy, q, weights, params):
    """Weighted energy sum (kJ/mol) and its gradient (M, c, 3) wrt per-instance coordinates q (M, c, 3)."""
    fn = _compiled(energy, "energy_and_gradient")
    e, g = fn(_tensor(q), _tensor(weights, q.dtype), *[_tensor(p) for p in params])
    g = g.asnumpy()     # the array first: waiting on the scalar first makes small calls several times slower
    return float(e.asnumpy()), g


def elementwise_derivatives(energy, s, params):
    """phi'(s) and phi''(s) of entry-wise energies, each entry a function of its own scalar, by AD (compiled).

    energy: MindSpore function (s, *params) -> energies of s's shape (kJ/mol), entry m depending
    on s[m] only (pair energies of distances r (M,) nm; Ewald parts of phases (K, n)).
    s: array (float32 or float64); params: tuple of arrays that broadcast against s.
    Returns (dphi, d2phi), both of s's shape and dtype (kJ/mol per unit of s, and per unit squared).
    """
    fn = _compiled(energy, "elementwise_derivatives")
    d1, d2 = fn(_tensor(s), *[_tensor(p) for p in params])
    return d1.asnumpy(), d2.asnumpy()


def elementwise_values(energy, s, params, second=True):
    """phi(s), phi'(s) and (if ``second``) phi''(s) of entry-wise energies (as :func:`elementwise_derivatives`),
    in one compiled call. Returns (phi, dphi, d2phi or None), each of s's shape and dtype."""
    fn = _compiled(energy, "elementwise_second" if second else "elementwise_first")
    out = fn(_tensor(s), *[_tensor(p) for p in params])
    return tuple(a.asnumpy() for a in out) + (() if second else (None,))


def distance2_colouring(n, pairs):
    """Greedy distance-2 colouring of the interaction graph.

    n: atoms; pairs: (P, 2) interacting atom pairs. Returns colours (n,) int64 such that two atoms
    of one colour neither interact nor share a neighbour, so no block column of the Jacobian
    receives two rows of one colour. Largest-degree-first greedy.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    adj = scipy.sparse.coo_matrix((np.ones(2 * len(pairs)), (np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]])),
                                  shape=(n, n)).tocsr()
    adj = (adj + scipy.sparse.identity(n, format="csr")).astype(bool).astype(np.int32)
    within2 = (adj @ adj).tocsr()
    colours = np.full(n, -1, dtype=np.int64)
    for v in np.argsort(-np.diff(within2.indptr), kind="stable"):
        taken = colours[within2.indices[within2.indptr[v]:within2.indptr[v + 1]]]
        used = np.zeros(len(taken) + 1, dtype=bool)
        used[taken[(taken >= 0) & (taken <= len(taken))]] = True
        colours[v] = int(np.argmin(used))
    return colours


def coloured_hessian_blocks(gradient, x, pairs, colours, args=(), batched=False, cache=True):
    """Hessian blocks of an opaque energy by colouring, decompressed.

    gradient: MindSpore function x (N, 3) -> dE/dx (N, 3) (or batched over copies, see
    :func:`row_compressed_jacobian`). x: (N, 3) nm. pairs: (P, 2) every atom pair the energy
    couples (a superset is fine). colours: (N,) from :func:`distance2_colouring`.
    Returns (rows, cols, blocks): all diagonal blocks and both (i, j) and (j, i) for each pair,
    blocks (K, 3, 3) = d2E / dx_i dx_j (kJ mol^-1 nm^-2).
    """
    n = len(x)
    row_colours = 3 * np.asarray(colours)[:, None] + np.arange(3)[None, :]
    R = row_compressed_jacobian(gradient, x, row_colours, 3 * (int(np.max(colours)) + 1), args, batched, cache)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    rows = np.concatenate([np.arange(n), pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([np.arange(n), pairs[:, 1], pairs[:, 0]])
    # block (i, j)[a, b] = R[3 colour(i) + a, j, b]
    blocks = R.reshape(-1, 3, n, 3)[np.asarray(colours)[rows], :, cols, :]
    return rows, cols, blocks
