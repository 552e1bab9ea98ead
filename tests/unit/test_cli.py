"""Every CLI subcommand end to end, in-process, with its error paths."""

from __future__ import annotations

import csv
import io
import json
import subprocess
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
    "sub",
    [
        "demo",
        "formats",
        "info",
        "compare",
        "check-format",
        "reproduce",
        "qat",
        "bench",
        "warmup",
        "gemm-error",
    ],
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
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    assert_clean_error(code, err, "unknown data set 'cauchy'", "gaussian")


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
    code, _, err = run(capsys, "reproduce", "ste-platou")  # a typo gets the closest names
    assert_clean_error(code, err, "did you mean ste-plateau")
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


# ---- issue 20: every format kind, --json/--csv, suggestions, errors before output ------------


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_version_and_python_dash_m(capsys):
    import qemu_arrays as qa

    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"qemu-arrays {qa.__version__}"
    done = subprocess.run(
        [sys.executable, "-m", "qemu_arrays", "formats", "--kind", "block", "--csv"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["name"] for r in rows} >= {"mxfp8_e4m3", "mxfp4_e2m1", "nvfp4"}


def test_compare_takes_element_scaled_and_block_formats(capsys):
    import qemu_arrays as qa

    doc = run_json(capsys, "compare", "--formats", "int8,mxfp8_e4m3,nvfp4", "--data",
                   "gaussian", "--n", "2048", "--no-progress")  # fmt: skip
    rows = {r["format"]: r for r in doc["rows"]}
    assert set(rows) == {"int8", "mxfp8_e4m3", "nvfp4"}
    x = cli.builtin_samples(2048, 0)["gaussian"]
    for name in ("mxfp8_e4m3", "nvfp4"):  # block formats: the library's own blocks
        want = cli.error_stats(x, qa.quantize(x, name))
        assert rows[name]["mse"] == pytest.approx(want["mse"], rel=1e-12)
        assert rows[name]["sqnr_db"] == pytest.approx(want["sqnr_db"], rel=1e-12)
        assert rows[name]["max_abs_err"] == pytest.approx(want["max_abs_err"], rel=1e-12)
    assert rows["int8"]["clipped"] == 0.0
    assert 0 < rows["mxfp8_e4m3"]["clipped"] < 0.05  # MX's floor scale saturates a few values
    assert rows["nvfp4"]["bits_per_value"] == 4.5
    assert rows["int8"]["sqnr_db"] > rows["nvfp4"]["sqnr_db"]


def test_compare_per_channel_and_per_group(capsys, tmp_path):
    import qemu_arrays as qa

    rng = np.random.default_rng(1)
    w = (rng.standard_normal((32, 96)) * np.logspace(-2, 1, 32)[:, None]).astype(np.float32)
    path = tmp_path / "w.npy"
    np.save(path, w)
    base = ("compare", "--npy", str(path), "--formats", "int8", "--no-progress")

    def sqnr(*extra):
        return run_json(capsys, *base, *extra)["rows"][0]

    tensor, channel, group = sqnr(), sqnr("--axis", "0"), sqnr("--block-size", "32")
    assert channel["sqnr_db"] > tensor["sqnr_db"] + 5  # rows of very different ranges
    assert group["sqnr_db"] > tensor["sqnr_db"] + 5
    y = qa.quantize(w, "int8", scale="absmax", block_size=32)
    assert group["mse"] == pytest.approx(cli.error_stats(w, y)["mse"], rel=1e-12)
    y = qa.quantize(w, "int8", scale="absmax", axis=0)
    assert channel["mse"] == pytest.approx(cli.error_stats(w, y)["mse"], rel=1e-12)
    # float element formats scale the same way; block formats take --axis as their block axis
    doc = run_json(capsys, *base[:4], "float8_e4m3fn,mxfp4_e2m1", "--axis", "0", "--block-axis",
                   "0", "--no-progress")  # fmt: skip
    rows = {r["format"]: r for r in doc["rows"]}
    want = cli.error_stats(w, qa.quantize(w, "mxfp4_e2m1", axis=0))
    assert rows["mxfp4_e2m1"]["mse"] == pytest.approx(want["mse"], rel=1e-12)
    assert "per-channel along axis 0" in doc["setup"]


def test_compare_csv_and_rounding_names(capsys):
    code, out, err = run(capsys, "compare", "--formats", "int4,nvfp4", "--data", "laplace",
                         "--n", "1024", "--rounding", "Nearest-Away", "--csv", "--no-progress")  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["format"] for r in rows] == ["int4", "nvfp4"]
    assert {"data", "mse", "sqnr_db", "max_abs_err", "clipped"} <= set(rows[0])
    near = run_json(capsys, "compare", "--formats", "int4", "--data", "laplace", "--n", "1024",
                    "--no-progress")["rows"][0]  # fmt: skip
    stoch = run_json(capsys, "compare", "--formats", "int4", "--data", "laplace", "--n", "1024",
                     "--rounding", "STOCHASTIC", "--no-progress")["rows"][0]  # fmt: skip
    assert stoch["mse"] > near["mse"]  # stochastic rounding adds variance
    code, out, err = run(capsys, "compare", "--rounding", "nearest", "--no-progress")
    assert_clean_error(code, err, "unknown rounding mode 'nearest'", "nearest_even", "nearest_away")
    assert out == ""


