"""GPU benchmark of the numba-CUDA route (run on a machine with an NVIDIA GPU).

On 2**28 float32 elements held in a PyTorch CUDA tensor, times with CUDA events:

- a plain device-to-device copy of the array (the memory-bandwidth limit: one read, one write),
- PyTorch's own cast round trip ``x.to(torch.float8_e4m3fn).to(torch.float32)``,
- ``qemu_arrays.quantize`` to E4M3 and E2M1 (nearest-even: the 32-bit select-only kernel;
  stochastic: the general cores),
- the block formats: MXFP8 (E4M3 elements, blocks of 32 along the last axis, nearest-even and
  stochastic, and along axis 0 of a square view), ``encode`` to MXFP8, and NVFP4 (with the
  per-tensor scale computed, which adds a reduction pass and one scalar copy to the host, and
  with ``scale=`` given),

and prints each time, the fraction of copy bandwidth reached, the speed-up over PyTorch's cast
and, for block formats, the ratio to the plain E4M3 element round trip. Before timing it checks
that the results are PyTorch's bits (E4M3, saturating) and the CPU route's bits (a slice, every
block case). Targets (issue 4): >= 70% of copy bandwidth for nearest-even, >= 60% for stochastic.

Then ``qemu_arrays.matmul`` on the device (issue 17: one thread per output element, the general
rounding core for every addition, the exact sum in a wide integer accumulator) on 1024 x 1024 x
256 float32 tensors of E4M3 values, against ``torch.matmul`` in float32 (TF32 off) on the same
tensors, after checking 8 rows of each mode against the CPU route. (Not yet run on a GPU: the
matmul kernels are tested in the simulator.)

    python benchmarks/bench_gpu.py [--log2n 28] [--reps 20]
"""

from __future__ import annotations

import argparse
import statistics


