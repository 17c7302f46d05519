"""Run fwlite as a real subprocess on a free loopback port, for tests and the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("FLYWHEEL_SDK_TOTAL_RETRIES", "0")  # before flywheel is imported

from tests.support.peers import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class FwliteServer:
    """``python -m fwlite serve`` in data_dir; .client() is a real flywheel.Client on it."""

    def __init__(
        self,
        data_dir: Path,
        api_key: str = "test-key",
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args
        self.key = api_key
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.fwlite.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        """The string flywheel.Client takes."""
        return f"127.0.0.1:{self.port}:__force_insecure:{self.key}"

    def start(self, timeout: float = 20.0) -> FwliteServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "fwlite", "serve", "--data", str(self.data_dir)]
        command += ["--port", str(self.port), "--api-key", self.key, *self.extra_args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fwlite exited at start: {self.log_path.read_text()[-2000:]}")
            try:
                self._call("GET", "/api/version")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"fwlite not ready after {timeout}s: {self.log_path.read_text()[-2000:]}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> FwliteServer:
        self.stop()
        return self.start()

    def client(self) -> Any:
        import flywheel

        return flywheel.Client(self.api_key)

    def requests(self) -> list[dict[str, Any]]:
        path = self.data_dir / "requests.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"scitran-user {self.key}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def set_fault(
        self,
        status: int = 503,
        count: int | None = None,
        path_prefix: str = "/api",
        body_contains: str = "",
    ) -> None:
        """Fail matching requests; ``body_contains`` narrows it to requests whose body holds
        that text (e.g. one project's label: only that project's uploads fail)."""
        self._call(
            "PUT",
            "/api/_fwlite/fault",
            {
                "status": status,
                "count": count,
                "path_prefix": path_prefix,
                "body_contains": body_contains,
            },
        )

    def clear_fault(self) -> None:
        self._call("DELETE", "/api/_fwlite/fault")

    def __enter__(self) -> FwliteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
