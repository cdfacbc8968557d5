"""The lecture's tables: every published number, with its source, next to the computed one.

Every published number is stated once, with its source. A model's published totals (the
numbers its registry entry is tested against: LeNet-5's 61,706 parameters, torchvision's
counts and GFLOPS, ResNet's Table 1 FLOPs) live in its family file's `PUBLISHED` table and
are read here from the registry (`model_info(name).params` / `.macs`), as are the facts the
family files already state (LeNet's per-layer counts of 1998, DenseNet's blocks from its
`SPECS`). The numbers only a table prints (GoogLeNet's rows, VGG's Table 2, AlexNet's "60
million") live here. `PUBLISHED` (built on first use, since it reads the registry) gives
every table's entries, each a `PublishedRow`. `paper_table(name)` computes the
same quantities on the zoo's networks (with `analyze`, on the meta device) and returns
rows `{"row", "quantity", "published", "computed", "rel_diff", "note", "source"}`.
`published` and `computed` are plain counts (parameters, multiply-adds, pixels, layers,
bytes): a published "112K" with K = 1024 is stored as 114,688. Every row whose relative
difference exceeds 2% carries a note saying why (the authors' convention, or an error in
the table, with the arithmetic).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from ..errors import ConfigError, UnknownModelError

K2 = 1024  # GoogLeNet's table counts parameters in binary thousands (see _googlenet)
M = 10**6
G = 10**9

# -- sources ------------------------------------------------------------------------------
LECTURE_LENET = "lecture notes, slide 'LeNet Parameters and Memory Requirement?' ({:,} parameters)"
LENET_1998 = "LeCun, Bottou, Bengio, Haffner, Proc. IEEE 1998, section II.B (parameters of C1, C3, C5, F6)"
LENET_HAND = "hand-derived (convzoo registry): {} multiply-adds"
ALEXNET_2012 = "Krizhevsky, Sutskever, Hinton, NIPS 2012, abstract: 'has 60 million parameters'"
TORCHVISION = "torchvision model metadata (ImageNet-1K weights: num_params, GFLOPS = multiply-adds)"
VGG_T2 = "Simonyan and Zisserman, ICLR 2015, Table 2 (lecture: 'VGG Net - Parameter Space'), millions"
RESNET_VGG = "He et al., CVPR 2016, section 4.1: VGG-16/19 have 15.3/19.6 billion FLOPs (multiply-adds)"
GOOGLENET_T1 = "Szegedy et al., CVPR 2015, Table 1 (lecture: GoogLeNet 'Parameter Space and FLOPs')"
RESNET_T1 = "He et al., CVPR 2016, Table 1, FLOPs row (multiply-adds), x10^9"
DENSENET_T1 = "Huang et al., CVPR 2017, Table 1 (lecture: 'DenseNet Architecture')"
DENSENET_201 = "Huang et al., CVPR 2017, section 4.4: 'a DenseNet-201 with 20M parameters'"


@dataclass(frozen=True)
class PublishedRow:
    """One published number of a table: `value` in plain units, `printed` as the source prints it."""

    row: str
    quantity: str
    value: float
    printed: str
    source: str


def _p(row: str, quantity: str, value: float, printed: str, source: str) -> PublishedRow:
    return PublishedRow(row, quantity, value, printed, source)


def _zoo(row: str, quantity: str, model: str, field: str, source: str, printed: Callable[[float], str] | None = None,
         as_float: bool = False) -> PublishedRow:  # fmt: skip
    """An entry whose number is the registry's: `model_info(model).params` or `.macs`."""
    from ..registry import model_info

    value = getattr(model_info(model), field)
    if value is None:
        raise ConfigError(f"the registry publishes no {field} for {model!r}; the table needs them")
    value = float(value) if as_float else value
    return _p(row, quantity, value, printed(value) if printed else f"{value:,}", source)


#: GoogLeNet Table 1: row -> (params as printed in K, ops as printed in M)
GOOGLENET_ROWS: dict[str, tuple[float, float]] = {
    "convolution 7x7/2": (2.7, 34),
    "convolution 3x3/1 (with 1x1 reduce)": (112, 360),
    "inception (3a)": (159, 128),
    "inception (3b)": (380, 304),
    "inception (4a)": (364, 73),
    "inception (4b)": (437, 88),
    "inception (4c)": (463, 100),
    "inception (4d)": (580, 119),
    "inception (4e)": (840, 170),
    "inception (5a)": (1072, 54),
    "inception (5b)": (1388, 71),
    "linear": (1000, 1),
}

