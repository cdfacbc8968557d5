"""`ZooModel`: what every convzoo network offers, whatever its family.

- `num_classes`, `in_channels`
- `forward_features(x)` (the trunk) and `forward_head(x, pre_logits=False)` (pooling and
  classifier); `forward(x) == forward_head(forward_features(x))`
- `feature_info`: one dict per stage, `{"module", "channels", "reduction"}`
- timm's classifier contract: `num_features` (channels of `forward_features`' output),
  `head_hidden_size` (width of the pre-logits features, what the classifier reads),
  `get_classifier()` (the final layer), `reset_classifier(num_classes)` (a new final layer on
  the model's device and in its dtype; `num_classes=0` removes it: `forward` then returns the
  pre-logits features, as `num_classes=0` does at creation). The family sets
  `classifier_name` (the final layer's module path) and the two widths; a network with
  auxiliary classifiers (GoogLeNet) lists their last layers in `aux_classifiers`, and
  `reset_classifier` replaces them too. One implementation, here, for every family.
- an input too small for the network raises `InputSizeError` naming the layer where it
  breaks and the smallest input that works, instead of a shape error deep in PyTorch.
- `convert_torchvision_state_dict(sd)` for families with a torchvision counterpart.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, InputSizeError


def _compiling_or_tracing() -> bool:
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling():
        return True
    from torch.fx import _symbolic_trace as fx_trace

    check = getattr(fx_trace, "is_fx_symbolic_tracing", None) or getattr(fx_trace, "is_fx_tracing", None)
    return bool(check()) if check is not None else False


class ZooModel(nn.Module):
    """Base class of the zoo's networks. Subclasses set the attributes in `__init__`."""

    num_classes: int
    in_channels: int
    feature_info: list[dict[str, Any]]
    num_features: int
    head_hidden_size: int
    #: module path of the final classifier layer (`get_classifier`, `reset_classifier`)
    classifier_name: str = "fc"
    #: module path -> input width of the auxiliary heads' last layers (none by default)
    aux_classifiers: dict[str, int] = {}
    # metadata, not state: TorchScript cannot read these (postponed) annotations
    __jit_ignored_attributes__ = [
        "num_classes", "in_channels", "feature_info", "zoo_name", "num_features", "head_hidden_size",
        "classifier_name", "spec", "aux_classifiers",
    ]  # fmt: skip

    def _is_meta(self) -> bool:
        """True when the model was built on the meta device: weight initialisation is moot
        there, and PyTorch's meta `normal_` is slow enough to dominate building deep nets."""
        return any(p.is_meta for p in self.parameters())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The final classifier layer (`nn.Identity` when the model has none: num_classes=0)."""
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer, and the last layers of any auxiliary heads, by fresh ones
        for `num_classes` (0: none, as in timm), on the device and in the dtype of the
        model's parameters."""
        check_num_classes(num_classes)
        self._replace_module(self.classifier_name, classifier(self.head_hidden_size, num_classes, like=self))
        for path, width in self.aux_classifiers.items():
            self._replace_module(path, classifier(width, num_classes, like=self))
        self.num_classes = num_classes

    def _replace_module(self, path: str, module: nn.Module) -> None:
        parent_name, _, child = path.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        setattr(parent, child, module)

    # -- torchvision interoperability -------------------------------------------------
    def convert_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename a torchvision state_dict's keys to this model's. Families override."""
        raise CheckpointError(f"{type(self).__name__} has no torchvision counterpart")

    # -- clear errors for inputs that are too small ------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _compiling_or_tracing():
            return super().__call__(*args, **kwargs)
        try:
            return super().__call__(*args, **kwargs)
        except RuntimeError as err:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor):
                explained = explain_input_failure(self, x)
                if explained is not None:
                    raise explained from err
            raise


def check_num_classes(num_classes: Any) -> int:
    """`num_classes` must be an int >= 0 (0: no classifier, the pre-logits features come out)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ConfigError(f"num_classes must be 0 (no classifier) or a positive integer, got {num_classes!r}")
    return num_classes


