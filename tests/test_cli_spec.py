"""`convzoo spec` as a user runs it: the lecture's LeNet lines, JSON, and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

CHAIN = "Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)"


def convzoo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True)


def test_lecture_chain_table():
    res = convzoo("spec", CHAIN, "--input", "1x32x32")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.splitlines()[0] == CHAIN.replace("Input->", "Input(1x32x32)->")
    for shape in ("6x28x28", "6x14x14", "16x10x10", "16x5x5"):
        assert shape in out
    assert "total: 61,706 parameters, 416,520 MACs" in out


def test_short_form_json_with_the_default_input(capsys):
    from convzoo.cli import main  # in-process: the subprocess tests above and below cover the command line

    assert main(["spec", "6c5w1s0p 2w2s 16c5w1s0p 2w2s", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_size"] == [1, 32, 32]
    assert [row["output_shape"] for row in data["layers"]] == [[6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5]]
    assert [row["name"] for row in data["layers"]] == ["conv1", "pool1", "conv2", "pool2"]
    assert data["total_params"] == 2_572 and data["engine"] in ("analysis", "shape-walk")


def test_malformed_text_exits_2_with_a_caret_and_no_traceback():
    res = convzoo("spec", "6c5w1s0p 2w2s 16c5w1s0p 2w2s (Flat)300 120fc")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert lines[0].startswith("convzoo spec: error: ") and "declares 300" in lines[0] and "flattens to 400" in lines[0]
    assert lines[-1].index("^") == lines[-2].index("(Flat)300")


def test_input_that_contradicts_the_declared_size_and_a_bad_input_flag():
    res = convzoo("spec", CHAIN, "--input", "1x28x28")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "declares 400 values, but its input 16x4x4 flattens to 256" in res.stderr
    res = convzoo("spec", CHAIN, "--input", "32x")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "CxHxW" in res.stderr
