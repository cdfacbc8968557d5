"""LRN computes the lecture's formula, and relates to PyTorch's LocalResponseNorm by alpha*n.

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta
"""

import pytest
import torch
from torch import nn

from convzoo.layers import LRN


def lrn_by_hand(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """The lecture's formula with explicit loops, in float64."""
    a = a.double()
    batch, channels, height, width = a.shape
    b = torch.empty_like(a)
    for s in range(batch):
        for i in range(channels):
            lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
            for y in range(height):
                for x in range(width):
                    total = 0.0
                    for j in range(lo, hi + 1):
                        total += float(a[s, j, y, x]) ** 2
                    b[s, i, y, x] = float(a[s, i, y, x]) / (k + alpha * total) ** beta
    return b


@pytest.mark.parametrize(
    "n, alpha, beta, k",
    [
        (5, 1e-4, 0.75, 2.0),  # AlexNet section 3.3
        (3, 0.5, 0.75, 1.0),  # large alpha: the sum matters a lot
        (1, 1.0, 0.5, 0.5),  # window of one channel
        (4, 0.3, 1.0, 1.0),  # even n: n/2 = 2 channels each side, as the formula's bounds say
    ],
)
def test_lrn_matches_hand_computation(n, alpha, beta, k):
    torch.manual_seed(0)
    a = torch.randn(2, 7, 3, 2) * 3  # 7 channels: the edge channels have truncated windows
    expected = lrn_by_hand(a, n, alpha, beta, k)
    got = LRN(size=n, alpha=alpha, beta=beta, k=k)(a)
    assert got.shape == a.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_lrn_edge_channel_by_hand():
    # one pixel, 3 channels, n=5 (two neighbours each side): channel 0 sees channels 0..2
    a = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    out = LRN(size=5, alpha=0.1, beta=1.0, k=1.0)(a).flatten()
    # every window covers all three channels: 1 + 0.1 * (1 + 4 + 9) = 2.4
    torch.testing.assert_close(out, torch.tensor([1 / 2.4, 2 / 2.4, 3 / 2.4]))
    a = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)
    out = LRN(size=3, alpha=0.1, beta=1.0, k=1.0)(a).flatten()
    denominators = [1 + 0.1 * (1 + 4), 1 + 0.1 * (1 + 4 + 9), 1 + 0.1 * (4 + 9 + 16), 1 + 0.1 * (9 + 16)]
    torch.testing.assert_close(out, torch.tensor([v / d for v, d in zip([1.0, 2.0, 3.0, 4.0], denominators)]))


@pytest.mark.parametrize("n", [1, 3, 5])
def test_lrn_equals_pytorch_with_alpha_times_n(n):
    # PyTorch's LocalResponseNorm divides alpha by n (it averages the squares over the
    # window, zero-padded at the edges), so the lecture's alpha is PyTorch's alpha / n.
    torch.manual_seed(1)
    a = torch.randn(2, 8, 4, 4) * 4
    alpha, beta, k = 2e-2, 0.75, 2.0
    ours = LRN(size=n, alpha=alpha, beta=beta, k=k)(a)
    theirs = nn.LocalResponseNorm(n, alpha=alpha * n, beta=beta, k=k)(a)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    if n > 1:  # and passing the paper's alpha unchanged gives a different layer
        wrong = nn.LocalResponseNorm(n, alpha=alpha, beta=beta, k=k)(a)
        assert (wrong - ours).abs().max() > 1e-3


def test_lrn_keeps_paper_constants_and_has_no_parameters():
    layer = LRN()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)
    assert sum(p.numel() for p in layer.parameters()) == 0
    assert "alpha=0.0001" in repr(layer)
    x = torch.empty(1, 4, 3, 3, device="meta")
    assert layer(x).shape == x.shape


def test_lrn_gradient_matches_hand_formula():
    torch.manual_seed(2)
    a = torch.randn(1, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    layer = LRN(size=3, alpha=0.5, beta=0.75, k=1.0)
    assert torch.autograd.gradcheck(layer, (a,))
