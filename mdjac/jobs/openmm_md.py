"""``mdjac run`` on a force-field file: OpenMM's MD with :class:`mdjac.openmm.ForceJacobianReporter`.

Langevin dynamics (OpenMM's LangevinMiddleIntegrator, friction 1/ps) on OpenMM's CPU platform, of
the System the file was loaded as (no constraints: the Jacobian is that of the whole potential, so
the default time step is 0.5 fs), velocities drawn at the temperature; the reporter writes a frame
with its Jacobian every ``every`` steps (steps every, 2 every, ..., steps). :func:`mdjac.jobs.run_md`
calls it for a system of engine "openmm"; the summary has the keys of the MindSPONGE path's.
"""
import os
import sys
import time

import numpy as np

from .compute import system_record

#: The time step (ps) of OpenMM MD unless told: the loaded Systems have no constraints.
TIME_STEP = 5e-4
FRICTION = 1.0    # ps^-1
SEED = 2026


class _TimedReporter:
    """A reporter's calls timed: ``seconds`` (each report), ``jacobian_seconds`` (its Jacobian alone)."""

    def __init__(self, reporter, after_frame):
        self.reporter, self.after_frame = reporter, after_frame   # after_frame(): called after each report
        self.seconds, self.steps = [], []

    def describeNextReport(self, simulation):
        return self.reporter.describeNextReport(simulation)

    def report(self, simulation, state):
        start = time.perf_counter()
        self.reporter.report(simulation, state)
        self.seconds.append(time.perf_counter() - start)
        self.steps.append(int(simulation.currentStep))
        self.after_frame()


def run_openmm_md(sys_, steps, every, output, temperature, time_step, dtype, strategy, overwrite, interrupt,
                  progress):
    """OpenMM MD of an :class:`mdjac.catalogue.openmm_engine.OpenMMSystem` with Jacobians into ``output``.

    Parameters as :func:`mdjac.jobs.run_md` (``time_step`` None: :data:`TIME_STEP`). Returns its summary dict.
    """
    import openmm
    from openmm import app, unit
    from tqdm import tqdm

    from ..openmm import ForceJacobianReporter

    time_step = TIME_STEP if time_step is None else time_step
    potential = sys_.potential
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, FRICTION / unit.picosecond,
                                                 time_step * unit.picoseconds)
    integrator.setRandomNumberSeed(SEED)
    simulation = app.Simulation(sys_.openmm_topology, sys_.openmm_system, integrator,
                                openmm.Platform.getPlatformByName("CPU"))
    simulation.context.setPositions(sys_.positions * unit.nanometer)
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, SEED)
    metadata = {"system": os.path.abspath(sys_.path), "steps": steps, "every": every, "engine": "openmm", **system_record(sys_)}
    reporter = ForceJacobianReporter(output, every, strategy=strategy, dtype=dtype, potential=potential,
                                     overwrite=overwrite, metadata=metadata)
    bar = tqdm(total=steps, unit="step", desc="OpenMM MD + jacobians", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    timed = _TimedReporter(reporter, interrupt.check)
    simulation.reporters.append(timed)
    start = time.perf_counter()
    try:
        with bar:
            for done in range(0, steps, every):
                chunk = min(every, steps - done)
                simulation.step(chunk)
                bar.update(chunk)
                interrupt.check()
    finally:
        closing = time.perf_counter()
        reporter.close()
        finished = time.perf_counter()
    wall = closing - start
    summary = {
        "system": sys_.name, "engine": "openmm (LangevinMiddleIntegrator, CPU platform)",
        "electrostatics": sys_.electrostatics, "output": str(output), "atoms": potential.n_atoms,
        "steps": steps, "every": every, "time_step_ps": time_step, "frames": len(timed.steps),
        "frame_steps": list(timed.steps),
        "first_jacobian_seconds": timed.seconds[0] if timed.seconds else float("nan"),
        "callback_seconds_per_frame": float(np.mean(timed.seconds[1:] or timed.seconds or [np.nan])),
        "callback_seconds": list(timed.seconds),
        "write_seconds_per_frame": (finished - closing) / max(1, len(timed.steps)),
        "seconds_per_md_step": (wall - float(np.sum(timed.seconds))) / steps,
    }
    return summary
