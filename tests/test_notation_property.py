"""The notation under random text, as a fuzzer would try it (issue 15's proof), with a fixed,
derandomized budget so the suite's time and result do not vary (about 10 s here).

Text first (tests/test_notation_properties.py goes spec first): any text that parses prints
to a text that parses to the same network, in both printed forms, and printing is then a
fixed point; any text at all either parses or raises a `ConvzooError` subclass with a short
message and a caret position inside the text. Nothing else (no ValueError from `int()` on a
5,000-digit number, no RecursionError, no IndexError) may escape.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convzoo.errors import ConvzooError
from convzoo.notation import check, format_spec, parse

FIXED = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

#: Pieces of the grammar, so random text reaches deep into the parser.
TOKENS = st.sampled_from([
    "Input", "Input(1x28x28)", "Input(3x32x32)", "Input(3x224)", "(Conv)", "(MaxPool)", "(AvgPool)", "(Flat)",
    "(Output)", "(LRN)", "(BN)", "(ReLU)", "(Tanh)", "(Dropout)", "(GAP)", "(Adaptive)", "->", " ", "*", "x",
    "c", "w", "s", "p", "g", "fc", "k", "n", "a", "b", "e", ".", "-", "+", "(", ")", "\n", "6", "16", "5", "2",
    "0", "1", "3", "1e3", "0.5", "9" * 50, "9" * 5000, "6c5w1s2p", "2w2s", "3w2s1p", "10fc", "120fc", "(Conv)6c5w",
    "*3", "*100000",
])  # fmt: skip
GRAMMARISH = st.lists(TOKENS, max_size=25).map("".join)
#: Whole layers, so a good share of draws is a network (the round trip must not pass vacuously,
#: whatever order a Hypothesis release draws the token soup in).
LAYERS = st.sampled_from([
    "6c5w1s2p", "6c5w1s0p", "16c5w1s0p", "2w2s", "3w2s1p", "2w2s0p", "10fc", "120fc", "84fc", "(Conv)6c5w1s0p",
    "(MaxPool)2w2s", "(LRN)", "(ReLU)", "(Flat)", "64c3w1s1p", "(GAP)",
])  # fmt: skip
LAYERED = st.tuples(st.sampled_from(["", "Input(3x32x32) ", "Input(1x28x28)->"]),
                    st.lists(LAYERS, min_size=1, max_size=8), st.sampled_from([" ", "->"])).map(
    lambda t: t[0] + t[2].join(t[1]))  # fmt: skip
NETWORKISH = st.one_of(GRAMMARISH, LAYERED)
ANY_TEXT = st.text(max_size=80)


def _parse_or_refuse(text: str):
    """The spec of `text`, or None when it is refused the documented way."""
    try:
        spec = parse(text)
        check(spec, input_size=(3, 32, 32), text=text)
        return spec
    except ConvzooError as err:
        message = str(err)
        assert message and len(message) < 1000, len(message)
        position = getattr(err, "position", None)
        if position is not None:
            assert 0 <= position <= len(text)
        return None


@FIXED
@given(GRAMMARISH)
def test_grammar_pieces_parse_or_are_refused_cleanly(text):
    _parse_or_refuse(text)


@FIXED
@given(ANY_TEXT)
def test_any_text_parses_or_is_refused_cleanly(text):
    _parse_or_refuse(text)


@FIXED
@given(NETWORKISH)
def test_text_that_parses_round_trips_through_the_printer(text):
    try:
        spec = parse(text)
    except ConvzooError:
        return
    for form in ("chain", "short"):
        printed = format_spec(spec, form=form)
        again = parse(printed)
        assert again == spec, (text, printed)
        assert format_spec(again, form=form) == printed  # printing is a fixed point


def test_the_fixed_budget_reaches_valid_networks():
    """The round trip above must not pass vacuously: the same derandomized draws parse often."""
    parsed: list[str] = []

    @FIXED
    @given(NETWORKISH)
    def collect(text):
        try:
            parse(text)
        except ConvzooError:
            return
        parsed.append(text)

    collect()
    assert len(parsed) >= 20, len(parsed)
    assert any("c" in t and "w" in t for t in parsed), parsed[:10]
