"""The named formats and the factories for format families.

Names follow ml_dtypes' grammar (``float8_e4m3fn``: 8 bits, 4 exponent bits, 3 mantissa bits,
``fn`` finite with NaN, ``fnuz`` finite with unsigned zero, ``b11`` a non-IEEE bias, a trailing
``u`` unsigned). Block formats (MX, NVFP4) register themselves here through
:func:`register` when their module is imported, so this module stays free of them.
"""

from __future__ import annotations

import difflib

from qemu_arrays.formats.block_spec import BlockFormat
from qemu_arrays.formats.spec import FloatFormat, IntFormat, Specials

__all__ = ["ML_DTYPES_NAMES", "get_format", "list_formats", "minifloat", "p3109", "register"]

#: The catalogue's float formats that ml_dtypes also has, under the same names.
ML_DTYPES_NAMES = (
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e4m3b11fnuz",
    "float8_e4m3",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e3m4",
    "float8_e8m0fnu",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float4_e2m1fn",
    "bfloat16",
)


def minifloat(
    exponent_bits: int,
    mantissa_bits: int,
    *,
    bias: int | None = None,
    specials: Specials = Specials.FINITE,
    signed: bool = True,
    subnormals: bool = True,
    name: str = "",
) -> FloatFormat:
    """A small float format; by default finite-only with subnormals, like OCP FP6/FP4."""
    return FloatFormat(
        exponent_bits=exponent_bits,
        mantissa_bits=mantissa_bits,
        bias=bias,  # type: ignore[arg-type]  # None: the IEEE bias (FloatFormat's default)
        specials=specials,
        signed=signed,
        subnormals=subnormals,
        name=name,
    )


def p3109(k: int, p: int, *, extended: bool = True) -> FloatFormat:
    """The IEEE P3109 signed format ``binary{k}p{p}``: k bits, precision p.

    Bias ``2**(k - p - 1)``, one NaN on the negative-zero code, no -0, subnormals; the
    *extended* domain has ±inf on the all-ones magnitude codes, the *finite* one has none.
    """
    for pname, val in (("k", k), ("p", p)):
        if isinstance(val, bool) or not isinstance(val, int):
            msg = f"{pname} must be an int, got {val!r}"
            raise TypeError(msg)
    if not 2 <= k <= 16:
        msg = f"k (total bits) must be in [2, 16], got {k}"
        raise ValueError(msg)
    if not 1 <= p <= k - 1:
        msg = f"p (precision) must be in [1, k - 1] = [1, {k - 1}], got {p}; hint: p counts the implicit bit"
        raise ValueError(msg)
    ebits = k - p
    suffix = "" if extended else "f"
    return FloatFormat(
        exponent_bits=ebits,
        mantissa_bits=p - 1,
        bias=1 << (k - p - 1),
        specials=Specials.P3109 if extended else Specials.FNUZ,
        name=f"binary{k}p{p}{suffix}",
    )


def _f(name, e, m, bias=None, specials=Specials.IEEE, **kw):
    return FloatFormat(
        exponent_bits=e, mantissa_bits=m, bias=bias, specials=specials, name=name, **kw
    )


_CATALOG: dict[str, object] = {}


def register(fmt, *aliases: str) -> None:
    """Add a format to the catalogue under its name (and aliases)."""
    for key in (fmt.name, *aliases):
        _CATALOG[key] = fmt


for _fmt in (
    _f("float8_e4m3fn", 4, 3, specials=Specials.FN),
    _f("float8_e4m3fnuz", 4, 3, bias=8, specials=Specials.FNUZ),
    _f("float8_e4m3b11fnuz", 4, 3, bias=11, specials=Specials.FNUZ),
    _f("float8_e4m3", 4, 3),
    _f("float8_e5m2", 5, 2),
    _f("float8_e5m2fnuz", 5, 2, bias=16, specials=Specials.FNUZ),
    _f("float8_e3m4", 3, 4),
    _f(
        "float8_e8m0fnu",
        8,
        0,
        specials=Specials.FN,
        signed=False,
        subnormals=False,
        has_zero=False,
    ),
    _f("float6_e2m3fn", 2, 3, specials=Specials.FINITE),
    _f("float6_e3m2fn", 3, 2, specials=Specials.FINITE),
    _f("float4_e2m1fn", 2, 1, specials=Specials.FINITE),
    _f("bfloat16", 8, 7),
    _f("float16", 5, 10),
    _f("float32", 8, 23),
    _f("float64", 11, 52),
    _f("tf32", 8, 10),
    IntFormat(bits=2),
    IntFormat(bits=4),
    IntFormat(bits=8),
    IntFormat(bits=16),
    IntFormat(bits=8, narrow_range=True),
    IntFormat(bits=4, narrow_range=True),
    IntFormat(bits=2, signed=False),
    IntFormat(bits=4, signed=False),
    IntFormat(bits=8, signed=False),
):
    register(_fmt)

register(_CATALOG["float16"], "half")
register(_CATALOG["float32"], "single")
register(_CATALOG["float8_e8m0fnu"], "e8m0")


def list_formats() -> list[str]:
    """All catalogue names, sorted (element and block formats)."""
    return sorted(_CATALOG)


def get_format(name):
    """Look up a format by name; descriptors pass through unchanged.

    Raises ``ValueError`` naming close matches for an unknown name.
    """
    if isinstance(name, (FloatFormat, IntFormat, BlockFormat)):
        return name
    if not isinstance(name, str):
        msg = (
            f"format must be a name (str) or a format descriptor, got {name!r} "
            f"({type(name).__name__}); hint: qemu_arrays.list_formats() lists the names"
        )
        raise TypeError(msg)
    key = name.strip().lower()
    if key.startswith("binary") and "p" in key[6:]:
        k, _, p = key[6:].rstrip("f").partition("p")
        if k.isdigit() and p.isdigit():
            return p3109(int(k), int(p), extended=not key.endswith("f"))
    if key in _CATALOG:
        return _CATALOG[key]
    close = difflib.get_close_matches(key, list(_CATALOG), n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see list_formats()"
    msg = f"unknown format name {name!r}; {hint}"
    raise ValueError(msg)


def _register_block_formats():
    """The OCP MX v1.0 formats and NVFP4."""
    e8m0 = get_format("float8_e8m0fnu")
    mx = (
        ("mxfp8_e4m3", "float8_e4m3fn"),
        ("mxfp8_e5m2", "float8_e5m2"),
        ("mxfp6_e2m3", "float6_e2m3fn"),
        ("mxfp6_e3m2", "float6_e3m2fn"),
        ("mxfp4_e2m1", "float4_e2m1fn"),
    )
    for name, elem in mx:
        register(BlockFormat(element=get_format(elem), scale=e8m0, block_size=32, name=name))
    # MXINT8: 8-bit two's complement read as 1.6 fixed point; symmetric [-127, 127] / 64 (the
    # -2 code 0x80 is never produced, as in the reference implementation microxcaling).
    register(
        BlockFormat(
            element=IntFormat(bits=8, narrow_range=True),
            scale=e8m0,
            block_size=32,
            element_fraction_bits=6,
            name="mxint8",
        )
    )
    register(
        BlockFormat(
            element=get_format("float4_e2m1fn"),
            scale=get_format("float8_e4m3fn"),
            block_size=16,
            tensor_scale=True,
            name="nvfp4",
        )
    )


_register_block_formats()
