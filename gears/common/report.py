"""Report CSVs: named as Flywheel users expect, printed to the log, saved, attached.

Cells come from scanner data and file names, so every report is written safe to open in
a spreadsheet (OWASP, CSV injection): a text cell starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return gets a leading ``'`` so it is shown as text, never run as a
formula, and every data cell is quoted so a separator or line break inside a value
(``a;=1+1``) cannot start a new cell in a spreadsheet that splits on another separator.
The header row (the gear's own column names) is written as is.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_NAME = 200  # bytes; file systems allow 255, Flywheel file names stay readable
MAX_LABEL = 64  # characters of one label in the name before it is shortened


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet will show as text (``'`` before a formula start)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _label(label: str) -> str:
    clean = _UNSAFE.sub("-", label).strip(" .-") or "x"
    if len(clean) <= MAX_LABEL:
        return clean
    digest = hashlib.sha1(label.encode("utf-8", "replace")).hexdigest()[:8]
    return clean[: MAX_LABEL - 9].rstrip(" .-") + "~" + digest


def report_name(gear: str, labels: Sequence[str | None], now: datetime | None = None) -> str:
    """``<gear>_report-<label>[_<label>...]_YYYY-MM-DD_HH-MM-SS.csv`` (empty labels left out).

    Labels are made safe for a file name and shortened (with a short hash, so different
    long labels stay different) to keep the name under :data:`MAX_NAME` bytes.
    """
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    parts = "_".join(_label(label) for label in labels if label)
    name = f"{gear}_report-{parts}_{stamp}.csv"
    if len(name.encode()) > MAX_NAME:  # many labels: keep the start, hash the rest
        digest = hashlib.sha1(parts.encode()).hexdigest()[:8]
        room = MAX_NAME - len(f"{gear}_report-~{digest}_{stamp}.csv")
        name = f"{gear}_report-{parts[:room]}~{digest}_{stamp}.csv"
    return name


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
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerow(columns)  # our own names, as is
        frame.map(neutralise).to_csv(
            handle, index=False, header=False, quoting=csv.QUOTE_ALL, lineterminator="\n"
        )
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
