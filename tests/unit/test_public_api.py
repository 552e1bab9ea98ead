"""The public names of ``qemu_arrays``: exactly these, each importable and documented.

A name added to or removed from ``__all__`` is a change of the public API: this test says so, so
that the change is made on purpose (and the docs' API reference updated with it)."""

from __future__ import annotations

import inspect

import qemu_arrays as qa

PUBLIC = {
    "BlockFormat", "Encoded", "FloatFormat", "IntFormat", "Overflow", "QArray", "QuantSpec", "Rounding",
    "Route", "ScaleRule", "Specials", "__version__", "asarray", "compute_scale", "decode",
    "dot", "encode", "explain_route", "get_format", "list_formats", "load", "matmul",
    "minifloat", "p3109", "pack", "quantize", "register", "route", "unpack",
    "get_num_threads", "set_compile_notice", "set_num_threads",  # threads, compiles (issue 12)
}  # fmt: skip


def test_all_is_the_public_api():
    assert set(qa.__all__) == PUBLIC
    assert len(qa.__all__) == len(set(qa.__all__))


def test_every_public_name_resolves_and_is_documented():
    for name in qa.__all__:
        obj = getattr(qa, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        assert inspect.getdoc(obj), f"qemu_arrays.{name} has no docstring"


def test_the_operations_share_their_keywords():
    """quantize and encode take the same keywords (encode has no out=)."""
    q = set(inspect.signature(qa.quantize).parameters) - {"out"}
    e = set(inspect.signature(qa.encode).parameters)
    assert q == e
