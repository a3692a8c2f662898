"""MindSPONGE integration (MindSPONGE is imported only when one of these is first used).

* :func:`adapt` (mdjac.sponge.adapter): a MindSPONGE Molecule + ForceField -> the mdjac Potential
  of exactly that force field (bonds, angles, torsions, Coulomb, Lennard-Jones, 1-4 pairs).
* :func:`sponge_force_jacobian`, :func:`sponge_energy_and_forces` (mdjac.sponge.blackbox):
  MindSPONGE's own energy cell as an opaque function, an independent Jacobian path.
* :class:`ForceJacobianCallback` (mdjac.sponge.callback): Jacobians during ``Sponge.run``.
* :func:`sponge_md`, :func:`graph_mode` (mdjac.sponge.engine): an MD engine to run it with.
* mdjac.sponge.systems: the MindSPONGE molecules of the catalogue's systems.

The MD job of ``mdjac run`` is :func:`mdjac.jobs.run_md`.
"""
from ..lazy import lazy_getattr

_PUBLIC = {
    "adapt": "adapter", "check_forcefield": "adapter", "molecule_positions": "adapter",
    "sponge_force_jacobian": "blackbox", "sponge_energy_and_forces": "blackbox",
    "sponge_energy_function": "blackbox", "differentiable_cross": "blackbox",
    "ForceJacobianCallback": "callback",
    "sponge_md": "engine", "graph_mode": "engine", "complete_neighbour_list": "engine",
    "build_sponge": "systems",
}
__all__ = sorted(_PUBLIC)

__getattr__ = lazy_getattr(__name__, _PUBLIC)
