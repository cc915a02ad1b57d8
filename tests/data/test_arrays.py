"""ArrayDataModule: arrays, variable-length lists and .npy/.npz files in; checked, split, standardised, padded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nwave_lightning.data import ArrayDataModule
from nwave_lightning.encode import Hold


def _fixed(n=60, steps=7, channels=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(2.0, 3.0, size=(n, steps, channels)), np.arange(n) % classes


def _ragged(n=40, channels=2, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(1.0, 2.0, size=(int(t), channels)) for t in rng.integers(3, 11, size=n)], np.arange(n) % 2


def test_fixed_length_arrays_give_plain_batches_standardised_with_train_statistics():
    x, y = _fixed()
    x_val, y_val = _fixed(n=12, seed=5)
    dm = ArrayDataModule(x, y, x_val, y_val, batch_size=8, shuffle=False)
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 2 and batch[0].shape == (8, 7, 3) and batch[0].dtype == torch.float32
    mean, std = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)  # NumPy's, over every training step
    assert np.allclose(batch[0].numpy(), ((x[:8] - mean) / std), atol=1e-5)
    val_x = dm.dataset("val").tensors[0].numpy()
    assert np.allclose(val_x, (x_val - mean) / std, atol=1e-5)  # validation uses the training statistics
    assert dm.num_classes == 3 and dm.num_features == 3 and not dm.variable_length


def test_variable_length_lists_are_padded_masked_and_standardised_on_real_steps():
    x, y = _ragged()
    dm = ArrayDataModule(x, y, x_val=x[:6], y_val=y[:6], batch_size=5, shuffle=False)
    real = np.concatenate(x)  # only real steps count in the statistics
    mean, std = real.mean(0), real.std(0)
    xb, yb, meta = next(iter(dm.train_dataloader()))
    lengths = [len(s) for s in x[:5]]
    assert xb.shape == (5, max(lengths), 2)  # trimmed to the batch's longest sequence
    assert meta["mask"].sum(1).tolist() == lengths
    for i, sample in enumerate(x[:5]):
        assert np.allclose(xb[i, : len(sample)].numpy(), (sample - mean) / std, atol=1e-5)
        assert torch.all(xb[i, len(sample) :] == 0)  # padding is silent
    assert yb.tolist() == y[:5].tolist()


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    x, y = _fixed(n=180)
    y = np.repeat([0, 1, 2], [30, 60, 90])
    dm = ArrayDataModule(x, y, val_fraction=0.2, test_fraction=0.1, seed=3)
    val_y, test_y, train_y = (dm.dataset(s).tensors[1] for s in ("val", "test", "train"))
    assert torch.bincount(val_y).tolist() == [6, 12, 18]  # 20 % and 10 % of each class
    assert torch.bincount(test_y).tolist() == [3, 6, 9]
    assert len(train_y) + len(val_y) + len(test_y) == 180
    # the three splits are disjoint and cover the data: compare the samples themselves
    rows = lambda s: {tuple(np.round(r, 4)) for r in dm.dataset(s).tensors[0][:, 0].numpy()}  # noqa: E731
    assert not (rows("train") & rows("val")) and not (rows("val") & rows("test")) and not (rows("train") & rows("test"))
    again = ArrayDataModule(x, y, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert torch.equal(again.dataset("val").tensors[0], dm.dataset("val").tensors[0])
    other = ArrayDataModule(x, y, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert not torch.equal(other.dataset("val").tensors[0], dm.dataset("val").tensors[0])


def test_npz_and_npy_files(tmp_path):
    x, y = _fixed(n=30, steps=9)
    lengths = np.random.default_rng(0).integers(2, 10, size=30)
    np.savez(tmp_path / "train.npz", x=x, y=y, lengths=lengths)
    np.save(tmp_path / "x_val.npy", x[:9])
    np.save(tmp_path / "y_val.npy", y[:9])
    dm = ArrayDataModule(str(tmp_path / "train.npz"), x_val=str(tmp_path / "x_val.npy"), y_val=str(tmp_path / "y_val.npy"))
    assert dm.variable_length and dm.splits["train"].lengths.tolist() == lengths.tolist()
    assert len(dm.dataset("val")) == 9


def test_encoder_in_the_datamodule_holds_the_mask_and_keeps_padding_silent():
    x, y = _ragged(n=10)
    dm = ArrayDataModule(x, y, x_val=x, y_val=y, encoder=Hold(3), standardize=False, shuffle=False, batch_size=10)
    xb, _, meta = next(iter(dm.val_dataloader()))
    assert meta["mask"].sum(1).tolist() == [3 * len(s) for s in x]
    assert np.allclose(xb[0, : 3 * len(x[0])].numpy(), np.repeat(x[0], 3, axis=0), atol=1e-6)


def test_testing_on_the_validation_split_says_so():
    x, y = _fixed()
    dm = ArrayDataModule(x, y)
    with pytest.warns(UserWarning, match="testing runs on the validation split"):
        dm.test_dataloader()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x_train=np.zeros((10, 5, 2)), y_train=np.zeros(9)), r"x_train holds 10 samples but y_train holds 9 labels"),
        (dict(x_train=np.zeros((10, 5, 2)), y_train=np.arange(10) % 2, num_classes=2, x_val=np.zeros((4, 5, 2)), y_val=np.array([0, 1, 2, 1])),
         r"y_val\[2\] = 2 is outside \[0, 2\) for num_classes=2"),
        (dict(x_train=np.zeros((10, 5, 2)), y_train=np.arange(10) % 2 - 1), r"the labels hold -1; class indices start at 0"),
        (dict(x_train=np.where(np.arange(10)[:, None, None] == 3, np.nan, np.zeros((10, 5, 2))), y_train=np.arange(10) % 2),
         r"x_train\[3\] has a non-finite value \(NaN or inf\) at step 0"),
        (dict(x_train=np.zeros((10, 5)), y_train=np.arange(10) % 2), r"x_train has shape \(10, 5\) \(rank 2\).*x\[\.\.\., None\]"),
        (dict(x_train=[np.zeros(5)] * 10, y_train=np.arange(10) % 2), r"x_train\[0\] has shape \(5,\) \(rank 1\)"),
        (dict(x_train=np.zeros((10, 5, 2)), y_train=np.arange(10) % 2, lengths=np.full(10, 6)),
         r"lengths of train\[0\] = 6 is outside \[1, 5\]: x_train has T = 5"),
        (dict(x_train=np.zeros((10, 5, 2)), y_train=np.eye(2)[np.arange(10) % 2]), r"y_train has shape \(10, 2\).*not one-hot"),
        (dict(x_train=np.zeros((10, 5, 2)), y_train=np.arange(10) % 2, x_val=np.zeros((4, 5, 3)), y_val=np.arange(4) % 2),
         r"different channel counts"),
        (dict(x_train=np.zeros((3, 5, 2)), y_train=np.array([0, 1, 1])), r"cannot draw a stratified val"),
        (dict(x_train="missing.npz"), r"x_train='missing.npz' does not exist"),
    ],
)
def test_bad_input_is_named_before_training(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        ArrayDataModule(**kwargs)


def test_nan_in_padding_is_fine_but_not_on_real_steps():
    x, y = np.zeros((6, 4, 1)), np.arange(6) % 2
    x[:, 3] = np.nan  # padding marked by lengths 3: ignored
    dm = ArrayDataModule(x, y, x_val=x, y_val=y, lengths={"train": np.full(6, 3), "val": np.full(6, 3)})
    assert torch.isfinite(dm.dataset("train").x).all()


def test_yaml_route_with_npz_files_and_one_class_count(tmp_path, monkeypatch):
    """configs/data/arrays.yaml on .npz files; the class count is overridden once, in the net."""
    import sys
    from pathlib import Path

    from nwave_lightning.cli import main

    configs = Path(__file__).resolve().parents[2] / "configs"
    monkeypatch.setattr(sys, "argv", ["nwave"])
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    y = np.arange(48) % 3  # three classes: the model config says two
    x = rng.normal(size=(48, 12, 2)) + y[:, None, None]
    np.savez(tmp_path / "train.npz", x=x, y=y, lengths=rng.integers(6, 13, size=48))
    cli = main([
        "fit", "--model", str(configs / "model/keyword_spotting_h1v2.yaml"), "--data", str(configs / "data/arrays.yaml"),
        f"--data.init_args.x_train={tmp_path / 'train.npz'}", "--data.init_args.batch_size=16",
        "--model.init_args.net.init_args.in_ch=2", "--model.init_args.net.init_args.num_classes=3",
        "--model.init_args.net.init_args.encoder={class_path: nwave_lightning.encode.OnOff, init_args: {scale: 2.0}}",
        "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
    ])
    assert cli.datamodule.num_classes == 3 and cli.datamodule.variable_length
    assert cli.model.net.out_neurons == 3 * 8 and cli.model.net.frontend.in_ch == 4  # OnOff: 2 -> 4 channels
    metrics = cli.trainer.callback_metrics
    for key in ("val_loss", "val_acc", "val_chip_acc", "val_recall"):
        assert 0.0 <= float(metrics[key]) and np.isfinite(float(metrics[key])), key
