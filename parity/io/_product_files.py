"""Reading and writing ptychodus product files (HDF5 and NPZ).

Written with the ptychodus 1.7.0 key names (``shared/research/ecosystem.md`` §1.6). Read with
those names or the older ones listed in :data:`LEGACY_KEYS` (``probe_energy_eV``, ``costs``,
``mass_attenuation_m2_kg``, ``object_layer_distance_m``, ``opr_weights`` as a probe attribute).

HDF5 layout: metadata are root attributes; ``probe_position_indexes``, ``probe_position_x_m``,
``probe_position_y_m``, [``probe_photon_counts``], ``probe`` (attributes ``pixel_width_m``,
``pixel_height_m``), [``opr_weights``], ``object`` (attributes ``center_x_m``, ``center_y_m``,
``pixel_width_m``, ``pixel_height_m``), ``object_layer_spacing_m``, ``loss_epochs``,
``loss_values`` are root datasets. NPZ layout: the same names, flat, with the attribute-borne
geometry prefixed (``probe_pixel_width_m``, ``object_center_x_m``, ``object_pixel_width_m``, ...).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from parity.io._files import HDF5_SIGNATURE, atomic_output
from parity.io._product import Product

__all__ = ["HDF5_SUFFIXES", "LEGACY_KEYS", "read_product", "write_product"]

#: File name suffixes written as HDF5; ``.npz`` is written as NPZ.
HDF5_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5", ".hdf")

#: Older key name -> 1.7.0 key name, accepted on read.
LEGACY_KEYS: dict[str, str] = {
    "probe_energy_eV": "photon_energy_eV",
    "mass_attenuation_m2_kg": "mass_attenuation_m2_per_kg",
    "costs": "loss_values",
    "object_layer_distance_m": "object_layer_spacing_m",
}

_OPTIONAL_FLOATS = ("probe_photon_count", "exposure_time_s", "mass_attenuation_m2_per_kg",
                    "tomography_angle_deg", "tilt_angle_deg", "focus_object_distance_m")
_ROOT_ATTRIBUTES = {"name", "comments", "detector_object_distance_m", "photon_energy_eV",
                    "far_field", "polarization", *_OPTIONAL_FLOATS, *LEGACY_KEYS}
_DATASETS = {"probe_position_indexes", "probe_position_x_m", "probe_position_y_m",
             "probe_photon_counts", "probe", "opr_weights", "object", "object_layer_spacing_m",
             "loss_epochs", "loss_values", "costs", "object_layer_distance_m"}
_NPZ_GEOMETRY = ("probe_pixel_width_m", "probe_pixel_height_m", "object_center_x_m",
                 "object_center_y_m", "object_pixel_width_m", "object_pixel_height_m")


def _scalar(value: Any) -> Any:
    value = value.item() if isinstance(value, np.ndarray | np.generic) else value
    return value.decode() if isinstance(value, bytes) else value


class _Source:
    """Key lookup over one open file that records legacy names and names missing keys."""

    def __init__(self, path: Path, getter: Callable[[str], Any], keys: set[str],
                 where: str) -> None:
        self.path, self.getter, self.keys, self.where = path, getter, keys, where
        self.legacy: list[str] = []

    def has(self, key: str) -> bool:
        return key in self.keys or any(new == key and old in self.keys
                                       for old, new in LEGACY_KEYS.items())

    def get(self, key: str, default: Any = ..., *, where: str | None = None) -> Any:
        if key in self.keys:
            return self.getter(key)
        for old, new in LEGACY_KEYS.items():
            if new == key and old in self.keys:
                self.legacy.append(old)
                return self.getter(old)
        if default is ...:
            olds = [old for old, new in LEGACY_KEYS.items() if new == key]
            also = f" (or legacy {olds[0]!r})" if olds else ""
            raise ValueError(f"{self.path}: missing required {where or self.where} "
                             f"{key!r}{also}; found {sorted(self.keys)}")
        return default


def _build(path: Path, attrs: _Source, data: _Source, probe_geometry: dict[str, Any],
           object_geometry: dict[str, Any], opr_weights: Any,
           extra: dict[str, Any], ignored: list[str]) -> Product:
    def optional(name: str) -> Any:
        return data.get(name) if data.has(name) else None

    values = optional("loss_values")
    epochs = optional("loss_epochs")
    if values is not None and epochs is None:
        epochs = np.arange(np.asarray(values).size)  # pre-1.7.0 readers did the same
    try:
        # Read every attribute before legacy_keys_read is collected below.
        optional_floats = {name: _scalar(attrs.get(name, 0.0)) for name in _OPTIONAL_FLOATS}
        energy = _scalar(attrs.get("photon_energy_eV"))
        return Product(
            positions_x_m=data.get("probe_position_x_m"),
            positions_y_m=data.get("probe_position_y_m"),
            position_indexes=data.get("probe_position_indexes"),
            probe=data.get("probe"),
            probe_pixel_width_m=probe_geometry["width"],
            probe_pixel_height_m=probe_geometry["height"],
            object=data.get("object"),
            object_center_x_m=object_geometry["center_x"],
            object_center_y_m=object_geometry["center_y"],
            object_pixel_width_m=object_geometry["width"],
            object_pixel_height_m=object_geometry["height"],
            detector_object_distance_m=_scalar(attrs.get("detector_object_distance_m")),
            photon_energy_eV=energy,
            name=_scalar(attrs.get("name", "Unnamed")),
            comments=_scalar(attrs.get("comments", "")),
            far_field=bool(_scalar(attrs.get("far_field", True))),
            polarization=(None if not attrs.has("polarization")
                          else _scalar(attrs.get("polarization"))),
            probe_photon_counts=optional("probe_photon_counts"),
            opr_weights=opr_weights,
            object_layer_spacing_m=optional("object_layer_spacing_m"),
            loss_epochs=epochs,
            loss_values=values,
            extra_attributes=extra,
            legacy_keys_read=tuple(sorted(set(attrs.legacy + data.legacy))),
            ignored_keys=tuple(sorted(ignored)),
            **optional_floats,
        )
    except (TypeError, ValueError) as err:
        message = str(err)
        if message.startswith(f"{path}: "):  # a missing key, already named with the file
            message = message[len(f"{path}: "):]
        raise ValueError(f"{path}: not a valid product: {message}") from err


def _read_h5(path: Path) -> Product:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file: {err}") from err
    try:
        with handle:
            root_keys = set(handle.keys())
            attrs = _Source(path, lambda k: handle.attrs[k], set(handle.attrs.keys()),
                            "root attribute")
            data = _Source(path, lambda k: handle[k][()], root_keys, "dataset")
            for key in ("probe", "object"):
                if key not in root_keys:
                    raise ValueError(f"{path}: missing required dataset {key!r}; found "
                                     f"{sorted(root_keys)}")
                if not isinstance(handle[key], h5py.Dataset):
                    kind = "a group" if isinstance(handle[key], h5py.Group) else \
                        type(handle[key]).__name__
                    raise ValueError(f"{path}: {key!r} is {kind}, not a dataset; a ptychodus "
                                     f"product stores the {key} array itself under {key!r}")
            obj_attrs = handle["object"].attrs
            missing = [k for k in ("center_x_m", "center_y_m", "pixel_width_m", "pixel_height_m")
                       if k not in obj_attrs]
            if missing:
                raise ValueError(f"{path}: dataset 'object' lacks attribute(s) {missing}")
            object_geometry = {"center_x": obj_attrs["center_x_m"],
                               "center_y": obj_attrs["center_y_m"],
                               "width": obj_attrs["pixel_width_m"],
                               "height": obj_attrs["pixel_height_m"]}
            probe_attrs = handle["probe"].attrs
            probe_geometry = {  # absent probe geometry defaults to the object's (ptychodus 1.7.0)
                "width": probe_attrs.get("pixel_width_m", object_geometry["width"]),
                "height": probe_attrs.get("pixel_height_m", object_geometry["height"]),
            }
            opr_weights = None
            if "opr_weights" in root_keys:
                opr_weights = handle["opr_weights"][()]
            elif "opr_weights" in probe_attrs:  # 2025 readers and PtychoPINN's spec
                opr_weights = np.asarray(probe_attrs["opr_weights"])
                data.legacy.append("probe.attrs['opr_weights']")
            extra = {k: _scalar(v) for k, v in handle.attrs.items()
                     if k not in _ROOT_ATTRIBUTES and np.ndim(v) == 0}
            ignored = [k for k in root_keys if k not in _DATASETS]
            ignored += [f"@{k}" for k, v in handle.attrs.items()
                        if k not in _ROOT_ATTRIBUTES and np.ndim(v) != 0]
            return _build(path, attrs, data, probe_geometry, object_geometry, opr_weights,
                          extra, ignored)
    except (OSError, KeyError, RuntimeError) as err:
        raise ValueError(f"{path}: could not read the product ({err}); truncated file?") from err


def _read_npz(path: Path) -> Product:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path} is not a readable NPZ file: {err}") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single NumPy array (.npy format), not an NPZ product")
    try:
        with archive:
            keys = set(archive.files)
            cache: dict[str, np.ndarray] = {}

            def load(key: str) -> np.ndarray:
                if key not in cache:
                    cache[key] = archive[key]
                return cache[key]

            source = _Source(path, load, keys, "key")
            geometry = {k: _scalar(source.get(k)) for k in _NPZ_GEOMETRY
                        if not k.startswith("probe_")}
            object_geometry = {"center_x": geometry["object_center_x_m"],
                               "center_y": geometry["object_center_y_m"],
                               "width": geometry["object_pixel_width_m"],
                               "height": geometry["object_pixel_height_m"]}
            probe_geometry = {
                "width": _scalar(source.get("probe_pixel_width_m", object_geometry["width"])),
                "height": _scalar(source.get("probe_pixel_height_m", object_geometry["height"])),
            }
            opr_weights = load("opr_weights") if "opr_weights" in keys else None
            known = _ROOT_ATTRIBUTES | _DATASETS | set(_NPZ_GEOMETRY)
            extra: dict[str, Any] = {}
            ignored: list[str] = []
            for key in keys - known:
                value = load(key)
                if value.ndim == 0:
                    extra[key] = _scalar(value)
                else:
                    ignored.append(key)
            return _build(path, source, source, probe_geometry, object_geometry, opr_weights,
                          extra, ignored)
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: an array could not be read ({err}); truncated file?") from err


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE


def read_product(path: str | Path) -> Product:
    """Read a ptychodus product file (HDF5 or NPZ, told apart by content).

    Parameters
    ----------
    path : str or pathlib.Path
        Product file. HDF5 is recognised by its signature, anything else is read as NPZ.

    Returns
    -------
    Product
        With ``legacy_keys_read`` naming any pre-1.7.0 keys the file used.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a directory, the file is unreadable or truncated, a required key is
        missing or is an HDF5 group instead of a dataset (the message names the key and where it
        was expected), or a value is invalid.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a product file")
    if not path.is_file():
        raise FileNotFoundError(f"no such product file: {path}")
    try:
        hdf5 = _is_hdf5(path)
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from err
    return _read_h5(path) if hdf5 else _read_npz(path)


