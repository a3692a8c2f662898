"""OpenMM adapter: any OpenMM System as an mdjac Potential, and a reporter writing Jacobians.

* :func:`adapt` (mdjac/openmm/adapter.py): System -> Potential, force by force;
* mdjac/openmm/expressions.py: Lepton energy expressions as MindSpore energies;
* mdjac/openmm/nonbonded.py: NonbondedForce's forms (reaction field, switch, dispersion correction).

OpenMM is imported only when a System is read.
"""
from .adapter import adapt, force_terms, masses, periodic_box
from .reporter import ForceJacobianReporter

__all__ = ["ForceJacobianReporter", "adapt", "force_terms", "masses", "periodic_box"]
