"""Tokens and parser of the compact notation (text -> `NetworkSpec`). Pure Python, no torch.

The grammar (EBNF, with examples, in docs/notation.md) in short: layers are separated by
`->` or white space; a layer is an optional bracketed tag, then numbers each followed by
its unit letter(s) (`6c5w1s0p`, `2w2s`, `120fc`), then `+modifiers` (`+bn`, `+tanh`), then
an optional repeat count (`*2`: the same layer twice, as VGG's "conv3-64 conv3-64").
Every error is a `NotationError` carrying the text and the position of the fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import NotationError
from .spec import (
    ACTIVATIONS,
    FC,
    LRN,
    LRN_DEFAULTS,
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_SIDE,
    MAX_WIDTH,
    Activation,
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    Layer,
    NetworkSpec,
    Pool,
)

# A number: optional minus (so that "-3c" is refused as negative, not as a stray '-'),
# digits, an optional fraction and exponent ("1e-4" for LRN's alpha).
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z]+")

#: Bracketed tags, by lower-case name -> canonical kind.
TAGS = {
    "conv": "conv",
    "maxpool": "maxpool",
    "avgpool": "avgpool",
    "flat": "flat",
    "flatten": "flat",
    "fc": "fc",
    "lrn": "lrn",
    "dropout": "dropout",
    "bn": "bn",
    "batchnorm": "bn",
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "gap": "gap",
    "adaptiveavgpool": "adaptive",
    "output": "output",
}
_TAG_LIST = "(Conv), (MaxPool), (AvgPool), (Flat), (FC), (LRN), (Dropout), (BN), (ReLU), (Tanh), (Sigmoid), (GAP), (AdaptiveAvgPool), (Output)"
_MODIFIERS = ("bn", "bias", "nobias", *ACTIVATIONS, "none")
_UNITS = ("c", "w", "s", "p", "g", "fc", "n", "k", "a", "b", "x")
_LAYER_FORMS = "a layer such as 6c5w1s0p (conv), 2w2s (pooling), 120fc, (Flat)400 or a tag like (Dropout)0.5"


@dataclass(frozen=True)
class Token:
    """One lexical item: `kind` is num, word, tag, mod or sep; `pos` its offset in the text."""

    kind: str
    text: str
    pos: int
    arrows: int = 0  # for sep: how many '->' it contains


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens; an unknown character raises `NotationError`."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace() or text.startswith("->", i):
            start, arrows = i, 0
            while i < n:
                if text[i].isspace():
                    i += 1
                elif text.startswith("->", i):
                    arrows += 1
                    if arrows > 1:
                        raise NotationError("empty layer between two '->': expected " + _LAYER_FORMS, text, i)
                    i += 2
                else:
                    break
            tokens.append(Token("sep", text[start:i], start, arrows))
            continue
        m = _NUMBER.match(text, i)
        if m:
            tokens.append(Token("num", m.group(), i))
            i = m.end()
            continue
        m = _WORD.match(text, i)
        if m:
            tokens.append(Token("word", m.group(), i))
            i = m.end()
            continue
        if ch == "(":
            close = text.find(")", i)
            inner = text[i + 1 : close] if close >= 0 else ""
            if close < 0 or not re.fullmatch(r"[A-Za-z0-9.]*", inner):
                raise NotationError("unclosed '(': expected a tag such as " + _TAG_LIST, text, i)
            tokens.append(Token("tag", inner, i))
            i = close + 1
            continue
        if ch == "*":
            m = re.compile(r"-?[0-9]+").match(text, i + 1)
            if not m:
                raise NotationError("expected a count after '*', e.g. (Conv)64c3w1s1p*2", text, i + 1)
            tokens.append(Token("rep", m.group(), i))
            i = m.end()
            continue
        if ch == "+":
            m = _WORD.match(text, i + 1)
            if not m:
                raise NotationError(
                    f"expected a modifier after '+': one of {', '.join(_MODIFIERS)}", text, i + 1
                )
            tokens.append(Token("mod", m.group(), i))
            i = m.end()
            continue
        what = "'-' (an arrow is '->')" if ch == "-" else repr(ch)
        raise NotationError(f"unexpected character {what}: expected " + _LAYER_FORMS, text, i)
    return tokens


def _split_words(tokens: list[Token], text: str) -> list[list[Token]]:
    """Group tokens into layers at separators; an arrow with no layer on one side is an error."""
    words: list[list[Token]] = []
    current: list[Token] = []
    for tok in tokens:
        if tok.kind != "sep":
            current.append(tok)
            continue
        if current:
            words.append(current)
            current = []
        elif tok.arrows:
            raise NotationError("expected a layer before '->'", text, tok.pos + tok.text.index("->"))
        if tok.arrows and tok is tokens[-1]:
            raise NotationError("expected a layer after '->': " + _LAYER_FORMS, text, len(text))
    if current:
        words.append(current)
    return words


@dataclass
class _Quantity:
    value: str
    unit: str | None
    pos: int
    unit_pos: int


class _WordParser:
    """Parses the tokens of one layer."""

    def __init__(self, tokens: list[Token], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.i = 0

    def error(self, message: str, pos: int) -> NotationError:
        return NotationError(message, self.text, pos)

    def end_pos(self) -> int:
        last = self.tokens[-1]
        return last.pos + len(last.text) + {"tag": 2, "mod": 1, "rep": 1}.get(last.kind, 0)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def quantities(self) -> list[_Quantity]:
        """Numbers each with the unit word that follows it (None for a trailing bare number)."""
        out: list[_Quantity] = []
        while (tok := self.peek()) is not None and tok.kind in ("num", "word"):
            if tok.kind == "word":
                if tok.text.lower() in _UNITS:
                    raise self.error(f"missing number before '{tok.text}'", tok.pos)
                raise self.error(f"unknown token '{tok.text}': expected " + _LAYER_FORMS, tok.pos)
            self.i += 1
            nxt = self.peek()
            if nxt is not None and nxt.kind == "word":
                self.i += 1
                out.append(_Quantity(tok.text, nxt.text, tok.pos, nxt.pos))
            else:
                out.append(_Quantity(tok.text, None, tok.pos, tok.pos + len(tok.text)))
        return out

    def modifiers(self) -> list[Token]:
        mods: list[Token] = []
        while (tok := self.peek()) is not None and tok.kind == "mod":
            self.i += 1
            mods.append(tok)
        return mods

    def expect_end(self, what: str) -> None:
        tok = self.peek()
        if tok is not None:
            shown = f"({tok.text})" if tok.kind == "tag" else ("+" + tok.text if tok.kind == "mod" else tok.text)
            shown = "*" + shown if tok.kind == "rep" else shown
            raise self.error(
                f"unexpected '{shown}' after {what}: separate layers with '->' or a space", tok.pos
            )

    # -- values ------------------------------------------------------------------------------

    def integer(self, q: _Quantity, what: str, *, minimum: int = 1, maximum: int = MAX_WIDTH) -> int:
        if not re.fullmatch(r"-?[0-9]+", q.value):
            raise self.error(f"{what} must be a whole number, got {_clip(q.value)}", q.pos)
        digits = q.value.lstrip("-").lstrip("0")
        # compare digit counts first: int() of a huge digit string is slow (and capped)
        if len(digits) > len(str(maximum)):
            value = -(10 ** len(str(maximum))) if q.value.startswith("-") else 10 ** len(str(maximum))
            if value > 0:
                raise self.error(f"{what} of {_clip(q.value, 20)} ({len(digits):,} digits) is too large: at most {maximum:,}", q.pos)
        else:
            value = int(q.value)
        if value < minimum:
            kind = "positive" if minimum == 1 else f"at least {minimum}"
            raise self.error(f"{what} must be {kind}, got {_clip(q.value)}", q.pos)
        if value > maximum:
            raise self.error(f"{what} of {value:,} is too large: at most {maximum:,}", q.pos)
        return value

    def real(self, q: _Quantity, what: str, *, low: float = 0.0, high: float | None = None, open_high: bool = False) -> float:
        value = float(q.value)
        too_high = high is not None and (value >= high if open_high else value > high)
        if value != value or value < low or too_high or value in (float("inf"), float("-inf")):
            bound = f"in [{low:g}, {high:g}{')' if open_high else ']'}" if high is not None else f"at least {low:g}"
            raise self.error(f"{what} must be {bound}, got {_clip(q.value)}", q.pos)
        return value

    def units(self, qs: list[_Quantity], allowed: dict[str, str], layer: str) -> dict[str, _Quantity]:
        seen: dict[str, _Quantity] = {}
        for q in qs:
            if q.unit is None:
                raise self.error(
                    f"missing unit after {q.value} in {layer}: expected one of "
                    + ", ".join(f"{u} ({name})" for u, name in allowed.items()),
                    q.unit_pos,
                )
            unit = q.unit
            if unit not in allowed:
                raise self.error(
                    f"unknown unit '{unit}' in {layer}: expected one of "
                    + ", ".join(f"{u} ({name})" for u, name in allowed.items()),
                    q.unit_pos,
                )
            if unit in seen:
                raise self.error(f"'{unit}' ({allowed[unit]}) is given twice in {layer}", q.unit_pos)
            seen[unit] = q
        return seen

    def layer_modifiers(self, mods: list[Token], layer: str, *, bn_ok: bool = True) -> tuple[bool, bool | None, str | None, bool]:
        """(bn, bias or None for the default, activation, activation given)."""
        bn, bias, act, act_given = False, None, None, False
        for tok in mods:
            name = tok.text.lower()
            if name not in _MODIFIERS:
                raise self.error(f"unknown modifier '+{tok.text}' on {layer}: expected one of {', '.join(_MODIFIERS)}", tok.pos)
            if name == "bn":
                if bn:
                    raise self.error(f"'+bn' is given twice on {layer}", tok.pos)
                bn = True
            elif name in ("bias", "nobias"):
                if bias is not None:
                    raise self.error(f"bias is set twice on {layer}", tok.pos)
                bias = name == "bias"
            else:
                if act_given:
                    raise self.error(f"two activations on {layer}: give one of {', '.join((*ACTIVATIONS, 'none'))}", tok.pos)
                act_given = True
                act = None if name == "none" else name
        return bn, bias, act, act_given

    # -- layers ------------------------------------------------------------------------------

    def repeat(self) -> int:
        """The layer's `*N` repeat count (1 without one); it must end the layer."""
        for j, tok in enumerate(self.tokens):
            if tok.kind == "rep" and j != len(self.tokens) - 1:
                raise self.error("a repeat count '*N' ends its layer, e.g. (Conv)64c3w1s1p+bn*2", tok.pos)
        last = self.tokens[-1]
        if last.kind != "rep":
            return 1
        if len(self.tokens) == 1:
            raise self.error("a repeat count needs a layer before it, e.g. (Conv)64c3w1s1p*2", last.pos)
        self.tokens = self.tokens[:-1]
        return self.integer(_Quantity(last.text, None, last.pos + 1, last.pos + 1), "the repeat count", maximum=MAX_LAYERS)

    def parse(self) -> tuple[str, Layer | tuple[int | None, tuple[int, int] | None] | None, bool]:
        """Returns (kind, layer or Input dims, whether an fc activation was given)."""
        first = self.tokens[0]
        if first.kind == "word" and first.text.lower() == "input":
            return "input", self.parse_input(), False
        tag = None
        start = first.pos
        if first.kind == "tag":
            tag = TAGS.get(first.text.lower())
            if tag is None:
                raise self.error(f"unknown tag '({first.text})': expected one of {_TAG_LIST}, or Input", first.pos)
            self.i = 1
        if tag == "output":
            self.expect_end("(Output)")
            return "output", None, False
        qs = self.quantities()
        mods = self.modifiers()
        self.expect_end(self.describe(tag, qs))
        if tag in ("bn", "gap", "relu", "tanh", "sigmoid"):
            self.no_body(first, qs, mods)
            if tag == "bn":
                return "layer", BatchNorm(pos=start), False
            if tag == "gap":
                return "layer", AdaptiveAvgPool(1, 1, pos=start), False
            return "layer", Activation(tag, pos=start), False
        if tag is None:
            if not qs:
                tok = self.tokens[0]
                if tok.kind == "mod":
                    raise self.error("a modifier must follow a conv or fc layer, e.g. 64c3w1s1p+bn", tok.pos)
                raise self.error("unknown token: expected " + _LAYER_FORMS, tok.pos)
            unit = qs[0].unit
            if unit is None and len(qs) == 1:
                tag = "flat"  # a bare number: the flattened size, as in "... 2w2s 400 -> 120fc"
            elif unit == "c":
                tag = "conv"
            elif unit == "w":
                tag = "maxpool"
            elif unit == "fc":
                tag = "fc"
            elif unit is None:
                raise self.error(f"missing unit after {qs[0].value}: expected c (filters), w (window) or fc", qs[0].unit_pos)
            else:
                raise self.error(
                    f"unknown unit '{unit}': a layer starts with {{C}}c (conv), {{K}}w (pooling) or {{N}}fc", qs[0].unit_pos
                )
        if tag == "conv":
            return "layer", self.conv(qs, mods, start), False
        if tag in ("maxpool", "avgpool"):
            return "layer", self.pool(tag, qs, mods, start), False
        if tag == "fc":
            return self.fc(qs, mods, start)
        self.no_mods(mods, tag)
        if tag == "flat":
            if not qs:
                return "layer", Flatten(pos=start), False
            self.single(qs, "(Flat)", "the flattened size, e.g. (Flat)400")
            # a product C*H*W, so above MAX_WIDTH; more than MAX_PARAMS could feed no fc anyway
            return "layer", Flatten(self.integer(qs[0], "the flattened size", maximum=MAX_PARAMS), pos=start), False
        if tag == "dropout":
            if not qs:
                return "layer", Dropout(pos=start), False
            self.single(qs, "(Dropout)", "the rate, e.g. (Dropout)0.5")
            return "layer", Dropout(self.real(qs[0], "the dropout rate", high=1.0, open_high=True), pos=start), False
        if tag == "lrn":
            return "layer", self.lrn(qs, start), False
        if tag == "adaptive":
            return "layer", self.adaptive(first, qs, start), False
        raise AssertionError(tag)  # pragma: no cover

    def describe(self, tag: str | None, qs: list[_Quantity]) -> str:
        body = "".join(q.value + (q.unit or "") for q in qs)
        shown = (f"({self.tokens[0].text})" if tag else "") + body
        return f"'{shown}'" if shown else "the layer"

    def no_body(self, first: Token, qs: list[_Quantity], mods: list[Token]) -> None:
        if qs:
            raise self.error(f"({first.text}) takes no numbers", qs[0].pos)
        self.no_mods(mods, f"({first.text})")

    def no_mods(self, mods: list[Token], layer: str | None) -> None:
        if mods:
            what = f"({layer})" if layer and not layer.startswith("(") else layer
            raise self.error(f"{what} takes no modifiers; '+{mods[0].text}' belongs on a conv or fc layer", mods[0].pos)

    def single(self, qs: list[_Quantity], layer: str, expected: str) -> None:
        if len(qs) != 1 or qs[0].unit is not None:
            bad = qs[0] if qs[0].unit is not None else qs[1]
            raise self.error(f"{layer} takes one number, {expected}", bad.unit_pos if bad is qs[0] else bad.pos)

    def conv(self, qs: list[_Quantity], mods: list[Token], start: int) -> Conv:
        if not qs:
            raise self.error("missing number: (Conv) needs filters and a window, e.g. (Conv)6c5w1s0p", self.end_pos())
        if qs[0].unit != "c":
            raise self.error(
                f"a convolution starts with its number of filters, e.g. 6c5w1s0p; got '{qs[0].value}{qs[0].unit or ''}'",
                qs[0].pos,
            )
        if len(qs) < 2 or qs[1].unit != "w":
            at = qs[1].pos if len(qs) > 1 else qs[0].unit_pos + 1
            raise self.error(f"missing window: expected {{K}}w after '{qs[0].value}c', e.g. {qs[0].value}c5w", at)
        units = self.units(qs[2:], {"s": "stride", "p": "padding", "g": "groups"}, "a convolution")
        out = self.integer(qs[0], "the number of filters")
        kernel = self.integer(qs[1], "the window", maximum=MAX_SIDE)
        stride = self.integer(units["s"], "the stride", maximum=MAX_SIDE) if "s" in units else 1
        padding = self.integer(units["p"], "the padding", minimum=0, maximum=MAX_SIDE) if "p" in units else 0
        groups = self.integer(units["g"], "the number of groups") if "g" in units else 1
        if out % groups:
            raise self.error(f"{groups} groups must divide the {out} filters", units["g"].pos)
        bn, bias, act, given = self.layer_modifiers(mods, "a convolution")
        if not given:
            act = "relu"
        return Conv(out, kernel, stride, padding, groups, bn, (not bn) if bias is None else bias, act, pos=start)

    def pool(self, tag: str, qs: list[_Quantity], mods: list[Token], start: int) -> Pool:
        name = "(MaxPool)" if tag == "maxpool" else "(AvgPool)"
        if not qs:
            raise self.error(f"missing number: {name} needs a window, e.g. {name}2w2s", self.end_pos())
        if qs[0].unit != "w":
            raise self.error(f"pooling starts with its window, e.g. 2w2s; got '{qs[0].value}{qs[0].unit or ''}'", qs[0].pos)
        units = self.units(qs[1:], {"s": "stride", "p": "padding"}, "pooling")
        self.no_mods(mods, "pooling")
        kernel = self.integer(qs[0], "the window", maximum=MAX_SIDE)
        stride = self.integer(units["s"], "the stride", maximum=MAX_SIDE) if "s" in units else 1
        padding = self.integer(units["p"], "the padding", minimum=0, maximum=MAX_SIDE) if "p" in units else 0
        if 2 * padding > kernel:  # PyTorch's rule: pad at most half the window
            raise self.error(f"pooling padding {padding} is more than half the window {kernel}", units["p"].pos)
        return Pool("max" if tag == "maxpool" else "avg", kernel, stride, padding, pos=start)

    def fc(self, qs: list[_Quantity], mods: list[Token], start: int) -> tuple[str, FC, bool]:
        if not qs:
            raise self.error("missing number: (FC) needs its size, e.g. (FC)120fc", self.end_pos())
        if len(qs) != 1 or qs[0].unit != "fc":
            bad = qs[0] if qs[0].unit != "fc" else qs[1]
            raise self.error(f"a fully connected layer is written {{N}}fc, e.g. 120fc; got '{bad.value}{bad.unit or ''}'", bad.pos)
        out = self.integer(qs[0], "the number of units")
        bn, bias, act, given = self.layer_modifiers(mods, "a fully connected layer")
        return "layer", FC(out, bn, (not bn) if bias is None else bias, act, pos=start), given

    def lrn(self, qs: list[_Quantity], start: int) -> LRN:
        units = self.units(qs, {"n": "size", "k": "k", "a": "alpha", "b": "beta"}, "(LRN)")
        size, k, alpha, beta = LRN_DEFAULTS
        if "n" in units:
            size = self.integer(units["n"], "the LRN size", maximum=MAX_WIDTH)
        if "k" in units:
            k = self.real(units["k"], "LRN's k")
        if "a" in units:
            alpha = self.real(units["a"], "LRN's alpha")
        if "b" in units:
            beta = self.real(units["b"], "LRN's beta")
        return LRN(size, k, alpha, beta, pos=start)

    def adaptive(self, first: Token, qs: list[_Quantity], start: int) -> AdaptiveAvgPool:
        if not qs:
            raise self.error("missing number: (AdaptiveAvgPool) needs its output size, e.g. (AdaptiveAvgPool)6x6", self.end_pos())
        if len(qs) == 1 and qs[0].unit is None:
            side = self.integer(qs[0], "the output size", maximum=MAX_SIDE)
            return AdaptiveAvgPool(side, side, pos=start)
        if len(qs) == 2 and qs[0].unit == "x" and qs[1].unit is None:
            h = self.integer(qs[0], "the output height", maximum=MAX_SIDE)
            w = self.integer(qs[1], "the output width", maximum=MAX_SIDE)
            return AdaptiveAvgPool(h, w, pos=start)
        raise self.error("(AdaptiveAvgPool) takes an output size HxW, e.g. (AdaptiveAvgPool)6x6", qs[0].pos)

    def parse_input(self) -> tuple[int | None, tuple[int, int] | None]:
        first = self.tokens[0]
        if len(self.tokens) == 1:
            return None, None
        tag = self.tokens[1]
        if tag.kind != "tag" or tag.pos != first.pos + len(first.text):
            raise self.error("Input is followed by its size in brackets, e.g. Input(1x32x32), then '->'", tag.pos)
        if len(self.tokens) > 2:
            nxt = self.tokens[2]
            raise self.error(f"unexpected '{nxt.text}' after Input: separate layers with '->' or a space", nxt.pos)
        inner = tag.text
        m = re.fullmatch(r"([0-9]+)(?:x([0-9]+)x([0-9]+))?", inner)
        if not m:
            raise self.error(f"Input size must be C or CxHxW, e.g. Input(1x32x32); got '({inner})'", tag.pos + 1)
        sub = _WordParser(self.tokens, self.text)
        at = tag.pos + 1
        c = sub.integer(_Quantity(m.group(1), None, at, at), "the number of input channels")
        if m.group(2) is None:
            return c, None
        at_h = at + len(m.group(1)) + 1
        h = sub.integer(_Quantity(m.group(2), None, at_h, at_h), "the input height", maximum=MAX_SIDE)
        at_w = at_h + len(m.group(2)) + 1
        w = sub.integer(_Quantity(m.group(3), None, at_w, at_w), "the input width", maximum=MAX_SIDE)
        return c, (h, w)


