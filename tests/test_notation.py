"""The compact notation: the lecture's examples, the extensions, every error, and the zoo round trip."""

from __future__ import annotations

import fnmatch
import re
import time
from pathlib import Path

import pytest
import torch
from torch import fx, nn

import convzoo
from convzoo.errors import ConfigError, NotationError, SpecError
from convzoo.layers import LRN as LRNLayer
from convzoo.notation import (
    FC,
    LRN,
    MAX_PARAMS,
    AdaptiveAvgPool,
    Conv,
    Dropout,
    Flatten,
    NetworkSpec,
    Pool,
    check,
    format_shape,
    format_spec,
    from_spec,
    parse,
    to_spec,
)
from convzoo.notation.summary import summarize

SHORT = "6c5w1s0p 2w2s 16c5w1s0p 2w2s"
CHAIN = "Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)"
LECTURE_SHAPES = ["6x28x28", "6x14x14", "16x10x10", "16x5x5", "400", "120", "84", "10"]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# -- the lecture's two lines -----------------------------------------------------------------


def test_lecture_chain_shapes_and_params():
    rows = check(parse(CHAIN), input_size=(1, 32, 32))
    assert [format_shape(r.output_shape) for r in rows] == LECTURE_SHAPES
    assert sum(r.params for r in rows) == 61_706
    net = from_spec(CHAIN, input_size=(1, 32, 32))
    assert n_params(net) == 61_706
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_lecture_short_form_is_the_chain_without_its_head():
    short, chain = parse(SHORT), parse(CHAIN)
    assert short.layers == chain.layers[:4]
    assert not any(isinstance(layer, FC) for layer in short.layers)
    rows = check(short, input_size=(1, 32, 32))
    assert [format_shape(r.output_shape) for r in rows] == LECTURE_SHAPES[:4]
    assert sum(r.params for r in rows) == 156 + 2_416  # 6*(25+1) + 16*(6*25+1)


def test_lecture_chain_details():
    spec = parse(CHAIN)
    assert spec.layers[0] == Conv(6, 5, 1, 0)
    assert spec.layers[1] == Pool("max", 2, 2, 0)
    assert spec.layers[4] == Flatten(400)
    # ReLU after every fc but the last
    assert [layer.act for layer in spec.layers if isinstance(layer, FC)] == ["relu", "relu", None]
    assert spec.in_channels is None and spec.input_hw is None


def test_lenet5_prints_as_the_lecture_writes_it():
    text = to_spec(convzoo.create_model("lenet5"))
    assert text == CHAIN.replace("Input->", "Input(1x32x32)->")
    assert to_spec(convzoo.create_model("lenet5"), form="short") == "Input(1x32x32) " + SHORT + " (Flat)400 120fc 84fc 10fc"


@pytest.mark.parametrize(
    "text",
    [
        "6c5w1s0p->2w2s->16c5w1s0p->2w2s",
        "  6c5w1s0p  ->  2w2s 16c5w1s0p->   2w2s  ",
        "(Conv)6c5w1s0p (MaxPool)2w2s\n(Conv)16c5w (MaxPool)2w2s0p",
        "Input -> 6c5w -> 2w2s -> 16c5w -> 2w2s -> (Output)",
    ],
)
def test_spacing_forms_and_defaults(text):
    assert parse(text).layers == parse(SHORT).layers


def test_repeat_counts_expand_and_print_back():
    spec = parse("Input(3x32x32) (Conv)8c3w1s1p+bn*2 2w2s 16c3w1s1p*3 (Flat) 10fc*3")
    assert spec.layers[0] == spec.layers[1] == Conv(8, 3, 1, 1, bn=True, bias=False)
    assert spec.layers[3:6] == (Conv(16, 3, 1, 1),) * 3
    assert [layer.act for layer in spec.layers[7:]] == ["relu", "relu", None]  # the last fc stays linear
    assert format_spec(spec, form="short") == "Input(3x32x32) 8c3w1s1p+bn*2 2w2s 16c3w1s1p*3 (Flat) 10fc*3"
    assert n_params(from_spec(spec)) == sum(r.params for r in check(spec))


def test_bare_number_is_the_flatten_size():
    assert parse("6c5w 2w2s 16c5w 2w2s 400 -> 120fc").layers[4] == Flatten(400)


# -- extensions --------------------------------------------------------------------------------


