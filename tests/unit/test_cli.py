"""Every CLI subcommand end to end, in-process, with its error paths."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from qemu_arrays import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "expected a message on stderr"
    for needle in needles:
        assert needle in err


@pytest.mark.parametrize(
    "sub", ["demo", "formats", "info", "compare", "check-format", "reproduce", "bench"]
)
def test_every_subcommand_has_help(capsys, sub):
    code, out, _ = run(capsys, sub, "--help")
    assert code == 0
    assert "usage: qemu-arrays" in out


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2
    assert "COMMAND" in out


def test_demo_still_works(capsys):
    code, out, _ = run(capsys, "demo", "--n", "512")
    assert code == 0
    assert "SQNR dB" in out
    assert "float8_e4m3fn" in out


def test_formats_table(capsys):
    code, out, _ = run(capsys, "formats")
    assert code == 0
    for needle in ("float8_e4m3fn", "448", "int8", "min subnormal", "eps", "specials"):
        assert needle in out
    assert "half" not in out.split()  # aliases are not listed twice
    code, out, _ = run(capsys, "formats", "--kind", "int")
    assert code == 0
    assert "float8_e4m3fn" not in out
    assert "uint4" in out


def test_info_with_plot(capsys, tmp_path):
    png = tmp_path / "grid.png"
    code, out, _ = run(capsys, "info", "float8_e5m2", "--plot", str(png))
    assert code == 0
    assert "57344" in out
    assert "smallest subnormal" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_info_int_and_block(capsys):
    code, out, _ = run(capsys, "info", "int4")
    assert code == 0
    assert "16 finite values" in out
    code, out, _ = run(capsys, "info", "mxfp4_e2m1")
    assert code == 0
    assert "block size 32" in out


def test_info_unknown_format(capsys):
    code, _, err = run(capsys, "info", "float8_e4m3fm")
    assert_clean_error(code, err, "unknown format", "float8_e4m3fn")


def test_info_plot_bad_path(capsys, tmp_path):
    code, _, err = run(capsys, "info", "int4", "--plot", str(tmp_path / "nope" / "g.png"))
    assert_clean_error(code, err, "does not exist")
    code, _, err = run(capsys, "info", "int4", "--plot", str(tmp_path / "g.jpg"))
    assert_clean_error(code, err, ".png")


def test_compare_builtin_with_plot(capsys, tmp_path):
    png = tmp_path / "err.png"
    code, out, _ = run(
        capsys, "compare", "--n", "2048", "--formats", "int8,float8_e4m3fn",
        "--data", "gaussian", "--plot", str(png), "--no-progress",
    )  # fmt: skip
    assert code == 0
    assert "SQNR dB" in out
    assert "clipped" in out
    assert "0.000%" in out  # absmax scaling never clips
    assert png.exists()


def test_compare_npy_and_clipping(capsys, tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "w.npy"
    np.save(path, rng.standard_t(3, size=(64, 32)).astype(np.float32))
    code, out, _ = run(
        capsys, "compare", "--npy", str(path), "--formats", "int4", "--clip-sigmas", "2",
        "--no-progress",
    )  # fmt: skip
    assert code == 0
    assert "w.npy" in out
    row = next(ln for ln in out.splitlines() if "int4" in ln)
    clipped = float(row.split()[-1].rstrip("%"))
    assert clipped > 0


def test_compare_errors(capsys, tmp_path):
    code, _, err = run(capsys, "compare", "--npy", str(tmp_path / "missing.npy"))
    assert_clean_error(code, err, "cannot read")
    bad = tmp_path / "bad.npy"
    bad.write_text("not numpy")
    code, _, err = run(capsys, "compare", "--npy", str(bad))
    assert_clean_error(code, err, "cannot read")
    code, _, err = run(capsys, "compare", "--formats", "int8,nonsense")
    assert_clean_error(code, err, "unknown format")
    code, _, err = run(capsys, "compare", "--data", "cauchy")
    assert code == 2
    assert "invalid choice" in err


def test_check_format_fields(capsys):
    code, out, _ = run(
        capsys, "check-format", "--exponent-bits", "3", "--mantissa-bits", "2", "--bias", "3",
        "--specials", "FINITE", "--quick",
    )  # fmt: skip
    assert code == 0
    assert "all" in out
    assert "properties hold" in out


def test_check_format_name_int_and_toml(capsys, tmp_path):
    code, out, _ = run(capsys, "check-format", "float4_e2m1fn", "--quick")
    assert code == 0
    code, out, _ = run(capsys, "check-format", "--int-bits", "4", "--narrow", "--quick")
    assert code == 0
    assert "int4_narrow" in out
    toml = tmp_path / "fmt.toml"
    toml.write_text('[format]\nexponent_bits = 2\nmantissa_bits = 1\nspecials = "finite"\n')
    code, out, _ = run(capsys, "check-format", "--toml", str(toml), "--quick")
    assert code == 0
    assert "exponent_bits=2" in out


def test_check_format_errors(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[format\nexponent_bits = ")
    code, _, err = run(capsys, "check-format", "--toml", str(bad))
    assert_clean_error(code, err, "not valid TOML")
    code, _, err = run(capsys, "check-format", "--toml", str(tmp_path / "none.toml"))
    assert_clean_error(code, err, "cannot read")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[format]\nexponent_bits = 3\nmantisa_bits = 2\n")
    code, _, err = run(capsys, "check-format", "--toml", str(wrong))
    assert_clean_error(code, err, "unknown key", "mantisa_bits")
    code, _, err = run(capsys, "check-format", "--exponent-bits", "3", "--mantissa-bits", "2",
                       "--specials", "WEIRD")  # fmt: skip
    assert_clean_error(code, err, "specials must be one of")
    code, _, err = run(capsys, "check-format", "--exponent-bits", "1", "--mantissa-bits", "2")
    assert_clean_error(code, err, "exponent_bits >= 2")
    code, _, err = run(capsys, "check-format")
    assert_clean_error(code, err, "describe exactly one format")
    code, _, err = run(capsys, "check-format", "nonsense_fmt")
    assert_clean_error(code, err, "unknown format")


def test_check_format_failure_exit_status(capsys, monkeypatch):
    import qemu_arrays.testing as kit
    from qemu_arrays.testing.checks import Failure, FormatReport

    def failing(fmt, **kw):
        return FormatReport(fmt, failures=[Failure("tie_rule", "NEAREST_EVEN", 0.5, 0.0, 1.0)])

    monkeypatch.setattr(kit, "check_format", failing)
    code, out, _ = run(capsys, "check-format", "int4")
    assert code == 1
    assert "FAIL tie_rule" in out


def test_reproduce_lists_and_runs_a_registered_experiment(capsys, monkeypatch, tmp_path):
    import types

    calls = {}

    def fake_run(full=False, out_dir=None, progress=True):
        calls.update(full=full, out_dir=out_dir, progress=progress)
        (out_dir / "table.csv").write_text("a,b\n1,2\n")
        return {"alpha": 0.5, "rows": 3}

    module = types.ModuleType("qa_fake_experiment")
    module.run = fake_run
    monkeypatch.setitem(sys.modules, "qa_fake_experiment", module)
    monkeypatch.setattr(cli, "available_experiments", lambda: {"fake": "qa_fake_experiment:run"})
    code, out, _ = run(capsys, "reproduce", "fake", "--out", str(tmp_path), "--no-progress")
    assert code == 0
    assert calls == {"full": False, "out_dir": tmp_path, "progress": False}
    assert "alpha: 0.5" in out
    assert "table.csv" in out


def test_reproduce_unknown_and_help_lists_names(capsys):
    code, _, err = run(capsys, "reproduce", "no-such-experiment")
    assert_clean_error(code, err, "unknown experiment")
    code, out, _ = run(capsys, "reproduce", "--help")
    assert code == 0
    for name in cli.available_experiments():
        assert name in out


def test_registry_targets_resolve():
    import importlib

    for name, target in cli.available_experiments().items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_bench_runs_scripts_as_subprocesses(capsys, tmp_path):
    (tmp_path / "bench_tiny.py").write_text(
        "import sys\nprint('tiny ran', '--quick' in sys.argv)\n"
    )
    (tmp_path / "bench_fails.py").write_text("raise SystemExit(3)\n")
    code = cli.main(["bench", "--dir", str(tmp_path), "--script", "tiny", "--quick"])
    assert code == 0
    code = cli.main(["bench", "--dir", str(tmp_path), "--script", "fails"])
    assert code == 1
    code, _, err = run(capsys, "bench", "--dir", str(tmp_path), "--script", "nope")
    assert_clean_error(code, err, "no benchmark script", "bench_tiny")
    code, _, err = run(capsys, "bench", "--dir", str(tmp_path / "empty"))
    assert_clean_error(code, err, "no benchmarks")


def test_progress_fallback_counter(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails
    items = list(cli._progress(range(3), 3, "work"))
    assert items == [0, 1, 2]
    assert "work 3/3" in capsys.readouterr().err