def _densenet_blocks() -> dict[str, tuple[int, ...]]:
    """DenseNet Table 1: the blocks' layer counts of the four ImageNet networks (their SPECS)."""
    from ..models.densenet import SPECS

    return {name: spec.blocks for name, spec in SPECS.items() if spec.stem == "imagenet"}


#: DenseNet Table 1: output side of each stage (the same for the four networks)
DENSENET_SIDES: dict[str, int] = {
    "convolution": 112,
    "pooling": 56,
    "dense block (1)": 56,
    "transition layer (1)": 28,
    "dense block (2)": 28,
    "transition layer (2)": 14,
    "dense block (3)": 14,
    "transition layer (3)": 7,
    "dense block (4)": 7,
    "classification layer": 1,
}

def _giga(value: float) -> str:
    return f"{value / G:g}x10^9"


@functools.lru_cache(maxsize=1)
def _published() -> dict[str, list[PublishedRow]]:
    from ..models.lenet import LECTURE_MACS, PAPER_LAYER_PARAMS
    from ..registry import model_info

    lenet_params = model_info("lenet5").params
    densenet_blocks = _densenet_blocks()
    return {
        "lenet": [
            *[
                _p(row, "params", PAPER_LAYER_PARAMS[layer], f"{PAPER_LAYER_PARAMS[layer]:,}", LENET_1998)
                for layer, row in (("C1", "C1: conv 6@5x5"), ("C3", "C3: conv 16@5x5"), ("C5", "C5: fc 400->120"),
                                   ("F6", "F6: fc 120->84"))  # fmt: skip
            ],
            _zoo("total", "params", "lenet5", "params", LECTURE_LENET.format(lenet_params)),
            _zoo("total", "MACs at 1x32x32", "lenet5", "macs", LENET_HAND.format(" + ".join(f"{m:,}" for m in LECTURE_MACS))),
        ],
        "alexnet": [
            _p("alexnet_paper (two-GPU network)", "params", 60 * M, "60 million", ALEXNET_2012),
            _zoo("alexnet (torchvision, one weird trick)", "params", "alexnet", "params", TORCHVISION),
            _zoo("alexnet (torchvision, one weird trick)", "MACs at 224x224", "alexnet", "macs", TORCHVISION,
                 lambda v: f"{v / G:.3f} GFLOPS", as_float=True),  # fmt: skip
        ],
        "vgg": [
            _p("A (vgg_a)", "params", 133 * M, "133", VGG_T2),
            _p("A-LRN (vgg_a_lrn)", "params", 133 * M, "133", VGG_T2),
            _p("B (vgg_b)", "params", 133 * M, "133", VGG_T2),
            _p("C (vgg_c)", "params", 134 * M, "134", VGG_T2),
            _p("D (vgg_d)", "params", 138 * M, "138", VGG_T2),
            _p("E (vgg_e)", "params", 144 * M, "144", VGG_T2),
            _p("D (vgg_d)", "MACs at 224x224", 15.3 * G, "15.3 billion", RESNET_VGG),
            _p("E (vgg_e)", "MACs at 224x224", 19.6 * G, "19.6 billion", RESNET_VGG),
        ],
        "googlenet": [
            item
            for row, (k, m) in GOOGLENET_ROWS.items()
            for item in (
                _p(row, "params (weights, K=1024)", k * K2, f"{k:g}K", GOOGLENET_T1),
                _p(row, "ops (MACs, M=10^6)", m * M, f"{m:g}M", GOOGLENET_T1),
            )
        ],
        # Table 1's FLOPs are the registry's MACs of the plain 18/34-layer baselines (the same
        # columns) and of the *_paper networks (the paper's stride placement)
        "resnet": [
            _zoo(row, "MACs at 224x224", model, "macs", RESNET_T1, _giga, as_float=True)
            for row, model in (
                ("18-layer (resnet18)", "plain18"),
                ("34-layer (resnet34)", "plain34"),
                ("50-layer (resnet50_paper)", "resnet50_paper"),
                ("101-layer (resnet101_paper)", "resnet101_paper"),
                ("152-layer (resnet152_paper)", "resnet152_paper"),
                ("50-layer, torchvision placement (resnet50)", "resnet50_paper"),
                ("101-layer, torchvision placement (resnet101)", "resnet101_paper"),
                ("152-layer, torchvision placement (resnet152)", "resnet152_paper"),
            )
        ],
        "densenet": [
            *[_p(row, "output side (pixels)", side, f"{side}x{side}", DENSENET_T1) for row, side in DENSENET_SIDES.items()],
            *[
                _p(f"{name}: dense block ({i + 1})", "layers", n, f"x {n}", DENSENET_T1)
                for name, blocks in densenet_blocks.items()
                for i, n in enumerate(blocks)
            ],
            *[
                _p(name, "weight layers", int(name[len("densenet"):]), name[len("densenet"):], DENSENET_T1)
                for name in densenet_blocks
            ],
            *[_zoo(name, "params", name, "params", TORCHVISION) for name in densenet_blocks],
            _p("densenet201", "params (paper)", 20 * M, "20M", DENSENET_201),
        ],
    }


