"""Replay of repeated blocks: analyse each distinct block once, then re-apply its effect.

A ResNet-1202 is 600 identical units in three stages; pricing every op of every unit is
most of the time of its analysis. A module's forward on the meta device is a function of
its class, its plain attributes, the shapes of its tensors, its children and the input's
shape, layout, dtype and `requires_grad`: nothing else (no values exist). So the engine
computes a structural *fingerprint* of every module, and the first call of a repeated
module with a given input is recorded:

- inference pass: the MACs and other ops charged to each row of its subtree, the calls and
  shapes of its descendants, the bytes its ops wrote, the peak live bytes it reached above
  what was live when it started, and its output;
- training pass: the storages that autograd saved during the call, each one classified as
  the block's input, its output or internal (bytes only), with the row it was charged to.

A later call of a module with the same fingerprint and input signature does not run: the
record is applied to that module's own rows and a fresh meta tensor of the recorded shape
and layout stands in for its output. A call that cannot be described that way (several
arguments, an output that is not one new dense tensor, something left alive besides the
output) marks its key as not replayable and always runs. Modules that may depend on more
than the fingerprint sees (their own hooks, an instance-level `forward`, a tensor or an
object held in an attribute, a child used twice) get no fingerprint and always run.
`tests/test_analysis_replay.py` checks that replayed reports equal fully computed ones.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["module_tree", "fingerprints", "replayable_roots", "InferenceReplay", "TrainingReplay", "patched"]

_MODULE_INTERNALS = frozenset(nn.Module().__dict__)
# the hook dicts that can change what a call does (`_forward_hooks`, `_forward_pre_hooks`,
# `_backward_hooks`, `_backward_pre_hooks`; the *_with_kwargs / always_called ones are
# only filled together with these) are checked in `fingerprints`
_ATOMS = frozenset({int, float, str, bool, type(None), torch.dtype})
_UNFIT = object()


def _freeze(value: Any) -> Any:
    """A hashable copy of a plain attribute value, or `_UNFIT` for anything else."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is tuple and all(type(v) in _ATOMS for v in value):
        return value  # the common case: kernel sizes, strides, paddings
    if isinstance(value, (tuple, list)):
        items = tuple(_freeze(v) for v in value)
        return _UNFIT if any(v is _UNFIT for v in items) else (type(value), items)
    return _UNFIT


def module_tree(model: nn.Module) -> tuple[list[tuple[str, nn.Module, int]], Counter[int]]:
    """`(name, module, depth)` in the pre-order of `model.named_modules()` (each module once,
    at its first place), and how many parents refer to each module (by id).

    An explicit stack instead of `named_modules`' recursive generators, whose cost grows
    with the depth of the tree: this is a large part of analysing a 1000-layer network.
    """
    entries: list[tuple[str, nn.Module, int]] = []
    parents: Counter[int] = Counter()
    seen: set[int] = set()
    stack: list[tuple[str, nn.Module, int]] = [("", model, 0)]
    while stack:
        name, m, depth = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        entries.append((name, m, depth))
        children = [(k, c) for k, c in m._modules.items() if c is not None]
        prefix = name + "." if name else ""
        for k, c in reversed(children):
            parents[id(c)] += 1
            stack.append((prefix + k, c, depth + 1))
    return entries, parents


def fingerprints(model: nn.Module, tree: tuple[list[tuple[str, nn.Module, int]], Counter[int]] | None = None) -> dict[nn.Module, int]:
    """Structural fingerprint of every module that can be replayed (see the module docstring).

    Two modules get the same number exactly when their class, plain attributes, training
    flags, parameter and buffer shapes/dtypes and children (names and fingerprints, in
    order) are equal. `tree` is `module_tree(model)` if already computed.
    """
    _, parents = tree if tree is not None else module_tree(model)
    table: dict[Any, int] = {}
    result: dict[nn.Module, int] = {}
    done: dict[int, int | None] = {}
    internals = _MODULE_INTERNALS

    def visit(m: nn.Module) -> int | None:
        key_id = id(m)
        if key_id in done:
            return done[key_id]
        d = m.__dict__
        fit = parents[key_id] <= 1 and not (
            d.get("_forward_hooks") or d.get("_forward_pre_hooks") or d.get("_backward_hooks")
            or d.get("_backward_pre_hooks")
        )  # fmt: skip
        attrs = []
        if fit:
            for k, v in d.items():
                if k in internals:
                    continue
                frozen = v if type(v) in _ATOMS else _freeze(v)
                if frozen is _UNFIT:  # a tensor, an object, an instance-level forward ...
                    fit = False
                    break
                attrs.append(k)
                attrs.append(frozen)
        children = []
        for k, c in m._modules.items():
            fp = None if c is None else visit(c)
            if c is not None and fp is None:
                fit = False
            children.append((k, fp))
        fp_value: int | None = None
        if fit:
            key = (
                type(m),
                m.training,
                tuple(attrs),
                tuple((k, None if p is None else (p.shape, p.dtype, p.requires_grad)) for k, p in m._parameters.items()),
                tuple((k, None if b is None else (b.shape, b.dtype), k in m._non_persistent_buffers_set)
                      for k, b in m._buffers.items()),
                tuple(children),
            )  # fmt: skip
            fp_value = table.setdefault(key, len(table))
            result[m] = fp_value
        done[key_id] = fp_value
        return fp_value

    try:
        visit(model)
    finally:
        # a recursive inner function refers to itself through its closure: a reference cycle
        # that kept `result`, and through it every module of the network, alive until the
        # next full collection (which, in the explorer, then took hundreds of milliseconds)
        visit = None  # type: ignore[assignment]  # noqa: F841
    return result


