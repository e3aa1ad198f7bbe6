"""Keeps the top-N answers ready in the background."""

from aggregation.aggregator import Aggregator, Ready

__all__ = ["Aggregator", "Ready"]
