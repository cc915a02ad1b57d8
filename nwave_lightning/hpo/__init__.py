"""Hyper-parameter optimisation on Ray Tune: the vendor SDK's ``HPOWrapper`` and ``nwave tune``.

``HPOWrapper`` (Python) and ``nwave tune --config configs/tune_<x>.yaml`` (YAML) are
two front doors to one engine (:mod:`nwave_lightning.hpo.engine`) and one trial entry
point (:func:`~nwave_lightning.hpo.trial.run_trial`); every trial is a fit config built by
``build_from_config``, as ``nwave fit`` builds its run. This package knows nothing of the
command line, and nothing outside it and the ``nwave`` command imports it (``nwave fit`` does not load Ray).

Example:
    >>> from nwave_lightning.hpo import HPOWrapper, train_one_trial
    >>> HPOWrapper.bind_model_param.__doc__.split(":")[0]
    '``model.<name>``'
"""

from .memory_guard import MemoryGuard, MemoryGuardError
from .report import write_report
from .results import MetricNotReportedError, TrialLines, TuneEpochReport, best_result
from .schedulers import SEARCH_ALGORITHMS, TUNE_SCHEDULERS
from .trial import Builders, ConfigTrial, TrialContext, TrialRun, TrialSpec, run_trial, train_one_trial
from .wrapper import HPOWrapper

__all__ = [
    "Builders", "ConfigTrial", "HPOWrapper", "MemoryGuard", "MemoryGuardError", "MetricNotReportedError",
    "SEARCH_ALGORITHMS", "TUNE_SCHEDULERS", "TrialContext", "TrialLines", "TrialRun", "TrialSpec", "TuneEpochReport",
    "best_result", "run_trial", "train_one_trial", "write_report",
]
