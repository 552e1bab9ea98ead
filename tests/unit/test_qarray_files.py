"""``qa.load`` of damaged and hostile files (issue 19): every file either loads as exactly what
was saved or raises ``ValueError`` saying what is wrong. Nothing in a file is executed or
unpickled, no forged header makes it allocate, and it never returns a wrong array."""

from __future__ import annotations

import builtins
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import qemu_arrays as qa

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

RNG = np.random.default_rng(19)
X = RNG.standard_normal((4, 40)).astype(np.float32)


def _saved():
    """One QArray of each storage layout and its bytes."""
    custom = qa.BlockFormat(element=qa.minifloat(3, 1), scale=qa.get_format("e8m0"),
                            block_size=8, scale_rule=qa.ScaleRule.RCEIL)  # fmt: skip
    out = {
        "float8": qa.asarray(X, "float8_e4m3fn"),
        "bf16-0d": qa.asarray(np.float32(1.5), "bfloat16"),
        "float32-empty": qa.asarray(np.zeros((0, 3), np.float32), "float32"),
        "int8-tensor": qa.asarray(X, "int8"),
        "int8-channel": qa.asarray(X, "int8", axis=0, scale_format="float16"),
        "int4-groups-asym": qa.asarray(X, "int4", block_size=16, symmetric=False)[:, 5:33],
        "uint8-zp": qa.asarray(X, "uint8", symmetric=False, axis=1),
        "mxfp4": qa.asarray(X, "mxfp4_e2m1"),
        "mxint8": qa.asarray(X, "mxint8"),
        "nvfp4": qa.asarray(X, "nvfp4"),
        "custom-block": qa.asarray(X[:, :20], custom),
        "fp6-packed": qa.asarray(X, "float6_e3m2fn"),
    }
    files = {}
    for name, q in out.items():
        b = io.BytesIO()
        q.save(b)
        files[name] = (q, b.getvalue())
    return files


SAVED = _saved()


def _same(r, q):
    """r is exactly q: format, layout, codes, scales, values."""
    assert r.format == q.format
    assert r.format.name == q.format.name
    assert r.shape == q.shape
    assert r.dtype == q.dtype
    assert (r.axis, r.block_size, r._block_offset) == (q.axis, q.block_size, q._block_offset)
    np.testing.assert_array_equal(r.codes, q.codes)
    for a, b in ((r.scales, q.scales), (r.zero_points, q.zero_points)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert (r.tensor_scale is None) == (q.tensor_scale is None)
    a, b = np.asarray(r), np.asarray(q)
    np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


def _load_or_refuse(data, q=None):
    """Load ``data``: it must load as ``q`` or raise ValueError (nothing else)."""
    try:
        r = qa.load(io.BytesIO(data))
    except ValueError as e:
        why = str(e)
        if "QArray file" not in why and "version" not in why:
            pytest.fail(f"load refused without saying the file is not a QArray file: {why}")
        return False
    assert q is not None, "a hostile file loaded"
    _same(r, q)
    return True


@pytest.mark.parametrize("name", sorted(SAVED))
def test_round_trip(name, tmp_path):
    q, data = SAVED[name]
    assert _load_or_refuse(data, q)
    q.save(tmp_path / "f")
    _same(qa.load(tmp_path / "f"), q)


@pytest.mark.parametrize("name", sorted(SAVED))
def test_every_truncation_is_refused(name):
    q, data = SAVED[name]
    step = max(1, len(data) // 97)
    for cut in range(0, len(data), step):
        assert not _load_or_refuse(data[:cut], q), cut


@pytest.mark.parametrize("name", sorted(SAVED))
def test_flipped_bytes_load_unchanged_or_are_refused(name):
    q, data = SAVED[name]

    @hypothesis.settings(max_examples=40, derandomize=True, deadline=None)
    @hypothesis.given(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)),
                               min_size=1, max_size=3))  # fmt: skip
    def check(flips):
        b = bytearray(data)
        for i, v in flips:
            b[i] ^= v
        _load_or_refuse(bytes(b), q)

    check()


# ---- hand-made hostile archives --------------------------------------------------------------


def _npy(arr=None, header=None, data=None):
    """.npy bytes of ``arr``, or of a forged ``header`` dict followed by ``data``."""
    f = io.BytesIO()
    if header is None:
        np.lib.format.write_array(f, np.asarray(arr), allow_pickle=True)
        return f.getvalue()
    np.lib.format.write_array_header_1_0(f, header)
    return f.getvalue() + data