def test_activation_choice():
    spec = parse("6c5w+tanh 2w2s (Flat) 120fc+sigmoid 84fc+none 10fc+relu")
    conv, fc1, fc2, fc3 = (spec.layers[i] for i in (0, 3, 4, 5))
    assert (conv.act, fc1.act, fc2.act, fc3.act) == ("tanh", "sigmoid", None, "relu")
    net = from_spec(spec, input_size=(1, 32, 32))
    assert isinstance(net.conv1.act, nn.Tanh) and isinstance(net.fc1.act, nn.Sigmoid)
    assert not hasattr(net.fc2, "act") and isinstance(net.fc3.act, nn.ReLU)
    assert format_spec(spec, form="short") == "6c5w1s0p+tanh 2w2s (Flat) 120fc+sigmoid 84fc+none 10fc+relu"


def test_batch_norm_bias_and_standalone_layers():
    spec = parse("8c3w1s1p+bn 8c3w1s1p+bn+bias 8c3w+nobias (BN) (ReLU) (Flat)288 10fc+bn")
    a, b, c = spec.layers[:3]
    assert (a.bn, a.bias, b.bn, b.bias, c.bn, c.bias) == (True, False, True, True, False, False)
    net = from_spec(spec, input_size=(3, 8, 8))
    assert list(dict(net.conv1.named_children())) == ["conv", "norm", "act"]
    assert net.conv1.conv.bias is None and net.conv2.conv.bias is not None
    assert isinstance(net.bn, nn.BatchNorm2d) and isinstance(net.fc1.norm, nn.BatchNorm1d)
    # 3*9*8 + 16 | 8*9*8 + 8 + 16 | 8*9*8 | 16 | 288*10 + 20 (no bias under +bn)
    assert n_params(net) == 232 + 600 + 576 + 16 + 2900
    assert net.eval()(torch.zeros(2, 3, 8, 8)).shape == (2, 10)


def test_lrn_dropout_and_pooling_kinds():
    spec = parse("(LRN)5n2k1e-4a0.75b (LRN)3n1k0.5a0.5b (LRN) (AvgPool)2w2s (Dropout)0.3 (Dropout) (GAP) (AdaptiveAvgPool)6x6 (AdaptiveAvgPool)3")
    assert spec.layers[0] == LRN(5, 2.0, 1e-4, 0.75) == spec.layers[2]
    assert spec.layers[1] == LRN(3, 1.0, 0.5, 0.5)
    assert spec.layers[3] == Pool("avg", 2, 2, 0)
    assert spec.layers[4:6] == (Dropout(0.3), Dropout(0.5))
    assert spec.layers[6:] == (AdaptiveAvgPool(1, 1), AdaptiveAvgPool(6, 6), AdaptiveAvgPool(3, 3))
    net = from_spec(spec, input_size=(4, 12, 12))
    lrn = net.lrn1
    assert isinstance(lrn, LRNLayer) and (lrn.size, lrn.k, lrn.alpha, lrn.beta) == (5, 2.0, 1e-4, 0.75)
    assert isinstance(net.pool1, nn.AvgPool2d) and isinstance(net.gap, nn.AdaptiveAvgPool2d)
    assert net(torch.rand(1, 4, 12, 12)).shape == (1, 4, 3, 3)


def test_grouped_and_pointwise_convolutions():
    spec = parse("Input(3x227x227) 96c11w4s 256c5w1s2p2g 256c1w")
    rows = check(spec)
    assert spec.layers[1].groups == 2 and spec.layers[2].kernel == 1
    assert [r.params for r in rows] == [96 * 3 * 121 + 96, 256 * 48 * 25 + 256, 256 * 256 + 256]
    net = from_spec(spec)
    assert net.conv2.conv.groups == 2 and n_params(net) == sum(r.params for r in rows)


def test_input_tag_and_arguments():
    text = "Input(3x32x32) 8c3w (Flat) 10fc"
    assert from_spec(text).fc1.linear.in_features == 8 * 30 * 30
    assert from_spec(text, input_size=(16, 16)).fc1.linear.in_features == 8 * 14 * 14  # arguments win
    assert from_spec(text, in_channels=1).conv1.conv.in_channels == 1
    assert from_spec("8c3w").conv1.conv.in_channels == 1  # the default: the lecture's grey images
    assert from_spec("Input(5) 8c3w").in_channels == 5
    net = from_spec("Input(3x32x32) 8c3w (Flat) 10fc")
    assert net.input_size == (3, 32, 32) and net.num_classes == 10 and net.layer_names == ["conv1", "flatten", "fc1"]
    with pytest.raises(ConfigError):
        from_spec(text, in_channels=1, input_size=(3, 32, 32))
    with pytest.raises(NotationError, match="cannot infer the input size of '10fc'"):
        from_spec("8c3w (Flat) 10fc")
    assert from_spec("8c3w (Flat)7200 10fc").fc1.linear.in_features == 7200


