"""CompositeLoss: the vendor SDK's three-term loss, key scheme, signature filtering, errors."""

import pytest
import torch

from nwave_lightning.loss import (
    CompositeLoss,
    LossOutput,
    balanced_population_mse,
    firing_rate_target_mse_loss,
    topology_loss,
    weight_magnitude_loss,
)

from ._models import TinySurrogateSNN


# --- the vendor SDK's build_main_loss, verbatim but for the import path -------------
def balanced_pop_term(spk_out, y, config, **kwargs):
    return {
        "mse": balanced_population_mse(
            spk_out,
            y,
            num_classes=config["num_classes"],
            neurons_per_class=config["neurons_per_class"],
            correct_rate=config["correct_rate"],
            incorrect_rate=config["incorrect_rate"],
        )
    }


def firing_rate_term(spikes_list, config, **kwargs):
    return {
        "firing_rate": firing_rate_target_mse_loss(
            spikes_list=spikes_list,
            offsets=config["offsets_fr"],
            multipliers=config["multipliers_fr"],
        )
    }


def hardware_reg_term(model, config, **kwargs):
    return {
        "weight_mag": weight_magnitude_loss(model, limit=config["limit"]),
        "topology": topology_loss(model, lam=config["lambda_topo"]),
    }


def build_main_loss(loss_cfg):
    return (
        CompositeLoss()
        .add_loss_term(
            "population",
            balanced_pop_term,
            config={
                "num_classes": loss_cfg["num_classes"],
                "neurons_per_class": loss_cfg["neurons_per_class"],
                "correct_rate": loss_cfg["correct_rate"],
                "incorrect_rate": loss_cfg["incorrect_rate"],
            },
            weight=loss_cfg.get("w_population", 1.0),
        )
        .add_loss_term(
            "activity",
            firing_rate_term,
            config={
                "offsets_fr": loss_cfg["offsets_fr"],
                "multipliers_fr": loss_cfg["multipliers_fr"],
            },
            weight=loss_cfg.get("w_activity", 1.0),
        )
        .add_loss_term(
            "hardware",
            hardware_reg_term,
            config={
                "limit": loss_cfg.get("weight_limit", 0.9),
                "lambda_topo": loss_cfg.get("lambda_topology", 1e-3),
            },
            weight=loss_cfg.get("w_hardware", 1.0),
        )
    )


LOSS_CFG = {
    "num_classes": 2,
    "neurons_per_class": 3,
    "correct_rate": 0.35,
    "incorrect_rate": 0.05,
    "offsets_fr": [0.05, 0.08, 0.10],
    "multipliers_fr": [10, 5, 1],
    "w_population": 2.0,
    "w_activity": 0.5,
    "w_hardware": 1e-2,
    "weight_limit": 0.8,
    "lambda_topology": 1e-2,
}


def _batch():
    model = TinySurrogateSNN(num_classes=2, neurons_per_class=3, rc=True)
    with torch.no_grad():
        model.s1.weight.mul_(4.0)  # strong input drive so every layer spikes
    x = (torch.rand(4, 25, 5) < 0.5).float()
    spikes_list, membranes_list = model(x)
    return model, spikes_list, membranes_list, torch.tensor([0, 1, 1, 0])


def test_seed_three_term_loss_gives_weighted_total_and_every_component():
    model, spikes_list, membranes_list, y = _batch()
    loss = build_main_loss(LOSS_CFG)
    out = loss(spk_out=spikes_list[-1], y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model)
    assert isinstance(out, LossOutput)

    mse = balanced_population_mse(spikes_list[-1], y, 2, 3, 0.35, 0.05)
    rate = firing_rate_target_mse_loss(spikes_list, [0.05, 0.08, 0.10], [10, 5, 1])
    magnitude = weight_magnitude_loss(model, limit=0.8)
    topology = topology_loss(model, lam=1e-2)
    assert magnitude.item() > 0 and topology.item() > 0 and rate.item() > 0
    expected = {
        "population/mse": mse,
        "population/total": mse,
        "activity/firing_rate": rate,
        "activity/total": rate,
        "hardware/weight_mag": magnitude,
        "hardware/topology": topology,
        "hardware/total": magnitude + topology,
        "total": 2.0 * mse + 0.5 * rate + 1e-2 * (magnitude + topology),
    }
    assert set(out.components) == set(expected)
    for key, value in expected.items():
        assert out.components[key].item() == pytest.approx(value.item(), rel=1e-6), key
    assert out.total.item() == out.components["total"].item()

    out.total.backward()
    assert model.s3.weight.grad is not None and model.l2.recurrent_weights.grad.abs().sum() > 0


