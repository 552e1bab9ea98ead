"""Every reproduction runs at a small size and its claims hold; without the effect they fail.

Each test runs one ``qemu-arrays reproduce`` experiment with small sizes (seconds), asserts the
claim lines it returns, and then removes the effect (a wide initial law, a range where the input
bit width cannot matter, equal batch sizes, a theory for the wrong learning rate) to show that
the same claim then reports FAILS: the claims are measurements, not labels.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the reproductions draw PNGs (qemu-arrays[plot])")

from qemu_arrays.experiments import ste  # noqa: E402
from qemu_arrays.experiments.claims import Claim, claim_lines, claims_hold  # noqa: E402
from qemu_arrays.theory import ste_dynamics as sd  # noqa: E402
from qemu_arrays.theory.kinds import GridKind  # noqa: E402


def _by_statement(claims, word):
    hits = [c for c in claims if word in c["statement"]]
    assert len(hits) == 1, [c["statement"] for c in claims]
    return hits[0]


def test_claim_line_and_json(tmp_path):
    c = Claim("000 Fig. 9", "x grows", "1 < 2", "test: increasing", holds=True)
    assert c.line().startswith("[holds] 000 Fig. 9: x grows | measured: 1 < 2")
    bad = Claim("000 Fig. 9", "x grows", "2 > 1", "test: increasing", holds=False)
    assert bad.line().startswith("[FAILS]")
    assert claim_lines([c.to_dict(), bad]) == [c.line(), bad.line()]
    assert claims_hold([c])
    assert not claims_hold([c, bad])
    assert not claims_hold([])


# ---- paper 000 ------------------------------------------------------------------------------


def test_ste_plateau_length_grows_with_omega_and_matches_the_theory(tmp_path):
    small = {"d": 200, "replicas": 3, "progress": False, "omegas": (1.0, 2.0)}
    res = ste.run_plateau(out_dir=tmp_path, **small)
    assert claims_hold(res["claims"]), claim_lines(res["claims"])
    # the paper's statement in numbers: T = omega / (4 eta) = 5 and 10 at eta = 0.05
    pl = res["plateaus"]
    assert [pl["1.0"]["predicted"], pl["2.0"]["predicted"]] == pytest.approx([5.0, 10.0])
    assert pl["1.0"]["measured"] < pl["2.0"]["measured"]
    assert pl["2.0"]["measured"] == pytest.approx(10.0, rel=0.3)
    saved = json.loads((tmp_path / "ste_plateau.json").read_text())
    assert [c["line"] for c in saved["claims"]] == claim_lines(res["claims"])
    # without the narrow start (the old default N(0, 1)) there is no plateau
    wide = ste.run_plateau(out_dir=tmp_path / "wide", init_std=1.0, **small)
    assert not _by_statement(wide["claims"], "plateau of eps_g")["holds"]
    # with omega held fixed the length cannot grow with it
    fixed = ste.run_plateau(out_dir=tmp_path / "fixed", **{**small, "omegas": (2.0, 2.0)})
    assert not _by_statement(fixed["claims"], "plateau length")["holds"]


def test_ste_range_exposes_the_initial_law_and_shows_the_plateau_length(tmp_path):
    small = {"d": 150, "replicas": 3, "tau_max": 8.0, "progress": False,
             "omegas": (0.5, 1.0, 1.5)}  # fmt: skip
    res = ste.run_range(out_dir=tmp_path, **small)
    assert claims_hold(res["claims"]), claim_lines(res["claims"])
    assert res["init"] == {"init_mean": 0.0, "init_std": 0.01, "teacher": 1.0}
    wide = ste.run_range(out_dir=tmp_path / "wide", init_std=1.0, **small)
    assert not _by_statement(wide["claims"], "plateau length")["holds"]
    with pytest.raises(TypeError, match="init_std"):
        ste.run_range(out_dir=tmp_path, init_std="narrow", **small)


def test_ste_joint_input_bit_width_matters_at_omega_x_4_not_at_1(tmp_path):
    small = {"d": 200, "replicas": 4, "tau_max": 40.0, "progress": False, "weight_bits": (3,)}
    res = ste.run_joint(out_dir=tmp_path, **small)
    assert claims_hold(res["claims"]), claim_lines(res["claims"])
    clipped = ste.run_joint(out_dir=tmp_path / "omega1", omega_x=1.0, **small)
    bx = [c for c in clipped["claims"] if "input bit width" in c["statement"]]
    assert bx
    assert not any(c["holds"] for c in bx)


def test_ste_bitwidth_and_stability(tmp_path):
    res = ste.run_bitwidth(out_dir=tmp_path, d=150, replicas=5, tau_max=60.0, progress=False)
    assert claims_hold(res["claims"]), claim_lines(res["claims"])
    pde = [res["configs"][f"b={b}"]["eps_g_final_pde"] for b in (2, 3, 4, 5)]
    assert pde == sorted(pde, reverse=True)
    st = ste.run_stability(out_dir=tmp_path, d=100, replicas=4, tau_max=30.0, progress=False)
    assert claims_hold(st["claims"]), claim_lines(st["claims"])
    # the paper's boundary 2/sigma_psi^2: 3.572 for the 2-bit input grid at omega = 1
    assert st["bits"]["2"]["eta_c"] == pytest.approx(3.572, abs=1e-3)


def test_ste_density_follows_the_pde_and_not_a_wrong_one(tmp_path):
    res = ste.run_density(out_dir=tmp_path, d=300, replicas=6, progress=False)
    assert claims_hold(res["claims"]), claim_lines(res["claims"])
    # the same simulated bin masses against the PDE of twice the learning rate: the test fails
    q = sd.uniform_quantizer(2, 2.0, GridKind.A)
    wrong = sd.solve_fokker_planck(
        sd.STESetting(eta=0.2, weight_quantizer=q, input_quantizer=q), 100.0, n_out=3,
        density_taus=(10.0, 25.0, 50.0, 100.0), richardson=False,
    )  # fmt: skip
    edges = np.concatenate([[-np.inf], q.thresholds, [np.inf]])
    excess = []
    for row in res["bin_mass_check"]:
        k = (10.0, 25.0, 50.0, 100.0).index(row["tau"])
        cell = wrong.density[k, 0] * wrong.dx
        lo, hi = edges[row["bin"]], edges[row["bin"] + 1]
        excess.append(
            abs(row["sim"] - cell[(wrong.x > lo) & (wrong.x < hi)].sum()) - row["allowed"]
        )
    assert max(r["excess"] for r in res["bin_mass_check"]) <= 0 < max(excess)


def test_plateau_measure_and_bad_sizes():
    s = sd.STESetting(eta=0.1, weight_quantizer=sd.uniform_quantizer(2, 2.0, GridKind.D),
                      init_std=0.05)  # fmt: skip
    tau = np.linspace(0, 20, 201)
    step = np.where(tau < 5.0, 0.5, 0.0)  # an ideal plateau ending at the predicted 5.0
    m = ste.plateau_measure(s, tau, step)
    assert m["predicted"] == pytest.approx(5.0)
    assert m["measured"] == pytest.approx(5.0, abs=0.1)
    assert m["flat"]
    assert m["dropped"]
    never = ste.plateau_measure(s, tau, np.full_like(tau, 0.5))
    assert math.isinf(never["measured"])
    assert not never["dropped"]
    with pytest.raises(ValueError, match="replicas must be an int >= 1"):
        ste.run_plateau(replicas=0)
    with pytest.raises(ValueError, match="tau_max"):
        ste.run_plateau(tau_max=-1.0)
    with pytest.raises(ValueError, match="weight_quantizer"):
        ste.plateau_measure(sd.STESetting(eta=0.1), tau, step)


# ---- paper 002 ------------------------------------------------------------------------------


def test_linreg_sites_batch_scaling_spectrum_and_agreement(tmp_path):
    from qemu_arrays.experiments import linreg_sites

    small = {"replicas": 300, "steps": 250, "d": 16, "batches": [1, 16], "spectrum_samples": 20_000}
    res = linreg_sites.run(out_dir=tmp_path, progress=False, overrides=small)
    assert claims_hold(res["claims"]), claim_lines(res["claims"])
    rows = {(r["target"], r["scheme"], r["batch"]): r for r in res["rows"]}
    assert len(rows) == 5 * 2 * 2
    # the recursion's 1/B law for additive activation noise: 16x from B = 1 to 16 (within 20%)
    ratio = rows[("activations", "additive", 1)]["penalty_theory"] / rows[
        ("activations", "additive", 16)]["penalty_theory"]  # fmt: skip
    assert ratio == pytest.approx(16, rel=0.2)
    assert (tmp_path / "linreg_sites.png").stat().st_size > 1000
    # one batch size only: nothing can be suppressed by it, and the claim says so
    same = linreg_sites.run(out_dir=None, progress=False,
                            overrides={**small, "replicas": 50, "steps": 100,
                                       "batches": [2, 2]})  # fmt: skip
    assert not _by_statement(same["claims"], "suppressed by the batch size")["holds"]
    with pytest.raises(ValueError, match="overrides"):
        linreg_sites.run(out_dir=None, overrides={"bogus": 1})
    with pytest.raises(ValueError, match="batches"):
        linreg_sites.run(out_dir=None, overrides={"batches": [1]})


# ---- paper 001 (the experiment's own tests are in test_estimator_equivalence.py) ----------


def test_binary_grid_alpha_is_one():
    from qemu_arrays.estimators import HTGE, Grid, alpha, cell_alphas

    est = HTGE(t=10.0).on(Grid([-1.0, 1.0]))
    assert alpha(est) == 1.0  # paper 001: "for a binary Q, alpha := 1"
    assert cell_alphas(est)[0][0] < 0.01  # what the cell integral would have given
    assert alpha(HTGE(t=4.0).on(Grid.uniform(1.0, -2, 1))) == pytest.approx(0.5113, abs=1e-4)


# ---- enums and the command line -------------------------------------------------------------


def test_string_choices_still_work_with_a_deprecation_warning():
    from qemu_arrays.theory.kinds import OptimizerKind, SteVariant
    from qemu_arrays.training import SGD, Adam, UniformQuantizer, make_optimizer

    with pytest.warns(DeprecationWarning, match="GridKind.D"):
        q = sd.uniform_quantizer(2, 1.0, "D")
    assert q.levels == sd.uniform_quantizer(2, 1.0, GridKind.D).levels
    with pytest.warns(DeprecationWarning, match="SteVariant.CLIPPED"):
        s = sd.STESetting(eta=0.1, weight_quantizer=q, ste="clipped")
    assert s.ste is SteVariant.CLIPPED
    with pytest.warns(DeprecationWarning, match="GridKind.M"):
        uq = UniformQuantizer(2, 2.0, grid="M")
    np.testing.assert_array_equal(uq.levels, UniformQuantizer(2, 2.0, grid=GridKind.M).levels)
    with pytest.warns(DeprecationWarning, match="OptimizerKind.ADAM"):
        assert isinstance(make_optimizer("adam"), Adam)
    assert make_optimizer(OptimizerKind.MOMENTUM).momentum == 0.9
    assert isinstance(make_optimizer(OptimizerKind.SGD), SGD)
    with pytest.raises(ValueError, match=r"grid must be one of GridKind.A.*got 'Z'"):
        sd.uniform_quantizer(2, 1.0, "Z")
    with pytest.raises(TypeError, match="GridKind"):
        sd.uniform_quantizer(2, 1.0, 3)


def test_cli_reproduce_prints_the_claim_lines(capsys, tmp_path):
    from qemu_arrays import cli

    code = cli.main(["reproduce", "ste-plateau", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "[holds] 000 abstract: the plateau length depends on the quantization range" in out
    assert "3 of 3 claim(s) hold" in out
    assert (tmp_path / "ste_plateau.png").stat().st_size < 100_000
    code = cli.main(["reproduce", "ste-plateau", "--dataset", "digits", "--out", str(tmp_path)])
    assert code == 2
    assert "--dataset applies to estimator-equivalence only" in capsys.readouterr().err


def test_training_quantizer_estimator_strings_warn():
    from qemu_arrays.theory.kinds import SteVariant
    from qemu_arrays.training import UniformQuantizer

    x = np.array([-3.0, 0.5, 3.0])
    with pytest.warns(DeprecationWarning, match="SteVariant.CLIPPED"):
        old = UniformQuantizer(2, 2.0, estimator="clipped")
    new = UniformQuantizer(2, 2.0, estimator=SteVariant.CLIPPED)
    np.testing.assert_array_equal(old.derivative(x), new.derivative(x))
    np.testing.assert_array_equal(new.derivative(x), [0.0, 1.0, 0.0])
    with pytest.warns(DeprecationWarning, match="SteVariant.IDENTITY"):
        assert UniformQuantizer(2, 2.0, estimator="ste").estimator is SteVariant.IDENTITY
    with pytest.raises(ValueError, match="estimator must be one of SteVariant"):
        UniformQuantizer(2, 2.0, estimator="mad")
