"""List the registered models with their family, parameters and default input.

PATTERN is a shell-style pattern (for example 'resnet*' or '*_bn'). Parameters are
counted on the built model (1000 classes unless the model's default differs)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN", help="shell-style name pattern (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    from .._table import rows as table_rows
    from ..errors import ConfigError

    # the shipped table (src/convzoo/models_table.json, tested against the registry): no torch import
    rows = table_rows(args.pattern)
    if not rows:
        raise ConfigError(f"no model matches {args.pattern!r}; `convzoo models` lists them all")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    from ..console import make_console

    table = Table(title=f"convzoo models ({len(rows)})", header_style="bold")
    table.add_column("model", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("default input", justify="right", no_wrap=True)
    table.add_column("min", justify="right")
    table.add_column("classes", justify="right")
    for r in rows:
        c, h, w = r["default_input"]
        table.add_row(r["name"], r["family"], f"{r['params']:,}", f"{c}x{h}x{w}", str(r["min_input"]), str(r["num_classes"]))
    make_console().print(table)
    return 0