def __getattr__(name: str) -> Any:
    # `PUBLISHED` reads the registry (it imports torch and the families): built on first use
    if name == "PUBLISHED":
        return _published()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


TABLES = ("lenet", "alexnet", "vgg", "googlenet", "resnet", "densenet")

TITLES = {
    "lenet": "LeNet-5: parameters and memory (the lecture's question)",
    "alexnet": "AlexNet: the paper's two-GPU network and torchvision's single-tower variant",
    "vgg": "VGG: number of parameters (Table 2) and multiply-adds",
    "googlenet": "GoogLeNet: Table 1, parameters and ops per row",
    "resnet": "ResNet: FLOPs (multiply-adds) of Table 1",
    "densenet": "DenseNet: structure (Table 1) and parameters",
}

CONVENTIONS = {
    "lenet": "MACs: multiply-adds of convolutions and linear layers, biases not counted; bytes for float32; "
    "activation memory per image at batch 1 (see docs/analysis.md for what is included).",
    "alexnet": "alexnet_paper runs at 227x227 (the paper's stated 224 only works out as 227); torchvision's at 224x224.",
    "vgg": "Parameters include biases; MACs count convolutions and linear layers (biases not counted).",
    "googlenet": "Worked out from the rows that agree exactly: parameters are weights only (no biases) in units of "
    "K = 1024 (conv 3x3 row: 64x64 + 3x3x64x192 = 114,688 = 112.0K; linear: 1024x1000 = 1,024,000 = 1000K), "
    "and 'ops' are multiply-adds in units of M = 10^6 (the same conv row: 114,688 x 56 x 56 = 359.7M, printed 360M), "
    "auxiliary classifiers excluded. 'Computed' follows these conventions on googlenet_paper.",
    "resnet": "FLOPs in the paper are multiply-adds (section 3.3); computed: MACs of convolutions and the fc layer. "
    "The *_paper models put the stride-2 in the first 1x1 convolution of a stage (the paper); torchvision's "
    "resnet50/101/152 put it in the 3x3 convolution ('ResNet v1.5').",
    "densenet": "Output side of each stage on a 224x224 input; layers per dense block count bottleneck layers "
    "(1x1 + 3x3 convolutions); weight layers = convolutions + the fc layer. Parameter counts include biases and "
    "batch-norm affine parameters.",
}


@dataclass
class PaperRow:
    """One line of a comparison."""

    row: str
    quantity: str
    published: float | None
    computed: float | None
    rel_diff: float | None
    note: str = ""
    source: str = ""
    printed: str = ""
    #: the zoo model the computed figure is read from, and the modules it counts (qualified
    #: names; empty when the figure is the whole network's): the explorer links them
    model: str = ""
    layers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PaperTable:
    """A lecture table: published against computed, row by row."""

    table: str
    title: str
    conventions: str
    rows: list[PaperRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "title": self.title,
            "conventions": self.conventions,
            "rows": [r.to_dict() for r in self.rows],
        }


def _rel(computed: float | None, published: float | None) -> float | None:
    if computed is None or published is None or published == 0:
        return None
    return (computed - published) / published


