"""Strategies of :meth:`mdjac.Potential.force_jacobian`, one module each, and their registry.

* ``replicate`` (default, :mod:`.replicate`): per-term replication with the radial route of pair terms;
* ``colour`` (:mod:`.colour`): the whole potential as one energy, distance-2 colouring;
* ``dense`` (:mod:`.dense`): the article's identity mask, 3N copies; small systems, tests.

A strategy is ``function(potential, config, selected)`` -> :class:`mdjac.jacobian.ForceJacobian`
over all N atoms (rows row-major, unique, every diagonal block; a long-range part if it keeps
one), ``selected`` (N,) bool or None a hint of the atoms whose rows and columns the caller will cut
out. Shared pieces: :mod:`mdjac.chunks` (the padded chunk loop), :mod:`.coordinates` (q and the chain
rule), :mod:`.one_function` (the one-function energy).
"""
from .colour import coloured_jacobian
from .dense import dense_jacobian
from .replicate import replicated_jacobian

#: Strategy name -> function(potential, config, selected); ``mdjac compute --strategy`` offers these names.
STRATEGIES = {
    "replicate": replicated_jacobian,
    "colour": coloured_jacobian,
    "dense": dense_jacobian,
}