def test_spk_out_defaults_to_the_last_layer():
    model, spikes_list, membranes_list, y = _batch()
    loss = build_main_loss(LOSS_CFG)
    a = loss(y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model)
    b = loss(spk_out=spikes_list[-1], y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model)
    assert a.total.item() == b.total.item()


def test_term_without_model_beside_term_with_model():
    seen = {}

    def task(spk_out, y):  # no model, no config, no **kwargs
        seen["task"] = (spk_out.shape, y.tolist())
        return spk_out.mean()

    def l1(model, config):
        seen["l1"] = config
        return {"l1": sum(p.abs().sum() for p in model.parameters())}

    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0]]))
    loss = CompositeLoss().add_loss_term("task", task, weight=3.0).add_loss_term("reg", l1, config={"k": 1}, weight=0.5)
    out = loss(spk_out=torch.ones(2, 3, 4), y=torch.tensor([0, 1]), spikes_list=None, membranes_list=None, model=net)
    assert seen == {"task": (torch.Size([2, 3, 4]), [0, 1]), "l1": {"k": 1}}
    assert {k: v.item() for k, v in out.components.items()} == {"task": 1.0, "reg/l1": 3.0, "reg/total": 3.0, "total": 4.5}


def test_loss_output_term_and_extra_kwargs():
    def structured(spk_out, **kwargs):
        assert kwargs["epoch"] == 7 and kwargs["config"] is None
        return LossOutput(total=spk_out.sum(), components={"a": torch.tensor(1.0), "b": torch.tensor(2.0)})

    out = CompositeLoss().add_loss_term("s", structured, weight=2)(spk_out=torch.ones(1, 1, 2), epoch=7)
    assert {k: v.item() for k, v in out.components.items()} == {"s/a": 1.0, "s/b": 2.0, "s/total": 2.0, "total": 4.0}


def test_introspection():
    loss = build_main_loss(LOSS_CFG)
    assert [t.name for t in loss.loss_terms] == ["population", "activity", "hardware"]
    assert [t.weight for t in loss.loss_terms] == [2.0, 0.5, 1e-2]
    assert loss.loss_terms[0].fn is balanced_pop_term and loss.loss_terms[2].config == {"limit": 0.8, "lambda_topo": 1e-2}
    assert len(loss) == 3
    assert repr(loss) == (
        "CompositeLoss(population=balanced_pop_term*2, activity=firing_rate_term*0.5, hardware=hardware_reg_term*0.01)"
    )
    assert isinstance(CompositeLoss().add_loss_term("t", torch.mean, weight=torch.tensor(0.5)).loss_terms[0].weight, float)


@pytest.mark.parametrize(
    "name,fn,weight,match",
    [
        ("population", torch.mean, 1.0, "'population' already exists"),
        ("total", torch.mean, 1.0, "not 'total'"),
        ("a/b", torch.mean, 1.0, "without '/'"),
        ("", torch.mean, 1.0, "non-empty string"),
        ("x", "not callable", 1.0, "must be callable"),
        ("x", torch.mean, float("nan"), "weight=nan for term 'x' must be a finite number"),
        ("x", torch.mean, "1", "weight='1' for term 'x' must be a finite number"),
    ],
)
def test_add_loss_term_rejects_bad_input(name, fn, weight, match):
    loss = CompositeLoss().add_loss_term("population", torch.mean)
    with pytest.raises(ValueError, match=match):
        loss.add_loss_term(name, fn, weight=weight)


def test_call_errors():
    with pytest.raises(ValueError, match="has no terms"):
        CompositeLoss()(spk_out=torch.ones(1))
    loss = build_main_loss(LOSS_CFG)
    _, spikes_list, membranes_list, y = _batch()
    with pytest.raises(ValueError, match="term 'hardware' needs model but the loss was called without it"):
        loss(y=y, spikes_list=spikes_list, membranes_list=membranes_list)
    bad = CompositeLoss().add_loss_term("bad", lambda spk_out: [spk_out])
    with pytest.raises(TypeError, match="term 'bad': a loss must return"):
        bad(spk_out=torch.ones(1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_seed_loss_on_cuda_matches_cpu():
    model, spikes_list, membranes_list, y = _batch()
    loss = build_main_loss(LOSS_CFG)
    cpu = loss(y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model)
    cuda = loss(y=y.cuda(), spikes_list=[s.cuda() for s in spikes_list], membranes_list=None, model=model.cuda())
    assert set(cpu.components) == set(cuda.components)
    for key, value in cpu.components.items():
        assert cuda.components[key].item() == pytest.approx(value.item(), rel=1e-5), key
