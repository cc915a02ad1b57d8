"""Bring your own time series: arrays -> encoder -> H1v2 classifier -> chip-ready accuracy, beside a GRU.

This is the script behind ``tutorials/README.md`` (section "Bring your own time
series"). It starts where a user with their own recordings starts: a list of
variable-length, multichannel, analog sequences ``(T_i, C)`` and a label each.

The data: scikit-learn's bundled handwritten digits (1797 samples, 10 classes),
read as a sensor sweeping across each 8x8 image from left to right. Every
column is one time step and the 8 pixel rows are 8 channels; the sweep starts
at the first column with ink and stops after the last, so sequences last 2 to 8
steps (most of them 6). Why this set: no labelled time-series set ships with the packages the
framework depends on (scikit-learn's ``fetch_*`` sets and ``scipy.datasets``
download their files; matplotlib's sample EEG and membrane traces carry no
labels), and this one is installed with scikit-learn, so the tutorial runs
offline and anyone can check its numbers. It is small and easy; what it shows
is the path your arrays take, not a benchmark.

The path:

1. ``ArrayDataModule(sequences, labels, val_fraction=0.2, test_fraction=0.2)``:
   stratified splits, every channel standardised with the training split's
   real steps (so values are signed), padding at the end with a mask.
2. The encoder inside the model, ``Compose([OnOff(scale=1), Hold(4)])``: the
   H1v2 frontend clips its input to [0, 1], so ``OnOff`` puts the negative half
   of each channel on a channel of its own (8 -> 16 channels), and ``Hold``
   gives the layers 4 steps per sample (T -> 4 T).
3. ``H1Classifier`` (frontend -> 128 RC -> 64 RC -> 10 x 4 readout) trained by
   ``SNNModule`` with its defaults: hardware-aware (sign annealing, weights
   clamped to the chip's range), logging ``val_chip_acc``, the accuracy of
   ``to_chip(net)``, the network the chip runs. The loss and the metric take the
   class count from the net and ignore padded steps.
4. The checkpoint with the best ``val_chip_acc`` is tested on the held-out split.
5. For honesty, a non-spiking baseline of similar size, a one-layer GRU with
   about as many parameters, trained on the same standardised arrays and split
   (reading each sequence's state at its last real step).

    python tutorials/your_time_series.py            # the full run (a few minutes on one thread)
    python tutorials/your_time_series.py --tiny     # seconds: a smoke run on 300 samples
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import Callback, ModelCheckpoint  # noqa: E402

from nwave_lightning.data import ArrayDataModule  # noqa: E402
from nwave_lightning.encode import Compose, Hold, OnOff  # noqa: E402
from nwave_lightning.io import atomic_write  # noqa: E402
from nwave_lightning.metrics import PopulationAccuracy  # noqa: E402
from nwave_lightning.models import H1Classifier, PopulationLoss  # noqa: E402
from nwave_lightning.training import SNNModule  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def digit_sweeps(n: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """The digits as left-to-right sweeps: one ``(T_i, 8)`` array per image, from its first to its last ink column.

    Example:
        >>> sweeps, labels = digit_sweeps(3)
        >>> [s.shape for s in sweeps], labels.tolist()
        ([(6, 8), (5, 8), (6, 8)], [0, 1, 2])
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images[:n], digits.target[:n]
    sweeps = []
    for image in images:
        columns = image.T / 16.0  # (8 columns = steps, 8 rows = channels)
        ink = np.flatnonzero(columns.sum(axis=1) > 0)
        sweeps.append(columns[ink[0] : ink[-1] + 1])
    return sweeps, labels


