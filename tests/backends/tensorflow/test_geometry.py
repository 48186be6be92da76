"""``backends.tensorflow.geometry`` against the float64 NumPy oracle (``parity.oracle.physics``).

Every comparison uses ``helpers.PHYSICS_RTOL`` (see ``conftest.py`` for the measured float32 error
it is calibrated on). Offsets are asymmetric and non-integer: symmetric cases hide sign bugs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import geometry  # noqa: E402
from parity.conventions import MERGE_NORM_EPS, centre_mask  # noqa: E402
from parity.oracle import physics as oracle  # noqa: E402

CASES = [(32, 1), (64, 1), (64, 2), (128, 2)]


def _offsets(rng: np.random.Generator, B: int, C: int, spread: float) -> np.ndarray:
    """Asymmetric, non-integer offsets (x and y drawn separately, shifted off zero mean)."""
    t = rng.uniform(-spread, spread, size=(B, C, 2)) + np.array([0.37, -1.21])
    return t.astype(np.float32)


@pytest.mark.parametrize(("N", "gridsize"), CASES)
def test_translate_matches_oracle(N, gridsize, rng, helpers):
    C = gridsize**2
    patches = helpers.noise(rng, 3, C, N, N)
    # spread past N/8 and one shift beyond the image: zero fill must match too.
    offsets = _offsets(rng, 3, C, spread=N / 8)
    offsets[0, 0] = (N + 2.5, -0.25)
    got = geometry.translate(tf.constant(patches), tf.constant(offsets)).numpy()
    assert got.dtype == np.complex64 and got.shape == patches.shape
    helpers.close(oracle.translate(patches, offsets), got, rtol_of_max=helpers.PHYSICS_RTOL,
                  what="translated (complex)")
    real = patches.real.copy()
    got_real = geometry.translate(tf.constant(real), tf.constant(offsets)).numpy()
    assert got_real.dtype == np.float32
    helpers.close(oracle.translate(real, offsets), got_real, rtol_of_max=helpers.PHYSICS_RTOL,
                  what="translated (real)")


def test_translate_moves_content_by_plus_t():
    image = np.zeros((1, 16, 16), np.float32)
    image[0, 5, 3] = 1.0  # row (y) 5, column (x) 3
    out = geometry.translate(tf.constant(image), tf.constant([[2.0, 4.0]], tf.float32)).numpy()
    assert out[0, 9, 5] == 1.0 and out.sum() == 1.0  # moved to y = 5 + 4, x = 3 + 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.tuples(st.integers(1, 3), st.integers(4, 12), st.integers(4, 12)),
       tx=st.integers(-14, 14), ty=st.integers(-14, 14), seed=st.integers(0, 2**16))
def test_translate_integer_shift_is_exact_shift_with_zero_fill(shape, tx, ty, seed):
    image = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    offsets = np.broadcast_to(np.array([tx, ty], np.float32), (shape[0], 2))
    out = geometry.translate(tf.constant(image), tf.constant(offsets)).numpy()
    expected = np.zeros_like(image)
    H, W = shape[1:]
    ys, xs = slice(max(ty, 0), min(H + ty, H)), slice(max(tx, 0), min(W + tx, W))
    src_y, src_x = slice(max(-ty, 0), min(H - ty, H)), slice(max(-tx, 0), min(W - tx, W))
    if ys.start < ys.stop and xs.start < xs.stop:
        expected[:, ys, xs] = image[:, src_y, src_x]
    np.testing.assert_array_equal(out, expected)  # integer shifts: weights 1 and 0, exact


@settings(max_examples=25, deadline=None)
@given(H=st.integers(3, 9), W=st.integers(3, 9), C=st.integers(1, 3),
       t=st.lists(st.floats(-7.0, 7.0, allow_nan=False, width=32), min_size=6, max_size=6),
       seed=st.integers(0, 2**16))
def test_translate_matches_oracle_and_gradient_is_its_transpose(H, W, C, t, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((C, H, W)).astype(np.float32)
    offsets = np.asarray(t[: 2 * C], np.float32).reshape(C, 2)
    source = tf.Variable(image)
    upstream = rng.standard_normal((C, H, W)).astype(np.float32)
    with tf.GradientTape() as tape:
        out = geometry.translate(source, tf.constant(offsets))
        loss = tf.reduce_sum(out * upstream)
    gradient = tape.gradient(loss, source).numpy()
    expected = oracle.translate(image, offsets)
    # Tolerances: float32 of values O(1) summed over 4 taps (<= ~4e-7 abs); 1e-6 x max|ref|.
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6 * scale, rtol=0)
    # Jacobian of the float64 oracle, one unit image per source pixel, then its transpose.
    basis = np.eye(H * W).reshape(H * W, 1, H, W)
    columns = np.stack([oracle.translate(np.broadcast_to(basis[j], (C, H, W)), offsets)
                        for j in range(H * W)])                           # (HW, C, H, W)
    adjoint = np.einsum("jcyx,cyx->cj", columns, upstream).reshape(C, H, W)
    np.testing.assert_allclose(gradient, adjoint, atol=1e-6 * max(np.abs(adjoint).max(), 1.0),
                               rtol=0)


def test_translate_rejects_bad_offsets(rng, helpers):
    images = tf.constant(helpers.noise(rng, 2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"offsets have shape"):
        geometry.translate(images, tf.zeros((2, 2, 2), tf.float32))
    with pytest.raises(TypeError, match="real floating dtype"):
        geometry.translate(images, tf.zeros((2, 3, 2), tf.int32))


def test_translate_in_graph_with_unknown_batch(rng, helpers):
    images = helpers.noise(rng, 5, 16, 16)
    offsets = _offsets(rng, 5, 1, spread=3.0)[:, 0]

    @tf.function(input_signature=[tf.TensorSpec((None, 16, 16), tf.complex64),
                                  tf.TensorSpec((None, 2), tf.float32)])
    def graph(x, t):
        return geometry.translate(x, t)

    eager = geometry.translate(tf.constant(images), tf.constant(offsets)).numpy()
    # Same kernels in and out of a graph: identical bits.
    np.testing.assert_array_equal(graph(tf.constant(images), tf.constant(offsets)).numpy(), eager)


def test_pad_and_trim_are_inverse(rng, helpers):
    patches = helpers.noise(rng, 2, 4, 32, 32)
    canvas = geometry.pad_to_canvas(tf.constant(patches), 46)
    np.testing.assert_array_equal(canvas.numpy(), oracle.pad_to_canvas(patches, 46))
    np.testing.assert_array_equal(geometry.trim_canvas(canvas, 32).numpy(), patches)
    with pytest.raises(ValueError, match="even number of pixels"):
        geometry.pad_to_canvas(tf.constant(patches), 45)
    with pytest.raises(ValueError, match="odd number"):
        geometry.trim_canvas(canvas, 31)


@pytest.mark.parametrize(("N", "gridsize"), CASES)
def test_merge_and_extract_match_oracle(N, gridsize, rng, helpers):
    C = gridsize**2
    canvas_px = N + (gridsize - 1) * 4 + 10
    patches = helpers.noise(rng, 3, C, N, N)
    relative = _offsets(rng, 3, C, spread=3.0)
    merged = geometry.merge_group(tf.constant(patches), tf.constant(relative), canvas_px)
    assert merged.shape == (3, canvas_px, canvas_px) and merged.dtype == tf.complex64
    expected = oracle.merge_group(patches, relative, canvas_px)
    helpers.close(expected, merged.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="merged canvas")
    extracted = geometry.extract_group(merged, tf.constant(relative), N).numpy()
    assert extracted.shape == (3, C, N, N)
    helpers.close(oracle.extract_group(merged.numpy(), relative, N), extracted,
                  rtol_of_max=helpers.PHYSICS_RTOL, what="extracted patches")


@settings(max_examples=15, deadline=None)
@given(C=st.integers(1, 4), seed=st.integers(0, 2**16),
       shifts=st.lists(st.integers(-3, 3), min_size=8, max_size=8))
def test_merge_then_extract_returns_masked_patch_at_integer_offsets(C, seed, shifts):
    """Members cut from ONE object at integer offsets: merge averages identical values, so each
    member's centre region comes back as ``P * count / (count + eps)``."""
    N, canvas_px = 16, 30
    rng = np.random.default_rng(seed)
    obj = (rng.standard_normal((40, 40)) + 1j * rng.standard_normal((40, 40))).astype(np.complex64)
    relative = np.asarray(shifts[: 2 * C], np.float32).reshape(1, C, 2)
    # relative = -(p - centre): member c is cut at centre - r_c.
    patches = oracle.extract_object_patches(obj, 20.0 - relative[0], N).astype(np.complex64)[None]
    merged = geometry.merge_group(tf.constant(patches), tf.constant(relative), canvas_px)
    back = geometry.extract_group(merged, tf.constant(relative), N).numpy()
    masks = np.broadcast_to(centre_mask(N), patches.shape)
    count_canvas = oracle.translate(oracle.pad_to_canvas(masks, canvas_px), -relative).sum(axis=1)
    count = oracle.extract_group(count_canvas, relative, N)
    inside = masks.astype(bool)
    expected = patches * count / (count + MERGE_NORM_EPS)
    # Integer offsets: bilinear weights are exactly 0/1; float32 sums of <= 4 values and one
    # division remain (<= ~5e-7 relative); 2e-6 of the values' scale (O(1)) is the bound.
    np.testing.assert_allclose(back[inside], expected[inside], rtol=0, atol=2e-6)


