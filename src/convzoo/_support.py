"""Which registered model goes through which export path: the generated tables of docs/models.md.

    python -m convzoo._support --write            # every model, every path; rewrites the tables
    python -m convzoo._support --check            # exit 1 when docs/models.md differs
    python -m convzoo._support --models lenet5 resnet20 --paths onnx_legacy

Each model is built with seed 0 in eval mode and tried at its small input (`small_input`:
the registry's smallest trainable side, at least 32) with a dynamic batch dimension, and the
result is run against PyTorch on the same random batches at batch 2, 1 and 3 (largest error
at most 1e-4 of the output's scale or, for the deepest nets, 4x float32's own error, as
`convzoo export` checks; they are run with BatchNorm statistics of their own activations
where the fresh ones overflow, `calibrate_batchnorm`):

- torchscript:   `torch.jit.script(model)`, the scripted module run in PyTorch;
- torch_export:  `torch.export.export` with a dynamic batch, saved, loaded and run (pt2);
- onnx_legacy:   the TorchScript-based ONNX exporter, run in onnxruntime;
- onnx_dynamo:   the dynamo-based ONNX exporter, run in onnxruntime.

`convzoo export` uses the TorchScript-based exporter where it works and the dynamo-based one
otherwise; the "convzoo export" column is that choice at the small input, and a model that
neither exporter writes is a failure listed below the table (`failures`). The two blocks
of docs/models.md between the `export-support` and `export-failures` markers are written
by this module only; tests/test_export_registry.py parses them and checks them against
fresh runs. Needs the export extra (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

PATHS = ("torchscript", "torch_export", "onnx_legacy", "onnx_dynamo")
HEADERS = {
    "torchscript": "TorchScript",
    "torch_export": "torch.export",
    "onnx_legacy": "ONNX, TorchScript-based",
    "onnx_dynamo": "ONNX, dynamo-based",
}
BATCHES = (2, 1, 3)
ATOL = 1e-4
DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"
TABLE_BEGIN = "<!-- export-support:begin"
TABLE_END = "<!-- export-support:end -->"
FAIL_BEGIN = "<!-- export-failures:begin"
FAIL_END = "<!-- export-failures:end -->"
WORKS = "works"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Outcome:
    """One model through one path: `reason` is None when it works."""

    reason: str | None = None

    @property
    def works(self) -> bool:
        return self.reason is None

    def cell(self) -> str:
        return WORKS if self.reason is None else f"fails: {self.reason}"


def small_input(name: str) -> tuple[int, int, int]:
    """The (C, H, W) a model is tried at: its smallest trainable side, at least 32."""
    from .registry import model_info

    info = model_info(name)
    side = max(int(info.min_input or 1), 32)
    return (int(info.default_input[0]), side, side)


# -- why an export failed, in words that stay the same from run to run --------------------------

_KNOWN = (
    (re.compile(r"not factor of input size|output size that are not factor", re.I),
     "adaptive_avg_pool2d: output size not a factor of the input size"),
    (re.compile(r"input size not accessible", re.I), "adaptive_avg_pool2d: input size not accessible"),
)  # fmt: skip


def reason_of(err: BaseException) -> str:
    """A short, stable reason: the known failures by name, others by their first line without
    the graph's value names and addresses (which change from run to run)."""
    chain, seen = [], set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = "\n".join(f"{type(x).__name__}: {x}" for x in chain)
    for pattern, words in _KNOWN:
        if pattern.search(text):
            return words
    root = chain[-1]
    line = (str(root).strip().splitlines() or [""])[0]
    line = re.sub(r"%[\w.]+|0x[0-9a-fA-F]+|'[^']*\.py'|line \d+", "_", line)
    line = re.sub(r"\s+", " ", line).replace("|", "/").strip()
    return f"{type(root).__name__}: {line[:100]}".rstrip(": ")


# -- the probes ---------------------------------------------------------------------------------


def build(name: str) -> Any:
    import torch

    from .registry import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    size = small_input(name)
    with torch.no_grad():
        y = model(torch.randn(2, *size))
    finite = bool(torch.isfinite(y[0] if isinstance(y, (tuple, list)) else y).all())
    if not finite:  # a very deep net at initialisation: BatchNorm's (0, 1) statistics overflow it
        calibrate_batchnorm(model, size)
    return model


def calibrate_batchnorm(model: Any, size: Sequence[int], batches: int = 4) -> None:
    """Give BatchNorm the statistics of its own activations (a few training-mode forwards of
    random batches, cumulative averages), as a trained network has; resnet1202 and
    preact_resnet1001 at initialisation otherwise overflow to inf in evaluation mode."""
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    g = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn((8, *size), generator=g))
    model.eval()


