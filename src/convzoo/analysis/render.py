"""Renderers: a `Report` or a `PaperTable` as a terminal table, JSON, CSV or Markdown.

Functions return strings (or print to a given rich console); they compute nothing.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from .papers import PaperTable
from .report import LayerRecord, Report

CSV_FIELDS = (
    "name", "type", "depth", "is_leaf", "calls", "input_shape", "output_shape", "params", "trainable_params",
    "macs", "other_ops", "output_elements", "output_bytes", "cum_params", "cum_macs", "cum_other_ops",
)


def human_bytes(n: float | None) -> str:
    """1536 -> '1.50 KiB' (binary units, as memory is sized)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB"  # pragma: no cover


def human_count(n: float | None) -> str:
    """4_089_184_256 -> '4.09G' (decimal units, as MACs are quoted)."""
    if n is None:
        return "-"
    value = float(n)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{int(value)}"


def _shape(shape: Any) -> str:
    if shape is None:
        return "-"
    if shape and isinstance(shape[0], list):
        return ", ".join(_shape(s) for s in shape)
    return "x".join(str(d) for d in shape)


def ran(report: Report) -> set[str]:
    """Names of the modules that ran at inference, directly or through a child (a container
    whose parent iterates over it instead of calling it still ran)."""
    names: set[str] = set()
    for r in report.layers:
        if r.calls > 0:
            parts = r.name.split(".") if r.name else []
            names.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    return names


def visible_rows(report: Report, depth: int) -> list[LayerRecord]:
    """Rows down to `depth` (1 = the model's direct children); modules that neither ran nor
    hold parameters are left out."""
    done = ran(report)
    return [r for r in report.layers if r.name and r.depth <= depth and (r.name in done or r.cum_params > 0)]


def _totals(report: Report) -> list[tuple[str, str]]:
    m = report.memory
    b = report.batch_size
    rows = [
        ("parameters", f"{report.total_params:,} ({report.trainable_params:,} trainable)"),
        ("MACs", f"{report.macs:,} ({human_count(report.macs)}; FLOPs = 2 x MACs = {human_count(report.flops)})"),
        ("other ops", f"{report.other_ops:,} (" + ", ".join(f"{k} {human_count(v)}" for k, v in report.other_ops_by_kind.items()) + ")"),
        ("parameter memory", f"{human_bytes(m.param_bytes)} (+ buffers {human_bytes(m.buffer_bytes)})"),
        (f"forward activations (batch {b})", human_bytes(m.forward_activation_bytes)),
        (f"peak inference memory (batch {b})", human_bytes(m.peak_inference_bytes)),
    ]
    if m.training_bytes_by_optimizer is None:
        rows.append(("training memory", m.training_note))
    else:
        rows.append((f"saved for backward (batch {b})", human_bytes(m.saved_activation_bytes)))
        rows.append((
            f"training memory (batch {b})",
            ", ".join(f"{k.replace('_', ' + ')} {human_bytes(v)}" for k, v in m.training_bytes_by_optimizer.items()),
        ))
    return rows


def print_report(report: Report, depth: int = 3, console: Any = None) -> None:
    """A rich table: the module tree down to `depth`, then the totals."""
    from ..console import make_console
    from rich.table import Table

    console = console or make_console()
    c, h, w = report.input_size
    table = Table(
        title=f"{report.model}: input {report.batch_size}x{c}x{h}x{w} ({report.dtype})",
        header_style="bold",
        caption="a module's numbers include its children's; dim rows do not run at inference",
    )
    table.add_column("layer")
    table.add_column("type")
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("other ops", justify="right")
    done = ran(report)
    for r in visible_rows(report, depth):
        label = "  " * (r.depth - 1) + r.name.rsplit(".", 1)[-1]
        style = None if r.name in done else "dim"
        shape = _shape(r.output_shape) if r.calls or r.name not in done else ""  # iterated, not called
        table.add_row(label, r.type, shape, f"{r.cum_params:,}", human_count(r.cum_macs),
                      human_count(r.cum_other_ops), style=style)
    console.print(table)
    totals = Table(show_header=False, box=None, pad_edge=False)
    totals.add_column(style="bold")
    totals.add_column()
    for k, v in _totals(report):
        totals.add_row(k, v)
    console.print(totals)


def to_json(report: Report) -> str:
    """`Report.to_dict()` as indented JSON."""
    return json.dumps(report.to_dict(), indent=2)


def to_csv(report: Report) -> str:
    """One line per module (all of them), with own and cumulative counts."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in report.layers:
        row = r.to_dict()
        row["input_shape"] = _shape(r.input_shape) if r.input_shape else ""
        row["output_shape"] = _shape(r.output_shape) if r.output_shape else ""
        writer.writerow({k: row[k] for k in CSV_FIELDS})
    return buf.getvalue()


def to_markdown(report: Report, depth: int = 3) -> str:
    """A Markdown table of the tree down to `depth`, then the totals."""
    c, h, w = report.input_size
    lines = [
        f"**{report.model}**, input {report.batch_size}x{c}x{h}x{w} ({report.dtype})",
        "",
        "| layer | type | output | params | MACs | other ops |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in visible_rows(report, depth):
        name = "&nbsp;&nbsp;" * (r.depth - 1) + f"`{r.name}`"
        lines.append(f"| {name} | {r.type} | {_shape(r.output_shape)} | {r.cum_params:,} | {r.cum_macs:,} | {r.cum_other_ops:,} |")
    lines += ["", "| total | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _totals(report)]
    return "\n".join(lines) + "\n"


# -- paper tables ---------------------------------------------------------------------------------
def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1 or value == 0 else f"{value:g}"


def _short(value: float | None, quantity: str = "") -> str:
    """In the unit the quantity names (K=1024, M=10^6), else exact below a million and three
    decimals in M/G above (the JSON keeps every digit)."""
    if value is None:
        return "-"
    if "K=1024" in quantity:
        return f"{value / 1024:,.1f}K"
    if "M=10^6" in quantity:
        return f"{value / 1e6:,.1f}M"
    for unit, scale in (("G", 1e9), ("M", 1e6)):
        if abs(value) >= scale:
            return f"{value / scale:.3f}{unit}"
    return _num(value)


def print_paper_table(table: PaperTable, console: Any = None) -> None:
    """Published (as printed) against computed, with the relative difference and the notes."""
    from ..console import make_console
    from rich.table import Table

    console = console or make_console()
    t = Table(title=table.title, header_style="bold")
    t.add_column("row")
    t.add_column("quantity")
    t.add_column("published", justify="right", no_wrap=True)
    t.add_column("computed", justify="right", no_wrap=True)
    t.add_column("diff", justify="right", no_wrap=True)
    t.add_column("note", no_wrap=True)
    notes: dict[str, int] = {}  # the same note on several rows is printed once
    for r in table.rows:
        diff = "-" if r.rel_diff is None else f"{100 * r.rel_diff:+.2f}%"
        style = "yellow" if r.rel_diff is not None and abs(r.rel_diff) > 0.02 else None
        mark = ""
        if r.note:
            mark = f"[{notes.setdefault(r.note, len(notes) + 1)}]"
        t.add_row(r.row, r.quantity, r.printed or "-", _short(r.computed, r.quantity), diff, mark, style=style)
    console.print(t)
    console.print(f"Conventions: {table.conventions}")
    for text, number in notes.items():
        console.print(f"[{number}] {text}", markup=False)
