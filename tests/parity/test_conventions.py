"""Tests of parity/conventions.py: each convention constant and helper, hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from parity import conventions
from parity.conventions import (
    LOCAL_OFFSET_SIGN,
    POSITION_AXES,
    centre_crop_slice,
    centre_mask,
    kernel_from_oihw,
    kernel_to_oihw,
    patch_centre_index,
    probe_mask,
    relative_offsets,
)


def test_constants_match_ptychopinn():
    # These values ARE the conventions (PtychoPINN raw_data.py / tf_helper.py); a change is a
    # deliberate convention change and must show up here.
    assert POSITION_AXES == ("x", "y")
    assert LOCAL_OFFSET_SIGN == -1.0
    assert conventions.FFT_NORM == "ortho"
    assert conventions.FFT_SHIFT_AXES == (-2, -1)
    assert conventions.MERGE_NORM_EPS == 1e-3
    assert conventions.STITCH_NORM_EPS == 1e-9
    assert conventions.SUPPORTED_N == (32, 64, 128, 256)


@pytest.mark.parametrize("N", [32, 64, 65])
def test_patch_centre_index(N):
    assert patch_centre_index(N) == N // 2


def test_centre_crop_slice_keeps_centre():
    sl = centre_crop_slice(10, 4)
    assert sl == slice(3, 7)
    # index size//2 maps to crop//2
    assert np.arange(10)[sl][4 // 2] == 10 // 2


@pytest.mark.parametrize(("size", "crop", "match"), [(8, 10, "larger"), (9, 4, "odd")])
def test_centre_crop_slice_rejects(size, crop, match):
    with pytest.raises(ValueError, match=match):
        centre_crop_slice(size, crop)


@pytest.mark.parametrize("N", [32, 64])
def test_probe_mask_is_centred_disk(N):
    mask = probe_mask(N)
    assert mask.shape == (N, N)
    assert mask.dtype == np.float64
    assert set(np.unique(mask)) == {0.0, 1.0}
    # symmetric about the half-integer centre (N/2 - 0.5): flips and transpose leave it unchanged
    np.testing.assert_array_equal(mask, mask[::-1, :])
    np.testing.assert_array_equal(mask, mask[:, ::-1])
    np.testing.assert_array_equal(mask, mask.T)
    # the row through the centre holds exactly N/2 ones (diameter N/2, hand-derived in the doc)
    assert mask[N // 2].sum() == N // 2
    # area within 5 % of pi (N/4)^2: a pixelised disk of radius >= 8 is that close
    area = np.pi * (N / 4) ** 2
    assert abs(mask.sum() - area) / area < 0.05


@pytest.mark.parametrize("N", [32, 64])
def test_centre_mask_is_central_square(N):
    mask = centre_mask(N)
    q = N // 4
    assert mask.sum() == (N // 2) ** 2
    assert mask[q : N - q, q : N - q].min() == 1.0
    assert mask[:q].max() == 0.0 and mask[:, N - q :].max() == 0.0


def test_relative_offsets_hand_computed_asymmetric():
    positions = np.array([[[0.5, 0.25], [3.75, 1.0], [1.0, 4.5], [2.25, 2.75]]])
    centres, relative = relative_offsets(positions)
    np.testing.assert_allclose(centres, [[1.875, 2.125]], rtol=0, atol=1e-15)  # exact binary
    expected = np.array([[[1.375, 1.875], [-1.875, 1.125], [0.875, -2.375], [-0.375, -0.625]]])
    np.testing.assert_allclose(relative, expected, rtol=0, atol=1e-15)  # exact binary fractions
    np.testing.assert_allclose(relative, LOCAL_OFFSET_SIGN * (positions - centres[:, None]),
                               rtol=0, atol=0)
    np.testing.assert_allclose(relative.sum(axis=1), 0.0, rtol=0, atol=1e-15)


def test_relative_offsets_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"expected \(B, C, 2\)"):
        relative_offsets(np.zeros((4, 2)))


def test_kernel_layout_conversion():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 5, 7))
    weight = kernel_to_oihw(kernel)
    assert weight.shape == (7, 5, 3, 3)
    # element mapping K[i, j, c, o] == W[o, c, i, j], checked at an asymmetric index
    assert weight[6, 4, 0, 2] == kernel[0, 2, 4, 6]
    np.testing.assert_array_equal(kernel_from_oihw(weight), kernel)
    with pytest.raises(ValueError, match="kh, kw, in, out"):
        kernel_to_oihw(np.zeros((3, 3, 5)))
    with pytest.raises(ValueError, match="out, in, kh, kw"):
        kernel_from_oihw(np.zeros((3, 3)))
