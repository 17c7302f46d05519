"""Prometheus metrics (prometheus-client), served by ``fwagent run`` when ``metrics.enabled``
(``metrics.host``/``metrics.port``, default 127.0.0.1:9108) at ``http://HOST:PORT/metrics``
(next to the status page, see :mod:`fwagent.web`).

Every name starts with ``fwagent_``; counters carry prometheus-client's ``_total`` suffix
in the exposition. Counts are per agent process (they start at zero on each start):

``fwagent_received_instances_total{source="push"|"pull", calling_ae=...}``
    instances stored in the spool and acknowledged (0x0000); a duplicate counts again
``fwagent_dropped_instances_total``
    instances acknowledged but dropped because they carry the dicom-send tag
``fwagent_quarantined_instances_total``
    instances kept in spool/quarantine (unreadable, cut short, or missing a UID)
``fwagent_receive_errors_total``
    C-STOREs answered with an error status (0xA700 out of resources, 0xC000)
``fwagent_refused_associations_total{reason=...}``
    connections refused: ``host`` (not in allowed_hosts), ``host_limit``
    (push.max_associations_per_host), ``idle`` (no complete association request within
    5 s), ``protocol`` (the first PDU is not an association request, or over 64 KiB),
    ``tls`` (handshake failed), ``ae_title`` (not in allowed_calling_aets), ``limit`` (the
    agent's total association limit), ``called_ae``, ``pdu_size`` (a PDU longer than
    our maximum: aborted before it is read), ``other``
``fwagent_fsyncs_total{kind="file"|"directory"}``
    fsyncs made before acknowledging instances: each file once, each spool directory once
    per group commit (concurrent associations share them)
``fwagent_state_commits_total``
    durable state commits of received instances (one per group of instances acknowledged
    together); ``fwagent_received_instances_total`` over this is the group size
``fwagent_uploaded_series_total{placement=..., calling_ae=...}``
    series (acquisitions) uploaded and confirmed by Flywheel
``fwagent_uploaded_instances_total``
    instances in those uploads
``fwagent_failed_uploads_total{calling_ae=...}``
    series whose upload was given up for now (quick retries spent or a permanent error): the
    series waits ``failed_retry_seconds`` as ``failed`` with its reason, then is tried again;
    each series counts once until it is uploaded or opted out (neither the attempts of its
    quick backoff retries nor its later long waits count again)
``fwagent_opted_out_series_total{calling_ae=...}``
    series not uploaded because of the opt-in/opt-out policy
``fwagent_queue_depth``
    instances waiting in the spool (gauge; refreshed by every pipeline sweep, 0.2 s)
``fwagent_upload_seconds`` (histogram: ``_bucket``, ``_count``, ``_sum``)
    time to package and upload one series, observed once per uploaded series

``calling_ae`` is the scanner: the calling AE title of the instance (received) or of the
series' first instance (uploaded, failed, opted out); series pulled from a PACS carry the
pull peer's AE title. To keep the number of time series bounded, AE titles listed in
``push.allowed_calling_aets`` (and the pull peer) are always their own label, other AE
titles only the first ``MAX_SCANNERS`` distinct ones seen by this process; the rest are
counted as ``(other AE titles)``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter(
    "fwagent_received_instances", "Instances received and spooled", ["source", "calling_ae"]
)
DROPPED = Counter("fwagent_dropped_instances", "Instances dropped: carry the dicom-send tag")
QUARANTINED = Counter("fwagent_quarantined_instances", "Instances quarantined as unreadable")
RECEIVE_ERRORS = Counter("fwagent_receive_errors", "C-STORE answered with an error status")
REFUSED = Counter("fwagent_refused_associations", "Connections refused", ["reason"])
FSYNCS = Counter("fwagent_fsyncs", "fsyncs made before acknowledging instances", ["kind"])
STATE_COMMITS = Counter(
    "fwagent_state_commits", "Durable state commits of received instances (group commits)"
)
UPLOADED = Counter(
    "fwagent_uploaded_series", "Series uploaded to Flywheel", ["placement", "calling_ae"]
)
UPLOADED_INSTANCES = Counter("fwagent_uploaded_instances", "Instances uploaded to Flywheel")
FAILED = Counter(
    "fwagent_failed_uploads", "Series uploads given up for now (parked as failed)", ["calling_ae"]
)
OPTED_OUT = Counter("fwagent_opted_out_series", "Series not uploaded by policy", ["calling_ae"])
QUEUE_DEPTH = Gauge("fwagent_queue_depth", "Instances waiting in the spool")
UPLOAD_LATENCY = Histogram(
    "fwagent_upload_seconds",
    "Time to package and upload one series",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

MAX_SCANNERS = 100
# longer than an AE title can be (16), so no scanner can share the overflow bucket
OTHER = "(other AE titles)"
# placements a dashboard divides by: their series exist (at 0) once a scanner is known
PLACEMENTS = ("routed", "unsorted", "unknown")


class ScannerLabels:
    """The bounded ``calling_ae`` label value for an AE title (thread-safe)."""

    def __init__(self, limit: int = MAX_SCANNERS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._allowed: frozenset[str] = frozenset()
        self._seen: set[str] = set()
        self._ready: set[str] = set()

    def configure(self, allowed: Iterable[str]) -> None:
        """AE titles that always get their own label (allowed callers, the pull peer)."""
        with self._lock:
            self._allowed = frozenset(a.strip() for a in allowed if a and a.strip())
            self._seen.clear()
        for title in sorted(self._allowed):
            self(title)

    def __call__(self, ae_title: str) -> str:
        title = (ae_title or "").strip()
        with self._lock:
            if not title:
                label = OTHER
            elif title in self._allowed or title in self._seen:
                label = title
            elif len(self._seen) < self.limit:
                self._seen.add(title)
                label = title
            else:
                label = OTHER
            fresh = label not in self._ready
            self._ready.add(label)
        if fresh:  # zero-valued series from the start, so increase()/rate() see the first one
            FAILED.labels(calling_ae=label)
            OPTED_OUT.labels(calling_ae=label)
            for placement in PLACEMENTS:
                UPLOADED.labels(placement=placement, calling_ae=label)
        return label


scanner = ScannerLabels()
