"""``nwave tune`` under bad input and faults: one error before launch, the memory guard, kill + resume, cleanup."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from nwave_lightning.cli import main
from nwave_lightning.hpo import memory_guard
from nwave_lightning.hpo.engine import check_same_experiment
from nwave_lightning.hpo.memory_guard import DEFAULT_TRIAL_OVERHEAD_BYTES, MemoryGuardError
from nwave_lightning.hpo.preflight import PreflightError
from nwave_lightning.hpo.report import experiment_table

from ._quickstart import CONFIGS, ROOT

CONFIG = str(CONFIGS / "tune_keyword_spotting.yaml")


def tune_config(tmp_path, data=None, **changes):
    """The shipped tune example shrunk to seconds (2 epochs, 2 trials one at a time, no early stop)."""
    with open(CONFIG) as handle:
        config = yaml.safe_load(handle)
    config["data"]["init_args"].update({"n_train": 32, "n_val": 16, "n_test": 16, "n_steps": 20, "word_length": 8,
                                        "batch_size": 16, **(data or {})})
    config["trainer"]["max_epochs"] = 2
    config.update(num_samples=2, max_concurrent_trials=1, scheduler={"name": "fifo"}, storage_path=str(tmp_path / "runs"),
                  experiment_name="kws", search_space={"model.init_args.lr": {"loguniform": [5.0e-3, 3.0e-2]}})
    config.update(changes)
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_setup_problems_are_listed_together_before_any_trial(tmp_path):
    """Every typo at once, and nothing launched (these used to fail one by one, or only after trials ran)."""
    path = tune_config(
        tmp_path,
        metric="val_chip_accc",
        max_failures=-1,
        num_samples=0,
        gpu=-1,
        search_space={
            "model.init_args.lr": {"unifrom": [5.0e-3, 3.0e-2]},
            "model.init_args.net.init_args.taus": {"uniform": [0.05, 0.01]},
            "data.init_args.batch_size": {"randint": [4.5, 16]},
            "model.init_args.optimizer": {"choice": []},
        },
    )
    config = yaml.safe_load(open(path))
    config["trainer"]["callbacks"] = [{"class_path": "nwave_lightning.callbacks.BestModelCheckpoint", "init_args": {"metric": "val_los"}}]
    open(path, "w").write(yaml.safe_dump(config))
    with pytest.raises(PreflightError) as error:
        main(["tune", "--config", path])
    message = str(error.value)
    for expected in ("9 problem(s)", "unknown domain 'unifrom' (did you mean 'uniform'?)", "lower=0.05 must be < upper=0.01",
                     "randint bounds must be integers", "choice must be a non-empty list", "max_failures=-1 must be >= 0",
                     "num_samples=0 must be >= 1", "gpu=-1.0 must be >= 0",
                     "metric='val_chip_accc' is not a logged key (did you mean 'val_chip_acc'?)",
                     "BestModelCheckpoint monitors 'val_los'"):
        assert expected in message
    assert not os.path.exists(tmp_path / "runs")  # no experiment, no trial folder


def test_a_bad_resume_value_is_refused_when_parsed(tmp_path, capsys):
    """`--resume later` fails at once, naming the option and its values, before any build or dry run."""
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--config", tune_config(tmp_path), "--resume", "later"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "resume" in error and "later" in error and "auto" in error
    assert not os.path.exists(tmp_path / "runs")


def test_memory_guard_knows_the_model(tmp_path, monkeypatch):
    """Two trials fit by the data-only estimate; the dry run of the model's batch says one: strict refuses, with the estimate.

    The per-trial estimate holds at least the membranes of every hidden layer at the trial's batch size and T
    (batch * T * sum(hidden) float32 values), on top of the process overhead.
    """
    import ray

    batch, steps, hidden = 64, 200, [256, 256]
    budget = 2 * DEFAULT_TRIAL_OVERHEAD_BYTES + 4 * 2**20
    monkeypatch.setattr(memory_guard, "available_ram_bytes", lambda: int(budget / 0.8) + 1)
    path = tune_config(tmp_path, data={"batch_size": batch, "n_steps": steps, "n_train": batch, "n_val": batch},
                       max_concurrent_trials=2, memory_guard={"strict": True})
    config = yaml.safe_load(open(path))
    config["model"]["init_args"]["net"]["init_args"]["hidden"] = hidden
    open(path, "w").write(yaml.safe_dump(config))
    started = ray.is_initialized()
    try:
        with pytest.raises(MemoryGuardError) as error:
            main(["tune", "--config", path])
    finally:
        if not started and ray.is_initialized():
            ray.shutdown()
    message = str(error.value)
    assert "max_concurrent_trials=2 does not fit in memory" in message and "max_concurrent_trials: 1" in message
    per_trial_gib = float(re.search(r"~([0-9.]+) GiB per trial", message).group(1))
    lower_bound = DEFAULT_TRIAL_OVERHEAD_BYTES + batch * steps * sum(hidden) * 4
    assert per_trial_gib >= lower_bound / 2**30 - 1e-3
    assert not glob.glob(str(tmp_path / "runs" / "kws" / "trial_*"))


def _nwave_tune(path, cwd, env=None, **kwargs):
    command = [sys.executable, "-m", "nwave_lightning", "tune", "--config", path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kwargs)


def _ray_saved_the_held_trial(experiment, epoch) -> bool:
    """Whether Ray's saved experiment state (with its search-algorithm state of the same session) lists a
    running trial whose last report is ``epoch``: the trial's latest checkpoint is in that state."""
    for state_file in sorted(glob.glob(str(experiment / "experiment_state-*.json")))[-1:]:
        session = os.path.basename(state_file)[len("experiment_state-"):]
        if not glob.glob(str(experiment / f"*-state-{session}")):
            return False
        try:
            with open(state_file) as handle:
                trials = json.load(handle)["trial_data"]
        except (ValueError, KeyError, OSError):  # Ray is still copying it
            return False
        for trial, run_metadata in trials:
            if '"status": "RUNNING"' in trial and (json.loads(run_metadata).get("last_result") or {}).get("epoch") == epoch:
                return True
    return False


