"""backends/torch/stitch.py against the float64 oracle stitcher and its own loop twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.torch.stitch import stitch_patches, stitch_patches_loop
from parity.oracle.stitch import stitch_patches as oracle_stitch


def _scan(rng: np.random.Generator, n: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    # Non-integer, asymmetric centres over a region a few patches wide.
    centres = rng.uniform(0.0, 3.0 * N, (n, 2)) + np.array([17.3, -4.6])
    return centres, centres


@pytest.mark.parametrize(("N", "crop"), [(32, 10), (64, 20), (128, 40)])
def test_stitch_matches_oracle_and_loop(helpers, rng: np.random.Generator, N: int,
                                        crop: int) -> None:
    patches = helpers.noise(rng, 50, N, N)
    centres, _ = _scan(rng, 50, N)
    expected = oracle_stitch(patches, centres, crop_px=crop)
    got, origin = stitch_patches(patches, centres, crop_px=crop)
    looped, loop_origin = stitch_patches_loop(patches, centres, crop_px=crop)
    assert origin == loop_origin == expected.origin_px
    assert got.dtype == np.complex64 and got.shape == expected.reconstructed_obj.shape
    # Measured 1.7e-7 of max vs the oracle (float32 splat, float64 tap weights).
    helpers.close(expected.reconstructed_obj, got, rtol_of_max=helpers.PHYSICS_RTOL,
                  what="stitched vs oracle")
    # Same formula, different summation order: measured 2.3e-7 of max between the two.
    helpers.close(got, looped, rtol_of_max=helpers.PHYSICS_RTOL, what="vectorised vs loop")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12),
       sizes=st.sampled_from([(9, 1), (8, 2), (16, 16), (16, 6), (33, 9)]),
       grid=st.sampled_from([0.0, 0.5, 1.0]), repeat=st.booleans())
def test_stitch_matches_oracle_at_any_geometry(helpers, seed: int, n: int,
                                               sizes: tuple[int, int], grid: float,
                                               repeat: bool) -> None:
    # Edge geometry for the footprint and summed-area count: crops of 1 and 2 pixels, a crop as
    # large as the patch, integer and half-integer centres (fractions 0 and 0.5), and repeated
    # centres (identical footprints summed).
    N, crop = sizes
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20.0, 20.0, (n, 2))
    if grid:
        centres = np.round(centres / grid) * grid
    if repeat:
        centres[-1] = centres[0]
    patches = helpers.noise(rng, n, N, N)
    expected = oracle_stitch(patches, centres, crop_px=crop)
    got, origin = stitch_patches(patches, centres, crop_px=crop)
    assert origin == expected.origin_px
    helpers.close(expected.reconstructed_obj, got, rtol_of_max=helpers.PHYSICS_RTOL,
                  what="stitched vs oracle")
    assert (got[expected.coverage == 0] == 0).all()


def test_stitch_at_centres_just_below_integers(helpers) -> None:
    # Positions like 12.999999999 (metres to pixels) give rim weights of ~1e-9, the size of
    # STITCH_NORM_EPS, where the stitched value is most sensitive to the overlap count; the
    # summed-area count is exact to ~1e-14 absolute there. Measured worst 6e-7 of max over 10
    # dense scans (2e-6 bound; the L1 tolerance is 1e-5).
    worst = 0.0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        centres = rng.integers(10, 50, (200, 2)) - 1e-9
        centres[::2] += rng.uniform(0.0, 1.0, (100, 2))
        patches = helpers.noise(rng, 200, 32, 32)
        expected = oracle_stitch(patches, centres, crop_px=12).reconstructed_obj
        got, _ = stitch_patches(patches, centres, crop_px=12)
        worst = max(worst, float(np.abs(got - expected).max() / np.abs(expected).max()))
    assert worst <= 2e-6, worst


def test_stitch_of_a_constant_is_constant_where_covered(rng: np.random.Generator) -> None:
    patches = np.full((30, 32, 32), 0.7 - 0.2j, np.complex64)
    centres, _ = _scan(rng, 30, 32)
    got, _ = stitch_patches(patches, centres, crop_px=12)
    expected = oracle_stitch(patches, centres, crop_px=12)
    covered = expected.coverage > 0.5  # well inside the footprint (count >> STITCH_NORM_EPS)
    # Overlap averaging of a constant returns it: float32 ratio of sums, 1e-6 relative.
    np.testing.assert_allclose(got[covered], 0.7 - 0.2j, rtol=1e-6)
    assert (got[expected.coverage == 0] == 0).all()


def test_stitch_accepts_tensors_on_their_device(helpers, rng: np.random.Generator) -> None:
    patches = helpers.noise(rng, 8, 32, 32)
    centres, _ = _scan(rng, 8, 32)
    from_tensor, _ = stitch_patches(torch.from_numpy(patches), centres, crop_px=16)
    from_array, _ = stitch_patches(patches, centres, crop_px=16)
    np.testing.assert_array_equal(from_tensor, from_array)  # same device, same kernels: exact


def test_stitch_rejects_bad_input(helpers, rng: np.random.Generator) -> None:
    patches = helpers.noise(rng, 4, 32, 32)
    with pytest.raises(ValueError, match=r"centres have shape \(3, 2\); expected \(4, 2\)"):
        stitch_patches(patches, np.zeros((3, 2)), crop_px=10)
    with pytest.raises(ValueError, match=r"patches have shape \(4, 32, 30\)"):
        stitch_patches(patches[:, :, :30], np.zeros((4, 2)), crop_px=10)
    with pytest.raises(ValueError, match="crop 40 is larger"):
        stitch_patches(patches, np.zeros((4, 2)), crop_px=40)
    centres = np.zeros((4, 2))
    centres[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        stitch_patches(patches, centres, crop_px=10)


@pytest.mark.gpu
def test_stitch_on_cuda_matches_oracle(helpers, rng: np.random.Generator) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    patches = helpers.noise(rng, 200, 64, 64)
    centres, _ = _scan(rng, 200, 64)
    expected = oracle_stitch(patches, centres, crop_px=20)
    got, origin = stitch_patches(torch.from_numpy(patches).cuda(), centres, crop_px=20)
    assert origin == expected.origin_px
    helpers.close(expected.reconstructed_obj, got, rtol_of_max=helpers.PHYSICS_RTOL,
                  what="stitched on cuda")
    looped, _ = stitch_patches_loop(torch.from_numpy(patches).cuda(), centres, crop_px=20)
    helpers.close(got, looped, rtol_of_max=helpers.PHYSICS_RTOL, what="cuda loop")