class _Builder:
    """Collects rows, pairing each computed number with its published entry."""

    def __init__(self, table: str) -> None:
        self.published = {(p.row, p.quantity): p for p in _published()[table]}
        self.rows: list[PaperRow] = []

    def add(self, row: str, quantity: str, computed: float | None, note: str = "", *, model: str = "",
            layers: Sequence[str] = ()) -> None:  # fmt: skip
        pub = self.published.get((row, quantity))
        value = None if pub is None else pub.value
        self.rows.append(
            PaperRow(
                row=row,
                quantity=quantity,
                published=value,
                computed=computed,
                rel_diff=_rel(computed, value),
                note=note,
                source="" if pub is None else pub.source,
                printed="" if pub is None else pub.printed,
                model=model,
                layers=list(layers),
            )
        )


# -- helpers that read the zoo's networks ------------------------------------------------------
def _report(name: str, training: bool = False, **kw: Any) -> Any:
    """`analyze(name)`; without the training pass unless the table prints training memory
    (only LeNet's does: the others count parameters and MACs, half the time)."""
    from .engine import analyze

    try:
        return analyze(name, training=training, **kw)
    except UnknownModelError as err:
        raise UnknownModelError(f"this table needs the model {name!r}, which is not registered ({err})") from None


def _meta_model(name: str) -> Any:
    from ..meta import meta_build
    from ..registry import create_model

    try:
        with meta_build():
            return create_model(name)
    except UnknownModelError as err:
        raise UnknownModelError(f"this table needs the model {name!r}, which is not registered ({err})") from None


def _published_params(name: str) -> int | None:
    from ..registry import model_info

    return model_info(name).params


def _called(report: Any, type_names: tuple[str, ...]) -> list[Any]:
    """Rows of modules of the given types that ran, in forward (pre-)order."""
    return [r for r in report.layers if r.type in type_names and r.calls > 0]


def _weights(model: Any, name: str) -> int:
    """Weights (no biases, no norm parameters) of convolutions and linear layers under `name`."""
    from torch import nn

    module = model.get_submodule(name) if name else model
    return sum(
        m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
    )


def _side(shape: list[Any] | None) -> int | None:
    return None if not shape or len(shape) < 3 else int(shape[-1])


# -- the tables -----------------------------------------------------------------------------------
def _lenet() -> list[PaperRow]:
    b = _Builder("lenet")
    L = "lenet5"
    r = _report(L, training=True, batch_size=1)
    convs = _called(r, ("Conv2d",))
    fcs = _called(r, ("Linear",))
    if len(convs) != 2 or len(fcs) != 3:
        raise ConfigError("lenet5 no longer has 2 convolutions and 3 linear layers; the lenet table needs them")
    b.add("C1: conv 6@5x5", "params", convs[0].params, "5x5x1x6 weights + 6 biases.", model=L, layers=[convs[0].name])
    b.add(
        "C3: conv 16@5x5",
        "params",
        convs[1].params,
        model=L,
        layers=[convs[1].name],
        note="The lecture's LeNet connects C3 to all 6 S2 maps: 5x5x6x16 + 16 = 2,416. The 1998 paper uses a partial "
        "table (60 of the 96 map pairs: 60x25 + 16 biases = 1,516) to break symmetry and save connections.",
    )
    b.add("C5: fc 400->120", "params", fcs[0].params, "400x120 + 120; the paper's C5 is a 5x5 convolution on 5x5 maps, the same count.", model=L, layers=[fcs[0].name])
    b.add("F6: fc 120->84", "params", fcs[1].params, "120x84 + 84.", model=L, layers=[fcs[1].name])
    b.add("output: fc 84->10", "params", fcs[2].params, "84x10 + 10. The paper's output is 10 Euclidean RBF units with fixed (not trained) 84-d centres.", model=L, layers=[fcs[2].name])
    b.add("total", "params", r.total_params, model=L)
    b.add("total", "MACs at 1x32x32", r.macs, "Per layer: 28x28x6x25 + 10x10x16x150 + 400x120 + 120x84 + 84x10.", model=L)
    m = r.memory
    b.add("parameters", "bytes (float32)", m.param_bytes, "4 bytes per parameter.", model=L)
    b.add(
        "activations per image, inference",
        "bytes written by the forward pass",
        m.forward_activation_bytes,
        model=L,
        note="Every tensor the forward creates at batch 1: 14,602 float32 activations (58,408 bytes) and the "
        "max-pool indices (1,576 int64, 12,608 bytes), which PyTorch computes even at inference; the input "
        "image (4,096 bytes) is not included.",
    )
    b.add("inference, one image", "peak bytes (params + input + live activations)", m.peak_inference_bytes, model=L)
    b.add(
        "activations per image, training",
        "bytes saved for backward",
        m.saved_activation_bytes,
        model=L,
        note="What autograd keeps from the forward for the backward pass (conv/linear inputs, ReLU outputs, pooling indices).",
    )
    b.add(
        "training, one image (SGD with momentum)",
        "bytes: params + grads + momentum + input + saved activations",
        m.training_bytes,
        model=L,
    )
    return b.rows


