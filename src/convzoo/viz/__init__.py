"""Pictures of networks and runs: filters, feature maps, curves, architecture, comparisons.

Every plotting function returns a matplotlib `Figure` drawn on the Agg canvas (no global
backend is touched, nothing happens at import) and `save_figure(fig, path)` writes PNG or
SVG by the file's extension. `convzoo.viz.html` builds self-contained HTML reports.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "save_figure": ("convzoo.viz._common", "save_figure"),
    "plot_filters": ("convzoo.viz.filters", "plot_filters"),
    "filter_grid": ("convzoo.viz.filters", "filter_grid"),
    "plot_feature_maps": ("convzoo.viz.features", "plot_feature_maps"),
    "feature_maps": ("convzoo.viz.features", "feature_maps"),
    "top_patches": ("convzoo.viz.features", "top_patches"),
    "plot_top_patches": ("convzoo.viz.features", "plot_top_patches"),
    "plot_curves": ("convzoo.viz.curves", "plot_curves"),
    "read_run": ("convzoo.viz.curves", "read_run"),
    "plot_arch": ("convzoo.viz.arch", "plot_arch"),
    "arch_blocks": ("convzoo.viz.arch", "arch_blocks"),
    "plot_compare": ("convzoo.viz.compare", "plot_compare"),
    "HtmlReport": ("convzoo.viz.html", "HtmlReport"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'convzoo.viz' has no attribute {name!r}")
