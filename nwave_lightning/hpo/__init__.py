"""Hyper-parameter optimisation on Ray Tune: the vendor SDK's ``HPOWrapper`` and ``nwave tune``.

``HPOWrapper`` (Python) and ``nwave tune --config configs/tune_<x>.yaml`` (YAML) are
two front doors to one engine (:mod:`nwave_lightning.hpo.engine`) and one trial entry
point (:func:`~nwave_lightning.hpo.trial.run_trial`); every trial is a fit config built by
``build_from_config``, as ``nwave fit`` builds its run. This package knows nothing of the
command line.
Names are imported on first use, so ``nwave fit`` does not pay for importing Ray.

Example:
    >>> from nwave_lightning.hpo import HPOWrapper, train_one_trial
    >>> HPOWrapper.bind_model_param.__doc__.split(":")[0]
    '``model.<name>``'
"""

import importlib

_EXPORTS = {
    "Builders": "trial",
    "ConfigTrial": "trial",
    "HPOWrapper": "wrapper",
    "MemoryGuard": "memory_guard",
    "MemoryGuardError": "memory_guard",
    "MetricNotReportedError": "results",
    "SEARCH_ALGORITHMS": "schedulers",
    "TUNE_SCHEDULERS": "schedulers",
    "TrialContext": "trial",
    "TrialLines": "results",
    "TrialRun": "trial",
    "TrialSpec": "trial",
    "best_result": "results",
    "run_trial": "trial",
    "TuneEpochReport": "results",
    "train_one_trial": "trial",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
