"""Prometheus metrics (prometheus-client), served by ``fwagent run`` when metrics.enabled."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECEIVED = Counter("fwagent_received_instances", "Instances received and spooled", ["source"])
DROPPED = Counter("fwagent_dropped_instances", "Instances dropped: carry the dicom-send tag")
QUARANTINED = Counter("fwagent_quarantined_instances", "Instances quarantined as unreadable")
RECEIVE_ERRORS = Counter("fwagent_receive_errors", "C-STORE answered with an error status")
REFUSED = Counter("fwagent_refused_associations", "Connections refused", ["reason"])
UPLOADED = Counter("fwagent_uploaded_series", "Series uploaded to Flywheel", ["placement"])
UPLOADED_INSTANCES = Counter("fwagent_uploaded_instances", "Instances uploaded to Flywheel")
FAILED = Counter("fwagent_failed_uploads", "Upload attempts that failed")
OPTED_OUT = Counter("fwagent_opted_out_series", "Series not uploaded by policy")
QUEUE_DEPTH = Gauge("fwagent_queue_depth", "Instances waiting in the spool")
UPLOAD_LATENCY = Histogram(
    "fwagent_upload_seconds",
    "Time to package and upload one series",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def serve(host: str, port: int) -> None:
    start_http_server(port, addr=host)
