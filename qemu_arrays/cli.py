"""The ``qemu-arrays`` command (also ``python -m qemu_arrays``).

Each subcommand is a function ``cmd_NAME(args) -> int`` registered in :func:`build_parser`;
heavy imports happen inside the subcommand. Subcommands: ``demo``, ``formats``, ``info``,
``compare``, ``check-format``, ``reproduce``, ``bench``, ``warmup`` (see ``docs/cli.md``). Every name
argument (formats, data sets, rounding modes, scripts, subcommands) is checked before any output,
and a bad one exits with status 2 and a one-line message on stderr with the closest names;
``check-format`` exits 1 when a property fails. ``demo``, ``formats``, ``info``, ``compare`` and
``check-format`` print a table, or JSON (``--json``) or CSV (``--csv``) on stdout.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib
import importlib.util
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

DEMO_FORMATS = ("int8", "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "bfloat16")
COMPARE_FORMATS = ("int8", "float8_e4m3fn", "mxfp8_e4m3", "int4", "mxfp4_e2m1", "nvfp4")
DATA_SETS = ("gaussian", "student-t(3)", "laplace")


class CliError(ValueError):
    """A user error: printed as one line, exit status 2."""


# ---- names and suggestions -----------------------------------------------------------------


def suggest(value: str, choices, n: int = 6) -> list[str]:
    """The choices closest to ``value``: difflib's close matches, then those that contain it
    (``fp8`` -> ``float8_*`` and ``mxfp8_*``: ``fp`` also reads as ``float``)."""
    choices = list(dict.fromkeys(choices))
    key = value.strip().lower().replace("-", "_")
    out = difflib.get_close_matches(key, choices, n=n, cutoff=0.6)
    keys = {key, key.replace("fp", "float"), key.replace("float", "fp")} - {""}
    out += [c for c in choices if any(k in c.lower() for k in keys)]
    out += difflib.get_close_matches(key, choices, n=n, cutoff=0.4)
    return list(dict.fromkeys(out))[:n]


def unknown(value: str, choices, what: str, listing: str = "", n: int = 6) -> CliError:
    """``CliError("unknown WHAT 'value'; did you mean ...? ...")`` with the closest choices."""
    close = suggest(value, choices, n)
    hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(choices)}"
    return CliError(f"unknown {what} {value!r}; {hint}{' ' + listing if listing else ''}")


def _format_names() -> list[str]:
    import qemu_arrays as qa

    return qa.list_formats()


def _get_format(name):
    import qemu_arrays as qa

    try:
        return qa.get_format(name)
    except (ValueError, TypeError):
        raise unknown(
            name, _format_names(), "format", "(qemu-arrays formats lists them)", 10
        ) from None


def _rounding(name):
    """A ``Rounding`` member from its name, case-insensitively (``nearest-even`` too)."""
    import qemu_arrays as qa

    key = name.strip().upper().replace("-", "_")
    if key in qa.Rounding.__members__:
        return qa.Rounding[key]
    members = [m.lower() for m in qa.Rounding.__members__]
    raise unknown(name, members, "rounding mode", f"(one of: {', '.join(members)})")


def _is_block(fmt) -> bool:
    return getattr(fmt, "kind", "") == "block"


# ---- output: a table, JSON or CSV --------------------------------------------------------------


def _numeric(cell) -> bool:
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return True
    return bool(re.fullmatch(r"[-+]?(\d[\d.]*(e[-+]?\d+)?|inf|nan)%?( dB)?", str(cell).strip()))


def _table(rows, headers):
    """A text table: numbers right-aligned, text left-aligned."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    right = [all(_numeric(r[i]) for r in rows) if rows else False for i in range(len(headers))]

    def line(cells, header=False):
        return "  ".join(
            str(c).rjust(w) if right[i] and not header else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(headers, True), "  ".join("-" * w for w in widths)]
    return "\n".join(out + [line(r) for r in rows])


def _plain(v):
    """JSON-safe: numpy scalars to Python, non-finite floats to strings."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else str(v)
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    return v


def _output_mode(args) -> str:
    return "json" if getattr(args, "json", False) else "csv" if getattr(args, "csv", False) else ""


def _emit(args, records: list[dict], text, extra: dict | None = None) -> None:
    """Print ``records`` as JSON or CSV when asked, else call ``text()`` to print the table."""
    mode = _output_mode(args)
    if mode == "json":
        payload = {"command": args.command, "rows": records, **(extra or {})}
        print(json.dumps(_plain(payload), indent=2))
    elif mode == "csv":
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in records for k in r))
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow({k: _plain(v) for k, v in r.items()})
        print(buf.getvalue(), end="")
    else:
        text()


def _progress(iterable, total: int, desc: str, enabled: bool = True):
    """tqdm on stderr when installed, else a simple ``desc i/total`` counter on stderr."""
    if not enabled:
        yield from iterable
        return
    try:
        from tqdm import tqdm
    except ImportError:
        for i, item in enumerate(iterable, 1):
            print(f"\r{desc} {i}/{total}", end="", file=sys.stderr, flush=True)
            yield item
        print(file=sys.stderr)
        return
    yield from tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)


def _fmt_num(v) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v == 0 or (1e-3 <= abs(v) < 1e6 and v == round(v, 6)):
        return f"{v:g}"
    return f"{v:.4g}"


def _check_plot_path(path):
    """Check ``--plot PATH.png`` (and matplotlib) before anything is printed."""
    if path is None:
        return None
    from qemu_arrays.plotting import check_png_path, pyplot

    try:
        p = check_png_path(path)
    except (ValueError, OSError) as exc:
        msg = f"--plot: {exc}"
        raise CliError(msg) from None
    pyplot()  # ImportError with the install hint, before any output
    return p


# ---- data and the comparison ---------------------------------------------------------------


def builtin_samples(n: int = 1 << 16, seed: int = 0) -> dict[str, np.ndarray]:
    """The built-in data: Gaussian, heavy-tailed (Student-t, 3 dof) and Laplace float32 samples."""
    rng = np.random.default_rng(seed)
    return {
        "gaussian": rng.standard_normal(n).astype(np.float32),
        "student-t(3)": rng.standard_t(3, n).astype(np.float32),
        "laplace": rng.laplace(size=n).astype(np.float32),
    }


def error_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MSE, SQNR (dB) and max abs error of a quantization ``x -> y``."""
    x64 = x.astype(np.float64)
    err = y.astype(np.float64) - x64
    mse = float(np.mean(err**2))
    power = float(np.mean(x64**2))
    sqnr = float("inf") if mse == 0 else 10 * np.log10(power / mse)
    return {"mse": mse, "sqnr_db": sqnr, "max_abs_err": float(np.max(np.abs(err)))}


