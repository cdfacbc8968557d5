"""`viz compare` averages only runs whose configurations differ by seed, and says so (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_viz import convzoo, fake_run


def test_compare_averages_only_runs_that_differ_by_seed(tmp_path):
    """A 10-epoch and a 1-epoch LeNet are two points, not one "lenet5 (n=2)" (issue 15)."""
    from convzoo.viz.compare import compare_points

    def run(name: str, acc: float, **config) -> Path:
        folder = fake_run(tmp_path / name, "lenet5", [acc], [acc], 61_706, 416_520)
        full = {"model": "lenet5", "data": "fashion-mnist", "epochs": 10, "seed": 0, "out": str(folder), **config}
        (folder / "config.json").write_text(json.dumps(full))
        return folder

    long0, long1 = run("long-s0", 90.0), run("long-s1", 92.0, seed=1, threads=1)
    short = run("short", 75.0, epochs=1)
    points, notes = compare_points([long0, short, long1])
    by_label = {p.label: p for p in points}
    assert sorted(by_label) == ["lenet5 (epochs=1)", "lenet5 (epochs=10)"]
    assert by_label["lenet5 (epochs=10)"].n == 2 and by_label["lenet5 (epochs=10)"].top1 == pytest.approx(91.0)
    assert by_label["lenet5 (epochs=1)"].n == 1 and by_label["lenet5 (epochs=1)"].top1 == 75.0
    assert "lenet5 (epochs=10): 2 runs whose configurations differ only by seed (0, 1), averaged" in notes
    assert any("lenet5: 2 configurations that differ in epochs, drawn apart" in n for n in notes)
    res = convzoo("viz", "compare", str(long0), str(short), str(long1), "--out", str(tmp_path / "c.svg"))
    assert res.returncode == 0, res.stderr
    assert "differ in epochs, drawn apart" in res.stdout and "lenet5 (epochs=1)" in (tmp_path / "c.svg").read_text()
    res = convzoo("viz", "compare", str(long0), str(short), "--labels", "a", "a", "--out", str(tmp_path / "d.svg"))
    assert res.returncode == 2 and "differ in epochs; only runs that differ by seed are averaged" in res.stderr
    assert res.stderr.strip().count("\n") == 0
