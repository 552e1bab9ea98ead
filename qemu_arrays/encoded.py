"""``Encoded``: what ``encode`` returns for scaled and block formats (codes plus scales)."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Encoded"]


class Encoded(NamedTuple):
    """Codes plus scales: what ``encode`` returns for scaled and block formats.

    ``codes``: the element codes, shape of ``x`` (unsigned integers, as plain ``encode``).
    ``scales``: block formats: the scale *codes* in the block format's scale format (uint8),
    shape of ``x`` with ``axis`` holding one entry per block; scaled integers: the scale
    *values* (float64, already representable in ``scale_format``) in the group shape.
    ``zero_points``: integer zero points in the group shape (scaled integers), else None.
    ``tensor_scale``: the float32 per-tensor scale of two-level formats (NVFP4), else None.
    ``axis``, ``block_size``: the granularity, so that ``decode(enc, format)`` needs nothing else.
    """

    codes: Any
    scales: Any
    zero_points: Any = None
    tensor_scale: float | None = None
    axis: int | None = None
    block_size: int | None = None