def replayable_roots(model: nn.Module, prints: dict[nn.Module, int]) -> dict[nn.Module, int]:
    """The outermost non-leaf modules whose fingerprint occurs more than once.

    Leaves are left out (replaying one op saves nothing), and so is everything inside a
    module already chosen: replaying the outer module covers it.
    """
    counts = Counter(prints.values())
    chosen: dict[nn.Module, int] = {}

    def walk(m: nn.Module) -> None:
        fp = prints.get(m)
        if fp is not None and counts[fp] > 1 and m._modules:
            chosen[m] = fp
            return
        for c in m._modules.values():
            if c is not None:
                walk(c)

    try:
        for c in model._modules.values():
            if c is not None:
                walk(c)
    finally:
        walk = None  # type: ignore[assignment]  # noqa: F841  (the cycle of `fingerprints`' visit)
    return chosen


def _input_sig(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor):
        return None
    x = args[0]
    return (tuple(x.shape), x.stride(), x.dtype, x.requires_grad, x.storage_offset())


def _dense_layout(t: torch.Tensor) -> torch.memory_format | None:
    """The memory format that recreates `t` exactly, or None if `t` is not a plain dense tensor."""
    if t.storage_offset() != 0 or t.untyped_storage().nbytes() != t.numel() * t.element_size():
        return None
    if t.is_contiguous():
        return torch.contiguous_format
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class _Replay:
    """What both passes share: the records and the replaying forward."""

    def __init__(self) -> None:
        self.records: dict[Any, Any] = {}

    def wrap(self, module: nn.Module, fp: int) -> Callable[..., Any]:
        forward = module.forward  # the class's forward, bound

        def call(*args: Any, **kwargs: Any) -> Any:
            sig = _input_sig(args, kwargs)
            if sig is None:
                return forward(*args, **kwargs)
            key = (fp, sig)
            record = self.records.get(key)
            if record is None:
                out, record = self.record(module, forward, args[0])
                self.records[key] = record
                return out
            if record is False:  # seen, and not describable: run it
                return forward(*args, **kwargs)
            return self.replay(module, record, args[0])

        return call

    def record(self, module: nn.Module, forward: Callable[..., Any], x: torch.Tensor) -> tuple[Any, Any]:
        raise NotImplementedError

    def replay(self, module: nn.Module, record: Any, x: torch.Tensor) -> Any:
        raise NotImplementedError


class InferenceReplay(_Replay):
    """Pass 1: rows (ops, calls, shapes), ops by kind, bytes written and the peak."""

    def __init__(self, spans: dict[nn.Module, tuple[int, int]], rows: list[Any], walk: Any) -> None:
        super().__init__()
        self.spans = spans  # each module's subtree, as a slice of `rows`
        self.rows = rows
        self.walk = walk

    def record(self, module: nn.Module, forward: Callable[..., Any], x: torch.Tensor) -> tuple[Any, Any]:
        walk = self.walk
        start, end = self.spans[module]
        sub = self.rows[start:end]
        before = [(r.macs, r.other_ops, r.calls) for r in sub]
        kinds = dict(walk.by_kind)
        c0, w0, p0, s0 = walk.current, walk.written, walk.peak, walk.serial
        walk.peak = c0
        out = forward(x)
        peak_delta = walk.peak - c0
        walk.peak = max(p0, walk.peak)
        if not isinstance(out, torch.Tensor) or out is x:
            return out, False
        layout = _dense_layout(out)
        entry = walk.live.get(_key(out))
        if layout is None or entry is None or entry[2] <= s0 or walk.current - c0 != entry[0]:
            return out, False  # not one new dense output, or something else stayed alive
        deltas = []
        for i, (r, (m0, o0, n0)) in enumerate(zip(sub, before)):
            if r.macs != m0 or r.other_ops != o0 or r.calls != n0:
                deltas.append((i, r.macs - m0, r.other_ops - o0, r.calls - n0, r.input_shape, r.output_shape,
                               r.output_elements, r.output_bytes))  # fmt: skip
        by_kind = {k: v - kinds[k] for k, v in walk.by_kind.items() if v != kinds[k]}
        shape = (tuple(out.shape), out.dtype, layout)
        return out, (deltas, by_kind, walk.written - w0, peak_delta, shape)

    def replay(self, module: nn.Module, record: Any, x: torch.Tensor) -> Any:
        deltas, by_kind, written, peak_delta, (shape, dtype, layout) = record
        walk = self.walk
        c0 = walk.current
        out = torch.empty(shape, dtype=dtype, device="meta", memory_format=layout)  # tracked by the walk
        walk.written += written - out.untyped_storage().nbytes()
        walk.peak = max(walk.peak, c0 + peak_delta)
        start = self.spans[module][0]
        rows = self.rows
        for i, macs, ops, calls, in_shape, out_shape, elements, nbytes in deltas:
            r = rows[start + i]
            r.macs += macs
            r.other_ops += ops
            if calls:
                r.calls += calls
                r.input_shape, r.output_shape, r.output_elements, r.output_bytes = in_shape, out_shape, elements, nbytes
        for k, v in by_kind.items():
            walk.by_kind[k] += v
        return out


