"""`convzoo export` and `convzoo.export.export_model`: ONNX (onnxruntime parity) and
torch.export programs, dynamic batch, metadata, the parity failure exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import convzoo
from convzoo.cli import main

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from convzoo.export import export_model, read_onnx_metadata  # noqa: E402


def test_help_does_not_import_torch_or_onnx():
    code = ("import sys; from convzoo.cli import main\n"
            "try:\n    main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert not any(m in sys.modules for m in ('torch', 'onnx', 'onnxruntime', 'onnxscript')), 'imported'")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--dynamic-batch" in out.stdout and "--atol" in out.stdout


def test_onnx_with_weights_dynamic_batch_and_metadata(tmp_path, capsys):
    out = tmp_path / "lenet5.onnx"
    code = main(["export", "lenet5", "--weights", "fashion-mnist", "--dynamic-batch", "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] and report["exporter"] == "torchscript"
    assert [c["batch"] for c in report["checks"]] == [2, 1, 3]
    assert all(c["max_abs_error"] <= c["tolerance"] for c in report["checks"])
    meta = read_onnx_metadata(out)
    weights = convzoo.create_model("lenet5", weights="fashion-mnist").weights_meta
    assert meta["model"] == "lenet5" and meta["convzoo_version"] == convzoo.__version__
    assert json.loads(meta["input_size"]) == list(weights["input_size"])
    assert json.loads(meta["classes"]) == list(weights["classes"])
    assert json.loads(meta["mean"]) == list(weights["mean"]) and json.loads(meta["std"]) == list(weights["std"])


def test_pt2_program_and_parity_failure_exit_status(tmp_path, capsys):
    out = tmp_path / "r.pt2"
    assert main(["export", "resnet20", "--format", "pt2", "--input", "3x8x8", "--dynamic-batch", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "batch 1: max abs error" in text and "batch 3" in text
    program = torch.export.load(str(out))
    assert program.module()(torch.randn(5, 3, 8, 8)).shape == (5, 10)
    # an impossible tolerance: the check must fail, with exit status 2
    code = main(["export", "resnet20", "--input", "3x8x8", "--atol", "1e-30", "--out", str(tmp_path / "r.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "differs from PyTorch" in err


def test_user_errors(tmp_path, capsys):
    assert main(["export", "resnet2O"]) == 2 and "unknown model" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nowhere")]) == 2 and "no run folder" in capsys.readouterr().err
    assert main(["export", "alexnet", "--input", "3x20x20", "--out", str(tmp_path / "a.onnx")]) == 2
    assert "too small" in capsys.readouterr().err


@pytest.mark.slow
def test_dynamo_exporter_where_the_legacy_one_fails(tmp_path):
    # vgg_a_lrn: the LRN's 5-d pooling hides the map size from the legacy exporter
    torch.manual_seed(0)
    model = convzoo.create_model("vgg_a_lrn", num_classes=10)
    res = export_model(model, tmp_path / "v.onnx", input_size=(3, 32, 32), dynamic_batch=True)
    assert res.exporter == "dynamo" and "adaptive_avg_pool2d" in res.fallback_reason and res.ok
