"""NVFP4 profiles (issue 16): torchao bit for bit; ModelOpt and Transformer Engine against vectors
computed from their code's float32 sequences (transcriptions: neither runs here).

torchao's parts on a deterministic input (integer arithmetic, no random generator) were probed
once with torchao 0.18.0 / torch 2.13.0 on CPU: ``nvfp4_quantize(x, 16,
per_tensor_amax_to_scale(max|x|))``, elements through ``f4_unpacked_to_f32(unpack_uint4(.))``,
scales as float32; the first 16 hex digits of the SHA-256 of their bytes are pinned.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from qemu_arrays.hardware import profile

TORCHAO_ELEMENTS, TORCHAO_SCALES = "a41305549ca30837", "2c489e9bf6eece5a"


def _inputs(rows=64, cols=64):
    i = np.arange(rows * cols, dtype=np.uint64)
    mant = ((i * np.uint64(2654435761)) % np.uint64(1 << 23)).astype(np.float64) / 2.0**23 + 1.0
    expo = ((i * np.uint64(7919)) % np.uint64(24)).astype(np.int64) - 12
    blk = (i // np.uint64(16)).astype(np.int64)
    expo = expo // 3 + (blk % 13) - 6
    sign = np.where(((i * np.uint64(40503)) >> np.uint64(7)) % np.uint64(2) == 0, 1.0, -1.0)
    return (sign * np.ldexp(mant, expo)).astype(np.float32).reshape(rows, cols)


def _digest(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, np.float32).reshape(-1).tobytes()).hexdigest()[
        :16
    ]


def test_torchao_nvfp4_bit_for_bit():
    parts = profile("torchao-nvfp4").quantize(_inputs())
    assert _digest(parts.elements) == TORCHAO_ELEMENTS
    assert _digest(parts.block_scales) == TORCHAO_SCALES
    assert parts.block_scales.shape == (64, 4)


def test_torchao_nvfp4_live():
    pytest.importorskip("torchao")
    torch = pytest.importorskip("torch")
    nv = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")
    kern = pytest.importorskip("torchao.prototype.mx_formats.kernels")
    x = _inputs(8, 64) * np.float32(3.7)
    x[7, :16] = np.float32(1e-4) * np.arange(1, 17, dtype=np.float32)  # a clamped tiny block
    ts = nv.per_tensor_amax_to_scale(torch.tensor(np.float32(np.max(np.abs(x)))))
    sc, dl = nv.nvfp4_quantize(torch.from_numpy(x.copy()), 16, ts)
    parts = profile("torchao-nvfp4").quantize(x)
    q = kern.f4_unpacked_to_f32(kern.unpack_uint4(dl)).numpy().reshape(x.shape)
    np.testing.assert_array_equal(parts.elements, q)
    np.testing.assert_array_equal(parts.block_scales, sc.to(torch.float32).numpy().reshape(8, 4))


# (tensor amax, block amax, x) as float32 bits, block [amax_b, x, 0, ...]: the E2M1 value of x in
# each stack, computed from each stack's float32 sequence (research notes of issue 16, section 6)
TIES = [
    (0x444B9A56, 0x414B9A57, 0x3F07BC3A, 0.0, 0.0, 0.5),
    (0x440CAD04, 0x400CAD04, 0x3DBB915C, 0.0, 0.5, 0.0),
    (0x4471DDFC, 0x43ACC321, 0x430FF7F1, 3.0, 2.0, 2.0),
    (0x439F6A0B, 0x431F6A0B, 0x4304D85F, 6.0, 6.0, 4.0),
    (0x442A086D, 0x4172E778, 0x410DB1B0, 4.0, 3.0, 4.0),
]


@pytest.mark.parametrize(("amax_t", "amax_b", "x", "torchao", "modelopt", "te"), TIES)
def test_stacks_move_ties_differently(amax_t, amax_b, x, torchao, modelopt, te):
    f = np.array([amax_t, amax_b, x], np.uint32).view(np.float32)
    block = np.zeros(16, np.float32)
    block[:2] = f[1:]
    for name, want in (("torchao-nvfp4", torchao), ("modelopt-nvfp4", modelopt),
                       ("transformer-engine-nvfp4", te)):  # fmt: skip
        assert profile(name).quantize(block, tensor_amax=f[0]).elements[1] == want, name


def test_tiny_block_scale_clamps():
    """Tiny blocks next to a 2688 block (tensor scale 1): torchao clamps the block scale at 2^-6,
    ModelOpt at 2^-9, Transformer Engine not at all (research notes, section 6)."""
    y = np.zeros((3, 16), np.float32)
    y[0, 0] = 2688.0
    y[1] = np.float32(1e-3) * np.arange(1, 17, dtype=np.float32)  # amax_b / 6 ~ 0.0027
    y[2] = np.float32(1e-4) * np.arange(1, 17, dtype=np.float32)  # amax_b / 6 ~ 0.00027
    got = {n: profile(n).quantize(y).block_scales[1:, 0].tolist()
           for n in ("torchao-nvfp4", "modelopt-nvfp4", "transformer-engine-nvfp4")}  # fmt: skip
    assert got["torchao-nvfp4"] == [2.0**-6, 2.0**-6]
    assert got["modelopt-nvfp4"] == [2.0**-9, 2.0**-9]
    assert got["transformer-engine-nvfp4"] == [2.0**-9, 0.0]  # rounds to 0: elements 0
    assert not profile("transformer-engine-nvfp4").quantize(y).values[2].any()


# Transformer Engine 4over6 (quantize_4over6_nvfp4.cuh, defaults E4M3 bound 256, MAE), worked by
# hand from the kernel's sequence for one block with amax_t = amax_b = 6: S_enc = 256 * 6 / 6 =
# 256, base = (6 / 6) * 256 = 256, map-6 scale E4M3(256) = 256 (reciprocal 1), map-4 scale
# E4M3(1.5 * 256) = 384 (reciprocal RN(1 / 1.5)); an error term is |RN(RN(q s) 6 / 1536) - x|.
# [6, 5 x 15]: map-6 gives [6, 4 ...] (5 ties to the even 4), error 15; map-4 gives
# RN(5 / 1.5) -> 3, value 3 * 384 / 256 = 4.5, error 15 * 0.5 = 7.5: map-4 wins.
# [6 x 16]: both errors 0, the tie keeps map-6. [6, 1 x 15]: exact on map-6; map-4 gives
# RN(1 / 1.5) -> 0.5, value 0.75, error 15 * 0.25: map-6 wins.
TE_4OVER6 = [
    ([6.0] + [5.0] * 15, 384.0, [6.0] + [4.5] * 15),
    ([6.0] * 16, 256.0, [6.0] * 16),
    ([-6.0] + [1.0] * 15, 256.0, [-6.0] + [1.0] * 15),
]


@pytest.mark.parametrize(("block", "scale", "values"), TE_4OVER6)
def test_transformer_engine_4over6_transcribed(block, scale, values):
    parts = profile("transformer-engine-4over6").quantize(np.array([block], np.float32))
    assert parts.block_scales.tolist() == [[scale]]
    assert parts.values.tolist() == [values]


def test_transformer_engine_4over6_block_scales_top_out_at_256_and_384():
    """With the E4M3 bound 256 the map-to-6 scale is at most 256 and map-to-4 at most 384; the
    mode differs from the standard kernel's sequence on ordinary data."""
    x = _inputs()
    four = profile("transformer-engine-4over6").quantize(x)
    sb = four.block_scales
    assert sb.max() <= 384.0
    assert np.isin(sb[sb > 256], [288.0, 320.0, 352.0, 384.0]).all()  # only map-to-4 passes 256
    std = profile("transformer-engine-nvfp4").quantize(x)
    err4 = np.abs(four.values.astype(np.float64) - x).sum()
    err6 = np.abs(std.values.astype(np.float64) - x).sum()
    assert err4 < err6  # picking the better candidate per block lowers the total error
