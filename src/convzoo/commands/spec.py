"""Build a network written in the lecture's compact notation and print it layer by layer:
output shape, parameters and multiply-accumulates.

Examples:
  convzoo spec "6c5w1s0p 2w2s 16c5w1s0p 2w2s"
  convzoo spec "Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)"
  convzoo spec "96c11w4s0p (LRN) 3w2s" --input 3x227x227

The grammar is in docs/notation.md."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples on their lines
    p.add_argument("text", metavar="TEXT", help="the network in the compact notation (quote it)")
    p.add_argument(
        "--input",
        metavar="CxHxW",
        default=None,
        help="input size: CxHxW, HxW or N (default: the text's Input(CxHxW), else 32x32; channels: the text's or 1)",
    )
    p.add_argument("--json", action="store_true", help="print the layers as JSON")


def _input_size(text: str | None) -> tuple[int, ...] | None:
    """(C, H, W), or (H, W) where the text gives no channels (then the notation's `Input(C)`
    or 1 channel, as without --input)."""
    from ..cli_args import input_size_parts

    if text is None:
        return None
    c, h, w = input_size_parts(text)
    return (h, w) if c is None else (c, h, w)


def run(args: argparse.Namespace) -> int:
    from ..notation.summary import summarize

    result = summarize(args.text, input_size=_input_size(args.input))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.table import Table

    from ..console import make_console

    c, h, w = result["input_size"]
    print(result["spec"])
    table = Table(title=f"input {c}x{h}x{w}", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("layer")
    table.add_column("module")
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    for row in result["layers"]:
        shape = "x".join(str(d) for d in row["output_shape"])
        table.add_row(str(row["index"]), row["spec"], row["name"], shape, f"{row['params']:,}", f"{row['macs']:,}")
    console = make_console()
    if console.is_terminal:
        console = make_console(width=max(100, console.width))
    console.print(table)
    print(f"total: {result['total_params']:,} parameters, {result['macs']:,} MACs")
    return 0
