"""Two networks side by side: a structural diff and the cost deltas, as plain data.

A *source* is what a user types: a registered name (`resnet50`), a registered name with
string or boolean options (`resnet20(unit=full_preact)`), or a network in the compact
notation (`6c5w1s0p 2w2s ...`). `analyze_source` measures one; `compare(a, b)` measures two
and returns a JSON-ready dict (what `convzoo summary A --compare B --json` prints and what
the explorer's Compare view draws):

- `a`, `b`: each side's totals (parameters, MACs, FLOPs, parameter, peak inference and
  training memory at the requested batch and dtype);
- `delta`: b - a for each total;
- `stages`: parameters, MACs, parameter bytes, output bytes and bytes saved for backward
  per stage (the top-level modules, with a container of blocks such as `stages` split into
  its blocks), matched by name, with their deltas;
- `layers`: the weight, pooling, normalisation and LRN layers of both, in forward order,
  aligned (difflib on their types) into `same`, `changed` (kernel, stride, padding, width,
  groups...), `added` (only in b) and `removed` (only in a); `counts` sums them up.

Nothing is allocated: both networks are built and measured on the meta device.
"""

from __future__ import annotations

import difflib
import re
from collections import OrderedDict
from typing import Any, Callable, Sequence

from ..errors import ConfigError

__all__ = ["parse_source", "build_source", "BuiltSources", "analyze_source", "compare"]

_OPTION = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*([^,]*?)\s*(?:,|$)")
_CALL = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*(?:\((.*)\))?\s*", re.S)
#: options that a source text may not set: they change the input, the head or load files
_RESERVED = ("num_classes", "in_channels", "weights")

#: module types the structural diff lists (activations, dropout, flatten are left out)
_DIFF_TYPES = re.compile(r"Conv\dd$|^Linear$|Pool\dd$|^BatchNorm\dd$|^LRN$|LocalResponseNorm|^ReLU$|^Tanh$|^Sigmoid$")


def _value(text: str) -> str | bool:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    return text.strip("'\"")


def parse_source(source: str) -> tuple[str, dict[str, Any]] | None:
    """`(name, options)` when `source` names a registered model (with optional
    `(key=value, ...)` string or boolean options), else None (the text is notation)."""
    from ..registry import list_models

    m = _CALL.fullmatch(source)
    if not m or m.group(1) not in set(list_models()):
        return None
    name, inside = m.group(1), m.group(2)
    options: dict[str, Any] = {}
    if inside is not None and inside.strip():
        pos = 0
        while pos < len(inside):
            opt = _OPTION.match(inside, pos)
            if not opt or opt.end() == pos:
                raise ConfigError(f"bad options {inside!r} for {name}: expected key=value, key=value")
            key, value = opt.group(1), opt.group(2)
            if key in _RESERVED:
                raise ConfigError(f"option {key!r} cannot be set here; expected the family's options (unit, shortcut, ...)")
            if not value or re.fullmatch(r"[-+]?\d.*", value):
                raise ConfigError(f"option {key}={value!r} of {name}: only names and true/false are accepted")
            options[key] = _value(value)
            pos = opt.end()
    return name, options


def _zoo_input(name: str, input_size: Sequence[int] | None) -> tuple[int, int, int]:
    """The input a zoo network is measured at: `input_size`, else the registry's default."""
    from ..registry import model_info

    size = input_size if input_size is not None else model_info(name).default_input
    return tuple(int(v) for v in size)  # type: ignore[return-value]


def build_source(source: str, input_size: Sequence[int] | None = None) -> tuple[Any, tuple[int, int, int], str]:
    """Build `source` on the meta device: `(module, (C, H, W), kind)` with kind "model" or
    "notation". The input defaults to the model's (or the text's `Input(CxHxW)`, else
    C x 32 x 32). Raises `UnknownModelError`/`ConfigError`/`NotationError` for bad text."""
    import torch

    from ..meta import meta_build
    from ..notation import from_spec, parse, resolve_input
    from ..notation.summary import DEFAULT_HW
    from ..registry import create_model

    if not isinstance(source, str) or not source.strip():
        raise ConfigError("empty source: expected a model name or a network in the compact notation")
    named = parse_source(source)
    if named is not None:
        name, options = named
        size = _zoo_input(name, input_size)
        with meta_build():
            model = create_model(name, **options)
        if options:
            model.zoo_name = source.strip()
        return model, size, "model"
    spec = parse(source)
    channels, hw = resolve_input(spec, None, input_size)
    size = (channels, *(hw or DEFAULT_HW))
    with torch.device("meta"):
        model = from_spec(spec, input_size=size)
    return model, size, "notation"  # type: ignore[return-value]


Build = Callable[[str, "Sequence[int] | None"], "tuple[Any, tuple[int, int, int], str]"]


