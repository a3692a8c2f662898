"""mdjac: exact block-sparse force Jacobians of molecular-dynamics potentials.

The force Jacobian J_ij = dF_i/dr_j = -d2U/dr_i dr_j (3x3 blocks, kJ mol^-1 nm^-2) comes from
MindSpore automatic differentiation through the masked-grad kernel (mdjac.kernel); terms state
only their energies (mdjac.terms). See docs/architecture.md for the map of the package.
"""
import os

# MindSpore (and MindSPONGE through it) log deprecation warnings on every import; keep errors only
# unless the user chose a level (GLOG_v: 0 debug, 1 info, 2 warning, 3 error).
os.environ.setdefault("GLOG_v", "3")

from .errors import InputError  # noqa: E402
from .jacobian import ForceJacobian  # noqa: E402
from .potential import Potential  # noqa: E402
from . import terms  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ForceJacobian", "InputError", "Potential", "terms", "load_system", "open_trajectory", "normal_modes",
           "__version__"]


def __getattr__(name):
    """Lazy entry points, so that importing mdjac stays light (no MindSPONGE, h5py or matplotlib)."""
    if name == "load_system":
        from .catalogue import load_system
        return load_system
    if name == "open_trajectory":
        from .h5md import open_trajectory
        return open_trajectory
    if name == "normal_modes":
        from .modes import normal_modes
        return normal_modes
    raise AttributeError(f"module 'mdjac' has no attribute {name!r}")
