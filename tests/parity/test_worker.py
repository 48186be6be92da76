"""Out-of-memory classification of a backend's exception (parity.worker)."""

from __future__ import annotations

import pytest

from parity.worker import is_out_of_memory


class OutOfMemoryError(RuntimeError):
    """Stands in for ``torch.OutOfMemoryError`` (a RuntimeError, raised by CUDA allocations)."""


class OpError(Exception):
    """Stands in for ``tf.errors.OpError``."""


class ResourceExhaustedError(OpError):
    """Stands in for ``tf.errors.ResourceExhaustedError`` (what a GPU allocation failure raises)."""


class CudaAllocatorError(OutOfMemoryError):
    """A subclass still counts: the name is matched along the MRO."""


@pytest.mark.parametrize("err", [MemoryError("host"), OutOfMemoryError("CUDA out of memory"),
                                 ResourceExhaustedError("OOM when allocating tensor"),
                                 CudaAllocatorError("x")])
def test_out_of_memory_errors_are_recognised(err):
    assert is_out_of_memory(err)


@pytest.mark.parametrize("err", [RuntimeError("CUDA out of memory"), ValueError("memory"),
                                 OpError("other")])
def test_other_errors_are_not_out_of_memory(err):
    # the message is not what decides: a RuntimeError mentioning memory is an ordinary error
    assert not is_out_of_memory(err)
