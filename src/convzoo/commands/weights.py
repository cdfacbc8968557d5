"""The trained weights that ship with convzoo, and how each was made.

Every entry was trained on Fashion-MNIST by one of convzoo's own recipes
(`src/convzoo/weights/recipes/`) and measured on the 10,000 test images by
`python weights/make.py NAME`, which wrote the file and this metadata. Use them with
`convzoo.create_model(NAME, weights=TAG)`, `convzoo predict IMAGE --model NAME`,
`convzoo viz filters NAME`. Examples:

  convzoo weights
  convzoo weights 'lenet*' --json
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                   help="shell-style pattern on the model name (default: all)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print every field of every entry as JSON")


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def run(args: argparse.Namespace) -> int:
    from ..weights import list_weights

    entries = list_weights(args.pattern)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print(f"no shipped weights match {args.pattern!r}")
        return 0
    header = ("model", "tag", "input", "top-1", "top-5", "params", "file", "trained", "sha256")
    rows = []
    for m in entries:
        c, h, w = m["input_size"]
        rows.append((m["model"], m["tag"], f"{c}x{h}x{w}", f"{m['test_top1']:.2f}%", f"{m['test_top5']:.2f}%",
                     f"{m['params']:,}", _size(m["file_bytes"]), f"{m['wall_seconds'] / 60:.1f} min",
                     m["sha256"][:12]))  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6, 7}
    for r in [header, *rows]:
        print("  ".join(str(v).rjust(wd) if i in right else str(v).ljust(wd) for i, (v, wd) in enumerate(zip(r, widths))).rstrip())
    print()
    for m in entries:
        print(f"{m['model']}.{m['tag']}: {m['command']}  (recipe {m['recipe']}; {m['date']}, "
              f"torch {m['torch_version']}, {m['hardware'].get('cpu') or m['hardware'].get('device', '')})")  # fmt: skip
    return 0
