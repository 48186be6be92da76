"""Float64 NumPy oracle of every deterministic stage: the tie-breaker when the backends disagree.

Nothing here imports a deep-learning framework. Each function computes in float64 (complex128) and
states its conventions by reference to :mod:`parity.conventions`.
"""

from parity.oracle.physics import (
    exit_wave,
    extract_group,
    extract_object_patches,
    farfield_amplitude,
    mae_loss,
    merge_group,
    normalise_probe,
    pad_to_canvas,
    poisson_nll,
    translate,
    trim_canvas,
)
from parity.oracle.stitch import StitchedObject, stitch_patches

__all__ = [
    "StitchedObject",
    "exit_wave",
    "extract_group",
    "extract_object_patches",
    "farfield_amplitude",
    "mae_loss",
    "merge_group",
    "normalise_probe",
    "pad_to_canvas",
    "poisson_nll",
    "stitch_patches",
    "translate",
    "trim_canvas",
]
