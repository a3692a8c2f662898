"""``python -m mdjac``: the same command line as the ``mdjac`` console script."""
from .cli import run

run()