def test_float_printing_is_shortest_and_exact():
    for alpha in (1e-4, 2e-05, 0.1, 1 / 3, 123.25, 1e20):
        text = format_spec(NetworkSpec((LRN(5, 2.0, alpha, 0.75),)))
        assert parse(text).layers[0].alpha == alpha
    assert "(LRN)5n2k1e-4a0.75b" in format_spec(NetworkSpec((LRN(),)))


# -- errors ------------------------------------------------------------------------------------

ERRORS = [
    # (text, part of the message, position of the caret)
    ("6c5w1s0p 2w2s foo", "unknown token 'foo'", 14),
    ("6c5w1s0p 2w2s (Pool)2w2s", "unknown tag '(Pool)'", 14),
    ("6c5w1s0p %", "unexpected character '%'", 9),
    ("6cw", "unknown unit 'cw'", 1),
    ("6c 5w", "missing window", 2),
    ("(Conv) 6c5w", "missing number: (Conv)", 6),
    ("c5w", "missing number before 'c'", 0),
    ("fc", "missing number before 'fc'", 0),
    ("0c5w", "must be positive, got 0", 0),
    ("6c0w", "must be positive, got 0", 2),
    ("6c5w0s", "must be positive, got 0", 4),
    ("-3c5w", "must be positive, got -3", 0),
    ("6c5w-1p", "at least 0, got -1", 4),
    ("2w0s", "must be positive, got 0", 2),
    ("6c2.5w", "must be a whole number, got 2.5", 2),
    ("Input(1x32x32) 6c5w 2w2s 16c5w 2w2s 16c7w", "window larger than its input", 36),
    ("Input(1x2x2) 3w1s", "3x3 window (padding 0) but its input is 1x2x2", 13),
    ("Input(1x32x32) 6c5w1s0p 2w2s 16c5w1s0p 2w2s (Flat)300 120fc", "declares 300 values, but its input 16x5x5 flattens to 400", 44),
    ("Input(1x32x32) 6c5w 120fc", "fc before flatten", 20),
    ("Input(1x32x32) 6c5w (Flat) 10fc 6c5w", "needs a feature map", 32),
    (CHAIN + " 10fc", "nonsense after the end", len(CHAIN) + 1),
    (CHAIN + "->(Output)", "nonsense after the end", len(CHAIN) + 2),
    ("6c5w1s0p xyz", "unknown token 'xyz'", 9),
    ("6c5w1s0pq", "unknown unit 'pq'", 7),
    ("6c5w1s1s", "'s' (stride) is given twice", 7),
    ("6c5w->->2w2s", "empty layer", 6),
    ("6c5w->", "expected a layer after '->'", 6),
    ("->6c5w", "expected a layer before '->'", 0),
    ("", "empty network", 0),
    ("Input", "no layers after Input", 5),
    ("6c5w Input", "Input may only begin", 5),
    ("(Conv", "unclosed '('", 0),
    ("6c5w+", "expected a modifier after '+'", 5),
    ("6c5w+bn+bn", "'+bn' is given twice", 7),
    ("6c5w+relu+tanh", "two activations", 9),
    ("6c5w+foo", "unknown modifier '+foo'", 4),
    ("2w2s+bn", "takes no modifiers", 4),
    ("(Dropout)1.5", "dropout rate must be in [0, 1)", 9),
    ("(GAP)3", "takes no numbers", 5),
    ("Input(0x32x32) 6c5w", "must be positive, got 0", 6),
    ("Input(1x32) 6c5w", "Input size must be C or CxHxW", 6),
    ("5c3w2g", "2 groups must divide the 5 filters", 4),
    ("Input(3) 4c3w2g", "2 groups must divide its 3 input channels", 9),
    ("Input(1x8x8) 3w2s2p", "more than half the window", 17),
    ("1000000000c3w", "too large: at most 1,048,576", 0),
    ("6c99999999999999999999999999999w", "too large", 2),
    ("(Output)", "(Output) before any layer", 0),
    ("6c5w*0", "repeat count must be positive, got 0", 5),
    ("6c5w*2+bn", "a repeat count '*N' ends its layer", 4),
    ("6c5w*", "expected a count after '*'", 5),
    ("6c5w*99999999", "too large: at most 10,000", 5),
    ("2w2s 6c1w*9999 6c1w*2", "more than 10,000 layers", 15),
    ("Input(1x8x8)*2 6c5w", "Input cannot be repeated", 12),
]


