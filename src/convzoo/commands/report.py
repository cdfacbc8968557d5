"""One self-contained HTML report of a model or a training run.

MODEL is a registry name; RUN_DIR a run folder (or a checkpoint file). The page holds the
summary table, the memory breakdown, the architecture diagram and, for trained runs, the
training curves and the first-layer filters. Images are embedded: the file needs nothing else.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="MODEL|RUN_DIR", help="registry name, run folder or checkpoint file")
    p.add_argument("--out", required=True, metavar="FILE.html", help="the HTML file to write")
    p.add_argument("--input", default=None, metavar="CxHxW",
                   help="input size: CxHxW, HxW or N (3 channels) (default: the model's or the run's)")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..cli_args import parse_input_size
    from ..viz.report import build_report

    if not args.out.lower().endswith((".html", ".htm")):
        raise ConfigError(f"--out {args.out!r}: expected a file ending in .html")
    size = parse_input_size(args.input) if args.input else None
    path = build_report(args.ref, size).write(args.out)
    print(f"wrote {path}")
    return 0
