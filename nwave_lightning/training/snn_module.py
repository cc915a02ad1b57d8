"""``SNNModule``: the LightningModule that trains any contract model.

It owns no physics: the wrapped ``net`` maps ``x (B, T, F)`` to
``(spikes_list, membranes_list)``, the loss and the metrics are plain callables
or torchmetrics objects, stateful schedules are callbacks. Everything is
logged once per epoch under the vendor SDK's TensorBoard keys, with the epoch
(1-based) as the TensorBoard step so that curves line up with the SDK's
``train_one_trial`` reports.

Example:
    >>> import torch
    >>> import lightning.pytorch as pl
    >>> from nwave_lightning.models import H1Classifier, PopulationLoss
    >>> from nwave_lightning.metrics import PopulationAccuracy
    >>> net = H1Classifier(in_ch=4, num_classes=2, neurons_per_class=2, hidden=[8])
    >>> module = SNNModule(net, loss=PopulationLoss(num_classes=2, neurons_per_class=2),
    ...                    metrics={"acc": PopulationAccuracy(num_classes=2)}, lr=1e-2)
    >>> x, y = (torch.rand(8, 20, 4) < 0.3).float(), torch.randint(0, 2, (8,))
    >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    >>> trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
    ...                      enable_progress_bar=False, enable_model_summary=False)
    >>> trainer.fit(module, loader, loader)
    >>> sorted(k for k in trainer.logged_metrics if k.startswith("val"))[:6]
    ['val/acc', 'val/layer_0/dead_neurons', 'val/layer_0/dead_neurons_fraction', 'val/layer_0/firing_rate', 'val/layer_0/membrane_mean', 'val/layer_0/membrane_var']
    >>> sorted(k for k in trainer.logged_metrics if not k.startswith(("train", "val/layer")))
    ['epoch', 'lr', 'step', 'val/acc', 'val/population/mse', 'val/population/total', 'val/total', 'val_acc', 'val_chip_acc', 'val_chip_loss', 'val_loss']
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any, Callable, Optional, Union

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn
import torch
from torch import nn
from torch.nn.utils import parametrize
from torchmetrics import Metric

from ..callbacks.faults import fault_callbacks
from ..callbacks.sign_annealing import SignAnnealing
from ..callbacks.sign_pruning import SignPruning
from ..checkpoints import verify_checkpoint
from ..chip_keys import CHIP_STAGES
from ..console import quiet_third_party
from ..deploy import check_chip, to_chip
from ..layers.walk import dense_weights, layers
from ..layers.sign import install_sign_parametrization, restart_sign_parametrization, sign_parametrization, unparametrized_copy
from ..loss.output import as_loss_output
from ..metrics import ActivityMetric
from ..signature import accepted_kwargs
from .contract import batch_mask, unpack_batch, validate_contract
from .epoch_means import EpochMeans
from .optim import build_lr_scheduler, build_optimizer

__all__ = ["SNNModule"]

# What losses and metrics may ask for (the vendor SDK's call contract, plus the padding mask).
CALL_KEYS = ("spk_out", "y", "spikes_list", "membranes_list", "model", "mask")
STAGES = ("train", "val", "test")
_PLAIN = (type(None), bool, int, float, str)


def _plain_data(value: Any) -> bool:
    """Whether ``value`` survives ``torch.load(weights_only=True)`` and YAML dumps."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_data(v) for k, v in value.items())
    return False


#: What jsonargparse writes for an object a config holds already built (an HPOWrapper trial's net, loss, metrics).
_BUILT_OBJECT_PLACEHOLDER = "Unable to serialize instance"


