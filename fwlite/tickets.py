"""Download tickets: one GET of one file, once, within a short lifetime, as Flywheel does.

``GET <file download URL>?ticket=`` with the API key issues a ticket for exactly that URL
(container + file name). The ticket then stands in for the key on that URL only, once;
any use, right or wrong, spends it. It never opens another route.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

LIFETIME = 60.0  # seconds, as Flywheel's download tickets


@dataclass(frozen=True)
class Ticket:
    path: str
    expires: float


class Tickets:
    """The open tickets of one fwlite; ``lifetime`` and ``clock`` are injectable for tests."""

    def __init__(
        self, lifetime: float = LIFETIME, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._open: dict[str, Ticket] = {}

    def issue(self, path: str) -> str:
        """A new ticket for one GET of ``path`` (the file's download path)."""
        now = self.clock()
        self._open = {k: t for k, t in self._open.items() if t.expires > now}
        token = secrets.token_urlsafe(24)
        self._open[token] = Ticket(path, now + self.lifetime)
        return token

    def redeem(self, token: str, method: str, path: str) -> str | None:
        """None when ``token`` opens this request, else why not. The ticket is spent either way."""
        ticket = self._open.pop(token, None)
        if ticket is None:
            return "unknown or already used download ticket"
        if self.clock() >= ticket.expires:
            return "download ticket expired"
        if method != "GET" or path != ticket.path:
            return "ticket does not match this file"
        return None

    def __len__(self) -> int:
        return len(self._open)