def _alexnet() -> list[PaperRow]:
    b = _Builder("alexnet")
    paper = _report("alexnet_paper")
    tv = _report("alexnet")
    b.add(
        "alexnet_paper (two-GPU network)",
        "params",
        paper.total_params,
        model="alexnet_paper",
        note="The paper only says 'about 60 million'; its layer shapes (section 3.5, Figure 2) give "
        f"{_published_params('alexnet_paper'):,}.",
    )
    b.add("alexnet (torchvision, one weird trick)", "params", tv.total_params, model="alexnet")
    b.add("alexnet (torchvision, one weird trick)", "MACs at 224x224", tv.macs, model="alexnet")
    b.add("alexnet_paper (two-GPU network)", "MACs at 227x227", paper.macs, "Not published; computed at the 227x227 input that makes the paper's 55x55 maps.", model="alexnet_paper")
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    p_rows = _called(paper, ("Conv2d",)) + _called(paper, ("Linear",))
    t_rows = _called(tv, ("Conv2d",)) + _called(tv, ("Linear",))
    if len(p_rows) != 8 or len(t_rows) != 8:
        raise ConfigError("the alexnet table expects 5 convolutions and 3 linear layers in both networks")
    why = {
        "conv1": "paper: 96 kernels 11x11x3; torchvision: 64.",
        "conv2": "paper: 256 kernels 5x5x48 (two groups of 128 on each GPU's 48 maps); torchvision: 192 kernels 5x5x64, no groups.",
        "conv3": "paper: 384 kernels 3x3x256 (sees both GPUs); torchvision: 384 kernels 3x3x192.",
        "conv4": "paper: 384 kernels 3x3x192 (two groups); torchvision: 256 kernels 3x3x384.",
        "conv5": "paper: 256 kernels 3x3x192 (two groups); torchvision: 256 kernels 3x3x256.",
        "fc6": "same in both: 6x6x256 -> 4096.",
        "fc7": "same in both: 4096 -> 4096.",
        "fc8": "same in both: 4096 -> 1000.",
    }
    for name, pr, tr in zip(layers, p_rows, t_rows):
        b.add(name, "params: paper network", pr.params, why[name], model="alexnet_paper", layers=[pr.name])
        b.add(name, "params: torchvision", tr.params, why[name], model="alexnet", layers=[tr.name])
    b.add(
        "torchvision - paper",
        "params",
        tv.total_params - paper.total_params,
        model="alexnet",
        note="All of the difference is in the convolutions (torchvision drops the two-GPU grouping and changes the "
        "filter counts to 64-192-384-256-256); the three FC layers (58,631,144 parameters) are identical.",
    )
    return b.rows


def _vgg() -> list[PaperRow]:
    b = _Builder("vgg")
    names = {"A (vgg_a)": "vgg_a", "A-LRN (vgg_a_lrn)": "vgg_a_lrn", "B (vgg_b)": "vgg_b", "C (vgg_c)": "vgg_c",
             "D (vgg_d)": "vgg_d", "E (vgg_e)": "vgg_e"}
    reports = {row: _report(name) for row, name in names.items()}
    for row, rep in reports.items():
        note = "LRN has no parameters, so A-LRN = A." if row.startswith("A-LRN") else ""
        b.add(row, "params", rep.total_params, note, model=names[row])
    b.add("D (vgg_d)", "MACs at 224x224", reports["D (vgg_d)"].macs, model="vgg_d")
    b.add("E (vgg_e)", "MACs at 224x224", reports["E (vgg_e)"].macs, model="vgg_e")
    return b.rows