class BuiltSources:
    """`build_source` with its networks kept for the next analysis of the same text: the
    `entries` most recently used, each a meta-built module (no tensor memory, only the
    modules' Python objects).

    Building is a third of a deep network's analysis (DenseNet-201: 110 of 370 ms, most of
    it `nn.Module` set-up), and the explorer analyses the same network again whenever a
    control changes (batch, dtype, input side). Reusing the module is safe because the
    engine never changes what it measures: its meta stand-ins, modes, hooks and replayed
    forwards are all put back when a pass ends, failed or not. A zoo network is kept per
    text (it does not depend on the input); a notation network per text and input, since
    its flatten and linear sizes come from the input. With each network it keeps the
    engine's `Prepared` (its module tree, layout and repeated blocks), made on the first
    analysis: `prepared(model)`; and how long its last whole analysis took (`seconds`)."""

    def __init__(self, entries: int = 8) -> None:
        self.entries = entries
        self.items: OrderedDict[tuple[str, Any], tuple[Any, tuple[int, int, int], str]] = OrderedDict()
        self._prepared: dict[int, Any] = {}  # id of a kept network -> its Prepared
        #: id of a kept network -> seconds of its last whole analysis in this process (`analyze_source`)
        self.seconds: dict[int, float] = {}

    def kept(self, source: str, input_size: Sequence[int] | None = None) -> Any:
        """The kept network of `source` at `input_size` (the next call builds nothing), or None."""
        if not isinstance(source, str) or not source.strip():
            return None
        named = parse_source(source)
        wanted = None if input_size is None else tuple(int(v) for v in input_size)
        hit = self.items.get((source.strip(), None if named else wanted))
        return None if hit is None else hit[0]

    def prepared(self, model: Any) -> Any:
        """The engine's `Prepared` of `model` if this cache built it and still keeps it
        (made on first use), else None."""
        if not any(entry[0] is model for entry in self.items.values()):
            return None
        found = self._prepared.get(id(model))
        if found is None or found.model is not model:
            from .engine import Prepared

            found = self._prepared[id(model)] = Prepared(model)
        return found

    def __call__(self, source: str, input_size: Sequence[int] | None = None) -> tuple[Any, tuple[int, int, int], str]:
        if not isinstance(source, str) or not source.strip():
            return build_source(source, input_size)  # its message
        named = parse_source(source)
        wanted = None if input_size is None else tuple(int(v) for v in input_size)
        key = (source.strip(), None if named else wanted)
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
            model, size, kind = hit
            return model, (_zoo_input(named[0], wanted) if named else size), kind
        built = build_source(source, input_size)
        self.items[key] = built
        while len(self.items) > self.entries:
            _, (gone, _, _) = self.items.popitem(last=False)
            self._prepared.pop(id(gone), None)
            self.seconds.pop(id(gone), None)
        return built


def _prepared(build: Build, model: Any) -> Any:
    """The engine's `Prepared` of `model` when `build` keeps its networks (`BuiltSources`)."""
    return build.prepared(model) if isinstance(build, BuiltSources) else None


def analyze_source(
    source: str,
    input_size: Sequence[int] | None = None,
    batch_size: int = 1,
    dtype: Any = None,
    *,
    build: Build = build_source,
    helper: Any = None,
) -> Any:
    """`convzoo.analyze` of a source text (see `build_source`; `build` may be a
    `BuiltSources`, which keeps the networks it built); returns the `Report`.

    `helper` (the explorer's `serve.helper.TrainingHelper`) runs the training pass in
    another process while this one runs the inference pass; the report is the same (when
    the helper cannot answer, the pass runs here)."""
    import torch

    from .engine import analyze, training_estimate, with_training

    dtype = dtype or torch.float32
    # The helper takes the training pass of a network already kept here (an update) whose
    # last analysis here alone took at least `helper.worth_s`: below that, the exchange costs
    # more than the pass (LeNet-5: 28 against 14 ms). A network built now (a pick) is analysed
    # here alone, and then, if it is worth it, the helper is asked to build it for the
    # updates to come: two builds at once on two cores took longer than one build and both
    # passes (ResNet-1202: 630 against 480 ms).
    keeper = build if isinstance(build, BuiltSources) and helper is not None else None
    known = keeper.kept(source, input_size) if keeper is not None else None
    worth = known is not None and keeper.seconds.get(id(known), 0.0) >= helper.worth_s  # type: ignore[union-attr]
    number = helper.ask(source, input_size, batch_size, str(dtype).replace("torch.", "")) if worth else None
    model, size, kind = build(source, input_size)
    prepared = _prepared(build, model)
    if number is None:
        report = analyze(model, input_size=size, batch_size=batch_size, dtype=dtype, prepared=prepared)
        if keeper is not None:
            keeper.seconds[id(model)] = report.timings["total"]
            if known is None and report.timings["total"] >= helper.worth_s:
                helper.prefetch(source, input_size)  # after this analysis, so that the two do not compete
    else:
        report = analyze(model, input_size=size, batch_size=batch_size, dtype=dtype, prepared=prepared, training=False)
        estimate = helper.answer(number, [r.name for r in report.layers])
        if estimate is None:
            estimate = training_estimate(model, size, batch_size, dtype, prepared=prepared)
        with_training(report, estimate)
    if kind == "notation":
        report.model = "notation"
    return report


