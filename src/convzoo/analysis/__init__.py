"""Analysis: parameters, multiply-accumulates and memory of any network, on the meta device.

`analyze(model_or_name, input_size=(C, H, W), batch_size=1)` returns a `Report`;
`convzoo.analysis.papers` holds the published tables and compares them with computed
numbers; `convzoo.analysis.render` turns a report into a terminal table, JSON, CSV or
Markdown.
"""

from __future__ import annotations

from .engine import analyze, parse_input_size
from .report import LayerRecord, MemoryReport, Report

__all__ = ["analyze", "parse_input_size", "Report", "LayerRecord", "MemoryReport"]
