"""Composable losses: population, activity and hardware terms, ``CompositeLoss``."""

from .output import LossOutput, as_loss_output

__all__ = ["LossOutput", "as_loss_output"]
