"""The analysis report: per-layer rows, totals and the memory estimate, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Optimizer state kept per parameter element, in units of the parameter's own size:
#: plain SGD keeps nothing, SGD with momentum one buffer, Adam two moments.
OPTIMIZER_STATE = {"sgd": 0, "sgd_momentum": 1, "adam": 2}
#: The optimizer that `training_bytes` assumes: every paper in the lecture used it.
DEFAULT_OPTIMIZER = "sgd_momentum"


@dataclass
class LayerRecord:
    """One module of the network (pre-order). `params`, `macs` and `other_ops` are the
    module's *own* (parameters registered on it; work done by its own forward code, not by
    its children), so each column sums to the report's total; `cum_*` include children.
    `saved_bytes` is the module's share of the activations saved for backward."""

    name: str
    type: str
    depth: int
    is_leaf: bool
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    other_ops: int = 0
    input_shape: list[Any] | None = None
    output_shape: list[Any] | None = None
    output_elements: int = 0
    output_bytes: int = 0
    calls: int = 0
    cum_params: int = 0
    cum_macs: int = 0
    cum_other_ops: int = 0
    #: bytes autograd keeps for backward that this module's own ops saved first (each
    #: storage once, where it was first saved; the rows sum to `saved_activation_bytes`);
    #: None when there is no training estimate
    saved_bytes: int | None = 0

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """What `dataclasses.asdict` gives (same keys, order and copies), without its generic
        recursion: the explorer converts every row of every answer (a third of a ResNet-152's
        update went to `asdict`). `copy=False` shares the shape lists with the row instead
        of copying them, for a caller that serialises the dict at once (the explorer)."""
        d = self.__dict__
        out = d.copy() if tuple(d) == _ROW_FIELDS else {key: d[key] for key in _ROW_FIELDS}
        if copy:
            for key in ("input_shape", "output_shape"):
                if out[key] is not None:
                    out[key] = _copied(out[key])
        return out


_ROW_FIELDS = tuple(f.name for f in fields(LayerRecord))


def _copied(value: Any) -> Any:
    """A shape (nested lists and tuples of ints) copied, as `asdict` copies it."""
    if isinstance(value, (list, tuple)):
        items = [_copied(v) if isinstance(v, (list, tuple)) else v for v in value]
        return items if type(value) is list else type(value)(items)
    return value


@dataclass
class MemoryReport:
    """Bytes. Activations are for the report's batch size; see docs/analysis.md."""

    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    forward_activation_bytes: int
    peak_inference_bytes: int
    saved_activation_bytes: int | None
    gradient_bytes: int
    optimizer_state_bytes: dict[str, int]
    training_bytes: int | None
    training_bytes_by_optimizer: dict[str, int] | None
    training_optimizer: str = DEFAULT_OPTIMIZER
    #: why there is no training estimate (empty when there is one)
    training_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """What `analyze` returns. `to_dict()` is what `convzoo summary --json` prints."""

    model: str
    input_size: tuple[int, int, int]
    batch_size: int
    dtype: str
    total_params: int
    trainable_params: int
    macs: int
    other_ops: int
    other_ops_by_kind: dict[str, int]
    output_shape: list[Any] | None
    layers: list[LayerRecord]
    memory: MemoryReport
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """FLOPs of the convolutions and matrix products: 2 x MACs (a multiply and an add)."""
        return 2 * self.macs

    def layer(self, name: str) -> LayerRecord:
        """The row of the module with qualified name `name` ('' is the whole model)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def training_memory(self, batch_size: int | None = None, optimizer: str = DEFAULT_OPTIMIZER) -> int:
        """Estimated training bytes for `batch_size` (default: the report's) and `optimizer`
        ('sgd', 'sgd_momentum' or 'adam'): parameters + buffers + gradients + optimizer
        state + the input batch + activations saved for backward. Activations scale
        linearly with the batch (per-channel batch-norm statistics are the only exception,
        and they are a few kilobytes)."""
        from ..errors import ConfigError

        if optimizer not in OPTIMIZER_STATE:
            raise ConfigError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZER_STATE)}")
        b = self.batch_size if batch_size is None else batch_size
        if b < 1:
            raise ConfigError(f"batch size must be at least 1, got {b}")
        m = self.memory
        if m.saved_activation_bytes is None:
            raise ConfigError(m.training_note)
        scale = b / self.batch_size
        return int(
            m.param_bytes
            + m.buffer_bytes
            + m.gradient_bytes
            + m.optimizer_state_bytes[optimizer]
            + round((m.input_bytes + m.saved_activation_bytes) * scale)
        )

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """What `convzoo summary --json` prints. `copy=False` shares the rows' shape lists
        (see `LayerRecord.to_dict`)."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "other_ops": self.other_ops,
            "other_ops_by_kind": dict(self.other_ops_by_kind),
            "output_shape": self.output_shape,
            "memory": self.memory.to_dict(),
            "layers": [row.to_dict(copy=copy) for row in self.layers],
        }
