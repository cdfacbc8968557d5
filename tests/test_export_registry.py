"""Every registered model through `convzoo export`'s ONNX path, and the generated export
tables of docs/models.md (written by `python -m convzoo._support --write`).

- test_every_model_exports: each registered model (seed 0, eval mode) at its small input
  (`_support.small_input`: smallest trainable side, at least 32) with a dynamic batch,
  exported by `export_model` (TorchScript-based exporter, dynamo-based where it fails) and
  run in onnxruntime against PyTorch at batch 2, 1 and 3. A model that cannot be exported
  must be in the docs' failure list with the reason found; a model that exports must not be,
  and the exporter used must be the table's "convzoo export" cell. The full-size VGGs
  (130-144M parameters: most of their time is writing and loading 0.5 GB files) run here
  only with CONVZOO_EXPORT_ALL=1; without it the test says so and checks their table row
  is measured, so the docs' claim about them comes from the script's run.
- test_table_rows_are_the_registry / test_failure_list_is_the_tables: the docs blocks
  parse, name every registered model once, and the failure list is what the table implies.
- test_cells_match_a_fresh_run: every path (TorchScript, torch.export, both ONNX exporters)
  on a cheap subset that covers each family shape and the known legacy-exporter failure,
  compared cell by cell with the committed table.
"""

from __future__ import annotations

import os
import re
import warnings

import pytest
import torch
from torch import nn

import convzoo

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # the dynamo-based exporter, for the models the legacy one cannot write

from convzoo import _support  # noqa: E402
from convzoo.errors import ConvzooError  # noqa: E402
from convzoo.export import ExportError, export_model  # noqa: E402

TEXT = _support.DOCS.read_text()
TABLE = _support.parse_table(TEXT)
FAILURES = _support.parse_failures(TEXT)
RUN_ALL = os.environ.get("CONVZOO_EXPORT_ALL") == "1"
HEAVY_PARAMS = 100_000_000  # the full-size VGGs (AlexNet, 61M, runs)
# cheap models through every path: a LeNet, a CIFAR ResNet, GoogLeNet (auxiliary heads),
# a CIFAR DenseNet-BC, the notation VGG with LRN (legacy exporter on LRN), AlexNet (the
# adaptive pool the legacy exporter cannot write at a small input)
SUBSET = ("lenet5", "resnet20", "googlenet", "densenet_bc_100_12", "vgg_a_lrn_narrow", "alexnet")


def _params(name: str) -> int:
    with torch.device("meta"):
        model = convzoo.create_model(name)
    return sum(p.numel() for p in model.parameters())


def _row(name: str) -> dict[str, str]:
    assert name in TABLE, f"{name} has no row in docs/models.md's export table; run python -m convzoo._support --write"
    return TABLE[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", convzoo.list_models())
def test_every_model_exports(name, tmp_path):
    row = _row(name)
    if _params(name) > HEAVY_PARAMS and not RUN_ALL:
        assert row["convzoo_export"] != _support.NOT_MEASURED, f"{name}: the script has not measured it"
        pytest.skip(f"{name}: over {HEAVY_PARAMS // 1_000_000}M parameters, exported only with CONVZOO_EXPORT_ALL=1; "
                    f"docs/models.md (from python -m convzoo._support) says {row['convzoo_export']}")  # fmt: skip
    model = _support.build(name)
    size = _support.small_input(name)
    assert row["small_input"] == "x".join(map(str, size))
    try:
        res = export_model(model, tmp_path / "m.onnx", input_size=size, dynamic_batch=True)
    except ExportError:
        # the reason the docs must give: each exporter's own failure
        legacy = _support.probe(model, name, "onnx_legacy")
        dynamo = _support.probe(model, name, "onnx_dynamo")
        assert not legacy.works and not dynamo.works
        reason = _support.export_choice({"onnx_legacy": legacy, "onnx_dynamo": dynamo}).reason
        assert FAILURES.get(name) == reason, f"{name} cannot be exported ({reason}); docs/models.md must list it"
        return
    assert name not in FAILURES, f"{name} exports (with {res.exporter}); docs/models.md lists it as failing"
    assert [c.batch for c in res.checks] == [2, 1, 3]
    assert res.ok, f"{name}: " + ", ".join(f"batch {c.batch} error {c.max_abs_error:.2e} > {c.tolerance:.2e}" for c in res.checks)
    if row["convzoo_export"] != _support.NOT_MEASURED:
        assert row["convzoo_export"] == res.exporter, f"{name}: docs say {row['convzoo_export']}, export used {res.exporter}"
    if res.exporter == "dynamo" and row["onnx_legacy"] != _support.NOT_MEASURED:
        assert row["onnx_legacy"].startswith("fails: "), f"{name}: the legacy exporter failed ({res.fallback_reason})"


def test_table_rows_are_the_registry():
    assert sorted(TABLE) == sorted(convzoo.list_models())
    for name, row in TABLE.items():
        assert set(row) == {"small_input", *_support.PATHS, "convzoo_export"}, name
        for path in _support.PATHS:
            cell = row[path]
            assert cell in (_support.WORKS, _support.NOT_MEASURED) or cell.startswith("fails: "), (name, path, cell)


def test_failure_list_is_the_tables():
    implied = {}
    for name, row in TABLE.items():
        if row["convzoo_export"] == "fails":
            outcome = {p: _support.Outcome(None if row[p] == _support.WORKS else row[p][len("fails: "):])
                       for p in ("onnx_legacy", "onnx_dynamo")}  # fmt: skip
            implied[name] = _support.export_choice(outcome).reason
        elif row["convzoo_export"] == "torchscript":  # the first exporter that works
            assert row["onnx_legacy"] == _support.WORKS, name
        elif row["convzoo_export"] == "dynamo":
            assert row["onnx_legacy"] != _support.WORKS and row["onnx_dynamo"] == _support.WORKS, name
        else:
            assert row["convzoo_export"] == _support.NOT_MEASURED, name
    assert FAILURES == implied


def test_docs_blocks_round_trip():
    # rendering the parsed table again gives the committed text: nothing in it was edited by hand
    results = {}
    for name, row in TABLE.items():
        if all(row[p] != _support.NOT_MEASURED for p in _support.PATHS):
            results[name] = {p: _support.Outcome(None if row[p] == _support.WORKS else row[p][len("fails: "):])
                             for p in _support.PATHS}  # fmt: skip
    assert _support.update_docs(TEXT, results, convzoo.list_models()) == TEXT


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBSET)
def test_cells_match_a_fresh_run(name):
    if name not in convzoo.list_models():
        pytest.fail(f"{name} is not registered; choose another model for the subset")
    row = _row(name)
    model = _support.build(name)
    fresh = {path: _support.probe(model, name, path).cell() for path in _support.PATHS}
    assert fresh == {path: row[path] for path in _support.PATHS}


