"""Dask arrays: lazily, chunk by chunk (``map_blocks``), each chunk through its own route.

Stochastic rounding gives every run of consecutive elements of a chunk its global C-order offset,
so the bits are those of the whole array, whatever the chunking; caller-supplied bits
(``rbits=``, NumPy or Dask, broadcast to ``x``) are chunked as ``x`` is and go with each chunk.
The chunk's route is found by the dispatcher, which passes itself in as ``run_chunk`` (this
module never imports it).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from qemu_arrays.request import Op, Request
from qemu_arrays.validation import code_dtype

__all__ = ["run"]


def _runs(block_shape, starts, global_shape):
    """Yield (index into the block, global C-order offset of that run) for each run of
    consecutive elements: the block's trailing axes that span the whole array, plus one more."""
    n = len(global_shape)
    strides = [1] * n
    for j in range(n - 2, -1, -1):
        strides[j] = strides[j + 1] * int(global_shape[j + 1])
    full = 0
    for j in range(n - 1, -1, -1):
        if block_shape[j] == global_shape[j] and starts[j] == 0:
            full += 1
        else:
            break
    lead = max(0, n - full - 1)
    base = sum(int(s) * st for s, st in zip(starts, strides))
    for idx in np.ndindex(*block_shape[:lead]):
        off = base + sum(int(i) * strides[j] for j, i in enumerate(idx))
        yield idx, off


def _chunk(req: Request, run_chunk, global_shape, block, rbits=None, block_info=None):
    stochastic = req.rounding.stochastic
    if req.op is Op.DECODE or not stochastic or block.ndim == 0 or block.size == 0:
        return run_chunk(block, req if rbits is None else replace(req, rbits=rbits))
    starts = [s for s, _ in block_info[0]["array-location"]]
    parts = {}
    for idx, off in _runs(block.shape, starts, global_shape):
        sub = np.ascontiguousarray(block[idx]) if isinstance(block, np.ndarray) else block[idx]
        r = req.with_offset(req.offset + off)
        if rbits is not None:
            r = replace(r, rbits=np.ascontiguousarray(rbits[idx]))
        parts[idx] = run_chunk(sub, r)
    if len(parts) == 1 and () in parts:
        return parts[()]
    first = next(iter(parts.values()))
    if not isinstance(first, np.ndarray):
        msg = "stochastic rounding of Dask arrays with non-NumPy chunks needs row-wise chunks"
        raise NotImplementedError(msg)
    res = np.empty(block.shape, dtype=first.dtype)
    for idx, v in parts.items():
        res[idx] = v
    return res


def _result_dtype(x, req: Request):
    if req.op is Op.DECODE:
        from qemu_arrays.routes.torch_cpu import _np_dtype

        return _np_dtype(np.float32 if req.dtype is None else req.dtype)
    if req.op is Op.ENCODE:
        return code_dtype(req.fmt.bits)
    return x.dtype


def _chunked_rbits(x, rbits):
    """``rbits`` (NumPy or Dask) broadcast to ``x`` and chunked as ``x`` is."""
    import dask.array as da

    try:
        shape = np.broadcast_shapes(tuple(np.shape(rbits)), tuple(x.shape))
    except ValueError:
        shape = None
    if shape != tuple(x.shape):
        msg = (
            f"rbits of shape {tuple(np.shape(rbits))} does not broadcast to x of shape "
            f"{tuple(x.shape)}; hint: one random word per element (or a shape that broadcasts)"
        )
        raise ValueError(msg)
    rb = rbits if isinstance(rbits, da.Array) else da.from_array(np.asarray(rbits))
    return da.broadcast_to(rb, x.shape).rechunk(x.chunks)


def run(x, req: Request, run_chunk):
    """A lazy Dask array: ``run_chunk(chunk, request)`` on every chunk (with its slice of
    ``rbits``, when given)."""
    dt = _result_dtype(x, req)
    meta = np.empty((0,) * x.ndim, dtype=dt)
    if req.rbits is not None and x.ndim:
        fn = partial(_chunk, replace(req, rbits=None), run_chunk, tuple(int(s) for s in x.shape))
        return x.map_blocks(fn, _chunked_rbits(x, req.rbits), dtype=dt, meta=meta)
    fn = partial(_chunk, req, run_chunk, tuple(int(s) for s in x.shape))
    return x.map_blocks(fn, dtype=dt, meta=meta)
