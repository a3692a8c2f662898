"""Long-range terms: sums that couple every pair of atoms (mdjac.terms.base.LongRangeTerm).

* :mod:`mdjac.longrange.ewald`: the Ewald sum (OpenMM's parameters, the reciprocal sum
  ``EwaldReciprocal``, ``ewald_terms`` for the whole sum as terms);
* :mod:`mdjac.longrange.phases`: the phase derivatives by AD that the reciprocal sum's Jacobian uses;
* :mod:`mdjac.longrange.pme`: OpenMM's smooth PME (``PMEReciprocal``, ``pme_terms``), with its mesh
  as numpy/numba bookkeeping in :mod:`mdjac.longrange.pme_grid` (no MindSpore) and its stencils'
  derivatives by AD in :mod:`mdjac.longrange.splines`;
* :mod:`mdjac.longrange.ljpme`: LJ-PME's dispersion mesh (``DispersionPMEReciprocal``), PME's machinery with the
  C6 coefficients and OpenMM's dispersion influence function.

Their Jacobian parts are data in mdjac.long_range_jacobian (and mdjac.pme_jacobian). A new long-range term is one
module here with one :class:`~mdjac.terms.base.LongRangeTerm` subclass; the potential and its
strategies treat it through that protocol.
"""