def _googlenet() -> list[PaperRow]:
    b = _Builder("googlenet")
    name = "googlenet_paper"
    rep = _report(name)
    model = _meta_model(name)
    convs = _called(rep, ("Conv2d",))
    blocks = [r for r in rep.layers if r.calls > 0 and "Inception" in r.type]
    linears = _called(rep, ("Linear",))
    if len(blocks) != 9 or not linears or len(convs) < 3:
        raise ConfigError(f"{name} does not have the 9 inception modules of Table 1")
    first_block = rep.layers.index(blocks[0])
    stem = [c for c in convs if rep.layers.index(c) < first_block]
    if len(stem) != 3:
        raise ConfigError(f"{name} should have 3 convolutions before inception (3a), found {len(stem)}")
    # rows in Table 1's order: conv 7x7, reduce + conv 3x3, the nine inception modules, linear
    groups: list[list[Any]] = [[stem[0]], stem[1:], *[[blk] for blk in blocks], [linears[-1]]]
    notes_params = {
        "convolution 7x7/2": "A 7x7 convolution from 3 to 64 channels has 7x7x3x64 = 9,408 weights (9.2K) and "
        "112x112x9,408 = 118M multiply-adds. The table's 2.7K and 34M agree with each other (2.7K x 112 x 112 = 34M) "
        "but with no reading of this layer (one input channel would give 3.1K and 39M): the row is wrong in the "
        "table; its output size 112x112x64 is right.",
        "inception (4c)": "The ops of this row (100M = 509,440 weights x 14 x 14) agree with the listed filters "
        "(128, 128/256, 24/64, 64 on 512 inputs: 509,440 = 497.5K weights), so the module is as listed and 463K "
        "is a typo in the params column.",
        "inception (5a)": "The table's 1072K and 54M agree with each other (1072K x 7 x 7 = 53.8M) but are 5% above "
        "what the listed filters give (256, 160/320, 32/128, 128 on 832 inputs: 1,042,432 weights = 1018K, "
        "51.1M MACs), while the ops of every other inception row match their filters to 1%; an error in the table.",
    }
    notes_ops = {
        "convolution 7x7/2": notes_params["convolution 7x7/2"],
        "inception (5a)": notes_params["inception (5a)"],
        "linear": "1024 x 1000 = 1,024,000 multiply-adds, printed '1M': the table rounds to whole millions, so this "
        "row shows the rounding, not a different convention (M = 10^6 in every other row).",
    }
    for label, members in zip(GOOGLENET_ROWS, groups):
        weights = sum(_weights(model, r.name) for r in members)
        macs = sum(r.cum_macs for r in members)
        default = "Within rounding of the printed figure." if label not in notes_params else ""
        linked = [r.name for r in members]
        b.add(label, "params (weights, K=1024)", weights, notes_params.get(label, default), model=name, layers=linked)
        b.add(label, "ops (MACs, M=10^6)", macs, notes_ops.get(label, "Within rounding of the printed figure."), model=name, layers=linked)
    aux = sum(r.params for r in rep.layers if r.calls == 0)  # modules that never run at inference
    b.add(
        "whole network",
        "params (with biases, no auxiliary heads)",
        rep.total_params - aux,
        model=name,
        note="Not in the table. Biases and the two auxiliary classifiers (used in training only) are excluded from the "
        "rows; the auxiliary heads alone have " + f"{aux:,} parameters.",
    )
    b.add("whole network", "MACs", rep.macs, "Not in the table: the sum of the computed rows.", model=name)
    return b.rows


def _resnet() -> list[PaperRow]:
    b = _Builder("resnet")
    rows = {
        "18-layer (resnet18)": ("resnet18", ""),
        "34-layer (resnet34)": ("resnet34", ""),
        "50-layer (resnet50_paper)": ("resnet50_paper", "Stride 2 in the first 1x1 convolution of conv3_1, conv4_1, conv5_1 (and in the projection shortcut)."),
        "101-layer (resnet101_paper)": ("resnet101_paper", ""),
        "152-layer (resnet152_paper)": ("resnet152_paper", ""),
    }
    tv_note = (
        "torchvision's placement: the stride 2 of conv3_1, conv4_1 and conv5_1 sits in the 3x3 convolution, so "
        "the first 1x1 convolution of those blocks now runs at stride 1 on the larger map (4x its MACs; the strided "
        "3x3 costs the same as before): +{extra:.3f}x10^9 multiply-adds over the paper's placement (computed on "
        "{paper}), with the same parameters. The paper's number is for its own placement."
    )
    paper_macs: dict[str, int] = {}
    for row, (name, note) in rows.items():
        rep = _report(name)
        paper_macs[name] = rep.macs
        b.add(row, "MACs at 224x224", rep.macs, note, model=name)
    for depth in (50, 101, 152):
        row = f"{depth}-layer, torchvision placement (resnet{depth})"
        rep = _report(f"resnet{depth}")
        paper = f"resnet{depth}_paper"
        b.add(row, "MACs at 224x224", rep.macs, tv_note.format(extra=(rep.macs - paper_macs[paper]) / G, paper=paper), model=f"resnet{depth}")
    return b.rows


