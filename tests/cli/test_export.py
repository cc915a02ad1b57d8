"""`nwave export`: train through the CLI, export the checkpoint, load the chip file, get the same spikes."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest
import torch

import nwave_lightning.deploy as deploy
from nwave_lightning.cli import NWaveCLI, main

from nwave_lightning.deploy import check_chip, load_chip, to_chip
from nwave_lightning.layers.sign import install_sign_parametrization
from nwave_lightning.models import H1Classifier

from ._quickstart import QUICKSTART, TINY


def _logs(folder: Path) -> str:
    return f"--trainer.logger.init_args.save_dir={folder / 'runs'}"


def _train(folder: Path, *extra: str) -> str:
    cli = main(["fit", "--config", QUICKSTART, *extra, *TINY, _logs(folder), "--trainer.max_epochs=2"])
    return cli.trainer.checkpoint_callback.last_model_path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Quick-start runs of 2 epochs: (log folder, last.ckpt) of one with SNNModule's default sign
    annealing (sign-parametrised checkpoint) and one with unconstrained signs (plain weights)."""
    folder = tmp_path_factory.mktemp("runs")
    saved = sys.argv
    sys.argv = ["nwave"]
    try:
        return {
            "sign_annealed": (folder / "signs", _train(folder / "signs")),
            "unconstrained": (folder / "plain", _train(folder / "plain", "--model.init_args.sign_annealing=false")),
        }
    finally:
        sys.argv = saved


def _export(folder: Path, ckpt_path: str, output: Path, *extra: str):
    return main(["export", "--config", QUICKSTART, *extra, *TINY, _logs(folder), f"--ckpt_path={ckpt_path}", f"--output={output}"])


def _net_of(ckpt_path, sign_parametrised: bool) -> torch.nn.Module:
    """The checkpoint's network, rebuilt here from its hyper-parameters and state_dict (not by `nwave export`)."""
    payload = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    net_config = payload["hyper_parameters"]["net"]
    assert net_config["class_path"] == "nwave_lightning.models.H1Classifier"
    net = H1Classifier(**net_config["init_args"])
    if sign_parametrised:
        install_sign_parametrization(net)
    state = payload["state_dict"]
    own = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    net.load_state_dict(own or state)  # best_model.pt holds the network's own keys
    return net


def _inputs(reference: torch.nn.Module) -> torch.Tensor:
    """Analog inputs for the frontend, on the channels whose fan-out is excitatory: the network spikes."""
    x = torch.rand(6, 30, 13, generator=torch.Generator().manual_seed(5)) * 1.2
    x[..., reference.synapses[0].weight.sum(dim=1) < 0] = 0.0  # a 2-epoch run is easily silenced by the rest
    return x


@pytest.mark.parametrize("suffix", [".json", ".npz"])
@pytest.mark.parametrize("run", ["sign_annealed", "unconstrained"])
def test_export_writes_a_chip_file_with_the_spikes_of_the_checkpoint(runs, run, suffix, tmp_path, capsys):
    folder, ckpt_path = runs[run]
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    assert any(key.endswith("sign_logits") for key in state) == (run == "sign_annealed")
    output = tmp_path / "deploy" / f"model{suffix}"

    _export(folder, ckpt_path, output)

    out = capsys.readouterr().out
    assert "chip check: OK (3 layers, chip H1v2)" in out
    assert f"wrote {output}" in out
    expected_files = ["model.json", "model.npz"] if suffix == ".json" else ["model.npz"]
    assert sorted(os.listdir(output.parent)) == expected_files
    reference = to_chip(_net_of(ckpt_path, sign_parametrised=run == "sign_annealed"))
    assert check_chip(reference) == []
    chip_net = load_chip(output)
    x = _inputs(reference)
    with torch.no_grad():
        expected, got = reference(x), chip_net(x)
    for a, b in zip(expected[0] + expected[1], got[0] + got[1]):  # spikes and membranes of every layer
        assert torch.equal(a, b)
    assert float(got[0][0].sum()) > 0 and float(got[0][1].sum()) > 0  # not a comparison of silent networks


