"""Reliability of the container readers on bad input: malformed arrays and metadata generated
with hypothesis, known gaps, and damaged ``.npz`` files (also through the ``parity`` command).

Every rejection must be a ``ValueError``/``TypeError`` naming the field or the file; nothing
here starts a backend.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.cli import EXIT_USAGE, main
from parity.container import Container, ContainerMetadata
from parity.io.container_npz import read_npz, write_npz

# -- bad input: containers --------------------------------------------------------------------

_N_CHOICES = (4, 6, 8)
_OBJECT_PX = 16


@st.composite
def _valid_arrays(draw) -> dict[str, np.ndarray]:
    n = draw(st.integers(1, 6))
    N = draw(st.sampled_from(_N_CHOICES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cells = rng.choice((_OBJECT_PX - 1) ** 2, size=n, replace=False)
    positions = np.stack([cells % (_OBJECT_PX - 1), cells // (_OBJECT_PX - 1)], axis=1)
    return {
        "diffraction": rng.uniform(0.1, 2.0, (n, N, N)).astype(np.float32),
        "positions_px": positions + rng.uniform(0, 0.5, (n, 2)),  # distinct, inside
        "probe": (rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))).astype(np.complex64),
        "object_truth": np.ones((_OBJECT_PX, _OBJECT_PX), np.complex64),
    }


def _index(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(draw(st.integers(0, d - 1)) for d in shape)


def _nonfinite(draw, array: np.ndarray) -> np.ndarray:
    bad = np.array(array, copy=True)
    bad[_index(draw, bad.shape)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return bad


def _other_shape(draw, avoid: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    return shape if shape != avoid else (*avoid, 1)


def _other_dtype(draw, array: np.ndarray, allowed: str) -> np.ndarray:
    dtype = draw(st.sampled_from(["int32", "uint8", "bool", "float32", "complex64", "U3",
                                  "object"]))
    if np.dtype(dtype).kind in allowed:
        dtype = "U3"
    if dtype == "object":
        return np.full(array.shape, None, dtype=object)
    if dtype == "U3":
        return np.full(array.shape, "x", dtype="U3")
    return np.abs(array).astype(dtype)


@st.composite
def _corrupted(draw) -> tuple[str, dict[str, np.ndarray]]:
    """A container's arrays with exactly one field broken; returns (field, arrays)."""
    arrays = draw(_valid_arrays())
    n, N, _ = arrays["diffraction"].shape
    field = draw(st.sampled_from(["diffraction", "positions_px", "probe", "object_truth"]))
    array = arrays[field]
    how = draw(st.sampled_from(["shape", "dtype", "nonfinite", "special"]))
    if how == "shape":
        avoid = array.shape
        if field == "diffraction":  # keep n so that only diffraction is at fault
            broken = np.ones(_other_shape(draw, avoid), np.float32)
            if broken.ndim == 3 and broken.shape[1] == broken.shape[2] and broken.shape[0] > 0:
                broken = np.ones((n, N, N + 1), np.float32)  # square patterns: make them not
        else:
            broken = np.ones(_other_shape(draw, avoid), array.dtype)
            if field == "object_truth" and broken.ndim == 2:
                broken = broken[None]
    elif how == "dtype":
        allowed = {"diffraction": "f", "positions_px": "fiu", "probe": "c",
                   "object_truth": "c"}[field]
        broken = _other_dtype(draw, array, allowed)
    elif how == "nonfinite":
        broken = _nonfinite(draw, array)
    elif field == "diffraction":
        broken = draw(st.sampled_from(["empty", "negative", "zero"]))
        broken = {"empty": np.ones((0, N, N), np.float32),
                  "negative": -array,
                  "zero": np.zeros_like(array)}[broken]
    elif field == "positions_px":  # outside the object, or an empty scan
        if draw(st.booleans()):
            broken = np.array(array, copy=True)
            broken[(*_index(draw, (n,)), draw(st.integers(0, 1)))] = draw(
                st.sampled_from([-1.5, _OBJECT_PX + 0.5, 1e6]))
        else:
            broken = np.zeros((0, 2))
    elif field == "probe":
        broken = np.zeros_like(array) if draw(st.booleans()) else \
            np.ones((N + draw(st.integers(1, 3)), N), np.complex64)
    else:
        broken = np.ones((_OBJECT_PX,), np.complex64)
    return field, {**arrays, field: broken}


@settings(max_examples=200, deadline=None)
@given(_corrupted())
def test_malformed_container_names_the_field(case):
    field, arrays = case
    with pytest.raises((ValueError, TypeError)) as info:
        Container(**arrays)
    assert field in str(info.value), (field, str(info.value))