class _Module:
    """A module of a meta-built network as a row: name, class name, parameters (its own)."""

    def __init__(self, name: str, module: Any) -> None:
        self.name, self.type, self.calls = name, type(module).__name__, 1
        self.params = sum(p.numel() for p in module.parameters(recurse=False))


def _densenet() -> list[PaperRow]:
    """The structure rows (blocks, layers, weight layers, parameters) count the modules of
    the meta-built networks (every DenseNet module runs once, so they are the modules the
    engine would count); only the output sides need a forward pass: one analysis, of
    DenseNet-121. Three fewer analyses keep `convzoo paper densenet` near a cold start."""
    b = _Builder("densenet")
    params: dict[str, int] = {}
    for name in _densenet_blocks():
        rows = [_Module(n, m) for n, m in _meta_model(name).named_modules() if n]
        blocks = [r for r in rows if "DenseBlock" in r.type]
        transitions = [r for r in rows if "Transition" in r.type]
        if len(blocks) != 4 or len(transitions) != 3:
            raise ConfigError(f"{name} should have 4 dense blocks and 3 transitions, found {len(blocks)} and {len(transitions)}")
        total_params = sum(r.params for r in rows)
        if name == "densenet121":  # the sides are the same for all four networks
            rep = _report(name)
            convs = _called(rep, ("Conv2d",))
            pools = [r for r in rep.layers if r.calls > 0 and "MaxPool" in r.type]
            gpool = [r for r in rep.layers if r.calls > 0 and "AdaptiveAvgPool" in r.type]
            sides = {
                "convolution": _side(convs[0].output_shape),
                "pooling": _side(pools[0].output_shape) if pools else None,
                "classification layer": _side(gpool[-1].output_shape) if gpool else None,
            }
            where = {"convolution": [convs[0].name], "pooling": [pools[0].name] if pools else [],
                     "classification layer": [gpool[-1].name] if gpool else []}  # fmt: skip
            rep_blocks = [r for r in rep.layers if "DenseBlock" in r.type and r.calls > 0]
            rep_transitions = [r for r in rep.layers if "Transition" in r.type and r.calls > 0]
            for i in range(4):
                sides[f"dense block ({i + 1})"] = _side(rep_blocks[i].output_shape)
                where[f"dense block ({i + 1})"] = [rep_blocks[i].name]
            for i in range(3):
                sides[f"transition layer ({i + 1})"] = _side(rep_transitions[i].output_shape)
                where[f"transition layer ({i + 1})"] = [rep_transitions[i].name]
            for row in DENSENET_SIDES:
                b.add(row, "output side (pixels)", sides[row], "The same for DenseNet-169, -201 and -161.", model=name,
                      layers=where.get(row, []))  # fmt: skip
        for i, blk in enumerate(blocks):
            prefix = blk.name + "."
            n = sum(1 for r in rows if "DenseLayer" in r.type and r.name.startswith(prefix))
            b.add(f"{name}: dense block ({i + 1})", "layers", n, model=name, layers=[blk.name])
        weight_layers = sum(1 for r in rows if r.type in ("Conv2d", "Linear"))
        b.add(name, "weight layers", weight_layers, "1 stem convolution + 2 per dense layer + 1 per transition + 1 fc.", model=name)
        b.add(name, "params", total_params, model=name)
        params[name] = total_params
    b.add("densenet201", "params (paper)", params["densenet201"], "The paper rounds to 20M.", model="densenet201")
    return b.rows


_TABLES: dict[str, Callable[[], list[PaperRow]]] = {
    "lenet": _lenet,
    "alexnet": _alexnet,
    "vgg": _vgg,
    "googlenet": _googlenet,
    "resnet": _resnet,
    "densenet": _densenet,
}


def paper_table(name: str) -> PaperTable:
    """The lecture's table `name` (lenet, alexnet, vgg, googlenet, resnet, densenet)."""
    key = name.lower()
    if key not in _TABLES:
        raise ConfigError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
    return PaperTable(table=key, title=TITLES[key], conventions=CONVENTIONS[key], rows=_TABLES[key]())
