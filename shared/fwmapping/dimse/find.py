"""Counting C-FIND answers on the wire, for pynetdicom 3's lost-response race.

pynetdicom 3's association reactor can take a response meant for ``send_c_find`` off its
queue and drop it when one request follows another on the same association: the reactor's
pause flag is set before the reactor actually waits, so for one loop both it and
``send_c_find`` read the DIMSE queue. Measured by the pull poller: about one poll in 150
lost a study's only series. The workaround: count the pending C-FIND responses as they
arrive (``EVT_DIMSE_RECV`` sees every message, before the race) and ask a query again when
fewer answers came out of ``send_c_find`` than arrived.

    counter = FindAnswerCounter()
    assoc = ae.associate(..., evt_handlers=[counter.handler()])
    answers = list(assoc.send_c_find(query, model, msg_id=7))
    if counter.pending(7) > pending_seen_in(answers): ...ask again...
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from pynetdicom import evt

PENDING = (0xFF00, 0xFF01)
C_FIND_RSP = 0x8020


class FindAnswerCounter:
    """EVT_DIMSE_RECV handler: pending C-FIND responses received, by message id."""

    def __init__(self) -> None:
        self._pending: Counter[int] = Counter()
        self._lock = threading.Lock()

    def handler(self) -> tuple[Any, Any]:
        """The (event, handler) pair to pass in ``evt_handlers``."""
        return (evt.EVT_DIMSE_RECV, self)

    def __call__(self, event: evt.Event) -> None:
        command = getattr(event.message, "command_set", None)
        if command is None or command.get("CommandField") != C_FIND_RSP:
            return
        if command.get("Status") in PENDING:
            with self._lock:
                self._pending[int(command.MessageIDBeingRespondedTo)] += 1

    def pending(self, msg_id: int) -> int:
        """Pending responses to request ``msg_id`` that arrived on the wire."""
        with self._lock:
            return self._pending[msg_id]
