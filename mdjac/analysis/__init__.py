"""What is done with force Jacobians once computed.

* :mod:`mdjac.analysis.modes`: normal modes (mass weighting, rigid-body projection, dense and
  Lanczos solvers); ``mdjac.normal_modes`` is its entry point.
* :mod:`mdjac.analysis.minimise`: local energy minimisation with the exact Hessian.
* :mod:`mdjac.analysis.plots`: matplotlib figures (VDOS, sparsity pattern, stiffness, modes).

Nothing here computes a derivative: the modules take ForceJacobians (and potentials, for the
minimiser) as data.
"""
