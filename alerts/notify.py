"""Send what the alert outbox holds: e-mail over SMTP, JSON to webhooks."""

from __future__ import annotations

import logging
import smtplib
import ssl
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import orjson

from alerts.engine import AlertEngine
from alerts.stores import Notification
from core.loop import Periodic
from storage.base import Offload

logger = logging.getLogger(__name__)


def check_target(target: str, smtp_url: str | None) -> str | None:
    """Say what is wrong with a notify target (`email:addr`, `webhook:http...`), or None."""
    kind, _, address = target.partition(":")
    if kind == "email":
        if "@" not in address or any(c.isspace() for c in address):
            return f"{target!r}: not an e-mail address"
        if not smtp_url:
            return f"{target!r}: e-mail needs an SMTP server (start with --smtp-url)"
        return None
    if kind == "webhook":
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"{target!r}: a webhook needs an http:// or https:// URL"
        return None
    return f"{target!r}: unknown notifier (use email:ADDRESS or webhook:URL)"


class Notifier:
    """Delivers due notifications; a failure is logged, counted and retried, never raised."""

    def __init__(
        self,
        engine: AlertEngine,
        *,
        smtp_url: str | None = None,
        sender: str = "domainstats@localhost",
        offload: Offload | None = None,
        timeout: float = 10.0,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.smtp_url = smtp_url
        self.sender = sender
        self.offload = offload
        self.timeout = timeout
        #: When given, notifications are sent only while it says True.
        self.gate = gate
        self._loop = Periodic(self.deliver_due, 1.0, "delivering notifications")

    def deliver_due(self) -> int:
        """Try every due notification once; return how many were delivered."""
        sent = 0
        if self.gate is not None and not self.gate():
            return sent
        for note in self.engine.due():
            if self.offload is None:
                error = self._attempt(note)
            else:
                error = self.offload(self._attempt, (note,))  # blocking I/O off the event loop
            if error is None:
                self.engine.delivered(note)
                sent += 1
            else:
                self.engine.failed(note, error)
        return sent

    def _attempt(self, note: Notification) -> str | None:
        """Send; return what went wrong instead of raising (threads report no exceptions)."""
        try:
            self._send(note)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _send(self, note: Notification) -> None:
        kind, _, address = note.target.partition(":")
        if kind == "email":
            self._email(address, note)
        elif kind == "webhook":
            self._webhook(address, note)
        else:
            raise ValueError(f"unknown notifier {kind!r}")

    def _email(self, to: str, note: Notification) -> None:
        if not self.smtp_url:
            raise RuntimeError("no SMTP server configured (--smtp-url)")
        url = urlsplit(self.smtp_url)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = note.subject
        message.set_content(note.body)
        smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        with smtp_class(url.hostname or "localhost", url.port or 25, timeout=self.timeout) as smtp:
            if "starttls" in url.query:
                smtp.starttls(context=ssl.create_default_context())
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)

    def _webhook(self, url: str, note: Notification) -> None:
        request = urllib.request.Request(
            url,
            data=orjson.dumps(note.payload),
            headers={"Content-Type": "application/json", "User-Agent": "domainstats"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"webhook answered {response.status}")

    def start(self) -> None:
        """Deliver due notifications every second in a greenlet."""
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
