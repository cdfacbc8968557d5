"""List the registered models with their family, parameters and default input.

PATTERN is a shell-style pattern (for example 'resnet*' or '*_bn'). Parameters are
counted on the built model (1000 classes unless the model's default differs)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN", help="shell-style name pattern (default: all)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _count_params(name: str) -> int:
    from ..meta import meta_build
    from ..registry import create_model

    with meta_build():  # no real weights: counting needs only shapes
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..registry import list_models, model_info

    names = list_models(args.pattern)
    if not names:
        raise ConfigError(f"no model matches {args.pattern!r}; `convzoo models` lists them all")
    rows = []
    for name in names:
        info = model_info(name)
        rows.append(
            {
                "name": name,
                "family": info.family,
                "params": _count_params(name),
                "published_params": info.params,
                "default_input": list(info.default_input),
                "min_input": info.min_input,
                "num_classes": info.num_classes,
                "paper": info.paper,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"convzoo models ({len(rows)})", header_style="bold")
    table.add_column("model", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("params", justify="right")
    table.add_column("default input", justify="right")
    table.add_column("min", justify="right")
    table.add_column("classes", justify="right")
    for r in rows:
        c, h, w = r["default_input"]
        table.add_row(r["name"], r["family"], f"{r['params']:,}", f"{c}x{h}x{w}", str(r["min_input"]), str(r["num_classes"]))
    Console().print(table)
    return 0