@settings(max_examples=50, deadline=None)
@given(_valid_arrays())
def test_the_valid_base_of_the_generator_is_accepted(arrays):
    """The corruptions above start from containers that are valid (else they prove nothing)."""
    assert Container(**arrays).n_patterns == arrays["diffraction"].shape[0]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["nphotons", "gridsize", "K", "name"]), st.data())
def test_bad_metadata_names_the_field(field, data):
    value = data.draw({
        "nphotons": st.sampled_from([0.0, -1.0, float("nan"), float("inf"), "many"]),
        "gridsize": st.sampled_from([0, 5, -2]),
        "K": st.integers(0, 3),
        "name": st.sampled_from(["", "a/b", "two words", "tab\tname", "back\\slash"]),
    }[field])
    options = {"gridsize": 2} if field == "K" else {}
    with pytest.raises((ValueError, TypeError)) as info:
        ContainerMetadata(**options, **{field: value})
    assert field in str(info.value), str(info.value)


def _three_patterns(**override) -> dict[str, object]:
    rng = np.random.default_rng(0)
    arrays = {"diffraction": rng.uniform(0.1, 2, (3, 4, 4)).astype(np.float32),
              "positions_px": np.array([[2.0, 3.0], [5.5, 7.25], [9.0, 1.5]]),
              "probe": np.ones((4, 4), np.complex64),
              "object_truth": np.ones((_OBJECT_PX, _OBJECT_PX), np.complex64)}
    return {**arrays, **override}


#: Bad input that once slipped through with an unnamed error: each must name its field.
_CONTAINER_GAPS = {
    "duplicate positions": ("positions_px", lambda: Container(**_three_patterns(
        positions_px=np.array([[2.0, 3.0], [5.5, 7.25], [2.0, 3.0]])))),
    "ragged positions": ("positions_px", lambda: Container(**_three_patterns(
        positions_px=[[2.0, 3.0], [5.5], [9.0, 1.5]]))),
    "ragged diffraction": ("diffraction", lambda: Container(**_three_patterns(
        diffraction=[[[1.0]], [[1.0, 2.0]], [[3.0]]]))),
    "gridsize not a number": ("gridsize", lambda: ContainerMetadata(gridsize="two")),
    "gridsize None": ("gridsize", lambda: ContainerMetadata(gridsize=None)),
    "seed not a number": ("seed", lambda: ContainerMetadata(seed="x")),
    "name not a string": ("name", lambda: ContainerMetadata(name=5)),
}


@pytest.mark.parametrize("gap", sorted(_CONTAINER_GAPS))
def test_known_container_gaps(gap):
    field, build = _CONTAINER_GAPS[gap]
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert field in str(info.value), str(info.value)


# -- bad input: container files ---------------------------------------------------------------


_THREE = Container(**_three_patterns(), metadata=ContainerMetadata(name="three"))


@pytest.fixture(scope="module")
def container_bytes(tmp_path_factory) -> bytes:
    return write_npz(_THREE, tmp_path_factory.mktemp("npz") / "three.npz").read_bytes()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_truncated_or_padded_container_file_names_the_file(container_bytes, tmp_path, data):
    """A cut-off file (plus junk) is rejected naming the file, or read back unchanged."""
    cut = data.draw(st.integers(0, len(container_bytes) - 1))
    junk = data.draw(st.binary(max_size=64))
    path = tmp_path / "damaged.npz"
    path.write_bytes(container_bytes[:cut] + junk)
    try:
        container = read_npz(path, name="three")
    except ValueError as err:
        assert "damaged.npz" in str(err), str(err)
    else:  # only the zip comment was touched: the data must be what was written
        assert container.content_hash() == _THREE.content_hash()


def _corrupt_deflate(raw: bytes) -> bytes:
    """``raw`` with the compressed data of its first member replaced by an invalid block."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        offset = archive.infolist()[0].header_offset
    header = raw[offset:offset + 30]
    start = offset + 30 + int.from_bytes(header[26:28], "little") + \
        int.from_bytes(header[28:30], "little")
    # 0xFF starts a final block of the reserved type 11: zlib raises "invalid block type"
    return raw[:start] + b"\xff" * 16 + raw[start + 16:]


def test_corrupted_compressed_member_names_the_file(container_bytes, tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(_corrupt_deflate(container_bytes))
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        read_npz(path)


def test_cli_reports_a_corrupted_container_in_one_line(container_bytes, tmp_path, capsys):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(_corrupt_deflate(container_bytes))
    assert main(["run", "--container", str(path), "--out", str(tmp_path / "r")]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("parity: error:") and "corrupt.npz" in err and "\n" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
