"""Coverage-guided fuzzing of the notation parser with atheris (libFuzzer), for a fixed budget.

The property is the suite's (tests/test_notation_property.py), here under a real fuzzer: any
text either parses, prints in both forms to text that parses to the same network, and
`check` either passes or refuses it; or it raises a `ConvzooError` subclass whose message is
under 2,000 characters. Anything else (a ValueError, RecursionError, IndexError, a hang) is a
crash: libFuzzer stops and writes the input to crash-*.

Run: `.venv/bin/pip install atheris` (the `fuzz` extra), then
`.venv/bin/python benchmarks/fuzz_notation.py [-max_total_time=300] [-runs=N] [corpus_dir]`:
the usual libFuzzer flags; default 300 s. The grammar's tokens are given to libFuzzer as a
dictionary so mutations reach deep into the parser. At the end it prints the figure
docs/reliability.md records: libFuzzer's closing "Done N runs in S second(s)" with no crash
report before it is "N tried, N clean" (a crash stops the run at once, with its input).
"""

from __future__ import annotations

import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["convzoo"]):
    from convzoo.errors import ConvzooError
    from convzoo.notation import check, format_spec, parse

TOKENS = ["Input", "Input(1x28x28)", "Input(3x32x32)", "(Conv)", "(MaxPool)", "(AvgPool)", "(Flat)", "(Output)",
          "(LRN)", "(BN)", "(ReLU)", "(Tanh)", "(Dropout)", "(GAP)", "(Adaptive)", "->", "*", "x", "c", "w", "s",
          "p", "g", "fc", "6c5w1s2p", "2w2s", "3w2s1p", "10fc", "120fc", "16c5w1s0p", "9" * 30]  # fmt: skip


def one_input(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(4096)
    try:
        spec = parse(text)
    except ConvzooError as err:
        assert 0 < len(str(err)) < 2000, len(str(err))
        return
    for form in ("chain", "short"):
        printed = format_spec(spec, form=form)
        assert parse(printed) == spec, (text, printed)
    try:
        check(spec, input_size=(3, 32, 32), text=text)
    except ConvzooError as err:
        assert 0 < len(str(err)) < 2000, len(str(err))


def main() -> None:
    argv = list(sys.argv)
    if not any(a.startswith("-max_total_time") or a.startswith("-runs") for a in argv[1:]):
        argv.append("-max_total_time=300")
    with tempfile.NamedTemporaryFile("w", suffix=".dict", delete=False) as fh:
        fh.write("".join(f'"{t}"\n' for t in TOKENS))
    argv.append(f"-dict={fh.name}")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
