"""DIMSE Query/Retrieve over Flywheel data (issue 15; docs/qr-conformance.md).

index (SQLite, per instance + per series/study/patient) <- refresh (flywheel-sdk listing,
incremental) ; matching + query (C-FIND, retrieve selection) ; retrieve (datasets from
Flywheel files) ; scp (the only pynetdicom module) ; service (wiring, lifecycle).
"""

from __future__ import annotations

from typing import Any

from fwagent.config import AgentConfig


def start(config: AgentConfig, client: Any = None) -> Any:
    """Start the Q/R service; the returned object has ``.stop()`` and ``.port``."""
    from .service import QRService

    service = QRService(config, client)
    service.start()
    return service
