"""A real Orthanc server for tests (the PACS the agent pulls from, or a send target).

Started by hand with its own JSON config (never via /etc/orthanc, which merges every file
there), on free loopback ports, with ``TCP_NODELAY=1``. Ready when ``GET /system`` answers.
HTTP is plain urllib so the harness needs nothing beyond the standard library.
"""

from __future__ import annotations

import json as _json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import peers

# name -> (AE title, host, port) or (AE title, host, port, {"UseDicomTls": True, ...})
Modalities = dict[str, tuple[Any, ...]]


class OrthancError(RuntimeError):
    """Orthanc did not start, or a REST call failed."""


class OrthancServer:
    """One Orthanc process with storage in ``workdir``.

    ``modalities`` lists the AEs allowed to C-FIND/C-MOVE/C-GET (Orthanc aborts unknown
    callers) and the C-MOVE destinations. ``tls`` = {"cert", "key", "ca",
    "require_client_cert"} turns on DICOM TLS for the whole DICOM port.
    """

    def __init__(
        self,
        workdir: Path,
        aet: str = "ORTHANC",
        modalities: Modalities | None = None,
        tls: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.aet = aet
        self.modalities: Modalities = dict(modalities or {})
        self.tls = tls
        self.dicom_port = 0
        self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict[str, Any]:
        """The JSON config written for Orthanc (DESIGN.md section 4)."""
        modalities: dict[str, Any] = {}
        for name, entry in self.modalities.items():
            aet, host, port = entry[0], entry[1], int(entry[2])
            if len(entry) > 3 and entry[3]:
                modalities[name] = {"AET": aet, "Host": host, "Port": port, **dict(entry[3])}
            else:
                modalities[name] = [aet, host, port]
        cfg: dict[str, Any] = {
            "Name": f"test-{self.aet}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "HttpPort": self.http_port,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomModalities": modalities,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "StorageCompression": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "ConcurrentJobs": 2,
            "DicomScuTimeout": 10,
            "DicomAssociationCloseDelay": 0,
            "Plugins": [],
        }
        if self.tls:
            cfg.update(
                {
                    "DicomTlsEnabled": True,
                    "DicomTlsCertificate": str(self.tls["cert"]),
                    "DicomTlsPrivateKey": str(self.tls["key"]),
                    "DicomTlsTrustedCertificates": str(self.tls["ca"]),
                    "DicomTlsRemoteCertificateRequired": bool(
                        self.tls.get("require_client_cert", True)
                    ),
                }
            )
        return cfg

    def start(self, timeout: float = 20.0) -> OrthancServer:
        """Start Orthanc (ports kept across restarts) and wait until GET /system answers."""
        peers.require("Orthanc")
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.dicom_port:
            self.dicom_port = peers.free_port()
            self.http_port = peers.free_port()
            while self.http_port == self.dicom_port:
                self.http_port = peers.free_port()
        self.config_path.write_text(_json.dumps(self.config(), indent=2))
        self.proc = subprocess.Popen(
            ["Orthanc", f"--logfile={self.log_path}", str(self.config_path)],
            env=peers.PEER_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise OrthancError(f"Orthanc exited at start: {self._log_tail()}")
            try:
                self.rest("GET", "/system")
                peers.wait_for_port(self.dicom_port, timeout=5.0)
                return self
            except (OSError, OrthancError):
                time.sleep(0.05)
        self.kill()
        raise OrthancError(f"Orthanc not ready after {timeout}s: {self._log_tail()}")

    def stop(self) -> None:
        """SIGTERM and wait (Orthanc takes 3-5 s)."""
        if self.proc is not None:
            peers.stop(self.proc, timeout=20.0)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> OrthancServer:
        self.stop()
        return self.start()

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- REST ------------------------------------------------------------------------------
    def rest(
        self,
        method: str,
        path: str,
        json: Any = None,  # noqa: A002 - same keyword as requests
        data: bytes | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """Call the REST API like ``requests``: ``json=`` object or raw ``data=`` bytes.

        JSON answers are decoded, anything else is returned as bytes.
        """
        body: bytes | None = data
        headers = {}
        if json is not None:
            body = _json.dumps(json).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/dicom"
        request = urllib.request.Request(
            self.url + path, data=body, method=method.upper(), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
                ctype = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise OrthancError(f"{method} {path}: HTTP {exc.code} {detail}") from None
        except urllib.error.URLError as exc:
            raise OrthancError(f"{method} {path}: {exc.reason}") from None
        if "json" in ctype and payload:
            return _json.loads(payload)
        return payload

    def upload(self, path: Path | str) -> dict[str, Any]:
        """Store one DICOM file through POST /instances."""
        return dict(self.rest("POST", "/instances", data=Path(path).read_bytes()))

    def upload_many(self, paths: list[Path]) -> int:
        for path in paths:
            self.upload(path)
        return len(paths)

    def instance_count(self) -> int:
        return int(self.rest("GET", "/statistics")["CountInstances"])

    def series_instance_count(self, series_uid: str) -> int:
        """Instances Orthanc holds for one SeriesInstanceUID (0 if unknown)."""
        found = self.rest(
            "POST",
            "/tools/find",
            json={"Level": "Series", "Query": {"SeriesInstanceUID": series_uid}},
        )
        if not found:
            return 0
        return len(self.rest("GET", f"/series/{found[0]}")["Instances"])

    def delete_all(self) -> None:
        for patient in self.rest("GET", "/patients"):
            self.rest("DELETE", f"/patients/{patient}")


def pull_config(
    work: Path, orthanc: OrthancServer, port: int, api_key: str = "", **pull: Any
) -> dict[str, Any]:
    """agent.yaml, as a dict, for a pull-only agent retrieving from ``orthanc`` into its own
    storage SCP on ``port``; ``pull`` adds or replaces keys of the pull section."""
    return {
        "flywheel": {"api_key": api_key},
        "spool_dir": str(work / "spool"),
        "spool_min_free_mb": 0,
        "push": {"enabled": False, "host": "127.0.0.1", "series_quiet_seconds": 0.2},
        "pull": {
            "enabled": True,
            "peer": {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port},
            "ae_title": "FWAGENT",
            "port": port,
            **pull,
        },
    }
