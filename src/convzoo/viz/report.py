"""The self-contained HTML report of a model or a training run (`convzoo report`).

A model: the summary table (parameters and MACs, computed beside the published ones), the
memory breakdown of `convzoo.analyze`, the architecture diagram and the layer table.
A run folder adds its results, training curves and first-layer filters.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .html import HtmlReport


def human_bytes(n: float | None) -> str:
    """Bytes in binary units (KiB, MiB, GiB), as the memory tables print them."""
    if n is None:
        return "–"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{int(n)} B"


def human_count(n: float | None) -> str:
    """A count with thousands separators and its size in millions/billions."""
    if n is None:
        return "–"
    if n >= 1e9:
        return f"{n:,.0f} ({n / 1e9:.2f} G)"
    if n >= 1e6:
        return f"{n:,.0f} ({n / 1e6:.2f} M)"
    return f"{n:,.0f}"


def _analysis(model: "nn.Module", size: tuple[int, int, int]) -> dict[str, Any] | None:
    """`convzoo.analyze(...)` as a dict with its Report, or None when the engine is missing."""
    try:
        from ..analysis import analyze
    except ImportError:
        return None
    rep = analyze(model, input_size=size)
    d = rep.to_dict()
    d["_report"] = rep
    return d


def add_model_sections(page: "HtmlReport", model: "nn.Module", size: tuple[int, int, int],
                       name: str | None = None) -> None:
    """Summary, memory, architecture and layer sections of `model` at input `size`."""
    from .arch import plot_arch

    label = name or getattr(model, "zoo_name", None) or type(model).__name__
    info = None
    try:
        from ..registry import model_info

        info = model_info(label)
    except Exception:  # noqa: BLE001 - not a registered model: no published numbers
        info = None
    an = _analysis(model, size)
    params = an["total_params"] if an else sum(p.numel() for p in model.parameters())
    page.heading("Summary")
    rows: list[dict[str, Any]] = [
        {"quantity": "model", "value": label},
        {"quantity": "input (C×H×W)", "value": "×".join(map(str, size))},
        {"quantity": "parameters", "value": human_count(params)},
    ]
    if info is not None:
        rows.insert(1, {"quantity": "family", "value": info.family})
        rows.insert(2, {"quantity": "paper", "value": info.paper})
        if info.params is not None:
            rows.append({"quantity": "published parameters", "value": human_count(info.params)})
    if an:
        rows.append({"quantity": "multiply-accumulates (conv + linear)", "value": human_count(an["macs"])})
        rows.append({"quantity": "other ops (norm, activation, pooling, add)", "value": human_count(an["other_ops"])})
        if info is not None and info.macs is not None:
            rows.append({"quantity": "published MACs", "value": human_count(info.macs)})
        rows.append({"quantity": "output shape", "value": str(an.get("output_shape"))})
    page.table(rows, ["quantity", "value"])
    if info is not None and info.source:
        page.paragraph(f"Published numbers: {info.source}", kind="note")

    page.heading("Memory")
    if an:
        m = an["memory"]
        rep = an["_report"]
        mem_rows = [
            {"part": "parameters", "batch 1": human_bytes(m["param_bytes"])},
            {"part": "buffers (batch-norm statistics)", "batch 1": human_bytes(m["buffer_bytes"])},
            {"part": "input", "batch 1": human_bytes(m["input_bytes"])},
            {"part": "forward activations (all outputs)", "batch 1": human_bytes(m["forward_activation_bytes"])},
            {"part": "peak inference", "batch 1": human_bytes(m["peak_inference_bytes"])},
            {"part": "activations saved for backward", "batch 1": human_bytes(m["saved_activation_bytes"])},
            {"part": "gradients", "batch 1": human_bytes(m["gradient_bytes"])},
        ]
        for opt, b in m["optimizer_state_bytes"].items():
            mem_rows.append({"part": f"optimizer state ({opt})", "batch 1": human_bytes(b)})
        page.table(mem_rows, ["part", "batch 1"], caption="float32, one image")
        train_rows = []
        for batch in (1, 32, 128, 256):
            row: dict[str, Any] = {"batch": batch}
            for opt in m["optimizer_state_bytes"]:
                row[f"training, {opt}"] = human_bytes(rep.training_memory(batch, opt))
            train_rows.append(row)
        page.table(train_rows, caption="estimated training memory: parameters + gradients + optimizer state + "
                   "input + saved activations (docs/analysis.md)")
        page.figure(_memory_figure(rep), caption="training memory by part (SGD with momentum) against batch size")
    else:
        page.paragraph("The analysis engine (convzoo.analysis) is not installed; memory is not available.",
                       kind="note")

    page.heading("Architecture")
    page.figure(plot_arch(model, size), caption="blocks with output shapes (C×H×W) and parameters; residual "
                "connections in green, inception branches and dense connectivity drawn inside their blocks")

    if an:
        page.heading("Layers", level=3)
        leaves = [r for r in an["layers"] if r.get("is_leaf") and (r.get("params") or r.get("macs"))]
        shown = leaves[:80]
        page.table([{"layer": r["name"], "type": r["type"], "output": "×".join(map(str, (r.get("output_shape") or [])[1:])),
                     "params": r["params"], "MACs": r["macs"]} for r in shown],
                   ["layer", "type", "output", "params", "MACs"],
                   caption=None if len(leaves) <= 80 else f"first 80 of {len(leaves)} layers with weights")


def _memory_figure(rep: Any) -> Any:
    from ._common import new_figure

    m = rep.memory
    batches = [1, 8, 32, 64, 128, 256]
    fixed = m.param_bytes + m.buffer_bytes + m.gradient_bytes + m.optimizer_state_bytes.get("sgd_momentum", 0)
    per = [(m.input_bytes + m.saved_activation_bytes) * b / rep.batch_size for b in batches]
    fig = new_figure(6.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    xs = range(len(batches))
    mib = 2**20
    ax.bar(xs, [fixed / mib] * len(batches), label="weights + gradients + momentum", color="#7aa6d6")
    ax.bar(xs, [p / mib for p in per], bottom=[fixed / mib] * len(batches), label="input + saved activations",
           color="#f2a766")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def add_run_sections(page: "HtmlReport", run_dir: Path, model: "nn.Module | None") -> None:
    """Results, curves, and first-layer filters of a run folder."""
    import json

    from .curves import plot_curves, read_run
    from .filters import first_conv, plot_filters

    rec = read_run(run_dir)
    s = rec.summary
    page.heading("Training run")
    if s:
        hw = s.get("hardware") or {}
        rows = [
            {"quantity": "data", "value": s.get("data")},
            {"quantity": "epochs", "value": s.get("epochs_done", s.get("epochs"))},
            {"quantity": "test top-1 (%)", "value": s.get("test_top1")},
            {"quantity": "test top-5 (%)", "value": s.get("test_top5")},
            {"quantity": "best test top-1 (%)", "value": s.get("best_test_top1")},
            {"quantity": "training images/s", "value": s.get("images_per_second")},
            {"quantity": "wall time (s)", "value": s.get("wall_seconds")},
            {"quantity": "hardware", "value": hw.get("gpu") or hw.get("cpu") or hw.get("device")},
        ]
        page.table(rows, ["quantity", "value"])
    else:
        page.paragraph("This run has no summary.json yet (still running, or stopped early).", kind="note")
    if rec.epochs or rec.steps:
        page.figure(plot_curves([rec]), caption="training (thin) and test (bold) error")
    if model is not None:
        try:
            first_conv(model)
        except Exception:  # noqa: BLE001 - a network without convolutions has no filters to draw
            pass
        else:
            page.figure(plot_filters(model), caption="first-layer filters after training, each normalised")
    if rec.config:
        page.heading("Configuration", level=3)
        page.preformatted(json.dumps(rec.config, indent=2, default=str))


def build_report(ref: str, input_size: tuple[int, int, int] | None = None) -> "HtmlReport":
    """The report page of a registry name, a checkpoint file or a run folder."""
    from ._common import default_input_size, find_checkpoint, load_model_or_checkpoint
    from .html import HtmlReport

    path = Path(ref)
    run_dir = path if path.is_dir() and (path / "metrics.jsonl").is_file() else None
    model = None
    ckpt = None
    if run_dir is not None and find_checkpoint_quiet(run_dir) is None:
        # a run without checkpoints (still starting, or they were deleted): rebuild the
        # architecture from config.json for the diagram and the tables; no filters
        model_name, kwargs, size_hint = _run_model(run_dir)
        if not model_name:
            from ..errors import CheckpointError

            raise CheckpointError(f"{ref!r} has neither checkpoints nor a model name in summary.json/config.json")
        from ..registry import create_model

        model = create_model(model_name, **kwargs)
        if input_size is None and size_hint:
            input_size = (int(getattr(model, "in_channels", 3)), size_hint, size_hint)
    else:
        model, ckpt = load_model_or_checkpoint(ref)
    name = (ckpt or {}).get("model_name") or getattr(model, "zoo_name", None) or type(model).__name__
    size = input_size or default_input_size(model, ckpt)
    if run_dir is None and ckpt is not None and find_checkpoint(ref) is not None and path.is_file():
        maybe = path.parent.parent
        run_dir = maybe if (maybe / "metrics.jsonl").is_file() else None
    page = HtmlReport(f"convzoo report: {name}" + (f" ({run_dir.name})" if run_dir else ""))
    add_model_sections(page, model, size, name=name)
    if run_dir is not None:
        add_run_sections(page, run_dir, model if ckpt is not None else None)
    return page


def find_checkpoint_quiet(run_dir: Path) -> Path | None:
    """A run folder's best or last checkpoint, or None."""
    for cand in (run_dir / "checkpoints" / "best.pt", run_dir / "checkpoints" / "last.pt"):
        if cand.is_file():
            return cand
    return None


def _run_model(run_dir: Path) -> tuple[str | None, dict[str, Any], int | None]:
    """(model name, builder kwargs, input side) of a run folder, from summary.json/config.json."""
    import json

    name, kwargs, size = None, {}, None
    for fname in ("config.json", "summary.json"):
        f = run_dir / fname
        if not f.is_file():
            continue
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError:
            continue
        name = name or d.get("model")
        kwargs = dict(d.get("model_kwargs") or kwargs)
        size = size or d.get("input_size")
        data = d.get("data")
        if data and "in_channels" not in kwargs:
            try:
                from ..data import dataset_info

                info = dataset_info(data)
                kwargs.setdefault("in_channels", int(info["channels"]))
                kwargs.setdefault("num_classes", int(info["num_classes"]))
            except Exception:  # noqa: BLE001 - unknown data: the model's defaults
                pass
    return name, kwargs, (int(size) if isinstance(size, (int, float)) else None)
