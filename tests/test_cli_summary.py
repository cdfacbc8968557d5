"""`convzoo summary` and `convzoo paper` as a user runs them (one real subprocess each, the rest in-process)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from convzoo.cli import main


def convzoo(*args):
    return subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True)


@pytest.fixture
def run(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")

    def call(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_summary_json_subprocess():
    res = convzoo("summary", "lenet5", "--json", "--batch", "2")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["total_params"] == d["trainable_params"] == 61_706
    assert d["macs"] == 2 * 416_520 and d["batch_size"] == 2
    for key in ("param_bytes", "forward_activation_bytes", "training_bytes", "peak_inference_bytes"):
        assert d["memory"][key] > 0
    layer = next(x for x in d["layers"] if x["type"] == "Conv2d")
    assert {"name", "type", "output_shape", "params", "macs"} <= set(layer)
    assert layer["output_shape"] == [2, 6, 28, 28] and layer["macs"] == 2 * 117_600


def test_summary_error_subprocess():
    res = convzoo("summary", "lenet5", "--input", "3x0x224")
    assert res.returncode == 2 and "CxHxW" in res.stderr and "Traceback" not in res.stderr


def test_summary_table_csv_markdown(run):
    code, out, _ = run("summary", "lenet5")
    assert code == 0 and "61,706" in out and "416,520" in out and "KiB" in out
    code, out, _ = run("summary", "lenet5", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(int(r["params"]) for r in rows) == 61_706 and sum(int(r["macs"]) for r in rows) == 416_520
    code, out, _ = run("summary", "resnet18", "--markdown", "--depth", "1", "--input", "3x64x64")
    assert out.count("\n| `") == 4 and "| parameters | 11,689,512" in out  # stem, stages, final, head


def test_summary_errors_exit_2(run):
    for args, words in (
        (("--input", "abc"), "CxHxW"),
        (("--input", "1x16x16"), "pre_logits"),
        (("--batch", "0"), "--batch"),
    ):
        code, _, err = run("summary", "lenet5", *args)
        assert code == 2 and words in err, (args, err)
    code, _, err = run("summary", "lenet")
    assert code == 2 and "lenet5" in err


def test_paper_json_and_table(run):
    code, out, _ = run("paper", "vgg", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["table"] == "vgg"
    assert {"row", "quantity", "published", "computed", "rel_diff", "note"} <= set(d["rows"][0])
    code, out, _ = run("paper", "googlenet")
    assert code == 0 and "inception (4c)" in out and "K = 1024" in out
    with pytest.raises(SystemExit) as exc:
        run("paper", "inception")
    assert exc.value.code == 2
