"""HPOWrapper on a local Ray instance: the vendor SDK's template, schedulers, failures, guard, errors."""

import glob
import os
import re

import pandas as pd
import pytest
import torch
from ray import tune
from tbparse import SummaryReader

from nwave_lightning.hpo import HPOWrapper, MemoryGuardError, MetricNotReportedError, train_one_trial
from nwave_lightning.hpo.memory_guard import available_ram_bytes

from . import sdk_template as sdk
from ._toys import build_toy_acc, build_toy_data, build_toy_loss, build_toy_model, quick_train_fn


def toy_hpo(tmp_path, name, **kwargs):
    kwargs.setdefault("metric", "val_acc")
    kwargs.setdefault("mode", "max")
    hpo = HPOWrapper(
        model_builder=build_toy_model, dataset_builder=build_toy_data, train_fn=quick_train_fn,
        loss_builders={"main": build_toy_loss}, metric_builders={"acc": build_toy_acc},
        experiment_name=name, storage_path=str(tmp_path / "results"), **{"verbose": 0, **kwargs},
    )
    hpo.bind_optimizer_param("lr", tune.loguniform(1e-3, 1e-1))
    hpo.bind_trainer_param("epochs", 3)
    hpo.set_resources(cpu=1, gpu=0)
    hpo.set_num_samples(2)
    hpo.set_max_concurrent_trials(2)
    return hpo


