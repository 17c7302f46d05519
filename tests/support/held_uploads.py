"""A real flywheel.Client whose uploads wait until the test lets them go: an upload held in
flight, as over a slow or stalled link, while the test watches what else happens."""

from __future__ import annotations

import threading
from typing import Any


class HeldUploads:
    """Wraps ``client``; ``upload_by_uid`` calls whose metadata contains ``only`` (all when
    empty) set ``held`` and wait for ``gate`` before going to the real client."""

    def __init__(
        self, client: Any, gate: threading.Event, held: threading.Event, only: str = ""
    ) -> None:
        self._client = client
        self._gate = gate
        self._held = held
        self._only = only

    def upload_by_uid(self, *args: Any, **kwargs: Any) -> Any:
        if self._only in str(kwargs.get("metadata", "")):
            self._held.set()
            assert self._gate.wait(120), "the test never let the upload go"
        return self._client.upload_by_uid(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
