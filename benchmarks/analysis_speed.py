"""Time convzoo's analysis against the tools people use, and check their counts.

Tools, each called as its documentation shows (a real model and real CPU tensors):
torchinfo `summary(model, input_size=...)`, fvcore `FlopCountAnalysis(model, x).total()`,
ptflops `get_model_complexity_info(model, (3, 224, 224))`, thop `profile(model, (x,))`,
and `torch.utils.flop_counter.FlopCounterMode` (on CPU tensors and on the meta device).
convzoo runs twice: `analyze(real_model)` (the user's module, parameters substituted by
meta tensors for the call) and `analyze("name")` (built on the meta device). The baseline
"meta forward" builds torchvision's model on the meta device and runs one forward pass,
without counting anything.

For vgg16, resnet50 and densenet121 (torchvision's definitions, eval mode, 1x3x224x224)
it prints the median wall time of `--repeat` runs after one warm-up, the ratio to
convzoo, and with `--memory` the peak resident memory each call adds (each call in a
fresh process, after a warm-up call; Linux: VmHWM after resetting it through
/proc/self/clear_refs; the process peak includes the real model's weights). Then it
checks that convzoo's MACs equal FlopCounterMode's FLOPs / 2 exactly and explains each
other tool's count as convzoo's MACs plus the extra terms that tool adds (computed from
convzoo's own per-layer report; the remainder, if any, is printed).

Run: `.venv/bin/python benchmarks/analysis_speed.py [--repeat 3] [--memory]`; with `--zoo`, it
times `analyze(name)` for every registered model instead, against the 0.25 s goal.
Tools that are not installed are reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any, Callable

MODELS = ("vgg16", "resnet50", "densenet121")
TOOLS = ("convzoo (name, meta)", "convzoo (module)", "meta forward (baseline)", "FlopCounterMode (meta)",
         "FlopCounterMode (cpu)",
         "torchinfo", "fvcore", "ptflops", "thop")
PACKAGE = {"torchinfo": "torchinfo", "fvcore": "fvcore", "ptflops": "ptflops", "thop": "thop"}


def installed(tool: str) -> bool:
    pkg = PACKAGE.get(tool)
    return pkg is None or importlib.util.find_spec(pkg) is not None


def build(name: str, device: str = "cpu") -> Any:
    import torch
    import torchvision

    with torch.device(device):
        return getattr(torchvision.models, name)(weights=None).eval()


def runner(tool: str, name: str) -> tuple[Callable[[], Any], Callable[[Any], float]]:
    """A zero-argument call for `tool` on `name`, and how to read its count from the result."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convzoo.analysis import analyze

    warnings.filterwarnings("ignore")
    shape = (1, 3, 224, 224)
    if tool == "convzoo (name, meta)":
        return (lambda: analyze(name, (3, 224, 224))), (lambda r: r.macs)
    if tool == "meta forward (baseline)":
        # what any meta-device analysis must at least do: build on meta, run one forward

        def meta_forward() -> int:
            model = build(name, "meta")
            with torch.no_grad():
                model(torch.empty(shape, device="meta"))
            return 0

        return meta_forward, (lambda _: float("nan"))
    if tool == "FlopCounterMode (meta)":

        def fcm_meta() -> int:
            model = build(name, "meta")
            with torch.no_grad(), FlopCounterMode(display=False) as c:
                model(torch.empty(shape, device="meta"))
            return c.get_total_flops()

        return fcm_meta, (lambda f: f / 2)
    model = build(name)
    x = torch.randn(shape)
    if tool == "convzoo (module)":
        return (lambda: analyze(model, (3, 224, 224))), (lambda r: r.macs)
    if tool == "FlopCounterMode (cpu)":

        def fcm() -> int:
            with torch.no_grad(), FlopCounterMode(display=False) as c:
                model(x)
            return c.get_total_flops()

        return fcm, (lambda f: f / 2)
    if tool == "torchinfo":
        from torchinfo import summary

        return (lambda: summary(model, input_size=shape, verbose=0)), (lambda s: s.total_mult_adds)
    if tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis

        def fv() -> float:
            f = FlopCountAnalysis(model, x)
            f.unsupported_ops_warnings(False)
            f.uncalled_modules_warnings(False)
            return f.total()

        return fv, float
    if tool == "ptflops":
        from ptflops import get_model_complexity_info

        def pt() -> float:
            with contextlib.redirect_stdout(io.StringIO()):
                return get_model_complexity_info(model, shape[1:], as_strings=False, print_per_layer_stat=False, verbose=False)[0]

        return pt, float
    if tool == "thop":
        import thop

        def th() -> float:
            fresh = build(name)  # thop adds buffers to the modules it profiles
            with contextlib.redirect_stdout(io.StringIO()):
                return thop.profile(fresh, inputs=(x,), verbose=False)[0]

        return th, float
    raise ValueError(tool)


