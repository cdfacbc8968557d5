"""Building blocks shared by the families. Knows nothing of any family."""

from .conv import ConvNormAct
from .lrn import LRN
from .inception import InceptionBlock

__all__ = ["ConvNormAct", "LRN"]
__all__ += ["InceptionBlock"]
from .residual import ResidualUnit, ZeroPadShortcut  # noqa: E402
from .dense import DenseBlock, DenseLayer, Transition  # noqa: E402
__all__ += ["ResidualUnit", "ZeroPadShortcut", "DenseLayer", "DenseBlock", "Transition"]