@pytest.mark.parametrize("text,message,position", ERRORS)
def test_errors_have_a_message_and_a_caret(text, message, position):
    with pytest.raises(NotationError) as info:
        spec = parse(text)
        check(spec, text=text)
    err = info.value
    assert message in err.message
    assert err.position == position, (err.position, str(err))
    if text:
        lines = str(err).splitlines()
        assert lines[-2].strip() == text.replace("\n", " ").strip()
        assert lines[-1].index("^") - lines[-2].index(lines[-2].strip()) == position - (len(text) - len(text.lstrip()))


def test_absurd_networks_are_refused_before_allocating():
    text = "Input(3x224x224) 1048576c3w 1048576c3w"  # ~10^13 weights: allowed widths, absurd total
    start = time.perf_counter()
    with pytest.raises(NotationError, match=f"more than {MAX_PARAMS:,} parameters"):
        from_spec(text)
    with pytest.raises(NotationError, match="too large"):
        from_spec("1000000000c3w")
    assert time.perf_counter() - start < 1.0


def test_the_last_layer_name_in_messages_is_canonical():
    with pytest.raises(NotationError, match="'10fc' receives a 6x28x28"):
        from_spec("Input(1x32x32) 6c5w 10fc")


# -- printing modules -------------------------------------------------------------------------


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = self.pool(x)
        x = x.view(x.size(0), -1)
        return self.fc(torch.nn.functional.dropout(x, 0.2, self.training))


def test_to_spec_follows_functional_calls_and_nesting():
    text = to_spec(Functional(), input_size=(3, 8, 8))
    assert text == "Input(3x8x8)->(Conv)4c3w1s1p+bn->(MaxPool)2w2s->(Flat)64->(Dropout)0.2->5fc->(Output)"
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh()), nn.Flatten(), nn.Sequential(nn.Linear(8, 3), nn.ReLU()))
    assert to_spec(nested) == "Input(1)->(Conv)2c3w1s0p+tanh->(Flat)8->3fc+relu->(Output)"
    assert to_spec(nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.LocalResponseNorm(5, alpha=5e-4))) == (
        "Input(1)->(Conv)2c3w1s1p+none->(LRN)5n1k1e-4a0.75b->(Output)"
    )


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


@pytest.mark.parametrize(
    "module,message",
    [
        (Residual(), "module 'conv' (Conv2d): the output before it feeds 2 operations"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU()), "module '1' (GELU)"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)), "dilation"),
        (nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True)), "ceil_mode"),
        (nn.Sequential(nn.Conv2d(1, 2, (3, 5))), "not square"),
        (nn.Sequential(nn.Linear(4, 2)), "did not flatten"),
    ],
)
def test_to_spec_refuses_what_it_cannot_express(module, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_spec(module)


# -- the zoo -------------------------------------------------------------------------------------

#: The sequential networks of the zoo: every one must print and build back.
SEQUENTIAL = ("lenet5", "alexnet*", "vgg*", "plain*")
#: Networks with branches or layers the notation has no word for, one of each kind.
NOT_SEQUENTIAL = ("lenet5_paper", "googlenet", "resnet18", "densenet121")


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m, name):
        return isinstance(m, LRNLayer) or super().is_leaf_module(m, name)


def structure(m: nn.Module) -> list[tuple]:
    """Layer types and hyper-parameters in the order they run (independent of the printer)."""
    out: list[tuple] = []
    for node in _LeafTracer().trace(m).nodes:
        if node.op == "call_module":
            s = m.get_submodule(node.target)
            if isinstance(s, nn.Conv2d):
                out.append(("Conv2d", s.in_channels, s.out_channels, s.kernel_size, s.stride, s.padding, s.groups, s.bias is not None))
            elif isinstance(s, nn.Linear):
                out.append(("Linear", s.in_features, s.out_features, s.bias is not None))
            elif isinstance(s, (nn.MaxPool2d, nn.AvgPool2d)):
                out.append((type(s).__name__, s.kernel_size, s.stride, s.padding))
            elif isinstance(s, nn.AdaptiveAvgPool2d):
                size = s.output_size
                out.append(("AdaptiveAvgPool2d", tuple(size) if isinstance(size, (tuple, list)) else (size, size)))
            elif isinstance(s, (nn.BatchNorm1d, nn.BatchNorm2d)):
                out.append((type(s).__name__, s.num_features))
            elif isinstance(s, LRNLayer):
                out.append(("LRN", s.size, s.k, s.alpha, s.beta))
            elif isinstance(s, nn.Dropout):
                out.append(("Dropout", s.p))
            elif not isinstance(s, nn.Identity):
                out.append((type(s).__name__.lower(),))
        elif node.op in ("call_function", "call_method"):
            name = getattr(node.target, "__name__", node.target)
            if name not in ("size", "getattr", "getitem"):
                out.append((str(name).rstrip("_"),))
    return out


