"""Limit equations of STE training of a quantized linear teacher-student model (paper 000).

Model (``NOTES_ste_dynamics.md`` sections 2-8): inputs ``x ~ N(0, I_d)``, teacher
``y = w*.x / sqrt(d) + sigma xi``, student ``y_hat = Q_w(w_hat).Q_x(x) / sqrt(d)``, online SGD with
the straight-through estimator on the latent weights ``w_hat``, time ``tau = t / d``.

What is here, all in plain numpy (no numba, nothing heavy at import):

* :class:`StepQuantizer` and :func:`uniform_quantizer`: the ``Q_{b, omega}`` grids A, M, D, C.
* :func:`input_constants`: ``kappa1 = E[z Q_x(z)]`` and ``kappa2 = E[Q_x(z)^2]`` in closed form.
* :func:`eps_g_from_order_parameters`: ``eps_g = (rho - 2 kappa1 m_Q + kappa2 q_Q) / 2``.
* :func:`solve_fokker_planck`: the Fokker-Planck PDE for ``mu_tau(w_hat | w*)`` (finite volumes,
  faces on the thresholds, Scharfetter-Gummel flux), coupled through ``eps_g(tau)``.
* :func:`particle_method`: the McKean-Vlasov interacting-particle solution (any STE variant).
* :func:`closed_ode`, :func:`isotropic_closure_ode`: the closed moment ODEs (full-precision
  weights; and the additive-noise closure for quantized weights, an approximation).
* :func:`fixed_point`, :func:`stability_boundary`, :func:`steady_state_eps_g`: long-time theory of
  the closed ODEs; :func:`gibbs_steady_state`: exact stationary law for quantized weights.
* :func:`small_eta_steady_state`, :func:`plateau_lengths`: the small-eta (fluid) limit.

The notes' open conventions (section 12) are named parameters of :class:`STESetting`, the most
literal reading being the default: grid ``"A"``, identity STE, ``eps_g`` with the 1/2 and without
the label noise, plain-SGD learning rate, L2 regulariser ``lambda/d`` per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from qemu_arrays.grids import Grid
from qemu_arrays.theory.kinds import (
    ErrorConvention,
    GridKind,
    LrConvention,
    SteVariant,
    coerce_kind,
)

__all__ = [
    "ErrorConvention",
    "GridKind",
    "LrConvention",
    "SteVariant",
    "FokkerPlanckResult",
    "GibbsResult",
    "OdeResult",
    "ParticleResult",
    "STESetting",
    "StepQuantizer",
    "closed_ode",
    "eps_g_from_order_parameters",
    "fixed_point",
    "gibbs_steady_state",
    "input_constants",
    "isotropic_closure_ode",
    "particle_method",
    "plateau_lengths",
    "report_error",
    "small_eta_steady_state",
    "solve_fokker_planck",
    "stability_boundary",
    "steady_state_eps_g",
    "uniform_quantizer",
]

GRIDS = tuple(g.value for g in GridKind)
STE_VARIANTS = tuple(v.value for v in SteVariant)
ERROR_CONVENTIONS = tuple(c.value for c in ErrorConvention)
LR_CONVENTIONS = tuple(c.value for c in LrConvention)


def _phi(z):
    return np.exp(-0.5 * np.square(z)) / math.sqrt(2.0 * math.pi)


def _cdf(z):
    from scipy.special import ndtr

    return ndtr(z)


# ---------------------------------------------------------------------------------------------
# quantizers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepQuantizer:
    """An odd step function: sorted ``levels``; the thresholds are the midpoints between them.

    ``omega`` is the range (the clip interval ``[-omega, omega]``), which the clipped STE uses.
    Calling it maps an array to the nearest level (a tie on a threshold goes to the lower level).
    """

    levels: tuple[float, ...]
    omega: float
    name: str = ""

    def __post_init__(self):
        lv = np.asarray(self.levels, dtype=np.float64)
        if lv.ndim != 1 or lv.size < 1 or not np.all(np.isfinite(lv)):
            msg = f"levels must be a non-empty 1-D sequence of finite numbers, got {self.levels!r}"
            raise ValueError(msg)
        if np.any(np.diff(lv) <= 0):
            msg = f"levels must be strictly increasing, got {self.levels!r}; hint: sort them"
            raise ValueError(msg)
        if not (math.isfinite(self.omega) and self.omega > 0):
            msg = f"omega must be a positive finite number, got {self.omega!r}"
            raise ValueError(msg)
        object.__setattr__(self, "levels", tuple(float(v) for v in lv))

    @property
    def level_array(self) -> np.ndarray:
        return np.asarray(self.levels, dtype=np.float64)

    @property
    def thresholds(self) -> np.ndarray:
        lv = self.level_array
        return 0.5 * (lv[1:] + lv[:-1])

    @property
    def jumps(self) -> np.ndarray:
        return np.diff(self.level_array)

    def bin_index(self, x) -> np.ndarray:
        return np.searchsorted(self.thresholds, x, side="left")

    def __call__(self, x) -> np.ndarray:
        return self.level_array[self.bin_index(np.asarray(x, dtype=np.float64))]

    def to_grid(self) -> Grid:
        """This quantizer's levels and range as the library's one :class:`~qemu_arrays.grids.Grid`
        (which the gradient estimators take as their ``format``)."""
        return Grid(self.level_array, name=self.name or "grid", omega=self.omega)


def uniform_quantizer(bits: int, omega: float, grid: GridKind = GridKind.A) -> StepQuantizer:
    """The uniform quantizer ``Q_{b, omega}`` on one of the notes' grids (section 2.3).

    ``GridKind.A`` (default, the most literal): 2^b levels ``-omega + k Delta``, endpoints
    included; ``M``: 2^b cell centres; ``D``: 2^b + 1 mid-tread levels incl. 0; ``C``: 2^b - 1
    mid-tread levels incl. 0. (The strings ``"A"`` ... still work, with a DeprecationWarning.)
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
        msg = f"bits must be an int >= 1, got {bits!r}"
        raise ValueError(msg)
    if not (isinstance(omega, (int, float, np.floating)) and math.isfinite(omega) and omega > 0):
        msg = f"omega must be a positive finite number, got {omega!r}"
        raise ValueError(msg)
    grid = coerce_kind(GridKind, grid, "grid", hint="GridKind.A is the literal 2^b-level grid")
    g = Grid.of_kind(int(bits), float(omega), grid)
    return StepQuantizer(levels=tuple(g.levels), omega=g.omega, name=g.name)


