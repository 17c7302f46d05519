"""Report CSVs: named as Flywheel users expect, printed to the log, saved, attached."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def report_name(gear: str, labels: Sequence[str | None], now: datetime | None = None) -> str:
    """``<gear>_report-<label>[_<label>...]_YYYY-MM-DD_HH-MM-SS.csv`` (empty labels left out)."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    parts = "_".join(_UNSAFE.sub("-", label).strip() for label in labels if label)
    return f"{gear}_report-{parts}_{stamp}.csv"


def write_report(
    output_dir: Path,
    name: str,
    columns: Sequence[str],
    rows: Sequence[dict[str, Any]],
    client: Any = None,
    attach_to: str | None = None,
) -> Path:
    """Write rows as CSV with exactly ``columns``, print it to the log, attach it if asked."""
    frame = pd.DataFrame(list(rows), columns=list(columns))
    path = output_dir / name
    output_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    log.info(
        "Report %s (%d rows):\n%s",
        name,
        len(frame),
        frame.to_string(index=False) if len(frame) else "(empty)",
    )
    if client is not None and attach_to:
        client.upload_file_to_container(attach_to, str(path))
        log.info("Report attached to container %s", attach_to)
    return path
