"""File interoperability: container NPZ files, ptychodus products and format conversion.

:mod:`parity.io.container_npz` reads and writes container NPZ files (PtychoPINN's key
convention); :mod:`parity.io.ptychodus` reads and writes ptychodus product files (HDF5 and NPZ)
and bridges them to :class:`~parity.container.Container`; :mod:`parity.io.convert` converts
between container NPZ files and product files; :mod:`parity.io.detector` holds detector-frame
helpers. HDF5 goes through h5py, imported only when an HDF5 file is touched.
"""

from parity.io.container_npz import read_npz, write_npz
from parity.io.convert import FORMATS, OUTPUT_FORMATS, convert, detect_format, read_diffraction
from parity.io.detector import fill_bad_pixels
from parity.io.ptychodus import (
    Product,
    container_from_product,
    container_to_product,
    product_from_reconstruction,
    read_product,
    write_product,
)

__all__ = [
    "FORMATS",
    "OUTPUT_FORMATS",
    "Product",
    "container_from_product",
    "container_to_product",
    "convert",
    "detect_format",
    "fill_bad_pixels",
    "product_from_reconstruction",
    "read_diffraction",
    "read_npz",
    "read_product",
    "write_npz",
    "write_product",
]