def as_step_quantizer(q, name: str = "quantizer") -> StepQuantizer | None:
    """``None`` (no quantization), a :class:`StepQuantizer`, or any object with ``levels``."""
    if q is None or isinstance(q, StepQuantizer):
        return q
    levels = getattr(q, "levels", None)
    if levels is not None:
        omega = getattr(q, "omega", None)
        lv = np.asarray(levels, dtype=np.float64)
        return StepQuantizer(levels=tuple(lv), omega=float(omega or np.max(np.abs(lv))))
    msg = (
        f"{name} must be None, a StepQuantizer or an object with a 'levels' attribute, got "
        f"{type(q).__name__}; hint: uniform_quantizer(bits, omega, grid)"
    )
    raise TypeError(msg)


def input_constants(q) -> tuple[float, float]:
    """``(kappa1, kappa2) = (E[z Q(z)], E[Q(z)^2])`` for ``z ~ N(0, 1)``; ``(1, 1)`` for None.

    Closed forms: ``kappa1 = sum_j J_j phi(t_j)``, ``kappa2 = sum_k q_k^2 [Phi(t_k) - Phi(t_{k-1})]``.
    """
    q = as_step_quantizer(q, "input quantizer")
    if q is None:
        return 1.0, 1.0
    t = q.thresholds
    lv = q.level_array
    k1 = float(np.sum(q.jumps * _phi(t)))
    cdf = np.concatenate([[0.0], _cdf(t), [1.0]])
    k2 = float(np.sum(lv**2 * np.diff(cdf)))
    return k1, k2


def eps_g_from_order_parameters(rho, m_q, q_q, kappa1=1.0, kappa2=1.0):
    """``eps_g = (rho - 2 kappa1 m_Q + kappa2 q_Q) / 2`` (exact at any d, notes section 3)."""
    return 0.5 * (np.asarray(rho) - 2 * kappa1 * np.asarray(m_q) + kappa2 * np.asarray(q_q))


def report_error(eps_g, sigma: float = 0.0, convention: ErrorConvention = ErrorConvention.HALF):
    """Convert ``eps_g`` (the notes' normalisation) to another convention (notes 12.4).

    ``HALF``: ``eps_g`` itself; ``FULL``: ``2 eps_g``; ``TEST_MSE``: ``2 eps_g + sigma^2``.
    """
    convention = coerce_kind(ErrorConvention, convention, "convention")
    e = np.asarray(eps_g, dtype=np.float64)
    if convention is ErrorConvention.HALF:
        return e
    if convention is ErrorConvention.FULL:
        return 2 * e
    return 2 * e + sigma**2


# ---------------------------------------------------------------------------------------------
# the setting
# ---------------------------------------------------------------------------------------------


def _teacher_arrays(teacher) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(teacher, (int, float, np.floating, np.integer)) and not isinstance(teacher, bool):
        return np.array([float(teacher)]), np.array([1.0])
    try:
        values, probs = teacher
        v = np.atleast_1d(np.asarray(values, dtype=np.float64))
        p = np.atleast_1d(np.asarray(probs, dtype=np.float64))
    except (TypeError, ValueError):
        v = p = None
    if v is None or v.shape != p.shape or v.ndim != 1 or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
        msg = (
            f"teacher must be a number (every w*_i equal) or (values, probabilities) with "
            f"probabilities summing to 1, got {teacher!r}; hint: teacher=1.0"
        )
        raise ValueError(msg)
    return v, p


