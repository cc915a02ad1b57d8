"""HPO tutorial: the vendor SDK's end-to-end HPO template on the built-in keyword-spotting task.

The vendor SDK's HPO guide ("Hyperparameter Optimization for Custom hardware-aware SNNs")
tunes a 3-layer H1v2 ``SurrogateSNN`` (13 input channels, 2 classes, 32 neurons
per class) for recall with ``HPOWrapper``: model widths and time constants,
optimizer, a composite loss (population + firing-rate + hardware terms), metric
options, LR scheduler, early stopping, surrogate schedule and sign annealing,
all in one search space, with ASHA stopping the weak trials. This script runs
that template unchanged on :class:`nwave_lightning.data.KeywordSpottingDataModule`
(a synthetic 13-channel keyword / distractor task, no download), saved as the
pickled ``train.pt`` / ``val.pt`` DataLoaders the vendor SDK's ``build_datasets``
loads. The sizes differ (fewer samples and epochs, CPU), and ``build_model`` is the
one from the vendor SDK's "Tuning fluct_init parameters with HPO" section, with its
fluct_init search space bound: with the template's plain xavier init no layer of
this network fires on the keyword task and no trial learns (``--plain-init``
shows it). Some LR-scheduler and early-stop values are scaled to the shorter run.

Then it does the vendor SDK's analysis: best config, the trial table, the restored
best checkpoint, and figures made from the per-trial TensorBoard logs (tbparse):
the selected metric against each tuned hyper-parameter, parallel coordinates,
learning curves of every trial and the per-layer firing rates of the best one.
Last, a loss-term ablation trains the template's network once per variant
(init, and which of the population / activity / hardware terms are on, and one
run with unconstrained signs) to show which part of the template keeps the
trials near chance on this task.

Every trial trains hardware-aware (``SNNModule``'s defaults: sign annealing,
clamped weights) and reports, next to each float metric, its chip-ready twin
(``val_chip_recall``, ``val_chip_acc``, ``val_chip_loss``: the same metric on
``to_chip(net)``, the network the chip runs). The template still selects on its
``val_recall``; ``results.json`` and the printout give the chip-ready value of
every accuracy and recall next to the float one, and the restored best weights
are made chip-legal with ``to_chip`` and checked with ``check_chip``.

Run (CPU; about a minute for the experiment with the defaults on 2 cores, plus
half a minute for the ablation; ``results.json`` records the last wall time)::

    python tutorials/hpo_keyword_spotting.py
    python tutorials/hpo_keyword_spotting.py --num-samples 4 --epochs 3 --no-ablation   # a quick look

Figures and ``results.json`` go to ``tutorials/figures/hpo_keyword_spotting/``;
the experiment (TensorBoard events, checkpoints) to ``ray_results/`` —
``tensorboard --logdir ray_results`` shows every trial.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from ray import tune  # noqa: E402
from tbparse import SummaryReader  # noqa: E402

from nwave_lightning.callbacks.sign_annealing import export_hard_signed, install_sign_parametrization  # noqa: E402
from nwave_lightning.data import KeywordSpottingDataModule  # noqa: E402
from nwave_lightning.deploy import check_chip, to_chip  # noqa: E402
from nwave_lightning.hpo import HPOWrapper, train_one_trial  # noqa: E402
from nwave_lightning.hpo.report import write_report  # noqa: E402
from nwave_lightning.hpo.results import describe_best  # noqa: E402
from nwave_lightning.init import fluct_init  # noqa: E402
from nwave_lightning.io import atomic_write  # noqa: E402
from nwave_lightning.loss import (  # noqa: E402
    CompositeLoss,
    balanced_population_mse,
    firing_rate_target_mse_loss,
    topology_loss,
    weight_magnitude_loss,
)
from nwave_lightning.metrics import accuracy_population  # noqa: E402
from nwave_lightning.models import SurrogateSNN  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-samples", type=int, default=16, help="trials (seed: 20)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (seed: 60)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at a time (seed: 3)")
    parser.add_argument("--n-train", type=int, default=384)
    parser.add_argument("--n-steps", type=int, default=100, help="time steps per sequence")
    parser.add_argument("--data", default=os.path.join("ray_results", "kws_data"))
    parser.add_argument("--storage", default="ray_results")
    parser.add_argument("--figures", default=os.path.join(HERE, "figures", "hpo_keyword_spotting"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-init", action="store_true", help="the template's xavier init only (no fluct_init)")
    parser.add_argument("--no-ablation", action="store_true", help="skip the loss-term ablation after the experiment")
    parser.add_argument("--ablation-epochs", type=int, default=40,
                        help="epochs per ablation variant (the sign-constrained network needs ~30 to learn the task)")
    return parser.parse_args(argv)


def write_dataset(path: str, n_train: int, n_steps: int, seed: int) -> str:
    """The built-in task as the vendor SDK's pickled DataLoaders (``train.pt`` / ``val.pt``)."""
    dm = KeywordSpottingDataModule(n_train=n_train, n_val=n_train // 3, n_test=16, n_steps=n_steps,
                                   word_length=n_steps * 2 // 5, batch_size=32, seed=seed)
    dm.setup("fit")
    os.makedirs(path, exist_ok=True)
    torch.save(dm.train_dataloader(), os.path.join(path, "train.pt"))
    torch.save(dm.val_dataloader(), os.path.join(path, "val.pt"))
    return path


# ---- the vendor SDK's building blocks (imports renamed) ----------------------------------------------
def load_init_loader(dataset_path, train_file):
    return torch.load(os.path.join(dataset_path, train_file), weights_only=False)


def build_model(model_cfg):
    # The vendor SDK's "Tuning fluct_init parameters with HPO" build_model: with the template's plain
    # xavier init, no layer of this network fires on the keyword task, so nothing trains.
    model = SurrogateSNN(model_cfg)

    if model_cfg.get("use_fluct_init", False):
        init_loader = load_init_loader(
            model_cfg["init_dataset_path"],
            model_cfg.get("fluct_init_train_file", "train.pt"),
        )
        fluct_init(
            model,
            init_loader,
            xi_target=model_cfg["fluct_xi_target"],
            alpha=model_cfg["fluct_alpha"],
            n_batches=model_cfg["fluct_n_batches"],
            verbose=model_cfg.get("init_verbose", False),
        )

    return model


def build_datasets(dataset_path, data_cfg):
    train_loader = torch.load(os.path.join(dataset_path, data_cfg["train_file"]), weights_only=False)
    val_loader = torch.load(os.path.join(dataset_path, data_cfg["val_file"]), weights_only=False)
    return train_loader, val_loader


def balanced_pop_term(spk_out, y, config, **kwargs):
    return {"mse": balanced_population_mse(spk_out, y, num_classes=config["num_classes"],
                                           neurons_per_class=config["neurons_per_class"],
                                           correct_rate=config["correct_rate"], incorrect_rate=config["incorrect_rate"])}


def firing_rate_term(spikes_list, config, **kwargs):
    return {"firing_rate": firing_rate_target_mse_loss(spikes_list=spikes_list, offsets=config["offsets_fr"],
                                                       multipliers=config["multipliers_fr"])}


def hardware_reg_term(model, config, **kwargs):
    return {"weight_mag": weight_magnitude_loss(model, limit=config["limit"]),
            "topology": topology_loss(model, lam=config["lambda_topo"])}


def build_main_loss(loss_cfg):
    return (
        CompositeLoss()
        .add_loss_term("population", balanced_pop_term,
                       config={k: loss_cfg[k] for k in ("num_classes", "neurons_per_class", "correct_rate", "incorrect_rate")},
                       weight=loss_cfg.get("w_population", 1.0))
        .add_loss_term("activity", firing_rate_term,
                       config={"offsets_fr": loss_cfg["offsets_fr"], "multipliers_fr": loss_cfg["multipliers_fr"]},
                       weight=loss_cfg.get("w_activity", 1.0))
        .add_loss_term("hardware", hardware_reg_term,
                       config={"limit": loss_cfg.get("weight_limit", 0.9), "lambda_topo": loss_cfg.get("lambda_topology", 1e-3)},
                       weight=loss_cfg.get("w_hardware", 1.0))
    )


def build_acc_metric(metric_cfg):
    def metric_fn(spk_out, y, **kwargs):
        return accuracy_population(spk_out, y, num_classes=metric_cfg.get("num_classes", 2))
    return metric_fn


def build_recall_metric(metric_cfg):
    positive_class = metric_cfg.get("positive_class", 1)
    num_classes = metric_cfg.get("num_classes", 2)

    def metric_fn(spk_out, y, **kwargs):
        preds = spk_out.sum(dim=1).view(spk_out.shape[0], num_classes, -1).sum(dim=2).argmax(dim=1)
        tp = ((preds == positive_class) & (y == positive_class)).float().sum().item()
        fn = ((preds != positive_class) & (y == positive_class)).float().sum().item()
        return tp / max(1.0, tp + fn)
    return metric_fn


def make_hpo(args) -> HPOWrapper:
    hpo = HPOWrapper(
        model_builder=build_model,
        dataset_builder=build_datasets,
        train_fn=train_one_trial,
        loss_builders={"main": build_main_loss},
        metric_builders={"acc": build_acc_metric, "recall": build_recall_metric},
        metric="val_recall",
        mode="max",
        experiment_name="h1v2_snn_hpo",
        storage_path=args.storage,
        verbose=1,
    )
    # model space
    hpo.bind_model_param("in_ch", 13)
    hpo.bind_model_param("num_classes", 2)
    hpo.bind_model_param("neurons_per_class", 32)
    hpo.bind_model_param("hidden_1", tune.choice([32, 64]))
    hpo.bind_model_param("dt", tune.choice([1e-3, 2e-3, 4e-3]))
    hpo.bind_model_param("tau_l1", tune.loguniform(5e-3, 30e-3))
    hpo.bind_model_param("tau_l2", tune.loguniform(10e-3, 50e-3))
    hpo.bind_model_param("tau_l3", tune.loguniform(20e-3, 90e-3))
    hpo.bind_model_param("device", "cpu")
    # fluct_init search space (the vendor SDK's fluct_init section)
    hpo.bind_model_param("init_dataset_path", os.path.abspath(args.data))
    hpo.bind_model_param("init_verbose", False)
    hpo.bind_model_param("use_fluct_init", not args.plain_init)
    hpo.bind_model_param("fluct_init_train_file", "train.pt")
    hpo.bind_model_param("fluct_xi_target", tune.uniform(1.0, 3.0))
    hpo.bind_model_param("fluct_alpha", tune.uniform(0.7, 1.0))
    hpo.bind_model_param("fluct_n_batches", tune.choice([1, 2, 4]))
    # optimizer space
    hpo.bind_optimizer_param("name", tune.choice(["adam", "adamax"]))
    hpo.bind_optimizer_param("lr", tune.loguniform(1e-4, 1e-2))
    # loss space
    hpo.bind_loss_param("main", "num_classes", 2)
    hpo.bind_loss_param("main", "neurons_per_class", 32)
    hpo.bind_loss_param("main", "correct_rate", tune.uniform(0.25, 0.45))
    hpo.bind_loss_param("main", "incorrect_rate", tune.uniform(0.01, 0.10))
    hpo.bind_loss_param("main", "offsets_fr", tune.choice([[0.05, 0.08, 0.10], [0.1, 0.2, 0.3]]))
    hpo.bind_loss_param("main", "multipliers_fr", tune.choice([[1, 2, 3], [10, 5, 1]]))
    hpo.bind_loss_param("main", "w_population", tune.choice([1.0, 2.0]))
    hpo.bind_loss_param("main", "w_activity", tune.choice([0.2, 0.5, 1.0]))
    hpo.bind_loss_param("main", "w_hardware", tune.choice([0.0, 1e-3, 1e-2]))
    hpo.bind_loss_param("main", "weight_limit", tune.choice([0.8, 0.9]))
    hpo.bind_loss_param("main", "lambda_topology", tune.choice([1e-4, 1e-3, 1e-2]))
    # metric space
    hpo.bind_metric_param("acc", "num_classes", 2)
    hpo.bind_metric_param("recall", "num_classes", 2)
    hpo.bind_metric_param("recall", "positive_class", 1)
    # LR scheduler space (T_max / milestones scaled to the shorter run)
    e = args.epochs
    hpo.bind_scheduler_param("cfg", tune.choice([
        {"name": "none"},
        {"name": "plateau", "mode": "min", "factor": 0.3, "patience": 3, "threshold": 1e-3, "min_lr": 1e-6},
        {"name": "step", "step_size": max(1, e // 3), "gamma": 0.5},
        {"name": "cosine", "T_max": e, "eta_min": 1e-6},
        {"name": "multistep", "milestones": [max(1, e // 3), max(2, 2 * e // 3)], "gamma": 0.3},
    ]))
    # early stop
    hpo.bind_early_stop_param("policy", tune.choice(["none", "patience"]))
    hpo.bind_early_stop_param("metric", "val_loss")
    hpo.bind_early_stop_param("mode", "min")
    hpo.bind_early_stop_param("min_epoch", max(1, e // 2))
    hpo.bind_early_stop_param("patience", tune.choice([2, 4]))
    hpo.bind_early_stop_param("min_delta", tune.choice([0.0, 1e-3]))
    # NWAVE schedulers
    hpo.bind_nwave_scheduler_param("surrogate.policy", tune.choice(["constant", "linear", "cosine", "exp", "step"]))
    hpo.bind_nwave_scheduler_param("surrogate.start_value", tune.choice([10.0, 15.0]))
    hpo.bind_nwave_scheduler_param("surrogate.end_value", tune.choice([20.0, 30.0]))
    hpo.bind_nwave_scheduler_param("surrogate.total_steps", e)
    hpo.bind_nwave_scheduler_param("surrogate.step_size", max(1, e // 4))
    hpo.bind_nwave_scheduler_param("surrogate.gamma", tune.choice([0.8, 2.0]))
    hpo.bind_nwave_scheduler_param("sign_annealing.alpha_start", tune.choice([0.5, 1.0]))
    hpo.bind_nwave_scheduler_param("sign_annealing.alpha_end", tune.choice([10.0, 20.0]))
    hpo.bind_nwave_scheduler_param("sign_annealing.total_epochs", e)
    # trainer + data
    hpo.bind_trainer_param("epochs", e)
    hpo.bind_trainer_param("device", "cpu")
    hpo.bind_trainer_param("seed", args.seed)
    hpo.bind_data_param("train_file", "train.pt")
    hpo.bind_data_param("val_file", "val.pt")

    hpo.set_resources(cpu=1, gpu=0)
    hpo.set_max_concurrent_trials(args.concurrency)
    hpo.set_num_samples(args.num_samples)
    hpo.set_memory_guard(enabled=True, strict=True, safety_fraction=0.80, dataset_memory_multiplier=1.25)
    hpo.set_tune_scheduler_config({"name": "asha", "grace_period": max(1, e // 3), "reduction_factor": 2})
    return hpo


def plot_learning_curves(experiment: str, best_trial: str, path: str) -> None:
    scalars = SummaryReader(experiment, extra_columns={"dir_name"}).scalars
    scalars["trial"] = scalars["dir_name"].str.split("/").str[0]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    # the template's metric, its chip-ready twin (to_chip(net), what the chip runs) and the loss
    for ax, tag in zip(axes, ("val_recall", "val_chip_recall", "val_loss")):
        for trial, group in scalars[scalars["tag"] == tag].groupby("trial"):
            group = group.sort_values("step")
            best = trial == best_trial
            ax.plot(group["step"], group["value"], color="C3" if best else "0.6", lw=2.2 if best else 1.0,
                    alpha=1.0 if best else 0.7, label="best trial" if best else None, zorder=3 if best else 1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(tag)
    axes[2].set_yscale("log")  # a few diverging trials would flatten the others
    axes[0].legend()
    fig.suptitle("Every trial's validation curves (shorter lines: stopped by ASHA or the trial's early stop)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_activity(experiment: str, best_trial: str, path: str) -> None:
    scalars = SummaryReader(os.path.join(experiment, best_trial, "tensorboard")).scalars
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for layer in range(3):
        series = scalars[scalars["tag"] == f"val/layer_{layer}/firing_rate"].sort_values("step")
        ax.plot(series["step"], series["value"], marker="o", label=f"layer {layer}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation firing rate (spikes / step)")
    ax.set_title("Best trial: activity per layer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


ABLATION = {  # name -> (init_name, fluct_init, loss weights population / activity / hardware, sign annealing)
    "template loss, xavier + fluct_init": ("xavier_uniform", True, (1.0, 0.5, 1e-2), True),
    "template loss, chip init": (None, False, (1.0, 0.5, 1e-2), True),
    "population + activity, chip init": (None, False, (1.0, 0.5, 0.0), True),
    "population + hardware, chip init": (None, False, (1.0, 0.0, 1e-2), True),
    "population only, chip init": (None, False, (1.0, 0.0, 0.0), True),
    "population only, xavier + fluct_init": ("xavier_uniform", True, (1.0, 0.0, 0.0), True),
    # The same training with the signs left free: the float network learns, its chip-legal copy need not.
    "population only, chip init, signs unconstrained": (None, False, (1.0, 0.0, 0.0), False),
}


def loss_term_ablation(dataset: str, epochs: int, path: str, lr: float = 3e-2) -> dict[str, dict[str, list[float]]]:
    """Which part of the template keeps a trial from learning: one plain training per variant.

    The vendor SDK's network (hidden_1 = 32, taus 10 / 20 / 40 ms, dt = 1 ms) and its loss builder with
    mid-range values (correct 0.35, incorrect 0.05, rate targets [0.05, 0.08, 0.1] x [10, 5, 1],
    weight limit 0.8), Adam at ``lr``, no scheduler; SNNModule's hardware-aware defaults (sign
    annealing over 60 % of the epochs, clamped weights) except in the variant with unconstrained
    signs: only the init, the loss weights and that switch vary.

    Returns ``name -> {"val_acc": [...], "val_chip_acc": [...]}``, one value per epoch.
    """
    import lightning.pytorch as pl

    from nwave_lightning.metrics import PopulationAccuracy
    from nwave_lightning.training import SNNModule

    train, val = build_datasets(dataset, {"train_file": "train.pt", "val_file": "val.pt"})
    curves = {}
    for name, (init_name, use_fluct, (w_pop, w_act, w_hw), anneal_signs) in ABLATION.items():
        torch.manual_seed(0)
        net = build_model(dict(in_ch=13, num_classes=2, neurons_per_class=32, hidden_1=32, dt=1e-3, tau_l1=10e-3,
                               tau_l2=20e-3, tau_l3=40e-3, init_name=init_name, use_fluct_init=use_fluct,
                               init_dataset_path=dataset, fluct_init_train_file="train.pt", fluct_xi_target=2.0,
                               fluct_alpha=0.85, fluct_n_batches=4))
        loss = build_main_loss(dict(num_classes=2, neurons_per_class=32, correct_rate=0.35, incorrect_rate=0.05,
                                    offsets_fr=[0.05, 0.08, 0.10], multipliers_fr=[10, 5, 1], w_population=w_pop,
                                    w_activity=w_act, w_hardware=w_hw, weight_limit=0.8, lambda_topology=1e-3))
        module = SNNModule(net, loss=loss, metrics={"acc": PopulationAccuracy(num_classes=2)}, lr=lr, activity=False,
                           sign_annealing=anneal_signs)
        accuracy: dict[str, list[float]] = {"val_acc": [], "val_chip_acc": []}

        class Record(pl.Callback):
            def on_train_epoch_end(self, trainer, pl_module):  # after the module logged val_acc / val_chip_acc
                for key, values in accuracy.items():
                    values.append(float(trainer.callback_metrics[key]))

        pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, callbacks=[Record()]).fit(module, train, val)
        curves[name] = accuracy
        last, chip = accuracy["val_acc"], accuracy["val_chip_acc"]
        print(f"ablation: {name}: after {epochs} epochs val_acc {last[-1]:.3f} (best {max(last):.3f}), "
              f"chip-ready val_chip_acc {chip[-1]:.3f} (best {max(chip):.3f})")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (name, accuracy) in enumerate(curves.items()):
        epochs_axis = range(1, len(accuracy["val_acc"]) + 1)
        ax.plot(epochs_axis, accuracy["val_acc"], marker=".", color=f"C{i}", label=name)
        ax.plot(epochs_axis, accuracy["val_chip_acc"], ls="--", color=f"C{i}", alpha=0.8)
    ax.axhline(0.5, color="0.5", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_acc (solid), val_chip_acc (dashed)")
    ax.set_title(f"The template's network under loss / init variants (Adam {lr:g})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return curves


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.figures, exist_ok=True)
    dataset = write_dataset(args.data, args.n_train, args.n_steps, args.seed)
    hpo = make_hpo(args)
    start = time.time()
    results = hpo.run(dataset)
    wall = time.time() - start
    print("Best config:", hpo.best_config())

    # The vendor SDK's analysis steps (each float value printed with its chip-ready twin).
    best = hpo.best_result()
    print("best val_recall (last epoch):", best.metrics["val_recall"], "chip-ready:", best.metrics.get("val_chip_recall"))
    at_best = hpo.best_epoch_metrics()  # the best trial at its best epoch, the one best_model.pt holds
    print(describe_best(at_best, "val_recall", os.path.basename(best.path)))
    df = results.get_dataframe()
    columns = ["trial_id", "epoch", "val_loss", "val_recall", "val_chip_recall", "val_acc", "val_chip_acc", "lr"]
    print(df[[c for c in columns if c in df]].sort_values("val_recall", ascending=False).head())
    ckpt_dir = best.checkpoint.to_directory()
    payload = torch.load(os.path.join(ckpt_dir, "best_model.pt"), map_location="cpu")
    print("restored best epoch:", payload["epoch"], "best_selected_metric:", payload["best_selected_metric"])
    model = build_model({k.split(".", 1)[1]: v for k, v in best.config.items() if k.startswith("model.")})
    if any(key.endswith(".sign_logits") for key in payload["state_dict"]):
        install_sign_parametrization(model)  # the trial trained with sign annealing: same structure
    model.load_state_dict(payload["state_dict"])
    hard = export_hard_signed(model)  # deployable weights: row-block signs, alpha -> inf
    print("best weights restored into a fresh SurrogateSNN; hard-signed export:", sorted(hard))
    violations = check_chip(to_chip(model))  # the chip-legal copy that val_chip_* measured
    print("check_chip(to_chip(best model)):", "chip-legal" if not violations else [str(v) for v in violations])

    # Table + figures from the TensorBoard logs.
    report = write_report(hpo.experiment_path, "val_recall", "max", out_dir=args.figures, top_k=10)
    best_trial = os.path.basename(best.path)
    plot_learning_curves(hpo.experiment_path, best_trial, os.path.join(args.figures, "learning_curves.png"))
    plot_activity(hpo.experiment_path, best_trial, os.path.join(args.figures, "best_trial_activity.png"))
    ablation = {}
    if not args.no_ablation:
        ablation = loss_term_ablation(dataset, args.ablation_epochs, os.path.join(args.figures, "loss_term_ablation.png"))
    def last(key):  # the last epoch of every trial (df: one row per trial)
        return float(df[key].max()) if key in df else None

    summary = {
        "num_samples": args.num_samples, "epochs": args.epochs, "concurrency": args.concurrency, "wall_s": round(wall, 1),
        "ablation_epochs": args.ablation_epochs if ablation else None,
        "best_trial": best_trial, "best_epoch": payload["epoch"], "best_val_recall": payload["best_selected_metric"],
        # the chip-ready twins (to_chip(net): what the chip runs) of the best epoch's values
        "best_epoch_val_chip_recall": at_best.get("val_chip_recall"),
        "best_epoch_val_acc": at_best.get("val_acc"), "best_epoch_val_chip_acc": at_best.get("val_chip_acc"),
        # Recall alone rewards calling every sequence a keyword: read it next to the accuracy.
        "best_trial_last_val_acc": best.metrics.get("val_acc"),
        "best_trial_last_val_chip_acc": best.metrics.get("val_chip_acc"),
        "highest_last_val_acc_of_any_trial": last("val_acc"),
        "highest_last_val_chip_acc_of_any_trial": last("val_chip_acc"),
        "best_model_chip_violations": [str(v) for v in violations],
        "best_config": best.config, "trials_stopped_early": int(sum(len(r.metrics_dataframe) < args.epochs for r in results)),
        "ablation_val_acc": {
            name: {"last": round(acc["val_acc"][-1], 4), "best": round(max(acc["val_acc"]), 4),
                   "chip_last": round(acc["val_chip_acc"][-1], 4), "chip_best": round(max(acc["val_chip_acc"]), 4)}
            for name, acc in ablation.items()
        },
        "figures": sorted(os.listdir(args.figures)),
    }
    path = os.path.join(args.figures, "results.json")
    # Atomic: a crash leaves the previous results whole.
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8"))
    shown = ("wall_s", "best_trial", "best_epoch", "best_val_recall", "best_epoch_val_chip_recall", "best_trial_last_val_acc",
             "best_trial_last_val_chip_acc")
    print(json.dumps({k: summary[k] for k in shown}, indent=2))
    print("report:", report["markdown"])
    return summary


if __name__ == "__main__":
    main()
