import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from nwave_lightning.callbacks import ActivityFigures
from nwave_lightning.callbacks.examples import ParticipationFigures

from ._tiny import TinyModule, loaders, make_trainer


def image_steps(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    acc.Reload()
    if tag not in acc.Tags()["images"]:
        return []
    return [(event.step, event.width, event.height) for event in acc.Images(tag)]


def reference_spikes(module):
    """The network's spikes on the whole validation set, computed outside Lightning."""
    x = torch.cat([batch[0] for batch in loaders()[1]])
    with torch.no_grad():
        spikes, _ = module.net(x)
    return spikes


@pytest.mark.parametrize("stepwise", [False, True])
def test_figure_every_n_epochs_with_exact_statistics(tmp_path, stepwise):
    module = TinyModule(stepwise=stepwise)
    figures = ActivityFigures(every_n_epochs=2)
    trainer = make_trainer(tmp_path, 4, [figures], num_sanity_val_steps=1)
    trainer.fit(module, *loaders())
    steps = image_steps(trainer.log_dir, "val/activity")
    assert [s for s, _, _ in steps] == [2, 4] and all(w > 100 and h > 100 for _, w, h in steps)
    assert figures.figures_logged == 2
    spikes = reference_spikes(module)  # the weights did not change after the last validation
    assert list(figures.last_statistics) == ["l1", "l2"]
    for name, expected in zip(("l1", "l2"), spikes):
        torch.testing.assert_close(figures.last_statistics[name], expected.mean(dim=(0, 1)))
    torch.testing.assert_close(figures.last_raster, spikes[-1][0])


def test_custom_statistic_subclass(tmp_path):
    module = TinyModule()
    figures = ParticipationFigures(readout_layer="l1")
    trainer = make_trainer(tmp_path, 1, [figures])
    trainer.fit(module, *loaders())
    spikes = reference_spikes(module)
    torch.testing.assert_close(figures.last_statistics["l2"], (spikes[1].sum(dim=1) > 0).float().mean(dim=0))
    torch.testing.assert_close(figures.last_raster, spikes[0][0])  # the named readout
    assert len(image_steps(trainer.log_dir, "val/activity")) == 1


def test_other_loggers_are_skipped_and_hooks_removed(tmp_path):
    module = TinyModule()
    figures = ActivityFigures()
    trainer = make_trainer(tmp_path, 2, [figures], logger=CSVLogger(str(tmp_path)))
    trainer.fit(module, *loaders())
    assert figures.figures_logged == 0
    assert not any(layer._forward_hooks for layer in (module.net.l1, module.net.l2))


def test_bad_arguments_and_config(tmp_path):
    with pytest.raises(ValueError, match=r"every_n_epochs=0 must be an integer >= 1"):
        ActivityFigures(every_n_epochs=0)
    with pytest.raises(ValueError, match=r"readout_layer='out' is not an H1 layer; the H1 layers are \['l1', 'l2'\]"):
        make_trainer(tmp_path, 1, [ActivityFigures(readout_layer="out")]).fit(TinyModule(), *loaders())
    assert ActivityFigures.from_config({}) is None
    assert ActivityFigures.from_config({"every_n_epochs": 3}).every_n_epochs == 3
    figures = ActivityFigures()
    figures.figures_logged = 4
    other = ActivityFigures()
    other.load_state_dict(figures.state_dict())
    assert other.figures_logged == 4