def test_export_reads_best_model_pt_and_ckpt_path_last(runs, tmp_path, capsys):
    folder, ckpt_path = runs["sign_annealed"]
    best = Path(ckpt_path).parents[1] / "best_model.pt"  # BestModelCheckpoint: the network's own keys
    assert best.is_file()
    _export(folder, str(best), tmp_path / "best.npz")
    _export(folder, "last", tmp_path / "last.npz")
    assert "chip check: OK" in capsys.readouterr().out
    last = to_chip(_net_of(ckpt_path, sign_parametrised=True))
    x = _inputs(last)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(last(x)[0], load_chip(tmp_path / "last.npz")(x)[0]))
        from_best = to_chip(_net_of(best, sign_parametrised=True))
        assert all(torch.equal(a, b) for a, b in zip(from_best(x)[0], load_chip(tmp_path / "best.npz")(x)[0]))


def test_an_unknown_suffix_is_refused_before_anything_is_loaded(runs, tmp_path, monkeypatch):
    folder, ckpt_path = runs["sign_annealed"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("loaded something before checking --output")

    # Neither the checkpoint (LightningCLI reads its hyper-parameters first thing) nor the model
    # (wraps keeps the signature the config parser reads).
    monkeypatch.setattr(torch, "load", must_not_run)
    monkeypatch.setattr(H1Classifier, "__init__", functools.wraps(H1Classifier.__init__)(must_not_run))
    with pytest.raises(ValueError, match=r"output='.*model\.onnx' has the suffix '\.onnx', which names no export format; use one of \.json, \.npz, \.nir"):
        _export(folder, ckpt_path, tmp_path / "model.onnx")
    assert sorted(os.listdir(tmp_path)) == []


def test_an_illegal_network_exits_non_zero_and_writes_nothing(runs, tmp_path, capsys):
    folder, ckpt_path = runs["sign_annealed"]
    payload = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    payload["state_dict"]["net.lifs.1.taus"].fill_(0.9)  # 900 ms, beyond the chip's 500 ms: to_chip cannot fix it
    width = payload["state_dict"]["net.lifs.1.taus"].numel()
    bad = tmp_path / "bad.ckpt"
    torch.save(payload, bad)
    output = tmp_path / "out" / "model.json"
    with pytest.raises(SystemExit) as info:
        _export(folder, str(bad), output)
    assert info.value.code not in (0, None) and "nothing written" in str(info.value.code)
    out = capsys.readouterr().out
    assert "chip check: 1 violation(s)" in out
    assert f"'lifs.1' [tau_range] taus outside [0.001, 0.5] s or not above dt=0.001: {width} affected (worst 0.9)" in out
    assert not output.parent.exists()


def test_nir_and_the_chip_file_of_one_checkpoint_run_alike(runs, tmp_path, capsys):
    pytest.importorskip("nir")
    folder, ckpt_path = runs["sign_annealed"]
    _export(folder, ckpt_path, tmp_path / "model.nir")
    _export(folder, ckpt_path, tmp_path / "model.npz")
    assert f"wrote {tmp_path / 'model.nir'}" in capsys.readouterr().out
    from_nir, from_chip_file = deploy.import_nir(str(tmp_path / "model.nir")), load_chip(tmp_path / "model.npz")
    x = _inputs(from_chip_file)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(from_nir(x)[0], from_chip_file(x)[0]))


def test_a_checkpoint_of_another_network_is_refused_naming_the_file(runs, tmp_path):
    folder, ckpt_path = runs["unconstrained"]
    trained = torch.load(ckpt_path, map_location="cpu", weights_only=True)["hyper_parameters"]["net"]["init_args"]
    other = H1Classifier(**{**trained, "hidden": [5, 7]})
    foreign = tmp_path / "foreign.ckpt"  # no hyper-parameters: the config alone builds the model
    torch.save({"state_dict": {f"net.{key}": value for key, value in other.state_dict().items()}}, foreign)
    with pytest.raises(ValueError, match=r"nwave export: the weights in ckpt_path='.*foreign\.ckpt' do not fit H1Classifier; build the network the run was trained with"):
        _export(folder, str(foreign), tmp_path / "m.json")
    with pytest.raises(ValueError, match=r"ckpt_path='.*nowhere\.ckpt' is not a file"):
        _export(folder, str(tmp_path / "nowhere.ckpt"), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_export_is_a_subcommand():
    assert NWaveCLI.subcommands()["export"] == {"model", "datamodule"}
