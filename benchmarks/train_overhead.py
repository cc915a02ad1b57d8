"""Training overhead of SNNModule + Lightning Trainer versus a plain PyTorch loop.

Both sides train the same model (the quick start's 3-layer H1v2 classifier) on
the same batches (the built-in keyword-spotting task, 13 channels x 100 steps)
with the same optimizer, and validate once per epoch. Two pairings:

* ``loss only`` — SNNModule without metrics / activity / logger vs a loop that
  only trains and computes the validation loss: the framework's own cost.
* ``full`` — SNNModule with accuracy, per-layer activity and TensorBoard vs a
  loop that updates the same torchmetrics objects and writes the same scalars
  with ``SummaryWriter``: what a user of the vendor SDK's table actually pays.

A third variant, ``bare`` — the smallest LightningModule that trains the same
net with the same loss (no metrics, no logging), run in the ``loss only``
pairing — splits the overhead into Lightning's own loop (``bare / plain``)
and what SNNModule adds on top (``SNNModule / bare``).

Epoch times are wall-clock, per epoch, after one warm-up epoch; the variants
run interleaved, ``--rounds`` times, so load changes on a shared machine hit
both alike. The table shows medians (``--stat min``: minima) and the overhead
``lightning / plain - 1``.
One run::

    python benchmarks/train_overhead.py            # ~2-4 minutes on 2 CPU cores
    python benchmarks/train_overhead.py --epochs 3 --rounds 1   # a smoke run
    python benchmarks/train_overhead.py --batch-size 128        # 4x the work per step
    python benchmarks/train_overhead.py --hidden 128 64         # the digits model's widths

Lightning's loop costs a roughly fixed time per optimizer step (hooks, result
collection), so the overhead in percent shrinks as a step does more work.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter

from nwave_lightning.data import KeywordSpottingDataModule
from nwave_lightning.loss import as_loss_output
from nwave_lightning.metrics import ActivityMetric, PopulationAccuracy
from nwave_lightning.models import H1Classifier, PopulationLoss
from nwave_lightning.training import SNNModule

CLASSES, PER_CLASS = 2, 8


def build(seed: int, hidden=(16, 32)):
    torch.manual_seed(seed)
    net = H1Classifier(in_ch=13, num_classes=CLASSES, neurons_per_class=PER_CLASS, hidden=list(hidden), taus=[0.01, 0.02, 0.04])
    return net, PopulationLoss(num_classes=CLASSES, neurons_per_class=PER_CLASS)


class EpochClock(pl.Callback):
    """Wall time of every epoch (training + validation + epoch-end logging), start to start.

    The last epoch is not timed: its interval would include the end-of-fit teardown.
    """

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.marks.append(time.perf_counter())

    @property
    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def _timed_fit(module: pl.LightningModule, data, epochs: int, logger) -> list[float]:
    """Fit ``module`` with the settings every Lightning variant shares; epoch wall times."""
    clock = EpochClock()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=50,
    )
    trainer.fit(module, data.train_dataloader(), data.val_dataloader())
    return clock.epochs


def run_lightning(data, epochs: int, full: bool, seed: int, log_dir: str, hidden=(16, 32)) -> list[float]:
    net, loss = build(seed, hidden)
    metrics = {"acc": PopulationAccuracy(num_classes=CLASSES)} if full else None
    module = SNNModule(net, loss=loss, metrics=metrics, lr=1e-2, activity=full)
    logger = TensorBoardLogger(log_dir, name="lightning", default_hp_metric=False) if full else False
    return _timed_fit(module, data, epochs, logger)


class BareModule(pl.LightningModule):
    """The least a LightningModule needs to train ``net`` with ``loss``: Lightning's own floor."""

    def __init__(self, net, loss) -> None:
        super().__init__()
        self.net, self.loss = net, loss

    def _loss(self, batch):
        x, y = batch
        spikes, membranes = self.net(x)
        return as_loss_output(self.loss(spk_out=spikes[-1], y=y, spikes_list=spikes, membranes_list=membranes, model=self.net)).total

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self._loss(batch)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def run_bare(data, epochs: int, full: bool, seed: int, log_dir: str, hidden=(16, 32)) -> list[float]:
    net, loss = build(seed, hidden)
    return _timed_fit(BareModule(net, loss), data, epochs, logger=False)


