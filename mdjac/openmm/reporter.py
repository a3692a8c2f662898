"""``ForceJacobianReporter``: an OpenMM reporter that writes force Jacobians into mdjac's H5MD file.

Used like DCDReporter::

    simulation.reporters.append(ForceJacobianReporter("run.h5md", 100))

Every ``reportInterval`` steps it takes the positions, box and forces of OpenMM's State, computes
the Jacobian J = dF/dx of the System's potential (mdjac.openmm.adapt, built once from
``simulation.system``) with mdjac's kernel, and appends the frame through mdjac's H5MD writer
(same layout and rollback journal as ``mdjac compute``). ``append=True`` resumes an existing file
after its last complete frame (restarts): steps already stored are skipped.
"""
import numpy as np

from ..errors import InputError
from ..io.h5md_writer import H5MDWriter


class ForceJacobianReporter:
    """Write positions (nm), box (nm), forces (kJ mol^-1 nm^-1) and the force Jacobian
    (kJ mol^-1 nm^-2) of every ``reportInterval``-th step to an H5MD file.

    Parameters
    ----------
    file : output path (.h5md).
    reportInterval : int, steps between reports.
    atoms : None (all) or (n,) int global indices whose rows and columns of J are stored.
    strategy : "replicate" (default), "colour" or "dense" (see mdjac.potential).
    dtype : stored precision (float32 default; the Jacobian is computed in float64).
    append : resume ``file`` after its last complete frame instead of creating it.
    potential : an mdjac Potential to use instead of ``adapt(simulation.system)``.
    writer_options : further keywords for the H5MD writer (triangle, compression, batch, ...).
    """

    def __init__(self, file, reportInterval, atoms=None, strategy="replicate", dtype=np.float32, append=False,
                 potential=None, **writer_options):
        if int(reportInterval) < 1:
            raise InputError(f"reportInterval is {reportInterval}: give a positive number of steps")
        self.file, self.interval = file, int(reportInterval)
        self.atoms, self.strategy, self.dtype, self.append = atoms, strategy, dtype, bool(append)
        self.potential, self.writer_options, self.writer = potential, writer_options, None

    def describeNextReport(self, simulation):
        steps = self.interval - simulation.currentStep % self.interval
        return {"steps": steps, "periodic": False, "include": ["positions", "forces"]}

    def _open(self, simulation):
        from .adapter import adapt
        if self.potential is None:
            self.potential = adapt(simulation.system)
        names = [a.name for a in simulation.topology.atoms()]
        masses = getattr(self.potential, "masses", None)
        jacobian_atoms = "all" if self.atoms is None else np.asarray(self.atoms)
        self.writer = H5MDWriter(self.file, self.potential.n_atoms, names=names, masses=masses,
                                      periodic=self.potential.box is not None, forces=True,
                                      jacobian_atoms=jacobian_atoms, dtype=self.dtype, mode="a" if self.append else "w",
                                      **self.writer_options)

    def report(self, simulation, state):
        from openmm import unit
        if self.writer is None:
            self._open(simulation)
        step = int(simulation.currentStep)
        if self.writer.last_step is not None and step <= self.writer.last_step:
            return  # a restart that replays steps already stored
        x = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
        forces = np.asarray(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        box = None
        if self.potential.box is not None:
            box = np.diag(np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)))
        jacobian = self.potential.force_jacobian(x, atoms=self.atoms, strategy=self.strategy, box=box)
        self.writer.append(step, state.getTime().value_in_unit(unit.picosecond), x, box=box, forces=forces,
                           jacobian=jacobian)

    def close(self):
        """Write buffered frames and release the file."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
