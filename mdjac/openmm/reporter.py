"""``ForceJacobianReporter``: an OpenMM reporter that writes force Jacobians beside the trajectory.

Used like OpenMM's DCDReporter::

    simulation.reporters.append(ForceJacobianReporter("run.h5md", 100))

Every ``reportInterval`` steps it takes the positions, box and forces of OpenMM's State, computes
the force Jacobian of the System's potential (:func:`mdjac.openmm.adapt`, built once from
``simulation.system``) and appends the frame through mdjac's writer for the file
(:func:`mdjac.io.open_writer`: the same layout and rollback journal as ``mdjac compute``).
"""
import numpy as np

from ..errors import InputError
from ..io import open_writer
from ..space import check_box, is_triclinic


class ForceJacobianReporter:
    """Write positions (nm), box (nm), forces (kJ mol^-1 nm^-1) and the force Jacobian
    (kJ mol^-1 nm^-2) of every ``reportInterval``-th step to a file.

    Parameters
    ----------
    file : str, the output path (its writer is chosen by :func:`mdjac.io.open_writer`).
    reportInterval : int, steps between reports.
    atoms : None (all) or (n,) int, the global indices whose rows and columns of J are stored.
    strategy : str, "replicate" (default), "colour" or "dense" (see :meth:`mdjac.Potential.force_jacobian`).
    dtype : the stored precision (float32 by default; the Jacobian is computed in float64).
    append : bool, resume ``file`` after its last complete frame instead of creating it
        (a restart): steps already stored are skipped.
    potential : an mdjac Potential to use instead of ``adapt(simulation.system)``.
    **writer_options : further keywords of the writer (triangle, compression, batch, ...).
    """

    def __init__(self, file, reportInterval, atoms=None, strategy="replicate", dtype=np.float32, append=False,
                 potential=None, **writer_options):
        if int(reportInterval) < 1:
            raise InputError(f"reportInterval is {reportInterval}: give a positive number of steps")
        self._file, self._interval = file, int(reportInterval)
        self._atoms, self._strategy, self._dtype, self._append = atoms, strategy, dtype, bool(append)
        self._potential, self._writer_options, self._writer = potential, writer_options, None

    def describeNextReport(self, simulation):
        """What the next report needs: the steps until it, positions and forces, unwrapped.

        Parameters
        ----------
        simulation : openmm.app.Simulation.

        Returns
        -------
        dict : OpenMM's reporter description (``steps``, ``periodic``, ``include``).
        """
        steps = self._interval - simulation.currentStep % self._interval
        return {"steps": steps, "periodic": False, "include": ["positions", "forces"]}

    def report(self, simulation, state):
        """Compute and append the frame of ``state`` (the writer is opened at the first report).

        Parameters
        ----------
        simulation : openmm.app.Simulation.
        state : openmm.State with positions and forces.
        """
        from openmm import unit
        if self._writer is None:
            self._writer = self._open(simulation)
        step = int(simulation.currentStep)
        if self._writer.last_step is not None and step <= self._writer.last_step:
            return  # a restart that replays steps already stored
        x = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
        forces = np.asarray(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        box = None
        if self._potential.box is not None:
            box = check_box(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
        jacobian = self._potential.force_jacobian(x, atoms=self._atoms, strategy=self._strategy, box=box)
        self._writer.append(step, state.getTime().value_in_unit(unit.picosecond), x, box=box, forces=forces,
                            jacobian=jacobian)

    def _open(self, simulation):
        """The writer of the file, for the simulation's System (adapted here unless given)."""
        from .adapter import adapt
        if self._potential is None:
            self._potential = adapt(simulation.system)
        return open_writer(self._file, self._potential.n_atoms, names=[a.name for a in simulation.topology.atoms()],
                           masses=getattr(self._potential, "masses", None), periodic=self._potential.box is not None,
                           triclinic=is_triclinic(self._potential.box),
                           forces=True, jacobian_atoms=self._potential.jacobian_atoms if self._atoms is None else np.asarray(self._atoms),
                           dtype=self._dtype, mode="a" if self._append else "w", **self._writer_options)

    def close(self):
        """Write the buffered frames and release the file."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