def test_rounding_name_hint_in_the_library():
    import qemu_arrays as qa

    with pytest.raises(TypeError, match=r"hint: Rounding\.NEAREST_EVEN or Rounding\.NEAREST_AWAY"):
        qa.quantize(np.ones(3, np.float32), "float8_e4m3fn", rounding="nearest")


def test_compare_option_errors(capsys, tmp_path):
    cases = [
        (("--axis", "3"), "out of range"),
        (("--block-axis", "-2"), "--block-axis -2 is out of range"),
        (("--axis", "0", "--block-size", "8", "--formats", "nvfp4"), "block formats: --block-axis"),
        (("--axis", "0", "--formats", "int8"), "--block-size"),
        (("--block-size", "0"), "--block-size must be > 0"),
        (("--clip-sigmas", "3", "--formats", "nvfp4"), "block formats"),
        (("--block-size", "16", "--formats", "mxfp4_e2m1"), "block formats have their own"),
        (("--formats", ","), "at least one format"),
        (("--plot", str(tmp_path / "no" / "x.png")), "does not exist"),
        (("--plot", str(tmp_path / "x.svg")), ".png"),
    ]
    for extra, needle in cases:
        code, out, err = run(capsys, "compare", "--n", "256", "--no-progress", *extra)
        assert_clean_error(code, err, needle)
        assert out == "", extra  # errors come before any output


def test_errors_before_output(capsys, tmp_path):
    code, out, err = run(capsys, "info", "float8_e4m3fn", "--plot", str(tmp_path / "a" / "b.png"))
    assert_clean_error(code, err, "does not exist")
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (("info", "fp8"), ("float8_e4m3fn", "float8_e5m2", "mxfp8_e4m3")),
        (("info", "nvfp"), ("nvfp4",)),
        (("compare", "--formats", "int8,mxfp8_e4m4"), ("mxfp8_e4m3",)),
        (("compare", "--data", "gausian"), ("did you mean gaussian",)),
        (("formats", "--kind", "flaot"), ("did you mean float",)),
        (("check-format", "float6_e2m3"), ("float6_e2m3fn",)),
        (
            ("check-format", "--exponent-bits", "3", "--mantissa-bits", "2", "--specials", "FNU"),
            ("FN", "FNUZ"),
        ),  # fmt: skip
        (("comapre",), ("did you mean compare",)),
    ],
)
def test_every_name_argument_suggests(capsys, argv, needles):
    code, out, err = run(capsys, *argv)
    assert_clean_error(code, err, *needles)
    assert out == ""


def test_bench_script_suggestion(capsys, tmp_path):
    (tmp_path / "bench_tiny.py").write_text("print('x')\n")
    code, _, err = run(capsys, "bench", "--dir", str(tmp_path), "--script", "tin")
    assert_clean_error(code, err, "did you mean bench_tiny")


def test_json_on_every_table_command(capsys):
    demo = run_json(capsys, "demo", "--n", "256")
    assert {r["format"] for r in demo["rows"]} == set(cli.DEMO_FORMATS)
    fmts = run_json(capsys, "formats")
    kinds = {r["name"]: r["kind"] for r in fmts["rows"]}
    assert kinds["int8"] == "int"
    assert kinds["nvfp4"] == "block"
    assert kinds["float8_e4m3fn"] == "float"
    info = run_json(capsys, "info", "nvfp4")
    assert info["format"]["block_size"] == 16
    assert info["format"]["largest_value"] == 6 * 448
    assert info["format"]["element"] == "float4_e2m1fn"
    info = run_json(capsys, "info", "float8_e4m3fn")
    assert info["format"]["max"] == 448
    assert info["format"]["binades"][0] == {"exponent": -9, "values": 1, "spacing": 2.0**-9}
    chk = run_json(capsys, "check-format", "float4_e2m1fn", "--quick")
    assert chk["ok"] is True
    assert {r["status"] for r in chk["rows"]} <= {"passed", "skipped"}
    code, out, _ = run(capsys, "info", "int4", "--csv")
    assert code == 0
    assert out.splitlines()[0] == "property,value"


