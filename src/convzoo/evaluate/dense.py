"""VGG's dense evaluation (Simonyan & Zisserman 2015, Sec. 3.2): `densify` turns the fully
connected head into convolutions, so the network runs on a whole image of any size and
gives a class score map; `DenseModel` averages the map spatially.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError

class _Captured(Exception):
    """Carries the trunk's output out of the model's forward (not a RuntimeError on purpose)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__("captured")
        self.tensor = tensor


_HEAD_TYPES = (nn.Linear, nn.ReLU, nn.Dropout, nn.Flatten, nn.Identity)


class DenseModel(nn.Module):
    """A network whose fully connected head runs as convolutions (see `densify`).

    Shares its weights with the original model. `forward(x)` returns class scores averaged
    over the spatial score map (N x classes); `score_map(x)` returns the map itself.
    """

    def __init__(self, model: nn.Module, cut: nn.Module, cut_call: int, take_input: bool,
                 bridge: nn.Module, head: nn.Sequential) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.bridge = bridge
        self.head = head
        # the module where the trunk ends, found by tracing; not a submodule twice over
        self.__dict__["_cut"] = cut
        self.cut_call = cut_call
        self.take_input = take_input

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map that the (bypassed) pooling and the flatten received."""
        calls = [0]

        def grab(t: torch.Tensor) -> None:
            calls[0] += 1
            if calls[0] == self.cut_call:
                raise _Captured(t)

        cut: nn.Module = self.__dict__["_cut"]
        if self.take_input:
            handle = cut.register_forward_pre_hook(lambda _m, inp: grab(inp[0]))
        else:
            handle = cut.register_forward_hook(lambda _m, _inp, out: grab(out))
        try:
            self.model(x)
        except _Captured as got:
            return got.tensor
        finally:
            handle.remove()
        raise ConfigError("the traced trunk did not run for this input; densify the model again")

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Class score map N x classes x h x w (1 x 1 at the training size)."""
        return self.head(self.bridge(self.trunk(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_map(x).mean(dim=(2, 3))


def _default_input(model: nn.Module, input_size: Any, in_channels: int | None) -> tuple[int, int, int]:
    if in_channels is None:
        in_channels = getattr(model, "in_channels", None)
        if in_channels is None:
            conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
            in_channels = conv.in_channels if conv is not None else None
    if input_size is None:
        name = getattr(model, "zoo_name", None)
        if name is not None:
            from ..registry import model_info

            c, h, w = model_info(name).default_input
            return (in_channels or c, h, w)
        raise ConfigError("densify needs the input size the model was trained at (input_size=...)")
    if in_channels is None:
        raise ConfigError("densify cannot tell the model's input channels; pass in_channels=...")
    if isinstance(input_size, int):
        return (in_channels, input_size, input_size)
    size = tuple(int(v) for v in input_size)
    return (in_channels, *size[-2:])  # type: ignore[return-value]


def densify(
    model: nn.Module, input_size: int | Sequence[int] | None = None, in_channels: int | None = None
) -> DenseModel:
    """The model with its fully connected layers turned into equivalent convolutions.

    Works on any model whose head is (adaptive pool?) -> flatten -> a chain of
    Linear/ReLU/Dropout (VGG, AlexNet, LeNet). The first Linear becomes a convolution whose
    kernel is the feature map it was trained on (VGG: 7x7), the next ones 1x1 convolutions
    (VGG Sec. 3.2). An adaptive pool that is the identity at the training size is bypassed
    (torchvision-style VGG/AlexNet), one that shrinks by an integer factor becomes an average
    pool, one that repeats pixels an upsampling, so a larger input gives a larger score map.
    At the training size the output equals the model's. `input_size` defaults to the
    registry's default input for zoo models. Raises ConfigError for other heads.
    """
    c, h, w = _default_input(model, input_size, in_channels)
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    records: list[dict[str, Any]] = []
    names = {id(m): n for n, m in model.named_modules()}
    counts: dict[int, int] = {}

    pending: dict[int, list[torch.Tensor | None]] = {}

    def pre_hook(mod: nn.Module, inputs: tuple[Any, ...]) -> None:
        # clone the input before the module runs: an in-place module would change it
        first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        pending.setdefault(id(mod), []).append(first.detach().clone() if first is not None else None)

    def hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        in_value = pending[id(mod)].pop()
        if in_value is None or not isinstance(output, torch.Tensor):
            records.append({"module": mod, "ok": False})
            return
        counts[id(mod)] = counts.get(id(mod), 0) + 1
        records.append({
            "module": mod, "ok": True, "call": counts[id(mod)], "in": inputs[0], "in_shape": tuple(in_value.shape),
            "out": output, "out_value": output.detach().clone(), "in_value": in_value,
        })  # fmt: skip

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_pre_hook(pre_hook) for m in leaves]
    handles += [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            x = torch.randn((1, c, h, w), generator=g).to(device=device, dtype=dtype)
            y = model(x)
    finally:
        for hd in handles:
            hd.remove()
        model.train(was_training)
    if isinstance(y, (tuple, list)):
        y = y[0]
    last4 = max((i for i, r in enumerate(records) if r["ok"] and r["out"].dim() == 4), default=None)
    if last4 is None:
        raise ConfigError(f"{type(model).__name__} has no convolutional feature map to densify")
    cut = records[last4]
    head_recs = records[last4 + 1 :]
    for r in head_recs:
        if not r["ok"] or not isinstance(r["module"], _HEAD_TYPES):
            raise ConfigError(
                f"densify supports heads made of Linear/ReLU/Dropout/Flatten; found "
                f"{type(r['module']).__name__} ('{names.get(id(r['module']), '?')}') after the last feature map"
            )
    if not any(isinstance(r["module"], nn.Linear) for r in head_recs):
        raise ConfigError(f"{type(model).__name__} has no fully connected layer after its last feature map")
    # the head must be a plain chain: each module reads what the previous one returned,
    # starting from the flattened feature map, and the model returns the last output
    flat = cut["out_value"].flatten(1)
    first_in = head_recs[0]["in_value"]
    if not (first_in.shape == flat.shape and torch.equal(first_in, flat)) and head_recs[0]["in"] is not cut["out"]:
        raise ConfigError(
            "the fully connected head does not read the flattened feature map (densify needs a plain chain)"
        )
    for prev, cur in zip(head_recs, head_recs[1:]):
        if cur["in"] is not prev["out"] and not (
            cur["in_value"].shape == prev["out_value"].flatten(1).shape
            and torch.equal(cur["in_value"], prev["out_value"].flatten(1))
        ):
            raise ConfigError(
                f"'{names.get(id(cur['module']), '?')}' does not read the output of "
                f"'{names.get(id(prev['module']), '?')}': the head is not a plain chain (functional ops in forward?)"
            )
    if not torch.equal(y.detach(), head_recs[-1]["out_value"]):
        raise ConfigError("the model's output is not the last fully connected layer's output")

    # the feature map the first Linear was trained on, and how to get it at any size
    cut_mod = cut["module"]
    bridge: nn.Module = nn.Identity()
    take_input = False
    fmap_shape = tuple(cut["out"].shape[1:])
    if isinstance(cut_mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        ih, iw = cut["in_shape"][-2:]
        oh, ow = fmap_shape[-2:]
        take_input = True
        if (ih, iw) == (oh, ow):
            bridge = nn.Identity()  # identity at the training size: bypass it
        elif ih % oh == 0 and iw % ow == 0:
            k = (ih // oh, iw // ow)
            bridge = nn.AvgPool2d(k, k) if isinstance(cut_mod, nn.AdaptiveAvgPool2d) else nn.MaxPool2d(k, k)
        elif oh % ih == 0 and ow % iw == 0:
            bridge = nn.Upsample(scale_factor=(oh // ih, ow // iw), mode="nearest")
        else:
            raise ConfigError(
                f"the adaptive pool maps {ih}x{iw} to {oh}x{ow} at the training size; dense evaluation needs "
                "an integer ratio (train at a size where the pool is the identity)"
            )
    layers: list[nn.Module] = []
    seen_linear = False
    for r in head_recs:
        m = r["module"]
        if isinstance(m, nn.Linear):
            if not seen_linear:
                ch, kh, kw = fmap_shape
                if ch * kh * kw != m.in_features:
                    raise ConfigError(
                        f"feature map {fmap_shape} does not match the first Linear's {m.in_features} inputs"
                    )
                conv = nn.Conv2d(ch, m.out_features, (kh, kw), bias=m.bias is not None)
                # flatten order is (C, H, W), so the Linear's weight rows are the kernel
                conv.weight = nn.Parameter(m.weight.detach().view(m.out_features, ch, kh, kw), requires_grad=False)
                seen_linear = True
            else:
                conv = nn.Conv2d(m.in_features, m.out_features, 1, bias=m.bias is not None)
                conv.weight = nn.Parameter(
                    m.weight.detach().view(m.out_features, m.in_features, 1, 1), requires_grad=False
                )
            if m.bias is not None:
                conv.bias = nn.Parameter(m.bias.detach(), requires_grad=False)
            layers.append(conv)
        elif isinstance(m, nn.ReLU):
            layers.append(nn.ReLU())
        elif isinstance(m, nn.Dropout):
            layers.append(nn.Dropout(m.p))
    dense = DenseModel(model, cut_mod, cut["call"], take_input, bridge, nn.Sequential(*layers))
    return dense.to(device).train(model.training)

