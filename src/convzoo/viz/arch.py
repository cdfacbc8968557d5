"""Architecture diagrams: blocks with output shapes and parameter counts, drawn with matplotlib.

The structure comes from the module itself, not from a per-family drawing:
- output shapes from forward hooks during one pass on the meta device (no real memory);
- what a module does with its children from a one-level `torch.fx` trace of its forward
  (children kept opaque): a chain of children is expanded into its parts, an addition
  marks a residual unit (the operand with fewest modules on its way back to the input is
  the shortcut), one concatenation of branch outputs an inception module, and a
  concatenation that includes the input (or several concatenations) a dense block.
Norms, activations and dropout are folded into the box of the layer before them, and runs
of identical blocks are drawn once with a multiplier, so deep networks stay readable.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure
    from torch import fx, nn

#: box colours by kind
COLOURS = {
    "conv": "#cfe0f3",
    "pool": "#f6d8cc",
    "linear": "#e2d4ef",
    "lrn": "#f9f0b8",
    "residual": "#d3ecd0",
    "inception": "#fde3c4",
    "dense": "#c9ecec",
    "other": "#ececec",
}
_FOLD = ("norm", "act", "dropout")  # folded into the box before them


@dataclass
class Block:
    """One box of the diagram."""

    name: str
    type: str
    kind: str
    label: str
    out_shape: tuple[int, ...] | None
    params: int
    branches: list["Block"] = field(default_factory=list)  # inception branches
    shortcut: str | None = None  # residual units: what the skip connection is
    dense_layers: int = 0  # dense blocks: how many layers feed each other
    repeat: int = 1
    extras: list[str] = field(default_factory=list)  # folded norm/activation/dropout

    def signature(self) -> tuple[Any, ...]:
        return (self.type, self.kind, self.label, self.out_shape, self.params, self.shortcut,
                tuple(b.label for b in self.branches), self.dense_layers, tuple(self.extras))


def _leaf_kind(m: "nn.Module") -> str:
    from torch import nn

    name = type(m).__name__.lower()
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
        return "conv"
    if isinstance(m, nn.Linear):
        return "linear"
    if "pool" in name:
        return "pool"
    if "lrn" in name or "localresponse" in name:
        return "lrn"
    if "norm" in name:
        return "norm"
    if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Softmax)) or name in (
        "squash",
        "scaledtanh",
    ):
        return "act"
    if "dropout" in name:
        return "dropout"
    return "other"


def _pair(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return "x".join(str(int(a)) for a in v) if len(set(v)) > 1 else str(int(v[0]))
    return str(v)


def _leaf_label(m: "nn.Module") -> str:
    from torch import nn

    if isinstance(m, nn.Conv2d):
        k = m.kernel_size
        ks = f"{k[0]}x{k[1]}"
        g = f", groups {m.groups}" if m.groups > 1 else ""
        return f"conv {ks}/{_pair(m.stride)}, {m.out_channels}{g}"
    if isinstance(m, nn.Linear):
        return f"fc {m.out_features}"
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "max" if isinstance(m, nn.MaxPool2d) else "avg"
        return f"{kind} pool {_pair(m.kernel_size)}/{_pair(m.stride)}"
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        kind = "max" if isinstance(m, nn.AdaptiveMaxPool2d) else "avg"
        size = _pair(m.output_size)
        return "global avg pool" if size == "1" and kind == "avg" else f"adaptive {kind} pool to {size}"
    if isinstance(m, nn.Flatten):
        return "flatten"
    return type(m).__name__


def _extra_label(m: "nn.Module") -> str:
    from torch import nn

    if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        return "BN"
    if isinstance(m, nn.Dropout):
        return f"dropout {m.p:g}"
    return type(m).__name__


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}K"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    if not shape:
        return "?"
    return "×".join(str(s) for s in shape)


class _OneLevel:
    """A torch.fx tracer that keeps every child module opaque."""

    @staticmethod
    def trace(module: "nn.Module") -> "fx.Graph | None":
        from torch import fx

        class Tracer(fx.Tracer):
            def is_leaf_module(self, m: "nn.Module", qualname: str) -> bool:  # noqa: ARG002
                return True

        try:
            return Tracer().trace(module)
        except Exception:  # noqa: BLE001 - data-dependent control flow etc.: treat as opaque
            return None


_ADD_TARGETS = {operator.add, operator.iadd}


def _is_add(node: "fx.Node") -> bool:
    import torch

    if node.op == "call_function":
        return node.target in _ADD_TARGETS or node.target in (torch.add,)
    return node.op == "call_method" and node.target in ("add", "add_")


def _is_cat(node: "fx.Node") -> bool:
    import torch

    if node.op == "call_function":
        return node.target in (torch.cat, torch.concat) if hasattr(torch, "concat") else node.target is torch.cat
    return False


def _chain_modules(node: "fx.Node", modules: dict[str, "nn.Module"]) -> tuple[bool, list[str]]:
    """Walk back along first arguments: (reaches the input, names of the modules passed, last first)."""
    seen: list[str] = []
    cur: Any = node
    for _ in range(64):
        if not hasattr(cur, "op"):
            return False, seen
        if cur.op == "placeholder":
            return True, seen
        if cur.op == "call_module":
            seen.append(str(cur.target))
        args = [a for a in cur.args if hasattr(a, "op")]
        if not args:
            return False, seen
        cur = args[0]
    return False, seen


class _Walker:
    def __init__(self, root: "nn.Module", shapes: dict[str, tuple[int, ...]], max_depth: int) -> None:
        self.root = root
        self.shapes = shapes
        self.max_depth = max_depth

    def params(self, m: "nn.Module") -> int:
        return sum(p.numel() for p in m.parameters())

    def leaf(self, name: str, m: "nn.Module") -> Block:
        kind = _leaf_kind(m)
        return Block(name=name, type=type(m).__name__, kind=kind, label=_leaf_label(m),
                     out_shape=self.shapes.get(name), params=self.params(m))

    def opaque(self, name: str, m: "nn.Module", kind: str = "other") -> Block:
        return Block(name=name, type=type(m).__name__, kind=kind, label=type(m).__name__,
                     out_shape=self.shapes.get(name), params=self.params(m))

    def expand(self, name: str, m: "nn.Module", depth: int) -> list[Block]:
        from torch import nn

        children = list(m.named_children())
        if not children:
            return [self.leaf(name, m)]
        q = (lambda c: f"{name}.{c}" if name else c)
        graph = _OneLevel.trace(m)
        if graph is None:
            if isinstance(m, (nn.Sequential, nn.ModuleList)) and depth < self.max_depth:
                return [b for c, sub in children for b in self.expand(q(c), sub, depth + 1)]
            return [self.opaque(name, m)]
        nodes = list(graph.nodes)
        adds = [n for n in nodes if _is_add(n)]
        cats = [n for n in nodes if _is_cat(n)]
        modules = dict(m.named_children())
        # a ModuleList/ModuleDict iterated in forward appears as 'layers.0' etc.
        modules.update({k: v for k, v in m.named_modules() if k and k not in modules})
        if cats:
            return [self.concat_block(name, m, cats, modules)]
        if adds:
            return [self.residual_block(name, m, adds, modules)]
        if name and depth >= self.max_depth:
            return [self.opaque(name, m)]
        called: list[str] = []
        for n in nodes:
            if n.op == "call_module" and n.target not in called:
                called.append(str(n.target))
        if not called:
            return [self.opaque(name, m)]
        out: list[Block] = []
        for target in called:
            out.extend(self.expand(q(target), modules[target], depth + 1))
        return out

    def residual_block(self, name: str, m: "nn.Module", adds: list["fx.Node"], modules: dict[str, "nn.Module"]) -> Block:
        add = adds[-1]
        operands = [a for a in add.args if hasattr(a, "op")]
        shortcut = "identity"
        label = type(m).__name__
        if len(operands) == 2:
            chains = [_chain_modules(a, modules) for a in operands]
            reach = [(len(c[1]), i) for i, c in enumerate(chains) if c[0]]
            if reach:
                _, idx = min(reach)
                parts = [_leaf_summary(modules[t]) for t in reversed(chains[idx][1])]
                parts = [p for p in parts if p]
                fns = _chain_functions(operands[idx])
                if any(p.startswith("conv") for p in parts):
                    shortcut = "projection: " + " + ".join(parts)
                elif parts:
                    shortcut = " + ".join(parts)  # e.g. option A's zero-padding module
                elif fns:
                    shortcut = f"identity ({fns})"
                main = [_branch_label(modules[t]) for t in reversed(chains[1 - idx][1])]
                main = [x for x in main if x and x != "Identity"]
                if main:
                    label = f"{type(m).__name__}: {' → '.join(main)}"
        return Block(name=name, type=type(m).__name__, kind="residual", label=label,
                     out_shape=self.shapes.get(name), params=self.params(m), shortcut=shortcut)

    def concat_block(self, name: str, m: "nn.Module", cats: list["fx.Node"], modules: dict[str, "nn.Module"]) -> Block:
        cat = cats[-1]
        inputs = cat.args[0] if cat.args and isinstance(cat.args[0], (list, tuple)) else []
        has_input = any(getattr(a, "op", None) == "placeholder" for a in inputs)
        if len(cats) > 1 or has_input:
            n_layers = sum(1 for n in cat.graph.nodes if n.op == "call_module")
            return Block(name=name, type=type(m).__name__, kind="dense", label=type(m).__name__,
                         out_shape=self.shapes.get(name), params=self.params(m), dense_layers=n_layers)
        branches = []
        for i, a in enumerate(inputs):
            # the branch is the module whose output (maybe through functions) reaches the cat
            cur: Any = a
            while hasattr(cur, "op") and cur.op not in ("call_module", "placeholder") and cur.args:
                cur = cur.args[0]
            if hasattr(cur, "op") and cur.op == "call_module":
                sub = modules[cur.target]
                bname = f"{name}.{cur.target}" if name else str(cur.target)
                branches.append(Block(name=bname, type=type(sub).__name__, kind="conv",
                                      label=_branch_label(sub), out_shape=self.shapes.get(bname),
                                      params=self.params(sub)))
            else:
                branches.append(Block(name=f"{name}[{i}]", type="?", kind="other", label="?", out_shape=None, params=0))
        return Block(name=name, type=type(m).__name__, kind="inception", label=type(m).__name__,
                     out_shape=self.shapes.get(name), params=self.params(m), branches=branches)


def _chain_functions(node: Any) -> str:
    names = []
    cur = node
    for _ in range(16):
        if not hasattr(cur, "op") or cur.op == "placeholder":
            break
        if cur.op in ("call_function", "call_method"):
            names.append(getattr(cur.target, "__name__", str(cur.target)))
        args = [a for a in cur.args if hasattr(a, "op")]
        if not args:
            break
        cur = args[0]
    return ", ".join(reversed(names))


def _leaf_summary(m: "nn.Module") -> str:
    """Short text of a shortcut module: its convolutions/norms ('conv 1x1/2, 256 + BN'), or its
    class name for a custom one (zero padding); '' for an identity."""
    from torch import nn

    leaves = [x for x in m.modules() if not list(x.children())]
    if all(isinstance(x, nn.Identity) for x in leaves):
        return ""
    out = []
    for x in leaves:
        if isinstance(x, nn.Conv2d):
            out.append(_leaf_label(x))
        elif isinstance(x, nn.modules.batchnorm._BatchNorm):
            out.append("BN")
        elif not isinstance(x, nn.Identity):
            out.append(type(x).__name__)
    return " + ".join(out)


def _branch_label(m: "nn.Module") -> str:
    """'1x1 64 → 3x3 128'-style label of an inception branch from its convolutions and pools."""
    from torch import nn

    parts = []
    for sub in m.modules() if list(m.children()) else [m]:
        if isinstance(sub, nn.Conv2d):
            parts.append(f"{sub.kernel_size[0]}x{sub.kernel_size[1]} {sub.out_channels}")
        elif isinstance(sub, (nn.MaxPool2d, nn.AvgPool2d)):
            parts.append(f"{'max' if isinstance(sub, nn.MaxPool2d) else 'avg'}pool {_pair(sub.kernel_size)}")
    return " → ".join(parts) or type(m).__name__


def _fold(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for b in blocks:
        if b.type == "Identity" and b.params == 0:
            continue  # a placeholder module (e.g. no final norm): nothing to draw
        if b.kind in _FOLD and out and out[-1].kind in ("conv", "linear", "other", "lrn", "pool"):
            prev = out[-1]
            prev.extras.append(b.label if b.kind != "norm" else ("BN" if "Batch" in b.type else b.type))
            prev.params += b.params
            if b.out_shape:
                prev.out_shape = b.out_shape
            continue
        if b.kind in _FOLD:
            b.kind = "other"
        out.append(b)
    for b in out:
        b.extras = [("ReLU" if e == "ReLU" else e) for e in b.extras]
    return out


def _compress(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for b in blocks:
        if out and out[-1].signature() == b.signature():
            out[-1].repeat += 1
        else:
            out.append(b)
    return out


def arch_blocks(model: "nn.Module", input_size: tuple[int, int, int], *, max_depth: int = 4) -> list[Block]:
    """The diagram's boxes for `model` at input (C, H, W), computed on the meta device."""
    import torch

    if any(not p.is_meta for p in model.parameters()) or any(not b.is_meta for b in model.buffers()):
        meta = copy.deepcopy(model).to("meta")
    else:
        meta = model
    meta.eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def fn(_m: "nn.Module", _inp: Any, out: Any) -> None:
            t = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(t, torch.Tensor):
                shapes[name] = tuple(t.shape[1:])

        return fn

    handles = [mod.register_forward_hook(hook(n)) for n, mod in meta.named_modules() if n]
    try:
        with torch.no_grad():
            meta(torch.empty((1, *input_size), device="meta"))
    finally:
        for h in handles:
            h.remove()
    blocks = _Walker(meta, shapes, max_depth).expand("", meta, 0)
    return _compress(_fold(blocks))


