"""Alert rules, their evaluation on the background tick, and notifications."""

from alerts.engine import AlertEngine
from alerts.notify import Notifier

__all__ = ["AlertEngine", "Notifier"]