def _tune_held_before_epoch_3(tmp_path, epochs, **changes):
    """Start `nwave tune` (epochs per trial) whose first trial waits before its third epoch while ``hold`` exists;
    return once Ray's saved state lists that trial: ``(process, config path, experiment folder, hold file)``.

    A kill or Ctrl-C then lands at a known point, after Ray saved the experiment state holding the trial's latest
    checkpoint (Tune resumes from that state, which it writes on its own schedule).
    """
    path = tune_config(tmp_path, **changes)
    config = yaml.safe_load(open(path))
    config["trainer"]["max_epochs"] = epochs
    hold = tmp_path / "hold"
    hold.touch()
    config["trainer"]["callbacks"] = [{"class_path": "tests.cli._faults.HoldAtEpoch", "init_args": {"epoch": 2, "hold_file": str(hold)}}]
    open(path, "w").write(yaml.safe_dump(config))
    experiment = tmp_path / "runs" / "kws"
    proc = _nwave_tune(path, tmp_path)
    deadline = time.monotonic() + 300
    while not _ray_saved_the_held_trial(experiment, epoch=2):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            hold.unlink()
            pytest.fail(proc.stdout.read() if proc.poll() is not None else "timeout")
        time.sleep(0.1)
    return proc, path, experiment, hold


def capsys_free_dump(path) -> str:
    """The launch config `nwave tune --config path` would store (what --print_config prints)."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit):
        main(["tune", "--config", path, "--print_config"])
    return buffer.getvalue()


def test_a_rerun_with_other_settings_is_refused_listing_them(tmp_path, capsys):
    """Ray would continue the stored experiment with its own settings and ignore the new ones: refused, listed."""
    path = tune_config(tmp_path)
    with pytest.raises(SystemExit):
        main(["tune", "--config", path, "--print_config"])
    experiment = tmp_path / "runs" / "kws"
    experiment.mkdir(parents=True)
    (experiment / "tune_config.yaml").write_text(capsys.readouterr().out)  # as the first launch stored it
    (experiment / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for
    with pytest.raises(ValueError) as error:
        main(["tune", "--config", path, "--num_samples", "5", "--trainer.max_epochs", "3", "--report", "false"])
    message = str(error.value)
    assert "holds an experiment launched with other settings" in message and "--resume false" in message
    assert "num_samples: 2 -> 5" in message and "trainer.max_epochs: 2 -> 3" in message and "report" not in message.split("\n")[1]
    assert sorted(os.listdir(experiment)) == ["tune_config.yaml", "tuner.pkl"]  # nothing ran
    check_same_experiment(str(experiment), (experiment / "tune_config.yaml").read_text(), start_new="-")  # same: pass
    # An argument an upgrade added (on one side only) is not a setting the user changed.
    stored = yaml.safe_load((experiment / "tune_config.yaml").read_text())
    stored["trainer"]["an_argument_of_an_older_version"] = True
    (experiment / "tune_config.yaml").write_text(yaml.safe_dump(stored))
    check_same_experiment(str(experiment), capsys_free_dump(path), start_new="-")


@pytest.mark.slow
def test_ctrl_c_stops_tune_with_status_130_and_says_how_to_go_on(tmp_path):
    """Ray stops the experiment gracefully and saves its state; the command says so and exits as a Ctrl-C'd one."""
    proc, _, experiment, hold = _tune_held_before_epoch_3(tmp_path, epochs=4, num_samples=2)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground group
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        hold.unlink()
    assert proc.returncode == 130, out
    assert f"Interrupted: the experiment's state is saved in {experiment}; rerun the same command to continue it" in out
    assert "Tuner.restore" not in out and "Trials did not complete" not in out


