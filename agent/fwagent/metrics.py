"""Prometheus metrics (prometheus-client), served by ``fwagent run`` when ``metrics.enabled``
(``metrics.host``/``metrics.port``, default 127.0.0.1:9108) at ``http://HOST:PORT/metrics``.

Every name starts with ``fwagent_``; counters carry prometheus-client's ``_total`` suffix
in the exposition. Counts are per agent process (they start at zero on each start):

``fwagent_received_instances_total{source="push"|"pull"}``
    instances stored in the spool and acknowledged (0x0000); a duplicate counts again
``fwagent_dropped_instances_total``
    instances acknowledged but dropped because they carry the dicom-send tag
``fwagent_quarantined_instances_total``
    instances kept in spool/quarantine as unreadable
``fwagent_receive_errors_total``
    C-STOREs answered with an error status (0xA700 out of resources, 0xC000)
``fwagent_refused_associations_total{reason="host"|"tls"|"ae_title"}``
    connections refused
``fwagent_uploaded_series_total{placement=...}``
    series (acquisitions) uploaded and confirmed by Flywheel
``fwagent_uploaded_instances_total``
    instances in those uploads
``fwagent_failed_uploads_total``
    series uploads given up for now (retries exhausted or a permanent error): the series
    is parked as ``failed`` with its reason and tried again later; backoff retries inside
    one attempt are not counted
``fwagent_opted_out_series_total``
    series not uploaded because of the opt-in/opt-out policy
``fwagent_queue_depth``
    instances waiting in the spool (gauge; refreshed by every pipeline sweep, 0.2 s)
``fwagent_upload_seconds`` (histogram: ``_bucket``, ``_count``, ``_sum``)
    time to package and upload one series, observed once per uploaded series
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECEIVED = Counter("fwagent_received_instances", "Instances received and spooled", ["source"])
DROPPED = Counter("fwagent_dropped_instances", "Instances dropped: carry the dicom-send tag")
QUARANTINED = Counter("fwagent_quarantined_instances", "Instances quarantined as unreadable")
RECEIVE_ERRORS = Counter("fwagent_receive_errors", "C-STORE answered with an error status")
REFUSED = Counter("fwagent_refused_associations", "Connections refused", ["reason"])
UPLOADED = Counter("fwagent_uploaded_series", "Series uploaded to Flywheel", ["placement"])
UPLOADED_INSTANCES = Counter("fwagent_uploaded_instances", "Instances uploaded to Flywheel")
FAILED = Counter("fwagent_failed_uploads", "Series uploads given up for now (parked as failed)")
OPTED_OUT = Counter("fwagent_opted_out_series", "Series not uploaded by policy")
QUEUE_DEPTH = Gauge("fwagent_queue_depth", "Instances waiting in the spool")
UPLOAD_LATENCY = Histogram(
    "fwagent_upload_seconds",
    "Time to package and upload one series",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def serve(host: str, port: int) -> None:
    """Serve ``/metrics`` from a daemon thread."""
    start_http_server(port, addr=host)
