"""Truth coverage: does a container's scan leave L5 a region of the ground truth to score?

:func:`check_truth_coverage` mirrors the scored box of :func:`parity.evaluation.score_against_truth`
so that bad positions are refused when the data are loaded, not after training.
"""

from __future__ import annotations

from parity.container import Container, ContainerError

__all__ = ["check_truth_coverage"]


def check_truth_coverage(container: Container, *, crop_px: int | None = None) -> None:
    """Check that L5 will find a region of ``object_truth`` to score the reconstructions on.

    L5 scores a stitched object against the truth only inside the box its central crops (side
    ``M = ModelConfig.stitch_crop_px``) cover on the truth, trimmed by ``M // 2`` on every side
    (:func:`parity.evaluation.score_against_truth`). Along each axis of an object ``L`` pixels
    long that leaves the patch centres in ``[max(c_min, M // 2), min(c_max, L - 1 - M // 2)]``.
    Patches that stick partly out of the object are normal at the edge of a real scan and pass;
    a scan all of whose centres lie within ``M // 2`` of the same edge does not. No-op without
    a truth.

    Parameters
    ----------
    container : Container
        The data to check.
    crop_px : int, optional
        Stitching crop ``M`` in pixels; default: ``ModelConfig``'s default (20), at most ``N``.

    Raises
    ------
    ContainerError
        If the scored region is empty along x or y (the message gives the centres' extent, the
        object's size and the crop).
    """
    truth = container.object_truth
    if truth is None:
        return
    if crop_px is None:
        import dataclasses

        from parity.config import ModelConfig

        default = next(f.default for f in dataclasses.fields(ModelConfig)
                       if f.name == "stitch_crop_px")
        crop_px = min(int(default), container.N)
    half = int(crop_px) // 2
    height, width = truth.shape
    problems = []
    for axis, column, size in (("x", 0, width), ("y", 1, height)):
        centres = container.positions_px[:, column]
        low, high = float(centres.min()), float(centres.max())
        if max(low, half) <= min(high, size - 1 - half):
            continue
        if size - 1 - half < half:
            problems.append(f"the object is {size} px along {axis}, too small for the "
                            f"{crop_px}-px stitching crop")
        else:
            problems.append(f"along {axis} the patch centres span {low:.6g}..{high:.6g} px, but "
                            f"only centres in [{half}, {size - 1 - half}] ({half} px or more "
                            "inside the edge) are scored")
    if problems:
        raise ContainerError(
            f"object_truth is {height}x{width} px and the scan leaves no region of it to evaluate "
            f"against: {'; '.join(problems)} (stitching crop {crop_px} px, patches N={container.N})"
            "; check the positions (xcoords/ycoords, in object pixels), or leave the truth out"
        )
