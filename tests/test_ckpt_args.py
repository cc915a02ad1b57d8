"""`--ckpt_path`: `last` resolved and announced, damaged files refused, overriding hyper-parameters refused."""

import pytest

from nwave_lightning.checkpoints import CheckpointCorruptError
from nwave_lightning.cli import main
from tests.cli._quickstart import QUICKSTART, TINY


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["nwave"])


def _fit(tmp_path, *extra):
    return main(["fit", "--config", QUICKSTART, *TINY, "--trainer.max_epochs=1", f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import sys

    saved, sys.argv = sys.argv, ["nwave"]
    try:
        tmp_path = tmp_path_factory.mktemp("trained")
        cli = _fit(tmp_path)
        return tmp_path, cli.trainer.checkpoint_callback.last_model_path
    finally:
        sys.argv = saved


def test_ckpt_path_last_says_which_checkpoint(trained, capsys):
    tmp_path, last = trained
    _fit(tmp_path, "--trainer.max_epochs=2", "--ckpt_path", "last")
    assert f"--ckpt_path last -> {last} (epoch 1, step" in capsys.readouterr().err


def test_a_checkpoint_whose_hyper_parameters_override_the_command_is_refused(trained):
    tmp_path, last = trained
    with pytest.raises(ValueError, match=r"differ from arguments given on this command line.*lr: checkpoint 0\.02, command 0\.5.*Drop those"):
        _fit(tmp_path, "--model.init_args.lr=0.5", f"--ckpt_path={last}")


def test_config_values_give_way_to_the_checkpoint_with_a_message(trained, tmp_path, capsys):
    _, last = trained
    config = tmp_path / "lr.yaml"
    config.write_text("model:\n  init_args:\n    lr: 0.5\n")
    cli = main(["validate", "--config", QUICKSTART, "--config", str(config), *TINY,
                f"--trainer.logger.init_args.save_dir={tmp_path / 'v'}", f"--ckpt_path={last}"])
    assert "take precedence over the config's: lr: checkpoint 0.02, command 0.5" in capsys.readouterr().err
    assert cli.model.lr == 0.02


def test_a_truncated_checkpoint_is_named_before_anything_is_built(trained, tmp_path):
    _, last = trained
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(open(last, "rb").read()[:1000])
    with pytest.raises(CheckpointCorruptError, match=f"checkpoint {broken} is truncated or corrupt"):
        main(["validate", "--config", QUICKSTART, *TINY, f"--ckpt_path={broken}"])
