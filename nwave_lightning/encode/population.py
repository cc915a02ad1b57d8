"""``Population``: one analog channel into ``n_fields`` channels with overlapping receptive fields."""

from __future__ import annotations

import torch

from ._base import Encoder, check_number, check_sequence

__all__ = ["Population"]

SHAPES = ("gaussian", "triangular")


class Population(Encoder):
    """Each channel into ``n_fields`` channels tuned to centres evenly spaced on ``[low, high]``.

    Field ``j`` of a channel responds to value ``x`` with

    * ``"gaussian"``: ``exp(-(x - c_j)^2 / (2 width^2))``;
    * ``"triangular"``: ``max(0, 1 - |x - c_j| / width)``;

    with ``c_j = low + j (high - low) / (n_fields - 1)`` and ``width`` the centre
    spacing unless given. ``(B, T, C) -> (B, T, C * n_fields)``, channel ``c``'s
    fields at ``[c * n_fields, (c + 1) * n_fields)``. A single channel cannot
    drive an H1 layer within the chip's weight range (one input spike per step
    needs a weight far above the limit, see ``fluct_init``'s warning); spreading
    it over fields gives the layer the input channels it needs, and different
    values excite different channels.

    What the frontend then does: every output is in ``[0, 1]``, so field ``j``
    fires at its response in spikes per step (non-leaky integrate-and-fire,
    gain 1, threshold 1): the fields near the current value fire often, the far
    ones not at all.

    Args:
        n_fields: Fields per channel (>= 2).
        low: Centre of the first field.
        high: Centre of the last field (``> low``).
        shape: ``"gaussian"`` or ``"triangular"``.
        width: Gaussian standard deviation / triangle half-width (default: the centre spacing).

    Example:
        >>> import torch
        >>> enc = Population(n_fields=3, low=0.0, high=2.0, shape="triangular")
        >>> enc(torch.tensor([[[0.5]]])).tolist()
        [[[0.5, 0.5, 0.0]]]
    """

    def __init__(self, n_fields: int, low: float = -2.0, high: float = 2.0, shape: str = "gaussian", width: float | None = None) -> None:
        super().__init__()
        if isinstance(n_fields, bool) or not isinstance(n_fields, int) or n_fields < 2:
            raise ValueError(f"Population: n_fields={n_fields!r} must be an integer >= 2.")
        low = check_number("Population", "low", low)
        high = check_number("Population", "high", high)
        if high <= low:
            raise ValueError(f"Population: high={high!r} must be above low={low!r}.")
        if shape not in SHAPES:
            raise ValueError(f"Population: shape={shape!r} is unknown; choose one of {list(SHAPES)}.")
        spacing = (high - low) / (n_fields - 1)
        self.width = spacing if width is None else check_number("Population", "width", width, 0.0, strict=True)
        self.n_fields, self.shape = n_fields, shape
        self.register_buffer("centres", torch.linspace(low, high, n_fields))

    def out_features(self, in_features: int) -> int:
        return in_features * self.n_fields

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_sequence("Population", x)
        distance = (x.unsqueeze(-1) - self.centres.to(x.dtype)) / self.width  # (B, T, C, n_fields)
        if self.shape == "gaussian":
            response = torch.exp(-0.5 * distance.square())
        else:
            response = torch.relu(1.0 - distance.abs())
        return response.flatten(start_dim=2)

    def extra_repr(self) -> str:
        return f"n_fields={self.n_fields}, centres=[{float(self.centres[0]):g}, {float(self.centres[-1]):g}], shape={self.shape}, width={self.width:g}"
