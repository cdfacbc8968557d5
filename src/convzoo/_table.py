"""The registry's metadata as a table shipped with the package, so that `convzoo models`
answers without importing torch.

`models_table.json` holds one row per registered model: name, family, parameters counted
on the built model, the published count, default and minimum input, classes and paper.
`python -m convzoo._table` regenerates it from the registry (building every model on the
meta device); a test checks that the shipped file equals what that gives, so it cannot
drift from the code.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name("models_table.json")


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def build_rows() -> list[dict[str, Any]]:
    """The table computed from the registry (imports torch and every family)."""
    from .meta import meta_build
    from .registry import create_model, list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        with meta_build():  # no real weights: counting needs only shapes
            model = create_model(name)
        rows.append(
            {
                "name": name,
                "family": info.family,
                "params": sum(p.numel() for p in model.parameters()),
                "published_params": info.params,
                "default_input": list(info.default_input),
                "min_input": info.min_input,
                "num_classes": info.num_classes,
                "paper": info.paper,
            }
        )
    return rows


def load_rows() -> list[dict[str, Any]] | None:
    """The shipped table, or None where it is missing or unreadable (then build it)."""
    try:
        rows = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rows if isinstance(rows, list) else None


def rows(pattern: str = "*") -> list[dict[str, Any]]:
    """Rows of the models whose names match the shell-style `pattern`, in natural order."""
    table = load_rows()
    if table is None:
        table = build_rows()
    found = [r for r in table if fnmatch.fnmatchcase(r["name"], pattern)]
    return sorted(found, key=lambda r: _natural_key(r["name"]))


def write(path: Path = TABLE_PATH) -> None:
    """Regenerate the shipped table."""
    path.write_text(json.dumps(build_rows(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":  # python -m convzoo._table [PATH]
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else TABLE_PATH)
