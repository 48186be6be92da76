"""The :class:`Product` value: what a ptychodus product file holds, as a frozen dataclass.

Vocabulary and units follow ptychodus 1.7.0 (``ptychodus/api/io.py``, ``ProductFileKeys``); see
``shared/research/ecosystem.md`` §1.4 and §1.6. Field names carry their units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["HC_EV_M", "Product"]

#: Planck constant times speed of light in eV·m (exact SI values): lambda = HC_EV_M / E.
HC_EV_M: float = 6.62607015e-34 * 299792458.0 / 1.602176634e-19


def _frozen(array: Any, dtype: Any = None) -> np.ndarray:
    copy = np.array(array, dtype=dtype, copy=True)
    copy.flags.writeable = False
    return copy


def _finite_scalar(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}={value!r}; expected a number") from err
    if not math.isfinite(number):
        raise ValueError(f"{name}={number}; expected a finite number")
    if positive and number <= 0:
        raise ValueError(f"{name}={number}; expected > 0")
    return number


@dataclass(frozen=True, eq=False)
class Product:
    """A ptychodus data product: metadata, probe positions, probe, object and losses.

    Arrays are copied on construction and marked read-only. Use :meth:`same_as` to compare two
    products (dataclass ``==`` is disabled: it is ill-defined on arrays).

    Attributes
    ----------
    positions_x_m, positions_y_m : numpy.ndarray
        ``(n,)`` float64 probe positions in metres, lab frame, arbitrary origin. They are
        probe *centres*: with the object geometry below, object pixel
        ``x_px = (x_m - object_center_x_m) / object_pixel_width_m + (W - 1) / 2``
        (ptychodus ``map_probe_positions_to_object_x_px``), likewise y with ``H``.
    probe : numpy.ndarray
        ``(C, I, H, W)`` complex: ``C`` orthogonal-probe-relaxation (OPR) modes, ``I`` incoherent
        modes. 2-D ``(H, W)`` and 3-D ``(I, H, W)`` inputs are promoted as ptychodus does
        (``(1, 1, H, W)`` and ``(1, I, H, W)``). Dtype is kept (complex64 or complex128).
    probe_pixel_width_m, probe_pixel_height_m : float
        Probe pixel size in metres (> 0).
    object : numpy.ndarray
        ``(L, H, W)`` complex object layers; 2-D input is promoted to ``(1, H, W)``.
    object_center_x_m, object_center_y_m : float
        Lab position in metres of the object array's geometric centre ``((W-1)/2, (H-1)/2)``.
    object_pixel_width_m, object_pixel_height_m : float
        Object pixel size in metres (> 0).
    detector_object_distance_m : float
        Sample-to-detector distance in metres.
    photon_energy_eV : float
        Photon energy in eV (``probe_energy_eV`` in files before ptychodus 1.7.0).
    name, comments : str
        Free text.
    probe_photon_count, exposure_time_s, mass_attenuation_m2_per_kg, tomography_angle_deg,
    tilt_angle_deg, focus_object_distance_m : float
        Optional metadata (0.0 = unset, as in ptychodus).
    far_field : bool
        Propagation regime the product was made for (ptychodus default True).
    polarization : str or None
        Optional polarisation label (ptychodus enum name); ``None`` = absent.
    position_indexes : numpy.ndarray
        ``(n,)`` int64 scan index of each position; defaults to ``0 .. n-1``.
    probe_photon_counts : numpy.ndarray or None
        ``(n,)`` float64 per-position photon counts, all or nothing.
    opr_weights : numpy.ndarray or None
        ``(n, C)`` float OPR weights.
    object_layer_spacing_m : numpy.ndarray
        ``(L - 1,)`` float64 layer spacing in metres (empty for one layer).
    loss_epochs, loss_values : numpy.ndarray
        ``(E,)`` int64 epochs and ``(E,)`` float64 loss values (both empty when no history).
    extra_attributes : Mapping[str, Any]
        Scalar root attributes / keys not in the 1.7.0 schema (kept on read, written back).
    legacy_keys_read : tuple of str
        Pre-1.7.0 key names this product was read through (e.g. ``probe_energy_eV``, ``costs``).
    ignored_keys : tuple of str
        Non-scalar entries of the file that are not part of the schema and were not kept.

    Raises
    ------
    ValueError
        On a wrong rank or length, a non-finite value, a non-positive pixel size, or OPR weights
        whose shape does not match ``(n, C)``.
    TypeError
        On a real probe or object.
    """

    positions_x_m: np.ndarray
    positions_y_m: np.ndarray
    probe: np.ndarray
    probe_pixel_width_m: float
    probe_pixel_height_m: float
    object: np.ndarray
    object_center_x_m: float
    object_center_y_m: float
    object_pixel_width_m: float
    object_pixel_height_m: float
    detector_object_distance_m: float
    photon_energy_eV: float  # noqa: N815 - the unit eV is part of the ptychodus name
    name: str = "Unnamed"
    comments: str = ""
    probe_photon_count: float = 0.0
    exposure_time_s: float = 0.0
    mass_attenuation_m2_per_kg: float = 0.0
    tomography_angle_deg: float = 0.0
    tilt_angle_deg: float = 0.0
    focus_object_distance_m: float = 0.0
    far_field: bool = True
    polarization: str | None = None
    position_indexes: np.ndarray | None = None
    probe_photon_counts: np.ndarray | None = None
    opr_weights: np.ndarray | None = None
    object_layer_spacing_m: np.ndarray | None = None
    loss_epochs: np.ndarray | None = None
    loss_values: np.ndarray | None = None
    extra_attributes: Mapping[str, Any] = field(default_factory=dict)
    legacy_keys_read: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        x = np.asarray(self.positions_x_m, dtype=np.float64)
        y = np.asarray(self.positions_y_m, dtype=np.float64)
        if x.ndim != 1 or y.shape != x.shape:
            raise ValueError(
                f"positions_x_m {x.shape} and positions_y_m {y.shape} must both be (n,)"
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            index = int(np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))[0])
            raise ValueError(f"probe position {index} = ({x[index]}, {y[index]}) m is not finite")
        n = x.shape[0]
        indexes = (np.arange(n, dtype=np.int64) if self.position_indexes is None
                   else np.asarray(self.position_indexes))
        if indexes.shape != (n,) or indexes.dtype.kind not in "iu":
            raise ValueError(
                f"position_indexes has shape {indexes.shape} and dtype {indexes.dtype}; "
                f"expected ({n},) integers"
            )
        set_(self, "positions_x_m", _frozen(x))
        set_(self, "positions_y_m", _frozen(y))
        set_(self, "position_indexes", _frozen(indexes, np.int64))

        probe = np.asarray(self.probe)
        if probe.dtype.kind != "c":
            raise TypeError(f"probe has dtype {probe.dtype}; expected complex")
        if probe.ndim == 2:
            probe = probe[np.newaxis, np.newaxis]
        elif probe.ndim == 3:
            probe = probe[np.newaxis]
        if probe.ndim != 4 or 0 in probe.shape:
            raise ValueError(f"probe has shape {np.shape(self.probe)}; expected (C, I, H, W), "
                             "(I, H, W) or (H, W), non-empty")
        if not np.isfinite(probe).all():
            raise ValueError("probe has non-finite values")
        set_(self, "probe", _frozen(probe))

        obj = np.asarray(self.object)
        if obj.dtype.kind != "c":
            raise TypeError(f"object has dtype {obj.dtype}; expected complex")
        if obj.ndim == 2:
            obj = obj[np.newaxis]
        if obj.ndim != 3 or 0 in obj.shape:
            raise ValueError(f"object has shape {np.shape(self.object)}; expected (L, H, W) "
                             "or (H, W), non-empty")
        if not np.isfinite(obj).all():
            raise ValueError("object has non-finite values")
        set_(self, "object", _frozen(obj))

        for name in ("probe_pixel_width_m", "probe_pixel_height_m", "object_pixel_width_m",
                     "object_pixel_height_m"):
            set_(self, name, _finite_scalar(name, getattr(self, name), positive=True))
        for name in ("object_center_x_m", "object_center_y_m", "detector_object_distance_m",
                     "photon_energy_eV", "probe_photon_count", "exposure_time_s",
                     "mass_attenuation_m2_per_kg", "tomography_angle_deg", "tilt_angle_deg",
                     "focus_object_distance_m"):
            set_(self, name, _finite_scalar(name, getattr(self, name)))
        set_(self, "far_field", bool(self.far_field))
        set_(self, "name", str(self.name))
        set_(self, "comments", str(self.comments))
        if self.polarization is not None:
            set_(self, "polarization", str(self.polarization))

        if self.probe_photon_counts is not None:
            counts = np.asarray(self.probe_photon_counts, dtype=np.float64)
            if counts.shape != (n,):
                raise ValueError(f"probe_photon_counts has shape {counts.shape}; expected ({n},)"
                                 " - all positions or none")
            if not np.isfinite(counts).all():
                raise ValueError("probe_photon_counts has non-finite values")
            set_(self, "probe_photon_counts", _frozen(counts))
        if self.opr_weights is not None:
            weights = np.asarray(self.opr_weights)
            if weights.dtype.kind != "f":
                raise TypeError(f"opr_weights has dtype {weights.dtype}; expected float")
            if weights.shape != (n, probe.shape[0]):
                raise ValueError(f"opr_weights has shape {weights.shape}; expected "
                                 f"({n}, {probe.shape[0]}) = (positions, OPR modes)")
            set_(self, "opr_weights", _frozen(weights))
        spacing = np.asarray([] if self.object_layer_spacing_m is None
                             else self.object_layer_spacing_m, dtype=np.float64).reshape(-1)
        if not np.isfinite(spacing).all():
            raise ValueError("object_layer_spacing_m has non-finite values")
        set_(self, "object_layer_spacing_m", _frozen(spacing))

        epochs = np.asarray([] if self.loss_epochs is None else self.loss_epochs).reshape(-1)
        values = np.asarray([] if self.loss_values is None else self.loss_values,
                            dtype=np.float64).reshape(-1)
        if epochs.shape != values.shape:
            raise ValueError(f"loss_epochs {epochs.shape} and loss_values {values.shape} must "
                             "have the same length")
        if epochs.size and (epochs.dtype.kind not in "iuf" or
                            not np.array_equal(epochs, np.round(epochs))):
            raise ValueError(f"loss_epochs must be whole numbers; got {epochs[:5].tolist()}")
        set_(self, "loss_epochs", _frozen(epochs, np.int64))
        set_(self, "loss_values", _frozen(values))

        extras = dict(self.extra_attributes)
        for key, value in extras.items():
            if not isinstance(value, str | int | float | bool | np.generic):
                raise ValueError(f"extra attribute {key!r} is {type(value).__name__}; "
                                 "expected a scalar")
        set_(self, "extra_attributes", MappingProxyType(extras))
        set_(self, "legacy_keys_read", tuple(self.legacy_keys_read))
        set_(self, "ignored_keys", tuple(self.ignored_keys))

    @property
    def n_positions(self) -> int:
        """Number of probe positions ``n``."""
        return int(self.positions_x_m.shape[0])

    @property
    def probe_modes(self) -> np.ndarray:
        """``(I, H, W)`` incoherent probe modes at OPR index 0 (ptychodus ``get_probe_no_opr``)."""
        return self.probe[0]

    @property
    def probe_wavelength_m(self) -> float:
        """Wavelength in metres, ``HC_EV_M / photon_energy_eV``.

        Raises
        ------
        ValueError
            If the photon energy is not positive.
        """
        if self.photon_energy_eV <= 0:
            raise ValueError(f"photon_energy_eV={self.photon_energy_eV}; the wavelength needs "
                             "a positive energy")
        return HC_EV_M / self.photon_energy_eV

    def positions_px(self) -> np.ndarray:
        """Probe centres in pixels of the object array, ``(n, 2)`` float64, last axis ``(x, y)``.

        Notes
        -----
        ``x_px = (x_m - object_center_x_m) / object_pixel_width_m + (W - 1) / 2``, and the same
        for y with ``H`` (ptychodus 1.7.0 ``api/object.py``).
        """
        height, width = self.object.shape[-2:]
        x_px = (self.positions_x_m - self.object_center_x_m) / self.object_pixel_width_m
        y_px = (self.positions_y_m - self.object_center_y_m) / self.object_pixel_height_m
        return np.stack([x_px + (width - 1) / 2, y_px + (height - 1) / 2], axis=1)

    def same_as(self, other: Product) -> list[str]:
        """Names of the fields that differ from ``other`` (empty list: identical).

        Arrays compare by dtype, shape and exact values; scalars by exact equality.
        """
        differ: list[str] = []
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, np.ndarray) or isinstance(theirs, np.ndarray):
                if mine is None or theirs is None:
                    if mine is not theirs:
                        differ.append(name)
                elif (mine.dtype != theirs.dtype or mine.shape != theirs.shape
                      or not np.array_equal(mine, theirs)):
                    differ.append(name)
            elif isinstance(mine, Mapping):
                if dict(mine) != dict(theirs):
                    differ.append(name)
            elif mine != theirs:
                differ.append(name)
        return differ
