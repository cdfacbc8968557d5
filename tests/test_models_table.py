"""`convzoo models` answers from a table shipped with the package; it equals the registry."""

from __future__ import annotations

import json
import subprocess
import sys

from convzoo import _table


def test_shipped_table_equals_the_registry():
    shipped = _table.load_rows()
    assert shipped is not None, f"{_table.TABLE_PATH} is missing: run `python -m convzoo._table`"
    built = _table.build_rows()
    assert [r["name"] for r in shipped] == [r["name"] for r in built]
    for ours, theirs in zip(shipped, built):
        assert ours == theirs, f"{ours['name']}: the shipped table is stale, run `python -m convzoo._table`"


def test_models_command_does_not_import_torch():
    code = (
        "import sys, json, io, contextlib\n"
        "from convzoo.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    assert main(['models', 'resnet*', '--json']) == 0\n"
        "    assert main(['models']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(buf.getvalue().split('\\n]\\n')[0] + '\\n]')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == [r["name"] for r in _table.rows("resnet*")]
    assert rows[0]["name"] == "resnet18" and rows[0]["params"] == 11_689_512  # torchvision's count


def test_unknown_pattern_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "convzoo", "models", "nosuch*"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no model matches 'nosuch*'" in out.stderr and "Traceback" not in out.stderr
