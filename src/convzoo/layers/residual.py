"""Residual units: basic and bottleneck, every unit variant, every shortcut kind.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (units and
shortcuts A/B/C, sec. 3.3); He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual
Networks", ECCV 2016 (the five unit variants of Fig. 4).

A unit is `preact` -> `branch` (+ `shortcut`) -> `post`. The five variants differ only in
what comes before the first convolution, after the last one and after the addition; between
two convolutions every variant has BN-ReLU (the `between` column of `UNIT_VARIANTS`):

    variant            before first conv   after last conv   after addition   Fig. 4
    original           -                   BN                ReLU             (a)
    bn_after_add       -                   -                 BN, ReLU         (b)
    relu_before_add    -                   BN, ReLU          -                (c)
    relu_only_preact   ReLU                BN                -                (d)
    full_preact        BN, ReLU            -                 -                (e)

Child names are stable: `preact.{norm,act}`, `branch.conv{i}`, `branch.norm{i}` (the BN
after conv i), `branch.act{i}`, `shortcut.{conv,norm}`, `post.{norm,act}`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class UnitVariant:
    """Where BN ("N") and ReLU ("A") sit around a unit's convolutions and its addition."""

    name: str
    before: str  # before the first conv (a pre-activation when not empty)
    last: str  # after the last conv, before the addition
    after: str  # after the addition
    between: str = "NA"  # between two convs: BN-ReLU in every variant

    @property
    def preact(self) -> bool:
        return bool(self.before)


UNIT_VARIANTS: dict[str, UnitVariant] = {
    v.name: v
    for v in (
        UnitVariant("original", before="", last="N", after="A"),
        UnitVariant("bn_after_add", before="", last="", after="NA"),
        UnitVariant("relu_before_add", before="", last="NA", after=""),
        UnitVariant("relu_only_preact", before="A", last="N", after=""),
        UnitVariant("full_preact", before="NA", last="", after=""),
    )
}

#: Shortcut kinds of He et al. 2016 sec. 3.3, plus "none" for the plain networks.
SHORTCUT_KINDS = ("A", "B", "C", "none")
#: Where a bottleneck unit puts its stride: the paper's first 1x1, or torchvision's 3x3 ("v1.5").
STRIDE_PLACEMENTS = ("1x1", "3x3")
BLOCK_KINDS = ("basic", "bottleneck")


def unit_variant(name: str) -> UnitVariant:
    """The variant called `name`; an unknown name raises `ConfigError` listing the valid ones."""
    try:
        return UNIT_VARIANTS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown residual unit {name!r}; expected one of: {', '.join(UNIT_VARIANTS)}") from None


def check_choice(option: str, value: object, choices: tuple[str, ...]) -> str:
    """Return `value` if it is one of `choices`, else raise `ConfigError` naming them."""
    if value not in choices:
        raise ConfigError(f"invalid {option} {value!r}; expected one of: {', '.join(choices)}")
    return str(value)