def time_tool(tool: str, name: str, repeat: int) -> tuple[float, float]:
    """(median seconds, count) for `tool` on `name`."""
    call, read = runner(tool, name)
    result = call()  # warm-up (imports, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), float(read(result))


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def child_memory(tool: str, name: str) -> None:
    """In this (fresh) process: one warm-up call (imports and lazy initialisation are not
    the tool's per-call cost), then print the peak RSS the second call adds, in bytes."""
    call, _ = runner(tool, name)
    call()
    before = _vm("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark (Linux >= 4.0)
        f.write("5")
    call()
    print(json.dumps({"added": _vm("VmHWM") - before, "peak": _vm("VmHWM")}))


def memory(tool: str, name: str) -> tuple[int, int] | None:
    cmd = [sys.executable, __file__, "--child", tool, name]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return None
    d = json.loads(res.stdout.strip().splitlines()[-1])
    return d["added"], d["peak"]


def extras(name: str) -> dict[str, float]:
    """Terms other tools add to the MACs, from convzoo's per-layer report of `name`."""
    import torch

    from convzoo.analysis import analyze

    model = build(name, "meta")
    r = analyze(model, (3, 224, 224))
    el = lambda shape: math.prod(shape) if shape else 0  # noqa: E731
    out: dict[str, float] = {"macs": r.macs, "bias": 0, "bn_elems": 0, "bn_params": 0, "maxpool_in": 0,
                             "adaptive_in": 0, "adaptive_thop": 0, "relu": r.other_ops_by_kind["activation"],
                             "avgpool_in": 0, "avgpool_out": 0,
                             # ops done by code in a forward (F.relu, F.adaptive_avg_pool2d, x + y), not by a module
                             "functional": sum(row.other_ops for row in r.layers if not row.is_leaf)}
    module_pool_ops = 0
    for row in r.layers:
        module = model.get_submodule(row.name) if row.name else model
        if isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.AdaptiveAvgPool2d)):
            module_pool_ops += row.other_ops
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.bias is not None:
            out["bias"] += row.output_elements * row.calls
        elif isinstance(module, torch.nn.BatchNorm2d):
            out["bn_elems"] += row.output_elements
            out["bn_params"] += row.params
        elif isinstance(module, torch.nn.MaxPool2d):
            out["maxpool_in"] += el(row.input_shape)
        elif isinstance(module, torch.nn.AvgPool2d):
            out["avgpool_in"] += el(row.input_shape)
            out["avgpool_out"] += row.output_elements
        elif isinstance(module, torch.nn.AdaptiveAvgPool2d):
            out["adaptive_in"] += el(row.input_shape)
            area = el(row.input_shape[2:]) // el(row.output_shape[2:])
            out["adaptive_thop"] += (area + 1) * row.output_elements
    # pooling done by a functional call in a forward (DenseNet's F.adaptive_avg_pool2d): the
    # pooling column minus what pooling modules did (adaptive pooling is priced at its input)
    out["functional_pool_in"] = r.other_ops_by_kind["pool"] - module_pool_ops
    return out


