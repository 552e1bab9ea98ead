"""``qemu-arrays qat``: quantization-aware training on scikit-learn's digits, per format."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_cli import assert_clean_error, run

torch = pytest.importorskip("torch", reason="qat trains a PyTorch model")
pytest.importorskip("sklearn", reason="qat uses scikit-learn's bundled digits")


def test_qat_table_json_and_the_host_threads(capsys, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        png = tmp_path / "qat.png"
        code, out, _ = run(capsys, "qat", "--steps", "6", "--no-progress", "--json", "--plot",
                           str(png), "--formats", "int8,float4_e2m1fn:same:float8_e5m2,nvfp4")  # fmt: skip
        assert code == 0
        assert torch.get_num_threads() == 2  # set to one for the run, then restored
    finally:
        torch.set_num_threads(before)
    rows = json.loads(out)["rows"]
    assert [r["weights"] for r in rows] == ["float32", "int8", "float4_e2m1fn", "nvfp4"]
    assert [r["kind"] for r in rows] == ["float32", "INT", "FP", "NVFP4"]
    assert rows[2]["activations"] == "float4_e2m1fn"
    assert rows[2]["gradients"] == "float8_e5m2"
    assert rows[1]["activations"] == rows[1]["gradients"] == "-"
    assert rows[0]["step_ratio"] == 1.0
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["step_ms"] > 0
    # six steps from the same start: the runs differ only by their formats, and they do differ
    assert len({round(r["final_loss"], 6) for r in rows}) > 1
    assert png.stat().st_size > 10_000


def test_qat_table(capsys):
    code, out, _ = run(capsys, "qat", "--steps", "2", "--no-progress", "--formats", "int4")
    assert code == 0
    assert "test acc" in out
    assert "int4" in out
    assert "float32" in out


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (("--formats", "fp8"), ("unknown format 'fp8'", "float8_e4m3fn")),
        (("--formats", "int8:int8:int8:int8"), ("at most WEIGHTS:ACTIVATIONS:GRADIENTS",)),
        (("--formats", "int8", "--activations", "int9"), ("unknown format 'int9'",)),
        (("--steps", "0"), ("--steps must be > 0",)),
        (("--formats", ","), ("--formats is empty",)),
    ],
)
def test_qat_errors_before_training(capsys, argv, needles):
    code, out, err = run(capsys, "qat", "--no-progress", *argv)
    assert out == ""
    assert_clean_error(code, err, *needles)