def _attrs(module: Any) -> dict[str, Any]:
    """The structural attributes of one layer (what the diff compares)."""
    out: dict[str, Any] = {}

    def pair(v: Any) -> Any:
        return list(v) if isinstance(v, (tuple, list)) else v

    for key, attr in (("kernel", "kernel_size"), ("stride", "stride"), ("padding", "padding"), ("groups", "groups")):
        if hasattr(module, attr):
            out[key] = pair(getattr(module, attr))
    if hasattr(module, "out_channels"):
        out["in"] = module.in_channels
        out["width"] = module.out_channels
    elif hasattr(module, "out_features"):
        out["in"] = module.in_features
        out["width"] = module.out_features
    elif hasattr(module, "num_features"):
        out["width"] = module.num_features
    if hasattr(module, "output_size"):
        out["output"] = pair(module.output_size)
    if hasattr(module, "size") and isinstance(getattr(module, "size"), int):
        out["size"] = module.size
    return out


def _diff_layers(report: Any, model: Any) -> list[dict[str, Any]]:
    rows = []
    for r in report.layers:
        if r.is_leaf and r.calls > 0 and _DIFF_TYPES.search(r.type):
            entry = {"name": r.name, "type": r.type, "params": r.params, "macs": r.macs}
            entry.update(_attrs(model.get_submodule(r.name)))
            rows.append(entry)
    return rows


def _stages(report: Any) -> list[Any]:
    """Top-level modules, with a top-level container whose children are all containers
    (ResNet's `stages`, VGG's) replaced by those children."""
    by_parent: dict[str, list[Any]] = {}
    for r in report.layers[1:]:
        by_parent.setdefault(r.name.rpartition(".")[0], []).append(r)
    out = []
    for r in by_parent.get("", []):
        kids = by_parent.get(r.name, [])
        if kids and all(not k.is_leaf for k in kids):
            out.extend(kids)
        else:
            out.append(r)
    return out


def _saved(report: Any, name: str) -> int | None:
    """Bytes saved for backward by module `name` and its descendants (None: no training estimate)."""
    prefix = name + "."
    rows = [r.saved_bytes for r in report.layers if r.name == name or r.name.startswith(prefix)]
    return None if any(v is None for v in rows) else sum(rows)


def _itemsize(report: Any) -> int:
    return report.memory.param_bytes // report.total_params if report.total_params else 4


def _totals(report: Any, source: str, kind: str) -> dict[str, Any]:
    m = report.memory
    return {
        "source": source,
        "kind": kind,
        "model": report.model,
        "input_size": list(report.input_size),
        "batch_size": report.batch_size,
        "dtype": report.dtype,
        "params": report.total_params,
        "macs": report.macs,
        "flops": report.flops,
        "param_bytes": m.param_bytes,
        "peak_inference_bytes": m.peak_inference_bytes,
        "training_bytes": m.training_bytes,
    }


_TOTAL_KEYS = ("params", "macs", "flops", "param_bytes", "peak_inference_bytes", "training_bytes")


def _sub(b: Any, a: Any) -> Any:
    return None if a is None or b is None else b - a


def _changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    keys = [k for k in ("kernel", "stride", "padding", "groups", "in", "width", "output", "size") if k in a or k in b]
    return {k: [a.get(k), b.get(k)] for k in keys if a.get(k) != b.get(k)}


def _key(r: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(r.get(k)) for k in ("type", "kernel", "stride", "padding", "groups", "in", "width", "output", "size"))


#: alignment costs: a layer kept with other settings costs less than removing and adding it
_CHANGE, _GAP = 1.0, 0.75
_MAX_CELLS = 1_500_000


