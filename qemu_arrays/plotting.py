"""Plots for the CLI and the docs: a format's value grid, and a comparison of formats.

matplotlib is imported inside each function with the non-interactive Agg backend, so importing
this module (or ``qemu_arrays``) never pulls it in. Each plotting function writes a PNG and
returns its path; :func:`check_png_path` and :func:`pyplot` let a caller check the path and the
installation before doing any work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["check_png_path", "plot_comparison", "plot_value_grid", "pyplot"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend; ImportError with the install hint."""
    try:
        import matplotlib
    except ImportError:
        msg = "plotting needs matplotlib; hint: pip install 'qemu-arrays[plot]'"
        raise ImportError(msg) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def check_png_path(path) -> Path:
    """``path`` as a Path if it ends in ``.png`` and its folder exists, else ValueError/OSError."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        msg = f"path must end in .png, got {str(path)!r}; hint: --plot grid.png"
        raise ValueError(msg)
    if not p.parent.exists():
        msg = f"cannot write {str(path)!r}: the folder {str(p.parent)!r} does not exist"
        raise OSError(msg)
    return p


def _is_block(fmt) -> bool:
    return getattr(fmt, "kind", "") == "block"


def _grid_axes(ax, fmt, vals):
    """Linear axis for integer formats (a uniform grid), symlog for float formats (linear below
    the smallest normal, logarithmic above, both signs)."""
    from qemu_arrays.formats.spec import IntFormat

    if isinstance(fmt, IntFormat):
        return "linear"
    pos = vals[vals > 0]
    thresh = float(fmt.smallest_normal) if fmt.has_zero else float(pos.min())
    ax.set_xscale("symlog", base=2, linthresh=thresh, linscale=1)
    return "symlog"


def _element_panels(fig, axes, fmt, scale=None, what=""):
    from qemu_arrays.formats.spec import IntFormat
    from qemu_arrays.testing.strategies import format_values

    ax1, ax2 = axes
    vals = np.unique(format_values(fmt, scale=scale))
    kind = _grid_axes(ax1, fmt, vals)
    lw = 0.6 if vals.size > 64 else 1.2
    sub = np.zeros(vals.size, bool)
    if not isinstance(fmt, IntFormat) and fmt.subnormals and fmt.has_zero:
        sub = (vals != 0) & (np.abs(vals) < float(fmt.smallest_normal))
    ax1.vlines(vals[~sub], -1, 1, color="C0", linewidth=lw, label="normal" if sub.any() else None)
    if sub.any():
        ax1.vlines(vals[sub], -1, 1, color="C2", linewidth=lw, label="subnormal")
        ax1.legend(loc="upper left", fontsize=7, ncols=2)
    ax1.set_ylim(-1.3, 2.3)
    ax1.set_yticks([])
    npos = int((vals > 0).sum())
    axis_note = "linear axis" if kind == "linear" else "symlog axis (linear near 0)"
    ax1.set_title(f"{what}{fmt.name}: {vals.size} finite values ({npos} positive), {axis_note}",
                  fontsize=10)  # fmt: skip
    if vals.size > 1:
        gaps = np.diff(vals)
        ax2.hlines(gaps, vals[:-1], vals[1:], color="C1", linewidth=1.5)
        ax2.plot(vals[:-1], gaps, ".", color="C1", markersize=2 if vals.size > 64 else 4)
        if not isinstance(fmt, IntFormat) and gaps.max() / gaps.min() > 16:
            ax2.set_yscale("log", base=2)
        else:
            ax2.set_ylim(0, gaps.max() * 1.25)
    ax2.set_xlabel("value")
    ax2.set_ylabel("step to the next value")
    ax2.set_title("spacing: constant for integers, doubling per binade for floats", fontsize=8)
    if not isinstance(fmt, IntFormat):
        for x in (fmt.smallest_normal, -fmt.smallest_normal):
            for a in (ax1, ax2):
                a.axvline(float(x), color="0.6", linestyle=":", linewidth=1)
        ax1.text(float(fmt.smallest_normal), 1.15, " smallest normal", fontsize=7, color="0.4")
    ax2.grid(True, alpha=0.3)


def _block_panel(ax, fmt):
    """Each scale's copy of the positive element grid: x = value, y = the block scale."""
    from qemu_arrays.formats.spec import FloatFormat
    from qemu_arrays.testing.strategies import format_values

    el = fmt.element
    ev = format_values(el)
    if not isinstance(el, FloatFormat):
        ev = ev * 2.0**-fmt.element_fraction_bits
    ev = np.unique(ev[ev > 0])
    sv = format_values(fmt.scale)
    sv = np.unique(sv[sv > 0])
    n_all, lo, hi = sv.size, sv.min(), sv.max()
    k = int(np.argmin(np.abs(np.log2(sv))))
    sv = sv[max(0, k - 8) : k + 9]  # the 17 scales nearest 1: the structure stays visible
    xs = (ev[None, :] * sv[:, None]).reshape(-1)
    ys = np.repeat(sv, ev.size)
    ax.hlines(sv, ev.min() * sv, ev.max() * sv, color="0.8", linewidth=0.8)
    ax.plot(xs, ys, "|", color="C0", markersize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    one = sv[np.argmin(np.abs(np.log2(sv)))]
    ax.plot(ev * one, np.full(ev.size, one), "|", color="C3", markersize=12,
            label=f"scale {one:g}: the element grid itself")  # fmt: skip
    ax.set_xlabel("|value| = element magnitude x block scale" + (
        " (before the per-tensor scale)" if fmt.tensor_scale else ""))  # fmt: skip
    ax.set_ylabel(f"block scale ({fmt.scale.name})")
    ax.set_title(
        f"{fmt.name}: {ev.size} magnitudes (and sign) x one scale per {fmt.block_size} values\n"
        f"{n_all} scales from {lo:.3g} to {hi:.3g}; shown: the {sv.size} nearest 1",
        fontsize=9,
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, alpha=0.3)


def plot_value_grid(fmt, path, *, scale=None) -> Path:
    """The values of a format on both signs, and the step from each value to the next.

    Integer formats on a linear axis (a uniform grid), float formats on a symlog axis (linear
    below the smallest normal, logarithmic above), the two panels on the same x range. A block
    format gets its element grid and, below it, the block view: the element grid times every
    scale its scale format holds. Element formats of at most 16 bits.
    """
    from qemu_arrays.formats.catalog import get_format

    fmt = get_format(fmt)
    p = check_png_path(path)
    element = fmt.element if _is_block(fmt) else fmt
    if element.bits > 16:
        msg = f"the value grid plot takes formats of at most 16 bits, {element.name!r} has {element.bits}"
        raise ValueError(msg)
    plt = pyplot()
    if _is_block(fmt):
        fig = plt.figure(figsize=(8, 7.5), constrained_layout=True)
        gs = fig.add_gridspec(3, 1, height_ratios=[1, 1.3, 2.4])
        ax1 = fig.add_subplot(gs[0])
        ax2 = fig.add_subplot(gs[1], sharex=ax1)
        _element_panels(fig, (ax1, ax2), element, scale, what="element format ")
        _block_panel(fig.add_subplot(gs[2]), fmt)
    else:
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 4.8), sharex=True,
                                       constrained_layout=True, height_ratios=[1, 1.6])  # fmt: skip
        _element_panels(fig, (ax1, ax2), fmt, scale)
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def plot_comparison(records, errors, path, *, title: str = "") -> Path:
    """An SQNR bar chart (formats along x, one bar per data set) above small multiples: one
    linear histogram of the error ``quantized - original`` per format, one line per data set.

    ``records``: dicts with ``data``, ``format``, ``sqnr_db`` (as ``qemu-arrays compare``
    makes them); ``errors``: ``{(data, format): errors}``. Each histogram spans the 99.9th
    percentile of its format's ``|error|``; the share of values beyond is written in the panel.
    """
    p = check_png_path(path)
    if not records:
        msg = "records must hold at least one (data, format) result, got none"
        raise ValueError(msg)
    plt = pyplot()
    formats = list(dict.fromkeys(r["format"] for r in records))
    datasets = list(dict.fromkeys(r["data"] for r in records))
    sq = {(r["data"], r["format"]): r["sqnr_db"] for r in records}
    ncols = min(3, len(formats))
    nrows = -(-len(formats) // ncols)
    fig = plt.figure(figsize=(9, 3.2 + 2.3 * nrows), constrained_layout=True)
    gs = fig.add_gridspec(1 + nrows, ncols, height_ratios=[1.5] + [1] * nrows)
    bar = fig.add_subplot(gs[0, :])
    width = 0.8 / len(datasets)
    xs = np.arange(len(formats))
    top = max((v for v in sq.values() if np.isfinite(v)), default=1.0)
    for k, d in enumerate(datasets):
        vals = [sq.get((d, f), np.nan) for f in formats]
        shown = [min(v, top * 1.1) if np.isfinite(v) else np.nan for v in vals]
        bars = bar.bar(xs + (k - (len(datasets) - 1) / 2) * width, shown, width, label=d,
                       color=f"C{k}")  # fmt: skip
        for b, v in zip(bars, vals):
            if np.isfinite(b.get_height()):
                bar.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{v:.1f}" if np.isfinite(v) else "inf",
                         ha="center", va="bottom", fontsize=7)  # fmt: skip
    bits = {r["format"]: r.get("bits_per_value") for r in records}
    bar.set_xticks(xs, [f if bits[f] is None else f"{f}\n{bits[f]:g} bits" for f in formats])
    bar.set_ylabel("SQNR (dB), higher is better")
    bar.set_ylim(0, top * 1.18)
    bar.grid(True, axis="y", alpha=0.3)
    import textwrap

    bar.set_title(textwrap.fill(title or "signal-to-quantization-noise ratio per format", 110),
                  fontsize=9)  # fmt: skip
    if len(datasets) > 1:
        bar.legend(
            fontsize=8, ncols=len(datasets), loc="upper right", title="data", title_fontsize=8
        )
    for i, f in enumerate(formats):
        ax = fig.add_subplot(gs[1 + i // ncols, i % ncols])
        errs = [np.asarray(errors[(d, f)], dtype=np.float64) for d in datasets if (d, f) in errors]
        allabs = np.abs(np.concatenate(errs)) if errs else np.zeros(1)
        p999 = max(float(np.percentile(np.abs(e), 99.9)) for e in errs) if errs else 0.0
        top_err = float(allabs.max())
        span = (top_err if top_err <= 1.5 * p999 else p999) or top_err or 1.0
        bins = np.linspace(-span, span, 61)
        for k, (d, e) in enumerate(zip(datasets, errs)):
            ax.hist(e, bins=bins, weights=np.full(e.size, 100.0 / e.size), histtype="step",
                    color=f"C{k}", linewidth=1.2, label=d)  # fmt: skip
        beyond = float(np.mean(allabs > span)) * 100
        ax.set_title(f"{f}: error histogram", fontsize=9)
        ax.set_xlim(-span, span)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
        ax.tick_params(labelsize=7)
        ax.xaxis.get_offset_text().set_fontsize(7)
        if beyond > 0:
            ax.text(0.98, 0.95, f"{beyond:.2f}% beyond", transform=ax.transAxes, ha="right",
                    va="top", fontsize=7, color="0.35")  # fmt: skip
        if i % ncols == 0:
            ax.set_ylabel("% of values", fontsize=8)
        if i // ncols == nrows - 1:
            ax.set_xlabel("error (quantized - original)", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


_KIND_COLOURS = {"float32": "0.55", "INT": "C0", "FP": "C1", "MX": "C2", "NVFP4": "C3"}


def plot_qat(records, path) -> Path:
    """Test accuracy per format as points coloured by kind (INT, FP, MX, NVFP4; float32's
    accuracy as a dashed line; points, not bars, as the axis does not start at zero) beside the
    time per training step relative to float32, as ``qemu-arrays qat`` makes the ``records``."""
    p = check_png_path(path)
    if not records:
        msg = "records must hold at least one training run, got none"
        raise ValueError(msg)
    plt = pyplot()
    labels = [
        r["weights"] if r["activations"] == r["gradients"] == "-"
        else f"W {r['weights']}\nA {r['activations']}\nG {r['gradients']}"
        for r in records
    ]  # fmt: skip
    colours = [_KIND_COLOURS.get(r["kind"], "C4") for r in records]
    ys = np.arange(len(records))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 1.2 + 0.62 * len(records)), sharey=True,
                                 constrained_layout=True, width_ratios=[3, 2])  # fmt: skip
    acc = np.array([100 * r["test_accuracy"] for r in records])
    base = [100 * r["test_accuracy"] for r in records if r["kind"] == "float32"]
    if base:
        a1.axvline(base[0], color="0.3", linestyle="--", linewidth=1)
    a1.hlines(ys, acc.min() - 2, acc, color=colours, linewidth=1, alpha=0.5)
    a1.scatter(acc, ys, c=colours, s=45, zorder=3)
    for y, v in zip(ys, acc):
        a1.text(v + 0.15, y, f"{v:.1f}", va="center", fontsize=7)
    a1.set_xlim(acc.min() - 2, min(100.0, acc.max() + 2))
    a1.set_yticks(ys, labels, fontsize=7)
    a1.invert_yaxis()
    a1.set_xlabel("test accuracy (%)  (dashed: float32)")
    a1.set_title("digits MLP after quantization-aware training", fontsize=9)
    a1.grid(True, axis="x", alpha=0.3)
    kinds = [k for k in _KIND_COLOURS if any(r["kind"] == k for r in records)]
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=_KIND_COLOURS[k]) for k in kinds]
    a2.legend(handles, kinds, fontsize=7, loc="upper right", title="kind", title_fontsize=7)
    a2.barh(ys, [r["step_ratio"] for r in records], color=colours)
    a2.axvline(1.0, color="0.3", linestyle="--", linewidth=1)
    a2.set_xlabel("time per training step / float32's")
    a2.set_title("training step time", fontsize=9)
    a2.grid(True, axis="x", alpha=0.3)
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p
