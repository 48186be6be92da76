"""ptycho-parity: the harness and the judge. Imports NumPy, SciPy and matplotlib only."""

__version__ = "0.1.0"
