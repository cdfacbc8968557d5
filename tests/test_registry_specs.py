"""Every family is a SPECS table registered by `register_specs`; the registry and the CLI
refuse to work with a part missing instead of silently leaving it out."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

import pytest

import convzoo
from convzoo import registry
from convzoo.errors import ConfigError
from convzoo.models.family import NOTHING, Published, register_specs, spec_builder
from convzoo.registry import FAMILY_MODULES, model_info

#: the family files declared as tables (notation_zoo registers lines of notation)
TABLE_FAMILIES = ("lenet", "alexnet", "vgg", "googlenet", "resnet", "densenet")


@pytest.mark.parametrize("family", TABLE_FAMILIES)
def test_each_family_is_a_specs_table_with_its_published_numbers(family):
    mod = importlib.import_module(f"convzoo.models.{family}")
    source = inspect.getsource(mod)
    assert "register_specs(" in source and "register_model(" not in source, "register the SPECS table, not by hand"
    assert mod.SPECS, f"{family}: empty SPECS"
    assert set(mod.PUBLISHED) == set(mod.SPECS), f"{family}: PUBLISHED and SPECS name different models"
    for name in mod.SPECS:
        info = model_info(name)  # registered
        pub = mod.PUBLISHED[name]
        assert isinstance(pub, Published)
        assert (info.params, info.macs, info.source) == (pub.params, pub.macs, pub.source)
        assert pub.source, f"{name}: a published entry names its source"
    assert [n for n in registry._REGISTRY if n in mod.SPECS] == list(mod.SPECS)  # table order


def test_the_families_share_one_builder_and_no_copied_helpers():
    from convzoo.layers.lrn import LRN_ARGS

    for family in TABLE_FAMILIES:
        mod = importlib.import_module(f"convzoo.models.{family}")
        assert not hasattr(mod, "_builder"), f"{family} copies a builder: use models.family.spec_builder"
        assert getattr(mod, "LRN_ARGS", LRN_ARGS) is LRN_ARGS, f"{family} copies LRN_ARGS: use layers.lrn.LRN_ARGS"


def test_lrn_constants_are_stated_once():
    from convzoo.layers import LRN
    from convzoo.layers.lrn import LRN_ARGS
    from convzoo.notation.spec import LRN_DEFAULTS

    layer = LRN()
    assert {"size": layer.size, "alpha": layer.alpha, "beta": layer.beta, "k": layer.k} == LRN_ARGS
    # the notation's torch-free (LRN) defaults: (n, k, alpha, beta)
    assert LRN_DEFAULTS == (LRN_ARGS["size"], LRN_ARGS["k"], LRN_ARGS["alpha"], LRN_ARGS["beta"])


@dataclass(frozen=True)
class _ToySpec:
    width: int


class _Toy:
    def __init__(self, spec, num_classes=7, in_channels=2, extra=None):
        self.spec, self.num_classes, self.in_channels, self.extra = spec, num_classes, in_channels, extra


def test_spec_builder_passes_what_is_given_and_refuses_unknown_options():
    build = spec_builder(_Toy, _ToySpec(4), "toy4", options=("extra",))
    assert build.__name__ == "toy4" and "toy4" in build.__doc__
    m = build()
    assert (m.spec.width, m.num_classes, m.in_channels, m.extra) == (4, 7, 2, None)  # the class's defaults
    m = build(num_classes=3, in_channels=1, extra="x")
    assert (m.num_classes, m.in_channels, m.extra) == (3, 1, "x")
    with pytest.raises(ConfigError, match=r"unknown _Toy option\(s\) depth, unit; expected: extra"):
        build(unit="a", depth=2)


def test_register_specs_takes_values_mappings_and_functions(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    infos = register_specs(
        {"toy_a": _ToySpec(1), "toy_b": _ToySpec(2)},
        model=_Toy,
        family="toy",
        paper={"toy_a": "paper A", "toy_b": "paper B"},
        default_input=lambda name, spec: (2, 8 * spec.width, 8 * spec.width),
        min_input=4,
        num_classes=7,
        description=lambda name, spec: f"toy of width {spec.width}",
        published={"toy_a": Published(10, 20, "by hand")},
    )
    a, b = infos
    assert (a.name, a.family, a.paper, a.default_input, a.params, a.macs, a.source) == (
        "toy_a", "toy", "paper A", (2, 8, 8), 10, 20, "by hand")  # fmt: skip
    assert (b.paper, b.default_input, b.description) == ("paper B", (2, 16, 16), "toy of width 2")
    assert (b.params, b.macs, b.source) == (NOTHING.params, NOTHING.macs, NOTHING.source)
    assert registry.create_model("toy_b", num_classes=5).spec == _ToySpec(2)
    with pytest.raises(ValueError, match="registered twice"):
        register_specs({"toy_a": _ToySpec(1)}, model=_Toy, family="toy", paper="", default_input=(1, 1, 1),
                       min_input=1, description="")  # fmt: skip


def test_a_family_that_fails_to_import_fails_the_registry(monkeypatch):
    monkeypatch.setattr(registry, "FAMILY_MODULES", (*FAMILY_MODULES, "convzoo.models.no_such_family"))
    monkeypatch.setattr(registry, "_loaded", False)
    for _ in range(2):  # every time, not once and then a partial zoo
        with pytest.raises(ModuleNotFoundError, match="no_such_family"):
            convzoo.list_models()


def test_a_missing_command_module_fails_the_cli(monkeypatch):
    from convzoo import cli

    monkeypatch.setitem(cli.COMMANDS, "ghost", ("convzoo.commands.ghost", "a command whose module is gone"))
    with pytest.raises(ModuleNotFoundError, match="ghost"):
        cli.build_parser()


def test_every_family_module_is_registered():
    families = {info.family for info in map(model_info, convzoo.list_models())}
    assert {"lenet", "alexnet", "vgg", "googlenet", "resnet", "plain", "preact_resnet", "densenet"} <= families
    for mod in FAMILY_MODULES:
        assert importlib.import_module(mod)