def _box_height(b: Block) -> float:
    if b.kind == "inception" and b.branches:
        return 1.55
    if b.kind == "dense":
        return 1.4
    return 0.72


def plot_arch(
    model: "nn.Module",
    input_size: tuple[int, int, int],
    *,
    title: str | None = None,
    max_rows: float = 22.0,
    max_depth: int = 4,
) -> "Figure":
    """Draw the architecture as columns of boxes (top to bottom), with skips and branches."""
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    from ._common import new_figure

    blocks = arch_blocks(model, input_size, max_depth=max_depth)
    gap = 0.38
    # split into columns of at most `max_rows` height units
    columns: list[list[Block]] = [[]]
    used = 0.0
    for b in blocks:
        h = _box_height(b) + gap
        if columns[-1] and used + h > max_rows:
            columns.append([])
            used = 0.0
        columns[-1].append(b)
        used += h
    col_w, box_w = 5.2, 4.0
    height_units = max(sum(_box_height(b) + gap for b in col) for col in columns) + 1.0
    fig = new_figure(max(5.0, 2.05 * len(columns) * col_w / 2.6), max(3.0, 0.62 * height_units))
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.94))
    ax.set_xlim(-0.3, len(columns) * col_w)
    ax.set_ylim(-height_units + 0.5, 1.1)
    ax.set_axis_off()
    c_in, h_in, w_in = input_size
    total = sum(p.numel() for p in model.parameters())
    name = getattr(model, "zoo_name", type(model).__name__)
    fig.suptitle(title or f"{name}: input {c_in}×{h_in}×{w_in}, {total:,} parameters", fontsize=11)
    for ci, col in enumerate(columns):
        x0 = ci * col_w + 0.5
        y = 0.0
        if ci == 0:
            ax.text(x0 + box_w / 2, 0.75, f"input {c_in}×{h_in}×{w_in}", ha="center", va="center", fontsize=8)
            ax.add_patch(FancyArrowPatch((x0 + box_w / 2, 0.6), (x0 + box_w / 2, 0.05), arrowstyle="-|>",
                                         mutation_scale=8, color="#555"))
        for bi, b in enumerate(col):
            h = _box_height(b)
            top, bottom = y, y - h
            ax.add_patch(FancyBboxPatch((x0, bottom), box_w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                        facecolor=COLOURS.get(b.kind, COLOURS["other"]), edgecolor="#555", lw=0.8))
            head = b.label + (" + " + " + ".join(b.extras) if b.extras else "")
            if b.repeat > 1:
                head = f"{head}  ×{b.repeat}"
            if b.kind in ("residual", "inception", "dense"):
                head = f"{b.name}: {head}"
            info = f"out {_shape_text(b.out_shape)} · {_short(b.params)} params" + (" each" if b.repeat > 1 else "")
            ax.text(x0 + 0.1, top - 0.2, head, fontsize=7.5, va="center", ha="left", fontweight="bold", clip_on=True)
            ax.text(x0 + 0.1, top - 0.45, info, fontsize=7, va="center", ha="left", color="#333")
            if b.kind == "residual":
                # the skip connection: from the block's input around its right side into a (+)
                xs = x0 + box_w + 0.3
                yc = bottom + 0.18
                ax.plot([x0 + box_w / 2, x0 + box_w / 2, xs, xs], [top + 0.12, top + 0.12, top + 0.12, yc],
                        color="#2f7d2f", lw=1.3, solid_joinstyle="round")
                ax.add_patch(FancyArrowPatch((xs, yc), (x0 + box_w - 0.1, yc), arrowstyle="-|>",
                                             mutation_scale=8, color="#2f7d2f", lw=1.3))
                ax.add_patch(Circle((x0 + box_w - 0.22, yc), 0.12, facecolor="white", edgecolor="#2f7d2f"))
                ax.text(x0 + box_w - 0.22, yc, "+", ha="center", va="center", fontsize=8, color="#2f7d2f")
                import textwrap

                ax.text(xs + 0.08, (top + bottom) / 2, textwrap.fill(b.shortcut or "identity", 16), fontsize=5.5,
                        va="center", ha="left", color="#2f7d2f", linespacing=1.0)
            elif b.kind == "inception" and b.branches:
                n = len(b.branches)
                bw = (box_w - 0.2) / n
                for k, br in enumerate(b.branches):
                    bx = x0 + 0.1 + k * bw
                    ax.add_patch(FancyBboxPatch((bx + 0.03, bottom + 0.32), bw - 0.06, 0.5,
                                                boxstyle="round,pad=0.01,rounding_size=0.04", facecolor="white",
                                                edgecolor="#b07020", lw=0.6))
                    ch = br.out_shape[0] if br.out_shape else "?"
                    fs = min(5.2, 5.2 * 17 * 4 / max(1, len(br.label) * n))  # shrink long labels to fit
                    ax.text(bx + bw / 2, bottom + 0.63, br.label, fontsize=fs, ha="center", va="center")
                    ax.text(bx + bw / 2, bottom + 0.44, f"{ch} ch", fontsize=5.5, ha="center", va="center",
                            color="#7a4a10")
                ax.text(x0 + box_w / 2, bottom + 0.15, "concatenate", fontsize=6.5, ha="center", va="center",
                        color="#7a4a10")
            elif b.kind == "dense":
                n = max(2, min(b.dense_layers, 8))
                xs_ = [x0 + 0.35 + k * (box_w - 0.7) / (n - 1) for k in range(n)]
                yb = bottom + 0.3
                for k, xk in enumerate(xs_):
                    ax.add_patch(Circle((xk, yb), 0.07, facecolor="#2a8a8a", edgecolor="none"))
                    for j in range(k + 1, n):  # every layer feeds every later one (Huang et al., Fig. 1)
                        ax.add_patch(FancyArrowPatch((xk, yb + 0.06), (xs_[j], yb + 0.06),
                                                     connectionstyle="arc3,rad=-0.3",
                                                     arrowstyle="-", lw=0.5, color="#2a8a8a", alpha=0.7))
                more = f"{b.dense_layers} layers, each fed by all before it"
                ax.text(x0 + box_w / 2, bottom + 0.1, more, fontsize=6, ha="center", va="center", color="#1d5f5f")
            if bi < len(col) - 1:
                ax.add_patch(FancyArrowPatch((x0 + box_w / 2, bottom - 0.02), (x0 + box_w / 2, bottom - gap + 0.02),
                                             arrowstyle="-|>", mutation_scale=8, color="#555"))
            y = bottom - gap
        if ci < len(columns) - 1:
            ax.text(x0 + box_w / 2, y + 0.1, "continues in the next column →", fontsize=7, ha="center", color="#777")
    return fig