EXPLAIN: dict[str, tuple[str, Callable[[dict[str, float]], float]]] = {
    "torchinfo": ("MACs + one per output element for each bias + batch norm's parameter count (once)",
                  lambda e: e["macs"] + e["bias"] + e["bn_params"]),
    "fvcore": ("MACs + 2 per batch-norm element + adaptive average pooling's input elements, modules and "
               "functional calls (biases not counted)",
               lambda e: e["macs"] + 2 * e["bn_elems"] + e["adaptive_in"] + e["functional_pool_in"]),
    "ptflops": ("MACs + biases + 2 per batch-norm element + the input elements of ReLU, max-, average- and "
                "adaptive-pool modules counted twice (its module hook and its patch of the torch.nn.functional "
                "call inside the module both fire)",
                lambda e: e["macs"] + e["bias"] + 2 * e["bn_elems"]
                + 2 * (e["relu"] + e["maxpool_in"] + e["avgpool_in"] + e["adaptive_in"])),
    "thop": ("MACs + 4 per batch-norm element + 1 per average-pool output + (kernel area + 1) per adaptive-pool "
             "output; ReLU, max-pool and biases count 0",
             lambda e: e["macs"] + 4 * e["bn_elems"] + e["avgpool_out"] + e["adaptive_thop"]),
}


def time_zoo(repeat: int, goal: float = 0.25) -> int:
    """`analyze(name)` at the default input for every registered model: wall and CPU time,
    the best of `repeat` calls after a warm-up call, slowest first; models over `goal` flagged."""
    from convzoo import list_models
    from convzoo.analysis import analyze

    rows = []
    for name in list_models():
        analyze(name)  # warm-up: first-use imports and caches
        best_wall = best_cpu = math.inf
        for _ in range(repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            analyze(name)
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        rows.append((best_wall, best_cpu, name))
    over = [r for r in rows if r[0] > goal]
    print(f"analyze(name) for {len(rows)} registered models, best of {repeat} after a warm-up, slowest first")
    print(f"{'model':<22} {'wall ms':>9} {'cpu ms':>9}")
    for wall, cpu, name in sorted(rows, reverse=True):
        print(f"{name:<22} {1000 * wall:>9.1f} {1000 * cpu:>9.1f}{'  over the goal' if wall > goal else ''}")
    print(f"\n{len(rows) - len(over)} of {len(rows)} under {goal} s (wall)" + (f"; over: {', '.join(r[2] for r in over)}" if over else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also measure each call's peak RSS in a fresh process")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--zoo", action="store_true",
                        help="instead: time analyze(name) for every registered model against the 0.25 s goal")
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.child:
        child_memory(*args.child)
        return 0
    if args.zoo:
        return time_zoo(args.repeat)
    import platform

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} threads, median of {args.repeat} after a warm-up")
    counts: dict[tuple[str, str], float] = {}
    for name in args.models:
        print(f"\n{name}")
        base = None
        for tool in TOOLS:
            if not installed(tool):
                print(f"  {tool:<24} not installed")
                continue
            secs, count = time_tool(tool, name, args.repeat)
            counts[tool, name] = count
            base = secs if tool == "convzoo (name, meta)" else base
            line = f"  {tool:<24}{1000 * secs:>9.1f} ms  x{secs / base:>6.1f}  count {count:>16,.0f}"
            if args.memory:
                mem = memory(tool, name)
                line += "  memory n/a" if mem is None else f"  +{mem[0] / 2**20:>7.1f} MiB (process peak {mem[1] / 2**20:,.0f} MiB)"
            print(line, flush=True)
    print("\nCounts against convzoo's MACs (conv + linear multiply-adds, bias not counted):")
    ok = True
    for name in args.models:
        e = extras(name)
        macs = counts.get(("convzoo (name, meta)", name))
        for tool in ("FlopCounterMode (meta)", "FlopCounterMode (cpu)", "convzoo (module)"):
            same = counts.get((tool, name)) == macs
            ok &= same
            print(f"  {name:<12} {tool:<24} {'equal' if same else 'DIFFERENT'}")
        for tool, (how, formula) in EXPLAIN.items():
            if (tool, name) not in counts:
                continue
            c = counts[tool, name]
            rest = c - formula(e)
            print(f"  {name:<12} {tool:<10} {100 * (c - macs) / macs:+.3f}%  = {how}; unexplained {rest:,.0f}")
        if e["functional"]:
            print(f"  {name:<12} (ops done by functional calls in forward code, seen by op-level tools only: "
                  f"{e['functional']:,.0f}; module-hook tools miss them or count them once)")
    print("\nMAC totals equal FlopCounterMode / 2:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