def classifier(in_features: int, num_classes: int, like: nn.Module | None = None) -> nn.Module:
    """The final layer: `nn.Linear(in_features, num_classes)`, or `nn.Identity()` for 0 classes.

    With `like`, the layer is made on the device and in the floating dtype of `like`'s first
    floating-point parameter (a model moved with `.to(device)` or `.double()` keeps them).
    """
    check_num_classes(num_classes)
    if num_classes == 0:
        return nn.Identity()
    device = dtype = None
    if like is not None:
        p = next((q for q in like.parameters() if q.is_floating_point()), None)
        if p is not None:
            device, dtype = p.device, p.dtype
    return nn.Linear(in_features, num_classes, device=device, dtype=dtype)


def _runs(
    model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
) -> tuple[bool, str | None, tuple[int, ...] | None]:
    """Run `model` on a meta tensor of `shape` and `dtype`; return (ok, failing leaf name, its input shape)."""
    last: list[Any] = [None, None]

    def pre_hook(name: str):
        def hook(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
            last[0] = name
            first = inputs[0] if inputs else None
            last[1] = tuple(first.shape) if isinstance(first, torch.Tensor) else None

        return hook

    handles = [
        m.register_forward_pre_hook(pre_hook(n))
        for n, m in model.named_modules()
        if n and not any(True for _ in m.children())
    ]
    try:
        with torch.no_grad():
            x = torch.empty(shape, device="meta", dtype=dtype)
            try:
                # `model` is a meta copy (see `_meta_copy`); bypass ZooModel.__call__ so a
                # failure here is reported, not explained again
                nn.Module.__call__(model, x)
                return True, None, None
            except Exception:
                return False, last[0], last[1]
    finally:
        for h in handles:
            h.remove()


def _meta_copy(model: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(model) if not any(p.is_meta for p in model.parameters()) else model
    return clone.to("meta")


def minimum_input_size(model: nn.Module, channels: int, upper: int = 1024) -> int | None:
    """The smallest square side the network accepts, found on the meta device.

    Uses the registry's metadata when the model came from `create_model`; otherwise a
    binary search, or for fixed-size networks (a flatten into a linear layer) a scan.
    """
    name = getattr(model, "zoo_name", None)
    if name is not None:
        from ..registry import model_info

        return model_info(name).min_input
    meta = _meta_copy(model)
    if not _runs(meta, (1, channels, upper, upper))[0]:
        for side in range(1, 257):
            if _runs(meta, (1, channels, side, side))[0]:
                return side
        return None
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi) // 2
        if _runs(meta, (1, channels, mid, mid))[0]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def explain_input_failure(model: nn.Module, x: torch.Tensor) -> InputSizeError | None:
    """If `x` fails because of its size, an `InputSizeError` saying where and why; else None."""
    if x.dim() != 4:
        expected = getattr(model, "in_channels", "C")
        return InputSizeError(
            f"{type(model).__name__} expects a 4-d input (N, {expected}, H, W), got shape {tuple(x.shape)}"
        )
    in_ch = getattr(model, "in_channels", None)
    if in_ch is not None and x.shape[1] != in_ch:
        return InputSizeError(
            f"{type(model).__name__} expects {in_ch} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})"
        )
    meta = _meta_copy(model)
    # the same dtype as the real call: a dtype mismatch (a bf16 model fed float32) fails
    # here too, and at every size, so it is not diagnosed as a size problem below
    ok, layer, layer_in = _runs(meta, (1, *x.shape[1:]), x.dtype)
    if ok:
        return None
    smallest = minimum_input_size(model, x.shape[1])
    if smallest is None:
        return None  # no size works: not a size problem
    # batch 2: batch norm in training mode needs two values per channel at a 1x1 map
    if not _runs(meta, (2, x.shape[1], smallest, smallest), x.dtype)[0]:
        return None  # the size that works in float32 fails with this input: not a size problem
    h, w = x.shape[-2:]
    name = type(model).__name__
    where = f"layer '{layer}' received shape {layer_in}"
    if smallest is not None and min(h, w) < smallest:
        return InputSizeError(
            f"input of {h}x{w} is too small for {name}: {where}; the smallest input it accepts is {smallest}x{smallest}"
        )
    hint = f"; it works at {smallest}x{smallest}" if smallest else ""
    return InputSizeError(f"input of {h}x{w} does not fit {name}: {where}{hint}")