def _zip(members: dict) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return b.getvalue()


def _parts(name):
    """The members of a saved file as arrays, and its metadata as a dict."""
    with np.load(io.BytesIO(SAVED[name][1]), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def _file(arrays, meta):
    members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
    members["meta.npy"] = _npy(np.array(json.dumps(meta)))
    return _zip(members)


class _Payload:
    """Pickled, it would run code on unpickling: set a flag on builtins."""

    def __reduce__(self):
        return (exec, ("import builtins; builtins.QA_PWNED = True",))


def _edit(name, change):
    arrays, meta = _parts(name)
    change(arrays, meta)
    return _file(arrays, meta)


def _set(key, value, where="meta"):
    def change(arrays, meta):
        (meta if where == "meta" else arrays)[key] = value

    return change


def _drop(key, where="meta"):
    def change(arrays, meta):
        (meta if where == "meta" else arrays).pop(key)

    return change


def _fmt(key, value):
    def change(arrays, meta):
        meta["format"][key] = value

    return change


HOSTILE = {
    # the metadata
    "version 2": ("float8", _set("version", 2)),
    "version str": ("float8", _set("version", "1")),
    "no meta keys": ("float8", lambda a, m: m.clear()),
    "extra key": ("float8", _set("evil", 1)),
    "missing axis": ("int8-channel", _drop("axis")),
    "shape negative": ("float8", _set("shape", [-4, 40])),
    "shape str": ("float8", _set("shape", "4,40")),
    "shape too big": ("float8", _set("shape", [4, 41])),
    "shape too small": ("float8", _set("shape", [4, 39])),
    "shape huge": ("float8", _set("shape", [10**12])),
    "dtype int": ("float8", _set("dtype", "int32")),
    "dtype object": ("float8", _set("dtype", "object")),
    "axis out of range": ("int8-channel", _set("axis", 5)),
    "axis float": ("int8-channel", _set("axis", 0.0)),
    "axis bool": ("int8-channel", _set("axis", True)),
    "block_size 0": ("int4-groups-asym", _set("block_size", 0)),
    "block_offset big": ("int4-groups-asym", _set("block_offset", 99)),
    "block_offset null": ("int4-groups-asym", _set("block_offset", None)),
    "tensor scale negative": ("nvfp4", _set("tensor_scale", -1.0)),
    "tensor scale missing": ("nvfp4", _set("tensor_scale", None)),
    "tensor scale str": ("nvfp4", _set("tensor_scale", "1")),
    "tensor scale on mx": ("mxfp4", _set("tensor_scale", 1.0)),
    "scale_format int": (
        "int8-channel",
        _set(
            "scale_format",
            {"type": "int", "bits": 8, "signed": True, "narrow_range": False, "name": "int8"},
        ),
    ),  # fmt: skip
    "scale_format str": ("int8-channel", _set("scale_format", "float16")),
    "format str": ("float8", _set("format", "float8_e4m3fn")),
    "format type": ("float8", _fmt("type", "evil")),
    "format extra key": ("float8", _fmt("evil", 1)),
    "format bias huge": ("float8", _fmt("bias", 2**63)),
    "format specials": ("float8", _fmt("specials", "__class__")),
    "format name list": ("float8", _fmt("name", ["x"])),
    "format bits 99": ("int8-tensor", _fmt("bits", 99)),
    "block element int32": ("mxint8", lambda a, m: m["format"]["element"].update(bits=32)),
    "block rule": ("mxfp4", _fmt("scale_rule", "EVIL")),
    "format bits changed": ("float8", _fmt("mantissa_bits", 2)),
    # the arrays
    "no packed": ("float8", _drop("packed", "arrays")),
    "packed float": ("float8", lambda a, m: a.update(packed=a["packed"].astype(np.float32))),
    "packed 2-D": ("float8", lambda a, m: a.update(packed=a["packed"].reshape(4, 40))),
    "packed short": ("fp6-packed", lambda a, m: a.update(packed=a["packed"][:-1])),
    "packed long": ("int4-groups-asym", lambda a, m: a.update(packed=np.r_[a["packed"], 0])),
    "narrow code": ("mxint8", lambda a, m: a.update(packed=np.full_like(a["packed"], 0x80))),
    "scales missing": ("int8-channel", _drop("scales", "arrays")),
    "scales row 0 only": (
        "int4-groups-asym",
        lambda a, m: a.update(scales=a["scales"][:1]),
    ),  # fmt: skip
    "scales and zero points row 0 only": (
        "int4-groups-asym",
        lambda a, m: a.update(scales=a["scales"][:1], zero_points=a["zero_points"][:1]),
    ),  # fmt: skip
    "scales transposed": ("int8-channel", lambda a, m: a.update(scales=a["scales"].T)),
    "scales transposed, no zero points": (
        "int8-channel",
        lambda a, m: (a.update(scales=a["scales"].T), a.pop("zero_points")),
    ),  # fmt: skip
    "scales negative": ("int8-channel", lambda a, m: a.update(scales=-a["scales"])),
    "scales nan": ("int8-tensor", lambda a, m: a.update(scales=np.array(np.nan))),
    "scales int": ("int8-tensor", lambda a, m: a.update(scales=np.array(1, np.int64))),
    "scales off scale_format": (
        "int8-channel",
        lambda a, m: a.update(scales=a["scales"] * (1 + 2**-20)),
    ),
    "block scales float": ("mxfp4", lambda a, m: a.update(scales=a["scales"].astype(float))),
    "block scales 3-D": ("mxfp4", lambda a, m: a.update(scales=a["scales"][..., None])),
    "block scale codes on float": ("float8", _set("scales", np.zeros(4, np.uint8), "arrays")),
    "zero points float": (
        "uint8-zp",
        lambda a, m: a.update(zero_points=a["zero_points"].astype(np.float64) + 0.5),
    ),  # fmt: skip
    "zero points out": ("uint8-zp", lambda a, m: a.update(zero_points=a["zero_points"] + 300)),
    "zero points on blocks": ("mxfp4", _set("zero_points", np.zeros(4, np.int64), "arrays")),
    "extra member": ("float8", _set("evil", np.zeros(3), "arrays")),
    "object scales": (
        "int8-tensor",
        _set("scales", np.array([_Payload()], dtype=object), "arrays"),
    ),  # fmt: skip
    "object packed": ("float8", _set("packed", np.array([_Payload()], dtype=object), "arrays")),
    "structured packed": ("float8", _set("packed", np.zeros(3, dtype=[("a", "u1")]), "arrays")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(case):
    base, change = HOSTILE[case]
    data = _edit(base, change)
    assert not _load_or_refuse(data)
    assert not hasattr(builtins, "QA_PWNED")


def test_the_version_key_is_optional_but_bounded():
    """Files written before the metadata had a version are version 1."""
    q = SAVED["int8-channel"][0]
    assert _load_or_refuse(_edit("int8-channel", _drop("version")), q)
    with pytest.raises(ValueError, match="metadata version is 7.*upgrade"):
        qa.load(io.BytesIO(_edit("int8-channel", _set("version", 7))))


def test_forged_headers_allocate_nothing():
    """A .npy header claiming 10**12 elements over a few bytes is refused before reading."""
    arrays, meta = _parts("float8")
    meta["shape"] = [10**12]
    forged = _npy(header={"descr": "|u1", "fortran_order": False, "shape": (10**12,)},
                  data=b"\x00" * 16)  # fmt: skip
    data = _zip({"packed.npy": forged, "meta.npy": _npy(np.array(json.dumps(meta)))})
    with pytest.raises(ValueError, match="declares shape"):
        qa.load(io.BytesIO(data))


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04", b"\x00" * 64, pickle.dumps(_Payload()), pickle.dumps(np.ones(3)),
     _npy(np.ones(3)), _npy(np.array([_Payload()], dtype=object)), b"not a file at all",
     _zip({}), _zip({"meta.npy": b"\x93NUMPY garbage"})],
    ids=["empty", "zip-magic", "zeros", "pickle-payload", "pickle-array", "npy", "npy-object",
         "text", "empty-zip", "bad-member"],
)  # fmt: skip
def test_other_files_are_refused(data):
    with pytest.raises(ValueError, match="not a valid QArray file"):
        qa.load(io.BytesIO(data))
    assert not hasattr(builtins, "QA_PWNED")


def test_meta_with_non_finite_numbers_is_refused():
    arrays, meta = _parts("nvfp4")
    text = json.dumps(meta).replace(json.dumps(meta["tensor_scale"]), "NaN", 1)
    members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
    members["meta.npy"] = _npy(np.array(text))
    with pytest.raises(ValueError, match="non-finite"):
        qa.load(io.BytesIO(_zip(members)))


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        qa.load(tmp_path / "nothing.npz")
