"""backends/torch/physics.py against the float64 oracle (parity/oracle/physics.py).

Tolerance: ``helpers.PHYSICS_RTOL`` (conftest) x max|reference| for every function; see its comment for the
measured float32-vs-float64 error it is based on. Offsets are asymmetric and non-integer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.torch import physics
from parity.config import ModelConfig
from parity.conventions import centre_mask
from parity.oracle import physics as oracle

T = torch.from_numpy


def _relative(rng: np.random.Generator, B: int, C: int, spread: float) -> np.ndarray:
    """Asymmetric, non-integer, zero-mean relative offsets (zero for C = 1)."""
    rel = rng.uniform(-spread, spread, (B, C, 2)) + np.array([0.37, -0.21])
    return (rel - rel.mean(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("N", [32, 64, 128])
def test_normalise_probe_matches_oracle(helpers, rng: np.random.Generator, N: int) -> None:
    probe = helpers.noise(rng, N, N)
    got = physics.normalise_probe(T(probe), 4.0).numpy()
    assert got.dtype == np.complex64
    helpers.close(oracle.normalise_probe(probe, 4.0), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="normalised probe")


def test_normalise_probe_rejects_zero_disk_and_bad_shape() -> None:
    probe = np.zeros((32, 32), np.complex64)
    probe[0, 0] = 1.0  # outside the normalisation disk
    with pytest.raises(ValueError, match="zero inside the normalisation disk"):
        physics.normalise_probe(T(probe), 4.0)
    with pytest.raises(ValueError, match=r"expected \(N, N\)"):
        physics.normalise_probe(T(np.ones((2, 32, 32), np.complex64)), 4.0)


@pytest.mark.parametrize("N", [32, 128])
@pytest.mark.parametrize("mask", [False, True])
def test_exit_wave_matches_oracle(helpers, rng: np.random.Generator, N: int, mask: bool) -> None:
    probe, patches = helpers.noise(rng, N, N), helpers.noise(rng, 3, 4, N, N)
    got = physics.exit_wave(T(probe), T(patches), mask=mask).numpy()
    helpers.close(oracle.exit_wave(probe, patches, mask=mask), got,
                    rtol_of_max=helpers.PHYSICS_RTOL, what=f"exit wave (mask={mask})")


def test_exit_wave_rejects_probe_size_mismatch(helpers, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"probe has shape \(32, 32\); expected \(64, 64\)"):
        physics.exit_wave(T(helpers.noise(rng, 32, 32)), T(helpers.noise(rng, 2, 1, 64, 64)))


@pytest.mark.parametrize("N", [32, 64, 128])
def test_farfield_amplitude_matches_oracle(helpers, rng: np.random.Generator, N: int) -> None:
    psi = helpers.noise(rng, 2, 4, N, N)
    got = physics.farfield_amplitude(T(psi)).numpy()
    assert got.dtype == np.float32
    helpers.close(oracle.farfield_amplitude(psi), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="far-field amplitude")
    # Parseval with the orthonormal FFT: sum A**2 == sum |psi|**2 (float32 sums: rtol 1e-5).
    np.testing.assert_allclose((got.astype(np.float64) ** 2).sum(axis=(-2, -1)),
                               (np.abs(psi.astype(np.complex128)) ** 2).sum(axis=(-2, -1)),
                               rtol=1e-5)


@pytest.mark.parametrize("N", [32, 64, 128])
@pytest.mark.parametrize("dtype", [np.complex64, np.float32])
def test_translate_matches_oracle(helpers, rng: np.random.Generator, N: int, dtype: type) -> None:
    images = helpers.noise(rng, 3, 4, N, N)
    images = images if dtype is np.complex64 else images.real.astype(np.float32)
    # Asymmetric and non-integer; some larger than the image (everything leaves: zeros).
    offsets = rng.uniform(-N / 3, N / 3, (3, 4, 2)).astype(np.float32)
    offsets[0, 0] = (1.3 * N, -0.25)
    got = physics.translate(T(images), T(offsets)).numpy()
    assert got.dtype == dtype
    helpers.close(oracle.translate(images, offsets), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="translated images")
    assert not got[0, 0].any()


def test_translate_moves_content_by_plus_t() -> None:
    image = np.zeros((1, 9, 9), np.float32)
    image[0, 4, 4] = 1.0
    moved = physics.translate(T(image), T(np.array([[2.0, -1.0]], np.float32))).numpy()
    # (t_x, t_y) = (2, -1): the impulse goes to column 6, row 3, exactly.
    assert moved[0, 3, 6] == 1.0 and moved.sum() == 1.0


def test_translate_rejects_misshaped_offsets(helpers, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"offsets have shape \(3, 2\); expected \(3, 4, 2\)"):
        physics.translate(T(helpers.noise(rng, 3, 4, 8, 8)), T(np.zeros((3, 2), np.float32)))


@settings(max_examples=40, deadline=None)
@given(shift=st.tuples(st.integers(-12, 12), st.integers(-12, 12)),
       size=st.tuples(st.integers(2, 16), st.integers(2, 16)), seed=st.integers(0, 2**16))
def test_integer_translation_is_an_exact_zero_filled_shift(helpers, shift: tuple[int, int],
                                                           size: tuple[int, int],
                                                           seed: int) -> None:
    H, W = size
    image = helpers.noise(np.random.default_rng(seed), 1, H, W)
    got = physics.translate(T(image), T(np.array([shift], np.float32))).numpy()
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
    combined = physics.translate(T(2 * a - 3j * b), t).numpy()
    separate = (2 * physics.translate(T(a), t) - 3j * physics.translate(T(b), t)).numpy()
    # Linearity holds up to float32 rounding of the sums: 1e-6 of max|value| (a few ulps).
    helpers.close(separate, combined, rtol_of_max=helpers.PHYSICS_RTOL, what="linearity")
    helpers.close(oracle.translate(a, np.array([offset])), physics.translate(T(a), t).numpy(),
                    rtol_of_max=helpers.PHYSICS_RTOL, what="translate vs oracle")


def test_pad_and_trim_are_inverse(helpers, rng: np.random.Generator) -> None:
    patches = helpers.noise(rng, 2, 3, 16, 16)
    canvas = physics.pad_to_canvas(T(patches), 26)
    np.testing.assert_array_equal(canvas.numpy(), oracle.pad_to_canvas(patches, 26))
    np.testing.assert_array_equal(physics.trim_canvas(canvas, 16).numpy(), patches)
    with pytest.raises(ValueError, match="even number of pixels"):
        physics.pad_to_canvas(T(patches), 21)


@pytest.mark.parametrize(("N", "gridsize"), [(32, 1), (32, 2), (64, 2), (128, 1), (128, 2)])
def test_merge_and_extract_match_oracle(helpers, rng: np.random.Generator, N: int, gridsize: int) -> None:
    config = ModelConfig(N=N, gridsize=gridsize)
    C = config.channels
    patches = helpers.noise(rng, 3, C, N, N)
    relative = _relative(rng, 3, C, spread=config.offset_px + 1.5)
    expected = oracle.merge_group(patches, relative, config.canvas_px)
    merged = physics.merge_group(T(patches), T(relative), config.canvas_px)
    assert merged.dtype == torch.complex64
    helpers.close(expected, merged.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="merged canvas")
    canvas = expected.astype(np.complex64)
    got = physics.extract_group(T(canvas), T(relative), N).numpy()
    helpers.close(oracle.extract_group(canvas, relative, N), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="extracted patches")


@settings(max_examples=25, deadline=None)
@given(shift=st.tuples(st.integers(-4, 4), st.integers(-4, 4)), seed=st.integers(0, 2**16))
def test_extract_undoes_merge_for_integer_offsets(helpers, shift: tuple[int, int], seed: int) -> None:
    N, P = 16, 26
    patch = helpers.noise(np.random.default_rng(seed), 1, 1, N, N)
    relative = T(np.array([[shift]], np.float32))
    back = physics.extract_group(physics.merge_group(T(patch), relative, P), relative, N)
    # One patch: canvas = O M / (M + 1e-3), so extraction returns O M / 1.001 exactly up to
    # float32 rounding of one multiply and one divide (1e-6 of max|O|).
    expected = patch * centre_mask(N) / (1.0 + 1e-3)
    helpers.close(expected, back.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="extract(merge)")


def test_merge_rejects_misshaped_offsets(helpers, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"relative offsets have shape \(2, 3, 2\)"):
        physics.merge_group(T(helpers.noise(rng, 2, 4, 16, 16)),
                            T(np.zeros((2, 3, 2), np.float32)), 26)


def test_losses_match_oracle(rng: np.random.Generator) -> None:
    pred = (30 * np.abs(rng.standard_normal((4, 4, 32, 32)))).astype(np.float32)
    obs = np.sqrt(rng.poisson(pred.astype(np.float64) ** 2)).astype(np.float32)
    nll = float(physics.poisson_nll(T(pred**2), T(obs**2)))
    mae = float(physics.mae_loss(T(pred), T(obs)))
    # 0-d float32 means over 16k elements: measured relative error <= 2e-7; 1e-6 relative.
    np.testing.assert_allclose(nll, oracle.poisson_nll(pred**2, obs**2), rtol=1e-6)
    np.testing.assert_allclose(mae, oracle.mae_loss(pred, obs), rtol=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        physics.poisson_nll(T(pred), T(obs[:2]))


@pytest.mark.parametrize("stage", ["translate", "merge", "extract", "farfield"])
def test_gradients_match_finite_differences(helpers, rng: np.random.Generator, stage: str) -> None:
    """float64 gradcheck (torch's default tolerances: atol 1e-5, rtol 1e-3) of each stage."""
    images = torch.tensor(helpers.noise(rng, 1, 2, 6, 6), dtype=torch.complex128,
                          requires_grad=True)
    relative = torch.tensor(_relative(rng, 1, 2, 1.5), dtype=torch.float64)
    canvas = torch.tensor(helpers.noise(rng, 1, 10, 10), dtype=torch.complex128,
                          requires_grad=True)
    probe = torch.tensor(helpers.noise(rng, 6, 6), dtype=torch.complex128)
    function, argument = {
        "translate": (lambda x: physics.translate(x, relative), images),
        "merge": (lambda x: physics.merge_group(x, relative, 10), images),
        "extract": (lambda x: physics.extract_group(x, relative, 6), canvas),
        "farfield": (lambda x: physics.farfield_amplitude(physics.exit_wave(probe, x)), images),
    }[stage]
    assert torch.autograd.gradcheck(function, (argument,))


@pytest.mark.gpu
def test_physics_on_cuda_matches_cpu(helpers, rng: np.random.Generator) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    patches = helpers.noise(rng, 3, 4, 64, 64)
    relative = _relative(rng, 3, 4, 5.0)
    cpu = physics.merge_group(T(patches), T(relative), 78)
    gpu = physics.merge_group(T(patches).cuda(), T(relative).cuda(), 78).cpu()
    # Different kernels, same float32 formula: 1e-6 of max|value|.
    helpers.close(cpu.numpy(), gpu.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="merge cuda vs cpu")
    psi = T(patches).cuda()
    helpers.close(oracle.farfield_amplitude(patches),
                    physics.farfield_amplitude(psi).cpu().numpy(),
                    rtol_of_max=helpers.PHYSICS_RTOL, what="far field on cuda")


def test_masks_first_built_under_inference_mode_still_work_with_autograd(helpers,
                                                                         rng) -> None:
    # The cached masks must not be inference tensors (regression: predict, then train).
    patches = helpers.noise(rng, 1, 1, 24, 24)
    with torch.inference_mode():
        physics.merge_group(T(patches), T(np.zeros((1, 1, 2), np.float32)), 30)
    grad_input = T(patches).clone().requires_grad_(True)
    merged = physics.merge_group(grad_input, T(np.zeros((1, 1, 2), np.float32)), 30)
    merged.abs().sum().backward()
    assert grad_input.grad is not None and torch.isfinite(torch.view_as_real(grad_input.grad)).all()