def _time(fn, reps, torch):
    fn()  # warm-up (compiles the kernels on first use)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=28)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="2**22 elements, 5 repetitions")
    args = ap.parse_args(argv)
    if args.quick:
        args.log2n, args.reps = 22, 5

    import torch

    import qemu_arrays as qa

    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA GPU visible to PyTorch; nothing to time")
        return
    n = 1 << args.log2n
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, device="cuda", generator=g)  # N(0, 1): inside E2M1's range too
    y = torch.empty_like(x)
    gib = 2 * n * 4 / 2**30
    print(
        f"device: {torch.cuda.get_device_name()}; n = 2**{args.log2n} float32 ({gib:.1f} GiB moved)"
    )

    # correctness on the benchmark input: identical bits to PyTorch's E4M3 cast round trip
    ours = qa.quantize(x, "float8_e4m3fn", overflow=qa.Overflow.SATURATE)
    torch_rt = x.clamp(-448, 448).to(torch.float8_e4m3fn).to(torch.float32)
    same = bool(torch.equal(ours.view(torch.int32), torch_rt.view(torch.int32)))
    print(f"E4M3 (saturating) bits identical to PyTorch's cast: {same}")
    del ours, torch_rt

    # the block formats against the CPU route, on a slice (2**20 elements, 1024 x 1024)
    part = x[: 1 << 20]
    host = part.cpu().numpy()
    checks = {
        "mxfp8_e4m3 nearest-even": ("mxfp8_e4m3", {}),
        "mxfp8_e4m3 stochastic": ("mxfp8_e4m3", {"rounding": qa.Rounding.STOCHASTIC, "seed": 0}),
        "nvfp4 nearest-even": ("nvfp4", {}),
        "mxint8 axis 0": ("mxint8", {"axis": 0}),
    }
    for label, (name, kw) in checks.items():
        shaped = kw.get("axis") == 0
        dev = part.view(1024, 1024) if shaped else part
        ref = qa.quantize(host.reshape(1024, 1024) if shaped else host, name, **kw)
        got = qa.quantize(dev, name, **kw).cpu().numpy()
        same = bool((got.view("u4") == ref.view("u4")).all())
        print(f"{label}: bits identical to the CPU route: {same}")

    side = 1 << (args.log2n // 2)
    sq = x.view(side, -1)
    ts = qa.encode(x, "nvfp4").tensor_scale
    sr = {"rounding": qa.Rounding.STOCHASTIC, "seed": 0}
    cases = {
        "copy (bandwidth limit)": lambda: y.copy_(x),
        "torch float8_e4m3fn cast round trip": lambda: x.to(torch.float8_e4m3fn).to(torch.float32),
        "qemu E4M3 nearest-even": lambda: qa.quantize(x, "float8_e4m3fn"),
        "qemu E2M1 nearest-even": lambda: qa.quantize(x, "float4_e2m1fn"),
        "qemu E4M3 stochastic": lambda: qa.quantize(x, "float8_e4m3fn", **sr),
        "qemu E2M1 stochastic": lambda: qa.quantize(x, "float4_e2m1fn", **sr),
        "qemu MXFP8 nearest-even": lambda: qa.quantize(x, "mxfp8_e4m3"),
        "qemu MXFP8 stochastic": lambda: qa.quantize(x, "mxfp8_e4m3", **sr),
        "qemu MXFP8 nearest-even, axis 0": lambda: qa.quantize(sq, "mxfp8_e4m3", axis=0),
        "qemu MXFP8 encode": lambda: qa.encode(x, "mxfp8_e4m3"),
        "qemu NVFP4 nearest-even": lambda: qa.quantize(x, "nvfp4"),
        "qemu NVFP4 nearest-even, scale given": lambda: qa.quantize(x, "nvfp4", scale=ts),
        "qemu NVFP4 stochastic, scale given": lambda: qa.quantize(x, "nvfp4", scale=ts, **sr),
    }
    t = {name: _time(fn, args.reps, torch) for name, fn in cases.items()}
    tc = t["copy (bandwidth limit)"]
    tt = t["torch float8_e4m3fn cast round trip"]
    te = t["qemu E4M3 nearest-even"]
    print(
        f"{'case':40s} {'ms':>8s} {'GB/s':>8s} {'of copy':>8s} {'vs torch':>9s} "
        f"{'vs E4M3 elem':>12s}"
    )
    for name, ms in t.items():
        gbs = 2 * n * 4 / (ms * 1e-3) / 1e9
        blk = f"{ms / te:11.2f}x" if "MX" in name or "NV" in name else ""
        print(f"{name:40s} {ms:8.3f} {gbs:8.0f} {tc / ms:8.1%} {tt / ms:8.2f}x {blk:>12s}")

    _matmul_rows(torch, qa, args.reps)


def _matmul_rows(torch, qa, reps):
    """The device matmul (sequential and blocked modes) against torch.matmul in float32."""
    g = torch.Generator(device="cuda").manual_seed(1)
    a = qa.quantize(torch.randn(1024, 256, device="cuda", generator=g), "float8_e4m3fn")
    b = qa.quantize(torch.randn(256, 1024, device="cuda", generator=g), "float8_e4m3fn")
    e8m13 = qa.FloatFormat(exponent_bits=8, mantissa_bits=13, name="e8m13")
    sr = {"rounding": qa.Rounding.STOCHASTIC, "seed": 0}
    modes = {
        "float32 sequential": {"accumulator": "float32"},
        "bfloat16 sequential": {"accumulator": "bfloat16", "allow_narrow": True},
        "bfloat16 sequential stochastic": {"accumulator": "bfloat16", "allow_narrow": True, **sr},
        "e8m13 blocked 128 -> float32": {"accumulator": e8m13, "order": "blocked",
                                         "block_k": 128, "allow_narrow": True},
        "bfloat16 pairwise": {"accumulator": "bfloat16", "order": "pairwise",
                              "allow_narrow": True},
        "exact sum (accumulator=None)": {"accumulator": None},
    }  # fmt: skip
    ha, hb = a.cpu().numpy(), b.cpu().numpy()
    for label, kw in modes.items():
        got = qa.matmul(a[:8], b, **kw).cpu().numpy()
        same = bool((got.view("u4") == qa.matmul(ha[:8], hb, **kw).view("u4")).all())
        print(f"matmul {label}: bits identical to the CPU route (8 rows): {same}")
    torch.backends.cuda.matmul.allow_tf32 = False
    tt = _time(lambda: torch.matmul(a, b), reps, torch)
    print(f"{'matmul 1024 x 1024 x 256':40s} {'ms':>8s} {'vs torch fp32':>14s}")
    print(f"{'torch.matmul float32':40s} {tt:8.3f} {1.0:13.2f}x")
    for label, kw in modes.items():
        ms = _time(lambda kw=kw: qa.matmul(a, b, **kw), reps, torch)
        print(f"{'qemu ' + label:40s} {ms:8.3f} {ms / tt:13.1f}x")


if __name__ == "__main__":
    main()
