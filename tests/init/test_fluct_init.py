"""fluct_init on seed-like networks: measured xi, variance split, burn-in, range warnings, errors, verbose output.

Every xi and share here is stationary (docs/fluct_init.md): measured after the
burn-in, by the tests' own helpers in ``_models.py``.
"""

import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader, TensorDataset

import vendor_sdk.sdk_pattern_generator as sdk_pattern
from vendor_sdk.sdk_surrogate_snn import SurrogateSNN
from nwave_lightning.init import fluct_init
from nwave_lightning.init.fluct_init import fluct_init as fluct_init_seed_path
from nwave_lightning.layers import H1v2Layer, H1v2Synapse, prepare_net
from nwave_lightning.layers.sign import SignBlockParametrization

from ._models import SEED_CFG, StackNet, cuda_calls_stay_on_cpu, ff_share, spike_trains, xi_of

TOLERANCE = 0.15  # the acceptance check of the design contract (docs/fluct_init.md)


def run(model, loader, **kwargs):
    """fluct_init with every warning recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = fluct_init(model, loader, **kwargs)
    return report, [str(w.message) for w in caught]


def loader_of(x, batch_size=16, shuffle=False):
    return DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=batch_size, shuffle=shuffle)


def test_seed_import_path_is_the_same_function():
    assert fluct_init is fluct_init_seed_path


# StackNet's taus 10 / 20 / 40 ms at dt = 2 ms: 3 tau = 15 / 30 / 60 steps; on H1v1
# each time constant gains tau_syn = 5 ms: 3 x 15 / 2 = 22.5, 3 x 25 / 2 = 37.5, 3 x 45 / 2 = 67.5, rounded up.
STACK_BURN_INS = {"H1v2": [15, 30, 60], "H1v1": [23, 38, 68]}


@pytest.mark.parametrize("chip", ["H1v2", "H1v1"])
@pytest.mark.parametrize("topologies", [("FF", "FF", "FF"), ("FF", "RC", "FF")], ids=["FF", "RC"])
def test_the_report_is_the_stationary_measurement_of_each_layer(chip, topologies):
    torch.manual_seed(0)
    net = StackNet(chip=chip, topologies=topologies)
    x = spike_trains(64, 140, 13, 0.2, 0.4, seed=1)
    report, messages = run(net, loader_of(x), xi_target=2.0, alpha=0.85, n_batches=4)
    assert not [m for m in messages if "reached" in m], messages  # every layer converged
    assert [entry.burn_in for entry in report] == STACK_BURN_INS[chip]
    with torch.no_grad():
        spikes, membranes = net(x)  # the same 64 samples the init used
    for layer, membrane, entry in zip(net.layers, membranes, report):
        xi = xi_of(membrane, layer.threshold, entry.burn_in)
        assert xi == pytest.approx(2.0, rel=TOLERANCE)
        assert entry.xi == pytest.approx(xi, rel=1e-4)
    if "RC" in topologies:
        with torch.no_grad():
            share = ff_share(net.layers[1], net.synapses[1](spikes[0]), spikes[1], report[1].burn_in)
        assert share == pytest.approx(0.85, rel=TOLERANCE)
        assert report[1].ff_share == pytest.approx(share, abs=1e-3)


def test_a_layer_fed_by_a_slower_one_inherits_its_burn_in():
    # The 10 ms layer's input rises with the 40 ms layer before it: both wait 3 x 40 ms.
    torch.manual_seed(0)
    net = StackNet(widths=(12, 6), taus=(40e-3, 10e-3))
    x = spike_trains(64, 120, 13, 0.2, 0.4, seed=1)
    report, messages = run(net, loader_of(x), n_batches=4)
    assert [entry.burn_in for entry in report] == [60, 60]
    assert not [m for m in messages if "reached" in m], messages
    with torch.no_grad():
        membranes = net(x)[1]
    for membrane in membranes:
        assert xi_of(membrane, 1.0, 60) == pytest.approx(2.0, rel=TOLERANCE)


def test_burn_in_taus_zero_measures_over_every_step():
    torch.manual_seed(0)
    net = StackNet(widths=(6,), taus=(10e-3,))
    x = spike_trains(32, 60, 13)
    (entry,) = fluct_init(net, [x], burn_in_taus=0.0)
    assert entry.burn_in == 0
    with torch.no_grad():
        assert entry.xi == pytest.approx(xi_of(net(x)[1][0], 1.0, 0), rel=1e-4)


def test_sequences_too_short_for_the_burn_in_fall_back_to_half_with_a_warning():
    torch.manual_seed(0)
    net = StackNet(widths=(6,), taus=(40e-3,))  # 3 x 40 ms at dt = 2 ms: 60 steps
    x = spike_trains(32, 50, 13)
    report, messages = run(net, [x])
    (message,) = [m for m in messages if "burn_in_taus" in m]
    assert "layer 'layers.0'" in message and "burn_in_taus=3.0 x 40 ms" in message and "= 60 steps" in message
    assert "50-step init sequences" in message and "measuring after 25 steps" in message
    assert "longer than 60 steps" in message and "smaller burn_in_taus" in message
    assert report[0].burn_in == 25
    with torch.no_grad():
        assert report[0].xi == pytest.approx(xi_of(net(x)[1][0], 1.0, 25), rel=1e-4)
    # A burn-in that fits gives no such warning.
    _, messages = run(net, [x], burn_in_taus=1.0)
    assert not [m for m in messages if "burn_in_taus" in m]


def test_the_hpo_guides_build_model_with_a_pickled_loader(tmp_path):
    # The vendor SDK's HPO guide: SurrogateSNN (frontend + 3 H1v2 pairs, forward on "cuda") and an
    # init loader read back with torch.load(..., weights_only=False).
    torch.manual_seed(0)
    x = spike_trains(64, 140, 13, 0.2, 0.4, seed=2)  # taus 10 / 20 / 40 ms at dt = 2 ms: 60 steps of burn-in
    torch.save(loader_of(x), tmp_path / "train.pt")
    init_loader = torch.load(tmp_path / "train.pt", weights_only=False)
    # The vendor SDK's forward sends x to "cuda": on a GPU machine the weights must be there too.
    model = SurrogateSNN(SEED_CFG).to("cuda" if torch.cuda.is_available() else "cpu")
    with cuda_calls_stay_on_cpu():
        report, messages = run(model, init_loader, xi_target=1.5, alpha=0.9, n_batches=2)
        with torch.no_grad():
            _, membranes = model(x[:32])  # the two init batches
    assert [r.name for r in report] == ["l1", "l2", "l3"]
    assert not [m for m in messages if "reached" in m or "burn_in_taus" in m], messages  # converged, long enough
    for membrane in membranes:
        assert xi_of(membrane, 1.0, 60) == pytest.approx(1.5, rel=TOLERANCE)


def tutorial_model(n_inputs, monkeypatch):
    monkeypatch.setattr(sdk_pattern, "n_inputs", n_inputs)
    return sdk_pattern.H2PatternGenerator(n_neurons=8, taus=25e-3, dt=1e-3)


def test_tutorial_seven_setup_initialises_in_range(monkeypatch):
    torch.manual_seed(42)
    model = tutorial_model(8, monkeypatch)
    x_train = (torch.rand(128, 100, 8) < 0.4).float()
    shuffle = torch.Generator().manual_seed(42)
    train_dl = DataLoader(TensorDataset(x_train), batch_size=16, shuffle=True, generator=shuffle)
    state = shuffle.get_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the tutorial's set-up must not warn
        (entry,) = fluct_init(model, train_dl, xi_target=2.0, alpha=0.85, n_batches=4)
    for weight in (model.synapse.weight, model.lif.recurrent_weights):
        assert float(weight.detach().abs().max()) <= 1.66
    shuffle.set_state(state)  # the same shuffled order: the 4 batches the init read
    x_init = torch.cat([batch[0] for _, batch in zip(range(4), train_dl)])
    assert entry.burn_in == 75  # 3 x 25 ms at 1 ms
    with torch.no_grad():
        spk, mem = model(x_init)
        share = ff_share(model.lif, model.synapse(x_init), spk, 75)
    assert xi_of(mem, model.lif.threshold, 75) == pytest.approx(2.0, rel=TOLERANCE)
    assert share == pytest.approx(0.85, rel=TOLERANCE)


def test_one_sparse_input_channel_needs_weights_outside_the_h1v2_range(monkeypatch):
    # One channel at 2 % per step: its mean drive at |w| = 1.66 is only
    # 0.02 * 0.25 * 1.66 / (1 - beta) = 0.21 theta, so xi = 2 needs larger weights.
    torch.manual_seed(0)
    model = tutorial_model(1, monkeypatch)
    x = (torch.rand(128, 100, 1) < 0.02).float()
    report, messages = run(model, DataLoader(TensorDataset(x), batch_size=16), xi_target=2.0, alpha=0.85)
    range_messages = [m for m in messages if re.match(r"fluct_init: \d+ of", m)]
    assert any("cannot drive the layer to high firing rates" in m for m in messages)  # and the capacity warning
    assert range_messages and report[0].out_of_range > 0
    counted = sum(int(re.match(r"fluct_init: (\d+) of", m).group(1)) for m in range_messages)
    assert counted == report[0].out_of_range
    assert any("synapse.weight" in m for m in range_messages)
    assert all("[-1.66, 1.66]" in m for m in range_messages)


def test_one_input_channel_at_tutorial_rate_warns_it_cannot_drive_high_rates(monkeypatch):
    # Tutorial 7's point: one channel at p = 0.4 delivers 0.4 spikes per step, so
    # charging theta = 1 in a step needs w = 1 / (0.4 * g) = 10 > 1.66 on H1v2
    # (eight channels need 1 / (3.2 * 0.25) = 1.25, in range). The xi = 2 weights
    # themselves fit (the leak integrates the weak input up to a sparse regime),
    # so this warning is the capacity one, not the range one.
    chip = H1v2Layer.default_chip
    assert 1.0 / (0.4 * chip.synaptic_gain) > chip.weight_limit >= 1.0 / (8 * 0.4 * chip.synaptic_gain)
    torch.manual_seed(0)
    model = tutorial_model(1, monkeypatch)
    x = (torch.rand(128, 100, 1) < 0.4).float()
    report, messages = run(model, DataLoader(TensorDataset(x), batch_size=16, shuffle=True), alpha=0.85)
    (message,) = messages
    assert "layer 'lif'" in message and "cannot drive the layer to high firing rates" in message
    rate = float(x[:64].sum() / x[:64].numel())  # what the 4 init batches hold (unshuffled order differs; approx)
    needed = float(re.search(r"mean weight of ([0-9.]+)", message).group(1))
    assert needed == pytest.approx(1.0 / (rate * chip.synaptic_gain), rel=0.1)
    assert "[-1.66, 1.66]" in message and "at least 7" in message  # ceil(1 * 10 / 1.66)
    assert report[0].out_of_range == 0 and report[0].xi == pytest.approx(2.0, rel=0.05)


def test_one_input_channel_on_h1v1_drives_high_rates_in_range():
    # H1v1's gain (1.0) and synaptic filter (a = exp(-1/5)) make the same single
    # channel enough: the steady current per step at w reaches theta well inside [-1, 1].
    from nwave_lightning.hardware import H1V1
    from nwave_lightning.init.theory import weight_for_threshold_per_step
    from nwave_lightning.layers import H1v1Layer, H1v1Synapse

    a = float(torch.exp(torch.tensor(-1.0 / 5.0)))
    assert weight_for_threshold_per_step(0.4, 1.0, H1V1, a) < 1.0
    torch.manual_seed(0)
    net = nn.Sequential(H1v1Synapse(1, 8), H1v1Layer(8, taus=25e-3, dt=1e-3))
    x = (torch.rand(64, 100, 1) < 0.4).float()
    _, messages = run(net, DataLoader(TensorDataset(x), batch_size=16), alpha=1.0)
    assert not [m for m in messages if "high firing rates" in m], messages


def test_verbose_output(monkeypatch, capsys):
    torch.manual_seed(42)
    model = tutorial_model(8, monkeypatch)
    x = (torch.rand(64, 100, 8) < 0.4).float()
    fluct_init(model, DataLoader(TensorDataset(x), batch_size=16), xi_target=2.0, alpha=0.85, n_batches=4, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "[fluct_init] ξ=2.0 α=0.85 dt=1.0ms (stacked, adaptive µ) [H1V2]"
    rates = re.fullmatch(r"Input → ν_mean=([\d.]+)Hz ν_var=([\d.]+)Hz ratio=([\d.]+)x", lines[1])
    assert rates and float(rates.group(1)) == pytest.approx(400, rel=0.05)  # p = 0.4 per 1 ms step
    assert float(rates.group(2)) == pytest.approx(240, rel=0.05)  # Bernoulli: p (1 - p) per step
    assert re.fullmatch(r"Layer 1 \| ν_in=[\d.]+Hz µ_W=-?[\d.]+ σ_FF=[\d.]+ σ_RC=[\d.]+ µ_U=-?[\d.]+", lines[2])
    assert "measured ξ=" in lines[3] and "FF share=" in lines[3] and "2nd condition: adaptive µ" in lines[3]
    assert lines[-1] == "[fluct_init] done."


def test_quiet_by_default(capsys):
    net = StackNet(widths=(6,), taus=(10e-3,))
    fluct_init(net, [spike_trains(16, 30, 13)])
    assert capsys.readouterr().out == ""


def test_mode_grad_state_and_other_modules_are_left_alone():
    net = StackNet(widths=(6, 4), taus=(10e-3, 20e-3))
    net.train()
    net.layers[1].eval()
    net.readout = nn.Linear(2, 2)  # not an H1 block: untouched
    before = net.readout.weight.detach().clone()
    report, _ = run(net, [spike_trains(16, 30, 13)])
    assert net.training and net.synapses[0].training and not net.layers[1].training
    assert torch.is_grad_enabled()
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    assert torch.equal(net.readout.weight, before)
    assert [r.name for r in report] == ["layers.0", "layers.1"]


def test_a_model_that_rescales_the_current_is_refined_on_the_model_itself():
    class Doubling(nn.Module):
        def __init__(self):
            super().__init__()
            self.s = H1v2Synapse(10, 6)
            self.l = H1v2Layer(6, taus=20e-3, dt=1e-3)

        def forward(self, x):
            return self.l(2.0 * self.s(x))  # the pair alone would see half this current

    torch.manual_seed(0)
    model, x = Doubling(), spike_trains(32, 100, 10, 0.3, 0.3)
    (entry,) = fluct_init(model, [x[:16], x[16:]], n_batches=2)
    assert entry.burn_in == 60  # 3 x 20 ms at 1 ms
    with torch.no_grad():
        assert xi_of(model(x)[1], 1.0, 60) == pytest.approx(2.0, rel=TOLERANCE)


def test_a_layer_fed_by_two_synapses_and_heterogeneous_taus():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = H1v2Synapse(6, 5), H1v2Synapse(4, 5)
            self.l = H1v2Layer(5, taus=torch.linspace(5e-3, 60e-3, 5), dt=1e-3, layer_topology="RC")
            self.layer_pairs = [(self.a, self.l), (self.b, self.l)]

        def forward(self, x):
            prepare_net(self)
            return self.l(self.a(x[..., :6]) + self.b(x[..., 6:]))

    torch.manual_seed(0)
    model, x = TwoInputs(), spike_trains(32, 240, 10, 0.1, 0.4)
    report, messages = run(model, [x], alpha=0.9)
    assert report[0].burn_in == 180  # 3 x the slowest tau, 60 ms, at 1 ms
    with torch.no_grad():
        spk, mem = model(x)
        share = ff_share(model.l, model.a(x[..., :6]) + model.b(x[..., 6:]), spk, 180)
    assert xi_of(mem, 1.0, 180) == pytest.approx(2.0, rel=TOLERANCE)
    assert share == pytest.approx(0.9, rel=TOLERANCE)
    assert len(report) == 1


def test_round_tripping_parametrisations_are_written_through_right_inverse():
    class Doubled(nn.Module):
        def forward(self, v):
            return 2.0 * v

        def right_inverse(self, w):
            return w / 2.0

    torch.manual_seed(0)
    net = StackNet(widths=(6,), taus=(10e-3,))
    parametrize.register_parametrization(net.synapses[0], "weight", Doubled())
    x = spike_trains(16, 40, 13)
    report = fluct_init(net, [x])
    with torch.no_grad():
        assert xi_of(net(x)[1][0], 1.0, 15) == pytest.approx(2.0, rel=TOLERANCE)  # 3 x 10 ms at 2 ms
    assert report[0].xi == pytest.approx(2.0, rel=0.05)


def test_a_sign_parametrisation_is_refused_and_the_model_kept():
    net = StackNet(widths=(6, 4), taus=(10e-3, 20e-3))
    parametrize.register_parametrization(net.synapses[1], "weight", SignBlockParametrization(net.synapses[1].weight, 1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match="synapses.1.weight is parametrised .*SignBlockParametrization.*before"):
        fluct_init(net, [spike_trains(16, 40, 13)])
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"xi_target": 0.0}, "xi_target=0.0 must be a finite number > 0"),
        ({"xi_target": -1.0}, "xi_target=-1.0"),
        ({"xi_target": float("nan")}, "xi_target=nan"),
        ({"xi_target": True}, "xi_target=True"),
        ({"alpha": 1.5}, r"alpha=1.5 must be in \[0, 1\]"),
        ({"alpha": -0.1}, r"alpha=-0.1 must be in \[0, 1\]"),
        ({"n_batches": 0}, "n_batches=0 must be a positive integer"),
        ({"n_batches": 2.0}, "n_batches=2.0"),
        ({"burn_in_taus": -1.0}, "burn_in_taus=-1.0 must be a finite number >= 0"),
        ({"burn_in_taus": float("inf")}, "burn_in_taus=inf"),
        ({"burn_in_taus": True}, "burn_in_taus=True"),
        ({"burn_in_taus": "3"}, "burn_in_taus='3'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fluct_init(StackNet(widths=(6,), taus=(10e-3,)), [spike_trains(4, 10, 13)], **kwargs)


def test_infeasible_targets_and_inputs():
    net = StackNet(widths=(6, 4), taus=(10e-3, 20e-3), topologies=("FF", "RC"))
    with pytest.raises(ValueError, match=r"alpha=0 leaves no variance .*\['layers.1'\]"):
        fluct_init(net, [spike_trains(4, 40, 13)], alpha=0.0)
    with pytest.raises(ValueError, match="loader yielded no batches"):
        fluct_init(net, DataLoader(TensorDataset(torch.zeros(0, 40, 13)), batch_size=4))
    with pytest.raises(ValueError, match="layer 'layers.0' receives no input fluctuation"):
        fluct_init(net, [torch.zeros(4, 40, 13)])
    with pytest.raises(ValueError, match="no H1 synapse/layer pairs"):
        fluct_init(nn.Sequential(nn.Linear(3, 3)), [torch.zeros(2, 3)])
    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        fluct_init("net", [torch.zeros(2, 3)])


def test_a_classifier_initialised_on_sparse_keyword_input_learns():
    # Regression: with positive-mean first-layer weights (the dense-input branch) every neuron
    # followed the total spike count, which keywords and distractors share, and training settled
    # on equal rates for both classes (validation accuracy 0.5). Centred weights learn.
    from nwave_lightning.data import KeywordSpottingDataModule
    from nwave_lightning.metrics import accuracy_population
    from nwave_lightning.models import H1Classifier, PopulationLoss

    torch.manual_seed(0)
    data = KeywordSpottingDataModule(n_train=512, n_val=128, batch_size=32, seed=0)
    data.setup("fit")
    net = H1Classifier(in_ch=13, num_classes=2, neurons_per_class=8, hidden=[16, 32], taus=[0.01, 0.02, 0.04])
    report, _ = run(net, data.train_dataloader(), xi_target=2.0, alpha=1.0, n_batches=4)
    assert report[0].centered  # sparse input: the balanced branch
    first = net.synapses[0].weight.detach()
    assert abs(float(first.mean())) < 0.25 * float(first.std())  # balanced, not mean driven
    loss_fn = PopulationLoss(num_classes=2, neurons_per_class=8, correct_rate=0.35, incorrect_rate=0.05)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(8):
        for x, y in data.train_dataloader():
            spikes, membranes = net(x)
            loss = loss_fn(spk_out=spikes[-1], y=y, spikes_list=spikes, membranes_list=membranes).total
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        x, y = data.datasets["val"].tensors
        accuracy = float(accuracy_population(net(x)[0][-1], y, num_classes=2))
    assert accuracy >= 0.8
