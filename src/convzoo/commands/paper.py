"""The lecture's tables: published numbers next to the ones computed on the zoo's networks.

TABLE is one of lenet, alexnet, vgg, googlenet, resnet, densenet. Each row shows the
published figure (as printed, and in plain units), the computed one, the relative
difference, and a note on every row that differs by more than 2% (the authors'
convention, or the arithmetic showing an error in the table)."""

from __future__ import annotations

import argparse

TABLES = ("lenet", "alexnet", "vgg", "googlenet", "resnet", "densenet")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", metavar="TABLE", choices=TABLES, help="one of: " + ", ".join(TABLES))
    p.add_argument("--json", action="store_true", help='print {"table", "rows": [{"row", "quantity", "published", ...}]}')


def run(args: argparse.Namespace) -> int:
    import json

    from ..analysis.papers import paper_table
    from ..analysis.render import print_paper_table

    table = paper_table(args.table)
    if args.json:
        print(json.dumps(table.to_dict(), indent=2))
    else:
        print_paper_table(table)
    return 0