@pytest.mark.slow
def test_vendor_sdk_end_to_end_template(ray_local, tmp_path, monkeypatch, capsys):
    """The vendor SDK's "End-to-end template": only imports renamed and sizes shrunk."""
    from .sdk_template import build_acc_metric, build_datasets, build_main_loss, build_model, build_recall_metric

    monkeypatch.chdir(tmp_path)  # the template keeps its experiments in ./ray_results
    dataset = sdk.write_sdk_dataset("data")  # "/path/to/data": relative to where run() is called

    hpo = HPOWrapper(
        model_builder=build_model,
        dataset_builder=build_datasets,
        train_fn=train_one_trial,
        loss_builders={"main": build_main_loss},
        metric_builders={
            "acc": build_acc_metric,
            "recall": build_recall_metric,
        },
        metric="val_recall",
        mode="max",
        experiment_name="h1v2_snn_hpo",
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
    hpo.bind_model_param("device", "cpu")  # shrunk: "gpu" -> "cpu"

    # optimizer space
    hpo.bind_optimizer_param("name", tune.choice(["adam", "adamax"]))
    hpo.bind_optimizer_param("lr", tune.loguniform(1e-4, 1e-2))

    # loss space
    hpo.bind_loss_param("main", "num_classes", 2)
    hpo.bind_loss_param("main", "neurons_per_class", 32)
    hpo.bind_loss_param("main", "correct_rate", tune.uniform(0.25, 0.45))
    hpo.bind_loss_param("main", "incorrect_rate", tune.uniform(0.01, 0.10))
    hpo.bind_loss_param("main", "offsets_fr", tune.choice([[0.05, 0.08, 0.10], [0.1, 0.2, 0.3]]))       # 3 layers
    hpo.bind_loss_param("main", "multipliers_fr", tune.choice([[1, 2, 3], [10, 5, 1]]))                  # 3 layers
    hpo.bind_loss_param("main", "w_population", tune.choice([1.0, 2.0]))
    hpo.bind_loss_param("main", "w_activity", tune.choice([0.2, 0.5, 1.0]))
    hpo.bind_loss_param("main", "w_hardware", tune.choice([0.0, 1e-3, 1e-2]))
    hpo.bind_loss_param("main", "weight_limit", tune.choice([0.8, 0.9]))
    hpo.bind_loss_param("main", "lambda_topology", tune.choice([1e-4, 1e-3, 1e-2]))

    # metric space
    hpo.bind_metric_param("acc", "num_classes", 2)
    hpo.bind_metric_param("recall", "num_classes", 2)
    hpo.bind_metric_param("recall", "positive_class", tune.choice([0, 1]))

    # LR scheduler space
    hpo.bind_scheduler_param(
        "cfg",
        tune.choice([
            {"name": "none"},
            {"name": "plateau", "mode": "min", "factor": 0.3, "patience": 8, "threshold": 1e-3, "min_lr": 1e-6},
            {"name": "step", "step_size": 10, "gamma": 0.5},
            {"name": "cosine", "T_max": 60, "eta_min": 1e-6},
            {"name": "multistep", "milestones": [20, 40], "gamma": 0.3},
        ])
    )

    # early stop
    hpo.bind_early_stop_param("policy", tune.choice(["none", "threshold", "patience"]))
    hpo.bind_early_stop_param("metric", tune.choice(["val_recall", "val_acc", "val_loss"]))
    hpo.bind_early_stop_param("mode", tune.choice(["max", "min"]))
    hpo.bind_early_stop_param("min_epoch", tune.choice([8, 12]))
    hpo.bind_early_stop_param("value", tune.choice([0.90, 0.93]))        # used by threshold
    hpo.bind_early_stop_param("patience", tune.choice([4, 8, 12]))       # used by patience
    hpo.bind_early_stop_param("min_delta", tune.choice([0.0, 1e-3]))     # used by patience

    # NWAVE schedulers
    hpo.bind_nwave_scheduler_param("surrogate.policy", tune.choice(["constant", "linear", "cosine", "exp", "step"]))
    hpo.bind_nwave_scheduler_param("surrogate.start_value", tune.choice([10.0, 15.0]))
    hpo.bind_nwave_scheduler_param("surrogate.end_value", tune.choice([20.0, 30.0]))
    hpo.bind_nwave_scheduler_param("surrogate.total_steps", 60)
    hpo.bind_nwave_scheduler_param("surrogate.step_size", tune.choice([5, 10]))
    hpo.bind_nwave_scheduler_param("surrogate.gamma", tune.choice([0.5, 0.8, 2.0]))
    hpo.bind_nwave_scheduler_param("sign_annealing.alpha_start", tune.choice([0.5, 1.0]))
    hpo.bind_nwave_scheduler_param("sign_annealing.alpha_end", tune.choice([10.0, 20.0]))
    hpo.bind_nwave_scheduler_param("sign_annealing.total_epochs", 60)

    # trainer + data
    hpo.bind_trainer_param("epochs", 3)          # shrunk: 60 -> 3
    hpo.bind_trainer_param("device", "cpu")      # shrunk: "cuda" -> "cpu"
    hpo.bind_data_param("train_file", "train.pt")
    hpo.bind_data_param("val_file", "val.pt")

    hpo.set_resources(cpu=1, gpu=0)              # shrunk: cpu=2, gpu=0.25
    hpo.set_max_concurrent_trials(2)             # shrunk: 3
    hpo.set_num_samples(4)                       # shrunk: 20
    hpo.set_memory_guard(
        enabled=True,
        strict=True,                 # raise if user-forced concurrency is above safe recommendation
        safety_fraction=0.80,        # keep part of RAM free to avoid runtime spikes
        dataset_memory_multiplier=1.25,
    )
    hpo.set_tune_scheduler_config({"name": "asha", "grace_period": 5, "reduction_factor": 2})

    results = hpo.run(dataset)
    print("Best config:", hpo.best_config())

    # --- the vendor SDK's analysis snippets, unchanged ---
    best = hpo.best_result()
    print(best.metrics["val_recall"])
    print(best.config)

    df = results.get_dataframe()
    print(df[["trial_id", "epoch", "val_loss", "val_recall", "lr"]].sort_values("val_recall", ascending=False).head())

    ckpt_dir = best.checkpoint.to_directory()
    payload = torch.load(os.path.join(ckpt_dir, "best_model.pt"), map_location="cpu")
    print(payload["epoch"], payload["best_selected_metric"])

    # --- checks ---
    assert "Best config:" in capsys.readouterr().out
    assert hpo.experiment_path == str(tmp_path / "ray_results" / "h1v2_snn_hpo")
    assert len(results) == 4 and not results.errors
    assert hpo.best_config() == best.config and best.config["model.hidden_1"] in (32, 64)
    # the restored file is the best epoch of the best trial, with its weights
    history = best.metrics_dataframe
    assert payload["best_selected_metric"] == pytest.approx(history["val_recall"].max())
    assert payload["epoch"] == int(history.loc[history["val_recall"].idxmax(), "epoch"])
    # the chip-ready twin of the selected metric, at that same epoch (what to_chip of those weights scored)
    at_best = hpo.best_epoch_metrics()
    assert at_best["epoch"] == payload["epoch"] and at_best["val_recall"] == pytest.approx(payload["best_selected_metric"])
    assert at_best["val_chip_recall"] == pytest.approx(history.loc[history["val_recall"].idxmax(), "val_chip_recall"])
    model = build_model({k.split(".", 1)[1]: v for k, v in best.config.items() if k.startswith("model.")})
    assert {k.split("parametrizations.")[0] for k in payload["state_dict"]} >= {k.split("weight")[0] for k in model.state_dict()}
    # per-trial TensorBoard events in the experiment folder, readable with tbparse
    scalars = SummaryReader(hpo.experiment_path, extra_columns={"dir_name"}).scalars
    assert scalars["dir_name"].nunique() == 4
    assert {"val_recall", "val_chip_recall", "best_selected_metric", "train/main/population/mse", "surrogate_value",
            "sign_alpha"} <= set(scalars["tag"])
    # and the report turns them into a table and figures
    from nwave_lightning.hpo.report import write_report

    paths = write_report(hpo.experiment_path, "val_recall", "max")
    table = pd.read_csv(paths["csv"])
    assert len(table) == 4 and table["best_value"].iloc[0] == pytest.approx(best.metrics_dataframe["val_recall"].max())
    row = table.set_index("trial").loc[os.path.basename(best.path)]  # several trials may tie on recall
    assert row["best_epoch"] == at_best["epoch"] and row["val_chip_recall_at_best_epoch"] == pytest.approx(at_best["val_chip_recall"])
    assert all(os.path.getsize(p) > 0 for p in paths.values())


@pytest.mark.slow
@pytest.mark.parametrize("scheduler, search_alg", [("hyperband", "random"), ("median", {"name": "optuna", "seed": 0})])
def test_tune_scheduler_and_search_alg_run(ray_local, tmp_path, monkeypatch, scheduler, search_alg):
    """Schedulers beyond the vendor SDK's ASHA (covered by the template test) and FIFO (auto-cap test)."""
    hpo = toy_hpo(tmp_path, f"sched_{scheduler}", search_alg=search_alg)
    hpo.bind_model_param("gain", tune.uniform(0.5, 2.0))
    hpo.set_tune_scheduler_config({"name": scheduler})
    hpo.set_num_samples(3)  # one more than run at once: a trial waits for a slot
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    results = hpo.run("data")  # a relative dataset path means the same inside the trials
    assert len(results) == 3 and not results.errors
    assert all(0.5 <= r.config["model.gain"] <= 2.0 for r in results)
    assert all(r.metrics["training_iteration"] <= 3 for r in results)  # no trial restarted over and over
    assert 0.0 <= hpo.best_result().metrics["val_acc"] <= 1.0


@pytest.mark.slow
def test_memory_guard_auto_caps_concurrency(ray_local, tmp_path):
    hpo = toy_hpo(tmp_path, "autocap")
    hpo.set_max_concurrent_trials(None)
    hpo.set_num_samples(3)
    hpo.set_memory_guard(enabled=True, strict=True)
    hpo.set_tune_scheduler_config("fifo")
    results = hpo.run()
    rec = hpo.memory_recommendation
    assert rec.value == 2 and rec.limited_by == "cpu"  # 2 CPUs / 1 per trial, RAM allows more
    assert len(results) == 3 and not results.errors
    assert sorted(len(r.metrics_dataframe) for r in results) == [3, 3, 3]  # FIFO stops no trial


@pytest.mark.slow
def test_failing_trial_is_retried_and_reported(ray_local, tmp_path, caplog):
    markers = tmp_path / "attempts"
    markers.mkdir()
    hpo = toy_hpo(tmp_path, "failing", max_failures=1)
    hpo.bind_model_param("fail_marker", tune.grid_search(["", str(markers)]))
    hpo.set_num_samples(1)
    with caplog.at_level("WARNING"):
        results = hpo.run()
    failed = [r for r in results if r.error is not None]
    assert len(failed) == 1 and "toy model refuses to build" in str(failed[0].error)
    assert len(glob.glob(str(markers / "attempt_*"))) == 2  # first try + max_failures=1 retry
    assert "failed" in caplog.text and os.path.basename(failed[0].path) in caplog.text
    best = hpo.best_result()  # the other trial finished and is the best
    assert best.config["model.fail_marker"] == "" and len(best.metrics_dataframe) == 3


class InterruptOnce(tune.Callback):
    """Stops the experiment after the first finished trial, like Ctrl+C (Ray handles SIGINT and SIGUSR1 alike).

    Ray pickles run callbacks with the experiment and restores them on resume, hence the flag file.
    """

    def __init__(self, flag):
        self.flag = str(flag)

    def on_trial_complete(self, iteration, trials, trial, **info):
        import signal

        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os.kill(os.getpid(), signal.SIGUSR1)


@pytest.mark.slow
def test_interrupted_experiment_resumes(ray_local, tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()

    def make():
        hpo = toy_hpo(tmp_path, "resume", verbose=1)
        hpo.bind_model_param("run_marker", str(runs))
        hpo.set_num_samples(3)
        hpo.set_max_concurrent_trials(1)
        hpo.set_tune_scheduler_config("fifo")
        return hpo

    interrupted = make()
    with pytest.raises(KeyboardInterrupt):  # the script stops, as after any Ctrl-C
        interrupted.run(callbacks=[InterruptOnce(tmp_path / "interrupted")])
    first = interrupted.results  # what ran
    assert f"Interrupted: the experiment's state is saved in {tmp_path / 'results' / 'resume'}" in capsys.readouterr().out
    done = {os.path.basename(r.path): r.metrics_dataframe for r in first if r.metrics and r.metrics.get("done")}
    assert len(done) == 1 and len(os.listdir(runs)) < 3  # stopped before all trials ran

    # Ray would resume with the launched search space and settings, ignoring new ones: refused, listed, nothing run.
    changed = make()
    changed.bind_optimizer_param("lr", tune.loguniform(1e-4, 1e-1))
    changed.set_num_samples(4)
    changed.set_memory_guard(enabled=False)
    with pytest.raises(ValueError) as refused:
        changed.run(resume=True)
    assert "memory_guard.enabled: True -> False" in str(refused.value)
    assert ("search_space['optim.lr']: {'loguniform': {'lower': 0.001, 'upper': 0.1}} -> "
            "{'loguniform': {'lower': 0.0001, 'upper': 0.1}}") in str(refused.value)
    assert "num_samples: 3 -> 4" in str(refused.value) and "run(..., resume=False)" in str(refused.value)
    assert changed.results is None

    hpo = make()
    results = hpo.run(resume=True)
    assert len(results) == 3 and not results.errors
    # The trial lines count on from the finished trial (they started again at [1/3]).
    out = capsys.readouterr().out
    assert re.findall(r"^\[(\d)/3\]", out, flags=re.M) == ["2", "3"], out
    assert all(len(r.metrics_dataframe) == 3 for r in results)
    (name, history), = done.items()
    kept = next(r for r in results if os.path.basename(r.path) == name)
    pd.testing.assert_frame_equal(kept.metrics_dataframe[["epoch", "val_acc"]], history[["epoch", "val_acc"]])
    trial_id = name.removeprefix("trial_")
    assert len([f for f in os.listdir(runs) if f.startswith(trial_id + "__")]) == 1  # the finished trial did not run again
    with pytest.raises(ValueError, match="holds no experiment"):
        hpo2 = make()
        hpo2.settings.experiment_name = "never_ran"
        hpo2.run(resume=True)


def test_best_result_errors_list_reported_keys():
    class FakeResult:
        def __init__(self, metrics, error=None):
            self.metrics, self.error = metrics, error

    hpo = HPOWrapper(build_toy_model, build_toy_data, metric="val_recall", mode="max")
    hpo.results = [FakeResult({"val_acc": 0.5, "val_loss": 1.0}), FakeResult({}, RuntimeError("boom"))]
    with pytest.raises(MetricNotReportedError, match=r"'val_recall' not reported.*\['val_acc', 'val_loss'\].*boom"):
        hpo.best_result()
    hpo.results = [FakeResult({"hostname": "h", "pid": 1}, RuntimeError("boom")), FakeResult({}, ValueError("bad"))]
    with pytest.raises(MetricNotReportedError, match=r"every trial failed \(2\), so there is no best 'val_recall'.*boom.*bad"):
        hpo.best_result()


def test_memory_guard_strict_raises_before_launch(ray_local, tmp_path):
    hpo = toy_hpo(tmp_path, "strict")
    hpo.set_max_concurrent_trials(2)
    # One trial's need at 2/3 of the RAM budget: one fits, two do not.
    overhead = int(available_ram_bytes() * 0.8 / 1.5)
    hpo.set_memory_guard(enabled=True, strict=True, trial_overhead_bytes=overhead)
    with pytest.raises(MemoryGuardError, match=r"max_concurrent_trials=2 does not fit in memory.*set_max_concurrent_trials\(1\)"):
        hpo.run()
    assert not glob.glob(os.path.join(hpo.experiment_path, "trial_*"))


def test_memory_guard_is_only_about_memory(ray_local, tmp_path):
    """Two 2-CPU trials on a 2-CPU cluster are Ray's to queue: no MemoryGuardError (it used to raise one)."""
    hpo = toy_hpo(tmp_path, "cpus")
    hpo.set_resources(cpu=2, gpu=0)
    hpo.set_max_concurrent_trials(2)
    hpo.set_memory_guard(enabled=True, strict=True, trial_overhead_bytes=1)
    assert len(hpo.run()) == 2


def test_missing_gpu_is_refused(ray_local, tmp_path):
    hpo = toy_hpo(tmp_path, "gpu")
    hpo.set_resources(cpu=1, gpu=0.25)
    with pytest.raises(ValueError, match=r"set_resources\(gpu=0.25\).*has 0"):
        hpo.run()


def test_preflight_warns_and_rejects(tmp_path):
    hpo = toy_hpo(tmp_path, "preflight")
    hpo.bind_trainer_param("bogus", 1)
    with pytest.warns(UserWarning, match="trainer.bogus: not a Lightning Trainer argument"):
        notes = hpo.preflight()
    assert any("trainer.bogus" in n for n in notes)
    del hpo.param_space["trainer.bogus"]
    # A bound name no builder or callback has would fail every trial: an error, listed with the other problems.
    hpo.bind_nwave_scheduler_param("surrogat.policy", "linear")
    hpo.bind_metric_param("f1", "beta", 2.0)
    hpo.bind_loss_param("aux", "w", tune.choice([1, 2]))
    with pytest.raises(ValueError, match=r"(?s)nwave.surrogat.policy: no NWAVE scheduler 'surrogat'"
                                         r".*no metric builder named 'f1'.*no loss builder named 'aux'"):
        hpo.preflight()
    del hpo.param_space["metric.f1.beta"], hpo.param_space["loss.aux.w"], hpo.param_space["nwave.surrogat.policy"]
    # The experiment's numbers are checked there too, all at once.
    hpo.set_num_samples(0)
    hpo.set_resources(cpu=-1, workers=0)
    hpo.set_max_concurrent_trials(0)
    with pytest.raises(ValueError, match=r"(?s)4 problem.*set_num_samples: num_samples=0.*set_max_concurrent_trials: max_concurrent_trials=0"
                       r".*set_resources: workers=0.*set_resources: cpu=-1"):
        hpo.preflight()
    hpo.set_num_samples(1)
    hpo.set_resources()
    hpo.set_max_concurrent_trials(None)
    hpo.bind_optimizer_param("name", tune.choice(["adam", "rmsprop"]))
    with pytest.raises(ValueError, match=r"rmsprop.*\[.adam., .adamax.\]"):
        hpo.run()


def test_binding_api_and_validation(tmp_path):
    hpo = toy_hpo(tmp_path, "api")
    hpo.bind_nwave_scheduler_param("surrogate.policy", {"choice": ["linear", "exp"]})  # plain-YAML domain
    hpo.bind_early_stop_param("policy", "patience")
    hpo.bind_data_param("batch_size", 4)
    hpo.set_fixed_params({"model": {"in_ch": 4}}, **{"metric.acc.num_classes": 2})
    assert hpo.param_space["nwave.surrogate.policy"].categories == ["linear", "exp"]
    assert hpo.param_space["model.in_ch"] == 4 and hpo.param_space["metric.acc.num_classes"] == 2
    with pytest.raises(ValueError, match="'<scheduler>.<param>'"):
        hpo.bind_nwave_scheduler_param("surrogate", 1)
    with pytest.raises(ValueError, match="mode='maximum'"):
        HPOWrapper(build_toy_model, build_toy_data, mode="maximum")
    with pytest.raises(ValueError, match="not supported"):
        hpo.set_tune_scheduler_config("pbt")
    with pytest.raises(RuntimeError, match="call hpo.run"):
        hpo.best_result()
