"""Building blocks shared by the families. Knows nothing of any family."""

from .conv import ConvNormAct
from .lrn import LRN

__all__ = ["ConvNormAct", "LRN"]
