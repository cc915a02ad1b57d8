"""The quiet console: Lightning's tips and the third-party deprecations dropped, no v_num column."""

import logging
import warnings

import lightning.pytorch as pl
import torch

from nwave_lightning.console import EpochProgressBar, quiet_third_party, quiet_trial_process


def test_tips_and_the_leafspec_deprecation_are_dropped_and_other_messages_kept(caplog):
    quiet_third_party()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        logger.info("💡 Tip: For seamless cloud logging ...")
        logger.info("`Trainer.fit` stopped: `max_epochs=2` reached.")
    assert [r.getMessage() for r in caplog.records] == ["`Trainer.fit` stopped: `max_epochs=2` reached."]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_third_party()  # the filter goes in front again
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("a warning of the run itself", UserWarning)
    assert [str(w.message) for w in caught] == ["a warning of the run itself"]


def test_a_script_with_its_own_trainer_gets_the_quiet_console_from_snn_module(tmp_path, caplog):
    """No `nwave` command involved: building an SNNModule is enough to drop the tips and the LeafSpec deprecation."""
    from nwave_lightning.data import KeywordSpottingDataModule
    from nwave_lightning.models import H1Classifier, PopulationLoss
    from nwave_lightning.training import SNNModule

    logging.getLogger("lightning.pytorch.utilities.rank_zero").filters.clear()  # as in a fresh process
    # Lightning's INFO lines at their default level (a trial process or a tune command before may have raised it).
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        warnings.simplefilter("default")
        module = SNNModule(H1Classifier(in_ch=13, num_classes=2, neurons_per_class=2, hidden=[8]),
                           loss=PopulationLoss(num_classes=2, neurons_per_class=2))
        trainer = pl.Trainer(max_epochs=1, enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                             default_root_dir=str(tmp_path), accelerator="cpu")
        trainer.fit(module, datamodule=KeywordSpottingDataModule(n_train=16, n_val=16, batch_size=16))
    lines = [r.getMessage() for r in caplog.records]
    assert any("`max_epochs=1` reached" in line for line in lines)  # Lightning's own lines stay
    assert not [line for line in lines if "Tip" in line]
    assert not [w for w in caught if "LeafSpec" in str(w.message)]


def test_a_trial_process_keeps_warnings_and_drops_info_lines():
    quiet_trial_process()
    for name in ("lightning.pytorch", "ray.train"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
        assert logging.getLogger(name).isEnabledFor(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.INFO)  # as Lightning leaves it for the other tests


class _Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_progress_bar_shows_the_logged_values_without_v_num(tmp_path):
    bar = EpochProgressBar()
    trainer = pl.Trainer(max_epochs=1, callbacks=[bar], default_root_dir=tmp_path, enable_model_summary=False,
                         logger=pl.loggers.TensorBoardLogger(str(tmp_path)), enable_checkpointing=False)
    data = torch.utils.data.TensorDataset(torch.rand(4, 2))
    trainer.fit(_Tiny(), torch.utils.data.DataLoader(data, batch_size=2))
    shown = bar.get_metrics(trainer, trainer.lightning_module)
    assert "train_loss" in shown and "v_num" not in shown