@dataclass(frozen=True)
class STESetting:
    """One STE teacher-student setting; every derived quantity of the theory hangs off it.

    Parameters
    ----------
    eta, lam, sigma:
        learning rate, L2 strength (``lambda/d`` per step on the latent weights), label-noise std.
    weight_quantizer, input_quantizer:
        :class:`StepQuantizer` (see :func:`uniform_quantizer`) or ``None`` for full precision.
    teacher:
        the law P* of the teacher entries: a number (all equal; default 1) or (values, probs).
    init_mean, init_std:
        the initial law ``mu_0 = N(init_mean, init_std^2)`` of the latent weights.
    ste:
        ``SteVariant.IDENTITY`` (default, ``g = 1``) or ``SteVariant.CLIPPED``
        (``g = 1{|w| <= omega}``).
    error_convention:
        how results report the error: ``ErrorConvention.HALF`` (default, ``eps_g``), ``FULL`` or
        ``TEST_MSE`` (see :func:`report_error`). Internally everything uses ``eps_g``.
    lr_convention:
        ``LrConvention.SGD`` (default, ``w <- w - eta grad``) or ``HALF`` (the paper's eta is
        twice ours).

    The three enum fields also accept their old string values, with a DeprecationWarning.
    """

    eta: float
    weight_quantizer: StepQuantizer | None = None
    input_quantizer: StepQuantizer | None = None
    lam: float = 0.0
    sigma: float = 0.0
    teacher: object = 1.0
    init_mean: float = 0.0
    init_std: float = 1.0
    ste: SteVariant = SteVariant.IDENTITY
    error_convention: ErrorConvention = ErrorConvention.HALF
    lr_convention: LrConvention = LrConvention.SGD
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        for pname in ("eta", "lam", "sigma", "init_std"):
            val = getattr(self, pname)
            if isinstance(val, bool) or not isinstance(val, (int, float, np.floating, np.integer)):
                msg = f"{pname} must be a real number, got {val!r}"
                raise TypeError(msg)
            if not math.isfinite(val) or val < 0:
                msg = f"{pname} must be finite and >= 0, got {val!r}"
                raise ValueError(msg)
        if self.eta <= 0:
            msg = f"eta must be > 0, got {self.eta!r}"
            raise ValueError(msg)
        for pname, kind in (
            ("ste", SteVariant),
            ("error_convention", ErrorConvention),
            ("lr_convention", LrConvention),
        ):
            object.__setattr__(
                self, pname, coerce_kind(kind, getattr(self, pname), pname, stacklevel=5)
            )
        wq = as_step_quantizer(self.weight_quantizer, "weight_quantizer")
        xq = as_step_quantizer(self.input_quantizer, "input_quantizer")
        object.__setattr__(self, "weight_quantizer", wq)
        object.__setattr__(self, "input_quantizer", xq)
        if self.ste is SteVariant.CLIPPED and wq is None:
            msg = "ste=SteVariant.CLIPPED needs a weight_quantizer (its omega is the clip range)"
            raise ValueError(msg)
        v, p = _teacher_arrays(self.teacher)
        k1, k2 = input_constants(xq)
        self._derived.update(teacher_values=v, teacher_probs=p, kappa1=k1, kappa2=k2)

    # derived -------------------------------------------------------------------------------
    @property
    def eta_eff(self) -> float:
        """The learning rate of the notes' update rule (``eta`` or ``eta / 2``)."""
        return self.eta if self.lr_convention is LrConvention.SGD else 0.5 * self.eta

    @property
    def kappa1(self) -> float:
        return self._derived["kappa1"]

    @property
    def kappa2(self) -> float:
        return self._derived["kappa2"]

    @property
    def teacher_values(self) -> np.ndarray:
        return self._derived["teacher_values"].copy()

    @property
    def teacher_probs(self) -> np.ndarray:
        return self._derived["teacher_probs"].copy()

    @property
    def rho(self) -> float:
        return float(np.sum(self._derived["teacher_probs"] * self._derived["teacher_values"] ** 2))

    def qw(self, w) -> np.ndarray:
        """The deployed weights ``Q_w(w)`` (identity when weights are full precision)."""
        w = np.asarray(w, dtype=np.float64)
        return w.copy() if self.weight_quantizer is None else self.weight_quantizer(w)

    def qx(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x.copy() if self.input_quantizer is None else self.input_quantizer(x)

    def ste_factor(self, w) -> np.ndarray:
        """``g(w)``: 1 for the identity STE, ``1{|w| <= omega}`` for the clipped one."""
        w = np.asarray(w, dtype=np.float64)
        if self.ste is SteVariant.IDENTITY:
            return np.ones_like(w)
        return (np.abs(w) <= self.weight_quantizer.omega).astype(np.float64)

    def eps_g(self, m_q, q_q):
        return eps_g_from_order_parameters(self.rho, m_q, q_q, self.kappa1, self.kappa2)

    def report(self, eps_g):
        return report_error(eps_g, self.sigma, self.error_convention)

    def initial_eps_g(self) -> float:
        """``eps_g(0)`` under ``mu_0`` (notes 9.3), by exact Gaussian bin probabilities."""
        v, p = self._derived["teacher_values"], self._derived["teacher_probs"]
        mu, s = self.init_mean, self.init_std
        if self.weight_quantizer is None:
            m_q, q_q = mu * np.sum(p * v), mu**2 + s**2
        else:
            lv = self.weight_quantizer.level_array
            if s == 0:
                eq = float(self.weight_quantizer(mu))
                eq2 = eq**2
            else:
                z = (self.weight_quantizer.thresholds - mu) / s
                pr = np.diff(np.concatenate([[0.0], _cdf(z), [1.0]]))
                eq, eq2 = float(np.sum(pr * lv)), float(np.sum(pr * lv**2))
            m_q, q_q = eq * np.sum(p * v), eq2
        return float(self.eps_g(m_q, q_q))


# ---------------------------------------------------------------------------------------------
# closed ODEs (full-precision weights) and their long-time theory
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OdeResult:
    """Order parameters on the requested times: ``m = E[w* w]``, ``q = E[w^2]``, ``eps_g``."""

    tau: np.ndarray
    m: np.ndarray
    q: np.ndarray
    eps_g: np.ndarray


def _relax(rate: float, tau: np.ndarray) -> np.ndarray:
    """``int_0^tau exp(-rate (tau - s)) ds = (1 - exp(-rate tau)) / rate`` (-> tau at rate 0)."""
    x = rate * tau
    out = np.empty_like(tau)
    small = np.abs(x) < 1e-10
    out[small] = tau[small]
    out[~small] = -np.expm1(-x[~small]) / rate
    return out


def _moment_solution(setting: STESetting, taus, extra_noise: float = 0.0) -> OdeResult:
    tau = np.asarray(taus, dtype=np.float64)
    if tau.ndim != 1 or np.any(tau < 0):
        msg = f"taus must be a 1-D array of times >= 0, got shape {tau.shape}"
        raise ValueError(msg)
    eta, lam, k1, k2 = setting.eta_eff, setting.lam, setting.kappa1, setting.kappa2
    rho, s2 = setting.rho, setting.sigma**2 + extra_noise
    ebar = float(np.sum(setting.teacher_probs * setting.teacher_values))
    m0 = setting.init_mean * ebar
    q0 = setting.init_mean**2 + setting.init_std**2
    a = eta * (k2 + lam)
    m_star = k1 * rho / (k2 + lam)
    gamma = 2 * eta * (k2 + lam) - eta**2 * k2**2
    m = m_star + (m0 - m_star) * np.exp(-a * tau)
    # dq/dtau = -gamma q + b0 + b1 exp(-a tau)
    b0 = eta**2 * k2 * (rho + s2) + 2 * eta * k1 * (1 - eta * k2) * m_star
    b1 = 2 * eta * k1 * (1 - eta * k2) * (m0 - m_star)
    q = q0 * np.exp(-gamma * tau) + b0 * _relax(gamma, tau)
    q = q + b1 * np.exp(-a * tau) * _relax(gamma - a, tau)
    return OdeResult(tau=tau, m=m, q=q, eps_g=setting.eps_g(m, q))


def closed_ode(setting: STESetting, taus) -> OdeResult:
    """Exact solution of the closed moment ODEs (notes 6.1): full-precision weights only.

    ``dm/dtau = eta [kappa1 rho - (kappa2 + lam) m]``,
    ``dq/dtau = 2 eta [kappa1 m - (kappa2 + lam) q] + eta^2 kappa2 (rho - 2 kappa1 m + kappa2 q + sigma^2)``.
    """
    if setting.weight_quantizer is not None:
        msg = (
            "closed_ode needs full-precision weights (weight_quantizer=None), got "
            f"{setting.weight_quantizer.name or 'a StepQuantizer'}; hint: solve_fokker_planck for "
            "quantized weights, or isotropic_closure_ode for the additive-noise approximation"
        )
        raise ValueError(msg)
    return _moment_solution(setting, taus)


def isotropic_closure_ode(setting: STESetting, taus, delta2: float | None = None) -> OdeResult:
    """The additive-noise ("isotropic") closure for quantized weights (notes 6.2; approximate).

    ``Q_w(w) = w + zeta`` with ``Var(zeta) = delta2`` (default ``Delta^2 / 12``). Accurate only for
    fine grids (b >= 4 or so); it misses the bin dynamics. ``eps_g`` includes ``kappa2 delta2 / 2``.
    """
    wq = setting.weight_quantizer
    if delta2 is None:
        delta2 = 0.0 if wq is None else float(np.mean(wq.jumps) ** 2 / 12)
    k2 = setting.kappa2
    res = _moment_solution(
        STESetting(**{**_fields(setting), "weight_quantizer": None, "ste": SteVariant.IDENTITY}),
        taus,
        extra_noise=k2 * delta2,
    )
    return OdeResult(res.tau, res.m, res.q, res.eps_g + 0.5 * k2 * delta2)


def _fields(setting: STESetting) -> dict:
    names = [f.name for f in fields(setting) if f.init]
    return {n: getattr(setting, n) for n in names}


def stability_boundary(setting: STESetting) -> float:
    """Largest stable learning rate of the closed ODEs: ``2 (kappa2 + lam) / kappa2^2``.

    For ``lam = 0`` this is ``2 / sigma_psi^2`` with ``sigma_psi^2 = kappa2``; 2 unquantized.
    Expressed in the setting's ``lr_convention``.
    """
    k2 = setting.kappa2
    b = 2 * (k2 + setting.lam) / k2**2
    return b if setting.lr_convention is LrConvention.SGD else 2 * b


def fixed_point(setting: STESetting) -> tuple[float, float, float]:
    """``(m*, q*, eps_g*)`` of the closed ODEs; ``eps_g* = inf`` beyond the stability boundary."""
    eta, lam, k1, k2 = setting.eta_eff, setting.lam, setting.kappa1, setting.kappa2
    rho, s2 = setting.rho, setting.sigma**2
    m_star = k1 * rho / (k2 + lam)
    den = 2 * (k2 + lam) - eta * k2**2
    if den <= 0:
        return m_star, math.inf, math.inf
    q_star = (2 * k1 * m_star + eta * k2 * (rho - 2 * k1 * m_star + s2)) / den
    return m_star, q_star, float(setting.eps_g(m_star, q_star))


def steady_state_eps_g(setting: STESetting) -> float:
    """Steady-state ``eps_g*`` of the closed ODEs (inf when unstable).

    For ``lam = 0``: ``[2 rho (1 - kappa1^2/kappa2) + eta kappa2 sigma^2] / [2 (2 - eta kappa2)]``.
    """
    return fixed_point(setting)[2]


# ---------------------------------------------------------------------------------------------
# Fokker-Planck PDE
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FokkerPlanckResult:
    """PDE solution: ``eps_g`` on ``tau``; densities ``density[k, j, i]`` at ``density_tau[k]``.

    ``density[k, j]`` is ``mu(w | w* = teacher_values[j])`` on the cell centres ``x``.
    """

    tau: np.ndarray
    eps_g: np.ndarray
    x: np.ndarray
    dx: float
    density_tau: np.ndarray
    density: np.ndarray
    teacher_values: np.ndarray
    bin_mass_tau: np.ndarray = field(repr=False)
    bin_mass: np.ndarray = field(repr=False)


def _bernoulli(z: np.ndarray) -> np.ndarray:
    """``B(z) = z / (exp(z) - 1)``, stable for every z (B(0) = 1, B(+inf) = 0, B(-inf) = -z)."""
    out = np.ones_like(z)
    nz = np.abs(z) > 1e-12
    with np.errstate(over="ignore"):
        out[nz] = z[nz] / np.expm1(z[nz])
    return out


def _pde_grid(setting: STESetting, cells_per_bin: int, half_width: float | None, max_dx: float):
    wq = setting.weight_quantizer
    v = setting.teacher_values
    if half_width is None:
        reach = max(3.0, abs(setting.init_mean) + 4 * setting.init_std)
        if wq is not None:
            reach = max(reach, wq.omega, float(np.max(np.abs(wq.level_array))))
        if setting.weight_quantizer is None or setting.lam > 0:
            reach = max(
                reach, float(np.max(np.abs(v))) * setting.kappa1 / (setting.kappa2 + setting.lam)
            )
        half_width = reach + 6.0
    if wq is None or wq.thresholds.size == 0:
        dx = max_dx
        anchor = 0.0
    else:
        t = wq.thresholds
        gaps = np.diff(t)
        if gaps.size and np.ptp(gaps) > 1e-9 * np.max(gaps):
            msg = (
                "solve_fokker_planck needs equally spaced thresholds so that cell faces fall on "
                f"every threshold; got thresholds {t!r}; hint: use uniform_quantizer or "
                "particle_method"
            )
            raise ValueError(msg)
        spacing = float(gaps[0]) if gaps.size else 1.0
        n = max(int(cells_per_bin or 2), math.ceil(spacing / max_dx))
        dx = spacing / n
        anchor = float(t[0])
    k_lo = math.floor((-half_width - anchor) / dx)
    k_hi = math.ceil((half_width - anchor) / dx)
    faces = anchor + dx * np.arange(k_lo, k_hi + 1)
    return faces, dx


def solve_fokker_planck(
    setting: STESetting,
    tau_max: float,
    *,
    n_out: int = 201,
    density_taus=(),
    cells_per_bin: int | None = None,
    max_dx: float = 0.02,
    half_width: float | None = None,
    cfl: float = 0.4,
    richardson: bool = True,
) -> FokkerPlanckResult:
    """Solve the Fokker-Planck PDE for ``mu_tau(w | w*)`` (notes 4.3, recipe 10.2).

    Finite volumes on ``[-L, L]`` (``L = max(omega, 3) + 6`` by default) with every threshold on a
    cell face, the Scharfetter-Gummel flux (exact for the exponential boundary layers at a
    chattering threshold; the drift on a face is its mean over the two neighbouring half cells),
    zero-flux ends, explicit steps ``dt = cfl dx^2 / (D + max|a| dx)`` and ``eps_g`` recomputed
    from the density at every step. The scheme is second order in ``dx``; with ``richardson=True``
    (default) it also solves on the grid twice as fine and reports the extrapolated
    ``eps_g = (4 eps_fine - eps_coarse) / 3`` (the densities and bin masses are the fine ones).

    Identity STE only (the clipped STE makes ``[-omega, omega]`` absorbing: use
    :func:`particle_method`). Returns ``eps_g`` on ``n_out`` equally spaced times in
    ``[0, tau_max]`` and the densities at ``density_taus``. The cell width is ``spacing / n`` with
    ``n = max(cells_per_bin, ceil(spacing / max_dx))`` cells between adjacent thresholds.
    """
    if setting.ste is not SteVariant.IDENTITY:
        msg = (
            f"solve_fokker_planck supports SteVariant.IDENTITY only, got {setting.ste}; hint: the "
            "clipped STE has absorbing walls at +-omega, use particle_method(setting, ...)"
        )
        raise ValueError(msg)
    if not (math.isfinite(tau_max) and tau_max > 0):
        msg = f"tau_max must be a positive finite number, got {tau_max!r}"
        raise ValueError(msg)
    if cells_per_bin is not None and cells_per_bin < 2:
        msg = f"cells_per_bin must be None (auto: dx <= max_dx) or >= 2, got {cells_per_bin!r}"
        raise ValueError(msg)
    dens_taus = np.sort(np.asarray(density_taus, dtype=np.float64).ravel())
    if dens_taus.size and (dens_taus[0] < 0 or dens_taus[-1] > tau_max):
        msg = f"density_taus must lie in [0, tau_max={tau_max}], got {density_taus!r}"
        raise ValueError(msg)
    if richardson:
        kw = {"n_out": n_out, "density_taus": density_taus, "half_width": half_width, "cfl": cfl}
        coarse = solve_fokker_planck(
            setting, tau_max, cells_per_bin=cells_per_bin, max_dx=max_dx, richardson=False, **kw
        )
        fine = solve_fokker_planck(
            setting,
            tau_max,
            cells_per_bin=None if cells_per_bin is None else 2 * cells_per_bin,
            max_dx=max_dx / 2,
            richardson=False,
            **kw,
        )
        eps = (4 * fine.eps_g - coarse.eps_g) / 3
        return FokkerPlanckResult(**{**fine.__dict__, "eps_g": eps})
    faces, dx = _pde_grid(setting, cells_per_bin, half_width, max_dx)
    x = 0.5 * (faces[1:] + faces[:-1])
    mu = _initial_density(setting, faces, dx)
    return _march(setting, faces, dx, x, mu, tau_max, n_out, dens_taus, cfl)


def _initial_density(setting: STESetting, faces, dx) -> np.ndarray:
    """Exact Gaussian cell averages of ``mu_0``, normalised, one row per teacher value."""
    x = 0.5 * (faces[1:] + faces[:-1])
    if setting.init_std > 0:
        cdf = _cdf((faces - setting.init_mean) / setting.init_std)
        mu0 = np.diff(cdf) / dx
    else:
        mu0 = np.zeros_like(x)
        mu0[np.searchsorted(faces, setting.init_mean) - 1] = 1.0 / dx
    return np.repeat((mu0 / (mu0.sum() * dx))[None, :], setting.teacher_values.size, axis=0)


def _march(setting, faces, dx, x, mu, tau_max, n_out, dens_taus, cfl) -> FokkerPlanckResult:
    """Explicit Scharfetter-Gummel steps from ``mu`` to ``tau_max``, recording on the way."""
    xf = faces[1:-1]  # interior faces
    eta, lam, k1, k2 = setting.eta_eff, setting.lam, setting.kappa1, setting.kappa2
    v = setting.teacher_values[:, None]
    p = setting.teacher_probs[:, None]
    qc = setting.qw(x)  # Q at cell centres (exact: faces on thresholds)
    q_face = 0.5 * (qc[1:] + qc[:-1])  # mean of Q over the two half cells beside the face
    a = eta * (k1 * v - k2 * q_face[None, :] - lam * xf[None, :])  # (J, n-1)
    amax = float(np.max(np.abs(a))) if a.size else 0.0
    rho, s2 = setting.rho, setting.sigma**2

    def eps_of(mu):
        m_q = float(np.sum(p * v * (mu @ qc))) * dx
        q_q = float(np.sum(p * (mu @ (qc * qc)))) * dx
        return 0.5 * (rho - 2 * k1 * m_q + k2 * q_q)

    def bin_masses(mu):
        if setting.weight_quantizer is None:
            return np.array([1.0])
        idx = setting.weight_quantizer.bin_index(x)
        nb = len(setting.weight_quantizer.levels)
        return np.bincount(idx, weights=(p * mu).sum(axis=0) * dx, minlength=nb)

    out_tau = np.linspace(0.0, tau_max, n_out)
    stops = np.union1d(out_tau, dens_taus)
    eps_out = np.empty(n_out)
    dens_out = np.empty((dens_taus.size, v.shape[0], x.size))
    mass_out = []
    tau = 0.0
    eps = eps_of(mu)
    for stop in stops:
        while tau < stop - 1e-12:
            dh = 0.5 * eta**2 * k2 * max(2 * eps + s2, 0.0)
            dt = min(cfl * dx * dx / (dh + amax * dx + 1e-300), stop - tau)
            dd = dh / dx
            if dd > 0:
                flux = dd * _bernoulli(a / dd) * (mu[:, :-1] - mu[:, 1:]) + a * mu[:, :-1]
            else:
                flux = np.maximum(a, 0) * mu[:, :-1] + np.minimum(a, 0) * mu[:, 1:]
            div = np.zeros_like(mu)
            div[:, :-1] += flux
            div[:, 1:] -= flux
            mu = mu - (dt / dx) * div
            tau += dt
            eps = eps_of(mu)
        k = np.searchsorted(out_tau, stop)
        if k < n_out and abs(out_tau[k] - stop) < 1e-12:
            eps_out[k] = eps
            mass_out.append(bin_masses(mu))
        kd = np.searchsorted(dens_taus, stop)
        while kd < dens_taus.size and abs(dens_taus[kd] - stop) < 1e-12:
            dens_out[kd] = mu
            kd += 1
    return FokkerPlanckResult(
        tau=out_tau,
        eps_g=eps_out,
        x=x,
        dx=dx,
        density_tau=dens_taus,
        density=dens_out,
        teacher_values=setting.teacher_values,
        bin_mass_tau=out_tau,
        bin_mass=np.array(mass_out),
    )


# ---------------------------------------------------------------------------------------------
# McKean-Vlasov particle method
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParticleResult:
    """Particle solution: ``eps_g`` on ``tau``; final particles ``w`` with teachers ``w_star``."""

    tau: np.ndarray
    eps_g: np.ndarray
    w: np.ndarray
    w_star: np.ndarray


def _teacher_vector(setting: STESetting, n: int) -> np.ndarray:
    """Deterministic stratified assignment of teacher values to n coordinates."""
    v, p = setting.teacher_values, setting.teacher_probs
    counts = np.floor(p * n).astype(np.int64)
    counts[np.argmax(p)] += n - counts.sum()
    return np.repeat(v, counts)


def particle_method(
    setting: STESetting,
    tau_max: float,
    *,
    n_particles: int = 100_000,
    dt: float = 0.005,
    n_out: int = 101,
    seed: int = 0,
) -> ParticleResult:
    """Euler-Maruyama for the McKean-Vlasov SDE (notes 4.2, recipe 10.3), any STE variant.

    ``dw = eta [g(w)(kappa1 w* - kappa2 Q(w)) - lam w] dtau + eta g(w) sqrt(kappa2 (2 eps_g + s^2)) dB``
    with ``eps_g`` recomputed from the ensemble at every step. Particles beyond ``+-omega`` under
    the clipped STE freeze (apart from the L2 pull) and keep counting with ``Q = +-omega``.
    """
    if not (isinstance(n_particles, (int, np.integer)) and n_particles >= 2):
        msg = f"n_particles must be an int >= 2, got {n_particles!r}"
        raise ValueError(msg)
    if not (dt > 0 and math.isfinite(tau_max) and tau_max > 0):
        msg = f"dt and tau_max must be positive, got dt={dt!r}, tau_max={tau_max!r}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    w_star = _teacher_vector(setting, int(n_particles))
    w = setting.init_mean + setting.init_std * rng.standard_normal(w_star.size)
    eta, lam, k1, k2 = setting.eta_eff, setting.lam, setting.kappa1, setting.kappa2
    s2 = setting.sigma**2
    out_tau = np.linspace(0.0, tau_max, n_out)
    eps_out = np.empty(n_out)
    tau = 0.0
    sqdt = None
    for k, stop in enumerate(out_tau):
        while tau < stop - 1e-12:
            h = min(dt, stop - tau)
            sqdt = math.sqrt(h)
            qv = setting.qw(w)
            eps = 0.5 * (setting.rho - 2 * k1 * np.mean(w_star * qv) + k2 * np.mean(qv * qv))
            g = setting.ste_factor(w)
            noise = eta * math.sqrt(k2 * max(2 * eps + s2, 0.0)) * sqdt
            w = w + h * eta * (g * (k1 * w_star - k2 * qv) - lam * w)
            w = w + noise * g * rng.standard_normal(w.size)
            tau += h
        qv = setting.qw(w)
        eps_out[k] = 0.5 * (setting.rho - 2 * k1 * np.mean(w_star * qv) + k2 * np.mean(qv * qv))
    return ParticleResult(tau=out_tau, eps_g=eps_out, w=w, w_star=w_star)


# ---------------------------------------------------------------------------------------------
# stationary law for quantized weights
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GibbsResult:
    """Self-consistent stationary state(s): ``eps_g`` of the selected root and every root found."""

    eps_g: float
    s: float
    roots: tuple[float, ...]


def _log_bin_integrals(lo, hi, alpha, beta, temp):
    """``log int_lo^hi exp(-(alpha x^2 / 2 + beta x) / temp) dx`` per bin (alpha >= 0)."""
    from scipy.special import log_ndtr

    out = np.empty(lo.shape)
    for i in range(lo.size):
        if alpha > 0:
            sd = math.sqrt(temp / alpha)
            x0 = -beta[i] / alpha
            za, zb = (lo[i] - x0) / sd, (hi[i] - x0) / sd
            if za > 0:  # use the upper tail for accuracy
                za, zb = -zb, -za
            la, lb = float(log_ndtr(za)), float(log_ndtr(zb))
            diff = lb + math.log(-math.expm1(la - lb)) if lb > la else -math.inf
            out[i] = (
                0.5 * beta[i] ** 2 / (alpha * temp) + math.log(sd * math.sqrt(2 * math.pi)) + diff
            )
        else:
            c = beta[i] / temp  # int exp(-c x) over [lo, hi]
            if not math.isfinite(hi[i]) and c <= 0 or not math.isfinite(lo[i]) and c >= 0:
                out[i] = math.inf
            elif c == 0:
                out[i] = math.log(hi[i] - lo[i])
            elif c > 0:
                out[i] = -c * lo[i] + math.log(-math.expm1(-c * (hi[i] - lo[i])) / c)
            else:
                out[i] = -c * hi[i] + math.log(-math.expm1(c * (hi[i] - lo[i])) / -c)
    return out


def _gibbs_eps(setting: STESetting, s: float) -> float:
    """``eps_g`` under ``mu* ∝ exp(-U / T)`` at ``T = eta kappa2 s / 2`` (identity STE), exactly.

    ``U(x) = kappa2 int_0^x Q - kappa1 w* x + lam x^2 / 2`` is piecewise quadratic, so the bin
    masses are closed-form Gaussian/exponential integrals (computed in log space).
    """
    eta, lam, k1, k2 = setting.eta_eff, setting.lam, setting.kappa1, setting.kappa2
    temp = max(0.5 * eta * k2 * s, 1e-300)
    wq = setting.weight_quantizer
    m_q = q_q = 0.0
    for v, p in zip(setting.teacher_values, setting.teacher_probs):
        if wq is None:  # Gaussian: mean kappa1 w* / (kappa2 + lam), variance T / (kappa2 + lam)
            mean = k1 * v / (k2 + lam)
            m_q += p * v * mean
            q_q += p * (mean**2 + temp / (k2 + lam))
            continue
        lv, t = wq.level_array, wq.thresholds
        lo = np.concatenate([[-np.inf], t])
        hi = np.concatenate([t, [np.inf]])
        # on bin k: U = k2 q_k x + C_k - k1 v x + lam x^2/2, C_k makes U continuous
        ck = np.concatenate([[0.0], np.cumsum((lv[:-1] - lv[1:]) * t)]) * k2
        ck = ck - ck[int(wq.bin_index(0.0))]
        logi = _log_bin_integrals(lo, hi, lam, k2 * lv - k1 * v, temp) - ck / temp
        if np.any(np.isposinf(logi)):
            msg = (
                f"the stationary law is not normalisable for w*={v:g} (|kappa1 w*| >= kappa2 "
                "q_max with lam=0); hint: the weights drift off, use solve_fokker_planck"
            )
            raise ValueError(msg)
        pr = np.exp(logi - np.max(logi))
        pr = pr / pr.sum()
        m_q += p * v * float(np.sum(pr * lv))
        q_q += p * float(np.sum(pr * lv * lv))
    return 0.5 * (setting.rho - 2 * k1 * m_q + k2 * q_q)


def gibbs_steady_state(
    setting: STESetting, *, root: str = "hot", s_min: float = 1e-6, s_max: float = 50.0
) -> GibbsResult:
    """Exact stationary state for the identity STE (notes 7.1): Gibbs law + self-consistency.

    Solves ``s = 2 eps_g(s) + sigma^2`` by a scan of ``s`` on a log grid and bisection.
    ``root="hot"`` (default) selects the largest root, which the PDE from ``N(0, 1)`` settles on
    (notes 7.4); ``"cold"`` the smallest. If ``s -> 0`` solves it (a representable target with
    ``sigma = 0``) the root ``0`` is included.
    """
    if setting.ste is not SteVariant.IDENTITY:
        msg = f"gibbs_steady_state needs SteVariant.IDENTITY, got {setting.ste}"
        raise ValueError(msg)
    if root not in ("hot", "cold"):
        msg = f"root must be 'hot' or 'cold', got {root!r}"
        raise ValueError(msg)
    s2 = setting.sigma**2

    def f(s):
        return 2 * _gibbs_eps(setting, s) + s2 - s

    ss = np.geomspace(s_min, s_max, 160)
    fs = np.array([f(s) for s in ss])
    roots = []
    if s2 == 0 and 2 * _gibbs_eps(setting, 1e-14) <= 1e-9:
        roots.append(0.0)
    for i in np.nonzero(np.sign(fs[:-1]) != np.sign(fs[1:]))[0]:
        lo, hi = ss[i], ss[i + 1]
        flo = fs[i]
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            fm = f(mid)
            if np.sign(fm) == np.sign(flo):
                lo, flo = mid, fm
            else:
                hi = mid
        roots.append(0.5 * (lo + hi))
    if not roots:
        msg = (
            "no self-consistent stationary state found in s in "
            f"[{s_min}, {s_max}]; hint: the weights may drift off (|c| > q_max) or eta is too large"
        )
        raise ValueError(msg)
    s = max(roots) if root == "hot" else min(roots)
    return GibbsResult(eps_g=0.5 * (s - s2), s=s, roots=tuple(roots))


# ---------------------------------------------------------------------------------------------
# small-eta (fluid) limit
# ---------------------------------------------------------------------------------------------


def small_eta_steady_state(setting: STESetting) -> float:
    """``eps_g*`` as ``eta -> 0`` (notes 7.3; identity STE, ``lam = 0``, quantized weights).

    ``2 eps_g* = rho (1 - kappa1^2/kappa2) + kappa2 E_{w*}[(c - q_k)(q_{k+1} - c)]`` with the
    target level ``c = kappa1 w* / kappa2`` between levels ``q_k <= c <= q_{k+1}``. Unlike the
    unquantized case this does not vanish with eta.
    """
    wq = setting.weight_quantizer
    if wq is None or setting.lam != 0 or setting.ste is not SteVariant.IDENTITY:
        msg = "small_eta_steady_state needs quantized weights, lam=0 and SteVariant.IDENTITY"
        raise ValueError(msg)
    k1, k2 = setting.kappa1, setting.kappa2
    lv = wq.level_array
    var = 0.0
    for v, p in zip(setting.teacher_values, setting.teacher_probs):
        c = k1 * v / k2
        if c <= lv[0] or c >= lv[-1]:
            msg = f"target level c={c:g} lies outside the levels [{lv[0]:g}, {lv[-1]:g}]"
            raise ValueError(msg)
        k = int(np.searchsorted(lv, c, side="right")) - 1
        var += p * (c - lv[k]) * (lv[k + 1] - c)
    return 0.5 * (setting.rho * (1 - k1**2 / k2) + k2 * var)


def plateau_lengths(setting: STESetting, w0: float, w_star: float | None = None) -> dict:
    """Fluid-limit (small-eta) travel of one latent weight from ``w0`` (notes 6.3), tau units.

    The weight follows ``dw/dtau = eta [kappa1 w* - kappa2 Q(w) - lam w]`` (identity STE).
    Returns ``{"bins": [(level, entry, exit, duration), ...], "arrival": tau, "end": w}``: the
    bins crossed with the time spent in each (the plateaus of ``eps_g``), the time to reach the
    attractor (a sliding threshold) or to enter the bin holding an interior fixed point
    (``lam > 0``), and where the weight ends.
    """
    wq = setting.weight_quantizer
    if wq is None:
        msg = "plateau_lengths needs a weight_quantizer (full-precision weights have no plateaus)"
        raise ValueError(msg)
    if w_star is None:
        w_star = float(setting.teacher_values[np.argmax(setting.teacher_probs)])
    eta, lam, k1, k2 = setting.eta_eff, setting.lam, setting.kappa1, setting.kappa2
    t, lv = wq.thresholds, wq.level_array
    edges = np.concatenate([[-np.inf], t, [np.inf]])
    w = float(w0)
    k = int(wq.bin_index(w))
    bins, total = [], 0.0
    for _ in range(2 * len(lv) + 2):
        a_k = k1 * w_star - k2 * lv[k]
        vel = a_k - lam * w
        if vel == 0:
            return {"bins": bins, "arrival": total, "end": w}
        lo, hi = edges[k], edges[k + 1]
        target = hi if vel > 0 else lo
        if lam > 0:
            fixed = a_k / lam
            if lo < fixed < hi or not math.isfinite(target):
                bins.append((lv[k], w, fixed, math.inf))
                return {"bins": bins, "arrival": total, "end": fixed}
            dur = math.log((a_k - lam * w) / (a_k - lam * target)) / (lam * eta)
        else:
            if not math.isfinite(target):
                bins.append((lv[k], w, target, math.inf))
                return {"bins": bins, "arrival": math.inf, "end": target}
            dur = (target - w) / (vel * eta)
        bins.append((lv[k], w, target, dur))
        total += dur
        k_next = k + 1 if vel > 0 else k - 1
        vel_next = k1 * w_star - k2 * lv[k_next] - lam * target
        if np.sign(vel_next) != np.sign(vel):  # sliding mode on the threshold
            return {"bins": bins, "arrival": total, "end": target}
        w, k = target, k_next
    return {"bins": bins, "arrival": total, "end": w}
