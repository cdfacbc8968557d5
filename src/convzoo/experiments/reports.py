"""Reports: an experiment's report.md (with figures/*.png) and its self-contained report.html.

Both carry the same header (scale, data, seeds, overrides, hardware), the main results
table, the verdicts, the analysis's extra tables, the figures (training curves, accuracy
against parameters and MACs) and the command that reproduces the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..viz.html import format_cell
from .analyses import ANALYSERS, Tables, Verdicts
from .recipe import Recipe

_MAIN_COLUMNS = ["run", "model", "params", "macs", "seeds", "epochs", "train error (%)", "test error (%)",
                 "images/s", "wall (s)"]



def _pm(mean: float | None, sd: float | None, n: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f} ± {sd:.2f}" if n > 1 and sd is not None else f"{mean:.2f}"



def _main_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        out.append({
            "run": r["run"], "model": r["model"], "params": r["params"], "macs": r["macs"], "seeds": r["seeds"],
            "epochs": r["epochs"],
            "train error (%)": _pm(r["train_error"], r["train_error_std"], r["seeds"]),
            "test error (%)": _pm(r["test_error"], r["test_error_std"], r["seeds"]),
            "images/s": None if r["images_per_second"] is None else round(r["images_per_second"]),
            "wall (s)": None if r["wall_seconds"] is None else round(r["wall_seconds"], 1),
        })  # fmt: skip
    return out


def _md_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(format_cell(r.get(c))[0] for c in cols) + " |")
    return "\n".join(lines)


def write_reports(recipe: Recipe, scale: str, out: Path, rows: list[dict[str, Any]], verdicts: Verdicts,
                  tables: Tables, done: dict[str, list[Path]], wall: float,
                  overrides: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """report.md (tables, verdicts, links to figures/) and report.html (everything embedded)."""
    from ..viz._common import save_figure
    from ..viz.compare import Point, plot_compare
    from ..viz.curves import plot_curves, read_run
    from ..viz.html import HtmlReport

    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    figures: list[tuple[str, Any, str]] = []
    first = [read_run(paths[0], label=name) for name, paths in done.items() if paths]
    if first:
        figures.append(("curves.png", plot_curves(first, title=f"{recipe.name}: training (thin) and test (bold) error"),
                        "training (thin) and test (bold) error against epochs, first seed of each run"))
    groups = ANALYSERS[recipe.analysis].curve_groups  # degradation: ResNet Figure 6's two panels
    if groups:
        roles = {r["run"]: r.get("role") or "" for r in rows}
        for kind in groups:
            group = [rec for rec in first if roles.get(rec.label, "").startswith(kind)]
            if group:
                figures.append((f"curves-{kind}.png", plot_curves(group, title=f"{kind} networks"),
                                f"{kind} networks: training (thin) and test (bold) error"))
    pts = [Point(label=r["run"], params=float(r["params"]), macs=None if r["macs"] is None else float(r["macs"]),
                 top1=r["test_top1"], top1_std=r["test_error_std"] or 0.0, n=r["seeds"])
           for r in rows if r["params"] and r["test_top1"] is not None]
    if len(pts) >= 2:
        figures.append(("compare.png", plot_compare(points=pts, title=f"{recipe.name}: accuracy against size and cost"),
                        "test accuracy against parameters and MACs (mean over seeds, bars: standard deviation)"))
    for fname, fig, _ in figures:
        save_figure(fig, fig_dir / fname)

    seeds = recipe.seeds(scale)
    header = (f"scale {scale}, data {recipe.data}, seeds {seeds}, {sum(len(v) for v in done.values())} training runs, "
              f"{wall:.1f} s wall time")
    if overrides:
        header += "; overrides of the recipe: " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    hw = _hardware(done)
    if hw:
        header += f"; hardware: {hw}"
    note = ("Smoke scale: a pipeline check on a few dozen images; its numbers say nothing about the claim."
            if scale == "smoke" else "")
    main = _main_table(rows)

    md = [f"# {recipe.title}", "", f"Claim: {recipe.claim}", "", header, ""]
    if note:
        md += [f"> {note}", ""]
    md += ["## Results", "", _md_table(main, _MAIN_COLUMNS), "", "## Verdict", ""]
    md += [f"- {v}" for v in verdicts] or ["- (no verdict)"]
    for title, trows, cols in tables:
        md += ["", f"## {title}", "", _md_table(trows, cols) if trows else "(no rows)"]
    md += ["", "## Figures", ""] + [f"![{cap}](figures/{f})" for f, _, cap in figures]
    md += ["", f"Reproduce: `{_command(recipe, scale, out, overrides)}`", ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))

    page = HtmlReport(recipe.title)
    page.paragraph(f"Claim: {recipe.claim}")
    page.paragraph(header)
    if note:
        page.paragraph(note, kind="note")
    page.heading("Results")
    page.table(main, _MAIN_COLUMNS)
    page.heading("Verdict")
    for v in verdicts or ["(no verdict)"]:
        page.paragraph(v, kind="verdict")
    for title, trows, cols in tables:
        page.heading(title)
        page.table(trows, cols)
    page.heading("Figures")
    for _, fig, cap in figures:
        page.figure(fig, caption=cap)
    page.heading("Reproduce", level=3)
    page.preformatted(_command(recipe, scale, out, overrides) + "\n\n" + recipe.path.read_text())
    html_path = page.write(out / "report.html")
    return md_path, html_path


def _command(recipe: Recipe, scale: str, out: Path, overrides: dict[str, Any] | None) -> str:
    sets = "".join(f" --set {k}={json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
                   for k, v in (overrides or {}).items())
    seeds = " --seeds " + " ".join(map(str, recipe.seeds(scale)))
    return f"convzoo experiment {recipe.name} --scale {scale}{seeds}{sets} --out {out}"


def _hardware(done: dict[str, list[Path]]) -> str:
    """The device of the first finished run, from its summary.json."""
    for paths in done.values():
        for p in paths:
            try:
                hw = json.loads((p / "summary.json").read_text()).get("hardware") or {}
            except (OSError, json.JSONDecodeError):
                continue
            if hw.get("gpu"):
                return f"{hw['gpu']} ({hw.get('device')})"
            if hw.get("cpu"):
                return f"{hw['cpu']}, {hw.get('cpu_count')} cores, {hw.get('torch_threads')} torch threads"
    return ""