def test_info_binades_have_no_nan_and_block_formats_show_their_range(capsys):
    code, out, _ = run(capsys, "info", "float8_e4m3fn")
    assert code == 0
    assert "nan" not in out.lower().replace("inf / nan", "")
    assert "2^-9" in out
    code, out, _ = run(capsys, "info", "mxfp4_e2m1")
    assert code == 0
    assert "a block holds +-6 x its scale" in out
    code, out, _ = run(capsys, "check-format", "nvfp4", "--quick")
    assert code == 0
    assert "checking its element format float4_e2m1fn" in out


def test_formats_table_left_aligns_names(capsys):
    code, out, _ = run(capsys, "formats")
    assert code == 0
    lines = out.splitlines()
    assert any(ln.startswith("int8  ") for ln in lines)
    assert any(ln.startswith("bfloat16  ") for ln in lines)
    assert any(ln.startswith("nvfp4  ") for ln in lines)


def test_plots_for_every_format_kind(tmp_path):
    from qemu_arrays.plotting import plot_comparison, plot_value_grid

    sizes = {}
    for name in ("int4", "float8_e4m3fn", "nvfp4"):
        png = plot_value_grid(name, tmp_path / f"{name}.png")
        head = png.read_bytes()
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        sizes[name] = int.from_bytes(head[20:24], "big")  # height from the IHDR chunk
    assert sizes["nvfp4"] > sizes["int4"]  # the block view is a third panel
    with pytest.raises(ValueError, match="at most 16 bits"):
        plot_value_grid("float32", tmp_path / "f.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_comparison([], {}, tmp_path / "c.png")


def test_gemm_error_json_plot_and_errors(capsys, tmp_path):
    png = tmp_path / "g.png"
    code, out, _ = run(capsys, "gemm-error", "--k", "8,64", "--accumulators", "bfloat16,exact",
                       "--orders", "sequential,blocked16", "--m", "3", "--n", "2", "--json",
                       "--plot", str(png))  # fmt: skip
    assert code == 0
    rows = json.loads(out)["rows"]
    # exact has one row per K (and one per blocked order): 2 + 2 + 1 + 1 per K
    assert len(rows) == 2 * 4
    by = {(r["K"], r["accumulator"], r["order"]): r["rel_error"] for r in rows}
    assert by[(64, "bfloat16", "sequential")] > 100 * by[(64, "exact", "exact")]
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, _, err = run(capsys, "gemm-error", "--orders", "zigzag")
    assert_clean_error(code, err, "--orders", "blockedN")
    code, _, err = run(capsys, "gemm-error", "--input", "int8")
    assert_clean_error(code, err, "--input")


def test_warmup_bad_input(capsys):
    for argv, needles in (
        (["--formats", "float8_e4m3fn,nosuch"], ("nosuch",)),
        (["--formats", "int8", "--dtypes", "int8"], ("dtype", "float32", "allowed")),
        (["--formats", ","], ("--formats",)),
    ):
        code, _, err = run(capsys, "warmup", *argv)
        assert_clean_error(code, err, *needles)


def test_warmup_reports_each_format_and_the_cache(capsys):
    """One line per format and dtype with what it compiled; a counter that counts only
    qemu_arrays' compiles (the real kernels compile, or load from the disk cache, here; the
    notice test checks that a second process loads a real kernel from the cache)."""
    from qemu_arrays import cli_warmup

    code, out, err = run(capsys, "warmup", "--formats", "float8_e4m3fn", "--dtypes", "float32")
    assert code == 0, err
    assert "qemu_arrays: compiling" not in err  # warmup reports its own progress
    line = [ln for ln in out.splitlines() if ln.startswith("float8_e4m3fn")]
    assert len(line) == 1
    assert "float32" in line[0]
    assert "kernels compiled" in line[0] or "all cached already" in line[0]
    assert "cached in" in out

    from numba import njit

    def ours(v):
        return v * 2

    ours.__module__ = "qemu_arrays.fake"  # counted: one of qemu_arrays' functions
    with cli_warmup._CompileCounter() as counter:
        njit(lambda v: v + 1)(1)  # this test module's: not counted
        njit(ours)(1)
    assert counter.count == 1
