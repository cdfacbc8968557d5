"""timm's classifier contract on every registered model, dtype errors reported as what they
are, GoogLeNet under TorchScript (and its heads' order against torchvision), and the
memory-efficient DenseNet under torch.compile(fullgraph=True)."""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import ConfigError, InputSizeError
from convzoo.registry import model_info

NAMES = convzoo.list_models()


@functools.lru_cache(maxsize=2)
def _meta(name: str, num_classes: int | None = None) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, num_classes=num_classes)


def _meta_input(name: str) -> torch.Tensor:
    info = model_info(name)  # the smallest input: meta kernels of deep nets cost Python time
    side = max(info.min_input, 8) if info.default_input[1] <= 32 else max(info.min_input, 32)
    return torch.empty(2, info.default_input[0], side, side, device="meta")


@pytest.mark.parametrize("name", NAMES)
def test_classifier_contract(name):
    model = _meta(name).eval()
    x = _meta_input(name)
    fc = model.get_classifier()
    assert isinstance(fc, nn.Linear) and fc.out_features == model.num_classes
    assert fc.in_features == model.head_hidden_size
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size)
    # num_classes=0 at creation: no classifier, the pre-logits features come out
    bare = _meta(name, 0).eval()
    assert isinstance(bare.get_classifier(), nn.Identity) and bare.num_classes == 0
    with torch.no_grad():
        assert bare.forward_head(feats).shape == (2, bare.head_hidden_size)


@pytest.mark.parametrize("name", NAMES)
def test_reset_classifier_contract_over_the_registry(name):
    """One contract, ZooModel's `reset_classifier`, for every registered model: n classes
    give a fresh n-way final layer (and auxiliary heads' last layers) on the model's device
    and in its dtype; 0 removes them and `forward` returns the pre-logits features."""
    from convzoo.models.base import ZooModel

    model = copy.deepcopy(_meta(name)).eval()
    assert type(model).reset_classifier is ZooModel.reset_classifier, f"{type(model).__name__} overrides it"
    x = _meta_input(name)
    heads = [model.classifier_name, *model.aux_classifiers]
    model.reset_classifier(5)
    assert model.num_classes == 5
    for path in heads:
        fc = model.get_submodule(path)
        assert isinstance(fc, nn.Linear) and fc.out_features == 5 and fc.weight.is_meta, path
    assert model.get_classifier().in_features == model.head_hidden_size
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    model.reset_classifier(0)
    assert model.num_classes == 0
    assert all(isinstance(model.get_submodule(path), nn.Identity) for path in heads)
    with torch.no_grad():
        assert model(x).shape == (2, model.head_hidden_size)
    with pytest.raises(ConfigError, match="num_classes"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("family", sorted({model_info(n).family for n in NAMES}))
def test_reset_classifier_keeps_dtype_and_means_the_same_everywhere(family):
    name = min((n for n in NAMES if model_info(n).family == family), key=lambda n: model_info(n).params or 0)
    name = {"resnet": "resnet20", "plain": "plain20", "densenet": "densenet_bc_100_12", "vgg": "vgg_a",
            "preact_resnet": "preact_resnet164"}.get(family, name)  # fmt: skip
    info = model_info(name)
    side = max(info.min_input, 8) if info.default_input[1] > 32 or family == "lenet" else 8
    side = 79 if name == "googlenet_paper" else side
    torch.manual_seed(0)
    model = convzoo.create_model(name).double().eval()
    x = torch.randn(2, info.default_input[0], side, side, dtype=torch.float64)
    model.reset_classifier(5)
    fc = model.get_classifier()
    assert fc.weight.dtype == torch.float64 and fc.out_features == 5 and model.num_classes == 5
    with torch.no_grad():
        assert model(x).shape == (2, 5) and model(x).dtype == torch.float64
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
        assert model(x).shape == (2, model.head_hidden_size)
    if hasattr(model, "aux1") and model.aux1 is not None:
        assert isinstance(model.aux1.fc2, nn.Identity)
    with pytest.raises(ConfigError, match="num_classes"):
        model.reset_classifier(-1)


def test_reset_classifier_keeps_the_device():
    with torch.device("meta"):
        for name in ("lenet5", "alexnet", "vgg_a", "googlenet", "resnet20", "densenet_bc_100_12"):
            model = convzoo.create_model(name)
            with torch.device("cpu"):
                model.reset_classifier(3)
            assert model.get_classifier().weight.is_meta, name


def test_negative_num_classes_at_creation_is_a_config_error():
    for name in ("lenet5", "alexnet", "vgg_a", "googlenet", "resnet20", "densenet_bc_100_12"):
        with pytest.raises(ConfigError, match="num_classes"):
            convzoo.create_model(name, num_classes=-2)


def test_wrong_dtype_is_not_reported_as_a_size_error():
    model = convzoo.create_model("alexnet").to(torch.bfloat16)
    with pytest.raises(RuntimeError) as err:
        model(torch.randn(1, 3, 224, 224))
    assert not isinstance(err.value, InputSizeError), str(err.value)
    # a real size failure is still diagnosed, in bf16 too
    with pytest.raises(InputSizeError, match="63x63"):
        model(torch.randn(1, 3, 40, 40, dtype=torch.bfloat16))


def _script(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.10 marks torch.jit.script as deprecated
        return torch.jit.script(model)


@pytest.mark.parametrize("name, kwargs, side", [
    ("googlenet", {}, 32), ("googlenet", {"aux_logits": True}, 32), ("googlenet_paper", {}, 79),
    ("lenet5_paper", {}, 32), ("alexnet_paper", {}, 227), ("vgg_a_lrn", {}, 32),
])  # fmt: skip
def test_torchscript_of_the_classic_families(name, kwargs, side):
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=10, **kwargs).eval()
    scripted = _script(model)
    x = torch.randn(2, model.in_channels, side, side)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=0, atol=1e-6)
    if kwargs.get("aux_logits"):  # training mode: the named tuple, scripted too
        model.train()
        scripted.train()
        out = scripted(x)
        assert len(out) == 3 and all(o.shape == (2, 10) for o in out)
        assert model(x)._fields == ("logits", "aux1", "aux2")


