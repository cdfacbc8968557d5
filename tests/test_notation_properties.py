"""Property tests of the notation: print/parse round trips and a parser that never crashes."""

from __future__ import annotations

from dataclasses import replace

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convzoo.errors import NotationError
from convzoo.notation import (
    FC,
    LRN,
    MAX_PARAMS,
    MAX_SIDE,
    MAX_WIDTH,
    Activation,
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    NetworkSpec,
    Pool,
    check,
    format_spec,
    from_spec,
    parse,
)
from convzoo.notation.printer import module_to_spec

ACTS = st.sampled_from(["relu", "tanh", "sigmoid", None])
REALS = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
RATES = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)


@st.composite
def networks(draw: st.DrawFn, *, small: bool = False) -> NetworkSpec:
    """A valid network: map layers, then optionally a flatten and fc layers.

    `small` keeps widths tiny and the spec buildable without a spatial input size (flatten
    sizes declared where an fc needs them, as `to_spec` writes them), so it can be built.
    """
    width = st.integers(1, 8) if small else st.integers(1, MAX_WIDTH)
    side = st.integers(1, 5) if small else st.integers(1, MAX_SIDE)
    in_channels = draw(st.sampled_from([None, 1, 2, 3]) if small else st.one_of(st.none(), width))
    channels = in_channels or 1
    input_hw = None if small or in_channels is None or draw(st.booleans()) else (draw(side), draw(side))
    known: tuple[int, int] | None = None  # spatial size, known after an adaptive pool
    layers: list = []
    for _ in range(draw(st.integers(0 if not small else 1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "lrn", "bn", "act", "drop", "adaptive", "again"]))
        if kind == "again":  # the same layer again, so that runs print as `layer*N`
            if layers and known is None:
                layers.append(layers[-1])
            continue
        if kind in ("conv", "pool"):
            # once the spatial size is known (after an adaptive pool) the window must fit it
            pad = draw(st.integers(0, 3))
            k = draw(side if known is None else st.integers(1, min(known) + 2 * pad))
            stride = draw(side)
            if kind == "pool":
                pad = min(pad, k // 2)
                k = min(k, min(known) + 2 * pad) if known else k
            if known is not None:
                known = ((known[0] + 2 * pad - k) // stride + 1, (known[1] + 2 * pad - k) // stride + 1)
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2, 4) if channels % g == 0]))
            out = groups * draw(st.integers(1, 4) if small else st.integers(1, MAX_WIDTH // groups))
            layers.append(Conv(out, k, stride, pad, groups, draw(st.booleans()), draw(st.booleans()), draw(ACTS)))
            channels = out
        elif kind == "pool":
            layers.append(Pool(draw(st.sampled_from(["max", "avg"])), k, stride, pad))
        elif kind == "lrn":
            layers.append(LRN(draw(st.integers(1, 7)), draw(REALS), draw(REALS), draw(REALS)))
        elif kind == "bn":
            layers.append(BatchNorm())
        elif kind == "act":
            layers.append(Activation(draw(st.sampled_from(["relu", "tanh", "sigmoid"]))))
        elif kind == "drop":
            layers.append(Dropout(draw(RATES)))
        else:
            h, w = draw(side), draw(side)
            layers.append(AdaptiveAvgPool(h, w))
            known = (h, w)
    size = channels * known[0] * known[1] if known else draw(width)
    if (draw(st.booleans()) or not layers) and size <= MAX_PARAMS:
        tail: list = []
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["fc", "fc", "bn", "act", "drop", "again"]))
            if kind == "again":
                if tail:
                    tail.append(tail[-1])
            elif kind == "fc":
                tail.append(FC(draw(width), draw(st.booleans()), draw(st.booleans()), draw(ACTS)))
            elif kind == "bn":
                tail.append(BatchNorm())
            elif kind == "act":
                tail.append(Activation(draw(st.sampled_from(["relu", "tanh", "sigmoid"]))))
            else:
                tail.append(Dropout(draw(RATES)))
        # an fc or batch norm needs the size; the printer writes it exactly then
        sized = any(isinstance(layer, (FC, BatchNorm)) for layer in tail)
        layers.append(Flatten(size if sized or (not small and draw(st.booleans())) else None))
        layers.extend(tail)
    return NetworkSpec(tuple(layers), in_channels, input_hw)


@settings(max_examples=200, deadline=None)
@given(networks(), st.sampled_from(["chain", "short"]))
def test_print_then_parse_gives_the_same_spec(spec, form):
    text = format_spec(spec, form=form)
    assert parse(text) == spec, text


def _canonical(layers: tuple) -> bool:
    """A bn or activation right after a conv/fc that could absorb it prints as part of it."""
    for prev, layer in zip(layers, layers[1:]):
        if isinstance(prev, (Conv, FC)) and prev.act is None:
            if isinstance(layer, Activation) or (isinstance(layer, BatchNorm) and not prev.bn):
                return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(networks(small=True).filter(lambda s: _canonical(s.layers)))
def test_build_then_print_gives_the_same_spec(spec):
    with torch.device("meta"):
        net = from_spec(spec)
    assert module_to_spec(net).layers == spec.layers, format_spec(spec)


GRAMMAR_CHARS = "0123456789cwspgfxnkab.e-+> ()\nInputConvMaxPoolAvgFlatFCLRNDropoutBNReLUTanhSigmoidGAPAdaptiveOutput"


def _must_not_crash(text: str) -> None:
    try:
        spec = parse(text)
        check(spec, input_size=(3, 32, 32), text=text)
    except NotationError as err:
        assert err.message and str(err)
        if err.position is not None:
            assert 0 <= err.position <= len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=GRAMMAR_CHARS, max_size=60))
def test_grammar_like_strings_never_crash(text):
    _must_not_crash(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_any_string_never_crashes(text):
    _must_not_crash(text)


@settings(max_examples=150, deadline=None)
@given(networks(), st.data())
def test_mutated_valid_text_never_crashes(spec, data):
    text = format_spec(spec, form=data.draw(st.sampled_from(["chain", "short"])))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        ch = data.draw(st.sampled_from(GRAMMAR_CHARS))
        if op == "insert":
            text = text[:i] + ch + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + ch + text[i + 1 :]
    _must_not_crash(text)


def test_the_generator_reaches_every_layer_kind():
    seen: set[str] = set()
    runs: list[str] = []

    @settings(max_examples=80, deadline=None, database=None, derandomize=True)
    @given(networks())
    def collect(spec):
        seen.update(type(layer).__name__ for layer in spec.layers)
        if "*" in format_spec(spec):
            runs.append(format_spec(spec))

    collect()
    assert runs, "no run of equal layers was generated"
    assert seen >= {"Conv", "Pool", "FC", "Flatten", "LRN", "Dropout", "BatchNorm", "Activation", "AdaptiveAvgPool"}


def test_replace_keeps_positions_out_of_equality():
    a = parse("6c5w 2w2s").layers[1]
    assert a.pos == 5 and replace(a, pos=0) == a
