"""The first layer's filters as a grid, like the AlexNet paper's Figure 3.

Each filter is normalised on its own (min-max over its weights) so that its pattern, not its
scale, is visible. Three-channel filters are drawn in colour; any other channel count is
drawn in grey as the mean over input channels (for one channel that is the filter itself).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from matplotlib.figure import Figure
    from torch import nn


def first_conv(model: "nn.Module") -> tuple[str, "nn.Module"]:
    """(qualified name, module) of the first 2-d convolution in registration order."""
    from torch import nn

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ConfigError(f"{type(model).__name__} has no 2-d convolution whose filters could be drawn")


def filter_grid(weight: "torch.Tensor", *, columns: int | None = None, pad: int = 1) -> "np.ndarray":
    """Tile conv weights (out, in, kh, kw) into one image, each filter normalised to [0, 1].

    Returns an (H, W, 3) array for three input channels, else (H, W); padding is white.
    """
    import numpy as np

    w = weight.detach().float().cpu()
    if w.dim() != 4:
        raise ConfigError(f"expected convolution weights of shape (out, in, kh, kw), got {tuple(w.shape)}")
    n, c, kh, kw = w.shape
    colour = c == 3
    tiles = w.numpy() if colour else w.mean(dim=1, keepdim=True).numpy()
    lo = tiles.reshape(n, -1).min(axis=1).reshape(n, 1, 1, 1)
    hi = tiles.reshape(n, -1).max(axis=1).reshape(n, 1, 1, 1)
    tiles = (tiles - lo) / np.where(hi - lo > 0, hi - lo, 1.0)  # a constant filter stays at 0
    cols = columns or max(1, math.ceil(math.sqrt(n * 1.5)))  # 96 filters: 8 rows of 12 (AlexNet Fig. 3)
    rows = math.ceil(n / cols)
    depth = 3 if colour else 1
    grid = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, depth), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (kh + pad), pad + q * (kw + pad)
        grid[y : y + kh, x : x + kw, :] = np.transpose(tiles[i], (1, 2, 0))
    return grid if colour else grid[:, :, 0]


def plot_filters(model: "nn.Module", *, title: str | None = None, columns: int | None = None) -> "Figure":
    """A figure of the first convolution's filters of `model`."""
    from ._common import new_figure

    name, conv = first_conv(model)
    weight = conv.weight
    if weight.is_meta:
        raise ConfigError("the model's weights are on the meta device; filters need real weights")
    grid = filter_grid(weight, columns=columns)
    n, c, kh, kw = weight.shape
    aspect = grid.shape[1] / grid.shape[0]
    height = 4.0
    fig = new_figure(max(3.0, min(14.0, height * aspect)), height + 0.6)
    ax = fig.add_subplot(1, 1, 1)
    if grid.ndim == 2:
        ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    kind = "colour" if c == 3 else ("grey" if c == 1 else f"grey, mean of {c} channels")
    label = getattr(model, "zoo_name", type(model).__name__)
    ax.set_title(title or f"{label}: {n} filters {kh}x{kw} of '{name}' ({kind}, each normalised)", fontsize=10)
    return fig
