"""Plots for the CLI and the docs: a format's value grid and error distributions.

matplotlib is imported inside each function with the non-interactive Agg backend, so importing
this module (or ``qemu_arrays``) never pulls it in. Each function writes a PNG and returns its
path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_error_distributions", "plot_value_grid"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        msg = "plotting needs matplotlib; hint: pip install 'qemu-arrays[plot]'"
        raise ImportError(msg) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _out_path(path) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        msg = f"path must end in .png, got {str(path)!r}; hint: --plot grid.png"
        raise ValueError(msg)
    if not p.parent.exists():
        msg = f"cannot write {str(path)!r}: the folder {str(p.parent)!r} does not exist"
        raise OSError(msg)
    return p


def plot_value_grid(fmt, path, *, scale=None) -> Path:
    """The positive values of a format (at most 16 bits) on a log axis, and the spacing between
    neighbours: the constant step of an integer format against the binades of a float one."""
    from qemu_arrays.formats.catalog import get_format
    from qemu_arrays.testing.strategies import format_values

    fmt = get_format(fmt)
    p = _out_path(path)
    vals = format_values(fmt, scale=scale)
    pos = vals[vals > 0]
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 5), constrained_layout=True)
    ax1.plot(pos, np.zeros_like(pos), "|", markersize=18, color="C0")
    ax1.set_xscale("log", base=2)
    ax1.set_yticks([])
    ax1.set_title(f"{fmt.name}: {vals.size} finite values, {pos.size} positive")
    if pos.size > 1:
        ax2.step(pos[1:], np.diff(pos), where="post", color="C1")
        ax2.set_xscale("log", base=2)
        ax2.set_yscale("log", base=2)
    ax2.set_xlabel("value")
    ax2.set_ylabel("spacing to the next value")
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def plot_error_distributions(errors: dict, path, *, title: str = "") -> Path:
    """Histograms of quantization errors, one line per label (``{label: error array}``)."""
    p = _out_path(path)
    if not errors:
        msg = "errors must map at least one label to an array of errors, got an empty dict"
        raise ValueError(msg)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    finite = [np.asarray(e, dtype=np.float64) for e in errors.values()]
    span = max(float(np.max(np.abs(e[np.isfinite(e)]), initial=0.0)) for e in finite) or 1.0
    bins = np.linspace(-span, span, 121)
    for label, err in zip(errors, finite):
        hist, edges = np.histogram(err[np.isfinite(err)], bins=bins, density=True)
        ax.step(edges[:-1], hist + 1e-12, where="post", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("quantized - original")
    ax.set_ylabel("density")
    ax.set_title(title or "quantization error distributions")
    ax.legend(fontsize="small")
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
