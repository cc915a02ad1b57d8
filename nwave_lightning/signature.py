"""Call user functions with only the keyword arguments their signature accepts.

The vendor SDK's contract passes ``spk_out, y, spikes_list, membranes_list, model``
(and ``config``) to every loss term and metric; a user function may declare
any subset, or ``**kwargs`` to receive all of them.

Example:
    >>> def term(spk_out, config, **kwargs):
    ...     return sorted(kwargs)
    >>> call_with_supported_kwargs(term, spk_out=1, config={}, y=2, model=None)
    ['model', 'y']
    >>> def narrow(spk_out, y):
    ...     return spk_out + y
    >>> call_with_supported_kwargs(narrow, spk_out=1, y=2, model=None)
    3
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

__all__ = ["accepted_kwargs", "call_with_supported_kwargs"]


@functools.lru_cache(maxsize=512)
def _signature_info(fn: Callable) -> tuple[frozenset[str], bool]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: pass everything
        return frozenset(), True
    names, var_keyword = set(), False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(parameter.name)
    return frozenset(names), var_keyword


def accepted_kwargs(fn: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``fn`` accepts by name (all of them with ``**kwargs``)."""
    try:
        names, var_keyword = _signature_info(fn)
    except TypeError:  # unhashable callable: inspect it every time
        names, var_keyword = _signature_info.__wrapped__(fn)
    if var_keyword:
        return dict(kwargs)
    return {key: value for key, value in kwargs.items() if key in names}


def call_with_supported_kwargs(fn: Callable, **kwargs: Any) -> Any:
    """``fn(**accepted_kwargs(fn, kwargs))``."""
    return fn(**accepted_kwargs(fn, kwargs))