def _documented() -> dict[str, str]:
    """`name: TEXT` lines of the zoo section of docs/notation.md."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "notation.md").read_text()
    section = doc.split("## Every sequential zoo model", 1)[1]
    return dict(re.findall(r"^(\w+): (Input\S*)$", section, flags=re.M))


def _sequential_names() -> list[str]:
    return [n for n in convzoo.list_models() if any(fnmatch.fnmatchcase(n, p) for p in SEQUENTIAL)]


def test_the_zoo_has_its_sequential_networks():
    names = _sequential_names()
    assert "lenet5" in names
    missing = [n for n in ("alexnet", "alexnet_paper", "vgg_a", "vgg_a_lrn", "vgg_c", "vgg_e", "vgg16_bn") if n not in names]
    assert not missing, f"the zoo lacks its sequential networks: {missing}"


@pytest.mark.parametrize("name", _sequential_names())
def test_zoo_round_trip(name):
    with torch.device("meta"):
        model = convzoo.create_model(name)
        text = to_spec(model)
        rebuilt = from_spec(text)
    assert n_params(rebuilt) == n_params(model)
    assert structure(rebuilt) == structure(model)
    assert rebuilt.input_size == tuple(convzoo.model_info(name).default_input)
    assert to_spec(rebuilt) == text
    assert _documented().get(name) == text, "docs/notation.md must show what to_spec prints"


@pytest.mark.parametrize("name", NOT_SEQUENTIAL)
def test_zoo_networks_with_branches_are_refused_by_name(name):
    with torch.device("meta"):
        model = convzoo.create_model(name)
    with pytest.raises(SpecError, match=r"to_spec cannot (express|follow) .*'"):
        to_spec(model)


# -- the layer table (convzoo spec) --------------------------------------------------------------


def test_summary_of_the_lecture_comes_from_the_analysis_engine():
    result = summarize(CHAIN, input_size=(1, 32, 32))
    assert result["engine"] == "analysis"
    assert ["x".join(map(str, r["output_shape"])) for r in result["layers"]] == LECTURE_SHAPES
    assert [r["params"] for r in result["layers"]] == [156, 0, 2416, 0, 0, 48120, 10164, 850]
    assert result["total_params"] == 61_706
    # conv and fc multiply-adds: 117,600 + 240,000 + 48,000 + 10,080 + 840
    conv_fc = sum(r["macs"] for r in result["layers"] if r["type"] in ("Conv", "FC"))
    assert conv_fc == 416_520


def test_summary_of_a_grouped_lrn_network_agrees_with_the_shape_walk():
    text = "Input(3x67x67) 12c11w4s (LRN) 3w2s 16c5w1s2p2g+bn (Dropout)0.5 (GAP) (Flat)16 10fc"
    walk = check(parse(text))  # the pure-Python walk: shapes and parameters, no torch
    full = summarize(text)
    assert len(walk) == len(full["layers"])
    for a, b in zip(walk, full["layers"]):
        assert (list(a.output_shape), a.params) == (b["output_shape"], b["params"])
    assert full["layers"][3]["macs"] == 16 * 7 * 7 * 6 * 25  # grouped: 6 input maps per filter


def test_summary_has_one_mac_counter(monkeypatch):
    """No silent fallback: when the analysis engine fails, summarize fails with it."""
    import convzoo.analysis

    def broken(*args, **kwargs):
        raise RuntimeError("engine down")

    monkeypatch.setattr(convzoo.analysis, "analyze", broken)
    with pytest.raises(RuntimeError, match="engine down"):
        summarize(CHAIN, input_size=(1, 32, 32))
    with pytest.raises(ValueError, match="engine"):
        summarize(CHAIN, engine="shape-walk")


def test_public_names_and_the_default_size_hint():
    assert convzoo.from_spec is from_spec and convzoo.to_spec is to_spec
    with pytest.raises(NotationError, match="no input size was given, so 1x32x32 was used"):
        summarize("96c11w4s 3w2s 256c5w1s2p 3w2s 384c3w1s1p 3w2s")
    assert summarize("Input(3) 8c3w")["input_size"] == [3, 32, 32]