def _entries(product: Product, *, npz: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Root attributes (scalars) and datasets (arrays) in 1.7.0 names."""
    attrs: dict[str, Any] = dict(product.extra_attributes)
    attrs.update({
        "name": product.name,
        "comments": product.comments,
        "detector_object_distance_m": product.detector_object_distance_m,
        "photon_energy_eV": product.photon_energy_eV,
        "far_field": np.bool_(product.far_field),
        **{name: getattr(product, name) for name in _OPTIONAL_FLOATS},
    })
    if product.polarization is not None:
        attrs["polarization"] = product.polarization
    datasets: dict[str, Any] = {
        "probe_position_indexes": product.position_indexes,
        "probe_position_x_m": product.positions_x_m,
        "probe_position_y_m": product.positions_y_m,
        "probe": product.probe,
        "object": product.object,
        "object_layer_spacing_m": product.object_layer_spacing_m,
        "loss_epochs": product.loss_epochs,
        "loss_values": product.loss_values,
    }
    if product.probe_photon_counts is not None:
        datasets["probe_photon_counts"] = product.probe_photon_counts
    if product.opr_weights is not None:
        datasets["opr_weights"] = product.opr_weights
    if npz:
        attrs.update({
            "probe_pixel_width_m": product.probe_pixel_width_m,
            "probe_pixel_height_m": product.probe_pixel_height_m,
            "object_center_x_m": product.object_center_x_m,
            "object_center_y_m": product.object_center_y_m,
            "object_pixel_width_m": product.object_pixel_width_m,
            "object_pixel_height_m": product.object_pixel_height_m,
        })
    return attrs, datasets


def write_product(product: Product, path: str | Path) -> Path:
    """Write ``product`` atomically as HDF5 (``.h5``/``.hdf5``/``.hdf``) or NPZ (``.npz``).

    The file is written next to ``path`` under ``<name>.partial`` and renamed into place, so a
    reader never sees a half-written product. Key names are ptychodus 1.7.0's.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the suffix is neither an HDF5 suffix nor ``.npz``, ``path`` is a directory, or it
        cannot be written (an existing file is then left as it was).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name for the product")
    suffix = path.suffix.lower()
    if suffix not in (*HDF5_SUFFIXES, ".npz"):
        raise ValueError(f"cannot tell the product format from {path.name!r}; use one of "
                         f"{[*HDF5_SUFFIXES, '.npz']}")
    attrs, datasets = _entries(product, npz=suffix == ".npz")
    with atomic_output(path) as partial:
        if suffix == ".npz":
            with open(partial, "wb") as handle:
                np.savez(handle, **{k: np.asarray(v) for k, v in {**attrs, **datasets}.items()})
        else:
            import h5py

            with h5py.File(partial, "w") as handle:
                for key, value in attrs.items():
                    handle.attrs[key] = value
                for key, value in datasets.items():
                    handle.create_dataset(key, data=np.asarray(value))
                handle["probe"].attrs["pixel_width_m"] = product.probe_pixel_width_m
                handle["probe"].attrs["pixel_height_m"] = product.probe_pixel_height_m
                obj = handle["object"].attrs
                obj["center_x_m"] = product.object_center_x_m
                obj["center_y_m"] = product.object_center_y_m
                obj["pixel_width_m"] = product.object_pixel_width_m
                obj["pixel_height_m"] = product.object_pixel_height_m
    return path
