"""Local response normalisation exactly as the lecture writes it.

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

The sum runs over n/2 (integer division) channels on each side. PyTorch's
`nn.LocalResponseNorm` instead divides alpha by n (it averages over the window), so
AlexNet's alpha=1e-4 would have to be passed to it as 5e-4; this layer takes the paper's
constants as printed (Krizhevsky et al. 2012, section 3.3: k=2, n=5, alpha=1e-4, beta=0.75).

`LRN_ARGS` holds those constants, once: they are `LRN`'s defaults, and every family that
uses AlexNet's LRN (AlexNet, VGG A-LRN, GoogLeNet) passes them by name. (The notation's
torch-free `(LRN)` defaults, `notation.spec.LRN_DEFAULTS`, are tested equal to them.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

#: Krizhevsky et al. 2012, section 3.3: n=5, alpha=1e-4, beta=0.75, k=2 (sum over the window)
LRN_ARGS: dict[str, float] = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}


class LRN(nn.Module):
    """Cross-channel local response normalisation with the paper's (sum) convention."""

    def __init__(
        self,
        size: int = int(LRN_ARGS["size"]),
        alpha: float = LRN_ARGS["alpha"],
        beta: float = LRN_ARGS["beta"],
        k: float = LRN_ARGS["k"],
    ) -> None:
        super().__init__()
        if size < 1:
            raise ConfigError(f"LRN size must be at least 1, got {size}")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.size // 2
        window = 2 * half + 1
        squares = x.pow(2)
        if half:
            # zero channels on each side, by concatenation: with F.pad the TorchScript-based
            # ONNX exporter loses the static map size, and an adaptive pool after it fails
            n, _, h, w = squares.shape
            zeros = squares.new_zeros(n, half, h, w)
            squares = torch.cat([zeros, squares, zeros], 1)
        # N, 1, C + 2 * half, H, W: average along the channel axis
        summed = F.avg_pool3d(squares.unsqueeze(1), (window, 1, 1), stride=1).squeeze(1) * window
        return x / (self.k + self.alpha * summed).pow(self.beta)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
