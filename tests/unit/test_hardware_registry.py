"""The profile registry and the profiles' argument errors (issue 16)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qemu_arrays.hardware import Profile, list_profiles, profile


def test_every_profile_cites_sources_and_is_frozen():
    names = list_profiles()
    assert {"nvidia-sm100-cvt.rs", "amd-gfx942-cvt-sr", "intel-xe-srnd"} <= set(names)
    for name in names:
        p = profile(name)
        assert isinstance(p, Profile)
        assert p.sources
        assert p.confidence in ("tested", "documented", "inferred")
        assert name in p.describe()
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.name = "other"  # type: ignore[misc]


def test_unknown_profile_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean 'nvidia-sm100-cvt.rs'"):
        profile("nvidia-sm100-cvt")


@pytest.mark.parametrize(
    ("x", "kw", "exc", "match"),
    [
        (np.ones(4, np.float32), {"fmt": "float8_e4m3fnuz", "seed": 0}, ValueError, "allowed:"),
        (np.ones(4, np.float64), {"fmt": "float8_e4m3fn", "seed": 0}, TypeError, "reads float32"),
        (np.ones(4, np.float32), {"fmt": "float8_e4m3fn"}, ValueError, "needs an integer seed"),
        (np.ones(5, np.float32), {"fmt": "float8_e4m3fn", "rbits": np.zeros(1, np.uint32)},
         ValueError, "2 uint32 words"),
        (np.ones(4, np.float32), {"fmt": "float8_e4m3fn", "rbits": np.zeros(1, np.uint32),
                                  "seed": 1}, ValueError, "does not apply"),
    ],
)  # fmt: skip
def test_profile_quantize_errors(x, kw, exc, match):
    fmt = kw.pop("fmt")
    with pytest.raises(exc, match=match):
        profile("nvidia-sm100-cvt.rs").quantize(x, fmt, **kw)