class TrainingReplay(_Replay):
    """Pass 2: the storages autograd saves (its input, its output, internal bytes)."""

    def __init__(self, saved: dict[int, int], skip: set[int], spans: dict[nn.Module, tuple[int, int]] | None = None,
                 rows: list[Any] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.saved = saved
        self.skip = skip
        # with `spans` and `rows`, each saved storage is also charged to a row (`saved_bytes`): the
        # engine charges what runs; a replay charges the recorded rows of its own subtree
        self.spans = spans
        self.rows = rows
        self.first: dict[int, Any] = {}  # storage -> the row that first packed it, during the recordings
        self.keep: list[torch.Tensor] = []  # keeps keys in `saved` from being reused by new storages
        self.anonymous = itertools.count(-1, -1)
        # storages packed during the recordings in progress (saved before or not): whether
        # a block saves its input cannot be read off `saved` when an earlier layer saved it
        self.watch: set[int] | None = None

    def packed(self, key: int, row: Any = None) -> None:
        """Called by the engine's pack hook for every tensor autograd saves (`row`: the
        module's row on top of the engine's stack)."""
        if self.watch is not None:
            self.watch.add(key)
            self.first.setdefault(key, row)

    def record(self, module: nn.Module, forward: Callable[..., Any], x: torch.Tensor) -> tuple[Any, Any]:
        n0 = len(self.saved)
        outer, self.watch = self.watch, set()
        try:
            out = forward(x)
        finally:
            seen, self.watch = self.watch, outer
            if outer is not None:
                outer |= seen
        if not isinstance(out, torch.Tensor) or out is x:
            return out, False
        layout = _dense_layout(out)
        in_key, out_key = _key(x), _key(out)
        if layout is None or out_key == in_key or out_key in self.skip:
            return out, False
        saves_input, saves_output = in_key in seen, out_key in seen
        where = self._where(module)
        internal = [(nbytes, where(self.first.get(k))) for k, nbytes in itertools.islice(self.saved.items(), n0, None)
                    if k not in (in_key, out_key)]  # fmt: skip
        rows = (where(self.first.get(in_key)), where(self.first.get(out_key)))
        return out, (saves_input, saves_output, internal, (tuple(out.shape), out.dtype, layout, out.requires_grad), rows)

    def _where(self, module: nn.Module) -> Callable[[Any], int | None]:
        """Row -> its index in `module`'s subtree (None: not charged to a row)."""
        if self.spans is None or self.rows is None:
            return lambda row: None
        start, end = self.spans[module]
        index = {id(r): i for i, r in enumerate(self.rows[start:end])}
        return lambda row: None if row is None else index.get(id(row))

    def _charge(self, module: nn.Module, i: int | None, nbytes: int) -> None:
        if i is not None and self.spans is not None and self.rows is not None:
            row = self.rows[self.spans[module][0] + i]
            row.saved_bytes += nbytes

    def replay(self, module: nn.Module, record: Any, x: torch.Tensor) -> Any:
        saves_input, saves_output, internal, (shape, dtype, layout, grad), (in_row, out_row) = record
        saved = self.saved
        # The stand-in output below has no autograd history: keep the input (and through its
        # grad_fn the graph before it, with every storage autograd saved there) alive, or
        # freed storages would hand their addresses, the keys of `saved`, to new ones.
        self.keep.append(x)
        if saves_input:
            k = _key(x)
            if k not in self.skip and k not in saved:
                saved[k] = x.untyped_storage().nbytes()
                self._charge(module, in_row, saved[k])
        for nbytes, i in internal:
            saved[next(self.anonymous)] = nbytes
            self._charge(module, i, nbytes)
        out = torch.empty(shape, dtype=dtype, device="meta", memory_format=layout, requires_grad=grad)
        if grad:
            out = out.clone(memory_format=torch.preserve_format)  # a non-leaf, as the real output is
        if saves_output:
            saved[_key(out)] = out.untyped_storage().nbytes()
            self._charge(module, out_row, saved[_key(out)])
            self.keep.append(out)
        return out


class patched:
    """Context manager: give each chosen module the replaying forward of `replay`."""

    def __init__(self, chosen: dict[nn.Module, int], replay: _Replay) -> None:
        self.chosen = chosen
        self.replay = replay

    def __enter__(self) -> "patched":
        for m, fp in self.chosen.items():
            m.__dict__["forward"] = self.replay.wrap(m, fp)
        return self

    def __exit__(self, *exc: Any) -> None:
        for m in self.chosen:
            m.__dict__.pop("forward", None)