class History(Callback):
    """The epoch's validation values, read from ``trainer.callback_metrics`` once the module has logged them."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys, self.values = keys, {key: [] for key in keys}

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        for key in self.keys:
            self.values[key].append(float(trainer.callback_metrics[key]))


def spiking_model(in_ch: int, num_classes: int, hidden=(128, 64), hold: int = 4, scale: float = 1.0) -> H1Classifier:
    return H1Classifier(
        in_ch=in_ch,
        num_classes=num_classes,
        neurons_per_class=4,
        hidden=list(hidden),
        taus=[0.02, 0.04, 0.04],
        dt=1e-3,
        topology=["RC", "RC", "FF"],
        encoder=Compose([OnOff(scale=scale), Hold(hold)]),
    )


class GRUBaseline(nn.Module):
    """A one-layer GRU reading each sequence's state at its last real step, then a linear readout."""

    def __init__(self, in_ch: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_ch, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(x)  # causal: padding after the last real step cannot change it
        last = states[torch.arange(len(x)), lengths - 1]
        return self.readout(last)


def gru_hidden_for(parameters: int, in_ch: int, num_classes: int) -> int:
    """The GRU width whose parameter count comes closest to ``parameters``."""
    count = lambda h: 3 * (h * in_ch + h * h + 2 * h) + h * num_classes + num_classes  # noqa: E731
    return min(range(4, 512), key=lambda h: abs(count(h) - parameters))


def _lengths(batch) -> torch.Tensor:
    x = batch[0]
    return batch[2]["mask"].sum(dim=1) if len(batch) == 3 else torch.full((len(x),), x.shape[1])


def train_baseline(dm: ArrayDataModule, hidden: int, epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    net = GRUBaseline(dm.num_features, hidden, dm.num_classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=1e-4)

    def accuracy(loader) -> float:
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for batch in loader:
                correct += int((net(batch[0], _lengths(batch)).argmax(1) == batch[1]).sum())
                total += len(batch[1])
        return correct / total

    history, best, best_state = [], -1.0, None
    for epoch in range(epochs):
        net.train()
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(batch[0], _lengths(batch)), batch[1])
            loss.backward()
            optimizer.step()
        scheduler.step()
        history.append(accuracy(dm.val_dataloader()))
        if history[-1] > best:  # the same selection as the SNN's checkpoint: best validation epoch
            best, best_state = history[-1], {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "val_acc": history,
        "best_val_acc": best,
        "test_acc": accuracy(dm.test_dataloader()),
    }


def plot_input(dm: ArrayDataModule, net: H1Classifier, path: str) -> None:
    """One validation sequence: standardised, encoded (OnOff + Hold) and as the frontend's spikes."""
    x, y, meta = next(iter(dm.val_dataloader()))
    index = int(torch.argmin(meta["mask"].sum(1)))  # a short one: its padding shows
    sample, length = x[index : index + 1], int(meta["mask"][index].sum())
    with torch.no_grad():
        encoded = net.encoder(sample)
        spikes = net.frontend(encoded)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    panels = (
        (sample[0], f"standardised sweep (label {int(y[index])}), {length} real steps", "coolwarm"),
        (encoded[0], f"encoded ({net.encoder.encoders[0].extra_repr()}, Hold {encoded.shape[1] // sample.shape[1]})", "viridis"),
        (spikes[0], "H1v2 frontend spikes", "Greys"),
    )
    hold = encoded.shape[1] // sample.shape[1]
    for ax, (image, title, cmap) in zip(axes, panels):
        limit = float(image.abs().max()) or 1.0
        ax.imshow(image.T.numpy(), aspect="auto", cmap=cmap, vmin=-limit if cmap == "coolwarm" else 0, vmax=limit, interpolation="nearest")
        ax.set(title=title, xlabel="time step", ylabel="channel")
    for ax, steps in zip(axes, (length, hold * length, hold * length)):
        ax.axvline(steps - 0.5, color="r", linestyle="--", linewidth=1)  # where padding starts
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def plot_curves(history: dict, baseline: dict, path: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = np.arange(1, len(history["val_acc"]) + 1)
    ax.plot(epochs, history["val_acc"], label="H1v2 SNN, float (val_acc)")
    ax.plot(epochs, history["val_chip_acc"], label="H1v2 SNN, chip-ready (val_chip_acc)")
    ax.plot(np.arange(1, len(baseline["val_acc"]) + 1), baseline["val_acc"], label=f"GRU baseline ({baseline['params']} parameters)")
    ax.axhline(0.1, color="k", linewidth=0.8, linestyle=":", label="chance")
    ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1), title="Digit sweeps: validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--samples", type=int, default=None, help="use the first N images (default: all 1797)")
    parser.add_argument("--tiny", action="store_true", help="300 samples, 3 epochs: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, nargs=2, default=[128, 64], help="widths of the two hidden layers")
    parser.add_argument("--hold", type=int, default=4, help="steps each sample is held (Hold(k))")
    parser.add_argument("--scale", type=float, default=1.0, help="OnOff's scale (standard deviations per spike/step)")
    parser.add_argument("--figures", default=os.path.join(HERE, "figures"))
    parser.add_argument("--runs", default="runs", help="where the best checkpoint is kept")
    args = parser.parse_args(argv)
    if args.tiny:
        args.samples, args.epochs, args.hidden = 300, 3, [32, 16]
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no accelerator banner: the script prints its results
    pl.seed_everything(args.seed, verbose=False)

    sweeps, labels = digit_sweeps(args.samples)
    dm = ArrayDataModule(sweeps, labels, val_fraction=0.2, test_fraction=0.2, batch_size=32, seed=args.seed)

    net = spiking_model(dm.num_features, dm.num_classes, args.hidden, args.hold, args.scale)
    module = SNNModule(net, loss=PopulationLoss(correct_rate=0.35, incorrect_rate=0.02), metrics={"acc": PopulationAccuracy()}, lr=1e-2,
                       lr_scheduler={"name": "cosine", "eta_min": 1e-4})
    history = History(("val_acc", "val_chip_acc"))
    best = ModelCheckpoint(dirpath=os.path.join(args.runs, "your_time_series"), monitor="val_chip_acc", mode="max", filename="best")
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, callbacks=[history, best],
                         enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    snn_wall = time.perf_counter() - start
    tested = trainer.test(module, datamodule=dm, ckpt_path=best.best_model_path, verbose=False)[0]

    snn_params = sum(p.numel() for p in net.parameters())
    gru_hidden = gru_hidden_for(snn_params, dm.num_features, dm.num_classes)
    start = time.perf_counter()
    baseline = train_baseline(dm, gru_hidden, args.epochs, args.seed)
    baseline_wall = time.perf_counter() - start

    os.makedirs(args.figures, exist_ok=True)
    plot_input(dm, module.net, os.path.join(args.figures, "timeseries_input.png"))
    plot_curves(history.values, baseline, os.path.join(args.figures, "timeseries_curves.png"))
    chip = history.values["val_chip_acc"]
    best_epoch = int(np.argmax(chip)) + 1
    splits = {name: len(dm.dataset(name)) for name in ("train", "val", "test")}
    results = {
        "data": "scikit-learn digits as left-to-right sweeps (8 channels, 2-8 steps)",
        "samples": len(labels),
        "splits": splits,
        "lengths": {"min": int(min(len(s) for s in sweeps)), "max": int(max(len(s) for s in sweeps))},
        "epochs": args.epochs,
        "seed": args.seed,
        "snn": f"OnOff(scale={args.scale:g}) + Hold({args.hold}) -> H1v2 frontend -> {args.hidden[0]} RC -> {args.hidden[1]} RC -> 10 x 4",
        "snn_params": snn_params,
        "snn_best_epoch": best_epoch,  # by the chip-ready validation accuracy, as the checkpoint
        "snn_best_val_chip_acc": round(chip[best_epoch - 1], 4),
        "snn_val_acc_at_best_epoch": round(history.values["val_acc"][best_epoch - 1], 4),
        "snn_test_acc": round(float(tested["test_acc"]), 4),
        "snn_test_chip_acc": round(float(tested["test_chip_acc"]), 4),
        "snn_wall_time_s": round(snn_wall, 1),
        "baseline": f"GRU, one layer, hidden {gru_hidden}, on the standardised arrays",
        "baseline_params": baseline["params"],
        "baseline_best_val_acc": round(baseline["best_val_acc"], 4),
        "baseline_test_acc": round(baseline["test_acc"], 4),
        "baseline_wall_time_s": round(baseline_wall, 1),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared)",
    }
    path = os.path.join(args.figures, "timeseries_results.json")
    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            json.dump(results, handle, indent=2)

    atomic_write(path, write)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    sys.exit(0 if run() else 1)