def run_plain(data, epochs: int, full: bool, seed: int, log_dir: str, hidden=(16, 32)) -> list[float]:
    net, loss_fn = build(seed, hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    train_loader, val_loader = data.train_dataloader(), data.val_dataloader()
    writer = SummaryWriter(f"{log_dir}/plain") if full else None
    tracked = {stage: (PopulationAccuracy(num_classes=CLASSES), ActivityMetric()) for stage in ("train", "val")} if full else {}
    marks = []
    for epoch in range(epochs):
        marks.append(time.perf_counter())
        train_loader.sampler.set_epoch(epoch)
        net.train()
        sums = {"train": [0.0, 0], "val": [0.0, 0]}
        for stage, loader in (("train", train_loader), ("val", val_loader)):
            for x, y in loader:
                with torch.set_grad_enabled(stage == "train"):
                    spikes, membranes = net(x)
                    out = as_loss_output(loss_fn(spk_out=spikes[-1], y=y, spikes_list=spikes, membranes_list=membranes, model=net))
                if stage == "train":
                    optimizer.zero_grad()
                    out.total.backward()
                    optimizer.step()
                sums[stage][0] += out.total.item() * x.shape[0]
                sums[stage][1] += x.shape[0]
                if full:
                    with torch.no_grad():
                        accuracy, activity = tracked[stage]
                        accuracy.update(spikes[-1].detach(), y)
                        activity.update([s.detach() for s in spikes], [m.detach() for m in membranes])
            if stage == "train":
                net.eval()
        if full:
            for stage, (accuracy, activity) in tracked.items():
                writer.add_scalar(f"{stage}_loss", sums[stage][0] / sums[stage][1], epoch + 1)
                writer.add_scalar(f"{stage}_acc", float(accuracy.compute()), epoch + 1)
                for key, value in activity.compute().items():
                    writer.add_scalar(f"{stage}/{key}", float(value), epoch + 1)
                accuracy.reset(), activity.reset()
            writer.flush()
    if writer is not None:
        writer.close()
    return [b - a for a, b in zip(marks, marks[1:])]  # same convention as EpochClock


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="SNNModule + Trainer vs a plain PyTorch loop")
    parser.add_argument("--epochs", type=int, default=7, help="epochs per run: the first (warm-up) and the last are not timed")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every variant")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadiest on shared CPUs)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="samples per step (the quick start's 32); every epoch has 16 train + 4 val batches")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="epoch-time statistic; min is steadier on a machine shared with other jobs")
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 32],
                        help="hidden layer widths (the quick start's 16 32; the digits model's 128 64)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    data = KeywordSpottingDataModule(n_train=16 * args.batch_size, n_val=4 * args.batch_size, batch_size=args.batch_size, seed=0)
    data.setup()
    samples: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as log_dir:
        for round_index in range(args.rounds):
            for full in (False, True):
                runners = [("plain", run_plain), ("lightning", run_lightning)]
                if not full:
                    runners.insert(1, ("bare", run_bare))
                for name, runner in runners:
                    epochs = runner(data, args.epochs, full, seed=round_index, log_dir=log_dir, hidden=args.hidden)
                    samples.setdefault((name, "full" if full else "loss only"), []).extend(epochs[1:])  # drop warm-up
    rows = {}
    stat = statistics.median if args.stat == "median" else min
    print(f"\nEpoch wall time, {args.stat} of {args.rounds} x {args.epochs - 2} epochs "
          f"(16 train + 4 val batches of {args.batch_size} x 100 steps x 13 ch; hidden {args.hidden}; "
          f"torch threads = {args.threads})")
    print(f"{'pairing':<11} {'plain loop [s]':>15} {'bare Lightning [s]':>19} {'SNNModule+Trainer [s]':>22} "
          f"{'overhead':>9} {'of it Lightning':>16}")
    for pairing in ("loss only", "full"):
        plain = stat(samples[("plain", pairing)])
        lightning = stat(samples[("lightning", pairing)])
        row = {"plain_s": plain, "lightning_s": lightning, "overhead": lightning / plain - 1}
        bare_text, floor_text = "-", "-"
        if ("bare", pairing) in samples:
            bare = stat(samples[("bare", pairing)])
            row.update(bare_s=bare, lightning_floor=bare / plain - 1)
            bare_text, floor_text = f"{bare:.3f}", f"{100 * (bare / plain - 1):.1f}%"
        rows[pairing] = row
        print(f"{pairing:<11} {plain:>15.3f} {bare_text:>19} {lightning:>22.3f} {100 * row['overhead']:>8.1f}% {floor_text:>16}")
    return rows


if __name__ == "__main__":
    main()
