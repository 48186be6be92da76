"""backends/torch/geometry.py against the float64 oracle (parity/oracle/physics.py).

Tolerance: ``helpers.PHYSICS_RTOL`` (conftest) x max|reference| for every function; see its comment for the
measured float32-vs-float64 error it is based on. Offsets are asymmetric and non-integer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.torch import geometry
from parity.config import ModelConfig
from parity.conventions import centre_mask
from parity.oracle import physics as oracle

T = torch.from_numpy


def _relative(rng: np.random.Generator, B: int, C: int, spread: float) -> np.ndarray:
    """Asymmetric, non-integer, zero-mean relative offsets (zero for C = 1)."""
    rel = rng.uniform(-spread, spread, (B, C, 2)) + np.array([0.37, -0.21])
    return (rel - rel.mean(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("N", [32, 64, 128])
@pytest.mark.parametrize("dtype", [np.complex64, np.float32])
def test_translate_matches_oracle(helpers, rng: np.random.Generator, N: int, dtype: type) -> None:
    images = helpers.noise(rng, 3, 4, N, N)
    images = images if dtype is np.complex64 else images.real.astype(np.float32)
    # Asymmetric and non-integer; some larger than the image (everything leaves: zeros).
    offsets = rng.uniform(-N / 3, N / 3, (3, 4, 2)).astype(np.float32)
    offsets[0, 0] = (1.3 * N, -0.25)
    got = geometry.translate(T(images), T(offsets)).numpy()
    assert got.dtype == dtype
    helpers.close(oracle.translate(images, offsets), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="translated images")
    assert not got[0, 0].any()


def test_translate_moves_content_by_plus_t() -> None:
    image = np.zeros((1, 9, 9), np.float32)
    image[0, 4, 4] = 1.0
    moved = geometry.translate(T(image), T(np.array([[2.0, -1.0]], np.float32))).numpy()
    # (t_x, t_y) = (2, -1): the impulse goes to column 6, row 3, exactly.
    assert moved[0, 3, 6] == 1.0 and moved.sum() == 1.0


def test_translate_rejects_misshaped_offsets(helpers, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"offsets have shape \(3, 2\); expected \(3, 4, 2\)"):
        geometry.translate(T(helpers.noise(rng, 3, 4, 8, 8)), T(np.zeros((3, 2), np.float32)))


@settings(max_examples=40, deadline=None)
@given(shift=st.tuples(st.integers(-12, 12), st.integers(-12, 12)),
       size=st.tuples(st.integers(2, 16), st.integers(2, 16)), seed=st.integers(0, 2**16))
def test_integer_translation_is_an_exact_zero_filled_shift(helpers, shift: tuple[int, int],
                                                           size: tuple[int, int],
                                                           seed: int) -> None:
    H, W = size
    image = helpers.noise(np.random.default_rng(seed), 1, H, W)
    got = geometry.translate(T(image), T(np.array([shift], np.float32))).numpy()
    expected = np.zeros_like(image)
    tx, ty = shift
    rows, cols = np.mgrid[0:H, 0:W]
    src_rows, src_cols = rows - ty, cols - tx
    inside = (src_rows >= 0) & (src_rows < H) & (src_cols >= 0) & (src_cols < W)
    expected[0][inside] = image[0][src_rows[inside], src_cols[inside]]
    # Exact: integer offsets give weights 1 and 0, so the result is a copy (tolerance 0).
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=30, deadline=None)
@given(offset=st.tuples(st.floats(-20, 20, width=32), st.floats(-20, 20, width=32)),
       seed=st.integers(0, 2**16))
def test_translate_is_linear_and_matches_oracle(helpers, offset: tuple[float, float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = helpers.noise(rng, 1, 12, 15), helpers.noise(rng, 1, 12, 15)
    t = T(np.array([offset], np.float32))
    combined = geometry.translate(T(2 * a - 3j * b), t).numpy()
    separate = (2 * geometry.translate(T(a), t) - 3j * geometry.translate(T(b), t)).numpy()
    # Linearity holds up to float32 rounding of the sums: 1e-6 of max|value| (a few ulps).
    helpers.close(separate, combined, rtol_of_max=helpers.PHYSICS_RTOL, what="linearity")
    helpers.close(oracle.translate(a, np.array([offset])), geometry.translate(T(a), t).numpy(),
                    rtol_of_max=helpers.PHYSICS_RTOL, what="translate vs oracle")


def test_pad_and_trim_are_inverse(helpers, rng: np.random.Generator) -> None:
    patches = helpers.noise(rng, 2, 3, 16, 16)
    canvas = geometry.pad_to_canvas(T(patches), 26)
    np.testing.assert_array_equal(canvas.numpy(), oracle.pad_to_canvas(patches, 26))
    np.testing.assert_array_equal(geometry.trim_canvas(canvas, 16).numpy(), patches)
    with pytest.raises(ValueError, match="even number of pixels"):
        geometry.pad_to_canvas(T(patches), 21)


@pytest.mark.parametrize(("N", "gridsize"), [(32, 1), (32, 2), (64, 2), (128, 1), (128, 2)])
def test_merge_and_extract_match_oracle(helpers, rng: np.random.Generator, N: int, gridsize: int) -> None:
    config = ModelConfig(N=N, gridsize=gridsize)
    C = config.channels
    patches = helpers.noise(rng, 3, C, N, N)
    relative = _relative(rng, 3, C, spread=config.offset_px + 1.5)
    expected = oracle.merge_group(patches, relative, config.canvas_px)
    merged = geometry.merge_group(T(patches), T(relative), config.canvas_px)
    assert merged.dtype == torch.complex64
    helpers.close(expected, merged.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="merged canvas")
    canvas = expected.astype(np.complex64)
    got = geometry.extract_group(T(canvas), T(relative), N).numpy()
    helpers.close(oracle.extract_group(canvas, relative, N), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="extracted patches")


@settings(max_examples=25, deadline=None)
@given(shift=st.tuples(st.integers(-4, 4), st.integers(-4, 4)), seed=st.integers(0, 2**16))
def test_extract_undoes_merge_for_integer_offsets(helpers, shift: tuple[int, int], seed: int) -> None:
    N, P = 16, 26
    patch = helpers.noise(np.random.default_rng(seed), 1, 1, N, N)
    relative = T(np.array([[shift]], np.float32))
    back = geometry.extract_group(geometry.merge_group(T(patch), relative, P), relative, N)
    # One patch: canvas = O M / (M + 1e-3), so extraction returns O M / 1.001 exactly up to
    # float32 rounding of one multiply and one divide (1e-6 of max|O|).
    expected = patch * centre_mask(N) / (1.0 + 1e-3)
    helpers.close(expected, back.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="extract(merge)")


def test_merge_rejects_misshaped_offsets(helpers, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"relative offsets have shape \(2, 3, 2\)"):
        geometry.merge_group(T(helpers.noise(rng, 2, 4, 16, 16)),
                            T(np.zeros((2, 3, 2), np.float32)), 26)


@pytest.mark.parametrize("stage", ["translate", "merge", "extract"])
def test_gradients_match_finite_differences(helpers, rng: np.random.Generator, stage: str) -> None:
    """float64 gradcheck (torch's default tolerances: atol 1e-5, rtol 1e-3) of each stage."""
    images = torch.tensor(helpers.noise(rng, 1, 2, 6, 6), dtype=torch.complex128,
                          requires_grad=True)
    relative = torch.tensor(_relative(rng, 1, 2, 1.5), dtype=torch.float64)
    canvas = torch.tensor(helpers.noise(rng, 1, 10, 10), dtype=torch.complex128,
                          requires_grad=True)
    function, argument = {
        "translate": (lambda x: geometry.translate(x, relative), images),
        "merge": (lambda x: geometry.merge_group(x, relative, 10), images),
        "extract": (lambda x: geometry.extract_group(x, relative, 6), canvas),
    }[stage]
    assert torch.autograd.gradcheck(function, (argument,))


@pytest.mark.gpu
def test_geometry_on_cuda_matches_cpu(helpers, rng: np.random.Generator) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    patches = helpers.noise(rng, 3, 4, 64, 64)
    relative = _relative(rng, 3, 4, 5.0)
    cpu = geometry.merge_group(T(patches), T(relative), 78)
    gpu = geometry.merge_group(T(patches).cuda(), T(relative).cuda(), 78).cpu()
    # Different kernels, same float32 formula: 1e-6 of max|value|.
    helpers.close(cpu.numpy(), gpu.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="merge cuda vs cpu")


def test_masks_first_built_under_inference_mode_still_work_with_autograd(helpers,
                                                                         rng) -> None:
    # The cached masks must not be inference tensors (regression: predict, then train).
    patches = helpers.noise(rng, 1, 1, 24, 24)
    with torch.inference_mode():
        geometry.merge_group(T(patches), T(np.zeros((1, 1, 2), np.float32)), 30)
    grad_input = T(patches).clone().requires_grad_(True)
    merged = geometry.merge_group(grad_input, T(np.zeros((1, 1, 2), np.float32)), 30)
    merged.abs().sum().backward()
    assert grad_input.grad is not None and torch.isfinite(torch.view_as_real(grad_input.grad)).all()
