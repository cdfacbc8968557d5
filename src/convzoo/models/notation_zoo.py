"""Zoo models written in the lecture's notation.

Some networks the lecture discusses exist here only as a line of notation: the `lrn`
experiment's pair, VGG configuration A and A-LRN at a quarter of VGG's widths
(64-128-256-512-512 -> 16-32-64-128-128, FC 4096 -> 256) for a 1x32x32 input, which the
shipped Fashion-MNIST weights are trained on. `NotationNet` gives such a line the zoo's
contract (`ZooModel`: `forward_features` / `forward_head`, `feature_info`, timm's
classifier names), so it can be registered, trained, exported and given weights like any
other family:

- `features`: every layer before `(Flat)` (the convolutional trunk), child names as the
  notation's builder gives them (`conv1`, `lrn`, `pool1`, ...);
- `pre_logits`: `(Flat)` and the hidden fc layers (with their dropout);
- `fc`: the last fc, a plain `nn.Linear` (the classifier; `num_classes=0` removes it).

The line is the model's canonical notation (`model.spec_text`), so `convzoo spec` and the
explorer show exactly what was registered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import ModelInfo, register_model
from .base import ZooModel, check_num_classes, classifier

VGG_PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015"

#: the `lrn` experiment's columns (src/convzoo/experiments recipes, `lrn`): VGG A and A-LRN
#: at a quarter of VGG's widths; A-LRN adds LRN after conv1 with Krizhevsky's constants.
VGG_A_NARROW = (
    "16c3w1s1p 2w2s 32c3w1s1p 2w2s 64c3w1s1p 64c3w1s1p 2w2s 128c3w1s1p 128c3w1s1p 2w2s "
    "128c3w1s1p 128c3w1s1p 2w2s (Flat) 256fc (Dropout)0.5 256fc (Dropout)0.5 10fc"
)
VGG_A_LRN_NARROW = VGG_A_NARROW.replace("16c3w1s1p 2w2s", "16c3w1s1p (LRN)5n2k1e-4a0.75b 2w2s", 1)


class NotationNet(ZooModel):
    """A network given by one line of the notation, with the zoo's interface.

    The line's last layer must be an fc (the classifier); `num_classes` replaces its width
    (0: no classifier). The line must contain `(Flat)`: what comes before it is the trunk.
    """

    def __init__(self, text: str, num_classes: int = 10, in_channels: int = 1, input_size: int = 32) -> None:
        super().__init__()
        from ..notation import FC, Flatten, from_spec, parse

        check_num_classes(num_classes)
        spec = parse(text)
        layers = list(spec.layers)
        if not layers or not isinstance(layers[-1], FC):
            raise ConfigError(f"a notation model must end in an fc layer (the classifier): {text!r}")
        flat = next((i for i, layer in enumerate(layers) if isinstance(layer, Flatten)), None)
        if flat is None:
            raise ConfigError(f"a notation model needs a (Flat) between its trunk and its head: {text!r}")
        net = from_spec(text, in_channels=in_channels, input_size=input_size)
        children = list(net.named_children())
        self.spec_text = text
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.features = nn.Sequential(OrderedDict(children[:flat]))
        self.pre_logits = nn.Sequential(OrderedDict(children[flat:-1]))
        last = children[-1][1]
        linear = last.linear if hasattr(last, "linear") else last
        self.head_hidden_size = linear.in_features
        self.fc = classifier(self.head_hidden_size, num_classes)
        if num_classes and num_classes == linear.out_features:
            self.fc = linear
        self.num_features = _trunk_channels(self.features, in_channels)
        self.feature_info = _feature_info(self.features, in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """He et al. 2015 ("Delving Deep into Rectifiers", section 2.2: zero-mean Gaussian,
        std sqrt(2 / fan_in), zero biases) for every conv and fc layer. VGG itself was trained
        from N(0, 0.01) (A first, the deeper nets from A), and torchvision's VGG uses that for
        its fc layers: at a quarter width both leave these 11 layers without BN at chance
        (loss 2.30 after 100 SGD steps on Fashion-MNIST, measured), He's reaches 0.82."""
        if self._is_meta():
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)
        return x if pre_logits else self.fc(x)


def _trunk_channels(trunk: nn.Sequential, channels: int) -> int:
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
    return channels


def _feature_info(trunk: nn.Sequential, channels: int) -> list[dict[str, Any]]:
    """One entry per pooling layer of the trunk (the end of each stage)."""
    info, reduction = [], 1
    for name, module in trunk.named_children():
        for sub in module.modules():
            if isinstance(sub, nn.Conv2d):
                channels = sub.out_channels
                reduction *= sub.stride[0] if isinstance(sub.stride, tuple) else sub.stride
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            stride = module.stride if isinstance(module.stride, int) else module.stride[0]
            reduction *= stride
            info.append({"module": f"features.{name}", "channels": channels, "reduction": reduction})
    return info


def _register(name: str, text: str, description: str) -> None:
    def build(**kwargs: Any) -> NotationNet:
        return NotationNet(text, **kwargs)

    register_model(
        ModelInfo(
            name=name,
            family="vgg",
            builder=build,
            paper=VGG_PAPER,
            default_input=(1, 32, 32),
            min_input=32,
            num_classes=10,
            description=description,
        )
    )


_register(
    "vgg_a_narrow",
    VGG_A_NARROW,
    "VGG configuration A at a quarter width, 1x32x32, from the notation (the lrn experiment's baseline)",
)
_register(
    "vgg_a_lrn_narrow",
    VGG_A_LRN_NARROW,
    "VGG configuration A-LRN at a quarter width, 1x32x32, from the notation (LRN after conv1)",
)