def test_googlenet_heads_against_torchvision_order():
    """convzoo's `GoogLeNetOutput(logits, aux1, aux2)` is torchvision's `(logits,
    aux_logits2, aux_logits1)` reordered: aux1 sits on (4a), aux2 on (4d)."""
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    tv = tvm.googlenet(weights=None, aux_logits=True, transform_input=False, init_weights=True).train()
    ours = convzoo.create_model("googlenet", aux_logits=True).train()
    convzoo.load_torchvision_weights(ours, tv.state_dict())
    for m in list(tv.modules()) + list(ours.modules()):
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.BatchNorm2d):
            m.eval()  # the same (stored) statistics in both
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = tv(x)
        b = ours(x)
    torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.aux1, a.aux_logits1, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.aux2, a.aux_logits2, rtol=0, atol=1e-5)
    assert a[1] is a.aux_logits2 and b[1] is b.aux1  # positions differ: unpack by name


@pytest.mark.slow
def test_memory_efficient_densenet_compiles_fullgraph():
    """The checkpointed bottleneck has no Python side effects under torch.compile, so
    fullgraph=True captures it; gradients and running statistics equal the plain path's."""
    from convzoo.models.densenet import DenseNet, DenseNetSpec

    torch.manual_seed(0)
    spec = DenseNetSpec(4, (2, 2), 8, stem="cifar")  # tiny: compiling on 2 CPU cores is slow
    ref = DenseNet(spec, num_classes=3).train()
    eff = copy.deepcopy(ref)
    for m in eff.modules():
        if hasattr(m, "memory_efficient"):
            m.memory_efficient = True
    x = torch.randn(4, 3, 8, 8)
    compiled = torch.compile(eff, fullgraph=True, backend="aot_eager")
    compiled(x).sum().backward()
    ref(x).sum().backward()
    for (name, a), b in zip(eff.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6, msg=name)
    for a, b in zip(eff.buffers(), ref.buffers()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