def _torchscript(model: Any, size: Sequence[int]) -> Outcome:
    import torch

    from .export import _compare, _reference, _sample

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
    for b in BATCHES:
        x = _sample(size, b)
        ref = _reference(model, x)
        with torch.no_grad():
            got = scripted(x)
        if isinstance(got, (tuple, list)):
            got = got[0]
        check = _compare(b, got, ref, ATOL)
        if not check.ok:
            return Outcome(f"output differs from eager (max error {check.max_abs_error:.1e} at batch {b})")
    return Outcome()


def _exported(model: Any, size: Sequence[int], fmt: str, exporter: str) -> Outcome:
    from .export import export_model

    with tempfile.TemporaryDirectory(prefix="convzoo-support-") as tmp:
        res = export_model(model, os.path.join(tmp, f"m.{fmt}"), format=fmt, input_size=size, dynamic_batch=True,
                           exporter=exporter)  # fmt: skip  # convzoo export's default check
    bad = [c for c in res.checks if not c.ok]
    if bad:
        return Outcome(f"output differs from PyTorch (max error {bad[0].max_abs_error:.1e} at batch {bad[0].batch})")
    return Outcome()


def probe(model: Any, name: str, path: str) -> Outcome:
    """Try one path on a built model (eval mode); any exception is the failure's reason."""
    size = small_input(name)
    try:
        if path == "torchscript":
            return _torchscript(model, size)
        if path == "torch_export":
            return _exported(model, size, "pt2", "auto")
        if path == "onnx_legacy":
            return _exported(model, size, "onnx", "torchscript")
        if path == "onnx_dynamo":
            return _exported(model, size, "onnx", "dynamo")
    except Exception as err:  # every exporter has its own exception types
        return Outcome(reason_of(err))
    raise ValueError(f"unknown path {path!r}; expected one of {', '.join(PATHS)}")


def export_choice(row: dict[str, Outcome]) -> Outcome | str:
    """What `convzoo export` does at the small input: "torchscript", "dynamo" or the failure."""
    if row["onnx_legacy"].works:
        return "torchscript"
    if row["onnx_dynamo"].works:
        return "dynamo"
    return Outcome(f"{row['onnx_legacy'].reason}; dynamo-based: {row['onnx_dynamo'].reason}")


def compute(names: Iterable[str], paths: Sequence[str] = PATHS, log: Any = None,
            jsonl: str | None = None) -> dict[str, dict[str, Outcome]]:  # fmt: skip
    """Every path for every model; with `jsonl`, each model's row is appended to that file
    as soon as it is done (a long sweep can be stopped and resumed with `load_jsonl`)."""
    import gc
    import json

    results: dict[str, dict[str, Outcome]] = {}
    for name in names:
        model = build(name)
        row = {}
        for path in paths:
            t0 = time.perf_counter()
            row[path] = probe(model, name, path)
            if log:
                print(f"{name:22s} {path:20s} {time.perf_counter() - t0:7.1f}s {row[path].cell()}", file=log, flush=True)
        results[name] = row
        if jsonl:
            with open(jsonl, "a") as f:
                f.write(json.dumps({"model": name, **{k: v.reason for k, v in row.items()}}) + "\n")
        del model
        gc.collect()
    return results


