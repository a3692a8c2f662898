"""The "colour" strategy: the whole potential as one opaque energy (mdjac.strategies.one_function),
its Hessian by a distance-2 colouring of its interaction graph: one masked grad per colour and component."""
from .. import kernel
from .one_function import jacobian_by_colours


def coloured_jacobian(potential, config, selected):
    """The force Jacobian over all N atoms (``selected`` is cut out by the caller), a ForceJacobian."""
    return jacobian_by_colours(potential, config, kernel.distance2_colouring)
