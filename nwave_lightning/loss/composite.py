"""``CompositeLoss``: a weighted sum of named loss terms with per-term logging.

Component keys of the returned :class:`LossOutput` (the LightningModule logs
each as ``train/<key>`` / ``val/<key>``):

* ``"total"``: ``sum_i weight_i * total_i``, the value to back-propagate.
* a term returning a **tensor** (or a dict / LossOutput whose only component
  is ``"total"``): ``"<term>"``, its (unweighted) value.
* a term returning a **dict** or a **LossOutput**: ``"<term>/<key>"`` for each
  of its components, and ``"<term>/total"``, its unweighted total (the sum of
  its components unless it gave its own ``"total"``).

Term names may not contain ``"/"`` nor be ``"total"``, so keys never collide.
Weights multiply only ``"total"``; components are logged unweighted, so changing
a weight in a sweep does not change what a component means.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from typing import Any, Callable, NamedTuple

import torch

from ..signature import accepted_kwargs
from .output import LossOutput, as_loss_output

__all__ = ["CompositeLoss", "LossTerm"]

# What the framework passes to every loss; a term may declare any subset.
_CONTRACT_ARGS = ("spk_out", "y", "spikes_list", "membranes_list", "model")


class LossTerm(NamedTuple):
    """One registered term of a :class:`CompositeLoss`."""

    name: str
    fn: Callable[..., Any]
    config: Any
    weight: float


@functools.lru_cache(maxsize=256)
def _required_args(fn: Callable) -> frozenset[str]:
    """Parameters of ``fn`` without a default (what a ``None`` value would break)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )


class CompositeLoss:
    """Weighted sum of named loss terms, each called with the arguments it declares.

    A term is any callable returning a scalar tensor, a ``dict[str, Tensor]`` or
    a :class:`LossOutput`. It is called with the keyword arguments its signature
    accepts among ``spk_out, y, spikes_list, membranes_list, model``, any extra
    keyword given to the call, and ``config`` (the dict given at registration);
    ``**kwargs`` receives them all. So a term without ``model`` works beside one
    that regularises the weights. See the module docstring for the component keys.

    Example:
        >>> import torch
        >>> def task(spk_out, y, config):
        ...     return {"mse": ((spk_out.mean() - config["target"]) ** 2)}
        >>> def l2(model):
        ...     return sum((p ** 2).sum() for p in model.parameters())
        >>> loss = CompositeLoss().add_loss_term("task", task, config={"target": 0.5}).add_loss_term("l2", l2, weight=0.1)
        >>> net = torch.nn.Linear(1, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(2.0)
        >>> out = loss(spk_out=torch.ones(1, 2, 3), y=torch.tensor([0]), model=net)
        >>> {key: round(value.item(), 4) for key, value in out.components.items()}
        {'task/mse': 0.25, 'task/total': 0.25, 'l2': 4.0, 'total': 0.65}
        >>> loss.loss_terms[1].weight
        0.1
    """

    def __init__(self) -> None:
        self._terms: list[LossTerm] = []

    def add_loss_term(self, name: str, fn: Callable[..., Any], config: Any = None, weight: float = 1.0) -> "CompositeLoss":
        """Register a term; returns ``self`` so calls chain.

        Args:
            name: Unique name, used as the component key prefix (no ``"/"``, not ``"total"``).
            fn: The term's callable.
            config: Passed to ``fn`` as ``config=`` when its signature accepts it.
            weight: Finite multiplier of the term's total in ``"total"``.

        Raises:
            ValueError: on a duplicate or malformed name, a non-callable ``fn``
                or a non-finite ``weight``.
        """
        if not isinstance(name, str) or not name or "/" in name or name == "total":
            raise ValueError(
                f"CompositeLoss.add_loss_term: name={name!r} must be a non-empty string without '/' and not 'total' "
                "(it prefixes the component keys, e.g. 'population/mse')."
            )
        if any(term.name == name for term in self._terms):
            raise ValueError(
                f"CompositeLoss.add_loss_term: a term named {name!r} already exists "
                f"(terms: {[term.name for term in self._terms]}); choose another name."
            )
        if not callable(fn):
            raise ValueError(f"CompositeLoss.add_loss_term: fn={fn!r} for term {name!r} must be callable.")
        if isinstance(weight, torch.Tensor) and weight.numel() == 1:
            weight = weight.item()
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(float(weight)):
            raise ValueError(f"CompositeLoss.add_loss_term: weight={weight!r} for term {name!r} must be a finite number.")
        self._terms.append(LossTerm(name, fn, config, float(weight)))
        return self

    @property
    def loss_terms(self) -> tuple[LossTerm, ...]:
        """The registered terms, in order (a copy: register new ones with :meth:`add_loss_term`)."""
        return tuple(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def __repr__(self) -> str:
        terms = ", ".join(f"{t.name}={getattr(t.fn, '__name__', type(t.fn).__name__)}*{t.weight:g}" for t in self._terms)
        return f"CompositeLoss({terms})"

    def __call__(
        self,
        spk_out: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        spikes_list=None,
        membranes_list=None,
        model=None,
        **extra: Any,
    ) -> LossOutput:
        """Evaluate every term and their weighted sum.

        ``spk_out`` defaults to ``spikes_list[-1]`` (the readout, by the model contract).

        Raises:
            ValueError: without terms, or when a term needs an argument
                (e.g. ``model``) that the call did not provide.
        """
        if not self._terms:
            raise ValueError("CompositeLoss has no terms; register one with add_loss_term(name, fn, config, weight).")
        if spk_out is None and spikes_list:
            spk_out = spikes_list[-1]
        available = dict(
            spk_out=spk_out, y=y, spikes_list=spikes_list, membranes_list=membranes_list, model=model, **extra
        )
        total = None
        components: dict[str, torch.Tensor] = {}
        for term in self._terms:
            result = self._call_term(term, available)
            if not isinstance(result.total, torch.Tensor) or not result.total.is_floating_point():
                raise ValueError(f"CompositeLoss: term {term.name!r} returned a non-floating total {result.total!r}.")
            if set(result.components) == {"total"}:
                components[term.name] = result.total
            else:
                for key, value in result.components.items():
                    components[f"{term.name}/{key}"] = value
            weighted = term.weight * result.total
            total = weighted if total is None else total + weighted.to(total.device)
        components["total"] = total
        return LossOutput(total=total, components=components)

    @staticmethod
    def _call_term(term: LossTerm, available: dict[str, Any]) -> LossOutput:
        kwargs = accepted_kwargs(term.fn, {**available, "config": term.config})
        try:
            required = _required_args(term.fn)
        except TypeError:  # unhashable callable
            required = _required_args.__wrapped__(term.fn)
        missing = sorted(name for name in required & set(_CONTRACT_ARGS) if kwargs.get(name) is None)
        if missing:
            raise ValueError(
                f"CompositeLoss: term {term.name!r} needs {', '.join(missing)} but the loss was called without "
                f"{'it' if len(missing) == 1 else 'them'}; pass e.g. loss({missing[0]}=...)."
            )
        try:
            return as_loss_output(term.fn(**kwargs))
        except TypeError as err:
            if "must return" in str(err):
                raise TypeError(f"CompositeLoss: term {term.name!r}: {err}") from err
            raise
