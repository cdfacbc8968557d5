"""Tables printed to a pipe or a file are never cut, and progress in a pipe is plain lines."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from convzoo import _table


def _run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_models_in_a_pipe_shows_every_name_and_count_in_full():
    text = _run("models")
    assert "…" not in text
    for row in _table.rows():
        line = next((ln for ln in text.splitlines() if f" {row['name']} " in ln), None)
        assert line is not None, f"{row['name']} missing"
        assert f"{row['params']:,}" in line, f"{row['name']}: {row['params']:,} cut in {line!r}"


def test_summary_in_a_pipe_shows_full_types_and_numbers():
    from convzoo import analyze

    text = _run("summary", "vgg16")
    report = analyze("vgg16")
    assert "…" not in text
    assert "AdaptiveAvgPool2d" in text
    assert f"{report.total_params:,}" in text and f"{report.macs:,}" in text
    for row in report.layers:
        if row.name and row.depth <= 3 and row.cum_params:
            assert f"{row.cum_params:,}" in text


def test_paper_and_spec_in_a_pipe_are_not_cut():
    assert "…" not in _run("paper", "densenet")
    text = _run("spec", "Input(3x224x224)->(Conv)96c11w4s0p->(MaxPool)3w2s->(Flat)->4096fc->4096fc->1000fc")
    assert "…" not in text and "265,818,112" in text  # 64,896 x 4,096 + 4,096: the first fc layer
    assert "286,731,368" in text


def test_progress_in_a_pipe_prints_plain_lines():
    from rich.console import Console

    from convzoo.train.metrics import Progress

    buf = io.StringIO()
    bar = Progress(100, console=Console(file=buf, width=10_000), interval=0.0)
    for step in range(1, 101):
        bar.update(step, epoch=0, stats={"loss": 0.5, "top1": 90.0, "images_per_second": 1234.0})
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 100 and "\x1b" not in buf.getvalue() and "\r" not in buf.getvalue()
    assert lines[-1].startswith("epoch 1 step 100/100 (100.0%) loss 0.5000 acc 90.00% 1,234 img/s")
    quiet = io.StringIO()
    bar = Progress(1000, console=Console(file=quiet, width=10_000), interval=3600.0)
    for step in range(1, 1001):
        bar.update(step)
    assert len(quiet.getvalue().splitlines()) == 1  # only the last step, within the interval
