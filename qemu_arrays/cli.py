"""The ``qemu-arrays`` command.

Each subcommand is a function ``cmd_NAME(args) -> int`` registered in :func:`build_parser`;
heavy imports happen inside the subcommand. Subcommands: ``demo``, ``formats``, ``info``,
``compare``, ``check-format``, ``reproduce``, ``bench`` (see ``docs/cli.md``). Bad input exits
with status 2 and a one-line message on stderr; ``check-format`` exits 1 when a property fails.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

DEMO_FORMATS = ("int8", "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "bfloat16")


def builtin_samples(n: int = 1 << 16, seed: int = 0) -> dict[str, np.ndarray]:
    """The built-in data: Gaussian and heavy-tailed (Student-t, 3 dof) float32 samples."""
    rng = np.random.default_rng(seed)
    return {
        "gaussian": rng.standard_normal(n).astype(np.float32),
        "student-t(3)": rng.standard_t(3, n).astype(np.float32),
        "laplace": rng.laplace(size=n).astype(np.float32),
    }


def error_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MSE, SQNR (dB), max abs error and clipping rate of a quantization ``x -> y``."""
    x64 = x.astype(np.float64)
    err = y.astype(np.float64) - x64
    mse = float(np.mean(err**2))
    power = float(np.mean(x64**2))
    sqnr = float("inf") if mse == 0 else 10 * np.log10(power / mse)
    return {"mse": mse, "sqnr_db": sqnr, "max_abs_err": float(np.max(np.abs(err)))}


def quantize_for_comparison(x: np.ndarray, name: str) -> np.ndarray:
    """Per-tensor absmax scaling into the format's range, quantize, scale back.

    Integer formats get ``scale = absmax / max``; float formats are scaled so that ``absmax``
    maps to the format's max (as a per-tensor FP8 recipe does); bfloat16 is used as is.
    """
    import qemu_arrays as qa

    fmt = qa.get_format(name)
    amax = float(np.max(np.abs(x)))
    if isinstance(fmt, qa.IntFormat):
        return qa.quantize(x, fmt, scale=amax / fmt.max)
    if fmt.bits >= 16:
        return qa.quantize(x, fmt)
    s = np.float32(amax / fmt.max)
    return qa.quantize(x / s, fmt) * s


def _table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def cmd_demo(args) -> int:
    samples = builtin_samples(args.n, args.seed)
    rows = []
    for dist, x in samples.items():
        for name in DEMO_FORMATS:
            st = error_stats(x, quantize_for_comparison(x, name))
            rows.append(
                (dist, name, f"{st['mse']:.3e}", f"{st['sqnr_db']:.2f}", f"{st['max_abs_err']:.3e}")
            )
    print(f"qemu_arrays demo: {args.n} samples per distribution, per-tensor absmax scaling")
    print(_table(rows, ("distribution", "format", "MSE", "SQNR dB", "max |err|")))
    print(
        "\nint8 spends its codes uniformly: best on bounded data. FP formats keep relative"
        " precision: better on heavy tails."
    )
    return 0


class CliError(ValueError):
    """A user error: printed as one line, exit status 2."""


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


def _specials_text(fmt) -> str:
    from formats.spec import IntFormat

    if isinstance(fmt, IntFormat):
        return "narrow" if fmt.narrow_range else "-"
    parts = []
    parts.append("inf" if fmt.has_inf else "")
    parts.append("nan" if fmt.has_nan else "")
    parts.append("-0" if fmt.has_negative_zero else "")
    parts.append("" if fmt.subnormals else "no-sub")
    parts.append("" if fmt.has_zero else "no-zero")
    return ",".join(p for p in parts if p) or "finite"


def _load_block_formats() -> None:
    import contextlib

    with contextlib.suppress(ImportError):  # registers mxfp8_e4m3, nvfp4, ...
        importlib.import_module("formats.block_spec")


def cmd_formats(args) -> int:
    import qemu_arrays as qa
    from formats.spec import FloatFormat, IntFormat

    _load_block_formats()
    rows, blocks = [], []
    for name in qa.list_formats():
        fmt = qa.get_format(name)
        if name != fmt.name:  # an alias (half, single, e8m0): listed under its own name
            continue
        if isinstance(fmt, FloatFormat):
            if args.kind not in ("all", "float"):
                continue
            rows.append((
                name, f"e{fmt.exponent_bits}m{fmt.mantissa_bits}", fmt.bits, _fmt_num(fmt.max),
                _fmt_num(fmt.smallest_normal), _fmt_num(fmt.smallest_subnormal),
                _fmt_num(fmt.eps), _specials_text(fmt),
            ))  # fmt: skip
        elif isinstance(fmt, IntFormat):
            if args.kind not in ("all", "int"):
                continue
            rows.append((name, "int", fmt.bits, fmt.max, 1, 1, 1, _specials_text(fmt)))
        elif args.kind in ("all", "block"):
            blocks.append((
                name, fmt.element.name, fmt.scale.name, fmt.block_size,
                f"{fmt.bits_per_value:g}",
            ))  # fmt: skip
    if rows:
        head = ("name", "layout", "bits", "max", "min normal", "min subnormal", "eps", "specials")
        print(_table(rows, head))
    if blocks:
        print()
        print(_table(blocks, ("block format", "element", "scale", "block", "bits/value")))
    print(f"\n{len(rows) + len(blocks)} formats; details: qemu-arrays info NAME")
    return 0