def test_reason_of_names_the_known_failures(tmp_path):
    class Pool(nn.Module):
        def forward(self, x):
            return nn.functional.adaptive_avg_pool2d(x, 3)

    with warnings.catch_warnings(), pytest.raises(Exception) as err:
        warnings.simplefilter("ignore")
        torch.onnx.export(Pool().eval(), (torch.randn(1, 2, 4, 4),), str(tmp_path / "p.onnx"), dynamo=False)
    assert _support.reason_of(err.value) == "adaptive_avg_pool2d: output size not a factor of the input size"
    # graph value names and addresses are dropped: the same failure reads the same every run
    a = _support.reason_of(RuntimeError("bad value %input.12 at 0x7f00aa in 'x.py' line 4\nmore"))
    b = _support.reason_of(RuntimeError("bad value %x.3 at 0x1 in 'y.py' line 9"))
    assert a == b == "RuntimeError: bad value _ at _ in _ _"
    assert isinstance(ExportError("x"), ConvzooError)


def test_lrn_keeps_the_map_size_for_the_legacy_exporter(tmp_path):
    # layers.LRN pads the channel axis by concatenation: with F.pad the TorchScript-based
    # exporter lost the map size and no adaptive pool after an LRN could be written
    # (vgg_a_lrn failed at every size, 224x224 included)
    from convzoo.layers.lrn import LRN

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), LRN(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    res = export_model(model, tmp_path / "lrn.onnx", input_size=(3, 8, 8), dynamic_batch=True, exporter="torchscript")
    assert res.exporter == "torchscript" and res.ok


def test_support_script_check_and_write(tmp_path, capsys):
    import json

    docs = tmp_path / "models.md"
    docs.write_text(TEXT)
    # --check: a fresh run of one path of one model agrees with the committed cell
    assert _support.main(["--models", "lenet5", "--paths", "onnx_legacy", "--check", "--docs", str(docs)]) == 0
    assert "agrees" in capsys.readouterr().out
    # --write from a resumed sweep (nothing left to run): rows from the file, the other measured
    # rows kept as they were, an unmeasured one left unmeasured
    unmeasured = "| `googlenet_paper` | 3x79x79 | " + " | ".join([_support.NOT_MEASURED] * 5) + " |"
    before = re.sub(r"^\| `googlenet_paper` \|.*$", unmeasured, TEXT, count=1, flags=re.M)
    assert before != TEXT
    docs.write_text(before)
    rows = tmp_path / "rows.jsonl"
    works = {p: None for p in _support.PATHS}
    rows.write_text(json.dumps({"model": "lenet5", **works}) + "\n"
                    + json.dumps({"model": "resnet20", **works, "onnx_legacy": "A: one", "onnx_dynamo": "B: two"}) + "\n")  # fmt: skip
    assert _support.main(["--models", "lenet5", "resnet20", "--jsonl", str(rows), "--write", "--docs", str(docs)]) == 0
    text = docs.read_text()
    table = _support.parse_table(text)
    assert sorted(table) == sorted(convzoo.list_models())
    assert table["lenet5"]["convzoo_export"] == "torchscript" and table["resnet20"]["convzoo_export"] == "fails"
    assert table["resnet20"]["onnx_dynamo"] == "fails: B: two"
    assert table["googlenet"] == _support.parse_table(TEXT)["googlenet"]
    assert table["googlenet_paper"]["torchscript"] == _support.NOT_MEASURED
    assert _support.parse_failures(text) == {"resnet20": "A: one; dynamo-based: B: two"}
    # the rest of the page is untouched
    assert text.split(_support.TABLE_BEGIN)[0] == TEXT.split(_support.TABLE_BEGIN)[0]
    assert text.split(_support.FAIL_END)[1] == TEXT.split(_support.FAIL_END)[1]
    # a cell edited by hand is found by --check
    docs.write_text(text.replace("| `lenet5` | 1x32x32 | works", "| `lenet5` | 1x32x32 | fails: edited"))
    assert _support.main(["--models", "lenet5", "--paths", "torchscript", "--check", "--docs", str(docs)]) == 1
