"""One `--input` parser (convzoo.cli_args) for every command: the same forms, the same message."""

from __future__ import annotations

import json

import pytest

from convzoo.cli import main
from convzoo.cli_args import INPUT_SIZE_ERROR, input_size_parts, parse_input_size
from convzoo.errors import ConfigError


@pytest.mark.parametrize("text, parts", [
    ("224", (None, 224, 224)),
    ("224x200", (None, 224, 200)),
    ("3x224x224", (3, 224, 224)),
    ("1X32X32", (1, 32, 32)),
    ("3×64×48", (3, 64, 48)),
    ("3*8*8", (3, 8, 8)),
    (" 3 x 32 x 32 ", (3, 32, 32)),
])  # fmt: skip
def test_the_three_forms(text, parts):
    assert input_size_parts(text) == parts


@pytest.mark.parametrize("text", ["", "x", "abc", "3x", "x224", "3x0x224", "0", "3x-1x5", "3x224x224x1", "+3",
                                  "2.5", "3x2x", "٣"])  # fmt: skip
def test_bad_values_get_the_one_message(text):
    with pytest.raises(ConfigError) as err:
        input_size_parts(text)
    assert str(err.value) == INPUT_SIZE_ERROR.format(text=text)


def test_short_forms_take_the_given_channels():
    assert parse_input_size("224") == (3, 224, 224)
    assert parse_input_size("32x28", channels=1) == (1, 32, 28)
    assert parse_input_size("2x32x28", channels=1) == (2, 32, 28)  # the text's channels win


def test_the_analysis_parser_is_this_one():
    import convzoo.analysis

    assert convzoo.analysis.parse_input_size is parse_input_size


def _json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_summary_takes_every_form(capsys):
    full = _json(capsys, "summary", "resnet20", "--input", "3x16x16", "--json")
    assert _json(capsys, "summary", "resnet20", "--input", "16", "--json") == full
    assert _json(capsys, "summary", "resnet20", "--input", "16x16", "--json") == full
    # HxW and N take the model's channels: LeNet-5 reads one
    lenet = _json(capsys, "summary", "lenet5", "--input", "32", "--json")
    assert lenet == _json(capsys, "summary", "lenet5", "--input", "1x32x32", "--json")


def test_spec_takes_every_form(capsys):
    text = "6c5w1s0p 2w2s (Flat) 10fc"
    full = _json(capsys, "spec", text, "--input", "1x32x32", "--json")
    assert full["input_size"] == [1, 32, 32]
    assert _json(capsys, "spec", text, "--input", "32", "--json") == full
    assert _json(capsys, "spec", text, "--input", "32x32", "--json") == full
    # without channels in --input, the text's Input(C) gives them
    assert _json(capsys, "spec", "Input(3) " + text, "--input", "32", "--json")["input_size"] == [3, 32, 32]


def test_viz_arch_takes_a_side(tmp_path, capsys):
    assert main(["viz", "arch", "lenet5", "--input", "32", "--out", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 0


@pytest.mark.parametrize("argv", [
    ["summary", "lenet5"],
    ["spec", "6c5w1s0p"],
    ["report", "lenet5", "--out", "r.html"],
    ["export", "resnet20", "--out", "r.onnx"],
    ["viz", "arch", "lenet5", "--out", "a.png"],
])  # fmt: skip
def test_every_command_refuses_a_bad_input_with_the_one_message(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--input", "3x0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"convzoo {argv[0]}: error: " + INPUT_SIZE_ERROR.format(text="3x0")
    assert not list(tmp_path.iterdir())  # refused before anything is written