def _holds_built_objects(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(_BUILT_OBJECT_PLACEHOLDER)
    if isinstance(value, dict):
        return any(_holds_built_objects(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_built_objects(v) for v in value)
    return False


def _default_sign_annealing(spec: Union[bool, dict[str, Any]]) -> Optional[SignAnnealing]:
    """The ``SignAnnealing`` that ``sign_annealing=`` asks for (``None``: unconstrained signs)."""
    if spec is False:
        return None
    if spec is True:
        return SignAnnealing(total_epochs=None)
    if isinstance(spec, dict):  # from_config names unknown keys and lists the accepted ones
        return SignAnnealing.from_config({"total_epochs": None, **spec})
    raise ValueError(
        f"SNNModule: sign_annealing={spec!r} must be True (anneal over 60 % of max_epochs), False, or a dict of "
        "SignAnnealing arguments such as {'alpha_end': 20.0}."
    )


def _chip_ready_copy_exists(net: nn.Module) -> bool:
    """Whether ``to_chip(net)`` is a network the chip runs; warns (once per module) when it is not."""
    if not layers(net):
        rank_zero_warn(
            f"SNNModule: chip_eval is on but {type(net).__name__} holds no H1 layer, so it has no chip-ready "
            "twin and val_chip_* is not logged. Build it from nwave_lightning.layers, or pass chip_eval=False."
        )
        return False
    left = check_chip(to_chip(net))
    unsupported = [str(v) for v in left if v.kind == "unsupported_module"]
    if unsupported:
        rank_zero_warn(
            f"SNNModule: chip_eval is on but the network has modules the chip lacks ({'; '.join(unsupported)}), "
            "so val_chip_* is not logged. Pass chip_eval=False to silence this."
        )
        return False
    if left:
        rank_zero_warn(
            f"SNNModule: even to_chip(net) breaks chip constraints ({'; '.join(map(str, left))}); val_chip_* "
            "evaluates it as it is, but the chip cannot run it. Change the model (see check_chip)."
        )
    return True


def _chip_trails(float_value: float, chip_value: float, higher_is_better: Optional[bool], tolerance: float) -> bool:
    """Whether the chip-ready value is worse than the float one by more than ``tolerance``.

    ``higher_is_better=None`` (no known direction): any difference beyond ``tolerance`` counts.
    """
    if higher_is_better is None:
        return abs(float_value - chip_value) > tolerance
    shortfall = float_value - chip_value if higher_is_better else chip_value - float_value
    return shortfall > tolerance


def _chip_gap_advice(callbacks: list, clamp_weights: bool) -> str:
    """What to change against a chip gap, given what the run already does."""
    signs = [callback for callback in callbacks if isinstance(callback, (SignAnnealing, SignPruning))]
    missing = []
    if not signs:
        missing.append("sign_annealing=True (or a SignPruning callback) to train the chip's row-block signs")
    if not clamp_weights:
        missing.append("clamp_weights=True to keep every weight in the chip's range")
    if missing:
        return f"Train hardware-aware: turn on {' and '.join(missing)}."
    if any(isinstance(callback, SignPruning) for callback in signs):
        return (
            "SignPruning and weight clamping are on already: train more epochs after its end_fraction (or lower "
            "end_fraction), so the last epochs train the exact signs the chip stores."
        )
    return (
        "Sign annealing and weight clamping are on already: train more epochs after the SignAnnealing ramp ends "
        "(a shorter ramp: its ramp_fraction or total_epochs), raise its alpha_end (e.g. sign_annealing={'alpha_end': 20.0}), or replace it "
        "with a SignPruning callback when the float solution needs mixed-sign rows."
    )


def _saved_sign_alpha(checkpoint: dict[str, Any]) -> float:
    """The sharpness a checkpoint's ``SignAnnealing`` state recorded (1.0 when it holds none)."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if "SignAnnealing" in str(key) and isinstance(state, dict) and "alpha" in state:
            return float(state["alpha"])
    return 1.0


def _kwarg_names(fn: Callable) -> tuple[str, ...]:
    # Resolve the signature once: inspecting bound torchmetrics methods per batch costs more than the step.
    return tuple(accepted_kwargs(fn, {key: None for key in CALL_KEYS}))


class SNNModule(pl.LightningModule):
    """Train a model that returns ``(spikes_list, membranes_list)``.

    Args:
        net: Any ``nn.Module`` honouring the contract (see
            :func:`~nwave_lightning.training.validate_contract`, checked on the first batch).
        loss: Callable ``(spk_out, y, spikes_list, membranes_list, model)``
            (only the arguments its signature names are passed) returning a
            scalar tensor, a dict of components or a ``LossOutput``. Required:
            no task loss is assumed (a population vote, a rate target and a
            regression need different ones).
        metrics: ``name -> torchmetrics.Metric`` (its ``update`` gets the same
            filtered arguments) or ``name -> callable`` returning a number
            (averaged over batches, weighted by batch size). Names must not
            contain ``.`` or ``/``.
        optimizer: ``"adam"``, ``"adamax"``, a ``{"name": ...}`` or
            ``{"class_path": ..., "init_args": ...}`` dict, or ``callable(params)``.
        lr: Learning rate of named / class-path optimizers.
        weight_decay: Weight decay of named / class-path optimizers.
        optimizer_kwargs: Extra keyword arguments of the optimizer.
        lr_scheduler: ``None`` / ``"none"``, an SDK-style dict (``plateau``, ``step``,
            ``cosine``, ``multistep``), a class-path dict, or ``callable(optimizer)``.
        activity: Log ``<stage>/layer_<i>/...`` activity statistics.
        clamp_weights: Project every dense H1 weight onto the chip's range
            after each optimiser step (the hard constraint of ``docs/hardware-model.md``).
        fluct_init: Keyword arguments of :func:`nwave_lightning.init.fluct_init`
            (e.g. ``{"xi_target": 2.0, "alpha": 0.85, "n_batches": 4}``): initialise
            ``net`` from the training loader when ``fit`` starts (once; a resumed
            run then loads its checkpoint over it). ``None``: keep ``net``'s weights.
        chip_eval: Evaluate the chip-ready copy :func:`nwave_lightning.deploy.to_chip`
            of ``net`` on every validation and test batch and log ``val_chip_loss``,
            ``val_chip_<metric>`` (``test_chip_*``) next to the float values, so every
            accuracy has its chip-ready twin; callbacks can monitor them.
        chip_gap_tolerance: At the end of ``fit``, warn when a chip-ready metric is worse
            than its float twin by more than this (the direction is the metric's
            ``higher_is_better``; a metric without one counts when the two differ).
        sign_annealing: Train towards the chip's row-block signs: ``True`` adds a
            :class:`~nwave_lightning.callbacks.SignAnnealing` whose ramp takes 60 % of
            ``max_epochs`` (a dict gives its arguments) unless the trainer already has
            one; ``False`` trains unconstrained signs (``to_chip`` then zeroes the
            minority-sign weights, which costs accuracy).

    Raises:
        ValueError: no loss, a metric that is neither a Metric nor callable, or a bad name.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: Optional[Callable] = None,
        metrics: Optional[dict[str, Union[Metric, Callable]]] = None,
        optimizer: Union[str, dict[str, Any], Callable] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer_kwargs: Optional[dict[str, Any]] = None,
        lr_scheduler: Union[str, dict[str, Any], Callable, None] = None,
        activity: bool = True,
        clamp_weights: bool = True,
        fluct_init: Optional[dict[str, Any]] = None,
        chip_eval: bool = True,
        chip_gap_tolerance: float = 0.05,
        sign_annealing: Union[bool, dict[str, Any]] = True,
    ) -> None:
        super().__init__()
        # Scripts that build their own Trainer get the quiet console of the `nwave` commands too
        # (no Lightning tips, no deprecations of Lightning's own internals).
        quiet_third_party()
        if not isinstance(net, nn.Module):
            raise ValueError(f"SNNModule: net must be a torch.nn.Module returning (spikes_list, membranes_list), got {type(net).__name__}.")
        if loss is None or not callable(loss):
            raise ValueError(
                f"SNNModule: loss={loss!r}; a loss is required and none is assumed. Pass e.g. "
                "nwave_lightning.models.PopulationLoss(num_classes=..., neurons_per_class=...) for a population "
                "readout, nwave_lightning.models.RateMSELoss() for rate targets, or any callable(spk_out, y, ...)."
            )
        self._save_hparams(
            dict(net=net, loss=loss, metrics=metrics, optimizer=optimizer, lr_scheduler=lr_scheduler, optimizer_kwargs=optimizer_kwargs)
        )
        self.net = net
        self.loss = loss
        self._loss_keys = _kwarg_names(loss)
        self.optimizer_spec, self.lr_scheduler_spec = optimizer, lr_scheduler
        self.lr, self.weight_decay, self.optimizer_kwargs = lr, weight_decay, optimizer_kwargs
        self.clamp_weights = bool(clamp_weights)
        if fluct_init is not None and not isinstance(fluct_init, dict):
            raise ValueError(f"SNNModule: fluct_init={fluct_init!r} must be None or a dict of fluct_init keyword arguments.")
        self.fluct_init_kwargs, self._fluct_done = fluct_init, False
        if not isinstance(chip_eval, bool):
            raise ValueError(f"SNNModule: chip_eval={chip_eval!r} must be True or False.")
        if isinstance(chip_gap_tolerance, bool) or not isinstance(chip_gap_tolerance, (int, float)) or not chip_gap_tolerance >= 0:
            raise ValueError(f"SNNModule: chip_gap_tolerance={chip_gap_tolerance!r} must be a number >= 0 (e.g. 0.05).")
        self.chip_eval, self.chip_gap_tolerance = chip_eval, float(chip_gap_tolerance)
        # The chip-ready copy of the current evaluation, held in a plain dict so that it never
        # becomes a submodule (it would enter state_dict() and parameters() while it lives).
        self._chip_copy: dict[str, nn.Module] = {}
        self._chip_ready: Optional[bool] = None  # whether net has a chip-ready copy; decided at setup
        self._default_sign_annealing = _default_sign_annealing(sign_annealing)
        self._contract_checked = False
        self._mask_checked = False
        self._build_metrics(metrics or {}, activity)

    # -- construction ----------------------------------------------------
    def _save_hparams(self, init_args: dict[str, Any]) -> None:
        # Under LightningCLI the hparams are the config dicts (class_path + init_args), so
        # load_from_checkpoint rebuilds net/loss/metrics. Objects built in Python are left
        # out instead (pass them again to load_from_checkpoint): pickled objects would make
        # the checkpoint unloadable with torch.load(weights_only=True).
        frame = inspect.currentframe().f_back
        objects = [key for key, value in init_args.items() if not _plain_data(value)]
        self.save_hyperparameters(ignore=objects, frame=frame)
        if "_class_path" in self.hparams:  # LightningCLI gave its config (plain data): keep all of it
            self.save_hyperparameters(frame=frame)
            if _holds_built_objects(dict(self.hparams)):  # unless it held objects built already: not rebuildable
                self.save_hyperparameters(ignore=objects, frame=frame)

    def _build_metrics(self, metrics: dict, activity: bool) -> None:
        self.metric_names: list[str] = []
        self._metric_keys: dict[str, tuple[str, ...]] = {}
        self._plain_metrics: dict[str, Callable] = {}
        self._higher_is_better: dict[str, Optional[bool]] = {}  # the chip-gap warning's direction per metric
        all_stages = (*STAGES, *CHIP_STAGES.values())
        tables = {stage: nn.ModuleDict() for stage in all_stages}
        for name, metric in metrics.items():
            if not isinstance(name, str) or not name or "." in name or "/" in name:
                raise ValueError(f"SNNModule: metric name {name!r} must be a non-empty string without '.' or '/'.")
            if isinstance(metric, Metric):
                self._metric_keys[name] = _kwarg_names(metric.update)
                for stage in all_stages:
                    tables[stage][name] = metric.clone()
            elif callable(metric):
                self._metric_keys[name] = _kwarg_names(metric)
                self._plain_metrics[name] = metric
            else:
                raise ValueError(f"SNNModule: metrics[{name!r}] is a {type(metric).__name__}; give a torchmetrics.Metric or a callable.")
            self.metric_names.append(name)
            self._higher_is_better[name] = getattr(metric, "higher_is_better", None)
        # ModuleDict keys may not shadow Module attributes ("train"), hence the suffix.
        self.stage_metrics = nn.ModuleDict({f"{stage}_metrics": table for stage, table in tables.items()})
        self._means = {stage: EpochMeans() for stage in all_stages}  # loss components
        self._plain_means = {stage: EpochMeans() for stage in all_stages}  # plain-callable metrics
        self.activity = None
        if activity:
            self.activity = nn.ModuleDict({f"{stage}_activity": ActivityMetric() for stage in STAGES})

    def configure_callbacks(self) -> list[pl.Callback]:
        """The defaults: fault handling (:func:`~nwave_lightning.callbacks.faults.fault_callbacks`) and
        hardware-aware training, a ``SignAnnealing`` unless the trainer has one (or a ``SignPruning``)."""
        defaults = fault_callbacks(self.trainer.callbacks)
        if self._default_sign_annealing is None or not dense_weights(self.net):
            return defaults
        if any(isinstance(callback, (SignAnnealing, SignPruning)) for callback in self.trainer.callbacks):
            return defaults
        return [*defaults, self._default_sign_annealing]

    def setup(self, stage: str) -> None:
        self._check_class_count(self.trainer.datamodule)
        if self.chip_eval and self._chip_ready is None:
            self._chip_ready = _chip_ready_copy_exists(self.net)
        if self.trainer.world_size > 1:
            # Epoch values are reduced over ranks (EpochMeans, torchmetrics) before they are
            # logged, so Lightning's advice to sync them again does not apply to these keys.
            warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('(step|epoch|lr|(train|val|test)[_/])")

    def on_train_start(self) -> None:
        # A run resumed mid-epoch (after an interrupt) skips on_train_epoch_start: same state here.
        self.on_train_epoch_start()
        # The training loader exists from here on (trainer.train_dataloader). A resumed run
        # (ckpt_path) already holds its trained weights: fluct_init only starts fresh runs.
        if self.fluct_init_kwargs is None or self._fluct_done or self.trainer.ckpt_path is not None:
            return
        self._run_fluct_init()
        self._fluct_done = True
        if self.trainer.world_size > 1:  # each rank saw its own shard: every rank takes rank 0's weights
            state = self.trainer.strategy.broadcast({k: v.cpu() for k, v in self.net.state_dict().items()}, src=0)
            self.net.load_state_dict(state)

    def _check_class_count(self, datamodule: Any) -> None:
        """Before any step: a datamodule with more classes than the net's readout cannot be trained on."""
        data_classes, net_classes = getattr(datamodule, "num_classes", None), getattr(self.net, "num_classes", None)
        if isinstance(data_classes, int) and isinstance(net_classes, int) and data_classes > net_classes:
            raise ValueError(
                f"SNNModule: the data have num_classes={data_classes} but the net's readout has num_classes={net_classes}; "
                f"set the net's num_classes to {data_classes} (YAML: --model.init_args.net.init_args.num_classes={data_classes}); "
                "PopulationLoss and PopulationAccuracy built without num_classes follow it."
            )

    def _run_fluct_init(self) -> None:
        from ..init import fluct_init

        parametrized = [e for e in dense_weights(self.net) if sign_parametrization(e.module, e.attr) is not None]
        if not parametrized:
            fluct_init(self.net, self._training_loader(), **self.fluct_init_kwargs)
            return
        # SignAnnealing's setup (a callback's, so before this one) already parametrised the
        # signs. Initialise a plain copy, then start each parametrisation from its weights,
        # exactly as installing it after fluct_init would.
        plain = unparametrized_copy(self.net)
        fluct_init(plain, self._training_loader(), **self.fluct_init_kwargs)
        initialised = dict(plain.named_modules())
        for entry in parametrized:
            restart_sign_parametrization(entry.module, entry.attr, getattr(initialised[entry.module_name], entry.attr))

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args: Any, **kwargs: Any):
        """Lightning's ``load_from_checkpoint``; a damaged file fails as "checkpoint <path> is truncated or corrupt (...)"."""
        if isinstance(checkpoint_path, (str, os.PathLike)) and os.path.isfile(checkpoint_path):
            verify_checkpoint(checkpoint_path)  # the archive and its CRCs, before Lightning unpickles it
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Match the network's sign parametrisation to the checkpoint's before its weights load.

        Runs of the hardware-aware default save sign-parametrised weights: a module built
        afresh (``load_from_checkpoint``) gets the parametrisation. A checkpoint of plain
        weights (``sign_annealing=False``, or older runs) loads into a plain network: the
        parametrisation a ``SignAnnealing`` installed in ``setup`` is removed, so the weights
        are exactly the saved ones. A sign-parametrised checkpoint without the sharpness
        buffer (saved before it existed) gets the sharpness its ``SignAnnealing`` state holds.
        """
        state = checkpoint.get("state_dict", {})
        prefix = "net."
        if any(key.endswith(".sign_logits") for key in state):
            install_sign_parametrization(self.net)
            alpha = _saved_sign_alpha(checkpoint)
            for name, buffer in self.net.named_buffers():
                if name.endswith(".alpha_state") and f"{prefix}{name}" not in state:
                    state[f"{prefix}{name}"] = torch.full_like(buffer, alpha)
            return
        for entry in dense_weights(self.net):
            plain_key = f"{prefix}{entry.module_name}.{entry.attr}" if entry.module_name else f"{prefix}{entry.attr}"
            if plain_key in state and sign_parametrization(entry.module, entry.attr) is not None:
                parametrize.remove_parametrizations(entry.module, entry.attr, leave_parametrized=False)

    def _training_loader(self):
        loader = self.trainer.train_dataloader
        if loader is None:
            raise ValueError("SNNModule: fluct_init needs the training loader; pass a datamodule or train_dataloaders to fit().")
        return loader

    # -- forward and steps -------------------------------------------------
    def forward(self, x: torch.Tensor):
        """``net(x)`` -> ``(spikes_list, membranes_list)``."""
        return self.net(x)

    def _run_net(self, x: torch.Tensor, net: Optional[nn.Module] = None):
        outputs = (net if net is not None else self.net)(x)
        if not self._contract_checked:
            validate_contract(outputs, x)
            self._contract_checked = True
        return outputs

    def _shared_step(self, batch: Any, stage: str, net: Optional[nn.Module] = None) -> torch.Tensor:
        net = net if net is not None else self.net
        x, y, meta = unpack_batch(batch)
        mask = batch_mask(meta, x)
        if mask is not None and not self._mask_checked:
            self._warn_on_ignored_mask()
        spikes_list, membranes_list = self._run_net(x, net)
        call = {
            "spk_out": spikes_list[-1],
            "y": y,
            "spikes_list": list(spikes_list),
            "membranes_list": list(membranes_list),
            "model": net,
            "mask": mask,
        }
        out = as_loss_output(self.loss(**{key: call[key] for key in self._loss_keys}))
        batch_size = x.shape[0]
        with torch.no_grad():
            self._means[stage].update(out.components, batch_size)
            detached = {
                "spk_out": call["spk_out"].detach(),
                "y": y,
                "spikes_list": [s.detach() for s in spikes_list],
                "membranes_list": [m.detach() for m in membranes_list],
                "model": net,
                "mask": mask,
            }
            self._update_metrics(stage, detached, batch_size)
        return out.total

    def _warn_on_ignored_mask(self) -> None:
        """Padded batches: name the loss / metrics whose signature cannot take the mask (they count padding)."""
        self._mask_checked = True
        blind = [] if "mask" in self._loss_keys else [f"loss {type(self.loss).__name__}"]
        blind += [f"metric {name!r}" for name in self.metric_names if "mask" not in self._metric_keys[name]]
        if blind:
            rank_zero_warn(
                f"SNNModule: the batches are padded (meta['mask']) but {', '.join(blind)} take no `mask` argument, so "
                "padded steps count in them. Add a `mask=None` parameter ((B, T), true on real steps) and ignore "
                "the padded steps, as PopulationLoss and PopulationAccuracy do."
            )

    def _update_metrics(self, stage: str, call: dict, batch_size: int) -> None:
        table = self.stage_metrics[f"{stage}_metrics"]
        plain = {}
        for name in self.metric_names:
            kwargs = {key: call[key] for key in self._metric_keys[name]}
            if name in self._plain_metrics:
                plain[name] = self._plain_metrics[name](**kwargs)
            else:
                table[name].update(**kwargs)
        if plain:
            self._plain_means[stage].update(plain, batch_size)
        if self.activity is not None and stage in STAGES:
            self.activity[f"{stage}_activity"].update(call["spikes_list"], call["membranes_list"], mask=call["mask"])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "val")
        if "net" in self._chip_copy:
            self._shared_step(batch, CHIP_STAGES["val"], self._chip_copy["net"])

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "test")
        if "net" in self._chip_copy:
            self._shared_step(batch, CHIP_STAGES["test"], self._chip_copy["net"])

    def _hold_chip_copy(self) -> None:
        self._chip_copy.clear()
        chip = self.chip_net()
        if chip is not None:
            self._chip_copy["net"] = chip

    def chip_net(self) -> Optional[nn.Module]:
        """The chip-ready copy ``to_chip(net)`` (``None`` with ``chip_eval=False`` or a net the chip cannot run)."""
        if not self.chip_eval:
            return None
        if self._chip_ready is None:
            self._chip_ready = _chip_ready_copy_exists(self.net)
        if not self._chip_ready:
            return None
        # Validate/test run under inference mode, whose tensors have no version counter; the
        # copy's layers use it to detect stale prepared matrices, so build it outside.
        with torch.inference_mode(False):
            return to_chip(self.net).eval()

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Readout spikes (and the targets when the batch has them) of one batch."""
        x, y, meta = unpack_batch(batch, require_target=False)
        spikes_list, _ = self._run_net(x)
        return {"spk_out": spikes_list[-1], "y": y, "meta": meta}

    # -- epoch-level logging -----------------------------------------------
    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        trainer = self._attached_trainer()
        return trainer.strategy.reduce(tensor, reduce_op="sum") if trainer is not None else tensor

    def _attached_trainer(self) -> Optional[pl.Trainer]:
        try:
            return self.trainer
        except RuntimeError:  # not attached to a Trainer (a module used on its own)
            return None

    def _log_epoch(self, stage: str, extra: Optional[dict[str, float]] = None) -> None:
        values = self._epoch_values(stage, extra)
        chip_stage = CHIP_STAGES.get(stage)
        if chip_stage is not None and self._chip_copy.pop("net", None) is not None:
            # Dropped here, rebuilt from the current weights at the next evaluation.
            values.update(self._epoch_values(chip_stage))
        self._publish(stage, {key: torch.as_tensor(value, dtype=torch.float32).reshape(()) for key, value in values.items()})

    def _epoch_values(self, stage: str, extra: Optional[dict[str, float]] = None) -> dict[str, Any]:
        """The epoch's values of ``stage``; chip stages give only ``<stage>_loss`` and ``<stage>_<metric>``."""
        values: dict[str, Any] = dict(extra or {})
        brief = stage not in STAGES
        # Loss components: batch-size-weighted means, summed over ranks in one collective.
        for key, value in self._means[stage].compute(self._reduce_sum).items():
            values[f"{stage}/{key}"] = value
        if f"{stage}/total" in values:
            values[f"{stage}_loss"] = values[f"{stage}/total"]
        if brief:
            values = {key: value for key, value in values.items() if "/" not in key}
        self._means[stage].reset()
        table = self.stage_metrics[f"{stage}_metrics"]
        plain = self._plain_means[stage].compute(self._reduce_sum)
        self._plain_means[stage].reset()
        for name in self.metric_names:
            if name in plain:
                result = plain[name]
            elif name in self._plain_metrics:
                continue  # no batch this epoch
            else:
                result = table[name].compute()  # torchmetrics reduces across DDP ranks here
                table[name].reset()
            items = result.items() if isinstance(result, dict) else [("", result)]
            for key, value in items:
                suffix = f"/{key}" if key else ""
                if not brief:
                    values[f"{stage}/{name}{suffix}"] = value
                values[f"{stage}_{name}{suffix}"] = value
        if self.activity is not None and not brief:
            for key, value in self.activity[f"{stage}_activity"].compute().items():
                values[f"{stage}/{key}"] = value
            self.activity[f"{stage}_activity"].reset()
        return values

    def _publish(self, stage: str, values: dict[str, torch.Tensor]) -> None:
        """Log the epoch's values (already reduced over ranks) with the epoch (1-based) as the logger's step.

        Called at the epoch's last batch, so that callbacks read the current epoch's values
        in their ``on_<stage>_epoch_end`` (Lightning runs those before the module's).
        """
        if self.trainer.sanity_checking:
            return
        shown = {key for key in values if key == f"{stage}_loss" or (stage != "train" and key.startswith(f"{stage}_"))}
        common = dict(on_step=False, on_epoch=True, sync_dist=False, batch_size=1)
        self.log_dict({key: value for key, value in values.items() if key in shown}, prog_bar=True, **common)
        self.log_dict({key: value for key, value in values.items() if key not in shown}, **common)
        self.log("step", float(self.current_epoch + 1), **common)  # the x axis of every key of the epoch

    def on_train_epoch_start(self) -> None:
        # Lightning steps epoch schedulers right after the last batch, before the epoch-end
        # hooks: remember the rate this epoch actually trained with.
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        self._train_epoch_logged = False

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.clamp_weights:
            self.project_weights()
        # Close the training epoch's metrics at its last batch: callbacks' on_train_epoch_end runs
        # before the module's, and early stopping / best-model callbacks may monitor train_<metric>.
        if batch_idx + 1 == self.trainer.num_training_batches:
            self._finish_train_epoch()

    def on_train_epoch_end(self) -> None:
        if not self._train_epoch_logged:  # an epoch cut short, or a loader without a length
            self._finish_train_epoch()

    def _finish_train_epoch(self) -> None:
        self._log_epoch("train", {"epoch": float(self.current_epoch + 1), "lr": self._epoch_lr})
        self._train_epoch_logged = True

    def on_validation_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._close_at_last_batch("val", batch_idx, dataloader_idx)

    def on_test_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._close_at_last_batch("test", batch_idx, dataloader_idx)

    def _close_at_last_batch(self, stage: str, batch_idx: int, dataloader_idx: int) -> None:
        # Callbacks' on_<stage>_epoch_end runs before the module's: log the epoch at its last batch.
        if self.trainer.sanity_checking:
            counts = self.trainer.num_sanity_val_batches
        else:
            counts = self.trainer.num_val_batches if stage == "val" else self.trainer.num_test_batches
        if dataloader_idx == len(counts) - 1 and batch_idx + 1 == counts[-1]:
            self._log_epoch(stage)
            self._eval_epoch_logged = True

    def on_validation_epoch_start(self) -> None:
        self._eval_epoch_logged = False
        self._hold_chip_copy()

    def on_test_epoch_start(self) -> None:
        self._eval_epoch_logged = False
        self._hold_chip_copy()

    def on_validation_epoch_end(self) -> None:
        if not self._eval_epoch_logged:  # a loader without a length
            self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        if not self._eval_epoch_logged:
            self._log_epoch("test")

    def on_fit_end(self) -> None:
        self._warn_on_chip_gap()

    def _warn_on_chip_gap(self) -> None:
        """Say so when the chip-ready copy scores worse than the float network the run reports.

        A metric's direction is its ``higher_is_better`` attribute (torchmetrics' own; a plain
        callable may carry one too): only a chip-ready value worse by more than
        ``chip_gap_tolerance`` counts. A metric without a direction counts when the two differ.
        """
        logged = self.trainer.callback_metrics
        gaps, directed = [], True
        for name in self.metric_names:
            float_key, chip_key = f"val_{name}", f"{CHIP_STAGES['val']}_{name}"
            if float_key in logged and chip_key in logged:
                float_value, chip_value = float(logged[float_key]), float(logged[chip_key])
                if _chip_trails(float_value, chip_value, self._higher_is_better[name], self.chip_gap_tolerance):
                    gaps.append(f"{chip_key}={chip_value:.4g} vs {float_key}={float_value:.4g}")
                    directed = directed and self._higher_is_better[name] is not None
        if gaps:
            verdict = "scores worse than" if directed else "scores far from"
            rank_zero_warn(
                f"SNNModule: the chip-ready network (to_chip(net)) {verdict} the float one at the end of fit: "
                f"{'; '.join(gaps)} (more than chip_gap_tolerance={self.chip_gap_tolerance}). "
                + ("The float weights rely on what the chip cannot store. " if directed else
                   "The metric has no direction (a plain function without higher_is_better), so either may be better. ")
                + f"{_chip_gap_advice(self.trainer.callbacks, self.clamp_weights)} "
                "Monitor val_chip_* in BestModelCheckpoint / early stopping, so the kept model is the chip's best."
            )

    # -- optimisation ------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, self.optimizer_spec, self.lr, self.weight_decay, self.optimizer_kwargs)
        trainer = self._attached_trainer()
        max_epochs = trainer.max_epochs if trainer is not None else None
        scheduler = build_lr_scheduler(optimizer, self.lr_scheduler_spec, max_epochs)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    @torch.no_grad()
    def project_weights(self) -> None:
        """Clamp every dense H1 matrix (its raw parameter if parametrised) to the chip's range."""
        for entry in dense_weights(self.net):
            module, attr = entry.module, entry.attr
            if parametrize.is_parametrized(module, attr):
                tensor = module.parametrizations[attr].original
            else:
                tensor = getattr(module, attr)
            tensor.clamp_(*module.chip.weight_range)
