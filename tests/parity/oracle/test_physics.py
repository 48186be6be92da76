"""Invariants of the float64 physics oracle (parity/oracle/physics.py) and its golden arrays.

Property tests draw seeds and sizes with hypothesis; arrays are generated from the seed with NumPy.
Every tolerance is stated next to its comparison with the reason for its value.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.conventions import centre_mask, probe_mask
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
from parity.oracle.stitch import stitch_patches

PROPERTY = settings(max_examples=30, deadline=None)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _complex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


# -- far field ---------------------------------------------------------------------------------


@PROPERTY
@given(seed=seeds, N=st.sampled_from([8, 16, 32]), batch=st.integers(1, 3))
def test_parseval_with_ortho_scaling(seed, N, batch):
    psi = _complex(np.random.default_rng(seed), (batch, N, N))
    amplitude = farfield_amplitude(psi)
    assert amplitude.shape == psi.shape and amplitude.dtype == np.float64
    # float64 FFT: relative energy error ~ 1e-15 * log2(N); 1e-12 leaves three orders of margin
    np.testing.assert_allclose(np.sum(amplitude**2, axis=(-2, -1)),
                               np.sum(np.abs(psi) ** 2, axis=(-2, -1)), rtol=1e-12, atol=0)


def test_farfield_centres_dc_and_orients_axes():
    N = 16
    constant = np.full((N, N), 0.5 - 0.25j)
    amplitude = farfield_amplitude(constant)
    expected = np.zeros((N, N))
    expected[N // 2, N // 2] = abs(0.5 - 0.25j) * N  # ortho DFT of a constant c is c*N at DC
    np.testing.assert_allclose(amplitude, expected, rtol=0, atol=1e-13)  # FFT round-off ~1e-15*N
    # a plane wave of frequency (u, v) = (3, -2) cycles per N along (x, y) lands at [N/2-2, N/2+3]
    y, x = np.mgrid[0:N, 0:N]
    wave = np.exp(2j * np.pi * (3 * x - 2 * y) / N)
    peak = np.unravel_index(np.argmax(farfield_amplitude(wave)), (N, N))
    assert peak == (N // 2 - 2, N // 2 + 3)


# -- translation -------------------------------------------------------------------------------


def _shift_with_zero_fill(image: np.ndarray, tx: int, ty: int) -> np.ndarray:
    H, W = image.shape
    rolled = np.roll(image, (ty, tx), axis=(0, 1))
    rows = np.arange(H)[:, None] - ty
    cols = np.arange(W)[None, :] - tx
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    return np.where(inside, rolled, 0)


@PROPERTY
@given(seed=seeds, H=st.integers(3, 12), W=st.integers(3, 12),
       shifts=st.lists(st.tuples(st.integers(-14, 14), st.integers(-14, 14)), min_size=6,
                       max_size=6))
def test_integer_translation_is_exact(seed, H, W, shifts):
    rng = np.random.default_rng(seed)
    images = _complex(rng, (2, 3, H, W))
    offsets = np.array(shifts, dtype=np.float64).reshape(2, 3, 2)  # (x, y) per image
    moved = translate(images, offsets)
    for b in range(2):
        for c in range(3):
            tx, ty = shifts[3 * b + c]
            expected = _shift_with_zero_fill(images[b, c], tx, ty)
            # integer shifts: weights are exactly 1 and 0, so the result is bit-exact
            np.testing.assert_array_equal(moved[b, c], expected)


def test_fractional_translation_sign_hand_computed():
    image = np.zeros((1, 9, 11))
    image[0, 4, 3] = 1.0
    moved = translate(image, np.array([[0.25, 1.5]]))  # content moves by +0.25 in x, +1.5 in y
    expected = np.zeros((9, 11))
    expected[5, 3], expected[5, 4] = 0.5 * 0.75, 0.5 * 0.25
    expected[6, 3], expected[6, 4] = 0.5 * 0.75, 0.5 * 0.25
    np.testing.assert_allclose(moved[0], expected, rtol=0, atol=1e-15)  # binary fractions


_fraction = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)


@PROPERTY
@given(seed=seeds, a=st.tuples(_fraction, _fraction), k=st.tuples(st.integers(-3, 3),
                                                                   st.integers(-3, 3)))
def test_fractional_then_integer_composes_exactly(seed, a, k):
    image = _complex(np.random.default_rng(seed), (1, 24, 20))
    twice = translate(translate(image, np.array([a])), np.array([k], dtype=float))
    once = translate(image, np.array([a]) + np.array([k]))
    m = 8  # interior: no tap of either path reaches the zero fill (|a| + |k| + 1 < 8)
    # same taps, same weights up to rounding of (y - k) - a vs y - (a + k): ~1e-15
    np.testing.assert_allclose(twice[:, m:-m, m:-m], once[:, m:-m, m:-m], rtol=0, atol=1e-12)


@PROPERTY
@given(a=st.tuples(_fraction, _fraction), b=st.tuples(_fraction, _fraction),
       slope=st.tuples(st.floats(-2, 2), st.floats(-2, 2)), offset=st.floats(-5, 5))
def test_fractional_composition_exact_on_affine_images(a, b, slope, offset):
    # bilinear interpolation reproduces affine functions exactly, so T_b T_a f = T_(a+b) f there
    y, x = np.mgrid[0:24, 0:24].astype(np.float64)
    image = (offset + slope[0] * x + slope[1] * y)[None]
    twice = translate(translate(image, np.array([a])), np.array([b]))
    shift = np.add(a, b)
    exact = offset + slope[0] * (x - shift[0]) + slope[1] * (y - shift[1])
    m = 8  # |a| + |b| + 2 <= 8: the interior never touches the zero fill
    # values <= ~100; float64 rounding of a few products and sums stays below 1e-11
    np.testing.assert_allclose(twice[0, m:-m, m:-m], exact[m:-m, m:-m], rtol=0, atol=1e-11)


@PROPERTY
@given(a=st.tuples(_fraction, _fraction), b=st.tuples(_fraction, _fraction),
       k=st.tuples(st.floats(-0.4, 0.4), st.floats(-0.4, 0.4)))
def test_fractional_composition_on_smooth_images(a, b, k):
    # plane wave f = exp(i k.r): |f_xx| = kx^2, |f_yy| = ky^2. One bilinear interpolation errs by
    # at most (kx^2 + ky^2) / 8; T_b T_a f - T_(a+b) f involves three such errors (the first is
    # only averaged by the second), so the bound is 3 (kx^2 + ky^2) / 8.
    y, x = np.mgrid[0:24, 0:24].astype(np.float64)
    image = np.exp(1j * (k[0] * x + k[1] * y))[None]
    twice = translate(translate(image, np.array([a])), np.array([b]))
    once = translate(image, np.array([np.add(a, b)]))
    bound = 3 * (k[0] ** 2 + k[1] ** 2) / 8 + 1e-12
    m = 8
    assert np.abs(twice - once)[:, m:-m, m:-m].max() <= bound


def test_translate_rejects_mismatched_offsets():
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        translate(np.zeros((2, 4, 4)), np.zeros((3, 2)))


# -- merge and extract -------------------------------------------------------------------------


@PROPERTY
@given(seed=seeds, gridsize=st.sampled_from([1, 2]), data=st.data())
def test_merge_then_extract_returns_the_patches(seed, gridsize, data):
    N, P, B = 16, 26, 2
    C = gridsize**2
    limit = (P - N) // 2
    # integer relative offsets with zero sum per group: draw C-1, the last balances them
    free = data.draw(st.lists(st.integers(-limit // 2, limit // 2), min_size=2 * B * (C - 1),
                              max_size=2 * B * (C - 1)))
    relative = np.zeros((B, C, 2))
    relative[:, : C - 1] = np.reshape(free, (B, C - 1, 2)) if C > 1 else 0.0
    relative[:, C - 1] = -relative[:, : C - 1].sum(axis=1)
    canvas = _complex(np.random.default_rng(seed), (B, P, P))
    patches = extract_group(canvas, relative, N)  # consistent patches of one object
    again = extract_group(merge_group(patches, relative, P), relative, N)
    centre = centre_mask(N).astype(bool)
    # on each patch's central N/2 square the merge count is an integer >= 1, and the canvas is
    # object * count / (count + 1e-3): relative error <= 1e-3 / (1 + 1e-3) < 1e-3
    np.testing.assert_allclose(again[..., centre], patches[..., centre], rtol=1e-3, atol=1e-12)


def test_merge_single_patch_is_masked_patch():
    rng = np.random.default_rng(3)
    patches = _complex(rng, (1, 1, 16, 16))
    canvas = merge_group(patches, np.zeros((1, 1, 2)), 20)
    expected = pad_to_canvas(patches[:, 0] * centre_mask(16), 20) / (
        pad_to_canvas(centre_mask(16), 20) + 1e-3)
    np.testing.assert_allclose(canvas, expected, rtol=1e-14, atol=0)  # same arithmetic
    np.testing.assert_array_equal(trim_canvas(pad_to_canvas(patches, 20), 16), patches)


# -- probe and exit wave -----------------------------------------------------------------------


@PROPERTY
@given(seed=seeds, N=st.sampled_from([16, 32, 64]), scale=st.floats(0.5, 10.0))
def test_probe_normalisation(seed, N, scale):
    probe = _complex(np.random.default_rng(seed), (N, N)).astype(np.complex64)
    normalised = normalise_probe(probe, scale)
    assert normalised.dtype == np.complex128
    # one mean of N^2 float64 terms: relative error ~1e-16 * N^2 at worst
    assert np.mean(np.abs(probe_mask(N) * normalised)) == pytest.approx(1 / scale, rel=1e-12)


def test_probe_zero_in_disk_is_rejected():
    probe = np.zeros((16, 16), np.complex64)
    probe[0, 0] = 1.0  # outside the disk
    with pytest.raises(ValueError, match="zero inside the normalisation disk"):
        normalise_probe(probe, 4.0)


def test_exit_wave_mask():
    rng = np.random.default_rng(5)
    probe, patches = _complex(rng, (16, 16)), _complex(rng, (2, 3, 16, 16))
    np.testing.assert_array_equal(exit_wave(probe, patches), probe * patches)
    np.testing.assert_array_equal(exit_wave(probe, patches, mask=True),
                                  probe * patches * probe_mask(16))


# -- object patches ----------------------------------------------------------------------------


@PROPERTY
@given(seed=seeds, n=st.integers(1, 4), N=st.sampled_from([8, 16]), data=st.data())
def test_extract_object_patches_centre_pixel(seed, n, N, data):
    rng = np.random.default_rng(seed)
    obj = _complex(rng, (30, 44))  # non-square: catches an (x, y) swap
    xs = data.draw(st.lists(st.floats(N / 2, 43 - N / 2), min_size=n, max_size=n))
    ys = data.draw(st.lists(st.floats(N / 2, 29 - N / 2), min_size=n, max_size=n))
    positions = np.stack([xs, ys], axis=1)
    centre = extract_object_patches(obj, positions, N)[:, N // 2, N // 2]
    x0, y0 = np.floor(positions[:, 0]).astype(int), np.floor(positions[:, 1]).astype(int)
    fx, fy = positions[:, 0] - x0, positions[:, 1] - y0
    x1, y1 = np.minimum(x0 + 1, 43), np.minimum(y0 + 1, 29)
    expected = ((1 - fy) * ((1 - fx) * obj[y0, x0] + fx * obj[y0, x1])
                + fy * ((1 - fx) * obj[y1, x0] + fx * obj[y1, x1]))
    # a handful of products of O(1) values: rounding ~1e-15
    np.testing.assert_allclose(centre, expected, rtol=0, atol=1e-12)


def test_extract_object_patches_integer_positions_are_slices():
    obj = _complex(np.random.default_rng(8), (30, 44))
    positions = np.array([[12.0, 9.0], [30.0, 20.0]])
    patches = extract_object_patches(obj, positions, 8)
    np.testing.assert_array_equal(patches[0], obj[9 - 4 : 9 + 4, 12 - 4 : 12 + 4])
    np.testing.assert_array_equal(patches[1], obj[20 - 4 : 20 + 4, 30 - 4 : 30 + 4])
    assert patches[0, 4, 4] == obj[9, 12]


# -- losses ------------------------------------------------------------------------------------


def test_losses_hand_computed():
    pred = np.array([[1.0, 2.0], [0.5, 3.0]])
    obs = np.array([[1.0, 1.0], [2.0, 0.0]])
    lam, k = pred**2, obs**2
    expected_nll = np.mean(lam - k * np.log(lam + 1e-12))
    assert poisson_nll(lam, k) == pytest.approx(expected_nll, rel=1e-15)
    assert mae_loss(pred, obs) == pytest.approx((0 + 1 + 1.5 + 3) / 4, rel=1e-15)


# -- golden arrays -----------------------------------------------------------------------------


def _golden_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    N = 16
    positions = np.stack([rng.uniform(12, 28, 5), rng.uniform(10, 22, 5)], axis=1)
    return {
        "probe": _complex(rng, (N, N)),
        "patches": _complex(rng, (2, 4, N, N)),
        "relative_px": np.array([[[1.25, -0.5], [-2.0, 0.75], [0.5, 1.5], [0.25, -1.75]],
                                 [[-0.3, 2.2], [1.7, -0.9], [-1.1, -0.4], [-0.3, -0.9]]]),
        "translations_px": rng.uniform(-3, 3, size=(2, 4, 2)),
        "object": _complex(rng, (34, 42)),
        "positions_px": positions,
    }


def test_golden_physics(ndarrays_regression):
    inputs = _golden_inputs()
    probe = normalise_probe(inputs["probe"], 4.0)
    psi = exit_wave(probe, inputs["patches"], mask=True)
    canvas = merge_group(inputs["patches"], inputs["relative_px"], 22)
    object_patches = extract_object_patches(inputs["object"], inputs["positions_px"], 16)
    stitched = stitch_patches(object_patches, inputs["positions_px"], crop_px=10)
    amplitude = farfield_amplitude(psi)
    outputs = {
        "probe_normalised": probe,
        "exit_wave": psi,
        "farfield_amplitude": amplitude,
        "translated": translate(inputs["patches"], inputs["translations_px"]),
        "merged_canvas": canvas,
        "extracted": extract_group(canvas, inputs["relative_px"], 16),
        "object_patches": object_patches,
        "stitched": stitched.reconstructed_obj,
        "stitched_coverage": stitched.coverage,
        "stitched_origin_px": np.asarray(stitched.origin_px, dtype=np.int64),
        "poisson_nll": np.asarray(poisson_nll(amplitude**2, np.abs(inputs["patches"]) ** 2)),
        "mae": np.asarray(mae_loss(amplitude, np.abs(inputs["patches"]))),
    }
    # a changed dtype is a finding of its own (pytest-regressions treats all numbers alike)
    for key, value in outputs.items():
        assert value.dtype in (np.float64, np.complex128, np.int64), (key, value.dtype)
    # Pure float64 arithmetic (products, bilinear sums) reproduces to ~1e-15 on any machine:
    # rtol 1e-12. The FFT path may use another algorithm (pocketfft vs MKL): rtol 1e-10 with an
    # absolute floor of 1e-12 of the largest amplitude. Integers are compared exactly.
    exact_enough = {"rtol": 1e-12, "atol": 1e-14}
    ndarrays_regression.check(
        outputs,
        tolerances={
            "farfield_amplitude": {"rtol": 1e-10, "atol": 1e-12 * float(amplitude.max())},
            "poisson_nll": {"rtol": 1e-10, "atol": 0.0},
            "mae": {"rtol": 1e-10, "atol": 0.0},
        },
        default_tolerance=exact_enough,
    )
