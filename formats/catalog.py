"""The named formats and the factories for format families.

Names follow ml_dtypes' grammar (``float8_e4m3fn``: 8 bits, 4 exponent bits, 3 mantissa bits,
``fn`` finite with NaN, ``fnuz`` finite with unsigned zero, ``b11`` a non-IEEE bias, a trailing
``u`` unsigned). Block formats (MX, NVFP4) register themselves here through
:func:`register` when their module is imported, so this module stays free of them.
"""

from __future__ import annotations

import difflib
import re

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
    ``k`` is in [3, 16] and ``p`` in [max(1, k - 11), k - 1]: the ``k - p`` exponent bits are at
    most 11 (float64's), and ``binary2p1`` has no finite non-zero value.
    """
    for pname, val in (("k", k), ("p", p), ("extended", extended)):
        want = bool if pname == "extended" else int
        if (want is int and isinstance(val, bool)) or not isinstance(val, want):
            msg = (
                f"{pname} must be {'a bool' if want is bool else 'an int'}, got {val!r}; hint: "
                "p3109(8, 3) is binary8p3"
            )
            raise TypeError(msg)
    if not 3 <= k <= 16:
        msg = (
            f"k (total bits) must be in [3, 16], got {k}; hint: binary8p3 is p3109(8, 3) "
            "(binary2p1 has no finite non-zero value)"
        )
        raise ValueError(msg)
    lo = max(1, k - 11)
    if not lo <= p <= k - 1:
        msg = (
            f"p (precision) must be in [{lo}, {k - 1}] for k={k}, got {p}; hint: p counts the "
            f"implicit bit, and the k - p exponent bits are at most 11 (float64's range)"
        )
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
_BUILTIN: frozenset[str] = frozenset()  # the names registered at import, set below


def _key(name: str) -> str:
    """The one normal form of a name, for lookup, registration and suggestions."""
    return name.strip().lower()


def _p3109_name(key: str):
    """``(k, p, extended)`` when ``key`` names a P3109 format (``binary8p3``, ``binary8p3f``)."""
    if key.startswith("binary") and "p" in key[6:]:
        k, _, p = key[6:].rstrip("f").partition("p")
        if k.isdigit() and p.isdigit():
            return int(k), int(p), not key.endswith("f")
    return None


def register(fmt, *aliases: str, replace: bool = False) -> None:
    """Add a format to the catalogue under its name (and aliases).

    Names are compared case-insensitively, without surrounding blanks (``"MyFmt"`` is found as
    ``"myfmt"`` too). A name already in the catalogue for another format, built-in names above
    all (``"float32"``, ``"nvfp4"``, ...), is refused unless ``replace=True``: replacing a
    built-in changes every format and result that uses it. Registering the same format again
    under its own names is allowed.
    """
    if not isinstance(fmt, (FloatFormat, IntFormat, BlockFormat)):
        msg = (
            f"fmt must be a FloatFormat, IntFormat or BlockFormat, got {fmt!r} "
            f"({type(fmt).__name__}); hint: qemu_arrays.minifloat(4, 3, name='e4m3')"
        )
        raise TypeError(msg)
    if not isinstance(replace, bool):
        msg = f"replace must be a bool, got {replace!r} ({type(replace).__name__}); hint: True"
        raise TypeError(msg)
    names = (fmt.name, *aliases)
    for name in names:
        if not isinstance(name, str):
            msg = (
                f"a format name or alias must be a str, got {name!r} ({type(name).__name__}); "
                "hint: register(fmt, 'alias')"
            )
            raise TypeError(msg)
        key = _key(name)
        if not key:
            msg = (
                f"a format name or alias must not be empty or blank, got {name!r}; hint: "
                "register(fmt, 'my-alias')"
            )
            raise ValueError(msg)
        if replace:
            continue
        family = _p3109_name(key)
        if family is not None:
            try:
                same = p3109(family[0], family[1], extended=family[2]) == fmt
            except ValueError:
                same = False
            if same:
                continue
            msg = (
                f"format name {name!r} is a built-in name (the P3109 family binary<k>p<p>), which "
                "must name that format; hint: choose another name"
            )
            raise ValueError(msg)
        old = _CATALOG.get(key)
        if old is not None and (old != fmt or old.name != fmt.name):
            what = "a built-in name" if key in _BUILTIN else "already registered"
            msg = (
                f"format name {name!r} is {what} (for {old!r}); a name must not be in use for "
                f"another format, registering {fmt.name!r} under it would change every use of "
                "that name; hint: choose another name, or pass replace=True"
            )
            raise ValueError(msg)
    for name in names:
        _CATALOG[_key(name)] = fmt


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
    # UE5M3 (ml_dtypes 0.7, AMD Quark fp8_e5m3): unsigned, bias 15, 0xFF the only NaN, max 114688
    _f("float8_e5m3fnu", 5, 3, specials=Specials.FN, signed=False),
    _f("float6_e2m3fn", 2, 3, specials=Specials.FINITE),
    _f("float6_e3m2fn", 3, 2, specials=Specials.FINITE),
    _f("float4_e2m1fn", 2, 1, specials=Specials.FINITE),
    _f("bfloat16", 8, 7),
    _f("float16", 5, 10),
    _f("float32", 8, 23),
    _f("float64", 11, 52),
    _f("tf32", 8, 10),
    IntFormat(bits=1),
    IntFormat(bits=2),
    IntFormat(bits=4),
    IntFormat(bits=8),
    IntFormat(bits=16),
    IntFormat(bits=8, narrow_range=True),
    IntFormat(bits=4, narrow_range=True),
    IntFormat(bits=1, signed=False),
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


def _shorthand_matches(key: str) -> list[str]:
    """Catalogue names for the shorthands other libraries and papers use: ``fp8`` / ``float8``
    (every 8-bit float, then the MX formats of that element width), ``fp4`` (and NVFP4),
    ``e4m3``, ``fp16``, ``bf16``, ``fp32``."""
    names = sorted(_CATALOG)
    m = re.fullmatch(r"(?:fp|float|f)(\d+)", key)
    if m:
        n = m.group(1)
        exact = [f for f in (f"float{n}",) if f in _CATALOG]
        return exact + [f for f in names if f.startswith((f"float{n}_", f"mxfp{n}_", f"nvfp{n}"))]
    m = re.fullmatch(r"(?:mx|nv)?(?:fp\d+_?)?(e\dm\d)\w*", key)
    if m:
        return [f for f in names if m.group(1) in f]
    return {"bf16": ["bfloat16"], "fp16": ["float16"], "half": ["float16"]}.get(key, [])


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
    key = _key(name)
    family = _p3109_name(key)
    if family is not None:
        k, p, extended = family
        return p3109(k, p, extended=extended)
    if key in _CATALOG:
        return _CATALOG[key]
    close = _shorthand_matches(key)
    close += [
        c for c in difflib.get_close_matches(key, list(_CATALOG), n=5, cutoff=0.5) if c not in close
    ]
    hint = f"did you mean {', '.join(map(repr, close[:10]))}?" if close else "see list_formats()"
    msg = (
        f"unknown format name {name!r}: format must be a name of list_formats(), "
        f"binary<k>p<p> or a format descriptor; hint: {hint}"
    )
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
    # the full-range option: OCP MX v1.0 defines the element as two's complement with an
    # implicit 2^-6, so 0x80 is -2.0 (gfloat, TOSA); round-to-nearest may produce it here
    register(
        BlockFormat(
            element=IntFormat(bits=8),
            scale=e8m0,
            block_size=32,
            element_fraction_bits=6,
            name="mxint8_full",
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
_BUILTIN = frozenset(_CATALOG)
