"""Parameters, multiply-accumulates (MACs) and memory of a model, layer by layer.

Nothing is allocated: the model is built and run on PyTorch's meta device. MACs count
convolutions and linear layers (one multiply-add = 1; FLOPs = 2 x MACs); batch norm,
activations, pooling and additions are counted apart as 'other ops'. Memory: parameters,
activations written by the forward pass, peak inference memory, and a training estimate
(parameters + gradients + optimizer state + activations saved for backward).
docs/analysis.md gives the conventions."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a registered model name (`convzoo models` lists them)")
    p.add_argument("--input", metavar="CxHxW", default=None,
                   help="input size: CxHxW, HxW or N, e.g. 3x224x224 or 224 (default: the model's)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="batch size for the memory figures (default 1)")
    p.add_argument("--depth", type=int, default=3, metavar="N", help="depth of the module tree shown (default 3)")
    p.add_argument(
        "--compare",
        metavar="OTHER",
        default=None,
        help="compare with OTHER (a model name, 'name(unit=...)' or notation): layers added, removed, changed and the deltas",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the full report as JSON")
    fmt.add_argument("--csv", action="store_true", help="print one CSV line per module")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if args.batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {args.batch}")
    if args.depth < 0:
        raise ConfigError(f"--depth must be 0 or more, got {args.depth}")
    from ..analysis import analyze
    from ..analysis import render
    from ..cli_args import input_size_parts

    size = None
    if args.input is not None:
        c, h, w = input_size_parts(args.input)
        if c is None:  # HxW or N: the model's own channels
            from ..registry import model_info

            c = model_info(args.model).default_input[0]
        size = (c, h, w)
    if args.compare is not None:
        import json

        from ..analysis.compare import compare

        result = compare(args.model, args.compare, input_a=size, batch_size=args.batch)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        print(f"{args.model} -> {args.compare}")
        for key, value in result["delta"].items():
            print(f"  {key}: {result['a'][key]} -> {result['b'][key]} ({'-' if value is None else f'{value:+,}'})")
        counts = result["counts"]
        print("  layers: " + ", ".join(f"{counts[k]} {k}" for k in ("same", "changed", "added", "removed")))
        for row in result["layers"]:
            if row["op"] != "same":
                side = row["a"] or row["b"]
                detail = ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in row["changes"].items())
                print(f"  {row['op']:8} {side['name']} ({side['type']}) {detail}".rstrip())
        return 0
    report = analyze(args.model, input_size=size, batch_size=args.batch)
    if args.json:
        print(render.to_json(report))
    elif args.csv:
        print(render.to_csv(report), end="")
    elif args.markdown:
        print(render.to_markdown(report, args.depth), end="")
    else:
        render.print_report(report, args.depth)
    return 0
