"""GPU benchmark of the numba-CUDA route (run on a machine with an NVIDIA GPU).

On 2**28 float32 elements held in a PyTorch CUDA tensor, times with CUDA events:

- a plain device-to-device copy of the array (the memory-bandwidth limit: one read, one write),
- PyTorch's own cast round trip ``x.to(torch.float8_e4m3fn).to(torch.float32)``,
- ``qemu_arrays.quantize`` to E4M3 (round-to-nearest-even), to E2M1 (nearest-even), and to E4M3
  with stochastic rounding,

and prints each time, the fraction of copy bandwidth reached and the speed-up over PyTorch's
cast. Targets (issue 4): >= 70% of copy bandwidth for nearest-even, >= 60% for stochastic.

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
    args = ap.parse_args(argv)

    import torch

    import qemu_arrays as qa

    if not torch.cuda.is_available():
        msg = "bench_gpu.py needs a CUDA GPU visible to PyTorch"
        raise SystemExit(msg)
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

    cases = {
        "copy (bandwidth limit)": lambda: y.copy_(x),
        "torch float8_e4m3fn cast round trip": lambda: x.to(torch.float8_e4m3fn).to(torch.float32),
        "qemu E4M3 nearest-even": lambda: qa.quantize(x, "float8_e4m3fn"),
        "qemu E2M1 nearest-even": lambda: qa.quantize(x, "float4_e2m1fn"),
        "qemu E4M3 stochastic": lambda: qa.quantize(
            x, "float8_e4m3fn", rounding=qa.Rounding.STOCHASTIC, seed=0
        ),
        "qemu E2M1 stochastic": lambda: qa.quantize(
            x, "float4_e2m1fn", rounding=qa.Rounding.STOCHASTIC, seed=0
        ),
    }
    t = {name: _time(fn, args.reps, torch) for name, fn in cases.items()}
    tc = t["copy (bandwidth limit)"]
    tt = t["torch float8_e4m3fn cast round trip"]
    print(f"{'case':40s} {'ms':>8s} {'GB/s':>8s} {'of copy':>8s} {'vs torch':>9s}")
    for name, ms in t.items():
        gbs = 2 * n * 4 / (ms * 1e-3) / 1e9
        print(f"{name:40s} {ms:8.3f} {gbs:8.0f} {tc / ms:8.1%} {tt / ms:8.2f}x")


if __name__ == "__main__":
    main()