def _group_reduce(x, axis, block_size, fn):
    """``fn(values, axis=-1)`` over each scale group, in the group shape of
    ``qemu_arrays.quantize`` (per tensor: 0-d; per channel: ``keepdims`` along the other axes;
    groups of ``block_size`` along ``axis``: that axis holds one entry per group)."""
    if axis is None and block_size is None:
        return np.asarray(fn(x.reshape(-1), axis=-1))
    if block_size is None:
        moved = np.moveaxis(x, axis, -1)
        red = fn(moved.reshape(-1, moved.shape[-1]).T.reshape(moved.shape[-1], -1), axis=-1)
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        return red.reshape(shape)
    moved = np.moveaxis(x, axis, -1).astype(np.float64)
    n = moved.shape[-1]
    groups = -(-n // block_size)
    pad = np.full((*moved.shape[:-1], groups * block_size - n), np.nan)
    g = np.concatenate([moved, pad], axis=-1).reshape(*moved.shape[:-1], groups, block_size)
    return np.moveaxis(fn(g, axis=-1), -1, axis)


def _expand(g, shape, axis, block_size):
    """A group-shaped array to one entry per element of ``shape``."""
    g = np.asarray(g)
    if block_size is not None:
        g = np.take(np.repeat(g, block_size, axis=axis), np.arange(shape[axis]), axis=axis)
    return np.broadcast_to(g, shape)


def _absmax(a, axis):
    return np.nanmax(np.abs(a), axis=axis)


def _reach(fmt, fraction_bits=0) -> float:
    """How far the largest code rounds: ``max`` plus half the step below it. Values beyond this
    are *clipped* (they would round past the top code if the format went on)."""
    import qemu_arrays as qa

    if isinstance(fmt, qa.IntFormat):
        return (fmt.max + 0.5) * 2.0**-fraction_bits
    top = float(fmt.max)
    return top + 0.5 * 2.0 ** (np.floor(np.log2(top)) - fmt.mantissa_bits)


def _block_max(q, fmt):
    """How far each element's block reaches (``_reach`` of the element times its block scale)."""
    import qemu_arrays as qa

    emax = _reach(fmt.element, fmt.element_fraction_bits)
    s = qa.decode(q.scales, fmt.scale, dtype=np.float64)
    if q.tensor_scale is not None:
        s = (s * np.float64(q.tensor_scale)).astype(np.float32).astype(np.float64)
    return _expand(s, q.shape, q.axis, q.block_size) * emax


def quantize_scaled(
    x, fmt, *, axis=None, block_size=None, clip_sigmas=None, rounding=None, seed=0, block_axis=-1
):
    """``(y, clipped)``: ``x`` scaled into ``fmt``, quantized, scaled back, and the fraction of
    values clipped: beyond the largest code's rounding reach (max plus half the step below it)
    under their scale.

    Element formats (integer and float) get a scale per tensor, per channel (``axis``) or per
    group (``block_size`` along ``axis``, default the last): ``absmax / max``, or with
    ``clip_sigmas`` ``clip_sigmas * std / max``, so the group's reference maps to the format's
    max (float formats saturate beyond it; formats of 16 bits and more are used unscaled without
    ``clip_sigmas``). Block formats (MX, NVFP4) compute their own block scales along
    ``block_axis``.
    """
    import qemu_arrays as qa

    r = {} if rounding is None else {"rounding": rounding, "seed": seed}
    if _is_block(fmt):
        q = qa.asarray(x, fmt, axis=block_axis, **r)
        y = q.dequantize()
        return y, float(np.mean(np.abs(x) > _block_max(q, fmt)))
    if not isinstance(fmt, qa.IntFormat) and fmt.bits >= 16 and clip_sigmas is None:
        y = qa.quantize(x, fmt, overflow=qa.Overflow.SATURATE, **r)
        return y, float(np.mean(np.abs(x) > _reach(fmt)))
    gaxis = (x.ndim - 1 if axis is None else axis) if block_size is not None else axis
    if clip_sigmas is None:
        ref = _group_reduce(x, gaxis, block_size, _absmax)
    else:
        ref = clip_sigmas * _group_reduce(x, gaxis, block_size, np.nanstd)
    ref = np.where(ref > 0, ref, 1.0)
    s_el = _expand(ref / float(fmt.max), x.shape, gaxis, block_size)
    if isinstance(fmt, qa.IntFormat):
        rule = "absmax" if clip_sigmas is None else ref / float(fmt.max)  # absmax: the library's
        y = qa.quantize(x, fmt, scale=rule, axis=gaxis, block_size=block_size, **r)
    else:
        s_el = s_el.astype(np.float32)
        y = qa.quantize(x / s_el, fmt, overflow=qa.Overflow.SATURATE, **r) * s_el
    return y, float(np.mean(np.abs(x) > _reach(fmt) * s_el))


def quantize_for_comparison(x: np.ndarray, name: str) -> np.ndarray:
    """Per-tensor absmax scaling into the format's range, quantize, scale back (block formats:
    their own block scales); ``quantize_scaled`` with the defaults."""
    return quantize_scaled(x, _get_format(name))[0]


def _parse_formats(text: str) -> list:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        msg = "--formats must name at least one format, e.g. --formats int8,float8_e4m3fn,nvfp4"
        raise CliError(msg)
    return [(n, _get_format(n)) for n in names]


def _load_data(args) -> tuple[dict[str, np.ndarray], str]:
    """(data sets, a note): ``--npy FILE`` in its shape, or the built-in samples."""
    if args.npy:
        path = Path(args.npy)
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            msg = f"cannot read {str(path)!r} as a .npy array ({type(exc).__name__}: {exc})"
            raise CliError(msg) from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            msg = f"{str(path)!r} must hold a numeric array, got {getattr(arr, 'dtype', arr)}"
            raise CliError(msg)
        arr = arr.astype(np.float32)
        note = ""
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            arr = arr[np.isfinite(arr)]
            note = f"; {bad} non-finite value(s) dropped, the rest flattened"
        if arr.size == 0:
            msg = f"{str(path)!r} holds no finite values"
            raise CliError(msg)
        return {path.name: arr}, note
    samples = builtin_samples(args.n, args.seed)
    if args.data == "all":
        return samples, ""
    return {args.data: samples[args.data]}, ""


def _check_data_name(name):
    if name != "all" and name not in DATA_SETS:
        raise unknown(name, ("all", *DATA_SETS), "data set")


def _check_positive(name, value, kind=float):
    if value is not None and not value > 0:
        msg = f"{name} must be > 0, got {value}"
        raise CliError(msg)
    if kind is int and value is not None and value != int(value):
        msg = f"{name} must be an integer, got {value}"
        raise CliError(msg)


def _granularity_text(axis, block_size) -> str:
    if block_size is not None:
        return f"groups of {block_size} along axis {-1 if axis is None else axis}"
    if axis is not None:
        return f"per-channel along axis {axis}"
    return "per-tensor"


def run_comparison(data, fmts, *, axis=None, block_size=None, clip_sigmas=None, rounding=None,
                   seed=0, progress=False, block_axis=-1):  # fmt: skip
    """One record per (data set, format): MSE, SQNR, max error, clipped fraction; and the
    errors (``{(data, format): quantized - original}``) for the plots."""
    records, errors = [], {}
    jobs = [(d, x, n, f) for d, x in data.items() for n, f in fmts]
    for dist, x, name, fmt in _progress(jobs, len(jobs), "compare", progress):
        y, clip = quantize_scaled(x, fmt, axis=axis, block_size=block_size,
                                  clip_sigmas=clip_sigmas, rounding=rounding, seed=seed,
                                  block_axis=block_axis)  # fmt: skip
        st = error_stats(x, y)
        bits = fmt.bits_per_value if _is_block(fmt) else fmt.bits
        records.append({"data": dist, "format": name, "bits_per_value": float(bits), **st,
                        "clipped": clip})  # fmt: skip
        errors[(dist, name)] = (y.astype(np.float64) - x.astype(np.float64)).reshape(-1)
    return records, errors


def _compare_rows(records):
    return [
        (r["data"], r["format"], f"{r['bits_per_value']:g}", f"{r['mse']:.3e}",
         f"{r['sqnr_db']:.2f}", f"{r['max_abs_err']:.3e}", f"{100 * r['clipped']:.3f}%")
        for r in records
    ]  # fmt: skip


_COMPARE_HEAD = ("data", "format", "bits", "MSE", "SQNR dB", "max |err|", "clipped")


def cmd_demo(args) -> int:
    samples = builtin_samples(args.n, args.seed)
    fmts = [(n, _get_format(n)) for n in DEMO_FORMATS]
    records, _ = run_comparison(samples, fmts)

    def text():
        print(f"qemu_arrays demo: {args.n} samples per distribution, per-tensor absmax scaling")
        print(_table(_compare_rows(records), _COMPARE_HEAD))
        print(
            "\nint8 spends its codes uniformly: best on bounded data. FP formats keep relative"
            " precision: better on heavy tails. Next: qemu-arrays compare --help"
        )

    _emit(args, records, text, {"n": args.n, "scaling": "per-tensor absmax"})
    return 0


def cmd_compare(args) -> int:
    fmts = _parse_formats(args.formats)
    _check_data_name(args.data)
    _check_positive("--clip-sigmas", args.clip_sigmas)
    _check_positive("--block-size", args.block_size, int)
    rounding = None if args.rounding is None else _rounding(args.rounding)
    plot = _check_plot_path(args.plot)
    if args.clip_sigmas is not None and all(_is_block(f) for _, f in fmts):
        msg = (
            "--clip-sigmas applies to integer and float element formats; block formats "
            f"({', '.join(n for n, _ in fmts)}) choose their own block scales"
        )
        raise CliError(msg)
    data, note = _load_data(args)
    ndim = next(iter(data.values())).ndim
    axis, block_axis = args.axis, args.block_axis
    for opt, val in (("--axis", axis), ("--block-axis", block_axis)):
        if val is not None and not -ndim <= val < ndim:
            msg = (
                f"{opt} {val} is out of range for data of {ndim} dimension(s); allowed: "
                f"{-ndim} ... {ndim - 1}"
            )
            raise CliError(msg)
    block_axis %= ndim
    if axis is not None:
        axis %= ndim
        if args.block_size is None and ndim == 1 and not all(_is_block(f) for _, f in fmts):
            msg = (
                "--axis 0 without --block-size on 1-D data gives every value its own scale; "
                "hint: --block-size 32, or --npy with a 2-D array (per-channel scales)"
            )
            raise CliError(msg)
        if all(_is_block(f) for _, f in fmts):
            msg = "--axis applies to integer and float element formats; block formats: --block-axis"
            raise CliError(msg)
    if args.block_size is not None and all(_is_block(f) for _, f in fmts):
        msg = "--block-size applies to integer and float element formats; block formats have their own"
        raise CliError(msg)
    records, errors = run_comparison(
        data, fmts, axis=axis, block_size=args.block_size, clip_sigmas=args.clip_sigmas,
        rounding=rounding, seed=args.seed, progress=not args.no_progress, block_axis=block_axis,
    )  # fmt: skip
    how = "absmax" if args.clip_sigmas is None else f"{args.clip_sigmas:g} sigma"
    gran = _granularity_text(axis, args.block_size)
    blocks = [n for n, f in fmts if _is_block(f)]
    shape = next(iter(data.values())).shape
    setup = (
        f"{'x'.join(map(str, shape))} values per data set{note}; element formats: {gran} "
        f"{how} scaling"
        + (
            f"; {', '.join(blocks)}: own block scales along "
            + ("the last axis" if block_axis == ndim - 1 else f"axis {block_axis}")
            if blocks
            else ""
        )
        + ("" if rounding is None else f"; rounding {rounding.name.lower()}")
    )
    if plot is not None:
        from qemu_arrays.plotting import plot_comparison

        plot_comparison(records, errors, plot, title=setup)

    def text():
        print(setup)
        print(_table(_compare_rows(records), _COMPARE_HEAD))
        best = max(records, key=lambda r: r["sqnr_db"])
        print(f"\nhighest SQNR: {best['format']} on {best['data']} ({best['sqnr_db']:.2f} dB)")
        if plot is not None:
            print(f"SQNR bars and error histograms written to {plot}")

    _emit(args, records, text, {"setup": setup, "plot": None if plot is None else str(plot)})
    return 0


# ---- the catalogue ---------------------------------------------------------------------------


def _specials_text(fmt) -> str:
    from qemu_arrays.formats.spec import IntFormat

    if isinstance(fmt, IntFormat):
        return "narrow" if fmt.narrow_range else "-"
    parts = []
    parts.append("inf" if fmt.has_inf else "")
    parts.append("nan" if fmt.has_nan else "")
    parts.append("-0" if fmt.has_negative_zero else "")
    parts.append("" if fmt.subnormals else "no-sub")
    parts.append("" if fmt.has_zero else "no-zero")
    return ",".join(p for p in parts if p) or "finite"


KINDS = ("all", "float", "int", "block")


def _format_record(name, fmt) -> dict:
    import qemu_arrays as qa

    if _is_block(fmt):
        return {"name": name, "kind": "block", "element": fmt.element.name,
                "scale": fmt.scale.name, "block_size": fmt.block_size,
                "tensor_scale": bool(fmt.tensor_scale), "bits_per_value": fmt.bits_per_value}  # fmt: skip
    if isinstance(fmt, qa.IntFormat):
        return {"name": name, "kind": "int", "bits": fmt.bits, "signed": fmt.signed,
                "min": fmt.min, "max": fmt.max, "specials": _specials_text(fmt)}  # fmt: skip
    return {"name": name, "kind": "float", "bits": fmt.bits,
            "layout": f"e{fmt.exponent_bits}m{fmt.mantissa_bits}", "bias": fmt.bias,
            "max": float(fmt.max), "smallest_normal": float(fmt.smallest_normal),
            "smallest_subnormal": float(fmt.smallest_subnormal), "eps": float(fmt.eps),
            "specials": _specials_text(fmt)}  # fmt: skip


def cmd_formats(args) -> int:
    import qemu_arrays as qa

    if args.kind not in KINDS:
        raise unknown(args.kind, KINDS, "kind")
    records = []
    for name in qa.list_formats():
        fmt = qa.get_format(name)
        if name != fmt.name:  # an alias (half, single, e8m0): listed under its own name
            continue
        rec = _format_record(name, fmt)
        if args.kind in ("all", rec["kind"]):
            records.append(rec)

    def text():
        rows = [
            (r["name"], r["layout"], r["bits"], _fmt_num(r["max"]), _fmt_num(r["smallest_normal"]),
             _fmt_num(r["smallest_subnormal"]), _fmt_num(r["eps"]), r["specials"])
            if r["kind"] == "float" else
            (r["name"], "int", r["bits"], r["max"], 1, 1, 1, r["specials"])
            for r in records if r["kind"] != "block"
        ]  # fmt: skip
        blocks = [(r["name"], r["element"], r["scale"], r["block_size"],
                   f"{r['bits_per_value']:g}") for r in records if r["kind"] == "block"]  # fmt: skip
        if rows:
            head = ("name", "layout", "bits", "max", "min normal", "min subnormal", "eps",
                    "specials")  # fmt: skip
            print(_table(rows, head))
        if blocks:
            print()
            print(_table(blocks, ("block format", "element", "scale", "block", "bits/value")))
        print(f"\n{len(records)} formats; details: qemu-arrays info NAME")

    _emit(args, records, text)
    return 0


def _binades(fmt):
    """(exponent, values in the binade, spacing) of the positive values of a float format; the
    spacing is the step to the next value (the lowest binade of subnormals included)."""
    from qemu_arrays.testing.strategies import format_values

    vals = format_values(fmt)
    pos = vals[vals > 0]
    if pos.size < 2:
        return vals, pos, []
    gaps = np.append(np.diff(pos), np.diff(pos)[-1])
    exps = np.floor(np.log2(pos)).astype(int)
    out = []
    for e in np.unique(exps):
        inb = exps == e
        out.append((int(e), int(inb.sum()), float(gaps[inb][0])))
    return vals, pos, out


def _info_record(fmt) -> dict:
    import qemu_arrays as qa

    rec = {"name": fmt.name, "repr": repr(fmt)}
    if _is_block(fmt):
        el, sc = fmt.element, fmt.scale
        emax = (
            float(el.max)
            if isinstance(el, qa.FloatFormat)
            else el.max * 2.0**-fmt.element_fraction_bits
        )
        emin = (float(el.smallest_subnormal) if isinstance(el, qa.FloatFormat)
                else 2.0**-fmt.element_fraction_bits)  # fmt: skip
        smin = float(sc.smallest_subnormal if sc.has_zero and sc.subnormals else sc.smallest_normal)
        rec.update(kind="block", element=el.name, scale=sc.name, block_size=fmt.block_size,
                   bits_per_value=fmt.bits_per_value, tensor_scale=bool(fmt.tensor_scale),
                   element_max=emax, element_min_positive=emin, scale_max=float(sc.max),
                   scale_min_positive=smin, largest_value=emax * float(sc.max),
                   smallest_positive_value=emin * smin)  # fmt: skip
        return rec
    rec.update(kind="int" if isinstance(fmt, qa.IntFormat) else "float", bits=fmt.bits,
               max=fmt.max, min=fmt.min)  # fmt: skip
    if isinstance(fmt, qa.FloatFormat):
        rec.update(smallest_normal=float(fmt.smallest_normal),
                   smallest_subnormal=float(fmt.smallest_subnormal), eps=float(fmt.eps),
                   emin=fmt.emin, emax=fmt.emax, bias=fmt.bias, has_inf=fmt.has_inf,
                   has_nan=fmt.has_nan, has_negative_zero=fmt.has_negative_zero,
                   specials=fmt.specials.name)  # fmt: skip
    return rec


def _element_text(fmt):
    from qemu_arrays.formats.spec import FloatFormat

    rows = [("bits", fmt.bits), ("max", _fmt_num(fmt.max)), ("min", _fmt_num(fmt.min))]
    if isinstance(fmt, FloatFormat):
        rows += [
            ("smallest normal", _fmt_num(fmt.smallest_normal)),
            ("smallest subnormal", _fmt_num(fmt.smallest_subnormal)),
            ("eps", _fmt_num(fmt.eps)),
            ("emin / emax", f"{fmt.emin} / {fmt.emax}"),
            ("bias", fmt.bias),
            ("inf / NaN / -0", f"{fmt.has_inf} / {fmt.has_nan} / {fmt.has_negative_zero}"),
            ("specials", fmt.specials.name),
        ]
    print(_table(rows, ("property", "value")))
    if fmt.bits > 16:
        return
    vals, pos, binades = _binades(fmt)
    shown = ", ".join(_fmt_num(v) for v in pos[:8])
    print(
        f"\n{vals.size} finite values; smallest positive: {shown}{', ...' if pos.size > 8 else ''}"
    )
    if isinstance(fmt, FloatFormat) and binades:
        step = max(1, len(binades) // 12)
        rows = [(f"2^{e}", n, _fmt_num(g)) for e, n, g in binades[::step]]
        print(_table(rows, ("binade", "values", "spacing")))


def cmd_info(args) -> int:
    fmt = _get_format(args.name)
    plot = _check_plot_path(args.plot)
    rec = _info_record(fmt)
    element = fmt.element if _is_block(fmt) else fmt
    if rec["kind"] != "block" and fmt.bits <= 16:
        _, _, binades = _binades(fmt)
        if binades and rec["kind"] == "float":
            rec["binades"] = [{"exponent": e, "values": n, "spacing": g} for e, n, g in binades]
    if plot is not None:
        from qemu_arrays.plotting import plot_value_grid

        plot_value_grid(fmt, plot)

    def text():
        print(repr(fmt))
        if _is_block(fmt):
            print(f"  element format: {fmt.element!r}")
            print(f"  scale format:   {fmt.scale!r}")
            ts = ", times a float32 per-tensor scale" if fmt.tensor_scale else ""
            print(f"  block size {fmt.block_size}, {fmt.bits_per_value:g} bits per value{ts}")
            print(
                f"  a block holds +-{_fmt_num(rec['element_max'])} x its scale; scales "
                f"{_fmt_num(rec['scale_min_positive'])} ... {_fmt_num(rec['scale_max'])}: values "
                f"{_fmt_num(rec['smallest_positive_value'])} ... {_fmt_num(rec['largest_value'])}"
                + (" before the tensor scale" if fmt.tensor_scale else "")
            )
            print(f"\nelement format {element.name}:")
        _element_text(element)
        if plot is not None:
            print(f"\nvalue grid written to {plot}")

    records = [{"property": k, "value": v} for k, v in rec.items() if k != "binades"]
    _emit(args, records, text, {"format": rec, "plot": None if plot is None else str(plot)})
    return 0


def _format_from_toml(path):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        msg = (
            "reading a TOML format file needs Python 3.11+ (tomllib); on 3.10 describe the format "
            "with --exponent-bits/--mantissa-bits/... instead"
        )
        raise CliError(msg) from None
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        msg = f"cannot read {str(path)!r}: {exc.strerror or exc}"
        raise CliError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{str(path)!r} is not valid TOML: {exc}"
        raise CliError(msg) from None
    table = doc.get("format", doc)
    if not isinstance(table, dict):
        msg = f"{str(path)!r}: [format] must be a table"
        raise CliError(msg)
    return _build_format(table, f"{path}")


_FLOAT_KEYS = {"exponent_bits", "mantissa_bits", "bias", "signed", "subnormals", "has_zero",
               "specials", "name"}  # fmt: skip
_INT_KEYS = {"bits", "signed", "narrow_range", "name"}


def _build_format(table: dict, where: str):
    from qemu_arrays.formats.spec import FloatFormat, IntFormat, Specials

    table = dict(table)
    kind = table.pop("kind", "int" if "bits" in table else "float")
    allowed = _FLOAT_KEYS if kind == "float" else _INT_KEYS if kind == "int" else None
    if allowed is None:
        msg = f"{where}: kind must be 'float' or 'int', got {kind!r}"
        raise CliError(msg)
    unknown = sorted(set(table) - allowed)
    if unknown:
        msg = f"{where}: unknown key(s) {', '.join(unknown)} for a {kind} format; allowed: " + (
            ", ".join(sorted(allowed))
        )
        raise CliError(msg)
    if kind == "float" and "specials" in table:
        sp = str(table["specials"]).upper()
        if sp not in Specials.__members__:
            msg = f"{where}: specials must be one of {', '.join(Specials.__members__)}, got {sp!r}"
            raise CliError(msg)
        table["specials"] = Specials[sp]
    try:
        return FloatFormat(**table) if kind == "float" else IntFormat(**table)
    except (TypeError, ValueError) as exc:
        msg_0 = f"{where}: {exc}"
        raise CliError(msg_0) from None


def cmd_check_format(args) -> int:
    from qemu_arrays.formats.spec import FloatFormat, IntFormat, Specials
    from qemu_arrays.testing import check_format

    given = [args.name is not None, args.toml is not None, args.exponent_bits is not None,
             args.int_bits is not None]  # fmt: skip
    if sum(given) != 1:
        msg = (
            "describe exactly one format: NAME, --toml FILE, --exponent-bits/--mantissa-bits "
            "(float) or --int-bits (integer)"
        )
        raise CliError(msg)
    note = ""
    if args.name is not None:
        fmt = _get_format(args.name)
        if not isinstance(fmt, (FloatFormat, IntFormat)):
            note = f"{fmt.name} is a block format: checking its element format {fmt.element.name}"
            fmt = fmt.element
    elif args.toml is not None:
        fmt = _format_from_toml(args.toml)
    elif args.int_bits is not None:
        fmt = _build_format(
            {"bits": args.int_bits, "signed": not args.unsigned, "narrow_range": args.narrow},
            "command line",
        )
    else:
        if args.mantissa_bits is None:
            msg = "--exponent-bits needs --mantissa-bits too"
            raise CliError(msg)
        if args.specials.upper() not in Specials.__members__:
            close = suggest(args.specials.upper(), list(Specials.__members__), 3)
            msg = (
                f"--specials: specials must be one of {', '.join(Specials.__members__)}, got "
                f"{args.specials!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
            )
            raise CliError(msg)
        table = {
            "exponent_bits": args.exponent_bits,
            "mantissa_bits": args.mantissa_bits,
            "bias": args.bias,
            "specials": args.specials,
            "signed": not args.unsigned,
            "subnormals": not args.no_subnormals,
            "has_zero": not args.no_zero,
        }
        fmt = _build_format(table, "command line")
    opts = {"stochastic_trials": 2000 if args.quick else 20_000}
    if args.quick:
        opts["max_values"] = 4096
    if isinstance(fmt, IntFormat):
        opts["scale"] = args.scale
    report = check_format(fmt, **opts)
    records = [{"property": p, "status": "passed", "detail": ""} for p in report.passed]
    records += [{"property": f.property, "status": "failed", "detail": str(f)}
                for f in report.failures]  # fmt: skip
    records += [{"property": p, "status": "skipped", "detail": why}
                for p, why in report.skipped.items()]  # fmt: skip

    def text():
        if note:
            print(note)
        print(repr(fmt))
        print(report.summary())
        if report.ok:
            print(f"all {len(report.passed)} properties hold")

    _emit(args, records, text, {"format": repr(fmt), "ok": report.ok, "note": note})
    return 0 if report.ok else 1


# experiment name -> "module:function" (run(full=False, out_dir=..., progress=True) -> dict)
EXPERIMENTS = {
    "estimator-equivalence": "qemu_arrays.experiments.estimator_equivalence:run",
    "linreg-int-vs-fp": "qemu_arrays.experiments.linreg_int_vs_fp:run",
    "ste-density": "qemu_arrays.experiments.ste:run_density",
    "ste-bitwidth": "qemu_arrays.experiments.ste:run_bitwidth",
    "ste-range": "qemu_arrays.experiments.ste:run_range",
    "ste-joint": "qemu_arrays.experiments.ste:run_joint",
    "ste-plateau": "qemu_arrays.experiments.ste:run_plateau",
    "ste-stability": "qemu_arrays.experiments.ste:run_stability",
    "linreg-sites": "qemu_arrays.experiments.linreg_sites:run",
}


def available_experiments() -> dict[str, str]:
    """The registry entries whose module exists (found without importing it)."""
    out = {}
    for name, target in EXPERIMENTS.items():
        module = target.partition(":")[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            out[name] = target
    return out


def _summarise(value, depth=0) -> str:
    if isinstance(value, dict):
        items = list(value.items())[:12]
        return "\n".join(
            f"{'  ' * depth}{k}: {_summarise(v, depth + 1).lstrip()}" for k, v in items
        )
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"[{len(value)} items]"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, float):
        return _fmt_num(value)
    return str(value)[:100]


def cmd_reproduce(args) -> int:
    avail = available_experiments()
    if args.name not in avail:
        names = ", ".join(sorted(avail)) or "none installed"
        raise unknown(args.name, sorted(avail), "experiment", f"(available: {names})")
    module, _, func = avail[args.name].partition(":")
    run = getattr(importlib.import_module(module), func)
    out_dir = Path(args.out) if args.out else Path("results") / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"reproducing {args.name} ({'full' if args.full else 'quick'} settings) into {out_dir}")
    kwargs = {"full": args.full, "out_dir": out_dir, "progress": not args.no_progress}
    if getattr(args, "dataset", None) is not None:
        if args.name != "estimator-equivalence":
            msg = (
                f"--dataset applies to estimator-equivalence only, not {args.name!r}; hint: drop "
                "--dataset"
            )
            raise CliError(msg)
        from qemu_arrays.experiments.estimator_equivalence import DatasetKind

        kwargs["dataset"] = DatasetKind(args.dataset)
    result = run(**kwargs)
    claims = result.get("claims", []) if isinstance(result, dict) else []
    if isinstance(result, dict) and result:
        print(_summarise({k: v for k, v in result.items() if k != "claims"}))
    if claims:
        from qemu_arrays.experiments.claims import claim_lines, claims_hold

        print("\nclaims (what the paper says | what this run measured | the test):")
        for line in claim_lines(claims):
            print(f"  {line}")
        held = sum(bool(c["holds"] if isinstance(c, dict) else c.holds) for c in claims)
        print(
            f"{held} of {len(claims)} claim(s) hold"
            + ("" if claims_hold(claims) else " (see FAILS)")
        )
    files = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    print(f"\n{len(files)} file(s) in {out_dir}: {', '.join(files[:10])}")
    return 0


def _bench_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "benchmarks"


def cmd_bench(args) -> int:
    bdir = Path(args.dir) if args.dir else _bench_dir()
    scripts = sorted(bdir.glob("bench_*.py")) if bdir.is_dir() else []
    if args.script:
        wanted = {s if s.startswith("bench_") else f"bench_{s}" for s in args.script.split(",")}
        wanted = {w.removesuffix(".py") for w in wanted}
        missing = sorted(wanted - {p.stem for p in scripts})
        if missing:
            have = [p.stem for p in scripts]
            close = [c for m in missing for c in suggest(m, have, 3)]
            hint = f"did you mean {', '.join(dict.fromkeys(close))}? " if close else ""
            msg = f"no benchmark script {', '.join(missing)} in {bdir}; {hint}available: " + (
                ", ".join(have) or "none"
            )
            raise CliError(msg)
        scripts = [p for p in scripts if p.stem in wanted]
    if not scripts:
        msg = f"no benchmarks/bench_*.py scripts found in {bdir}; hint: run from a source checkout"
        raise CliError(msg)
    status = 0
    for script in scripts:
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        done = subprocess.run(cmd, check=False, timeout=args.timeout)
        if done.returncode:
            print(f"{script.name} exited with status {done.returncode}", file=sys.stderr)
            status = 1
    return status


# ---- qat -------------------------------------------------------------------------------------

QAT_FORMATS = "int8,float8_e4m3fn,int4,float4_e2m1fn,mxfp4_e2m1,nvfp4"
_QAT_HEAD = ["kind", "weights", "activations", "gradients", "test acc", "step ms", "x float32"]


def _qat_configs(text: str, activations: str, gradients: str) -> list:
    """``W[:A[:G]]`` items; a missing A/G takes --activations/--gradients (``same``: W's
    format, ``none``: not quantized). Every name is checked before training starts."""
    from qemu_arrays.experiments.qat_digits import QatConfig

    def pick(name, weights):
        name = name.strip()
        if name.lower() == "none":
            return None
        name = weights if name.lower() == "same" else name
        _get_format(name)
        return name

    out = []
    for item in (t for t in text.split(",") if t.strip()):
        parts = item.split(":")
        if len(parts) > 3:
            msg = f"--formats item {item!r}: at most WEIGHTS:ACTIVATIONS:GRADIENTS"
            raise CliError(msg)
        w = parts[0].strip()
        _get_format(w)
        a = pick(parts[1] if len(parts) > 1 else activations, w)
        g = pick(parts[2] if len(parts) > 2 else gradients, w)
        out.append(QatConfig(w, a, g))
    if not out:
        msg = f"--formats is empty; hint: --formats {QAT_FORMATS}"
        raise CliError(msg)
    return out


def cmd_qat(args) -> int:
    _check_positive("--steps", args.steps, int)
    _check_positive("--batch", args.batch, int)
    configs = _qat_configs(args.formats, args.activations, args.gradients)
    plot = _check_plot_path(args.plot)
    try:
        from qemu_arrays.experiments.qat_digits import run_qat

        records = run_qat(configs, steps=args.steps, batch=args.batch, seed=args.seed,
                          progress=lambda it, n, d: _progress(it, n, d, not args.no_progress))  # fmt: skip
    except ImportError as exc:
        msg = f"{exc}; hint: pip install 'qemu-arrays[torch,sklearn]'"
        raise CliError(msg) from None

    def text():
        print(f"qemu_arrays qat: digits MLP 64-64-10, Adam, {args.steps} steps of {args.batch}; "
              "test accuracy on 397 held-out images, time per training step (one thread)")  # fmt: skip
        rows = [[r["kind"], r["weights"], r["activations"], r["gradients"],
                 f"{r['test_accuracy']:.3f}", f"{r['step_ms']:.2f}", f"{r['step_ratio']:.1f}"]
                for r in records]  # fmt: skip
        print(_table(rows, _QAT_HEAD))

    _emit(args, records, text, {"steps": args.steps, "batch": args.batch, "seed": args.seed})
    if plot is not None:
        from qemu_arrays.plotting import plot_qat

        plot_qat(records, plot)
        print(f"wrote {plot}", file=sys.stderr)


def cmd_warmup(args) -> int:
    import time

    from qemu_arrays import cli_warmup

    names = [n.strip() for n in args.formats.split(",") if n.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not names or not dtypes:
        msg = "--formats and --dtypes each need at least one name; hint: --formats nvfp4"
        raise CliError(msg)
    fmts = [_get_format(n) for n in names]
    for d in dtypes:
        if d not in cli_warmup.DTYPES:
            raise unknown(
                d, cli_warmup.DTYPES, "dtype", f"(allowed: {', '.join(cli_warmup.DTYPES)})"
            )
    print(f"compiling the CPU kernels of {', '.join(names)} for {', '.join(dtypes)} input")
    start = time.perf_counter()
    cli_warmup.warmup(fmts, dtypes, report=lambda line: print(line, flush=True))
    print(f"done in {time.perf_counter() - start:.1f} s; cached in {cli_warmup.cache_dir()}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with the closest names added to an 'invalid choice' error."""

    def error(self, message):
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = [c.strip(" '\"") for c in m.group(2).split(",")]
            close = suggest(m.group(1), choices, 3)
            if close:
                message += f"; did you mean {', '.join(close)}?"
        super().error(message)


def cmd_gemm_error(args) -> int:
    from qemu_arrays import FloatFormat
    from qemu_arrays.cli_gemm import (
        gemm_error_rows,
        parse_accumulator,
        parse_order,
        plot_gemm_error,
    )

    plot = _check_plot_path(args.plot)
    fmt = _get_format(args.input)
    if not isinstance(fmt, FloatFormat):
        msg = f"--input must be a float element format (e.g. float8_e4m3fn), got {args.input!r}"
        raise CliError(msg)
    accs = [(t.strip(), parse_accumulator(t)) for t in args.accumulators.split(",") if t.strip()]
    orders = [(t.strip(), parse_order(t)) for t in args.orders.split(",") if t.strip()]
    try:
        ks = sorted({int(k) for k in args.k.split(",") if k.strip()})
    except ValueError:
        msg = f"--k must be comma-separated positive integers, got {args.k!r}"
        raise CliError(msg) from None
    if not ks or ks[0] < 1 or not accs or not orders:
        msg = "--k, --accumulators and --orders need at least one entry each (K >= 1)"
        raise CliError(msg)
    _check_positive("--m", args.m, int)
    _check_positive("--n", args.n, int)
    rows = gemm_error_rows(fmt.name, accs, orders, ks, m=args.m, n=args.n, seed=args.seed)
    setup = f"{args.m}xK @ Kx{args.n} Gaussian data in {fmt.name}, seed {args.seed}"
    if plot is not None:
        plot_gemm_error(rows, plot, title=f"GEMM error vs float64: {setup}")

    def text():
        print(setup)
        table = [[r["K"], r["accumulator"], r["order"], _fmt_num(r["max_abs_error"]),
                  _fmt_num(r["rel_error"])] for r in rows]  # fmt: skip
        print(_table(table, ["K", "accumulator", "order", "max |error|", "relative error"]))
        if plot is not None:
            print(f"error curves written to {plot}")

    _emit(args, rows, text, {"setup": setup, "plot": None if plot is None else str(plot)})
    return 0


def _add_output(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="print JSON instead of a table")
    g.add_argument("--csv", action="store_true", help="print CSV instead of a table")


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", help="compare formats on built-in data (error and SQNR)")
    d.add_argument("--n", type=int, default=1 << 16, help="samples per distribution")
    d.add_argument("--seed", type=int, default=0)
    _add_output(d)
    d.set_defaults(func=cmd_demo)


def _add_formats(sub) -> None:
    f = sub.add_parser("formats", help="the catalogue as a table (bits, max, smallest, eps)")
    f.add_argument("--kind", default="all", help="all (default), float, int or block")
    _add_output(f)
    f.set_defaults(func=cmd_formats)


def _add_info(sub) -> None:
    i = sub.add_parser("info", help="everything about one format, with its value grid")
    i.add_argument("name", help="a catalogue name, e.g. float8_e4m3fn, int8, mxfp4_e2m1, nvfp4")
    i.add_argument("--plot", metavar="PATH.png", help="write the value grid as a PNG")
    _add_output(i)
    i.set_defaults(func=cmd_info)


def _add_compare(sub) -> None:
    c = sub.add_parser(
        "compare",
        help="INT vs FP vs block formats: MSE, SQNR, max error, clipping per format",
        description="Quantize data into each format and report MSE, SQNR, max |error|, and the "
        "fraction of values clipped. Integer and float element formats are scaled per tensor "
        "(default), per channel (--axis K) or per group (--block-size B along --axis, default "
        "the last); block formats (mxfp8_e4m3, mxfp4_e2m1, nvfp4, ...) compute their own block "
        "scales along --block-axis (default the last).",
    )
    c.add_argument("--formats", default=",".join(COMPARE_FORMATS),
                   help=f"comma-separated names (default {','.join(COMPARE_FORMATS)})")  # fmt: skip
    c.add_argument("--data", default="all",
                   help=f"built-in distribution: all (default), {', '.join(DATA_SETS)}")  # fmt: skip
    c.add_argument("--npy", metavar="FILE.npy", help="your own data instead (any shape)")
    c.add_argument("--n", type=int, default=1 << 16, help="samples per built-in distribution")
    c.add_argument("--seed", type=int, default=0, help="data seed, and stochastic rounding's")
    c.add_argument("--axis", type=int, default=None,
                   help="element formats: one scale per index along this axis (per channel); "
                   "with --block-size, the axis the groups run along")  # fmt: skip
    c.add_argument("--block-axis", type=int, default=-1,
                   help="block formats: the axis their blocks run along (default -1, the last)")  # fmt: skip
    c.add_argument("--block-size", type=int, default=None,
                   help="one scale per group of this many values (element formats)")  # fmt: skip
    c.add_argument("--clip-sigmas", type=float, default=None,
                   help="scale so that this many standard deviations map to max (default absmax)")  # fmt: skip
    c.add_argument("--rounding", default=None,
                   help="nearest_even (default), nearest_away, toward_zero, up, down, to_odd, "
                   "stochastic (case-insensitive)")  # fmt: skip
    c.add_argument("--plot", metavar="PATH.png",
                   help="write SQNR bars and error histograms per format as a PNG")  # fmt: skip
    c.add_argument("--no-progress", action="store_true")
    _add_output(c)
    c.set_defaults(func=cmd_compare)


def _add_check_format(sub) -> None:
    k = sub.add_parser(
        "check-format",
        help="run the property battery on a format",
        description="Describe the format by NAME, by fields (--exponent-bits 3 --mantissa-bits 2 "
        "--bias 3 --specials FINITE), by --int-bits, or in a TOML file ([format] table with the "
        "FloatFormat/IntFormat fields; Python 3.11+). A block format name checks its element "
        "format. Exit status 1 if a property fails.",
    )
    k.add_argument("name", nargs="?", help="a catalogue name")
    k.add_argument("--toml", metavar="FILE", help="a TOML file with a [format] table")
    k.add_argument("--exponent-bits", type=int)
    k.add_argument("--mantissa-bits", type=int)
    k.add_argument("--bias", type=int, default=None, help="default: IEEE 2^(e-1)-1")
    k.add_argument("--specials", default="IEEE", help="IEEE, FN, FNUZ, FINITE or P3109")
    k.add_argument("--unsigned", action="store_true")
    k.add_argument("--no-subnormals", action="store_true")
    k.add_argument("--no-zero", action="store_true")
    k.add_argument("--int-bits", type=int, help="an integer format of this many bits")
    k.add_argument("--narrow", action="store_true", help="narrow-range integer format")
    k.add_argument("--scale", type=float, default=1.0, help="step of an integer format")
    k.add_argument("--quick", action="store_true", help="fewer samples (seconds, not tens)")
    _add_output(k)
    k.set_defaults(func=cmd_check_format)


def _add_reproduce(sub) -> None:
    names = ", ".join(sorted(available_experiments())) or "none installed"
    r = sub.add_parser(
        "reproduce",
        help="run a paper experiment",
        description=f"Run a paper reproduction. Available: {names}.",
    )
    r.add_argument("name", help=f"one of: {names}")
    r.add_argument("--full", action="store_true", help="the paper's sizes (slow)")
    r.add_argument("--out", metavar="DIR", help="output folder (default results/NAME)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--dataset",
        choices=("synthetic", "digits"),
        default=None,
        help="estimator-equivalence only: synthetic tasks (default) or scikit-learn's bundled "
        "digits (pip install 'qemu-arrays[sklearn]'; nothing is downloaded)",
    )
    r.set_defaults(func=cmd_reproduce)


def _add_bench(sub) -> None:
    b = sub.add_parser("bench", help="run the benchmark scripts in benchmarks/")
    b.add_argument("--quick", action="store_true", help="small sizes")
    b.add_argument("--script", help="comma-separated subset, e.g. cpu,blocks")
    b.add_argument("--dir", help=argparse.SUPPRESS)
    b.add_argument("--timeout", type=float, default=None, help=argparse.SUPPRESS)
    b.set_defaults(func=cmd_bench)


def _add_qat(sub) -> None:
    q = sub.add_parser(
        "qat",
        help="quantization-aware training on scikit-learn's digits, per format",
        description="Train the same small MLP on scikit-learn's bundled digits once in float32 "
        "and once per format (weights, activations, gradients quantized with per-tensor absmax "
        "scaling; block formats by their blocks), and print test accuracy and time per step. "
        "Needs torch and scikit-learn; nothing is downloaded.",
    )
    q.add_argument("--formats", default=QAT_FORMATS,
                   help="comma-separated WEIGHTS[:ACTIVATIONS[:GRADIENTS]] format names "
                   f"(default {QAT_FORMATS})")  # fmt: skip
    q.add_argument("--activations", default="none",
                   help="activation format where an item gives none: a name, 'same' (the "
                   "weights' format) or 'none' (default)")  # fmt: skip
    q.add_argument("--gradients", default="none",
                   help="gradient format where an item gives none: a name, 'same' or 'none'")  # fmt: skip
    q.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    q.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    q.add_argument("--seed", type=int, default=0, help="initial weights, batches, rounding")
    q.add_argument("--plot", metavar="PATH.png", help="write accuracy per format as a PNG")
    q.add_argument("--no-progress", action="store_true")
    _add_output(q)
    q.set_defaults(func=cmd_qat)


def _add_warmup(sub) -> None:
    from qemu_arrays.cli_warmup import COMMON_FORMATS

    w = sub.add_parser(
        "warmup",
        help="compile and cache the CPU kernels that formats need",
        description="Compile, and cache on disk, the numba CPU kernels that the named formats "
        "use (every operation and rounding mode, small and large arrays), so that later runs "
        "start without compiling. Kernels are shared: one format warms every format of its "
        "kind.",
    )
    w.add_argument("--formats", default=",".join(COMMON_FORMATS),
                   help=f"comma-separated names (default: {','.join(COMMON_FORMATS)})")  # fmt: skip
    w.add_argument("--dtypes", default="float32,float64",
                   help="input dtypes: float16, float32, float64 (default: float32,float64)")  # fmt: skip
    w.set_defaults(func=cmd_warmup)


def _add_gemm_error(sub) -> None:
    g = sub.add_parser(
        "gemm-error",
        help="the error of emulated GEMMs (accumulator, order) against float64 as K grows",
        description="Quantize built-in Gaussian matrices into --input, multiply them with "
        "qemu_arrays.matmul for each accumulator and order, and report the error against the "
        "float64 product of the same quantized values (the accumulation's error alone).",
    )
    g.add_argument("--input", default="float8_e4m3fn", help="input format (default e4m3)")
    g.add_argument("--accumulators", default="float32,e8m13,bfloat16,float16",
                   help="comma-separated: catalogue names, eXmY (e.g. e8m13, Hopper FP8's "
                   "accumulator width) or exact")  # fmt: skip
    g.add_argument("--orders", default="sequential,blocked128",
                   help="comma-separated: sequential, pairwise, blockedN (N products, then "
                   "promotion into float32)")  # fmt: skip
    g.add_argument("--k", default="64,256,1024,4096", help="comma-separated values of K")
    g.add_argument("--m", type=int, default=16, help="rows of the product")
    g.add_argument("--n", type=int, default=16, help="columns of the product")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--plot", metavar="PATH.png", help="write the error curves as a PNG")
    _add_output(g)
    g.set_defaults(func=cmd_gemm_error)


def build_parser() -> argparse.ArgumentParser:
    from qemu_arrays import __version__

    p = _Parser(
        prog="qemu-arrays",
        description="Hardware-faithful quantization emulator. Formats are catalogue names: "
        "element (float8_e4m3fn, int8, ...) and block (mxfp8_e4m3, nvfp4, ...) formats; "
        "`qemu-arrays formats` lists them.",
    )
    p.add_argument("--version", action="version", version=f"qemu-arrays {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_demo(sub)
    _add_formats(sub)
    _add_info(sub)
    _add_compare(sub)
    _add_check_format(sub)
    _add_reproduce(sub)
    _add_qat(sub)
    _add_bench(sub)
    _add_warmup(sub)
    _add_gemm_error(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2): return, not exit
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"qemu-arrays {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