class ZeroPadShortcut(nn.Module):
    """Option A: identity, subsampled by `stride`, with zero channels appended (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ConfigError(
                f"a zero-padding shortcut (option A) cannot reduce {in_channels} channels to {out_channels}; use B or C"
            )
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        # pad the channel dimension (F.pad lists dims from the last one backwards)
        return F.pad(x, [0, 0, 0, 0, 0, self.extra])


def make_shortcut(
    kind: str, in_channels: int, out_channels: int, stride: int, norm: bool = True
) -> nn.Module | None:
    """The shortcut of one unit: None (plain), identity, zero padding (A) or a 1x1 projection.

    A: identity, zero padding where the dimensions grow; B: projection where they change,
    identity elsewhere; C: projection everywhere. `norm` adds a BN after the projection.
    """
    check_choice("shortcut", kind, SHORTCUT_KINDS)
    if kind == "none":
        return None
    changes = stride != 1 or in_channels != out_channels
    if kind == "C" or (kind == "B" and changes):
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        )
        if norm:
            layers["norm"] = nn.BatchNorm2d(out_channels)
        return nn.Sequential(layers)
    if kind == "A" and changes:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Identity()


# A ReLU works in place when nothing else reads its input: a BN's output (BN's backward
# needs its input, not its output) or the sum of a unit. In place it saves an allocation
# and a pass over memory (about 4% of a ResNet-20 training step on the CPU). A ReLU on a
# unit's input (`relu_only_preact`) is not in place: the shortcut reads that input too.
def _ops(tokens: str, channels: int, index: str, into: OrderedDict[str, nn.Module]) -> None:
    for t in tokens:
        if t == "N":
            into[f"norm{index}"] = nn.BatchNorm2d(channels)
        else:
            into[f"act{index}"] = nn.ReLU(inplace=True)  # between or after convs: always after a BN


def _plain_ops(tokens: str, channels: int, owns_input: bool = False) -> nn.Module:
    """BN and/or ReLU; the ReLU is in place after a BN, or first when `owns_input` (a fresh sum)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, t in enumerate(tokens):
        if t == "N":
            layers["norm"] = nn.BatchNorm2d(channels)
        else:
            layers["act"] = nn.ReLU(inplace=owns_input or (i > 0 and tokens[i - 1] == "N"))
    return nn.Sequential(layers) if layers else nn.Identity()


class ResidualUnit(nn.Module):
    """One residual unit (basic: two 3x3 convs; bottleneck: 1x1-3x3-1x1).

    Args:
        in_channels, out_channels: channels in and out of the unit.
        stride: the unit's spatial stride (2 in the first unit of a downsampling stage).
        block: "basic" or "bottleneck".
        width: the bottleneck's inner width (out_channels // 4 by default).
        stride_in: "3x3" (torchvision, "ResNet v1.5") or "1x1" (the paper) for bottlenecks.
        unit: one of `UNIT_VARIANTS`.
        shortcut: "A", "B", "C" or "none" (a plain unit: no addition at all).
        share_preact: feed the pre-activation to the shortcut too. The 2016 paper does this
            for the unit after the stand-alone conv1 and its code for every unit that
            changes dimensions ("before splitting into two paths", sec. 3.2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        block: str = "basic",
        width: int | None = None,
        stride_in: str = "3x3",
        unit: str = "original",
        shortcut: str = "B",
        share_preact: bool = False,
    ) -> None:
        super().__init__()
        check_choice("block", block, BLOCK_KINDS)
        check_choice("stride placement", stride_in, STRIDE_PLACEMENTS)
        variant = unit_variant(unit)
        if block == "basic":
            convs = [(in_channels, out_channels, 3, stride), (out_channels, out_channels, 3, 1)]
        else:
            w = width if width is not None else out_channels // 4
            s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
            convs = [(in_channels, w, 1, s1), (w, w, 3, s3), (w, out_channels, 1, 1)]

        self.preact = _plain_ops(variant.before, in_channels)
        branch: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (cin, cout, k, s) in enumerate(convs, start=1):
            branch[f"conv{i}"] = nn.Conv2d(cin, cout, k, s, padding=k // 2, bias=False)
            _ops(variant.last if i == len(convs) else variant.between, cout, str(i), branch)
        self.branch = nn.Sequential(branch)
        # the authors' pre-activation code projects the already normalised input: no BN there
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, norm=unit != "full_preact")
        self.post = _plain_ops(variant.after, out_channels, owns_input=True)
        self.shortcut_from_preact = bool(share_preact and variant.preact)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preact(x)
        out = self.branch(pre)
        if self.shortcut is not None:
            out = out + self.shortcut(pre if self.shortcut_from_preact else x)
        return self.post(out)

    def zero_init_last(self) -> None:
        """Zero the branch's last weighted layer so the unit starts as its shortcut (Goyal et al. 2017)."""
        last = [m for m in self.branch if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))][-1]
        nn.init.zeros_(last.weight)
