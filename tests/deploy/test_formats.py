"""deploy.formats: export / load_trained_net: the format follows the suffix, illegal nets and bad files are refused."""

import pytest
import torch

from nwave_lightning.deploy import (
    ChipViolationError,
    export,
    export_format,
    import_nir,
    load_chip,
    load_trained_net,
    to_chip,
)
from nwave_lightning.layers.sign import install_sign_parametrization
from nwave_lightning.models import H1Classifier


def _net(seed=0):
    torch.manual_seed(seed)
    return H1Classifier(in_ch=3, num_classes=2, neurons_per_class=2, hidden=[6], topology="RC")


def _spikes(net, x):
    with torch.no_grad():
        return net(x)[0][-1]


@pytest.mark.parametrize("suffix", [".json", ".npz", ".nir"])
def test_each_suffix_writes_a_file_that_reads_back_to_the_same_spikes(tmp_path, suffix):
    chip_net = to_chip(_net())
    written = export(chip_net, tmp_path / f"model{suffix}")
    assert written == str(tmp_path / f"model{suffix}")
    back = import_nir(written) if suffix == ".nir" else load_chip(written)
    x = torch.rand(2, 30, 3)
    assert torch.equal(_spikes(back, x), _spikes(chip_net, x))


def test_an_illegal_net_is_refused_and_nothing_is_written(tmp_path):
    net = _net()
    with torch.no_grad():
        net.synapses[0].weight[0, 0] = 50.0  # out of the chip's weight range
    with pytest.raises(ChipViolationError):
        export(net, tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_suffix_names_the_path_and_the_formats():
    with pytest.raises(ValueError, match=r"path='m\.onnx' has the suffix '\.onnx'.*\.json, \.npz, \.nir"):
        export_format("m.onnx")
    with pytest.raises(ValueError, match=r"output='m' has the suffix '\(none\)'"):
        export_format("m", name="output")


def test_nir_without_the_nir_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nir" else real(name, *a))
    with pytest.raises(ValueError, match=r"path='m\.nir': writing NIR needs the nir package.*nwave-lightning\[deploy\]"):
        export_format("m.nir")


def test_lightning_and_best_model_files_load_the_same_weights(tmp_path):
    trained, module_like = _net(1), torch.nn.Module()
    module_like.net = _net(2)
    torch.save({"state_dict": {f"net.{k}": v for k, v in trained.state_dict().items()}}, tmp_path / "last.ckpt")
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "best_model.pt")
    for path, model in (("last.ckpt", module_like), ("last.ckpt", _net(6)), ("best_model.pt", _net(3))):
        net = load_trained_net(model, tmp_path / path)
        assert net is getattr(model, "net", model)
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), trained.state_dict().values()))


def test_sign_parametrised_weights_load_into_a_plain_net(tmp_path):
    trained = _net(4)
    install_sign_parametrization(trained)
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "best_model.pt")
    net = load_trained_net(_net(5), tmp_path / "best_model.pt")
    assert net.state_dict().keys() == trained.state_dict().keys()
    assert torch.equal(to_chip(net).synapses[0].weight, to_chip(trained).synapses[0].weight)


def test_weights_of_another_shape_are_refused_naming_the_file(tmp_path):
    torch.save({"state_dict": _net().state_dict()}, tmp_path / "best_model.pt")
    other = H1Classifier(in_ch=3, num_classes=2, neurons_per_class=2, hidden=[9], topology="RC")
    with pytest.raises(ValueError, match=r"the weights in ckpt_path='.*best_model\.pt' do not fit H1Classifier"):
        load_trained_net(other, tmp_path / "best_model.pt")
    with pytest.raises(ValueError, match=r"ckpt_path='.*absent\.pt' is not a file"):
        load_trained_net(other, tmp_path / "absent.pt")
    with pytest.raises(ValueError, match=r"ckpt_path='last' is not a file.*command line only: nwave export --ckpt_path last"):
        load_trained_net(other, "last")
