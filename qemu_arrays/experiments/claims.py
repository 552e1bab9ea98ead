"""Claim lines: what a paper says, what a reproduction measured, and whether the claim holds.

Every reproduction (``qemu-arrays reproduce NAME``) returns a list of :class:`Claim` under the
key ``"claims"`` of its result dict and writes them into its JSON file; the command prints one
line per claim::

    [holds] 000 Fig. 3: plateau length grows with omega | measured: ... | predicted: ...

A claim is decided by an explicit test on measured numbers (``holds``), never by hand, so a
reproduction whose effect disappears (a wide initial law, omega held fixed, ...) reports
``[FAILS]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Claim", "claim_lines", "claims_hold"]


@dataclass(frozen=True)
class Claim:
    """One checked statement.

    ``source``: paper and figure/table (e.g. ``"000 Fig. 3"``); ``statement``: what the paper
    says; ``measured``: the numbers this run found; ``expected``: the theory or paper numbers and
    the test applied; ``holds``: the outcome of that test.
    """

    source: str
    statement: str
    measured: str
    expected: str
    holds: bool

    def line(self) -> str:
        tag = "holds" if self.holds else "FAILS"
        return (
            f"[{tag}] {self.source}: {self.statement} | measured: {self.measured} | {self.expected}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "holds": bool(self.holds), "line": self.line()}


def claim_lines(claims) -> list[str]:
    """The printed lines of a list of claims (dicts from JSON or :class:`Claim` objects)."""
    return [c.line() if isinstance(c, Claim) else str(c["line"]) for c in claims]


def claims_hold(claims) -> bool:
    """True when every claim holds (an empty list is not a reproduction: False)."""
    claims = list(claims)
    return bool(claims) and all(
        (c.holds if isinstance(c, Claim) else bool(c["holds"])) for c in claims
    )
