"""The wheel carries what convzoo needs at run time: shipped weights, their recipes, the page."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_the_package_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("convzoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src/convzoo/weights").rglob("*")
               if p.is_file() and p.suffix in (".safetensors", ".json", ".toml")}  # fmt: skip
    assert shipped and shipped <= names, sorted(shipped - names)
    static = ROOT / "src/convzoo/serve/static"
    if static.is_dir():
        page = {p.relative_to(ROOT / "src").as_posix() for p in static.rglob("*") if p.is_file()}
        assert page <= names, sorted(page - names)
    assert "convzoo/py.typed" in names