def _edit_path(la: list[dict[str, Any]], lb: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """Cheapest alignment of two layer lists (edit distance: identical 0, same type with
    other settings 1, added or removed 0.75 each); beyond `_MAX_CELLS` pairs, difflib on the
    layers' settings (identical layers matched, the rest added or removed)."""
    n, m = len(la), len(lb)
    ka, kb = [_key(r) for r in la], [_key(r) for r in lb]
    if n * m > _MAX_CELLS:
        path: list[tuple[Any, Any]] = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ka, kb, autojunk=False).get_opcodes():
            if tag == "equal":
                path.extend(zip(la[i1:i2], lb[j1:j2]))
            else:
                path.extend((x, None) for x in la[i1:i2])
                path.extend((None, y) for y in lb[j1:j2])
        return path
    inf = float("inf")
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    for j in range(1, m + 1):
        cost[0][j] = j * _GAP
    for i in range(1, n + 1):
        row, prev = cost[i], cost[i - 1]
        row[0] = i * _GAP
        ti = la[i - 1]["type"]
        for j in range(1, m + 1):
            if ka[i - 1] == kb[j - 1]:
                diag = prev[j - 1]
            elif ti == lb[j - 1]["type"]:
                diag = prev[j - 1] + _CHANGE
            else:
                diag = inf
            row[j] = min(diag, prev[j] + _GAP, row[j - 1] + _GAP)
    path = []
    i, j = n, m
    while i or j:
        if i and j and la[i - 1]["type"] == lb[j - 1]["type"]:
            step = 0.0 if ka[i - 1] == kb[j - 1] else _CHANGE
            if cost[i][j] == cost[i - 1][j - 1] + step:
                path.append((la[i - 1], lb[j - 1]))
                i, j = i - 1, j - 1
                continue
        if i and cost[i][j] == cost[i - 1][j] + _GAP:
            path.append((la[i - 1], None))
            i -= 1
        else:
            path.append((None, lb[j - 1]))
            j -= 1
    path.reverse()
    return path


def _align(la: list[dict[str, Any]], lb: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def emit(x: dict[str, Any] | None, y: dict[str, Any] | None) -> None:
        if x is not None and y is not None:
            ch = _changes(x, y)
            out.append({"op": "changed" if ch else "same", "a": x, "b": y, "changes": ch})
        elif x is not None:
            out.append({"op": "removed", "a": x, "b": None, "changes": {}})
        else:
            out.append({"op": "added", "a": None, "b": y, "changes": {}})

    names_a, names_b = [r["name"] for r in la], [r["name"] for r in lb]
    shared = len(set(names_a) & set(names_b))
    if la and lb and shared >= 0.5 * min(len(la), len(lb)):
        # one family: module names are stable, so the names give the alignment
        matcher = difflib.SequenceMatcher(None, names_a, names_b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                for x, y in zip(la[i1:i2], lb[j1:j2]):
                    if x["type"] == y["type"]:
                        emit(x, y)
                    else:
                        emit(x, None)
                        emit(None, y)
            else:
                for x in la[i1:i2]:
                    emit(x, None)
                for y in lb[j1:j2]:
                    emit(None, y)
        return out
    for x, y in _edit_path(la, lb):
        emit(x, y)
    return out


def compare(
    a: str,
    b: str,
    *,
    input_a: Sequence[int] | None = None,
    input_b: Sequence[int] | None = None,
    batch_size: int = 1,
    dtype: Any = None,
    build: Build = build_source,
) -> dict[str, Any]:
    """Structural diff and cost deltas of sources `a` and `b` (see the module docstring).
    Each side is measured at its own input (`input_a`/`input_b`, default the model's);
    `build` as in `analyze_source`."""
    import torch

    from .engine import analyze

    dtype = dtype or torch.float32
    sides = []
    for source, size in ((a, input_a), (b, input_b)):
        model, resolved, kind = build(source, size)
        report = analyze(model, input_size=resolved, batch_size=batch_size, dtype=dtype, prepared=_prepared(build, model))
        if kind == "notation":
            report.model = "notation"
        sides.append((source, kind, model, report))
    (sa, ka, ma, ra), (sb, kb, mb, rb) = sides
    ta, tb = _totals(ra, sa, ka), _totals(rb, sb, kb)

    stages: dict[str, dict[str, Any]] = {}
    for key, report in (("a", ra), ("b", rb)):
        size = _itemsize(report)
        for r in _stages(report):
            entry = stages.setdefault(r.name, {"stage": r.name, "type": r.type, "a": None, "b": None})
            entry[key] = {"params": r.cum_params, "macs": r.cum_macs, "param_bytes": r.cum_params * size,
                          "output_bytes": r.output_bytes, "output_shape": r.output_shape,
                          "saved_bytes": _saved(report, r.name)}  # fmt: skip
    for entry in stages.values():
        x, y = entry["a"], entry["b"]
        entry["delta"] = {k: _sub((y or {}).get(k, 0), (x or {}).get(k, 0))
                          for k in ("params", "macs", "param_bytes", "output_bytes", "saved_bytes")}  # fmt: skip
    layers = _align(_diff_layers(ra, ma), _diff_layers(rb, mb))
    counts = {op: sum(1 for r in layers if r["op"] == op) for op in ("same", "changed", "added", "removed")}
    return {
        "a": ta,
        "b": tb,
        "delta": {k: _sub(tb[k], ta[k]) for k in _TOTAL_KEYS},
        "stages": list(stages.values()),
        "layers": layers,
        "counts": counts,
    }
