"""Local energy minimisation, in float64: Newton steps with the exact Hessian, or L-BFGS-B.

Normal modes are physical only at a stationary point; :func:`minimise_energy` takes a structure
there. Up to ``DENSE_MAX_DOF`` degrees of freedom it takes saddle-free Newton steps

    dx = V |Lambda|^-1 V^T F,      H = -J = V Lambda V^T,

with the exact Hessian from the potential's force Jacobian (eigenpairs with |lambda| below 1e-9 of
the largest, the free rigid-body directions, are left out), which converges quadratically; larger
systems use L-BFGS-B on the energy and forces.
"""
import sys

import numpy as np

#: saddle-free Newton steps (a dense eigh of the Hessian per step) up to this many degrees of freedom, L-BFGS-B above
DENSE_MAX_DOF = 3000


def _progress_bar(progress, what):
    """A tqdm bar on stderr counting steps; ``progress`` None: only when stderr is a terminal."""
    from tqdm import tqdm
    return tqdm(desc=what, unit=" step", file=sys.stderr, disable=None if progress is None else not progress,
                dynamic_ncols=True, leave=True)    # the last line stays: steps, energy, largest force


def minimise_energy(potential, positions, box=None, gtol=1e-6, max_steps=200, max_move=0.02, progress=None):
    """Local energy minimum, in float64. Returns (positions (N, 3) nm, largest force component).

    positions (N, 3) nm; gtol: stop when the largest force component is below it
    (kJ mol^-1 nm^-1). Up to DENSE_MAX_DOF degrees of freedom: saddle-free Newton steps with the
    exact Hessian H = -J from the potential's force Jacobian, dx = V |Lambda|^-1 V^T F over the
    eigenpairs of H with |lambda| above 1e-9 of the largest (so flat rigid-body directions are left
    alone), no atom moving more than ``max_move`` nm, halved until the energy does not rise.
    Quadratic convergence near the minimum: a few Jacobians reach gtol = 1e-6. Larger systems:
    L-BFGS-B on energy and forces. progress: a bar on stderr with the step count, energy and
    largest force (True, False, or None: only when stderr is a terminal); the first step includes
    the compilation of the potential.
    """
    x = np.asarray(positions, dtype=np.float64).copy()
    with _progress_bar(progress, "minimising") as bar:
        if x.size > DENSE_MAX_DOF:
            return _lbfgs(potential, x, box, gtol, max_steps * 100, bar)
        return _newton(potential, x, box, gtol, max_steps, max_move, bar)


def _newton(potential, x, box, gtol, max_steps, max_move, bar):
    """Saddle-free Newton steps (see :func:`minimise_energy`); returns (positions, largest force component)."""
    energy, forces = potential.energy_and_forces(x, box=box)
    for _ in range(max_steps):
        bar.set_postfix_str(f"E = {energy:.6g} kJ/mol, max |F| = {np.abs(forces).max():.2g} kJ/mol/nm", refresh=False)
        bar.update()
        if np.abs(forces).max() < gtol:
            break
        h = -potential.force_jacobian(x, box=box).to_dense().reshape(x.size, x.size).astype(np.float64)
        lam, vec = np.linalg.eigh(0.5 * (h + h.T))
        keep = np.abs(lam) > 1e-9 * np.abs(lam).max()
        step = (vec[:, keep] @ ((vec[:, keep].T @ forces.ravel()) / np.abs(lam[keep]))).reshape(x.shape)
        step *= min(1.0, max_move / np.linalg.norm(step, axis=1).max())
        for _ in range(30):
            e_new, f_new = potential.energy_and_forces(x + step, box=box)
            if e_new <= energy + 1e-12 * abs(energy):
                break
            step *= 0.5
        else:
            break                                   # no descent along the Newton direction
        x, energy, forces = x + step, e_new, np.asarray(f_new, dtype=np.float64)
    return x, float(np.abs(forces).max())


def _lbfgs(potential, x0, box, gtol, maxiter, bar):
    """L-BFGS-B on the energy (kJ/mol) and forces; returns (positions, largest force component)."""
    import scipy.optimize

    def energy_and_gradient(flat):
        e, f = potential.energy_and_forces(flat.reshape(x0.shape), box=box)
        bar.set_postfix_str(f"E = {float(e):.6g} kJ/mol, max |F| = {np.abs(f).max():.2g} kJ/mol/nm", refresh=False)
        bar.update()
        return float(e), -np.asarray(f, dtype=np.float64).ravel()

    res = scipy.optimize.minimize(energy_and_gradient, x0.ravel(), jac=True, method="L-BFGS-B",
                                  options=dict(gtol=gtol, ftol=1e-15, maxiter=maxiter,
                                               maxfun=2 * maxiter, maxcor=30))
    x = res.x.reshape(x0.shape)
    return x, float(np.abs(potential.forces(x, box=box)).max())
