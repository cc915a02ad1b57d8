"""Configs and checkpoints written before nwave_lightning.module became nwave_lightning.training still load."""

import importlib
import sys

import pytest

from nwave_lightning.run import build_from_config
from nwave_lightning.training import SNNModule


def test_an_old_class_path_builds_the_same_module_and_names_the_new_one():
    sys.modules.pop("nwave_lightning.module", None)  # the warning comes with the first import
    with pytest.warns(FutureWarning, match="nwave_lightning.training.SNNModule"):
        run = build_from_config({
            "model": {"class_path": "nwave_lightning.module.SNNModule", "init_args": {
                "net": {"class_path": "nwave_lightning.models.H1Classifier",
                        "init_args": {"in_ch": 4, "num_classes": 2, "neurons_per_class": 2, "hidden": [8]}},
                "loss": {"class_path": "nwave_lightning.models.PopulationLoss",
                         "init_args": {"num_classes": 2, "neurons_per_class": 2}}}},
            "data": {"class_path": "nwave_lightning.data.KeywordSpottingDataModule", "init_args": {"n_train": 8, "n_val": 8}},
            "trainer": {"logger": False, "enable_checkpointing": False, "max_epochs": 1},
        })
    assert type(run.model) is SNNModule
    assert importlib.import_module("nwave_lightning.module").SNNModule is SNNModule