@pytest.mark.slow
def test_failed_trials_leave_no_temporary_folders_and_non_finite_is_final(tmp_path):
    """One trial succeeds, one raises (retried once), one meets a NaN (not retried): no nwave_* left in $TMPDIR,
    and the report gives each trial's end."""
    markers = tmp_path / "markers"
    markers.mkdir()
    path = tune_config(tmp_path, num_samples=1, max_failures=1, search_space={
        "trainer.callbacks.0.init_args.kind": {"grid": ["none", "error", "nonfinite"]},
    })
    config = yaml.safe_load(open(path))
    config["trainer"]["callbacks"] = [{"class_path": "tests.cli._faults.FailAtFirstEpoch",
                                       "init_args": {"kind": "none", "marker_dir": str(markers)}}]
    open(path, "w").write(yaml.safe_dump(config))
    scratch = tempfile.mkdtemp(prefix="nwt_", dir="/tmp")  # short: Ray's sockets live under $TMPDIR too
    try:
        proc = _nwave_tune(path, tmp_path, env={"TMPDIR": scratch})
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        assert sorted(glob.glob(os.path.join(scratch, "nwave_*"))) == []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # One line per retry and per trial, each naming the error; the tracebacks stay in the trials' error.txt.
    assert re.search(r"failed, retrying it: RuntimeError: FailAtFirstEpoch: planned failure \(traceback: .*error.txt\)", out)
    assert re.search(r"\[\d/3\] trial_\w+ ERROR after 0 epochs: RuntimeError: FailAtFirstEpoch", out), out
    assert re.search(r"\[\d/3\] trial_\w+ STOPPED after 0 epochs: non-finite: NonFiniteGuard", out), out
    for noise in ("Traceback", "Configuration for experiment", "Error file:", "Token authentication", "Last result"):
        assert noise not in out, noise
    assert len(out.splitlines()) < 25, out
    tries = sorted(name.split("_")[0] for name in os.listdir(markers))
    assert tries == ["error", "error", "nonfinite"]  # max_failures=1 retried the error, never the NaN
    table = experiment_table(str(tmp_path / "runs" / "kws"), "val_chip_acc", "max")
    status = dict(zip(table["trainer.callbacks.0.init_args.kind"], table["status"]))
    assert status["none"] == "ok" and status["error"] == "error"
    assert status["nonfinite"].startswith("non-finite: NonFiniteGuard: 1 NaN")


@pytest.mark.slow
def test_killed_tune_resumes_with_the_same_command(tmp_path):
    """SIGKILL the whole `nwave tune` mid-experiment; the killed trial is incomplete in the report, never ok;
    the same command resumes and finishes every trial (it used to start a new experiment beside it)."""
    epochs = 4
    proc, path, experiment, hold = _tune_held_before_epoch_3(tmp_path, epochs, num_samples=3, data={"n_train": 64})
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    hold.unlink()
    killed = experiment_table(str(experiment), "val_chip_acc", "max")
    assert "incomplete" in set(killed["status"])
    assert all(row.epochs == epochs for row in killed.itertuples() if row.status == "ok")

    proc = _nwave_tune(path, tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert f"Resuming the experiment in {experiment}" in out
    assert not os.path.exists(str(experiment) + "_2")
    table = experiment_table(str(experiment), "val_chip_acc", "max")
    assert len(table) == 3 and set(table["status"]) == {"ok"} and set(table["epochs"]) == {epochs}
    # No work lost: the held trial went on from its checkpoint (epochs 3 and 4 after the resume, 1 and 2 not again).
    for trial in table["trial"]:
        with open(experiment / trial / "result.json") as handle:
            assert [json.loads(line)["epoch"] for line in handle] == [1.0, 2.0, 3.0, 4.0], trial
        assert f"{trial} TERMINATED after {epochs} epochs" in out  # the console line covers the whole trial
    best = table.iloc[0]
    assert f"Best val_chip_acc: {best.best_value:.4g} at epoch {best.best_epoch} (trial {best.trial})" in out
