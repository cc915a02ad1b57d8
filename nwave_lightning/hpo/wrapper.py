"""``HPOWrapper``: the vendor SDK's Python API for Ray Tune over an SNN training pipeline.

You provide builders (model, data, losses, metrics, optionally optimizer and LR
scheduler); bind fixed values or Ray Tune domains into the namespaced trial config;
``run(dataset_path)`` launches Ray Tune and returns its ``ResultGrid``. Each trial
follows the vendor SDK's flow (see :mod:`nwave_lightning.hpo.trial`); every epoch reports
the SDK's keys and checkpoints ``best_model.pt``.

Example:
    >>> from ray import tune
    >>> hpo = HPOWrapper(model_builder=lambda cfg: None, dataset_builder=lambda path, cfg: None,
    ...                  loss_builders={"main": lambda cfg: None}, metric_builders={"acc": lambda cfg: None},
    ...                  metric="val_acc", mode="max", experiment_name="doc")
    >>> hpo.bind_model_param("hidden_1", tune.choice([32, 64]))
    >>> hpo.bind_loss_param("main", "correct_rate", 0.3)
    >>> hpo.bind_nwave_scheduler_param("surrogate.policy", "linear")
    >>> sorted(hpo.param_space)
    ['loss.main.correct_rate', 'model.hidden_1', 'nwave.surrogate.policy']
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from ray import tune

from .engine import (
    ExperimentInterrupted, ExperimentSettings, check_same_experiment, choose_experiment, experiment_path, run_experiment,
    save_launch_settings, trial_spec,
)
from .memory_guard import MemoryGuard
from .preflight import domain_problems, metric_problems, raise_problems, search_space_problems
from .results import best_result
from .namespaced import DEFAULT_EPOCHS, flatten_params, named_choice_problems, namespaced_key, unused_bindings
from .space import describe_space, parse_domain, plain, upper_bound
from .trial import Builders, TrialSpec, run_trial, train_one_trial

__all__ = ["HPOWrapper"]

log = logging.getLogger(__name__)
# The setter of each number ExperimentSettings.problems() checks.
_SETTERS = {"num_samples": "set_num_samples", "max_concurrent_trials": "set_max_concurrent_trials",
            "workers": "set_resources", "cpu": "set_resources", "gpu": "set_resources", "max_failures": "set_max_failures"}


class HPOWrapper:
    """Tune model, loss, metric, optimizer, scheduler, NWAVE and trainer parameters together.

    Args:
        model_builder: ``model_builder(model_cfg) -> nn.Module`` returning ``(spikes_list, membranes_list)``.
        dataset_builder: ``dataset_builder(dataset_path, data_cfg)`` -> ``(train_loader, val_loader)``
            (or ``{"train": ..., "val": ...}``, or a LightningDataModule).
        train_fn: ``train_fn(ctx: TrialContext)``; :func:`train_one_trial` (Lightning) by default.
        loss_builders: name -> ``builder(loss_cfg)`` returning a loss callable; the default
            ``train_fn`` trains on ``"main"``.
        metric_builders: name -> ``builder(metric_cfg)`` returning ``fn(spk_out, y, ...) -> float``
            (or a torchmetrics Metric); reported as ``train_<name>`` / ``val_<name>``.
        metric: The reported key to optimise (e.g. ``"val_recall"``, ``"val_loss"``, or the
            chip-ready twins ``"val_chip_recall"``, ``"val_chip_loss"``: the same on ``to_chip(net)``,
            logged by the default ``train_fn`` for nets built from ``nwave_lightning.layers``).
        mode: ``"max"`` or ``"min"``.
        experiment_name: Folder of the experiment under ``storage_path``.
        optimizer_builder: ``builder(params, optim_cfg) -> Optimizer`` replacing the default
            (``optim.name`` in ``adam``/``adamax``; other ``optim.*`` keys are its keywords).
        scheduler_builder: ``builder(optimizer, sched_cfg) -> LR scheduler | None`` replacing the
            default (``none``/``plateau``/``step``/``cosine``/``multistep``).
        storage_path: Where experiments live (default ``./ray_results``).
        max_failures: Retries of a trial that raises before it is reported as failed.
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            None uses the running session or starts a local one.
        search_alg: ``"random"`` (default), ``"optuna"``, ``"hyperopt"``, a dict with ``name`` and
            options (``seed``, ...), or a Ray search algorithm instance.
        verbose: Ray Tune console verbosity (0-3).
    """

    def __init__(
        self,
        model_builder: Callable,
        dataset_builder: Callable,
        train_fn: Callable = train_one_trial,
        loss_builders: Mapping[str, Callable] | None = None,
        metric_builders: Mapping[str, Callable] | None = None,
        metric: str = "val_loss",
        mode: str = "min",
        experiment_name: str = "nwave_hpo",
        optimizer_builder: Callable | None = None,
        scheduler_builder: Callable | None = None,
        storage_path: str | None = None,
        max_failures: int = 0,
        address: str | None = None,
        search_alg: Any = None,
        verbose: int = 1,
    ) -> None:
        for name, value in (("model_builder", model_builder), ("dataset_builder", dataset_builder), ("train_fn", train_fn)):
            if not callable(value):
                raise ValueError(f"{name}={value!r} must be callable")
        for name, table in (("loss_builders", loss_builders), ("metric_builders", metric_builders)):
            if table is not None and (not isinstance(table, Mapping) or not all(callable(b) for b in table.values())):
                raise ValueError(f"{name} must map names to builder callables, got {table!r}")
        self.model_builder, self.dataset_builder, self.train_fn = model_builder, dataset_builder, train_fn
        self.loss_builders = dict(loss_builders or {})
        self.metric_builders = dict(metric_builders or {})
        self.optimizer_builder, self.scheduler_builder = optimizer_builder, scheduler_builder
        self.settings = ExperimentSettings(
            metric=metric,
            mode=mode,
            experiment_name=experiment_name,
            storage_path=storage_path,
            max_failures=int(max_failures),
            address=address,
            search_alg=search_alg,
            verbose=verbose,
        )
        self.param_space: dict[str, Any] = {}
        self.results = None
        self.memory_recommendation = None

    # -- binding ------------------------------------------------------------
    def _bind(self, key: str, space: Any) -> None:
        # An invalid domain is kept as written: preflight() lists it with every other problem.
        self.param_space[key] = space if domain_problems(key, space) else parse_domain(space, key)

    def bind_model_param(self, name: str, space: Any) -> None:
        """``model.<name>``: a fixed value or a Ray Tune domain for ``model_builder``."""
        self._bind(namespaced_key("model", name), space)

    def bind_loss_param(self, loss_name: str, param_name: str, space: Any) -> None:
        """``loss.<loss_name>.<param_name>`` for ``loss_builders[loss_name]``."""
        self._bind(namespaced_key("loss", loss_name, param_name), space)

    def bind_metric_param(self, metric_name: str, param_name: str, space: Any) -> None:
        """``metric.<metric_name>.<param_name>`` for ``metric_builders[metric_name]``."""
        self._bind(namespaced_key("metric", metric_name, param_name), space)

    def bind_optimizer_param(self, name: str, space: Any) -> None:
        """``optim.<name>`` (``name``, ``lr``, ``weight_decay``, optimizer keywords)."""
        self._bind(namespaced_key("optim", name), space)

    def bind_scheduler_param(self, name: str, space: Any) -> None:
        """``sched.<name>``; ``sched.cfg`` may be a whole scheduler dict (or a choice of dicts)."""
        self._bind(namespaced_key("sched", name), space)

    def bind_nwave_scheduler_param(self, name: str, space: Any) -> None:
        """``nwave.<scheduler>.<param>`` with ``name="surrogate.policy"``, ``"sign_annealing.alpha_end"``..."""
        scheduler, _, param = str(name).partition(".")
        if not param:
            raise ValueError(f"name={name!r} must be '<scheduler>.<param>', e.g. 'surrogate.policy'")
        self._bind(namespaced_key("nwave", scheduler, param), space)

    def bind_trainer_param(self, name: str, space: Any) -> None:
        """``trainer.<name>``: ``epochs``, ``device``, ``seed`` or a Lightning Trainer argument."""
        self._bind(namespaced_key("trainer", name), space)

    def bind_data_param(self, name: str, space: Any) -> None:
        """``data.<name>`` for ``dataset_builder`` (file names here also feed the memory guard)."""
        self._bind(namespaced_key("data", name), space)

    def bind_early_stop_param(self, name: str, space: Any) -> None:
        """``early_stop.<name>``: ``policy``, ``metric``, ``mode``, ``min_epoch``, ``value``, ``patience``, ``min_delta``."""
        self._bind(namespaced_key("early_stop", name), space)

    def set_fixed_params(self, params: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Fixed (non-tuned) values by dotted key or per namespace: ``{"model": {"in_ch": 13}}``."""
        for key, value in flatten_params(params, **kwargs).items():
            self.param_space[key] = value

    # -- experiment settings ------------------------------------------------
    def set_resources(self, cpu: float = 1, gpu: float = 0, workers: int = 1) -> None:
        """Resources of one trial (fractional GPUs share a device); ``workers > 1`` runs each
        trial as a Ray Train DDP job with ``cpu``/``gpu`` per worker. Checked by :meth:`run`."""
        self.settings.resources = {"cpu": float(cpu), "gpu": float(gpu)}
        self.settings.num_workers = int(workers)

    def set_num_samples(self, n: int) -> None:
        """Number of sampled configurations (each grid point is run ``n`` times). Checked by :meth:`run`."""
        self.settings.num_samples = int(n)

    def set_max_concurrent_trials(self, n: int | None) -> None:
        """Trials running at once (None: the memory guard picks a safe value). Checked by :meth:`run`."""
        self.settings.max_concurrent_trials = None if n is None else int(n)

    def set_memory_guard(
        self,
        enabled: bool = True,
        strict: bool = False,
        safety_fraction: float = 0.80,
        dataset_memory_multiplier: float = 1.25,
        trial_overhead_bytes: int | None = None,
    ) -> None:
        """Configure the host-RAM pre-check (see :mod:`nwave_lightning.hpo.memory_guard`)."""
        extra = {} if trial_overhead_bytes is None else {"trial_overhead_bytes": int(trial_overhead_bytes)}
        self.settings.memory_guard = MemoryGuard(bool(enabled), bool(strict), float(safety_fraction), float(dataset_memory_multiplier), **extra)

    def set_tune_scheduler_config(self, config: str | Mapping[str, Any] | None) -> None:
        """Trial scheduler by name: ``asha`` (default), ``hyperband``, ``median``, ``fifo``/``none``."""
        from .schedulers import build_tune_scheduler

        build_tune_scheduler(config)  # fail now on a bad name or option
        self.settings.tune_scheduler = config

    def set_tune_scheduler(self, scheduler) -> None:
        """Use a Ray ``TrialScheduler`` instance as is."""
        from ray.tune.schedulers import TrialScheduler

        if not isinstance(scheduler, TrialScheduler):
            raise ValueError(f"set_tune_scheduler expects a ray.tune.schedulers.TrialScheduler, got {type(scheduler).__name__}")
        self.settings.tune_scheduler = scheduler

    def set_search_algorithm(self, search_alg: Any) -> None:
        """``"random"`` (default), ``"optuna"``, ``"hyperopt"``, ``{"name": ..., "seed": ...}`` or an instance."""
        self.settings.search_alg = search_alg

    def set_max_failures(self, n: int) -> None:
        """Retries of a failing trial before it is reported as errored (the others go on); checked by ``run``."""
        self.settings.max_failures = int(n)

    # -- running ------------------------------------------------------------
    @property
    def experiment_path(self) -> str:
        """``<storage_path>/<experiment_name>``: trial folders, TensorBoard events, checkpoints."""
        return experiment_path(self.settings)

    def _spec(self, dataset_path: str | None) -> TrialSpec:
        builders = Builders(
            model_builder=self.model_builder,
            dataset_builder=self.dataset_builder,
            train_fn=self.train_fn,
            loss_builders=self.loss_builders,
            metric_builders=self.metric_builders,
            metric=self.settings.metric,
            mode=self.settings.mode,
            optimizer_builder=self.optimizer_builder,
            scheduler_builder=self.scheduler_builder,
            dataset_path=dataset_path,
        )
        return trial_spec(builders, self.settings)

    def preflight(self) -> list[str]:
        """Checks before launching: one :class:`~nwave_lightning.hpo.preflight.PreflightError` lists every
        problem (search space, optimizer / LR-scheduler names, metric, unknown loss/metric builder names, the
        experiment's numbers); other unused
        bindings are warned and returned."""
        notes = unused_bindings(
            list(self.param_space),
            loss_builders=self.loss_builders,
            metric_builders=self.metric_builders,
            default_train_fn=self.train_fn is train_one_trial,
        )
        # Names no builder or callback has would fail every trial: errors. Other unread keys are warned about.
        unknown = [n for n in notes if "no loss builder" in n or "no metric builder" in n or "no NWAVE scheduler" in n]
        # The experiment's numbers, named by the call that sets them: "set_num_samples: num_samples=0 must be >= 1 ...".
        numbers = [f"{_SETTERS[p.split('=')[0]]}: {p}" for p in self.settings.problems()]
        problems = search_space_problems(self.param_space) + [f"bound name {n}" for n in unknown] + numbers
        problems += named_choice_problems(self.param_space, custom_optimizer=self.optimizer_builder is not None,
                                          custom_scheduler=self.scheduler_builder is not None)
        if self.train_fn is train_one_trial:
            names = ["loss", *self.metric_builders]
            logged = [f"{stage}_{name}" for stage in ("train", "val", "val_chip") for name in names]
            problems += metric_problems(self.settings.metric, logged)
        raise_problems(problems, "HPOWrapper")
        notes = [n for n in notes if n not in unknown]
        for note in notes:
            warnings.warn(f"HPOWrapper: bound but unused: {note}", UserWarning, stacklevel=3)
        return notes

    def run(self, dataset_path: str | None = None, resume: bool | str = False, callbacks: list | None = None):
        """Run the experiment; returns the ResultGrid.

        ``resume=True``/``"auto"`` continues an interrupted one; ``False`` starts a new one
        (in ``<experiment_name>_2`` when the folder holds one; see
        :func:`~nwave_lightning.hpo.engine.choose_experiment`).
        Raises:
            KeyboardInterrupt: after a Ctrl-C (Ray stops the experiment and saves its state), so that
                the script stops too; ``hpo.results`` holds what ran and ``run(..., resume=True)``
                continues it.
        """
        self.preflight()
        # What Ray would keep on a resume, whatever this run says: refused when it differs, listed.
        settings = {f.name: plain(getattr(self.settings, f.name)) for f in fields(self.settings)}
        launched = {"search_space": describe_space(self.param_space), **settings}
        start_new = "call run(..., resume=False)"
        if resume is not False:
            check_same_experiment(self.experiment_path, launched, start_new=start_new)
        restore = choose_experiment(self.settings, resume, start_new=start_new)
        if not restore:
            save_launch_settings(self.settings, launched)
        trainable = tune.with_parameters(run_trial, spec=self._spec(dataset_path))
        data_cfg = {k.split(".", 1)[1]: v for k, v in self.param_space.items() if k.startswith("data.")}
        try:
            self.results, self.memory_recommendation = run_experiment(
                trainable,
                self.param_space,
                self.settings,
                dataset_path=dataset_path,
                data_cfg=data_cfg,
                max_t=upper_bound(self.param_space.get("trainer.epochs", DEFAULT_EPOCHS)),
                restore=restore,
                callbacks=callbacks,
            )
        except ExperimentInterrupted as stop:
            self.results = stop.results  # what ran, as Ray's Tuner.fit returns it
            print(f"Interrupted: the experiment's state is saved in {stop.path}; hpo.run(..., resume=True) continues it.",
                  flush=True)
            raise KeyboardInterrupt(f"experiment interrupted; its state is saved in {stop.path}") from None
        return self.results

    # -- analysis -----------------------------------------------------------
    def best_result(self, scope: str = "all"):
        """The best trial's ``ray.tune.Result`` (``scope="all"``: best epoch; ``"last"``: last epoch)."""
        if self.results is None:
            raise RuntimeError("best_result() needs a finished run(); call hpo.run(dataset_path) first")
        return best_result(self.results, self.settings.metric, self.settings.mode, scope)

    def best_epoch_metrics(self) -> dict[str, float]:
        """What the best trial reported at its best epoch (the epoch its ``best_model.pt`` holds).

        Holds the selected metric and, when the trial reported it, its float / chip-ready
        twin (``val_acc`` and ``val_chip_acc``, ...; see
        :func:`~nwave_lightning.hpo.results.chip_twin`) at that same epoch, and ``epoch``.
        ``describe_best(hpo.best_epoch_metrics(), hpo.settings.metric)`` prints them side by side.
        """
        from .results import best_epoch_metrics

        return best_epoch_metrics(self.best_result("all"), self.settings.metric, self.settings.mode)

    def best_config(self, scope: str = "all") -> dict:
        """The best trial's flat namespaced config."""
        return dict(self.best_result(scope).config)
