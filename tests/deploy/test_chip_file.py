"""The chip file: export_chip / load_chip round trips bit for bit, writes atomically, and refuses bad files."""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from nwave_lightning.deploy import (
    CHIP_FILE_VERSION,
    ChipFileError,
    ChipNet,
    ChipViolationError,
    check_chip,
    export_chip,
    load_chip,
    to_chip,
)
from nwave_lightning.deploy import chip_file
from nwave_lightning.hardware import H1V1, H1V2
from nwave_lightning.layers import H1v2Layer, H1v2Synapse
from nwave_lightning.layers.walk import dense_weights
from nwave_lightning.layers.sign import block_signs, install_sign_parametrization, set_sign_alpha
from nwave_lightning.models import H1Classifier, PatternGenerator

LAYOUTS = (".json", ".npz")


def _trained_like(net: nn.Module) -> nn.Module:
    """Weights a training run could leave: larger, mixed signs, partly out of range (to_chip fixes them)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for entry in dense_weights(net):
            weight = getattr(entry.module, entry.attr)
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.9 + 0.3)
    return net


def _classifier(chip="H1v2", topology="RC", frontend=True) -> nn.Module:
    return _trained_like(
        H1Classifier(in_ch=5, num_classes=2, neurons_per_class=3, hidden=[9, 7], chip=chip, topology=topology, frontend=frontend, taus=[10e-3, 25e-3, 40e-3])
    )


def _inputs(in_features: int, frontend: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(11)
    if frontend:  # analog values for the frontend's encoder
        return torch.rand(4, 60, in_features, generator=generator) * 1.3
    return (torch.rand(4, 60, in_features, generator=generator) < 0.35).float()


def _assert_same_run(reference: nn.Module, rebuilt: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        ref_spikes, ref_membranes = reference(x)
        spikes, membranes = rebuilt(x)
    if isinstance(ref_spikes, torch.Tensor):  # a bare Sequential returns its last layer's (spikes, membranes)
        ref_spikes, ref_membranes, spikes, membranes = [ref_spikes], [ref_membranes], spikes[-1:], membranes[-1:]
    assert len(spikes) == len(ref_spikes)
    for a, b in zip(ref_spikes, spikes):
        assert torch.equal(a, b)
    for a, b in zip(ref_membranes, membranes):
        assert torch.equal(a, b)
    assert sum(float(s.sum()) for s in spikes) > 0  # the comparison is not between silent networks


def _path(tmp_path, layout: str, stem: str = "model") -> str:
    return str(tmp_path / f"{stem}{layout}")


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("frontend", [True, False], ids=["frontend", "no_frontend"])
@pytest.mark.parametrize("topology", ["FF", "RC", ("RC", "FF", "RC")], ids=["FF", "RC", "mixed"])
@pytest.mark.parametrize("chip", ["H1v1", "H1v2"])
def test_load_chip_gives_the_spikes_of_to_chip_bit_for_bit(tmp_path, chip, topology, frontend, layout):
    deployed = to_chip(_classifier(chip, list(topology) if isinstance(topology, tuple) else topology, frontend))
    path = export_chip(deployed, _path(tmp_path, layout))
    rebuilt = load_chip(path)
    assert isinstance(rebuilt, ChipNet) and (rebuilt.frontend is not None) == frontend
    assert rebuilt.chip == deployed.lifs[0].chip and rebuilt.dt == deployed.dt
    assert check_chip(rebuilt) == []
    for (_, original), (_, loaded) in zip(
        [(n, p) for n, p in deployed.named_parameters()], [(n, p) for n, p in rebuilt.named_parameters()]
    ):
        assert torch.equal(original, loaded)
    for original, loaded in zip(deployed.lifs, rebuilt.lifs):
        assert torch.equal(original.taus, loaded.taus) and torch.equal(original.beta, loaded.beta)
        assert original.layer_topology == loaded.layer_topology and original.threshold == loaded.threshold
    _assert_same_run(deployed, rebuilt, _inputs(5, frontend))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_sign_parametrised_pattern_generator_round_trips(tmp_path, layout):
    net = _trained_like(PatternGenerator(n_inputs=8, n_neurons=6))
    install_sign_parametrization(net, alpha=1.0)
    set_sign_alpha(net, 12.0)
    deployed = to_chip(net)
    rebuilt = load_chip(export_chip(deployed, _path(tmp_path, layout)))
    _assert_same_run(deployed, rebuilt, _inputs(8, frontend=False))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_custom_chip_spec_round_trips_with_every_field(tmp_path, layout):
    chip = dataclasses.replace(H1V2, name="H1v2-lab", synaptic_gain=0.3, sign_block=2, tau_range=(2e-3, 0.25), frontend_x_max=2.0)
    net = nn.Sequential(
        H1v2Synapse(6, 4, chip=chip),
        H1v2Layer(4, taus=[5e-3, 10e-3, 20e-3, 0.2], dt=1e-3, layer_topology="RC", chip=chip),
    )
    deployed = to_chip(_trained_like(net))
    path = export_chip(deployed, _path(tmp_path, layout))
    rebuilt = load_chip(path)
    assert rebuilt.chip == chip
    assert rebuilt.lifs[0].n_neurons == 4 and rebuilt.dt == 1e-3 and rebuilt.frontend is None
    _assert_same_run(deployed, rebuilt, _inputs(6, frontend=False))


# -- what the file holds ---------------------------------------------------------------------
def _header(path: str) -> dict:
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("header.json"))


def _arrays(path: str) -> dict[str, np.ndarray]:
    with np.load(os.path.splitext(path)[0] + ".npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files if key != "header.json"}


def test_the_header_holds_what_the_chip_needs_and_both_layouts_share_it(tmp_path):
    deployed = to_chip(_classifier("H1v1", ["RC", "FF", "FF"], frontend=True))
    json_path = export_chip(deployed, _path(tmp_path, ".json"))
    npz_path = export_chip(deployed, _path(tmp_path, ".npz", stem="single"))
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.npz", "single.npz"]
    with open(json_path, encoding="utf-8") as handle:
        text = handle.read()
    with zipfile.ZipFile(npz_path) as archive:
        assert archive.read("header.json").decode("utf-8") == text  # the same JSON, byte for byte
    header = json.loads(text)
    assert (header["format"], header["version"]) == ("nwave-chip", CHIP_FILE_VERSION)
    assert header["chip"] == {f.name: (list(v) if isinstance(v := getattr(H1V1, f.name), tuple) else v) for f in dataclasses.fields(H1V1)}
    assert (header["dt"], header["in_features"], header["frontend"]) == (1e-3, 5, True)
    assert header["units"]["dt"] == "s" and header["units"]["taus"] == "s"
    layers = header["layers"]
    assert [(e["index"], e["topology"], e["n_in"], e["n_out"], e["threshold"]) for e in layers] == [
        (0, "RC", 5, 9, 1.0),
        (1, "FF", 9, 7, 1.0),
        (2, "FF", 7, 6, 1.0),
    ]
    assert layers[0]["source"] == {"synapse": "synapses.0", "layer": "lifs.0"}
    assert layers[1]["recurrent_weights"] is None and layers[1]["recurrent_signs"] is None
    for layout_path in (json_path, npz_path):
        arrays = _arrays(layout_path)
        for index, (synapse, lif) in enumerate(zip(deployed.synapses, deployed.lifs)):
            entry = layers[index]
            weight = arrays[entry["weight"]["npz"]]
            assert weight.dtype == np.float32 and list(weight.shape) == entry["weight"]["shape"]
            np.testing.assert_array_equal(weight, synapse.weight.detach().numpy())
            assert weight.min() >= -1.0 and weight.max() <= 1.0  # H1v1's range
            signs = arrays[entry["weight_signs"]["npz"]]
            assert signs.dtype == np.int8 and set(np.unique(signs)) <= {-1, 1}
            np.testing.assert_array_equal(signs, block_signs(synapse.weight.detach(), 1).squeeze(1).numpy())
            assert (signs[:, None] * weight >= 0).all()
            np.testing.assert_array_equal(arrays[entry["taus"]["npz"]], lif.taus.numpy())
            if entry["topology"] == "RC":
                np.testing.assert_array_equal(arrays[entry["recurrent_weights"]["npz"]], lif.recurrent_weights.detach().numpy())


# -- export refuses, and leaves nothing -----------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_export_refuses_an_illegal_net_with_the_check_chip_list(tmp_path, layout):
    net = _classifier()  # not passed through to_chip: out of range, mixed signs
    with pytest.raises(ChipViolationError, match=r"export_chip\(.*model" + layout.replace(".", r"\.")) as info:
        export_chip(net, _path(tmp_path, layout))
    assert info.value.violations == check_chip(net) and {v.kind for v in info.value.violations} >= {"weight_range", "sign_block"}
    assert os.listdir(tmp_path) == []


def test_export_refuses_an_unknown_suffix_naming_the_known_ones(tmp_path):
    with pytest.raises(ChipFileError, match=r"path='.*model\.onnx' has the suffix '\.onnx'; a chip file is '\.json' or '\.npz'"):
        export_chip(to_chip(_classifier()), _path(tmp_path, ".onnx"))
    with pytest.raises(ChipFileError, match=r"the suffix '\(none\)'"):
        load_chip(str(tmp_path / "model"))
    assert os.listdir(tmp_path) == []


def test_a_nir_path_is_pointed_to_the_nir_functions(tmp_path):
    with pytest.raises(ChipFileError, match=r"suffix '\.nir'; a chip file is .*read it with nwave_lightning\.deploy\.import_nir\(path\)"):
        load_chip(str(tmp_path / "model.nir"))
    with pytest.raises(ChipFileError, match=r"suffix '\.nir'; .*use nwave_lightning\.deploy\.export_nir\(net, path\)"):
        export_chip(to_chip(_classifier()), str(tmp_path / "model.nir"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_failed_write_leaves_nothing_and_keeps_the_previous_export(tmp_path, layout, monkeypatch):
    deployed = to_chip(_classifier())
    path = _path(tmp_path, layout)
    fresh = tmp_path / "fresh"
    real_write = chip_file._write_npz

    def fail_half_way(target, arrays, header):
        real_write(target, dict(list(arrays.items())[:2]), header)  # a partial file on disk...
        raise OSError("No space left on device")  # ...then the disk fills up

    monkeypatch.setattr(chip_file, "_write_npz", fail_half_way)
    with pytest.raises(OSError, match="No space left"):
        export_chip(deployed, str(fresh / f"model{layout}"))
    assert os.listdir(fresh) == []  # no header, no arrays, no temporary file

    monkeypatch.setattr(chip_file, "_write_npz", real_write)
    export_chip(deployed, path)
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path) if name != "fresh"}
    monkeypatch.setattr(chip_file, "_write_npz", fail_half_way)
    with pytest.raises(OSError):
        export_chip(to_chip(_classifier(topology="FF")), path)
    after = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path) if name != "fresh"}
    assert after == before  # the earlier export is intact, nothing new beside it
    monkeypatch.setattr(chip_file, "_write_npz", real_write)
    _assert_same_run(deployed, load_chip(path), _inputs(5, frontend=True))


def test_a_failed_header_rename_takes_its_arrays_file_away(tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise PermissionError(f"cannot write {dst}")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError):
        export_chip(to_chip(_classifier()), _path(tmp_path, ".json"))
    assert os.listdir(tmp_path) == []


# -- load refuses bad files ---------------------------------------------------------------------
@pytest.fixture(params=LAYOUTS)
def exported(request, tmp_path):
    deployed = to_chip(_classifier(topology=["FF", "RC", "FF"]))
    return deployed, export_chip(deployed, _path(tmp_path, request.param))


def _rewrite(path: str, edit_header=None, edit_arrays=None, fix_checksum: bool = True) -> None:
    """Change a chip file the way a hand or another tool could (keeping its checksum right unless told)."""
    header, arrays = _header(path), _arrays(path)
    if edit_arrays is not None:
        edit_arrays(arrays)
    if fix_checksum:
        order = [e[name]["npz"] for e in header["layers"] for name in chip_file._ARRAYS if e.get(name)]
        header["arrays_sha256"] = chip_file._checksum(arrays[key] for key in order if key in arrays)
    if edit_header is not None:
        edit_header(header)
    text = json.dumps(header, indent=2)
    if path.endswith(".json"):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        chip_file._write_npz(os.path.splitext(path)[0] + ".npz", arrays, None)
    else:
        chip_file._write_npz(path, arrays, text)


def test_another_format_version_is_refused_naming_both_versions(exported):
    _, path = exported
    _rewrite(path, edit_header=lambda h: h.update(version=2))
    with pytest.raises(ChipFileError, match=rf"chip file '.*model\.(json|npz)' has format version 2; this nwave_lightning \(.*\) reads version {CHIP_FILE_VERSION} only"):
        load_chip(path)
    _rewrite(path, edit_header=lambda h: h.update(format="onnx", version=CHIP_FILE_VERSION))
    with pytest.raises(ChipFileError, match="format='onnx', expected 'nwave-chip'"):
        load_chip(path)


def test_a_missing_sibling_npz_is_refused_naming_it(tmp_path):
    path = export_chip(to_chip(_classifier()), _path(tmp_path, ".json"))
    os.remove(tmp_path / "model.npz")
    with pytest.raises(ChipFileError, match=r"chip file '.*model\.json': its arrays file '.*model\.npz' is missing"):
        load_chip(path)


def test_a_garbled_npz_is_refused(exported):
    _, path = exported
    arrays_path = os.path.splitext(path)[0] + ".npz"
    with open(arrays_path, "wb") as handle:
        handle.write(b"PK\x03\x04 this is not the zip it claims to be")
    with pytest.raises(ChipFileError, match=r"'.*model\.npz' is not a readable \.npz \(zip\) file"):
        load_chip(path)


def test_a_corrupted_array_is_refused_naming_the_layer(tmp_path):
    path = export_chip(to_chip(_classifier()), _path(tmp_path, ".json"))
    arrays_path = tmp_path / "model.npz"
    raw = bytearray(arrays_path.read_bytes())
    with zipfile.ZipFile(arrays_path) as archive:
        info = archive.getinfo("layer1.weight.npy")
    start = info.header_offset
    name_length, extra_length = (int.from_bytes(raw[start + i : start + i + 2], "little") for i in (26, 28))
    raw[start + 30 + name_length + extra_length + 140] ^= 0xFF  # a byte of the array data, past the .npy header
    arrays_path.write_bytes(bytes(raw))
    with pytest.raises(ChipFileError, match=r"layer 1 \('lifs\.1'\): array 'layer1\.weight' in '.*model\.npz' is damaged"):
        load_chip(path)


def test_arrays_whose_shapes_disagree_with_the_header_are_refused(exported):
    _, path = exported
    _rewrite(path, edit_arrays=lambda a: a.update({"layer1.weight": a["layer1.weight"][:, :-1]}))
    with pytest.raises(
        ChipFileError,
        match=r"chip file '.*': layer 1 \('lifs\.1'\): array 'layer1\.weight' in '.*model\.npz' has shape \[9, 6\] and dtype "
        r"float32, but the header declares shape \[9, 7\]",
    ):
        load_chip(path)


def test_a_header_shape_that_contradicts_the_widths_is_refused(exported):
    _, path = exported
    _rewrite(path, edit_header=lambda h: h["layers"][2]["taus"].update(shape=[5]))
    with pytest.raises(ChipFileError, match=r"layer 2 \('lifs\.2'\): the header gives 'taus' the shape \[5\], but n_in=7, n_out=6"):
        load_chip(path)
    _rewrite(path, edit_header=lambda h: h["layers"][1].update(n_in=8))
    with pytest.raises(ChipFileError, match=r"layer 1 \('lifs\.1'\): n_in=8, n_out=7, but the stage before gives 9 spike trains"):
        load_chip(path)


def test_a_missing_array_or_field_is_refused_naming_the_layer(exported):
    _, path = exported
    _rewrite(path, edit_arrays=lambda a: a.pop("layer1.recurrent_signs"), fix_checksum=False)
    with pytest.raises(ChipFileError, match=r"layer 1 \('lifs\.1'\): array 'layer1\.recurrent_signs' is missing from"):
        load_chip(path)
    _rewrite(path, edit_header=lambda h: h["layers"][0].pop("threshold"))
    with pytest.raises(ChipFileError, match=r"layer 0 \('lifs\.0'\): field 'threshold' is missing"):
        load_chip(path)


def test_arrays_of_another_export_are_refused(exported):
    _, path = exported
    _rewrite(path, edit_arrays=lambda a: a.update({"layer0.taus": a["layer0.taus"] * 1.5}), fix_checksum=False)
    with pytest.raises(ChipFileError, match=r"the arrays in '.*model\.npz' are not the ones this header was written with"):
        load_chip(path)


def test_an_illegal_net_in_the_file_is_refused_with_the_check_chip_list(exported):
    _, path = exported
    _rewrite(path, edit_header=lambda h: h["layers"][1].update(threshold=1.5))
    with pytest.raises(ChipFileError, match=r"holds a network the chip cannot run \(1 violation\(s\)\):\n  layer 1 \('lifs\.1'\): 'lifs\.1' \[threshold\]") as info:
        load_chip(path)
    assert [(v.module, v.kind, v.worst) for v in info.value.violations] == [("lifs.1", "threshold", 1.5)]

    def out_of_range(arrays):
        arrays["layer2.weight"] = arrays["layer2.weight"] * 10.0  # consistent signs, checksum recomputed: a tool's bug

    _rewrite(path, edit_arrays=out_of_range, edit_header=lambda h: h["layers"][1].update(threshold=1.0))
    with pytest.raises(ChipFileError, match=r"layer 2 \('lifs\.2'\): 'synapses\.2' \[weight_range\] weight outside \[-1\.66, 1\.66\]") as info:
        load_chip(path)
    assert {v.kind for v in info.value.violations} == {"weight_range"}


def test_out_of_range_taus_in_the_file_are_refused_naming_the_layer(exported):
    _, path = exported
    _rewrite(path, edit_arrays=lambda a: a["layer2.taus"].__setitem__(0, 0.9))
    with pytest.raises(ChipFileError, match=r"chip file '.*', layer 2 \('lifs\.2'\): taus\[0\]=0\.9 s is outside the H1v2 range"):
        load_chip(path)


def test_weights_against_the_files_block_signs_are_refused(exported):
    _, path = exported

    def flip(arrays):
        signs = arrays["layer0.weight_signs"]
        row = int(np.flatnonzero(np.abs(arrays["layer0.weight"]).sum(axis=1) > 0)[0])
        signs[row] = -signs[row]

    _rewrite(path, edit_arrays=flip)
    with pytest.raises(ChipFileError, match=r"layer 0 \('lifs\.0'\): \d+ entries of weight have the opposite sign of their row block's"):
        load_chip(path)


def test_an_npz_without_a_header_points_to_its_json(tmp_path):
    export_chip(to_chip(_classifier()), _path(tmp_path, ".json"))
    with pytest.raises(ChipFileError, match=r"has no 'header\.json' entry.*load that \.json file instead"):
        load_chip(str(tmp_path / "model.npz"))


def test_a_garbled_header_and_a_missing_file_are_refused(tmp_path):
    path = export_chip(to_chip(_classifier()), _path(tmp_path, ".json"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("}{")
    with pytest.raises(ChipFileError, match=r"chip file '.*model\.json': the header is not valid UTF-8 JSON"):
        load_chip(path)
    with pytest.raises(ChipFileError, match=r"chip file '.*nowhere\.npz' does not exist"):
        load_chip(str(tmp_path / "nowhere.npz"))