#: Longest notation text accepted (room for MAX_LAYERS long layers).
MAX_TEXT = 100 * (MAX_LAYERS + 2)


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "..."


def parse(text: str) -> NetworkSpec:
    """Parse the compact notation into a `NetworkSpec` (syntax and per-layer values only).

    Shape checks (windows against the input, the declared flatten size, fc before
    flatten) need the input size and are done by `convzoo.notation.check`.
    Raises `NotationError` with the position of the first fault.
    """
    if not isinstance(text, str):
        raise NotationError(f"the notation must be a string, got {type(text).__name__}")
    # refuse absurd texts before tokenizing them (time and memory grow with the text)
    if len(text) > MAX_TEXT:
        raise NotationError(f"the notation is {len(text):,} characters long; at most {MAX_TEXT:,} are accepted")
    arrows = text.count("->")
    if arrows > MAX_LAYERS + 1:  # Input and (Output) are words too, not layers
        raise NotationError(f"more than {MAX_LAYERS:,} layers ({arrows + 1:,} words between '->')")
    words = _split_words(tokenize(text), text)
    if not words:
        raise NotationError("empty network: expected " + _LAYER_FORMS, text, 0)
    in_channels: int | None = None
    input_hw: tuple[int, int] | None = None
    layers: list[Layer] = []
    fc_act_given: list[bool] = []
    ended_at: int | None = None
    for index, word in enumerate(words):
        if ended_at is not None:
            raise NotationError(
                f"nonsense after the end: (Output) ends the network, found '{_clip(text[word[0].pos:].strip())}'",
                text,
                word[0].pos,
            )
        parser = _WordParser(word, text)
        count = parser.repeat()
        kind, value, given = parser.parse()
        if count != 1 and kind != "layer":
            raise NotationError(f"{'Input' if kind == 'input' else '(Output)'} cannot be repeated", text, word[-1].pos)
        if kind == "layer" and len(layers) + count > MAX_LAYERS:  # before expanding: "64c3w*1000000000" must not eat memory
            raise NotationError(f"more than {MAX_LAYERS:,} layers", text, word[0].pos)
        if kind == "input":
            if index != 0:
                raise NotationError("Input may only begin the network", text, word[0].pos)
            in_channels, input_hw = value  # type: ignore[misc]
        elif kind == "output":
            if not layers:
                raise NotationError("(Output) before any layer: expected " + _LAYER_FORMS, text, word[0].pos)
            ended_at = word[0].pos
        else:
            layers.extend([value] * count)  # type: ignore[list-item]
            fc_act_given.extend([given] * count)
    if not layers:
        raise NotationError("no layers after Input: expected " + _LAYER_FORMS, text, len(text))
    # ReLU after every fc but the last one, unless a modifier said otherwise
    last_fc = max((i for i, layer in enumerate(layers) if isinstance(layer, FC)), default=None)
    for i, layer in enumerate(layers):
        if isinstance(layer, FC) and not fc_act_given[i]:
            act = None if i == last_fc else "relu"
            layers[i] = FC(layer.out_features, layer.bn, layer.bias, act, pos=layer.pos)
    return NetworkSpec(tuple(layers), in_channels, input_hw)
