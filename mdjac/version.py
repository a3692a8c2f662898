"""The one version string of mdjac (pyproject.toml and the H5MD files' creator read it from here)."""
__version__ = "0.1.0"
