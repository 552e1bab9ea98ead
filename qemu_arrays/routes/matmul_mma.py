"""The tensor-core models of ``docs/matmul.md`` ("Hardware models") on NumPy operands: chains of
truncating fused steps (:func:`qemu_arrays.kernels.matmul.fused_chain`), the MX block scales as
exponent shifts, and DeepSeek-V3's promotion of partial sums into float32."""

from __future__ import annotations

import numpy as np

from qemu_arrays.formats.catalog import get_format
from qemu_arrays.formats.enums import Rounding
from qemu_arrays.formats.spec import FloatFormat
from qemu_arrays.matmul_request import MatmulRequest
from qemu_arrays.request import Op, Request
from qemu_arrays.routes import cpu
from qemu_arrays.routes.matmul_common import Operand, Plan

__all__ = ["compute"]


def _input_format(o: Operand, given: str | None, allowed: tuple[str, ...], name: str):
    """The element format the model reads ``o`` in: its QArray format, or ``given`` (default:
    the model's first input format), whose values ``o`` must hold."""
    names = {get_format(n).name: n for n in allowed}
    if o.fmt.name in names and o.block is None and given is None:
        return o.fmt
    if o.block is not None:
        if o.fmt.name not in names:
            msg = (
                f"{name} is a block format with elements {o.fmt.name!r}; the model takes "
                f"{', '.join(allowed)}"
            )
            raise ValueError(msg)
        return o.fmt
    fname = allowed[0] if given is None else given
    fmt = get_format(fname)
    if fmt.name not in names:
        msg = (
            f"{name}_format={fname!r} is not an input format of this model; allowed: "
            f"{', '.join(allowed)}"
        )
        raise ValueError(msg)
    v = o.values
    q = np.asarray(cpu.run(v, Request(Op.QUANTIZE, fmt)), dtype=np.float64)
    bad = ~((q == v) | (np.isnan(q) & np.isnan(v)))
    if bad.any():
        x = float(v.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
        msg = (
            f"{name} holds values that are not {fmt.name} values (e.g. {x!r}); the model "
            f"multiplies {fmt.name} inputs; hint: quantize {name} to {fmt.name} first, or pass "
            f"{name}_format= (one of {', '.join(allowed)})"
        )
        raise ValueError(msg)
    return fmt


def _nominal(v: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """``max(floor(log2 |x|), emin)`` of each value (any integer for zeros and specials)."""
    with np.errstate(all="ignore"):
        e = np.frexp(np.where(np.isfinite(v), v, 1.0))[1].astype(np.int64) - 1
    return np.maximum(e, fmt.emin)


def _scale_exps(o: Operand, is_a: bool, ng: int) -> np.ndarray:
    if o.scales is None:
        return np.zeros((1, ng) if is_a else (ng, 1))
    s = o.scales if o.scales.ndim == 2 else (o.scales[None, :] if is_a else o.scales[:, None])
    with np.errstate(all="ignore"):
        return np.where(np.isnan(s), np.nan, np.log2(s))


def compute(a: Operand, b: Operand, req: MatmulRequest, pl: Plan) -> np.ndarray:
    """``a @ b (+ c)`` through ``req.model``; the result as ``plan.out_shape`` float32 values."""
    from qemu_arrays.kernels import matmul as km

    model = req.model
    fa = _input_format(a, req.formats[0], model.input_formats, "a")
    fb = _input_format(b, req.formats[1], model.input_formats, "b")
    if pl.batch:
        msg = "hardware models take 1-D and 2-D operands; hint: loop over the batch"
        raise ValueError(msg)
    for n, o in (("a", a), ("b", b)):
        if o.group is not None or (o.block is None and o.scale is not None):
            msg = (
                f"{n} is a QArray of the scaled integer format {o.fmt.name!r}: hardware models "
                "multiply float element formats and MX block formats; hint: "
                f"profile.matmul({n}.dequantize(), ...), or qemu_arrays.matmul for integer "
                "operands"
            )
            raise ValueError(msg)
        bad = o.block is not None and (o.block.tensor_scale or o.block.block_size != model.group)
        if bad and model.block_scaled:
            msg = (
                f"{n} is a QArray of {o.block.name!r} (blocks of {o.block.block_size}"
                f"{', a tensor scale' if o.block.tensor_scale else ''}): this model's block "
                f"scales cover groups of {model.group} products with no tensor scale (OCP "
                f"MX); hint: qemu_arrays.matmul({n}, ...) for its block dot product, or "
                f"profile.matmul({n}.dequantize(), ...)"
            )
            raise ValueError(msg)
    if (a.block is not None or b.block is not None) and not model.block_scaled:
        msg = (
            "this model has no block scales; hint: a block-scaled profile (e.g. "
            "'nvidia-b200-mxf8f6f4'), or dequantize the operands"
        )
        raise ValueError(msg)
    va, vb = (np.asarray(o.values, dtype=np.float64) for o in (a, b))
    A = va[None, :] if va.ndim == 1 else va
    B = vb[:, None] if vb.ndim == 1 else vb
    M, K = A.shape
    N = B.shape[1]
    ng = max(-(-K // model.group), 1)
    XA = np.broadcast_to(_scale_exps(a, True, ng), (M, ng))
    XB = np.broadcast_to(_scale_exps(b, False, ng), (ng, N))
    C = np.zeros((M, N))
    if req.c is not None:
        c = np.asarray(req.c, dtype=np.float64)
        c32 = c.astype(np.float32).astype(np.float64)
        if not np.array_equal(c32, c, equal_nan=True):
            msg = "c must hold float32 values (the accumulator's input); hint: c.astype(float32)"
            raise ValueError(msg)
        C = np.ascontiguousarray(np.broadcast_to(c, (M, N)))
    out = np.empty((M, N))
    km.fused_chain(
        np.ascontiguousarray(A), np.ascontiguousarray(B), _nominal(A, fa), _nominal(B, fb),
        np.ascontiguousarray(XA), np.ascontiguousarray(XB), C, out, model.group,
        model.frac_bits, model.out_precision, model.promote_interval or 0,
        int(Rounding.NEAREST_EVEN),
    )  # fmt: skip
    out[np.isnan(out)] = np.nan
    return out.astype(np.float32).reshape(pl.out_shape)
