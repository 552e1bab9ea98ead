"""Generate the documentation figures (docs/figures/*.png) with the command line.

Each figure is one ``qemu-arrays`` command with ``--plot``; this script runs them in-process
through ``qemu_arrays.cli.main`` and fails if a command fails. Run it after changing the plots:

    python scripts/make_doc_figures.py                 # all figures into docs/figures/
    python scripts/make_doc_figures.py --only compare  # one figure
    python scripts/make_doc_figures.py --out /tmp/figs # elsewhere (tests do this)

The figures are committed: the site builds without matplotlib work at build time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def weights_npy(folder: Path) -> Path:
    """A (256, 512) weight matrix whose rows have ranges over two decades (outlier channels)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((256, 512)) * np.exp(rng.normal(0.0, 1.0, (256, 1)))
    path = folder / "weights.npy"
    np.save(path, w.astype(np.float32))
    return path


# figure name -> command line (``{out}``: the PNG, ``{weights}``: weights_npy())
FIGURES = {
    "compare": "compare --no-progress --plot {out}",
    "compare-weights": "compare --npy {weights} --axis 0 --formats "
    "int8,float8_e4m3fn,mxfp8_e4m3,int4,mxfp4_e2m1,nvfp4 --no-progress --plot {out}",
    "grid-int8": "info int8 --plot {out}",
    "grid-float8_e4m3fn": "info float8_e4m3fn --plot {out}",
    "grid-mxfp4_e2m1": "info mxfp4_e2m1 --plot {out}",
    "grid-nvfp4": "info nvfp4 --plot {out}",
    "gemm-error": "gemm-error --k 32,128,512,2048 --plot {out}",
    "qat": "qat --no-progress --formats int8:same:same,float8_e4m3fn:same:float8_e5m2,"
    "int4:int8:int8,float4_e2m1fn:float8_e4m3fn:float8_e5m2,mxfp4_e2m1:mxfp8_e4m3:mxfp8_e4m3,"
    "nvfp4:nvfp4:float8_e5m2 --plot {out}",
}


def main(argv=None) -> int:
    from qemu_arrays import cli

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "figures"), help="output folder")
    p.add_argument("--only", help=f"one of: {', '.join(FIGURES)}")
    args = p.parse_args(argv)
    if args.only and args.only not in FIGURES:
        p.error(f"--only must be one of {', '.join(FIGURES)}, got {args.only!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_npy(Path(tmp))
        for name, command in FIGURES.items():
            if args.only and name != args.only:
                continue
            png = out / f"{name}.png"
            argv_ = command.format(out=png, weights=weights).split()
            print(f"qemu-arrays {' '.join(argv_)}", flush=True)
            if cli.main(argv_) != 0:
                print(f"{name}: the command failed", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
