"""The model zoo: one file per family, each registering the rows of its table."""

from .base import ZooModel

__all__ = ["ZooModel"]
