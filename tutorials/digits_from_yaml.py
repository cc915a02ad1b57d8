"""Train a 3-layer H1v2 classifier on handwritten digits from YAML, then plot what TensorBoard saw.

This is the script behind ``tutorials/README.md`` (section "Train a 3-layer
H1v2 classifier from YAML"). It runs exactly what a user types::

    nwave fit --config configs/experiment/digits.yaml
    nwave test --config configs/experiment/digits.yaml --ckpt_path <best checkpoint>

through :func:`nwave_lightning.cli.main`, reads the run's TensorBoard event
files back with tbparse, and writes ``tutorials/figures/digits_curves.png``
and ``tutorials/figures/digits_results.json`` (wall time, epochs, best and
final validation accuracy and test accuracy, each for the float network and
its chip-ready twin ``to_chip(net)``).

    python tutorials/digits_from_yaml.py                 # the full run
    python tutorials/digits_from_yaml.py --epochs 3      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nwave_lightning.cli import main as nwave  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, os.pardir, "configs", "experiment", "digits.yaml")


def scalars(log_dir: str) -> dict[str, dict[int, float]]:
    from tbparse import SummaryReader

    frame = SummaryReader(log_dir).scalars
    out: dict[str, dict[int, float]] = {}
    for tag, step, value in zip(frame["tag"], frame["step"], frame["value"]):
        out.setdefault(tag, {})[int(step)] = float(value)
    return out


def plot(curves: dict, path: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for key, label in (("train_acc", "train"), ("val_acc", "validation"), ("val_chip_acc", "validation, chip-ready")):
        axes[0].plot(list(curves[key]), list(curves[key].values()), label=label)
    axes[0].axhline(0.9, color="k", linestyle="--", linewidth=1, label="90 %")
    axes[0].set(xlabel="epoch", ylabel="population-vote accuracy", title="Accuracy", ylim=(0, 1))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        axes[1].plot(list(curves[key]), list(curves[key].values()), label=label)
    axes[1].set(xlabel="epoch", ylabel="balanced population MSE", title="Loss", yscale="log")
    for i in range(3):
        key = f"val/layer_{i}/firing_rate"
        axes[2].plot(list(curves[key]), list(curves[key].values()), label=f"layer {i}")
    axes[2].set(xlabel="epoch", ylabel="spikes / neuron / step", title="Validation firing rates")
    for ax in axes:
        ax.grid(alpha=0.3), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs of the config")
    parser.add_argument("--runs", default="runs", help="TensorBoard save_dir")
    parser.add_argument("--figures", default=os.path.join(HERE, "figures"))
    args = parser.parse_args(argv)
    common = ["--config", CONFIG, f"--trainer.logger.init_args.save_dir={args.runs}", "--trainer.enable_progress_bar=false"]
    if args.epochs is not None:
        common.append(f"--trainer.max_epochs={args.epochs}")
    start = time.perf_counter()
    fit = nwave(["fit", *common])
    wall = time.perf_counter() - start
    log_dir = fit.trainer.logger.log_dir
    curves = scalars(log_dir)
    # The config's ModelCheckpoint keeps the epoch with the best chip-ready val_chip_acc (and last.ckpt).
    checkpoint = fit.trainer.checkpoint_callback.best_model_path or fit.trainer.checkpoint_callback.last_model_path
    tested = nwave(["test", *common, f"--trainer.logger.init_args.save_dir={os.path.join(args.runs, 'test')}", f"--ckpt_path={checkpoint}"])
    os.makedirs(args.figures, exist_ok=True)
    plot(curves, os.path.join(args.figures, "digits_curves.png"))
    val, chip = curves["val_acc"], curves["val_chip_acc"]
    best_epoch = max(chip, key=chip.get)
    tested_metrics = tested.trainer.callback_metrics
    results = {
        "config": "configs/experiment/digits.yaml",
        "epochs": max(val),
        "wall_time_s": round(wall, 1),
        "final_val_acc": round(val[max(val)], 4),
        "final_val_chip_acc": round(chip[max(chip)], 4),
        "best_epoch": best_epoch,  # by the chip-ready accuracy, as the checkpoint
        "best_val_chip_acc": round(chip[best_epoch], 4),
        "val_acc_at_best_epoch": round(val[best_epoch], 4),
        "test_acc_of_best_checkpoint": round(float(tested_metrics["test_acc"]), 4),
        "test_chip_acc_of_best_checkpoint": round(float(tested_metrics["test_chip_acc"]), 4),
        "tensorboard": os.path.relpath(log_dir),  # relative to where the script ran
    }
    path = os.path.join(args.figures, "digits_results.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(results, handle, indent=2)
    os.replace(path + ".tmp", path)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    sys.exit(0 if run() else 1)
