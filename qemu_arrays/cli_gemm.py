"""``qemu-arrays gemm-error``: the error of emulated GEMMs against float64 as K grows.

For one input format and a list of accumulators and orders, built-in Gaussian matrices
(``m x K`` times ``K x n``) are quantized into the input format, multiplied with
:func:`qemu_arrays.matmul`, and compared with the float64 product of the same quantized values
(exact up to float64's own rounding): so the error is the accumulation's alone.
"""

from __future__ import annotations

import re

import numpy as np

import qemu_arrays as qa

__all__ = ["gemm_error_rows", "parse_accumulator", "parse_order", "plot_gemm_error"]

_EXMY = re.compile(r"^e(\d+)m(\d+)$")
_BLOCKED = re.compile(r"^blocked(\d+)$")


def parse_accumulator(text: str):
    """A catalogue name, ``eXmY`` (an IEEE-style FloatFormat), or ``exact`` (None)."""
    t = text.strip()
    if t.lower() == "exact":
        return None
    m = _EXMY.match(t.lower())
    if m:
        return qa.FloatFormat(exponent_bits=int(m[1]), mantissa_bits=int(m[2]), name=t.lower())
    return qa.get_format(t)


def parse_order(text: str) -> dict:
    """``sequential``, ``pairwise`` or ``blockedN`` (block_k=N, promotion into float32)."""
    t = text.strip().lower()
    if t in ("sequential", "pairwise"):
        return {"order": t}
    m = _BLOCKED.match(t)
    if m and int(m[1]) >= 1:
        return {"order": "blocked", "block_k": int(m[1])}
    msg = (
        f"--orders: {text!r} is not an order; allowed: sequential, pairwise, blockedN (e.g. "
        "blocked128: runs of 128 products promoted into float32)"
    )
    raise ValueError(msg)


def _name(acc) -> str:
    return "exact" if acc is None else acc.name


def gemm_error_rows(input_format: str, accumulators, orders, ks, *, m=16, n=16, seed=0):
    """One record per (K, accumulator, order): max and relative (Frobenius) error against
    float64. ``accumulators``/``orders`` as :func:`parse_accumulator`/:func:`parse_order`
    return them (with their texts: ``[(text, value), ...]``)."""
    rng = np.random.default_rng(seed)
    kmax = max(ks)
    A_all = rng.standard_normal((m, kmax)).astype(np.float32)
    B_all = rng.standard_normal((kmax, n)).astype(np.float32)
    A_all = np.asarray(qa.quantize(A_all, input_format), dtype=np.float32)
    B_all = np.asarray(qa.quantize(B_all, input_format), dtype=np.float32)
    rows = []
    for K in ks:
        A, B = A_all[:, :K], B_all[:K]
        ref = A.astype(np.float64) @ B.astype(np.float64)
        scale = float(np.linalg.norm(ref)) or 1.0
        for acc_text, acc in accumulators:
            for order_text, okw in orders:
                if acc is None and okw["order"] != "blocked":
                    okw = {}  # the exact sum has no order
                    if order_text != orders[0][0]:
                        continue
                got = np.asarray(qa.matmul(A, B, accumulator=acc, allow_narrow=True, **okw),
                                 dtype=np.float64)  # fmt: skip
                err = got - ref
                rows.append({
                    "K": K, "accumulator": acc_text, "order": order_text if okw else "exact",
                    "max_abs_error": float(np.abs(err).max()),
                    "rel_error": float(np.linalg.norm(err)) / scale,
                })  # fmt: skip
    return rows


def plot_gemm_error(rows, path, *, title: str = ""):
    """Relative error against K, one line per (accumulator, order), log-log."""
    from qemu_arrays.plotting import check_png_path, pyplot

    p = check_png_path(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[tuple[str, str], list] = {}
    for r in rows:
        series.setdefault((r["accumulator"], r["order"]), []).append((r["K"], r["rel_error"]))
    floor = min((e for pts in series.values() for _, e in pts if e > 0), default=1e-12) / 10
    for (acc, order), pts in series.items():
        ks = [k for k, _ in pts]
        es = [max(e, floor) for _, e in pts]
        ax.plot(ks, es, marker="o", label=f"{acc}, {order}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("K (products per output)")
    ax.set_ylabel("relative error vs float64 (Frobenius)")
    ax.set_title(title or "emulated GEMM error as K grows")
    ax.grid(True, which="both", alpha=0.3)
    ax.text(0.01, 0.01, "an error of 0 is drawn at the bottom", transform=ax.transAxes,
            fontsize=7, color="gray")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