def _get_format(name):
    import qemu_arrays as qa

    _load_block_formats()
    try:
        return qa.get_format(name)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_info(args) -> int:
    from formats.spec import FloatFormat, IntFormat

    fmt = _get_format(args.name)
    print(repr(fmt))
    if not isinstance(fmt, (FloatFormat, IntFormat)):
        print(f"  element format: {fmt.element!r}")
        print(f"  scale format:   {fmt.scale!r}")
        print(f"  block size {fmt.block_size}, {fmt.bits_per_value:g} bits per value")
        fmt = fmt.element
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
    if fmt.bits <= 16:
        from qemu_arrays.testing.strategies import format_values

        vals = format_values(fmt)
        pos = vals[vals > 0]
        shown = ", ".join(_fmt_num(v) for v in pos[:8])
        print(
            f"\n{vals.size} finite values; smallest positive: {shown}{', ...' if pos.size > 8 else ''}"
        )
        if isinstance(fmt, FloatFormat):
            print("binade  values/binade  spacing")
            exps = np.floor(np.log2(pos)).astype(int)
            for e in np.unique(exps)[:: max(1, len(np.unique(exps)) // 12)]:
                inb = pos[exps == e]
                step = np.diff(inb)[0] if inb.size > 1 else float("nan")
                print(f"  2^{e:<4d} {inb.size:>13d}  {_fmt_num(step)}")
    if args.plot:
        from qemu_arrays.plotting import plot_value_grid

        path = plot_value_grid(fmt, args.plot)
        print(f"\nvalue grid written to {path}")
    return 0


def _load_data(args) -> dict[str, np.ndarray]:
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
        arr = arr.astype(np.float32).reshape(-1)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            msg = f"{str(path)!r} holds no finite values"
            raise CliError(msg)
        return {path.name: arr}
    samples = builtin_samples(args.n, args.seed)
    if args.data == "all":
        return samples
    return {args.data: samples[args.data]}


def _scaled_quantize(x, fmt, clip_sigmas):
    """(quantized x, clipping rate): per-tensor scaling into the format, as in ``demo``; with
    ``clip_sigmas`` the scale maps ``clip_sigmas`` standard deviations to the format's max."""
    import qemu_arrays as qa

    amax = float(np.max(np.abs(x)))
    ref = amax if clip_sigmas is None else clip_sigmas * float(np.std(x))
    ref = ref if ref > 0 else 1.0
    if isinstance(fmt, qa.IntFormat):
        s = ref / fmt.max
        y = qa.quantize(x, fmt, scale=s)
        return y, float(np.mean(np.abs(x) > fmt.max * s))
    s = np.float32(1.0) if fmt.bits >= 16 and clip_sigmas is None else np.float32(ref / fmt.max)
    y = qa.quantize(x / s, fmt, overflow=qa.Overflow.SATURATE) * s
    return y, float(np.mean(np.abs(x / s) > fmt.max))


def cmd_compare(args) -> int:
    from formats.spec import FloatFormat, IntFormat

    names = [n.strip() for n in args.formats.split(",") if n.strip()]
    fmts = []
    for n in names:
        f = _get_format(n)
        if not isinstance(f, (FloatFormat, IntFormat)):
            msg = f"compare takes element formats, {n!r} is a block format; hint: use its element"
            raise CliError(msg)
        fmts.append((n, f))
    if not fmts:
        msg = "--formats must name at least one format, e.g. --formats int8,float8_e4m3fn"
        raise CliError(msg)
    if args.clip_sigmas is not None and not args.clip_sigmas > 0:
        msg = f"--clip-sigmas must be > 0, got {args.clip_sigmas}"
        raise CliError(msg)
    data = _load_data(args)
    rows, errors = [], {}
    jobs = [(d, x, n, f) for d, x in data.items() for n, f in fmts]
    for dist, x, name, fmt in _progress(jobs, len(jobs), "compare", not args.no_progress):
        y, clip = _scaled_quantize(x, fmt, args.clip_sigmas)
        st = error_stats(x, y)
        rows.append((
            dist, name, f"{st['mse']:.3e}", f"{st['sqnr_db']:.2f}", f"{st['max_abs_err']:.3e}",
            f"{100 * clip:.3f}%",
        ))  # fmt: skip
        errors[f"{name} on {dist}"] = y.astype(np.float64) - x.astype(np.float64)
    how = "absmax" if args.clip_sigmas is None else f"{args.clip_sigmas:g} sigma"
    n_values = next(iter(data.values())).size
    print(f"{n_values} values per data set, per-tensor {how} scaling")
    print(_table(rows, ("data", "format", "MSE", "SQNR dB", "max |err|", "clipped")))
    best = max(rows, key=lambda r: float(r[3]))
    print(f"\nhighest SQNR: {best[1]} on {best[0]} ({best[3]} dB)")
    if args.plot:
        from qemu_arrays.plotting import plot_error_distributions

        path = plot_error_distributions(errors, args.plot, title=f"errors, {how} scaling")
        print(f"error distributions written to {path}")
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
    from formats.spec import FloatFormat, IntFormat, Specials

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
    from formats.spec import FloatFormat, IntFormat
    from qemu_arrays.testing import check_format

    given = [args.name is not None, args.toml is not None, args.exponent_bits is not None,
             args.int_bits is not None]  # fmt: skip
    if sum(given) != 1:
        msg = (
            "describe exactly one format: NAME, --toml FILE, --exponent-bits/--mantissa-bits "
            "(float) or --int-bits (integer)"
        )
        raise CliError(msg)
    if args.name is not None:
        fmt = _get_format(args.name)
        if not isinstance(fmt, (FloatFormat, IntFormat)):
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
    print(repr(fmt))
    opts = {"stochastic_trials": 2000 if args.quick else 20_000}
    if args.quick:
        opts["max_values"] = 4096
    if isinstance(fmt, IntFormat):
        opts["scale"] = args.scale
    report = check_format(fmt, **opts)
    print(report.summary())
    if report.ok:
        print(f"all {len(report.passed)} properties hold")
        return 0
    return 1


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
        msg = f"unknown experiment {args.name!r}; available: {names}"
        raise CliError(msg)
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
            msg = f"no benchmark script {', '.join(missing)} in {bdir}; available: " + (
                ", ".join(p.stem for p in scripts) or "none"
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qemu-arrays", description="Hardware-faithful quantization emulator."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("demo", help="compare formats on built-in data (error and SQNR)")
    d.add_argument("--n", type=int, default=1 << 16, help="samples per distribution")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)

    f = sub.add_parser("formats", help="the catalogue as a table (bits, max, smallest, eps)")
    f.add_argument("--kind", choices=("all", "float", "int", "block"), default="all")
    f.set_defaults(func=cmd_formats)

    i = sub.add_parser("info", help="everything about one format, with its value grid")
    i.add_argument("name", help="a catalogue name, e.g. float8_e4m3fn, int8, mxfp4_e2m1")
    i.add_argument("--plot", metavar="PATH.png", help="write the value grid as a PNG")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("compare", help="INT vs FP: MSE, SQNR, max error, clipping per format")
    c.add_argument("--formats", default=",".join(DEMO_FORMATS), help="comma-separated names")
    c.add_argument("--data", choices=("all", "gaussian", "student-t(3)", "laplace"),
                   default="all", help="built-in distribution(s)")  # fmt: skip
    c.add_argument("--npy", metavar="FILE.npy", help="your own data instead (any shape)")
    c.add_argument("--n", type=int, default=1 << 16, help="samples per built-in distribution")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--clip-sigmas", type=float, default=None,
                   help="scale so that this many standard deviations map to max (default absmax)")  # fmt: skip
    c.add_argument("--plot", metavar="PATH.png", help="write the error distributions as a PNG")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_compare)

    k = sub.add_parser(
        "check-format",
        help="run the property battery on a format",
        description="Describe the format by NAME, by fields (--exponent-bits 3 --mantissa-bits 2 "
        "--bias 3 --specials FINITE), by --int-bits, or in a TOML file ([format] table with the "
        "FloatFormat/IntFormat fields; Python 3.11+). Exit status 1 if a property fails.",
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
    k.set_defaults(func=cmd_check_format)

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

    b = sub.add_parser("bench", help="run the benchmark scripts in benchmarks/")
    b.add_argument("--quick", action="store_true", help="small sizes")
    b.add_argument("--script", help="comma-separated subset, e.g. cpu,blocks")
    b.add_argument("--dir", help=argparse.SUPPRESS)
    b.add_argument("--timeout", type=float, default=None, help=argparse.SUPPRESS)
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2): return instead of exiting
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
