"""``backends.tensorflow.stitch`` against ``parity.oracle.stitch`` and its own per-patch loop."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import stitch  # noqa: E402
from parity.oracle import stitch as oracle_stitch  # noqa: E402


@pytest.mark.parametrize(("n", "N", "crop"), [(40, 32, 16), (25, 64, 20)])
def test_stitch_matches_oracle_and_loop(n, N, crop, rng, helpers):
    patches = helpers.noise(rng, n, N, N)
    centres = rng.uniform(20.0, 90.0, size=(n, 2)) + np.array([0.3, -0.7])  # asymmetric
    got, origin = stitch.stitch_patches(patches, centres, crop_px=crop)
    expected = oracle_stitch.stitch_patches(patches, centres, crop_px=crop)
    assert origin == expected.origin_px
    assert got.dtype == np.complex64 and got.shape == expected.reconstructed_obj.shape
    helpers.close(expected.reconstructed_obj, got, rtol_of_max=helpers.PHYSICS_RTOL,
                  what="stitched object")
    looped, loop_origin = stitch.stitch_patches_loop(patches, centres, crop_px=crop)
    assert loop_origin == origin
    # Same taps and weights, different float32 summation order (segment sum vs sequential):
    # the two differ by rounding only, within the same bound as against the oracle.
    helpers.close(got, looped, rtol_of_max=helpers.PHYSICS_RTOL, what="vectorised vs loop")


def test_stitch_accepts_tensors_and_places_content_on_the_object_grid(helpers):
    N, crop = 16, 8
    obj = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) / 4096.0 + 0.5j
    centres = np.array([[20.0, 30.0], [27.0, 30.0], [20.0, 37.0]])  # integer: exact crops
    from parity.oracle.physics import extract_object_patches

    patches = extract_object_patches(obj, centres, N).astype(np.complex64)
    got, (x0, y0) = stitch.stitch_patches(tf.constant(patches), centres, crop_px=crop)
    covered = np.abs(got) > 0
    truth = obj[y0 : y0 + got.shape[0], x0 : x0 + got.shape[1]]
    # Overlap averaging of identical values returns them up to count / (count + 1e-9).
    np.testing.assert_allclose(got[covered], truth[covered], rtol=1e-6)


def test_stitch_rejects_bad_input(rng, helpers):
    patches = helpers.noise(rng, 4, 32, 32)
    with pytest.raises(ValueError, match=r"centres have shape \(3, 2\); expected \(4, 2\)"):
        stitch.stitch_patches(patches, np.zeros((3, 2)), crop_px=16)
    with pytest.raises(ValueError, match="non-finite"):
        stitch.stitch_patches(patches, np.full((4, 2), np.nan), crop_px=16)
    with pytest.raises(ValueError, match=r"expected \(n, N, N\)"):
        stitch.stitch_patches(patches[0], np.zeros((4, 2)), crop_px=16)
    with pytest.raises(ValueError, match="crop 40 is larger"):
        stitch.stitch_patches(patches, np.zeros((4, 2)), crop_px=40)
