"""Callbacks: everything stateful across epochs (schedules, annealing, early stop, best model, figures).

Each callback has ``state_dict`` / ``load_state_dict`` (exact resume), logs the
vendor SDK's TensorBoard keys at epoch level, builds from an SDK-style dict with
``from_config`` (``None`` when the dict disables it) and has one documented
method to override (see :mod:`nwave_lightning.callbacks.examples`).

Example:
    >>> from nwave_lightning.callbacks import SurrogateScheduler, NWaveEarlyStopping
    >>> SurrogateScheduler(policy="exp", start_value=10.0, gamma=2.0, end_value=30.0).scheduled_value(3)
    30.0
    >>> NWaveEarlyStopping(policy="plateau", metric="val_recall", mode="max").policy
    'patience'
"""

from .activity_figures import ActivityFigures
from .best_checkpoint import BestModelCheckpoint
from .config import callbacks_from_config
from .early_stopping import NWaveEarlyStopping
from .interrupt import InterruptCheckpoint
from .non_finite import NonFiniteError, NonFiniteGuard
from .random_state import RandomStateCheckpoint
from .sign_annealing import SignAnnealing, export_hard_signed, install_sign_parametrization, set_sign_alpha, sign_coherence_pct
from .sign_pruning import SignPruning, shrink_minority_signs
from .surrogate_scheduler import SurrogateScheduler

__all__ = [
    "ActivityFigures",
    "BestModelCheckpoint",
    "InterruptCheckpoint",
    "NonFiniteError",
    "NonFiniteGuard",
    "NWaveEarlyStopping",
    "RandomStateCheckpoint",
    "SignAnnealing",
    "SignPruning",
    "SurrogateScheduler",
    "callbacks_from_config",
    "export_hard_signed",
    "install_sign_parametrization",
    "set_sign_alpha",
    "sign_coherence_pct",
]