def load_jsonl(path: str) -> dict[str, dict[str, Outcome]]:
    """The rows a `compute(..., jsonl=path)` sweep wrote (a later row of a model wins)."""
    import json

    out: dict[str, dict[str, Outcome]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            out[d.pop("model")] = {k: Outcome(v) for k, v in d.items()}
    return out


# -- the docs blocks ----------------------------------------------------------------------------


def _size(s: Sequence[int]) -> str:
    return "x".join(map(str, s))


def render_table(results: dict[str, dict[str, Outcome]], names: Iterable[str]) -> str:
    """One row per model of `names`; a model without results (or a path without one) shows
    "not measured"."""
    head = ["model", "small input", *[HEADERS[p] for p in PATHS], "`convzoo export`"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(names):
        row = results.get(name, {})
        if all(p in row for p in PATHS):
            choice = export_choice(row)
            used = choice if isinstance(choice, str) else "fails"
        else:
            used = NOT_MEASURED
        cells = [row[p].cell() if p in row else NOT_MEASURED for p in PATHS]
        lines.append("| " + " | ".join([f"`{name}`", _size(small_input(name)), *cells, used]) + " |")
    return "\n".join(lines)


def render_failures(results: dict[str, dict[str, Outcome]]) -> str:
    out = []
    for name in sorted(results):
        if not all(p in results[name] for p in PATHS):
            continue
        choice = export_choice(results[name])
        if not isinstance(choice, str):
            out.append(f"- `{name}` at {_size(small_input(name))}: {choice.reason}")
    return "\n".join(out) if out else "- none: every measured model exports to ONNX at its small input."


def _block(text: str, begin: str, end: str) -> tuple[int, int]:
    i = text.find(begin)
    j = text.find(end, i + 1)
    if i < 0 or j < 0:
        raise ValueError(f"docs/models.md has no {begin} ... {end} block")
    return text.index("\n", i) + 1, j


def update_docs(text: str, results: dict[str, dict[str, Outcome]], names: Iterable[str]) -> str:
    for begin, end, body in ((TABLE_BEGIN, TABLE_END, render_table(results, names)),
                             (FAIL_BEGIN, FAIL_END, render_failures(results))):  # fmt: skip
        a, b = _block(text, begin, end)
        text = text[:a] + body + "\n" + text[b:]
    return text


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """The committed table: model -> {path: cell, "small_input": ..., "convzoo_export": ...}."""
    a, b = _block(text, TABLE_BEGIN, TABLE_END)
    rows = [r for r in text[a:b].splitlines() if r.startswith("|")][2:]
    out = {}
    for r in rows:
        cells = [c.strip() for c in r.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        out[name] = {"small_input": cells[1], **dict(zip(PATHS, cells[2:-1])), "convzoo_export": cells[-1]}
    return out


def _committed_rows(text: str) -> dict[str, dict[str, Outcome]]:
    """The committed table's fully measured rows as outcomes, so `--write --models A B` measures
    A and B and keeps every other row as it was."""
    out = {}
    for name, row in parse_table(text).items():
        cells = [row[p] for p in PATHS]
        if all(c == WORKS or c.startswith("fails: ") for c in cells):
            out[name] = {p: Outcome(None if c == WORKS else c[len("fails: "):]) for p, c in zip(PATHS, cells)}
    return out


def parse_failures(text: str) -> dict[str, str]:
    """The committed list of models `convzoo export` cannot write: model -> reason."""
    a, b = _block(text, FAIL_BEGIN, FAIL_END)
    out = {}
    for line in text[a:b].splitlines():
        m = re.match(r"- `([^`]+)` at \S+: (.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convzoo._support", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these models (default: every registered one)")
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="only these paths (default: all)")
    p.add_argument("--jsonl", metavar="FILE",
                   help="append each model's row here when it is done; models already there are not run again")  # fmt: skip
    p.add_argument("--write", action="store_true",
                   help="rewrite the blocks of docs/models.md from the rows run now, those in --jsonl and "
                        "the measured rows already there (registered models without one: not measured)")  # fmt: skip
    p.add_argument("--check", action="store_true", help="exit 1 when a fresh cell differs from docs/models.md")
    p.add_argument("--docs", default=str(DOCS), help="the models page (default: docs/models.md)")
    args = p.parse_args(argv)
    import torch

    from .registry import list_models

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    registered = list_models()
    names = args.models or registered
    unknown = sorted(set(names) - set(registered))
    if unknown:
        p.error(f"unknown model(s): {', '.join(unknown)}")
    if args.write and set(args.paths) != set(PATHS):
        p.error("--write needs every path")
    earlier = load_jsonl(args.jsonl) if args.jsonl and Path(args.jsonl).exists() else {}
    todo = [n for n in names if n not in earlier]
    t0 = time.perf_counter()
    results = compute(todo, args.paths, log=sys.stderr, jsonl=args.jsonl)
    print(f"{len(todo)} models x {len(args.paths)} paths in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    docs = Path(args.docs)
    text = docs.read_text()
    # what --write writes: the rows run now, then --jsonl's, then the committed measured rows
    every = {**_committed_rows(text), **earlier, **results}
    every = {n: r for n, r in every.items() if n in registered}
    results = {n: every[n] for n in names if n in every}  # what --check checks
    if args.write:
        docs.write_text(update_docs(text, every, registered))
        missing = [n for n in registered if n not in every]
        print(f"wrote the tables of {docs}" + (f"; not measured: {', '.join(missing)}" if missing else ""))
    if args.check:
        committed = parse_table(text)
        diff = [f"{n} {path}: docs say {committed.get(n, {}).get(path)!r}, now {row[path].cell()!r}"
                for n, row in results.items() for path in args.paths
                if committed.get(n, {}).get(path) != row[path].cell()]  # fmt: skip
        for d in diff:
            print(d)
        print(f"{len(diff)} cell(s) differ" if diff else "docs/models.md agrees")
        return 1 if diff else 0
    if not args.write:
        for n, row in results.items():
            print(n, {k: v.cell() for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
