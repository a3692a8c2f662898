"""mdjac: exact block-sparse force Jacobians of molecular-dynamics potentials.

The force Jacobian J_ij = dF_i/dr_j = -d2U/dr_i dr_j (3x3 blocks, kJ mol^-1 nm^-2) comes from
MindSpore automatic differentiation through the masked-grad kernel (mdjac.kernel); terms state
only their energies (mdjac.terms). See docs/architecture.md for the map of the package.

Importing mdjac is light: MindSpore (seconds to load) is imported when a Potential or a term is first
used, so ``mdjac --help``, ``mdjac info`` and argument errors never wait for it.
"""
import os

# MindSpore (and MindSPONGE through it) log deprecation warnings on every import; keep errors only
# unless the user chose a level (GLOG_v: 0 debug, 1 info, 2 warning, 3 error).
os.environ.setdefault("GLOG_v", "3")

from .errors import InputError, OutputLocked  # noqa: E402
from .lazy import lazy_getattr  # noqa: E402
from .version import __version__  # noqa: E402

#: Public names -> the module that defines them, imported on first use.
_PUBLIC = {
    "ForceJacobian": "jacobian",
    "Potential": "potential",
    "load_system": "catalogue",
    "open_trajectory": "io",
    "open_writer": "io",
    "compute_trajectory": "jobs",
    "run_md": "jobs",
    "normal_modes": "analysis.modes",
    "keep_freed_memory": "process_memory",
}
__all__ = sorted(_PUBLIC) + ["InputError", "OutputLocked", "terms", "__version__"]

__getattr__ = lazy_getattr(__name__, _PUBLIC, modules=("terms",))