@pytest.mark.parametrize("C", [1, 4])
def test_merge_and_extract_gradients_are_their_transposes(C, rng):
    """Dot-product test against the float64 oracle: merge (with a constant overlap count) and
    extract are linear in the patches / canvas, so ``<grad of <f(x), y>, x'> = <f(x'), y>``."""
    B, N, P = 2, 8, 14
    relative = (rng.uniform(-2.5, 2.5, size=(B, C, 2)) + np.array([0.3, -0.45])).astype(np.float32)
    patches = tf.Variable(rng.standard_normal((B, C, N, N)).astype(np.float32))
    canvas = tf.Variable(rng.standard_normal((B, P, P)).astype(np.float32))
    y_canvas = rng.standard_normal((B, P, P))
    y_patches = rng.standard_normal((B, C, N, N))
    with tf.GradientTape(persistent=True) as tape:
        merged = geometry.merge_group(patches, tf.constant(relative), P)
        extracted = geometry.extract_group(canvas, tf.constant(relative), N)
        merge_dot = tf.reduce_sum(merged * tf.constant(y_canvas, tf.float32))
        extract_dot = tf.reduce_sum(extracted * tf.constant(y_patches, tf.float32))
    merge_adjoint = tape.gradient(merge_dot, patches).numpy().astype(np.float64)
    extract_adjoint = tape.gradient(extract_dot, canvas).numpy().astype(np.float64)
    for _ in range(3):
        x_patches = rng.standard_normal((B, C, N, N))
        x_canvas = rng.standard_normal((B, P, P))
        lhs = np.sum(merge_adjoint * x_patches)
        rhs = np.sum(oracle.merge_group(x_patches, relative, P).real * y_canvas)
        # float32 gradient entries (relative rounding ~1e-7) summed over ~500 terms of O(1).
        assert abs(lhs - rhs) <= 1e-5 * np.sum(np.abs(merge_adjoint * x_patches)), (lhs, rhs)
        lhs = np.sum(extract_adjoint * x_canvas)
        rhs = np.sum(oracle.extract_group(x_canvas, relative, N) * y_patches)
        assert abs(lhs - rhs) <= 1e-5 * np.sum(np.abs(extract_adjoint * x_canvas)), (lhs, rhs)


def test_merge_rejects_bad_canvas_and_offsets(rng, helpers):
    patches = tf.constant(helpers.noise(rng, 2, 4, 32, 32))
    with pytest.raises(ValueError, match="even number of pixels"):
        geometry.merge_group(patches, tf.zeros((2, 4, 2), tf.float32), 41)
    with pytest.raises(ValueError, match="relative offsets have shape"):
        geometry.merge_group(patches, tf.zeros((2, 3, 2), tf.float32), 42)
