"""The five (six) places of an SGD step where a quantizer can sit.

Paper 002's update, with the parameter-gradient site added::

    w_t = w_{t-1} - γ · Q_g( (1/B) Q_d(X)ᵀ · Q_o( Q_a(Q_d(X) Q_p(w_{t-1})) - Q_l(y) ) )

``data`` (Q_d) acts on the minibatch features (the same quantized batch is used in the forward
and the backward product), ``labels`` (Q_l) on the targets, ``weights`` (Q_p) on the weights
inside the forward product only (a full-precision master copy is updated; the backward pass
multiplies by the weight quantizer's estimator derivative), ``activations`` (Q_a) on the
prediction, ``output_grad`` (Q_o) on the loss gradient with respect to the prediction (the
residual, up to sign), ``param_grad`` (Q_g) on the gradient with respect to the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from qemu_arrays.training.quantizers import QuantizerLike, as_quantizer

__all__ = ["SITE_NAMES", "Sites"]

SITE_NAMES = ("data", "labels", "weights", "activations", "output_grad", "param_grad")


@dataclass(frozen=True)
class Sites:
    """One quantizer per site; ``None`` (the default) means the identity.

    Anything :func:`~qemu_arrays.training.quantizers.as_quantizer` accepts may be given (a
    quantizer object, a float format name, a callable); the stored values are normalised.
    """

    data: QuantizerLike | None = None
    labels: QuantizerLike | None = None
    weights: QuantizerLike | None = None
    activations: QuantizerLike | None = None
    output_grad: QuantizerLike | None = None
    param_grad: QuantizerLike | None = None

    def __post_init__(self):
        for f in fields(self):
            try:
                q = as_quantizer(getattr(self, f.name))
            except (TypeError, ValueError) as exc:
                msg = f"site {f.name!r}: {exc}"
                raise type(exc)(msg) from None
            object.__setattr__(self, f.name, q)

    def replace(self, **changes) -> Sites:
        """A copy with some sites changed (names as in :data:`SITE_NAMES`)."""
        bad = sorted(set(changes) - set(SITE_NAMES))
        if bad:
            msg = f"unknown site(s) {bad}; allowed: {SITE_NAMES}"
            raise ValueError(msg)
        cur = {n: getattr(self, n) for n in SITE_NAMES}
        cur.update(changes)
        return Sites(**cur)

    @classmethod
    def coerce(cls, sites) -> Sites:
        """None -> all identity; a dict of site names -> Sites; a Sites as is."""
        if sites is None:
            return cls()
        if isinstance(sites, cls):
            return sites
        if isinstance(sites, dict):
            bad = sorted(set(sites) - set(SITE_NAMES))
            if bad:
                msg = f"sites has unknown key(s) {bad}; allowed: {SITE_NAMES}"
                raise ValueError(msg)
            return cls(**sites)
        msg = f"sites must be None, a dict or a Sites, got {type(sites).__name__}"
        raise TypeError(msg)

    def describe(self) -> dict[str, str]:
        return {n: getattr(self, n).name for n in SITE_NAMES}
